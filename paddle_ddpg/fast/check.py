"""Whether the fast engine may train an agent. It computes the stock `DDPG`, `Actor` and `Critic` in private
kernels, so it is trusted only where the agent is that code (`code_differs`: an override would be skipped without
a word), this Paddle offers the names it calls and, on a small problem, it lands where the stock code does
(`stock_differs`): if not, the code is blamed where it is not the code the engine was verified against, else Paddle.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.agent import DDPG, soft_update, tanh_excess, td_target
from paddle_ddpg.config import Config
from paddle_ddpg.fast.engine import FastEngine
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import Actor, Critic, _linear_stack, critic_sizes

PRIVATE = {"_C_ops": "add addmm clip concat hardtanh_grad matmul matmul_grad maximum mean merged_adam_ minimum "
                     "multiply relu scale scale_ sgd_ square stanh stanh_grad subtract tanh tanh_grad",
           "Tensor": "_slice _share_buffer_to get_tensor",
           "Adam": "_create_accumulators _accumulators _parameter_list _beta1 _beta2 _epsilon _learning_rate "
                   "regularization _grad_clip"}
TOLERANCE = 1e-5
STOCK = "paddle_ddpg's DDPG as agent.py and networks.py now write it is not the code the fast engine computes"
# `stock_code()` where tests/test_update_equivalence.py last held the engine equal to the plain agent (it pins this).
VERIFIED = "50bec86938a473c56e7e0b9c771223009a8f2183da255cc2b1bbe2a5b5753ef6"
TAKEN_OVER = {**dict.fromkeys("update act target_q critic_step actor_step".split(), "which the fast engine replaces"),
              **dict.fromkeys(("learn", "draw_target_noise"), "which feeds the update the fast engine replaces"),
              **dict.fromkeys(("target_pairs", "critics", "critic_parameters"), "which the fast engine reads")}
# DDPG with bounds alike and centred (one stanh kernel); TD3 with per-dimension bounds and the tanh penalty.
SMALL = ((Config(actor_hidden=(8,), critic_hidden=(8, 8), lr_actor=1e-2, lr_critic=1e-2), [-2.0] * 2, [2.0] * 2),
         (Config(algo="td3", actor_hidden=(8, 8), critic_hidden=(8,), critic_action_layer=0, tanh_penalty=1.0,
                 lr_actor=1e-2, lr_critic=1e-2), [-1.0, 0.0], [1.0, 3.0]))


def code_differs(agent: DDPG) -> str | None:
    """What in `agent` is not the stock code the engine computes (reads Adam's internals: after `stock_differs`)."""
    cls = type(agent)
    if not isinstance(agent, DDPG):
        return f"the agent is a {cls.__name__}, not a paddle_ddpg DDPG"
    for name, clause in TAKEN_OVER.items():
        if getattr(cls, name) is not getattr(DDPG, name):
            return f"{cls.__name__} overrides {name}, {clause}"
        if name in vars(agent):
            return f"this agent's {name} is set on the object, {clause}"
    for name, net in agent.networks().items():
        stock = Actor if name.startswith("actor") else Critic
        if type(net) is not stock:
            return (f"the {name} is a {type(net).__name__}, not paddle_ddpg's {stock.__name__}, whose layers the fast "
                    "engine computes")
        if [id(p) for p in net.parameters()] != [id(p) for fc in net.fcs for p in (fc.weight, fc.bias)]:
            return f"the {name} has parameters outside its fcs layers, the only ones the fast engine computes"
    for name, params in (("actor_optim", agent.actor.parameters()), ("critic_optim", agent.critic_parameters())):
        optim = getattr(agent, name)
        if type(optim) is not paddle.optimizer.Adam:
            return f"the {name} is a {type(optim).__name__}; the fast engine steps a plain paddle.optimizer.Adam"
        if [id(p) for p in optim._parameter_list] != [id(p) for p in params]:
            return f"the {name} steps other parameters than the ones the fast engine steps with it"
        extras = [what for what, present in (("a learning rate schedule", not isinstance(optim._learning_rate, float)),
                                             ("weight decay", optim.regularization is not None),
                                             ("gradient clipping", optim._grad_clip is not None),
                                             ("AMSGrad", getattr(optim, "_amsgrad", False))) if present]
        if extras:
            return f"the {name} has {' and '.join(extras)}, which the fast engine's Adam step leaves out"
    return None


@functools.cache
def stock_differs() -> str | None:
    """Once per process: the private names the engine calls that this Paddle lacks (tried, not read off a version),
    then a plain and an accelerated agent's actions, weights and moments after updates of every kind."""
    owners = {"_C_ops": _C_ops, "Tensor": paddle.Tensor,
              "Adam": paddle.optimizer.Adam(parameters=[paddle.create_parameter([1], "float32")])}
    missing = [f"{owner}.{name}" for owner, names in PRIVATE.items() for name in names.split()
               if not hasattr(owners[owner], name)]
    if missing:
        return f"Paddle {paddle.__version__} lacks {', '.join(missing)}"
    try:
        worst = float(np.max([_small_problem(*case) for case in SMALL]))
        failure = f"its update lands {worst:.3g} away on a small problem"
    except Exception as exc:  # whatever an edited DDPG or network, or a changed private kernel, raises
        worst, failure = np.inf, ": ".join([type(exc).__name__, *str(exc).strip().splitlines()[-1:]])
    if worst <= TOLERANCE:
        return None
    if stock_code() != VERIFIED:
        return f"{STOCK}: {failure}"
    return f"on Paddle {paddle.__version__}, the fast engine's private kernels no longer compute what agent.py does: " \
        + failure


def stock_code() -> str:
    """A digest of the code the engine computes (less docstrings, comments and spacing), as its parts stand now."""
    parts = [getattr(DDPG, name) for name in ("__init__", *TAKEN_OVER)]
    parts += [td_target, soft_update, tanh_excess, _linear_stack, critic_sizes, Actor, Critic]
    try:
        code = re.sub(r'(?s)""".*?"""|#[^\n]*|\s+', "", "".join(inspect.getsource(part) for part in parts))
    except (OSError, TypeError):  # no source to read (a frozen build): not the verified code, as far as one can tell
        return "no source"
    return hashlib.sha256(code.encode()).hexdigest()


def _small_problem(config: Config, low: list[float], high: list[float]) -> float:
    """The largest difference; inf where the two agents' shapes or counts differ, NaN where a value is NaN."""
    plain, fast = (DDPG(3, 2, low, high, config, rng=np.random.default_rng(0)) for _ in range(2))
    fast.set_state_dict(plain.state_dict())
    FastEngine(fast)
    data = np.random.default_rng(1)
    for rows in (4, 4, 5, 4):
        batch = Batch(*(np.asarray(v, np.float32) for v in (
            data.standard_normal((rows, 3)), data.uniform(low, high, (rows, 2)), data.standard_normal((rows, 1)),
            3 * data.standard_normal((rows, 3)), data.random((rows, 1)) < 0.3)))
        plain.learn(batch)
        fast.learn(batch)
    state = data.standard_normal(3).astype(np.float32)
    ours, theirs = ([agent.act(state)] + [v for name, part in agent.state_dict().items()
                                          if name in (*agent.networks(), "actor_optim", "critic_optim")
                                          for v in part.values()] for agent in (fast, plain))
    if [np.shape(a) for a in ours] != [np.shape(b) for b in theirs]:
        return np.inf
    return float(np.max([np.abs(a - b).max() for a, b in zip(ours, theirs)]))
