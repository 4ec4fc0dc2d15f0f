"""paddle_ddpg: the AI Studio DDPG tutorial as a PaddlePaddle package. Each name below is imported from its module
when first used, so importing the package loads no Paddle and changes nothing in the process."""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "DDPG": "agent", "soft_update": "agent", "td_target": "agent",
    "PRESETS": "config", "Config": "config", "UsageError": "config",
    "Batch": "memory", "Memory": "memory",
    "Actor": "networks", "Critic": "networks",
    "GaussianNoise": "noise", "OrnsteinUhlenbeckNoise": "noise", "decay_epsilon": "noise",
    "Policy": "policy", "load_policy": "policy",
}
__all__ = sorted(_HOMES)
__version__ = "0.4.2"


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'paddle_ddpg' has no attribute {name!r}")
    return getattr(importlib.import_module(f"paddle_ddpg.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
