"""Making gymnasium environments (refusing the ones DDPG cannot drive with a sentence instead of a traceback),
seeding their episodes, and the noise-free evaluation of a policy."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from paddle_ddpg.config import UsageError, error_summary


def make_env(env_id: str, max_episode_steps: int = 0, render_mode: str | None = None) -> gym.Env:
    """`gym.make` refusing what DDPG cannot drive; `max_episode_steps` 0 keeps the env's own limit."""
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"unknown environment {env_id!r}{hint}")
    kwargs = {"max_episode_steps": max_episode_steps} if max_episode_steps else {}
    if render_mode == "rgb_array":  # else SDL (pygame's renderer) prints an "error:" line where no display is
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    try:
        env = gym.make(env_id, render_mode=render_mode, **kwargs)
    except (gym.error.DependencyNotInstalled, ImportError) as exc:  # registered, but its package is missing
        raise UsageError(f"environment {env_id} needs an extra package: {error_summary(exc)}") from None
    except (gym.error.Error, TypeError, ValueError) as exc:  # e.g. an id registered to wrap another, given none
        raise UsageError(f"cannot make environment {env_id}: {error_summary(exc)}") from None
    try:
        check_spaces(env_id, env.observation_space, env.action_space)
    except UsageError:
        env.close()
        raise
    return env


def check_spaces(env_id: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, gym.spaces.Box):
        raise UsageError(f"{env_id} has a {type(action_space).__name__} action space; DDPG needs continuous "
                         "(Box) actions")
    if len(action_space.shape) != 1:
        raise UsageError(f"{env_id} has actions of shape {action_space.shape}; a flat Box is needed")
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise UsageError(f"{env_id} has unbounded actions; the actor's tanh needs finite bounds")
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
        raise UsageError(f"{env_id} has {type(observation_space).__name__} observations of shape "
                         f"{observation_space.shape}; a flat Box is needed (flatten it with a wrapper first)")


TRAIN_STREAM, EVAL_STREAM = 0, 1


def episode_seed(seed: int, stream: int, index: int) -> int:
    """Reset seed of episode `index` of a stream: independent of how many episodes ran before, so a resumed
    run resets exactly as an uninterrupted one, and every evaluation sees the same starting states."""
    return int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0])


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int,
             should_stop: Callable[[], bool] = lambda: False,
             on_frame: Callable[[np.ndarray], None] | None = None, frame_every: int = 1,
             on_episode: Callable[[float], None] | None = None) -> np.ndarray:
    """Returns of `episodes` noise-free episodes, episode i from the same seeded state each time. `on_frame` gets the
    render of every `frame_every`-th state an action is taken in (T steps make T frames), `on_episode` each return."""
    returns = []
    for i in range(episodes):
        state, _ = env.reset(seed=episode_seed(seed, EVAL_STREAM, i))
        total, done, step = 0.0, False, 0
        while not done and not should_stop():
            if on_frame is not None and step % frame_every == 0:
                on_frame(env.render())
            state, reward, terminated, truncated, _ = env.step(policy(state))
            total += float(reward)
            done = terminated or truncated
            step += 1
        if not done:
            break
        returns.append(total)
        if on_episode is not None:
            on_episode(total)
    return np.asarray(returns)
