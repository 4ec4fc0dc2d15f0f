"""paddle_ddpg: the AI Studio DDPG tutorial as a PaddlePaddle package."""

import warnings

# Paddle warns about a C++ extension cache on every import; nothing here builds extensions, and the noise
# would bury the one-line errors the CLIs promise.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

from paddle_ddpg.agent import DDPG, soft_update, td_target  # noqa: E402
from paddle_ddpg.config import PRESETS, Config, UsageError  # noqa: E402
from paddle_ddpg.memory import Batch, Memory  # noqa: E402
from paddle_ddpg.networks import Actor, Critic  # noqa: E402
from paddle_ddpg.noise import GaussianNoise, OrnsteinUhlenbeckNoise, decay_epsilon  # noqa: E402

__all__ = ["Actor", "Batch", "Config", "Critic", "DDPG", "GaussianNoise", "Memory", "OrnsteinUhlenbeckNoise",
           "PRESETS", "UsageError", "decay_epsilon", "evaluate", "load_actor", "soft_update", "td_target", "train"]
__version__ = "0.1.0"

_ENTRY_POINTS = {"train": "paddle_ddpg.train", "evaluate": "paddle_ddpg.evaluate", "load_actor": "paddle_ddpg.evaluate"}


def __getattr__(name: str) -> object:
    """Import the two CLI modules on first use, so `python -m paddle_ddpg.train` runs its module only once."""
    if name in _ENTRY_POINTS:
        import importlib
        return getattr(importlib.import_module(_ENTRY_POINTS[name]), name)
    raise AttributeError(f"module 'paddle_ddpg' has no attribute {name!r}")
