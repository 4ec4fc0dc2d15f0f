"""Environment creation: the spaces DDPG can drive, helpful refusals, and per-episode reset seeds."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from paddle_ddpg.config import UsageError
from paddle_ddpg.env import EVAL_STREAM, TRAIN_STREAM, check_spaces, episode_seed, make_env


def test_pendulum_is_accepted_with_its_bounds() -> None:
    env = make_env("Pendulum-v1")
    try:
        assert env.observation_space.shape == (3,)
        np.testing.assert_array_equal(env.action_space.low, [-2.0])
        np.testing.assert_array_equal(env.action_space.high, [2.0])
    finally:
        env.close()


@pytest.mark.parametrize("limit, expected", [(7, 7), (0, 200)])
def test_max_episode_steps_sets_the_time_limit(limit: int, expected: int) -> None:
    """--max-episode-steps N truncates after N steps; 0 keeps Pendulum's own 200 (the tutorial's range(200))."""
    env = make_env("Pendulum-v1", limit)
    try:
        env.reset(seed=0)
        for step in range(1, 1000):
            _, _, terminated, truncated, _ = env.step(np.zeros(1, np.float32))
            assert not terminated
            if truncated:
                break
        assert step == expected
    finally:
        env.close()


def test_unknown_id_suggests_a_close_match() -> None:
    """The tutorial's Pendulum-v0 no longer exists; the error points to Pendulum-v1."""
    with pytest.raises(UsageError, match="unknown environment 'Pendulum-v0'.*Pendulum-v1"):
        make_env("Pendulum-v0")


def test_unknown_id_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(UsageError) as info:
        make_env("Zzqxw-v9")
    assert "did you mean" not in str(info.value)


def test_discrete_action_space_is_refused() -> None:
    """CartPole's two discrete actions cannot come out of a tanh actor."""
    with pytest.raises(UsageError, match="Discrete action space"):
        make_env("CartPole-v1")


def _box(low: float, high: float, shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(low=low, high=high, shape=shape, dtype=np.float32)


def test_check_spaces_accepts_flat_bounded_boxes() -> None:
    check_spaces("ok", _box(-np.inf, np.inf, (5,)), _box(-1, 1, (2,)))


@pytest.mark.parametrize("obs, act, message", [
    (_box(-1, 1, (3,)), _box(-np.inf, np.inf, (2,)), "unbounded actions"),
    (_box(-1, 1, (3,)), _box(-1, 1, (2, 2)), "actions of shape"),
    (_box(-1, 1, (4, 4)), _box(-1, 1, (2,)), "flat Box is needed"),
    (gym.spaces.Discrete(4), _box(-1, 1, (2,)), "Discrete observations"),
    (_box(-1, 1, (3,)), gym.spaces.MultiBinary(2), "MultiBinary action space"),
])
def test_check_spaces_refuses_what_ddpg_cannot_drive(obs: gym.Space, act: gym.Space, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        check_spaces("X-v0", obs, act)


def test_episode_seed_is_deterministic_and_distinct() -> None:
    """Reset seeds depend only on (seed, stream, index): a resumed run resets as an uninterrupted one,
    and training and evaluation never share starting states."""
    assert episode_seed(0, TRAIN_STREAM, 5) == episode_seed(0, TRAIN_STREAM, 5)
    seeds = {episode_seed(s, stream, i) for s in range(3) for stream in (TRAIN_STREAM, EVAL_STREAM)
             for i in range(50)}
    assert len(seeds) == 3 * 2 * 50
    assert episode_seed(0, TRAIN_STREAM, 0) != episode_seed(0, EVAL_STREAM, 0)
    assert episode_seed(0, TRAIN_STREAM, 0) != episode_seed(1, TRAIN_STREAM, 0)
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds)


def test_episode_seed_gives_reproducible_resets() -> None:
    """The same episode seed gives the same first observation; the next episode a different one."""
    env = make_env("Pendulum-v1")
    try:
        a, _ = env.reset(seed=episode_seed(0, TRAIN_STREAM, 3))
        b, _ = env.reset(seed=episode_seed(0, TRAIN_STREAM, 4))
        c, _ = env.reset(seed=episode_seed(0, TRAIN_STREAM, 3))
    finally:
        env.close()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
