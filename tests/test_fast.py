"""The fast engine (the only tests that touch Paddle's private API): explicit forward and backward kernels
against autograd, flat parameter buffers, the merged Adam, recorded updates, the fast agent against the
plain one it must equal, and `accelerate` refusing what it has not verified."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from conftest import random_batch
from paddle_ddpg import agent as agent_module
from paddle_ddpg import fast
from paddle_ddpg.agent import DDPG, optimizer_state, set_optimizer_state
from paddle_ddpg.config import Config
from paddle_ddpg.fast import check, layers
from paddle_ddpg.fast.engine import FastEngine, MergedAdam, share_flat
from paddle_ddpg.fast.trace import Trace
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic
from paddle_ddpg.train import train

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
    return random_batch(rng, size, STATE_DIM, LOW, HIGH)


@pytest.mark.parametrize(("low", "high", "expected"), [([-2.0], [2.0], 2.0), ([-1.0] * 3, [1.0] * 3, 1.0),
                                                      (LOW, HIGH, None), ([0.0], [1.0], None),
                                                      ([-1.0, -2.0], [1.0, 2.0], None)])
def test_one_stanh_kernel_only_for_bounds_alike_and_centred(low: list[float], high: list[float],
                                                            expected: float | None) -> None:
    actor = Actor(STATE_DIM, len(low), low, high, (8,))
    assert layers.ActorPass(actor).symmetric_scale == expected


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
        ours, _ = layers.ActorPass(actor).forward(state)
        np.testing.assert_allclose(ours.numpy(), action.numpy(), rtol=1e-5, atol=1e-6)
        ours, _ = layers.CriticPass(critic).forward(state, action)
        np.testing.assert_allclose(ours.numpy(), critic(state, action).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tanh_penalty", [0.0, 0.5])
@pytest.mark.parametrize("bounds", BOUNDS)
@pytest.mark.parametrize(("hidden", "action_layer"), CRITICS)
def test_explicit_gradients_equal_autograd(hidden: tuple[int, ...], action_layer: int,
                                           bounds: tuple[np.ndarray, np.ndarray], tanh_penalty: float) -> None:
    """Critic parameter gradients of an MSE loss, the action gradient through a frozen critic, and the actor
    parameter gradients of -mean Q plus the tanh penalty, each against paddle.grad (the losses' own gradients,
    2 (q - y) / batch and -1 / batch, given as the engine computes them)."""
    paddle.seed(1)
    actor = Actor(STATE_DIM, ACTION_DIM, *bounds, hidden)
    actor.fcs[-1].bias.set_value(paddle.to_tensor(SATURATING_BIAS))
    critic = Critic(STATE_DIM, ACTION_DIM, hidden, action_layer)
    batch = _batch(np.random.default_rng(1))
    state, action, y = (paddle.to_tensor(x) for x in (batch.state, batch.action, batch.reward))

    expected = paddle.grad(paddle.nn.functional.mse_loss(critic(state, action), y), critic.parameters())
    with paddle.no_grad():
        q, saved = layers.CriticPass(critic).forward(state, action)
        got = layers.CriticPass(critic).backward(saved, 2 * (q - y) / len(q))
    _assert_all_equal(got, expected)

    z = actor.preactivation(state)
    excess = z - z.clip(-TANH_MARGIN, TANH_MARGIN)
    assert 0 < np.count_nonzero(excess.numpy()) < excess.size  # the penalty's both sides are tested
    expected = paddle.grad(-critic(state, actor(state)).mean() + tanh_penalty * excess.square().mean(),
                           actor.parameters())
    with paddle.no_grad():
        mu, saved_actor = layers.ActorPass(actor).forward(state)
        q, saved_critic = layers.CriticPass(critic).forward(state, mu)
        d_action = layers.CriticPass(critic).action_grad(saved_critic, paddle.full(q.shape, -1 / len(q)))
        got = layers.ActorPass(actor).backward(saved_actor, d_action, tanh_penalty)
    _assert_all_equal(got, expected)


def _fast_and_plain(config: Config) -> tuple[DDPG, DDPG]:
    """Two agents with the same weights, the first on the fast engine."""
    paddle.seed(0)
    agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(0))
    plain = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(0))
    plain.set_state_dict(agent.state_dict())
    assert fast.accelerate(agent) is None
    return agent, plain


def _engine(agent: DDPG) -> FastEngine:
    return agent.update.__self__


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
    """`relu_grad` stands in for relu_grad for speed: zeros of either sign, subnormals, large and random
    values must give the same bits."""
    rng = np.random.default_rng(0)
    edges = np.array([0.0, -0.0, 1e-45, 1e-38, 1.0, 3e38], dtype=np.float32)
    out = np.concatenate([edges, np.maximum(rng.standard_normal(250), 0)]).astype(np.float32).reshape(16, 16)
    g = rng.standard_normal((16, 16)).astype(np.float32)
    g[0, :2] = [-1.0, 2.0]
    expected = paddle._C_ops.relu_grad(paddle.to_tensor(out), paddle.to_tensor(g)).numpy()
    got = layers.relu_grad(paddle.to_tensor(out), paddle.to_tensor(g)).numpy()
    np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))


def test_parameters_are_views_of_the_flat_buffer_and_stay_so_after_loading() -> None:
    paddle.seed(0)
    layer = Critic(STATE_DIM, ACTION_DIM, (8, 4))
    params = layer.parameters()
    before = np.concatenate([p.numpy().reshape(-1) for p in params])
    names = [p.name for p in params]
    buffer = share_flat(params)
    np.testing.assert_array_equal(buffer.numpy(), before)  # values kept, in parameter order
    assert [p.name for p in layer.parameters()] == names and not any(p.stop_gradient for p in params)

    buffer.scale_(2.0)
    np.testing.assert_array_equal(layer.fcs[0].weight.numpy().reshape(-1), 2 * before[:STATE_DIM * 8])
    # Loading weights writes through the views into the buffer.
    layer.set_state_dict({k: np.full(v.shape, 3.0, np.float32) for k, v in layer.state_dict().items()})
    np.testing.assert_array_equal(buffer.numpy(), np.full(before.shape, 3.0, np.float32))


@pytest.mark.parametrize("resumed", [False, True])
def test_merged_adam_steps_a_paddle_adam_on_its_own_moments(resumed: bool) -> None:
    """MergedAdam's steps equal `paddle.optimizer.Adam.step`'s, and they update that optimizer's own state,
    also when it was loaded with `set_state_dict` before (a resumed run), so `state_dict` sees them."""
    paddle.seed(0)
    reference, ours = Actor(STATE_DIM, ACTION_DIM, LOW, HIGH, (8, 4)), Actor(STATE_DIM, ACTION_DIM, LOW, HIGH, (8, 4))
    ours.set_state_dict(reference.state_dict())
    adam = paddle.optimizer.Adam(parameters=reference.parameters(), learning_rate=0.01)
    our_adam = paddle.optimizer.Adam(parameters=ours.parameters(), learning_rate=0.01)
    state = paddle.randn([16, STATE_DIM])
    if resumed:
        for _ in range(3):
            reference(state).square().mean().backward()
            adam.step()
            adam.clear_grad()
        ours.set_state_dict(reference.state_dict())
        set_optimizer_state(our_adam, ours.parameters(), optimizer_state(adam, reference.parameters()))
    merged = MergedAdam(our_adam, ours.parameters())
    for _ in range(3):
        reference(state).square().mean().backward()
        adam.step()
        adam.clear_grad()
        ours(state).square().mean().backward()
        merged.step([p.grad for p in ours.parameters()])
        ours.clear_gradients()
    for a, b in zip(ours.parameters(), reference.parameters()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
    theirs = list(adam.state_dict().values())
    mine = list(our_adam.state_dict().values())
    assert len(mine) == len(theirs) == 4 * 6
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("tanh_penalty", [0.0, 0.1])
@pytest.mark.parametrize("algo", ["ddpg", "td3"])
@pytest.mark.parametrize(("hidden", "action_layer"), CRITICS)
def test_fast_and_plain_agents_train_alike(algo: str, hidden: tuple[int, ...], action_layer: int,
                                               tanh_penalty: float) -> None:
    """50 updates with 3-dimensional actions of uneven bounds: same losses, parameters and Adam moments."""
    agent, plain = _fast_and_plain(Config(actor_hidden=hidden, critic_hidden=hidden,
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
    for name in [*agent.networks(), "actor_optim", "critic_optim"]:
        for key in a[name]:
            np.testing.assert_allclose(a[name][key], b[name][key], rtol=1e-4, atol=1e-5, err_msg=f"{name} {key}")
    state = rng.standard_normal(STATE_DIM).astype(np.float32)
    np.testing.assert_allclose(agent.select_action(state), plain.select_action(state), rtol=1e-4, atol=1e-5)


def test_a_trace_replays_its_kernels_on_the_tensors_of_the_moment() -> None:
    """The recorded function reads its constant tensors as they are when it runs, makes new outputs each
    run, and computes what the kernels compute."""
    weight, state = paddle.randn([3, 4]), paddle.zeros([1])
    place = paddle.base.framework._current_expected_place()

    def update() -> tuple[paddle.Tensor, ...]:
        hidden = layers.kernels.relu(layers.kernels.matmul(state, weight, False, False))
        return hidden, layers.kernels.scale(hidden, 2.0, 1.0, True)

    state.get_tensor().set(np.ones((2, 3), np.float32), place)
    trace = Trace(update)
    assert trace.source.count(" = ") == 3 and layers.kernels is paddle._C_ops
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
        Trace(lambda: (layers.kernels.relu(x).detach(),))
    assert layers.kernels is paddle._C_ops


def test_recorded_updates_follow_batch_size_tau_and_the_policy_delay() -> None:
    """The engine keeps one recording per batch size, actor step or not, target noise or not, gamma and tau,
    and trains as the plain agent does when they change between calls."""
    config = Config(actor_hidden=(16, 8), critic_hidden=(16, 8), lr_actor=1e-2, lr_critic=1e-2, tau=0.05,
                    algo="td3", policy_delay=2)
    agent, plain = _fast_and_plain(config)
    rng = np.random.default_rng(0)
    kinds = [(16, 0.05), (8, 0.05), (16, 0.2), (16, 0.05)]  # (batch size, tau), the last a return
    for size, tau in kinds:
        agent.tau = plain.tau = tau
        for _ in range(4):
            _learn_alike(agent, plain, _batch(rng, size))
    expected = {(size, actor_step, True, config.gamma, tau) for size, tau in kinds for actor_step in (False, True)}
    assert set(_engine(agent).traces) == expected and len(expected) == 6
    for name, net in plain.networks().items():
        for ours, theirs in zip(agent.networks()[name].parameters(), net.parameters()):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


def test_a_paddle_without_what_the_engine_needs_gets_the_plain_engine(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    """The capability check, not a version number, decides: with a kernel gone the check says which, and a
    run trains on the plain engine, saying so in one line."""
    monkeypatch.delattr(paddle._C_ops, "hardtanh_grad")
    check.stock_differs.cache_clear()
    try:
        reason = check.stock_differs()
        assert reason == f"Paddle {paddle.__version__} lacks _C_ops.hardtanh_grad"
        agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))
        assert fast.accelerate(agent) == reason and agent.update.__func__ is DDPG.update
        summary = train(Config(episodes=2, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=0,
                               eval_episodes=1, actor_hidden=(8,), critic_hidden=(8,), run_name="fallback",
                               logdir=str(tmp_path / "logs"), model_dir=str(tmp_path / "model")))
        assert summary["engine"] == "plain" and summary["learn_steps"] > 0
        lines = [line for line in capsys.readouterr().err.splitlines() if "fast engine" in line]
        assert len(lines) == 1 and "plain engine" in lines[0] and "hardtanh_grad" in lines[0]
    finally:
        monkeypatch.undo()
        check.stock_differs.cache_clear()
    assert check.stock_differs() is None


def test_a_private_kernel_that_computes_something_else_is_blamed_on_paddle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A private kernel that still exists but changed what it computes (here: the soft update's kernel takes
    twice its step) makes the engine land elsewhere than the stock code on the small problem; that code being the
    code the engine was verified against, Paddle is named, and the agent keeps its plain update."""
    sgd = paddle._C_ops.sgd_
    monkeypatch.setattr(paddle._C_ops, "sgd_", lambda p, lr, g, master, multi: sgd(p, lr * 2.0, g, master, multi))
    check.stock_differs.cache_clear()
    try:
        agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))
        reason = fast.accelerate(agent)
        assert reason is not None and reason.startswith(
            f"on Paddle {paddle.__version__}, the fast engine's private kernels no longer compute what agent.py does: "
            "its update lands ")
        assert agent.update.__func__ is DDPG.update
    finally:
        monkeypatch.undo()
        check.stock_differs.cache_clear()


def test_a_paddle_without_the_engines_modules_keeps_the_plain_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's modules import Paddle's private ones at import time; where that fails, `paddle_ddpg.fast`
    still imports and every agent keeps its plain update, with the reason."""
    monkeypatch.delattr(fast, "check")
    monkeypatch.setitem(sys.modules, "paddle_ddpg.fast.check", None)
    try:
        importlib.reload(fast)
        agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))
        reason = fast.accelerate(agent)
        assert reason is not None and reason.startswith(f"Paddle {paddle.__version__} lacks what the fast engine")
        assert agent.update.__func__ is DDPG.update
    finally:
        monkeypatch.undo()
        importlib.reload(fast)
    assert fast.accelerate(DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))) is None


def _huber_critic_step(self: DDPG, state: paddle.Tensor, action: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
    """A critic step another learner might write: the Huber loss instead of the squared TD error."""
    loss = sum(F.smooth_l1_loss(critic(state, action), y) for critic in self.critics())
    self.critic_optim.clear_grad()
    loss.backward()
    self.critic_optim.step()
    return loss.detach()


class HuberDDPG(DDPG):
    critic_step = _huber_critic_step


class DeeperCritic(Critic):
    """The stock critic with one more layer on its output."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.head = paddle.nn.Linear(1, 1)

    def forward(self, state: paddle.Tensor, action: paddle.Tensor) -> paddle.Tensor:
        return self.head(F.relu(super().forward(state, action)))


def _three_alike(make: type[DDPG]) -> tuple[DDPG, DDPG, DDPG]:
    """An agent of `make` given to `accelerate`, one of `make` that never was, and a stock DDPG on the fast
    engine, all three from the same weights (the stock one without the layers it lacks)."""
    config = Config(actor_hidden=(16,), critic_hidden=(16, 16), lr_actor=1e-2, lr_critic=1e-2, tau=0.05)
    paddle.seed(0)
    agent, twin = (make(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(0)) for _ in range(2))
    twin.set_state_dict(agent.state_dict())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agent_module, "Critic", Critic)
        stock = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(0))
    for name, net in stock.networks().items():
        net.set_state_dict({k: v for k, v in agent.networks()[name].state_dict().items() if k in net.state_dict()})
    assert fast.accelerate(stock) is None
    return agent, twin, stock


def _learn_all(agents: tuple[DDPG, ...], updates: int = 20) -> None:
    rng = np.random.default_rng(3)
    for _ in range(updates):
        batch = _batch(rng)
        for agent in agents:
            agent.learn(batch)


@pytest.mark.parametrize("make", ["subclass overriding critic_step", "critic with an extra layer"])
def test_what_the_engine_does_not_compute_is_refused_in_one_line_and_trained_plain(
        make: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DDPG subclass whose critic step is its own, and a DDPG whose critics have another layer: the fast
    engine would train the stock maths instead, so `accelerate` refuses in one line naming the difference,
    and the agent trains as one never given to `accelerate` does, not as the engine would have."""
    if make == "subclass overriding critic_step":
        cls, expected = HuberDDPG, "HuberDDPG overrides critic_step, which the fast engine replaces"
    else:
        monkeypatch.setattr(agent_module, "Critic", DeeperCritic)
        cls, expected = DDPG, ("the critic is a DeeperCritic, not paddle_ddpg's Critic, whose layers the fast engine "
                               "computes")
    agent, twin, stock = _three_alike(cls)
    assert fast.accelerate(agent) == expected
    assert agent.update.__func__ is DDPG.update and agent.critic_step.__func__ is cls.critic_step
    _learn_all((agent, twin, stock))
    for name, net in agent.networks().items():
        for ours, theirs in zip(net.parameters(), twin.networks()[name].parameters()):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=name)
    # The engine's stock maths would have given other weights.
    assert max(float(np.abs(a.numpy() - b.numpy()).max())
               for a, b in zip(agent.actor.parameters(), stock.actor.parameters())) > 1e-3


def test_a_critic_with_an_extra_layer_trains_plain_and_the_run_says_why_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setattr(agent_module, "Critic", DeeperCritic)
    summary = train(Config(episodes=2, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=0,
                           eval_episodes=1, actor_hidden=(8,), critic_hidden=(8,), run_name="deeper",
                           logdir=str(tmp_path / "logs"), model_dir=str(tmp_path / "model")))
    assert summary["engine"] == "plain" and summary["learn_steps"] > 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "fast engine" in line]
    assert len(lines) == 1 and "DeeperCritic" in lines[0] and "plain engine" in lines[0], lines


def _with_instance_critic_step(agent: DDPG) -> None:
    agent.critic_step = _huber_critic_step.__get__(agent)


def _with_a_layer_added(agent: DDPG) -> None:
    agent.critic.add_sublayer("head", paddle.nn.Linear(1, 1))


def _with_sgd(agent: DDPG) -> None:
    agent.actor_optim = paddle.optimizer.SGD(parameters=agent.actor.parameters())


def _with_weight_decay(agent: DDPG) -> None:
    agent.critic_optim = paddle.optimizer.Adam(parameters=agent.critic_parameters(), weight_decay=1e-3)


def _with_one_critic_stepped(agent: DDPG) -> None:
    agent.critic_optim = paddle.optimizer.Adam(parameters=agent.critic.parameters()[:2])


class TargetsDDPG(DDPG):
    def target_pairs(self) -> list:
        return super().target_pairs()[:1]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda agent: None, None),
    (_with_instance_critic_step, "this agent's critic_step is set on the object, which the fast engine replaces"),
    (_with_a_layer_added, "the critic has parameters outside its fcs layers, the only ones the fast engine computes"),
    (_with_sgd, "the actor_optim is a SGD; the fast engine steps a plain paddle.optimizer.Adam"),
    (_with_weight_decay, "the critic_optim has weight decay, which the fast engine's Adam step leaves out"),
    (_with_one_critic_stepped, "the critic_optim steps other parameters than the ones the fast engine steps with it"),
    (TargetsDDPG, "TargetsDDPG overrides target_pairs, which the fast engine reads"),
], ids=["stock", "instance method", "layer added", "SGD", "weight decay", "one critic stepped", "subclass"])
def test_every_part_of_the_agent_the_engine_takes_over_is_checked(change: object, expected: str | None) -> None:
    config = Config(actor_hidden=(8,), critic_hidden=(8,))
    if isinstance(change, type):
        agent = change(STATE_DIM, ACTION_DIM, LOW, HIGH, config)
    else:
        agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config)
        change(agent)
    assert fast.accelerate(agent) == expected
    assert (agent.update.__func__ is DDPG.update) == (expected is not None)


class LabelledDDPG(DDPG):
    """A subclass that changes nothing the engine takes over: its own constructor and a method of its own."""

    def __init__(self, *args: object, label: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.label = label

    def describe(self) -> str:
        return f"{self.label}: {len(self.critics())} critic(s)"


def test_a_subclass_that_changes_nothing_the_engine_computes_gets_it() -> None:
    agent, twin, _ = _three_alike(LabelledDDPG)
    assert fast.accelerate(agent) is None and isinstance(agent.update.__self__, FastEngine)
    _learn_all((agent, twin))
    for ours, theirs in zip(agent.actor.parameters(), twin.actor.parameters()):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-5)


def test_an_edited_agent_py_is_blamed_not_paddle(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edit of DDPG itself (here its critic step, as a learner might make in agent.py) passes the class
    checks; the engine's check of the stock code on a small problem finds it, and as the stock code is no longer
    the code the engine was verified against, the line names the code, not Paddle."""
    monkeypatch.setattr(DDPG, "critic_step", _huber_critic_step)
    check.stock_differs.cache_clear()
    try:
        agent = DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))
        reason = fast.accelerate(agent)
        assert reason is not None and reason.startswith(
            "paddle_ddpg's DDPG as agent.py and networks.py now write it is not the code the fast engine computes")
        assert "Paddle " not in reason and agent.update.__func__ is DDPG.update
    finally:
        monkeypatch.undo()
        check.stock_differs.cache_clear()
    assert check.stock_differs() is None


def test_the_checks_leave_paddles_random_state_as_it_was() -> None:
    """A run seeds Paddle, makes its agent and accelerates it: the checks, run or cached, draw nothing from
    the generator the run goes on drawing from."""
    def agent() -> DDPG:
        return DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, Config(actor_hidden=(8,), critic_hidden=(8,)))

    paddle.seed(7)
    agent()
    expected = paddle.rand([4]).numpy()
    check.stock_differs.cache_clear()
    for _ in ("checked", "cached"):
        paddle.seed(7)
        assert fast.accelerate(agent()) is None
        np.testing.assert_array_equal(paddle.rand([4]).numpy(), expected)

PRIVATE = re.compile(r"_C_ops|paddle\.base\b|paddle\.framework\._|\.get_tensor\(\)|_share_buffer_to|_set_dims|"
                     r"\._slice\(|_create_accumulators|\._accumulators\b|\._beta[12]\b|\._epsilon\b|\._parameter_list\b|"
                     r"\._learning_rate\b|\._grad_clip\b|\._amsgrad\b|_current_expected_place")


def test_no_private_paddle_name_outside_the_engine() -> None:
    root = Path(__file__).resolve().parent.parent
    files = [p for p in (root / "paddle_ddpg").rglob("*.py") if "fast" not in p.relative_to(root).parts]
    # test_agent.py and test_notebook.py name them too, in patterns that keep them out of what a learner reads.
    files += [p for p in (root / "tests").glob("*.py")
              if p.name not in ("test_fast.py", "test_agent.py", "test_notebook.py")]
    files += list((root / "benchmarks").glob("*.py"))
    assert len(files) > 20
    found = [f"{p.relative_to(root)}:{i}: {line.strip()}" for p in files
             for i, line in enumerate(p.read_text().splitlines(), 1) if PRIVATE.search(line)]
    assert not found, "\n".join(found)
