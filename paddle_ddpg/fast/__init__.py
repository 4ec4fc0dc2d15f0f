"""The fast engine, and the only code of the package that uses Paddle's private API.

`accelerate(agent)` replaces the agent's `update` and `act` with the engine's: the same numbers as the plain
agent (tests/test_fast.py holds them equal after 100 updates), several times faster on CPU
(benchmarks/README.md). The engine computes the stock `DDPG`, `Actor` and `Critic` only, and private kernels
can change between Paddle releases, so it is used only after `check` has found the agent to be that code and
this Paddle to offer what the engine calls; otherwise the agent keeps its plain update.
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
    """Give `agent` the fast engine's `update` and `act`; returns None, or in one line what differs: the
    agent's code from the code the engine computes, or this Paddle from what the engine calls."""
    reason = _MISSING or check.paddle_differs() or check.code_differs(agent) or check.stock_differs()
    if reason is None:
        engine.install(agent)
    return reason


def set_cpu_threads(threads: int) -> None:
    """Paddle runs its CPU kernels on one thread unless told otherwise, and only a private call tells it."""
    setter = getattr(getattr(paddle.base, "core", None), "set_num_threads", None)
    if setter is not None:
        setter(threads)
