"""Whether the fast engine may train an agent. It computes the stock `DDPG`, `Actor` and `Critic` in private
kernels, so it is trusted only where this Paddle's private names do what it takes them to (`paddle_differs`,
each tried against numpy) and the agent is that code (`code_differs`: an override would be skipped without a
word); `stock_differs` then compares it with agent.py on a small problem, where a difference is the code's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import paddle
from paddle import _C_ops
from paddle.base import framework

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.fast.engine import MergedAdam, fill, install, share_flat
from paddle_ddpg.fast.layers import relu_grad
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import Actor, Critic

PRIVATE = {"_C_ops": ("add", "addmm", "clip", "concat", "hardtanh_grad", "matmul", "matmul_grad", "maximum", "mean",
                      "merged_adam_", "minimum", "multiply", "relu", "scale", "scale_", "sgd_", "square", "stanh",
                      "stanh_grad", "subtract", "tanh", "tanh_grad"),
           "Tensor": ("_slice", "_share_buffer_to", "get_tensor"),
           "Adam": ("_create_accumulators", "_accumulators", "_parameter_list", "_beta1", "_beta2", "_epsilon",
                    "_learning_rate", "regularization", "_grad_clip")}
TOLERANCE = 1e-5
STOCK = "paddle_ddpg's DDPG as agent.py and networks.py now write it is not the code the fast engine computes"
TAKEN_OVER = {**dict.fromkeys(("update", "act", "target_q", "critic_step", "actor_step"),
                             "which the fast engine replaces"),
              **dict.fromkeys(("learn", "draw_target_noise"), "which feeds the update the fast engine replaces"),
              **dict.fromkeys(("target_pairs", "critics", "critic_parameters"), "which the fast engine reads")}
# DDPG with bounds alike and centred (one stanh kernel); TD3 with per-dimension bounds and the tanh penalty.
SMALL = ((Config(actor_hidden=(8,), critic_hidden=(8, 8), lr_actor=1e-2, lr_critic=1e-2), [-2.0] * 2, [2.0] * 2),
         (Config(algo="td3", actor_hidden=(8, 8), critic_hidden=(8,), critic_action_layer=0, tanh_penalty=1.0,
                 lr_actor=1e-2, lr_critic=1e-2), [-1.0, 0.0], [1.0, 3.0]))


def code_differs(agent: DDPG) -> str | None:
    """What in `agent` is not the stock code the engine computes: its class, an override, a network, an
    optimizer. Reads optimizer internals: call it after `paddle_differs`."""
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
def paddle_differs() -> str | None:
    """What this Paddle lacks or computes differently among the private names the engine calls, found once per
    process by trying each, not by version number."""
    owners = {"_C_ops": _C_ops, "Tensor": paddle.Tensor,
              "Adam": paddle.optimizer.Adam(parameters=[paddle.create_parameter([1], "float32")])}
    missing = [f"{owner}.{name}" for owner, names in PRIVATE.items() for name in names
               if not hasattr(owners[owner], name)]
    if missing:
        return f"Paddle {paddle.__version__} lacks {', '.join(missing)}"
    try:
        wrong = [name for name, error in _private_names_tried().items() if not error <= TOLERANCE]
    except Exception as exc:  # whatever a changed private API raises
        return f"{_summary(exc)} on Paddle {paddle.__version__}"
    return f"on Paddle {paddle.__version__}, {', '.join(wrong)} no longer computes what the fast engine takes it to" \
        if wrong else None


def _private_names_tried() -> dict[str, float]:
    """How far each private name, called as the engine calls it on small inputs, lands from what it stands for."""
    rng = np.random.default_rng(0)
    x, y, g = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3))
    w, b, d = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(2).astype(np.float32), g[:, :2]
    relu, tanh, k, t = np.maximum(x, 0), np.tanh(x), _C_ops, paddle.to_tensor
    scaled, stepped, params = t(x), t(x), [paddle.create_parameter(shape, "float32") for shape in ([4, 3], [2])]
    before = [2 * p.numpy() for p in params]
    k.scale_(scaled, 0.5, 0.0, True)
    k.sgd_(stepped, t(np.full((1, 1), -0.5, np.float32)), t(y), None, False)
    k.scale_(share_flat(params), 2.0, 0.0, True)  # through the views, into every parameter
    tried = {name: (getattr(k, name)(t(x), t(y)), getattr(np, name)(x, y))
             for name in ("add", "subtract", "multiply", "maximum", "minimum")}
    tried.update({"relu": (k.relu(t(x)), relu), "tanh": (k.tanh(t(x)), tanh), "square": (k.square(t(x)), x * x),
                  "mean": (k.mean(t(x), [], False), x.mean()), "scale": (k.scale(t(x), 2.0, 1.0, True), 2 * x + 1),
                  "clip": (k.clip(t(x), -0.5, 0.5), x.clip(-0.5, 0.5)),
                  "concat": (k.concat([t(x), t(y)], 0), np.concatenate([x, y])),
                  "addmm": (k.addmm(t(b), t(x), t(w), 1.0, 1.0), b + x @ w),
                  "matmul": ([k.matmul(t(x), t(y), True, False), k.matmul(t(x), t(y), False, True)],
                             [x.T @ y, x @ y.T]),
                  "matmul_grad": (k.matmul_grad(t(x), t(w), t(d), False, False), [d @ w.T, x.T @ d]),
                  "hardtanh_grad": (relu_grad(t(relu), t(y)), np.where(relu > 0, y, 0)),
                  "tanh_grad": (k.tanh_grad(t(tanh), t(y)), y * (1 - tanh ** 2)),
                  "stanh": (k.stanh(t(x), 1.0, 2.0), 2 * tanh),
                  "stanh_grad": (k.stanh_grad(t(x), t(y), 1.0, 2.0), 2 * y * (1 - tanh ** 2)),
                  "scale_": (scaled, 0.5 * x), "sgd_": (stepped, x + 0.5 * y),
                  "merged_adam_ on Adam's own accumulators": _merged_adam_tried(x, [y, g])})
    tried = {f"_C_ops.{name}": pair for name, pair in tried.items()}
    tried["Tensor._slice and _share_buffer_to"] = params, before
    tried["Tensor.get_tensor().set"] = fill(paddle.zeros([1]), x, framework._current_expected_place()), x
    return {name: _largest_difference(ours, expected) for name, (ours, expected) in tried.items()}


def _merged_adam_tried(start: np.ndarray, grads: list[np.ndarray]) -> tuple[list, list]:
    """`MergedAdam` and `paddle.optimizer.Adam.step` from the same start: the parameters, and the moments in each
    optimizer's own state, which `DDPG.state_dict` saves."""
    params = [paddle.create_parameter(list(start.shape), "float32",
                                      default_initializer=paddle.nn.initializer.Assign(start)) for _ in range(2)]
    adams = [paddle.optimizer.Adam(parameters=[p], learning_rate=0.1) for p in params]
    merged = MergedAdam(adams[0], params[:1])
    merged.bind()
    for grad in grads:
        merged.step([paddle.to_tensor(grad)])
        (params[1] * paddle.to_tensor(grad)).sum().backward()
        adams[1].step()
        adams[1].clear_grad()
    ours, theirs = (list(adam.state_dict().values()) for adam in adams)
    return [params[0], *ours], [params[1], *theirs]


def _largest_difference(ours: Sequence | paddle.Tensor, expected: Sequence | np.ndarray) -> float:
    """Of tensors or arrays: inf where their shapes or counts differ, NaN where a value is NaN."""
    if not isinstance(ours, (list, tuple)):
        ours, expected = [ours], [expected]
    ours, expected = [np.asarray(a) for a in ours], [np.asarray(e) for e in expected]
    if [a.shape for a in ours] != [e.shape for e in expected]:
        return float("inf")
    return float(np.max([np.abs(a - e).max() for a, e in zip(ours, expected)]))


@functools.cache
def stock_differs() -> str | None:
    """Whether the engine computes what agent.py's `DDPG` does, found once per process: a plain and an accelerated
    agent from the same weights after updates of every kind on a small problem, their parameters and actions."""
    try:
        worst = float(np.max([_small_problem(*case) for case in SMALL]))
    except Exception as exc:  # an edited DDPG or network that the engine cannot read
        return f"{STOCK}: {_summary(exc)}"
    return None if worst <= TOLERANCE else f"{STOCK}: its update lands {worst:.3g} away on a small problem"


def _small_problem(config: Config, low: list[float], high: list[float]) -> float:
    plain, fast = (DDPG(3, 2, low, high, config, rng=np.random.default_rng(0)) for _ in range(2))
    fast.set_state_dict(plain.state_dict())
    install(fast)
    data = np.random.default_rng(1)
    for rows in (4, 4, 5, 4):
        batch = Batch(*(np.asarray(v, np.float32) for v in (
            data.standard_normal((rows, 3)), data.uniform(low, high, (rows, 2)), data.standard_normal((rows, 1)),
            3 * data.standard_normal((rows, 3)), data.random((rows, 1)) < 0.3)))
        plain.learn(batch)
        fast.learn(batch)
    state = data.standard_normal(3).astype(np.float32)
    ours, theirs = ([agent.act(state)] + [p for net in agent.networks().values() for p in net.parameters()]
                    for agent in (fast, plain))
    return _largest_difference(ours, theirs)


def _summary(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
