"""The fast engine, the only code of the package using Paddle's private API: `accelerate(agent)` gives the agent
the engine's `update` and `act` (the plain agent's numbers, faster on CPU: benchmarks/README.md) once `check` has
found the agent to be the code the engine computes and this Paddle to offer what it calls.
"""

from __future__ import annotations

import paddle

from paddle_ddpg.agent import DDPG

try:  # Paddle's private modules, which a release may move; then every agent keeps its plain update
    from paddle_ddpg.fast import check, engine
    _MISSING: str | None = None
except ImportError as exc:
    _MISSING = f"Paddle {paddle.__version__} lacks what the fast engine imports ({exc})"


def accelerate(agent: DDPG) -> str | None:
    """Give `agent` the fast engine's `update` and `act`; or keep its plain update and return, in one line, what
    differs. Paddle's random state, which the checks draw from, is restored: a seeded run draws alike either way."""
    rng_state = paddle.get_rng_state()
    try:
        reason = _MISSING or check.stock_differs() or check.code_differs(agent)
    finally:
        paddle.set_rng_state(rng_state)
    if reason is None:
        engine.FastEngine(agent)
    return reason


def set_cpu_threads(threads: int) -> None:
    """Paddle runs its CPU kernels on one thread unless told otherwise, and only a private call tells it."""
    if (setter := getattr(getattr(paddle.base, "core", None), "set_num_threads", None)) is not None:
        setter(threads)
