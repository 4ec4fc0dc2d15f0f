"""paddle_ddpg: the AI Studio DDPG tutorial as a PaddlePaddle package."""

import os
import warnings

from paddle_ddpg.device import use_mkl_avx2_on_amd

use_mkl_avx2_on_amd()
# Paddle's C++ side logs informational lines and warnings on stderr (running an exported program, tracing one
# for export), which would bury the one-line errors the CLIs promise; its errors still show.
os.environ.setdefault("GLOG_minloglevel", "2")
# Paddle warns about a C++ extension cache on every import; nothing here builds extensions, and the noise
# would bury the one-line errors the CLIs promise.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

from paddle_ddpg.agent import DDPG, soft_update, td_target  # noqa: E402
from paddle_ddpg.config import PRESETS, Config, UsageError  # noqa: E402
from paddle_ddpg.memory import Batch, Memory  # noqa: E402
from paddle_ddpg.networks import Actor, Critic  # noqa: E402
from paddle_ddpg.noise import GaussianNoise, OrnsteinUhlenbeckNoise, decay_epsilon  # noqa: E402
from paddle_ddpg.policy import Policy, load_policy  # noqa: E402

__all__ = ["Actor", "Batch", "Config", "Critic", "DDPG", "GaussianNoise", "Memory", "OrnsteinUhlenbeckNoise",
           "PRESETS", "Policy", "UsageError", "decay_epsilon", "load_policy", "soft_update", "td_target"]
__version__ = "0.2.0"
