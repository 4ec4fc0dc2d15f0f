"""Exploration noise for a deterministic policy, and the tutorial's epsilon schedule that scales it.

Noise is drawn in units of each action dimension's half-range, as the tutorial drew N(0, 0.2) on the
tanh output before multiplying by 2; the agent scales it to the env's bounds.
"""

from __future__ import annotations

import numpy as np


class GaussianNoise:
    """Uncorrelated zero-mean Gaussian noise: the tutorial's choice, which the textbook notes works as well
    as the DDPG paper's OU noise and is simpler."""

    def __init__(self, action_dim: int, std: float, rng: np.random.Generator) -> None:
        self.action_dim = action_dim
        self.std = std
        self.rng = rng

    def __call__(self) -> np.ndarray:
        return self.std * self.rng.standard_normal(self.action_dim)

    def reset(self) -> None:
        """Nothing carries over between steps, so nothing to reset at an episode's end."""

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def set_state_dict(self, saved: dict[str, np.ndarray]) -> None:
        pass


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise, dx = theta * (0 - x) dt + sigma * sqrt(dt) dW, as in Lillicrap et al. (2016).

    Correlated pushes keep a pendulum-like system moving one way long enough to learn from it; the process
    restarts from zero each episode.
    """

    def __init__(self, action_dim: int, std: float, rng: np.random.Generator, theta: float = 0.15,
                 dt: float = 1e-2) -> None:
        self.std = std
        self.theta = theta
        self.dt = dt
        self.rng = rng
        self.x = np.zeros(action_dim)

    def __call__(self) -> np.ndarray:
        self.x = (self.x - self.theta * self.x * self.dt
                  + self.std * np.sqrt(self.dt) * self.rng.standard_normal(self.x.shape))
        return self.x

    def reset(self) -> None:
        self.x = np.zeros_like(self.x)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"x": self.x.copy()}

    def set_state_dict(self, saved: dict[str, np.ndarray]) -> None:
        x = np.array(saved["x"], dtype=float)
        if x.shape != self.x.shape:
            raise ValueError(f"saved noise state has shape {x.shape}, this process {self.x.shape}")
        self.x = x


def make_noise(kind: str, action_dim: int, std: float, rng: np.random.Generator,
               theta: float = 0.15) -> GaussianNoise | OrnsteinUhlenbeckNoise:
    if kind == "ou":
        return OrnsteinUhlenbeckNoise(action_dim, std, rng, theta=theta)
    return GaussianNoise(action_dim, std, rng)


def decay_epsilon(epsilon: float, explore: int, floor: float = 0.0) -> float:
    """One step of the tutorial's schedule, `epsilon -= 1 / explore`, held at `floor` (the tutorial's
    `if epsilon > 0` let it dip just below zero)."""
    return max(floor, epsilon - 1.0 / explore)
