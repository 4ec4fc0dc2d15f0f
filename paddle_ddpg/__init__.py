"""paddle_ddpg: the AI Studio DDPG tutorial as a PaddlePaddle package."""

import os
import sys
import warnings


def _use_mkl_avx2_on_amd() -> None:
    """Paddle's CPU matrix products run on Intel MKL, which takes a slow generic path on AMD processors.

    MKL_DEBUG_CPU_TYPE=5 selects its AVX2 kernels: a 256x400 @ 400x300 product went from 1.67-1.81 ms to
    0.64-0.66 ms on an AMD EPYC (two measurements). It must be set before Paddle loads MKL, so it only
    applies when paddle_ddpg is imported before paddle, and never overrides a value the user set.
    """
    if "MKL_DEBUG_CPU_TYPE" in os.environ or "paddle" in sys.modules:
        return
    try:
        with open("/proc/cpuinfo") as f:
            amd = "AuthenticAMD" in f.read(4096)
    except OSError:
        return
    if amd:
        os.environ["MKL_DEBUG_CPU_TYPE"] = "5"


_use_mkl_avx2_on_amd()
# Paddle's C++ side logs informational lines (e.g. when running an exported program) on stderr.
os.environ.setdefault("GLOG_minloglevel", "1")
# Paddle warns about a C++ extension cache on every import; nothing here builds extensions, and the noise
# would bury the one-line errors the CLIs promise.
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)

from paddle_ddpg.agent import DDPG, soft_update, td_target  # noqa: E402
from paddle_ddpg.config import PRESETS, Config, UsageError  # noqa: E402
from paddle_ddpg.memory import Batch, Memory  # noqa: E402
from paddle_ddpg.networks import Actor, Critic  # noqa: E402
from paddle_ddpg.noise import GaussianNoise, OrnsteinUhlenbeckNoise, decay_epsilon  # noqa: E402

__all__ = ["Actor", "Batch", "Config", "Critic", "DDPG", "GaussianNoise", "Memory", "OrnsteinUhlenbeckNoise",
           "PRESETS", "UsageError", "decay_epsilon", "soft_update", "td_target"]
__version__ = "0.1.0"
