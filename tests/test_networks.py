"""Actor and Critic: bounds, shapes, and the tutorial's state-dict keys."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from paddle_ddpg.networks import Actor, Critic

LOW = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
HIGH = np.array([3.0, 1.0, 5.0], dtype=np.float32)
TUTORIAL_KEYS = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}


def _forward(net: paddle.nn.Layer, *arrays: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return net(*(paddle.to_tensor(a, dtype="float32") for a in arrays)).numpy()


def test_actor_output_within_asymmetric_bounds() -> None:
    """Each action dimension has its own range; an actor that scaled by one shared factor (like the
    tutorial's `2 *`) or forgot the offset would leave [low, high]."""
    paddle.seed(1)
    actor = Actor(4, 3, LOW, HIGH)
    states = np.random.default_rng(0).standard_normal((256, 4)).astype(np.float32) * 3
    out = _forward(actor, states)
    assert out.shape == (256, 3)
    assert np.all(out >= LOW) and np.all(out <= HIGH)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_actor_stays_within_bounds_for_huge_inputs(scale: float) -> None:
    """Huge inputs drive tanh into saturation; the scaled output must still not leave [low, high]."""
    paddle.seed(2)
    actor = Actor(4, 3, LOW, HIGH)
    states = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32) * np.float32(scale)
    out = _forward(actor, states)
    assert np.all(np.isfinite(out))
    assert np.all(out >= LOW) and np.all(out <= HIGH)
    # Most rows saturate in every dimension (a row whose ReLUs all switch off does not).
    at_bound = np.isclose(out, LOW, atol=1e-6) | np.isclose(out, HIGH, atol=1e-6)
    assert at_bound.all(axis=1).mean() > 0.5


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_saturated_tanh_maps_exactly_onto_high_or_low(sign: float) -> None:
    """tanh = +1 must give exactly `high` and -1 exactly `low` in every dimension: an actor that scaled by
    one shared factor (the tutorial's `2 *`) or forgot the offset would land elsewhere."""
    paddle.seed(3)
    actor = Actor(4, 3, LOW, HIGH)
    with paddle.no_grad():
        actor.fc3.bias.set_value(paddle.full([3], sign * 1e6, dtype="float32"))
    out = _forward(actor, np.random.default_rng(2).standard_normal((16, 4)).astype(np.float32))
    np.testing.assert_allclose(out, np.broadcast_to(HIGH if sign > 0 else LOW, out.shape), rtol=0, atol=1e-6)


def test_actor_is_tanh_scaled_to_the_bounds() -> None:
    """The output is tanh(fc3(relu(fc2(relu(fc1(s)))))) * (high - low) / 2 + (high + low) / 2, computed here
    by hand from the weights."""
    paddle.seed(3)
    actor = Actor(4, 3, LOW, HIGH, hidden=(8, 5))
    s = np.random.default_rng(2).standard_normal((10, 4)).astype(np.float32)
    w = {k: v.numpy().astype(np.float64) for k, v in actor.state_dict().items()}
    h = np.maximum(s @ w["fc1.weight"] + w["fc1.bias"], 0)
    h = np.maximum(h @ w["fc2.weight"] + w["fc2.bias"], 0)
    expected = np.tanh(h @ w["fc3.weight"] + w["fc3.bias"]) * (HIGH - LOW) / 2 + (HIGH + LOW) / 2
    np.testing.assert_allclose(_forward(actor, s), expected, rtol=1e-5, atol=1e-5)


def test_critic_output_shape_and_value() -> None:
    """Q(s, a) is one number per row, and the action joins after the first layer (tutorial section 三)."""
    paddle.seed(4)
    critic = Critic(3, 2, hidden=(6, 5))
    rng = np.random.default_rng(3)
    s, a = rng.standard_normal((7, 3)).astype(np.float32), rng.standard_normal((7, 2)).astype(np.float32)
    q = _forward(critic, s, a)
    assert q.shape == (7, 1)
    w = {k: v.numpy().astype(np.float64) for k, v in critic.state_dict().items()}
    h = np.maximum(s @ w["fc1.weight"] + w["fc1.bias"], 0)
    h = np.maximum(np.concatenate([h, a], axis=1) @ w["fc2.weight"] + w["fc2.bias"], 0)
    np.testing.assert_allclose(q, h @ w["fc3.weight"] + w["fc3.bias"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("action_layer", [0, 2])
def test_critic_action_can_join_any_layer(action_layer: int) -> None:
    """0: state and action together at the input (TD3 paper, SB3); 2: before the output layer."""
    paddle.seed(5)
    critic = Critic(3, 2, hidden=(6, 5), action_layer=action_layer)
    rng = np.random.default_rng(4)
    s, a = rng.standard_normal((7, 3)).astype(np.float32), rng.standard_normal((7, 2)).astype(np.float32)
    w = {k: v.numpy().astype(np.float64) for k, v in critic.state_dict().items()}
    x = s
    for i in range(3):
        if i == action_layer:
            x = np.concatenate([x, a], axis=1)
        x = x @ w[f"fc{i + 1}.weight"] + w[f"fc{i + 1}.bias"]
        x = np.maximum(x, 0) if i < 2 else x
    np.testing.assert_allclose(_forward(critic, s, a), x, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="action_layer"):
        Critic(3, 2, hidden=(6, 5), action_layer=3)


def test_default_state_dicts_have_exactly_the_tutorial_keys_and_shapes() -> None:
    """A tutorial `ddpg-actor*.para` file must load into this Actor: same keys, same shapes, and no extra
    entries such as the action scale buffers."""
    actor, critic = Actor(3, 1, [-2.0], [2.0]), Critic(3, 1)
    actor_sd, critic_sd = actor.state_dict(), critic.state_dict()
    assert set(actor_sd) == TUTORIAL_KEYS
    assert set(critic_sd) == TUTORIAL_KEYS
    assert not any("action" in k for k in actor_sd)
    assert {k: tuple(v.shape) for k, v in actor_sd.items()} == {
        "fc1.weight": (3, 256), "fc1.bias": (256,), "fc2.weight": (256, 128), "fc2.bias": (128,),
        "fc3.weight": (128, 1), "fc3.bias": (1,)}
    assert {k: tuple(v.shape) for k, v in critic_sd.items()} == {
        "fc1.weight": (3, 256), "fc1.bias": (256,), "fc2.weight": (257, 128), "fc2.bias": (128,),
        "fc3.weight": (128, 1), "fc3.bias": (1,)}


def test_actor_bounds_come_from_the_constructor_not_the_state_dict() -> None:
    """Loading weights into an actor built for other bounds keeps that actor's bounds: the scale buffers are
    not persistable, so only the weights travel."""
    paddle.seed(5)
    source = Actor(3, 1, [-2.0], [2.0], hidden=(8, 8))
    target = Actor(3, 1, [0.0], [1.0], hidden=(8, 8))
    target.set_state_dict(source.state_dict())
    s = np.random.default_rng(4).standard_normal((20, 3)).astype(np.float32)
    unit = _forward(source, s) / 2.0  # tanh of the pre-activation both actors share
    np.testing.assert_allclose(_forward(target, s), unit * 0.5 + 0.5, rtol=1e-5, atol=1e-6)


def test_configurable_hidden_sizes_change_the_layers() -> None:
    """`--actor-hidden 64 64 32` gives four layers fc1..fc4 of those sizes; a one-layer critic joins the
    action straight into its output layer."""
    actor = Actor(5, 2, [-1.0, -1.0], [1.0, 1.0], hidden=(64, 64, 32))
    shapes = {k: tuple(v.shape) for k, v in actor.state_dict().items() if k.endswith("weight")}
    assert shapes == {"fc1.weight": (5, 64), "fc2.weight": (64, 64), "fc3.weight": (64, 32), "fc4.weight": (32, 2)}
    assert _forward(actor, np.zeros((2, 5), np.float32)).shape == (2, 2)

    critic = Critic(5, 2, hidden=(16,))
    shapes = {k: tuple(v.shape) for k, v in critic.state_dict().items() if k.endswith("weight")}
    assert shapes == {"fc1.weight": (5, 16), "fc2.weight": (18, 1)}
    assert _forward(critic, np.zeros((4, 5), np.float32), np.zeros((4, 2), np.float32)).shape == (4, 1)
