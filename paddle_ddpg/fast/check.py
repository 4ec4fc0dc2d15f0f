"""Whether the fast engine may train an agent: what this Paddle offers, and what the agent's code is.

The engine computes the stock `DDPG` with its stock `Actor` and `Critic`, written out in kernels. It can
only be trusted where both hold: each private name it calls still does, on this Paddle, what the engine takes
it to do (`paddle_differs`), and the agent's code is the code the engine computes (`code_differs`), because
an override it replaces would be skipped without a word. Each answer is one line saying what differs.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
import paddle
from paddle import _C_ops
from paddle.base import framework

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.fast.engine import MergedAdam, fill, install, share_flat
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import Actor, Critic

KERNELS = ("add", "addmm", "clip", "concat", "hardtanh_grad", "matmul", "matmul_grad", "maximum", "mean",
           "merged_adam_", "minimum", "multiply", "relu", "scale", "scale_", "sgd_", "square", "stanh", "stanh_grad",
           "subtract", "tanh", "tanh_grad")
TENSOR_METHODS = ("_slice", "_share_buffer_to", "get_tensor")
ADAM_INTERNALS = ("_create_accumulators", "_accumulators", "_parameter_list", "_beta1", "_beta2", "_epsilon",
                  "_learning_rate", "regularization", "_grad_clip")
TOLERANCE = 1e-5
STOCK = "paddle_ddpg's DDPG as agent.py and networks.py now write it"
# The agent's methods the engine takes over or relies on: a subclass's own version would not be run.
TAKEN_OVER = {**dict.fromkeys(("update", "act", "target_q", "critic_step", "actor_step"),
                             "which the fast engine replaces"),
              **dict.fromkeys(("learn", "draw_target_noise"), "which feeds the update the fast engine replaces"),
              **dict.fromkeys(("target_pairs", "critics", "critic_parameters"), "which the fast engine reads")}


def code_differs(agent: DDPG) -> str | None:
    """What in `agent` is not the stock code the engine computes (its class, an override, a network, an
    optimizer), or None; whether the stock code is still what the engine computes is `stock_differs`. Reads
    optimizer internals: call it after `paddle_differs`."""
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
    """What this Paddle lacks or computes differently among the private names the engine calls, or None:
    checked once per process, by trying each, not by version number."""
    with _rng_kept():
        adam = paddle.optimizer.Adam(parameters=[paddle.create_parameter([1], "float32")])
    missing = [f"_C_ops.{name}" for name in KERNELS if not hasattr(_C_ops, name)]
    missing += [f"Tensor.{name}" for name in TENSOR_METHODS if not hasattr(paddle.Tensor, name)]
    missing += [f"Adam.{name}" for name in ADAM_INTERNALS if not hasattr(adam, name)]
    if missing:
        return f"Paddle {paddle.__version__} lacks {', '.join(missing)}"
    try:
        with _rng_kept():
            wrong = [name for name, error in _private_names_tried().items() if not error <= TOLERANCE]
    except Exception as exc:  # whatever a changed private API raises
        return f"{_summary(exc)} on Paddle {paddle.__version__}"
    if wrong:
        return f"on Paddle {paddle.__version__}, {', '.join(wrong)} no longer computes what the fast engine takes it to"
    return None


def _private_names_tried() -> dict[str, float]:
    """The largest difference from numpy of each private kernel called as the engine calls it, on small
    inputs; and of the flat buffer's views, the input copy and the merged Adam from what they stand for."""
    rng = np.random.default_rng(0)
    x, y, g = (rng.standard_normal((4, 3)).astype(np.float32) for _ in range(3))
    w, b, d = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(2).astype(np.float32), g[:, :2]
    relu, tanh = np.maximum(x, 0), np.tanh(x)
    k, t = _C_ops, paddle.to_tensor
    scaled, stepped = t(x), t(x)
    k.scale_(scaled, 0.5, 0.0, True)
    k.sgd_(stepped, t(np.full((1, 1), -0.5, np.float32)), t(y), None, False)
    tried = {"add": (k.add(t(x), t(y)), x + y), "subtract": (k.subtract(t(x), t(y)), x - y),
             "multiply": (k.multiply(t(x), t(y)), x * y), "maximum": (k.maximum(t(x), t(y)), np.maximum(x, y)),
             "minimum": (k.minimum(t(x), t(y)), np.minimum(x, y)), "relu": (k.relu(t(x)), relu),
             "tanh": (k.tanh(t(x)), tanh), "square": (k.square(t(x)), x * x),
             "mean": (k.mean(t(x), [], False), x.mean()), "scale": (k.scale(t(x), 2.0, 1.0, True), 2 * x + 1),
             "clip": (k.clip(t(x), -0.5, 0.5), x.clip(-0.5, 0.5)),
             "concat": (k.concat([t(x), t(y)], 0), np.concatenate([x, y])),
             "addmm": (k.addmm(t(b), t(x), t(w), 1.0, 1.0), b + x @ w),
             "matmul": ([k.matmul(t(x), t(y), True, False), k.matmul(t(x), t(y), False, True)], [x.T @ y, x @ y.T]),
             "matmul_grad": (k.matmul_grad(t(x), t(w), t(d), False, False), [d @ w.T, x.T @ d]),
             "hardtanh_grad": (k.hardtanh_grad(t(relu), t(y), 0.0, float(np.finfo(np.float32).max)),
                               np.where(relu > 0, y, 0)),
             "tanh_grad": (k.tanh_grad(t(tanh), t(y)), y * (1 - tanh ** 2)),
             "stanh": (k.stanh(t(x), 1.0, 2.0), 2 * tanh),
             "stanh_grad": (k.stanh_grad(t(x), t(y), 1.0, 2.0), 2 * y * (1 - tanh ** 2)),
             "scale_": (scaled, 0.5 * x), "sgd_": (stepped, x + 0.5 * y)}
    errors = {f"_C_ops.{name}": _largest_difference(ours, expected) for name, (ours, expected) in tried.items()}
    params = [paddle.create_parameter([4, 3], "float32"), paddle.create_parameter([2], "float32")]
    before = [p.numpy() for p in params]
    k.scale_(share_flat(params), 2.0, 0.0, True)  # through the views, into every parameter
    errors["Tensor._slice and _share_buffer_to"] = _largest_difference(params, [2 * v for v in before])
    errors["Tensor.get_tensor().set"] = _largest_difference(
        fill(paddle.zeros([1]), x, framework._current_expected_place()), x)
    errors["_C_ops.merged_adam_ on Adam's own accumulators"] = _merged_adam_difference(x, [y, g])
    return errors


def _largest_difference(ours: paddle.Tensor | list[paddle.Tensor], expected: np.ndarray | list[np.ndarray]) -> float:
    if not isinstance(ours, (list, tuple)):
        ours, expected = [ours], [expected]
    if len(ours) != len(expected) or any(tuple(a.shape) != np.shape(e) for a, e in zip(ours, expected)):
        return float("inf")
    return max(float(np.abs(a.numpy() - e).max()) for a, e in zip(ours, expected))


def _merged_adam_difference(start: np.ndarray, grads: list[np.ndarray]) -> float:
    """`MergedAdam` against `paddle.optimizer.Adam.step` from the same start: the parameters, and the moments
    in each optimizer's own state, which `DDPG.state_dict` saves."""
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
    return _largest_difference([params[0], *ours], [params[1].numpy(), *(v.numpy() for v in theirs)])


@functools.cache
def stock_differs() -> str | None:
    """Whether the engine computes what `DDPG` in agent.py computes, checked once per process on a small
    problem: after `paddle_differs` has found every private name as the engine takes it, a difference here
    is the agent's code (agent.py or networks.py edited), not Paddle."""
    try:
        with _rng_kept():
            error = _difference_on_a_small_problem()
    except Exception as exc:  # an edited DDPG or network that the engine cannot read
        return f"{STOCK} is not the code the fast engine computes: {_summary(exc)}"
    if not error <= TOLERANCE:
        return f"{STOCK} is not the code the fast engine computes: its update lands {error:.3g} away on a small problem"
    return None


def _difference_on_a_small_problem() -> float:
    """The largest parameter and action difference between a plain and an accelerated agent after a few
    updates of every kind from the same weights: DDPG with bounds alike and centred (one stanh kernel), TD3
    with per-dimension bounds and the tanh penalty."""
    worst = 0.0
    for config, low, high in ((Config(actor_hidden=(8,), critic_hidden=(8, 8), lr_actor=1e-2, lr_critic=1e-2),
                               [-2.0, -2.0], [2.0, 2.0]),
                              (Config(algo="td3", actor_hidden=(8, 8), critic_hidden=(8,), critic_action_layer=0,
                                      tanh_penalty=1.0, lr_actor=1e-2, lr_critic=1e-2), [-1.0, 0.0], [1.0, 3.0])):
        plain, fast = (DDPG(3, 2, low, high, config, rng=np.random.default_rng(0)) for _ in range(2))
        fast.set_state_dict(plain.state_dict())
        install(fast)
        data = np.random.default_rng(1)
        for rows in (4, 4, 5, 4):
            fields = (data.standard_normal((rows, 3)), data.uniform(low, high, (rows, 2)),
                      data.standard_normal((rows, 1)), 3 * data.standard_normal((rows, 3)),
                      data.random((rows, 1)) < 0.3)
            batch = Batch(*(np.asarray(x, np.float32) for x in fields))
            plain.learn(batch)
            fast.learn(batch)
        state = data.standard_normal(3).astype(np.float32)
        worst = max([worst, float(np.abs(plain.act(state) - fast.act(state)).max())]
                    + [float(np.abs(a.numpy() - b.numpy()).max())
                       for name, net in plain.networks().items()
                       for a, b in zip(net.parameters(), fast.networks()[name].parameters())])
    return worst


@contextlib.contextmanager
def _rng_kept() -> Iterator[None]:
    """The checks make layers and parameters, which draw from Paddle's generator: a run seeded before
    `accelerate` must draw the same numbers after it, whether or not this process checked already."""
    state = paddle.get_rng_state()
    try:
        yield
    finally:
        paddle.set_rng_state(state)


def _summary(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
