"""The fast engine, the only code of the package that uses Paddle's private API: `accelerate(agent)` gives the
agent the engine's `update` and `act`, the plain agent's numbers several times faster on CPU (tests/test_fast.py,
benchmarks/README.md), once `check` has found the agent to be the code the engine computes and this Paddle to
offer what it calls; otherwise the agent keeps its plain update.
"""

from __future__ import annotations

import paddle

from paddle_ddpg.agent import DDPG

try:  # Paddle's private modules, which a release may move; then every agent keeps its plain update
    from paddle_ddpg.fast import check, engine
except ImportError as exc:
    _MISSING: str | None = f"Paddle {paddle.__version__} lacks what the fast engine imports ({exc})"
else:
    _MISSING = None


def accelerate(agent: DDPG) -> str | None:
    """Give `agent` the fast engine's `update` and `act`; returns None, or in one line what differs: the agent's
    code from the code the engine computes, or this Paddle from what it calls. The checks make parameters, which
    draw from Paddle's generator: its state is restored, so a seeded run draws alike whether it checked or not."""
    rng_state = paddle.get_rng_state()
    try:
        reason = _MISSING or check.paddle_differs() or check.code_differs(agent) or check.stock_differs()
    finally:
        paddle.set_rng_state(rng_state)
    if reason is None:
        engine.install(agent)
    return reason


def set_cpu_threads(threads: int) -> None:
    """Paddle runs its CPU kernels on one thread unless told otherwise, and only a private call tells it."""
    if (setter := getattr(getattr(paddle.base, "core", None), "set_num_threads", None)) is not None:
        setter(threads)
