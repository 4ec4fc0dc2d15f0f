"""Exploration noise and the tutorial's epsilon schedule."""

from __future__ import annotations

import numpy as np
import pytest

from paddle_ddpg.noise import GaussianNoise, OrnsteinUhlenbeckNoise, decay_epsilon, make_noise


def test_decay_epsilon_first_step_is_one_over_explore() -> None:
    """The tutorial's `epsilon -= 1 / explore`: from 1 with explore 50000 to 1 - 2e-5."""
    assert decay_epsilon(1.0, 50000) == pytest.approx(1 - 1 / 50000, abs=1e-15)
    assert decay_epsilon(0.5, 4) == pytest.approx(0.25, abs=1e-15)


def test_decay_epsilon_reaches_zero_after_explore_steps_and_stays() -> None:
    """After `explore` steps epsilon is 0 (not the tutorial's slightly negative value), and stays there."""
    epsilon = 1.0
    values = []
    for _ in range(150):
        epsilon = decay_epsilon(epsilon, 100)
        values.append(epsilon)
    assert values[98] == pytest.approx(0.01, abs=1e-9)  # after 99 steps
    assert values[99] == 0.0  # after 100 steps: exactly 0, not -7e-16
    assert min(values) >= 0.0
    assert values[-1] == 0.0


@pytest.mark.parametrize("floor", [0.1, 0.5, 1.0])
def test_decay_epsilon_never_goes_below_the_floor(floor: float) -> None:
    """--epsilon-min holds epsilon at the floor; floor 1 keeps the noise constant (the fast preset)."""
    epsilon = 1.0
    for _ in range(200):
        epsilon = decay_epsilon(epsilon, 50, floor)
        assert epsilon >= floor
    assert epsilon == floor


def test_gaussian_noise_has_the_configured_std_and_zero_mean() -> None:
    """N(0, std) per dimension: over 20000 seeded draws the sample std is within 2% and the mean near 0."""
    noise = GaussianNoise(3, 0.2, np.random.default_rng(0))
    draws = np.array([noise() for _ in range(20000)])
    assert draws.shape == (20000, 3)
    np.testing.assert_allclose(draws.std(axis=0), 0.2, rtol=0.02)
    np.testing.assert_allclose(draws.mean(axis=0), 0.0, atol=0.01)
    # independent between steps: lag-1 autocorrelation near zero
    x = draws[:, 0] - draws[:, 0].mean()
    assert abs(np.dot(x[1:], x[:-1]) / np.dot(x, x)) < 0.05


def test_gaussian_noise_is_reproducible_from_its_generator() -> None:
    """Same seed, same noise: the basis of `--seed` giving identical runs."""
    a = GaussianNoise(2, 0.3, np.random.default_rng(7))
    b = GaussianNoise(2, 0.3, np.random.default_rng(7))
    np.testing.assert_array_equal(np.array([a() for _ in range(10)]), np.array([b() for _ in range(10)]))


def test_ou_noise_is_temporally_correlated() -> None:
    """Ornstein-Uhlenbeck noise drifts: successive values are strongly correlated (lag-1 autocorrelation
    1 - theta * dt, about 0.9985), unlike Gaussian noise."""
    noise = OrnsteinUhlenbeckNoise(1, 0.2, np.random.default_rng(0))
    x = np.array([noise()[0] for _ in range(20000)])
    x = x - x.mean()
    assert np.dot(x[1:], x[:-1]) / np.dot(x, x) > 0.95


def test_ou_noise_reset_zeroes_the_state() -> None:
    """Each episode's OU process starts from zero: after reset the state is 0 and the next value is one
    step from 0 (std * sqrt(dt) times a normal draw)."""
    rng = np.random.default_rng(1)
    noise = OrnsteinUhlenbeckNoise(2, 0.2, rng)
    for _ in range(500):
        noise()
    assert np.any(noise.x != 0)
    noise.reset()
    np.testing.assert_array_equal(noise.x, np.zeros(2))
    state = rng.bit_generator.state
    first = noise()
    replay = np.random.default_rng()
    replay.bit_generator.state = state
    np.testing.assert_allclose(first, 0.2 * np.sqrt(1e-2) * replay.standard_normal(2), rtol=1e-12)


def test_ou_noise_state_dict_round_trip() -> None:
    """A restored OU process continues exactly as the original (with the same generator state)."""
    a = OrnsteinUhlenbeckNoise(3, 0.3, np.random.default_rng(5))
    for _ in range(100):
        a()
    saved = a.state_dict()
    b = OrnsteinUhlenbeckNoise(3, 0.3, np.random.default_rng())
    b.set_state_dict(saved)
    b.rng.bit_generator.state = a.rng.bit_generator.state
    np.testing.assert_array_equal(b.x, a.x)
    np.testing.assert_array_equal(np.array([a() for _ in range(5)]), np.array([b() for _ in range(5)]))
    a.x[:] = 0  # the saved state is a copy
    assert np.any(saved["x"] != 0)


def test_gaussian_noise_state_dict_round_trip() -> None:
    """Gaussian noise keeps no state besides its generator, so a round trip changes nothing."""
    a = GaussianNoise(2, 0.2, np.random.default_rng(9))
    b = GaussianNoise(2, 0.2, np.random.default_rng(9))
    b.set_state_dict(a.state_dict())
    np.testing.assert_array_equal(a(), b())


def test_make_noise_picks_the_kind() -> None:
    """`--noise ou` gives OU noise with the configured theta; anything else the tutorial's Gaussian."""
    rng = np.random.default_rng(0)
    ou = make_noise("ou", 2, 0.2, rng, theta=0.3)
    assert isinstance(ou, OrnsteinUhlenbeckNoise) and ou.theta == 0.3 and ou.std == 0.2
    gaussian = make_noise("gaussian", 2, 0.1, rng)
    assert isinstance(gaussian, GaussianNoise) and gaussian.std == 0.1 and gaussian().shape == (2,)
