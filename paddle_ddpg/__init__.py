"""paddle_ddpg: the AI Studio DDPG tutorial as a PaddlePaddle package."""

from paddle_ddpg.agent import DDPG, soft_update, td_target
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.evaluate import evaluate, load_actor
from paddle_ddpg.memory import Batch, Memory
from paddle_ddpg.networks import Actor, Critic
from paddle_ddpg.noise import GaussianNoise, OrnsteinUhlenbeckNoise, decay_epsilon
from paddle_ddpg.train import train

__all__ = ["Actor", "Batch", "Config", "Critic", "DDPG", "GaussianNoise", "Memory", "OrnsteinUhlenbeckNoise",
           "PRESETS", "UsageError", "decay_epsilon", "evaluate", "load_actor", "soft_update", "td_target", "train"]
__version__ = "0.1.0"
