"""The fused path: flat parameter buffers, explicit forward and backward kernels, and the merged Adam."""

from __future__ import annotations

import dataclasses

import numpy as np
import paddle
import pytest

from paddle_ddpg import fused
from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic

LOW = np.array([-2.0, 0.0, -0.5], dtype=np.float32)
HIGH = np.array([2.0, 1.0, 0.5], dtype=np.float32)
STATE_DIM, ACTION_DIM = 5, 3
# Per-dimension bounds (tanh, multiply, add), and bounds alike and centred on zero (one stanh kernel).
BOUNDS = [(LOW, HIGH), (np.full(ACTION_DIM, -2.0, np.float32), np.full(ACTION_DIM, 2.0, np.float32))]
HIDDEN = [(8,), (32, 16), (24, 16, 8)]  # one, two and three hidden layers
# Each with the action joining every layer it can: 0 beside the state, 1 the tutorial's, up to the output layer.
CRITICS = [(hidden, layer) for hidden in HIDDEN for layer in range(len(hidden) + 1)]
# Takes two action dimensions' tanh input past +-TANH_MARGIN on most states, where `tanh_penalty` acts.
SATURATING_BIAS = np.array([TANH_MARGIN + 0.5, -TANH_MARGIN - 0.5, 0.0], dtype=np.float32)


def _batch(rng: np.random.Generator, size: int = 16) -> Batch:
    return Batch(rng.standard_normal((size, STATE_DIM)).astype(np.float32),
                 rng.uniform(LOW, HIGH, (size, ACTION_DIM)).astype(np.float32),
                 rng.standard_normal((size, 1)).astype(np.float32),
                 rng.standard_normal((size, STATE_DIM)).astype(np.float32),
                 (rng.random((size, 1)) < 0.2).astype(np.float32))


@pytest.mark.parametrize(("low", "high", "expected"), [([-2.0], [2.0], 2.0), ([-1.0] * 3, [1.0] * 3, 1.0),
                                                      (LOW, HIGH, None), ([0.0], [1.0], None),
                                                      ([-1.0, -2.0], [1.0, 2.0], None)])
def test_one_stanh_kernel_only_for_bounds_alike_and_centred(low: list[float], high: list[float],
                                                            expected: float | None) -> None:
    actor = Actor(STATE_DIM, len(low), low, high, (8,))
    assert fused.actor_layers(actor).symmetric_scale == expected


@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize(("hidden", "action_layer"), CRITICS)
def test_explicit_forwards_equal_the_layers(hidden: tuple[int, ...], action_layer: int,
                                            bounds: tuple[np.ndarray, np.ndarray]) -> None:
    paddle.seed(0)
    actor = Actor(STATE_DIM, ACTION_DIM, *bounds, hidden)
    critic = Critic(STATE_DIM, ACTION_DIM, hidden, action_layer)
    state = paddle.randn([16, STATE_DIM])
    with paddle.no_grad():
        action = actor(state)
        ours, _ = fused.actor_forward(fused.actor_layers(actor), state)
        np.testing.assert_allclose(ours.numpy(), action.numpy(), rtol=1e-5, atol=1e-6)
        ours, _ = fused.critic_forward(fused.critic_layers(critic), state, action)
        np.testing.assert_allclose(ours.numpy(), critic(state, action).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tanh_penalty", [0.0, 0.5])
@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize(("hidden", "action_layer"), CRITICS)
def test_explicit_gradients_equal_autograd(hidden: tuple[int, ...], action_layer: int,
                                           bounds: tuple[np.ndarray, np.ndarray], tanh_penalty: float) -> None:
    """Critic parameter gradients of an MSE loss, the action gradient through a frozen critic, and the actor
    parameter gradients of -mean Q plus the tanh penalty, each against paddle.grad."""
    paddle.seed(1)
    actor = Actor(STATE_DIM, ACTION_DIM, *bounds, hidden)
    actor.fcs[-1].bias.set_value(paddle.to_tensor(SATURATING_BIAS))
    critic = Critic(STATE_DIM, ACTION_DIM, hidden, action_layer)
    batch = _batch(np.random.default_rng(1))
    state, action, y = (paddle.to_tensor(x) for x in (batch.state, batch.action, batch.reward))

    expected = paddle.grad(paddle.nn.functional.mse_loss(critic(state, action), y), critic.parameters())
    with paddle.no_grad():
        q, saved = fused.critic_forward(fused.critic_layers(critic), state, action)
        _, d_q = fused.mse_and_grad(q, y)
        got = fused.critic_backward(fused.critic_layers(critic), saved, d_q)
    _assert_all_equal(got, expected)

    z = actor.preactivation(state)
    excess = z - z.clip(-TANH_MARGIN, TANH_MARGIN)
    assert 0 < np.count_nonzero(excess.numpy()) < excess.size  # the penalty's both sides are tested
    expected = paddle.grad(-critic(state, actor(state)).mean() + tanh_penalty * excess.square().mean(),
                           actor.parameters())
    with paddle.no_grad():
        mu, saved_actor = fused.actor_forward(fused.actor_layers(actor), state)
        q, saved_critic = fused.critic_forward(fused.critic_layers(critic), state, mu)
        _, d_q = fused.minus_mean_and_grad(q)
        d_action = fused.critic_action_grad(fused.critic_layers(critic), saved_critic, d_q)
        got = fused.actor_backward(fused.actor_layers(actor), saved_actor, d_action, tanh_penalty)
    _assert_all_equal(got, expected)


def _fused_and_autograd(config: Config) -> tuple[DDPG, DDPG]:
    """Two agents with the same weights, one on each path."""
    paddle.seed(0)
    agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(0))
    plain = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, dataclasses.replace(config, fused=False),
                 rng=np.random.default_rng(0))
    plain.set_state_dict(agent.state_dict())
    return agent, plain


def _learn_alike(agent: DDPG, plain: DDPG, batch: Batch) -> None:
    ours, theirs = agent.learn(batch), plain.learn(batch)
    assert ours.keys() == theirs.keys()
    for tag in ours:
        assert float(ours[tag]) == pytest.approx(float(theirs[tag]), rel=1e-4, abs=1e-6)


def _assert_all_equal(got: list[paddle.Tensor], expected: list[paddle.Tensor]) -> None:
    """Parameter by parameter; a bias gradient may come as a [1, n] row (the merged Adam reads sizes only)."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape or (g.shape == [1, *e.shape] and e.ndim == 1)
        np.testing.assert_allclose(g.numpy().reshape(e.shape), e.numpy(), rtol=1e-4, atol=1e-6)


def test_relu_gradient_kernel_matches_paddles_relu_grad_bit_for_bit() -> None:
    """`_relu_grad` stands in for relu_grad for speed: zeros of either sign, subnormals, large and random
    values must give the same bits."""
    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, 1e-45, 1e-38, 1.0, 3e38], dtype=np.float32)
    out = np.concatenate([edges, np.maximum(rng.standard_normal(250), 0)]).astype(np.float32).reshape(16, 16)
    g = rng.standard_normal((16, 16)).astype(np.float32)
    g[0, :2] = [-1.0, 2.0]
    expected = paddle._C_ops.relu_grad(paddle.to_tensor(out), paddle.to_tensor(g)).numpy()
    got = fused._relu_grad(paddle.to_tensor(out), paddle.to_tensor(g)).numpy()
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_parameters_are_views_of_the_flat_buffer_and_stay_so_after_loading() -> None:
    paddle.seed(0)
    layer = Critic(STATE_DIM, ACTION_DIM, (8, 4))
    params = layer.parameters()
    before = np.concatenate([p.numpy().reshape(-1) for p in params])
    names = [p.name for p in params]
    buffer = fused.share_flat(params)
    np.testing.assert_array_equal(buffer.numpy(), before)  # values kept, in parameter order
    assert [p.name for p in layer.parameters()] == names and not any(p.stop_gradient for p in params)

    buffer.scale_(2.0)
    np.testing.assert_array_equal(layer.fcs[0].weight.numpy().reshape(-1), 2 * before[:STATE_DIM * 8])
    # Loading weights writes through the views into the buffer.
    layer.set_state_dict({k: np.full(v.shape, 3.0, np.float32) for k, v in layer.state_dict().items()})
    np.testing.assert_array_equal(buffer.numpy(), np.full(before.shape, 3.0, np.float32))


def test_merged_adam_resumes_from_a_paddle_adam_state() -> None:
    """Checkpoints written before the fused path held `paddle.optimizer.Adam` state under
    paramI_moment1_0-style keys: loaded into MergedAdam, the next step equals paddle Adam's own."""
    paddle.seed(0)
    reference, ours = Actor(STATE_DIM, ACTION_DIM, LOW, HIGH, (8, 4)), Actor(STATE_DIM, ACTION_DIM, LOW, HIGH, (8, 4))
    ours.set_state_dict(reference.state_dict())
    adam = paddle.optimizer.Adam(parameters=reference.parameters(), learning_rate=0.01)
    state = paddle.randn([16, STATE_DIM])
    for _ in range(3):
        reference(state).square().mean().backward()
        adam.step()
        adam.clear_grad()
    position = {p.name: f"param{i}" for i, p in enumerate(reference.parameters())}
    saved = {}
    for key, value in adam.state_dict().items():
        name, sep, rest = key.partition("_moment") if "_moment" in key else key.partition("_beta")
        if sep:
            saved[position[name] + sep + rest] = value.numpy()

    ours.set_state_dict(reference.state_dict())
    params = ours.parameters()
    merged_adam = fused.MergedAdam(params, 0.01)
    merged_adam.set_state_dict(saved)
    reference(state).square().mean().backward()
    adam.step()
    ours(state).square().mean().backward()
    merged_adam.step([p.grad for p in params])
    for a, b in zip(ours.parameters(), reference.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    assert merged_adam.state_dict().keys() == saved.keys()


@pytest.mark.parametrize("tanh_penalty", [0.0, 0.1])
@pytest.mark.parametrize("algo", ["ddpg", "td3"])
@pytest.mark.parametrize(("hidden", "action_layer"), CRITICS)
def test_fused_and_autograd_agents_train_alike(algo: str, hidden: tuple[int, ...], action_layer: int,
                                               tanh_penalty: float) -> None:
    """50 updates with 3-dimensional actions of uneven bounds: same losses, parameters and Adam moments."""
    agent, plain = _fused_and_autograd(Config(actor_hidden=hidden, critic_hidden=hidden,
                                              critic_action_layer=action_layer, lr_actor=1e-2, lr_critic=1e-2,
                                              tau=0.05, algo=algo, tanh_penalty=tanh_penalty))
    if tanh_penalty:
        saved = agent.state_dict()
        saved["actor"][f"fc{len(hidden) + 1}.bias"] = SATURATING_BIAS
        agent.set_state_dict(saved)
        plain.set_state_dict(saved)
    rng = np.random.default_rng(0)
    for _ in range(50):
        _learn_alike(agent, plain, _batch(rng))
    a, b = agent.state_dict(), plain.state_dict()
    for name in agent._network_names() + ["actor_optim", "critic_optim"]:
        for key in a[name]:
            np.testing.assert_allclose(a[name][key], b[name][key], rtol=1e-4, atol=1e-5, err_msg=f"{name} {key}")
    state = rng.standard_normal(STATE_DIM).astype(np.float32)
    np.testing.assert_allclose(agent.select_action(state), plain.select_action(state), rtol=1e-4, atol=1e-5)


def test_a_trace_replays_its_kernels_on_the_tensors_of_the_moment() -> None:
    """The recorded function reads its constant tensors as they are when it runs, makes new outputs each
    run, and computes what the kernels compute."""
    weight, state = paddle.randn([3, 4]), paddle.zeros([1])
    place = paddle.framework._current_expected_place()

    def update() -> tuple[paddle.Tensor, ...]:
        hidden = fused.kernels.relu(fused.kernels.matmul(state, weight, False, False))
        return hidden, fused.kernels.scale(hidden, 2.0, 1.0, True)

    state.get_tensor().set(np.ones((2, 3), np.float32), place)
    trace = fused.Trace(update)
    assert trace.source.count(" = ") == 3 and fused.kernels is paddle._C_ops
    first = [t.numpy() for t in trace.outputs]
    for _ in range(2):
        x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
        state.get_tensor().set(x, place)
        weight.scale_(0.5)  # updated in place, as Adam updates parameters
        hidden, out = trace.run()
        expected = np.maximum(x @ weight.numpy(), 0)
        np.testing.assert_allclose(hidden.numpy(), expected, rtol=1e-6)
        np.testing.assert_allclose(out.numpy(), 2 * expected + 1, rtol=1e-6)
    np.testing.assert_array_equal(trace.outputs[0].numpy(), first[0])  # the recording's outputs are its own


def test_a_trace_refuses_outputs_made_outside_kernels() -> None:
    """A tensor made by other means would come back unchanged from every run: refused when recorded."""
    x = paddle.ones([2, 2])
    with pytest.raises(ValueError, match="kernels made"):
        fused.Trace(lambda: (fused.kernels.relu(x).detach(),))
    assert fused.kernels is paddle._C_ops


def test_recorded_updates_follow_batch_size_tau_and_the_policy_delay() -> None:
    """The fused agent keeps one recording per batch size, tau, gamma and actor step or not, and trains as the
    autograd agent does when they change between calls."""
    config = Config(actor_hidden=(16, 8), critic_hidden=(16, 8), lr_actor=1e-2, lr_critic=1e-2, tau=0.05,
                    algo="td3", policy_delay=2)
    agent, plain = _fused_and_autograd(config)
    rng = np.random.default_rng(0)
    kinds = [(16, 0.05), (8, 0.05), (16, 0.2), (16, 0.05)]  # (batch size, tau), the last a return
    for size, tau in kinds:
        agent.tau = plain.tau = tau
        for _ in range(4):
            _learn_alike(agent, plain, _batch(rng, size))
    expected = {(size, actor_step, config.gamma, tau) for size, tau in kinds for actor_step in (False, True)}
    assert set(agent._traces) == expected and len(agent._traces) == 6
    np.testing.assert_allclose(agent._online.numpy(), plain._online.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(agent._target.numpy(), plain._target.numpy(), rtol=1e-4, atol=1e-5)
