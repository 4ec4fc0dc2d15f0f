"""The fast engine, and the only code of the package that uses Paddle's private API.

`accelerate(agent)` replaces the agent's `update` and `act` with the engine's: the same numbers as the plain
agent (tests/test_fast.py holds them equal after 100 updates), several times faster on CPU
(benchmarks/README.md). Private kernels and tensor methods can change between Paddle releases, so the
engine is only used after it has shown, on the installed Paddle, that it has what it needs and computes what
the plain agent computes on a small problem; otherwise the agent keeps its plain update.
"""

from __future__ import annotations

import functools

import numpy as np
import paddle

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.memory import Batch

KERNELS = ("add", "addmm", "clip", "concat", "hardtanh_grad", "matmul", "matmul_grad", "maximum", "mean",
           "merged_adam_", "minimum", "multiply", "relu", "scale", "scale_", "sgd_", "square", "stanh", "stanh_grad",
           "subtract", "tanh", "tanh_grad")
TENSOR_METHODS = ("_slice", "_share_buffer_to", "get_tensor")
TOLERANCE = 1e-5


def accelerate(agent: DDPG) -> str | None:
    """Give `agent` the fast engine's `update` and `act`; returns None, or why this Paddle cannot run it."""
    reason = unavailable()
    if reason is None:
        _install(agent)
    return reason


def _install(agent: DDPG) -> None:
    from paddle_ddpg.fast.engine import FastEngine  # imported here: on a Paddle without its names it fails

    engine = FastEngine(agent)
    agent.update, agent.act = engine.update, engine.act


@functools.cache
def unavailable() -> str | None:
    """Why the fast engine cannot run here, or None: checked once per process, by what Paddle offers and by
    what the engine computes, not by version number."""
    missing = [f"_C_ops.{name}" for name in KERNELS if not hasattr(paddle._C_ops, name)]
    missing += [f"Tensor.{name}" for name in TENSOR_METHODS if not hasattr(paddle.Tensor, name)]
    missing += [f"Adam.{name}" for name in ("_create_accumulators", "_beta1", "_beta2", "_epsilon")
                if not hasattr(paddle.optimizer.Adam(parameters=[paddle.create_parameter([1], "float32")]), name)]
    if missing:
        return f"Paddle {paddle.__version__} lacks {', '.join(missing)}"
    try:
        error = _difference_on_a_small_problem()
    except Exception as exc:  # whatever a changed private API raises
        summary = str(exc).strip().splitlines()
        return f"{type(exc).__name__} on Paddle {paddle.__version__}: {summary[-1] if summary else ''}".strip()
    if not error <= TOLERANCE:
        return f"its update differs from the plain agent's by {error:.3g} on Paddle {paddle.__version__}"
    return None


def _difference_on_a_small_problem() -> float:
    """The largest parameter and action difference between a plain and an accelerated agent after a few
    updates of every kind from the same weights: DDPG with bounds alike and centred (one stanh kernel), TD3
    with per-dimension bounds and the tanh penalty. Paddle's random state is left as it was."""
    rng_state = paddle.get_rng_state()
    try:
        worst = 0.0
        for config, low, high in ((Config(actor_hidden=(8,), critic_hidden=(8, 8), lr_actor=1e-2, lr_critic=1e-2),
                                   [-2.0, -2.0], [2.0, 2.0]),
                                  (Config(algo="td3", actor_hidden=(8, 8), critic_hidden=(8,), critic_action_layer=0,
                                          tanh_penalty=1.0, lr_actor=1e-2, lr_critic=1e-2), [-1.0, 0.0], [1.0, 3.0])):
            plain, fast = (DDPG(3, 2, low, high, config, rng=np.random.default_rng(0)) for _ in range(2))
            fast.set_state_dict(plain.state_dict())
            _install(fast)
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
    finally:
        paddle.set_rng_state(rng_state)


def set_cpu_threads(threads: int) -> None:
    """Paddle runs its CPU kernels on one thread unless told otherwise, and only a private call tells it."""
    setter = getattr(getattr(paddle.base, "core", None), "set_num_threads", None)
    if setter is not None:
        setter(threads)
