"""TD3 (Fujimoto et al., 2018) as options of the DDPG agent: twin critics, target policy smoothing, delayed
actor and target updates, on an action space whose three dimensions have different bounds."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from pathlib import Path

import numpy as np
import paddle
import pytest

from conftest import TINY, last_json, random_batch, run_cli
from paddle_ddpg.agent import DDPG
from paddle_ddpg.checkpoint import load_checkpoint
from paddle_ddpg.config import Config
from paddle_ddpg.memory import Batch

LOW = np.array([-1.0, 0.0, 2.0], dtype=np.float32)
HIGH = np.array([3.0, 1.0, 5.0], dtype=np.float32)
HALF_RANGE = (HIGH - LOW) / 2  # 2, 0.5, 1.5: a scale shared by all dimensions would fail the bounds tests
STATE_DIM, ACTION_DIM = 5, 3
# Small nets and large learning rates so one learn step visibly moves every parameter.
TD3 = Config(algo="td3", policy_delay=2, actor_hidden=(16, 8), critic_hidden=(16, 8), lr_actor=1e-2, lr_critic=1e-2,
             tau=0.1, gamma=0.9)
NETS = ("actor", "critic", "critic2", "actor_target", "critic_target", "critic2_target")


def _agent(config: Config = TD3, seed: int = 0) -> DDPG:
    paddle.seed(seed)
    return DDPG(STATE_DIM, ACTION_DIM, LOW, HIGH, config, rng=np.random.default_rng(seed))


def _batch(seed: int, size: int = 64) -> Batch:
    return random_batch(np.random.default_rng(seed), size, STATE_DIM, LOW, HIGH, terminated=0.3)


def _params(agent: DDPG, name: str) -> list[np.ndarray]:
    return [p.numpy().copy() for p in getattr(agent, name).parameters()]


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    return any(not np.array_equal(a, b) for a, b in zip(before, after))


def _q(critic: paddle.nn.Layer, state: np.ndarray, action: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return critic(paddle.to_tensor(state), paddle.to_tensor(action.astype(np.float32))).numpy()


def _mu(actor: paddle.nn.Layer, state: np.ndarray) -> np.ndarray:
    with paddle.no_grad():
        return actor(paddle.to_tensor(state)).numpy()


def test_noisy_actions_stay_within_each_dimensions_bounds() -> None:
    """With epsilon 50 the noise dwarfs every range: each dimension is clipped to its own bounds, and
    reaches both of them (a shared clip range would let dimension 1 leave [0, 1])."""
    agent = _agent()
    rng = np.random.default_rng(1)
    actions = np.array([agent.select_action(rng.standard_normal(STATE_DIM).astype(np.float32), 50.0)
                        for _ in range(400)])
    assert actions.shape == (400, ACTION_DIM) and actions.dtype == np.float32
    assert np.all(actions >= LOW) and np.all(actions <= HIGH)
    for d in range(ACTION_DIM):
        assert np.any(actions[:, d] == LOW[d]) and np.any(actions[:, d] == HIGH[d]), d


def test_random_actions_cover_each_dimensions_own_range() -> None:
    agent = _agent()
    actions = np.array([agent.random_action() for _ in range(3000)])
    assert np.all(actions >= LOW) and np.all(actions <= HIGH)
    np.testing.assert_allclose(actions.min(axis=0), LOW, atol=0.01 * (HIGH - LOW).max())
    np.testing.assert_allclose(actions.max(axis=0), HIGH, atol=0.01 * (HIGH - LOW).max())


def test_learn_regresses_both_critics_on_the_clipped_double_q_target() -> None:
    """Without target noise, y = r + gamma * (1 - terminated) * min(Q1'(s', mu'(s')), Q2'(s', mu'(s'))),
    computed here by hand; the returned critic loss is MSE(Q1(s, a), y) + MSE(Q2(s, a), y) before the step.
    Either target critic alone gives another loss, so the check sees the minimum."""
    agent = _agent(dataclasses.replace(TD3, target_noise=0.0))
    b = _batch(3, size=256)
    next_action = _mu(agent.actor_target, b.next_state)
    q1_next, q2_next = _q(agent.critic_target, b.next_state, next_action), _q(agent.critic2_target, b.next_state,
                                                                              next_action)
    assert np.any(q1_next < q2_next) and np.any(q2_next < q1_next)  # the minimum picks from both

    def loss(q_next: np.ndarray) -> float:
        y = b.reward + TD3.gamma * (1 - b.terminated) * q_next
        return float(((_q(agent.critic, b.state, b.action) - y) ** 2).mean()
                     + ((_q(agent.critic2, b.state, b.action) - y) ** 2).mean())

    expected = loss(np.minimum(q1_next, q2_next))
    others = (loss(q1_next), loss(q2_next))
    got = float(agent.learn(b)["critic loss"])
    assert got == pytest.approx(expected, rel=1e-5)
    assert all(other != pytest.approx(expected, rel=1e-3) for other in others)


def test_target_q_with_smoothing_noise_reproduced_from_the_generator() -> None:
    """a' = clip(mu'(s') + clip(target_noise * N(0, 1), -c, c) * half-range, low, high), the noise drawn from
    the agent's generator (so a checkpoint covers it); Q' = min of the two target critics at a'."""
    agent = _agent()
    next_state = _batch(4).next_state
    rng = copy.deepcopy(agent.rng)
    noise = np.clip(TD3.target_noise * rng.standard_normal((len(next_state), ACTION_DIM)),
                    -TD3.target_noise_clip, TD3.target_noise_clip) * HALF_RANGE
    next_action = np.clip(_mu(agent.actor_target, next_state) + noise, LOW, HIGH)
    expected = np.minimum(_q(agent.critic_target, next_state, next_action),
                          _q(agent.critic2_target, next_state, next_action))
    with paddle.no_grad():
        got = agent.target_q(paddle.to_tensor(next_state), agent.draw_target_noise(len(next_state))).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert rng.bit_generator.state == agent.rng.bit_generator.state  # one draw of the batch's shape, no more


def test_target_smoothing_noise_is_clipped_per_dimension() -> None:
    """With noise std 10 (clip 0.3) almost every draw is clipped: the action the target critic sees differs
    from mu'(s') by at most 0.3 * half-range in each dimension, and by exactly that much somewhere."""
    clip = 0.3
    agent = _agent(dataclasses.replace(TD3, target_noise=10.0, target_noise_clip=clip))
    seen: list[np.ndarray] = []
    agent.critic_target.register_forward_pre_hook(lambda layer, inputs: seen.append(inputs[1].numpy().copy()))
    next_state = _batch(5, size=512).next_state
    with paddle.no_grad():
        agent.target_q(paddle.to_tensor(next_state), agent.draw_target_noise(len(next_state)))
    (next_action,) = seen
    shift = next_action - _mu(agent.actor_target, next_state)
    assert np.all(next_action >= LOW) and np.all(next_action <= HIGH)
    assert np.all(np.abs(shift) <= clip * HALF_RANGE + 1e-6)
    np.testing.assert_allclose(np.abs(shift).max(axis=0), clip * HALF_RANGE, rtol=1e-5)


def test_actor_and_targets_move_only_every_policy_delay_learn_steps() -> None:
    """policy_delay 2 over 7 learn() calls: the critics move every call; the actor and all three targets
    move on calls 2, 4 and 6 only (7 // 2 times), exactly the calls that report an actor loss."""
    agent = _agent()
    moves = {name: [] for name in NETS}
    reported = []
    for call in range(1, 8):
        before = {name: _params(agent, name) for name in NETS}
        reported.append("actor loss" in agent.learn(_batch(100 + call)))
        for name in NETS:
            moves[name].append(_changed(before[name], _params(agent, name)))
    delayed = [call % 2 == 0 for call in range(1, 8)]
    assert reported == delayed and sum(delayed) == 7 // 2
    for name in ("critic", "critic2"):
        assert all(moves[name]), name
    for name in ("actor", "actor_target", "critic_target", "critic2_target"):
        assert moves[name] == delayed, name
    assert agent.learn_steps == 7


def test_ddpg_is_the_special_case_one_critic_no_delay_no_target_noise() -> None:
    """algo ddpg with its default delay ignores the TD3 settings given with it: no second critic, an actor step
    on every call, a deterministic target that draws nothing from the generator."""
    agent = _agent(dataclasses.replace(TD3, algo="ddpg", policy_delay=0, target_noise=0.5))
    assert agent.critic2 is None and agent.critic2_target is None
    assert agent.policy_delay == 1 and agent.target_noise == 0.0
    next_state = _batch(6).next_state
    generator_state = copy.deepcopy(agent.rng.bit_generator.state)
    assert agent.draw_target_noise(len(next_state)) is None
    with paddle.no_grad():
        got = agent.target_q(paddle.to_tensor(next_state)).numpy()
    expected = _q(agent.critic_target, next_state, _mu(agent.actor_target, next_state))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert agent.rng.bit_generator.state == generator_state
    for call in range(3):
        actor_before = _params(agent, "actor")
        assert "actor loss" in agent.learn(_batch(200 + call))
        assert _changed(actor_before, _params(agent, "actor"))


def test_ddpg_honours_a_policy_delay_and_td3_defaults_to_two() -> None:
    """CleanRL's DDPG steps the actor and the targets every second update: policy_delay 2 says so for DDPG."""
    agent = _agent(dataclasses.replace(TD3, algo="ddpg", policy_delay=2))
    actor_steps = []
    for call in range(1, 5):
        target_before = _params(agent, "critic_target")
        actor_steps.append("actor loss" in agent.learn(_batch(300 + call)))
        assert _changed(target_before, _params(agent, "critic_target")) == actor_steps[-1]
    assert actor_steps == [False, True, False, True]
    assert _agent(dataclasses.replace(TD3, policy_delay=0)).policy_delay == 2


def test_state_dict_round_trip_continues_identically() -> None:
    """A TD3 agent restored (through pickle, as the checkpoint stores it) into a new agent, generator state
    included, takes the next learn() step, an actor step with smoothing noise, to identical parameters."""
    original = _agent(seed=0)
    for i in range(3):
        original.learn(_batch(20 + i))
    saved = pickle.loads(pickle.dumps(original.state_dict()))
    restored = _agent(seed=9)
    assert _changed(_params(original, "critic2"), _params(restored, "critic2"))
    restored.set_state_dict(saved)
    restored.rng.bit_generator.state = original.rng.bit_generator.state
    batch = _batch(30)
    assert set(original.learn(batch)) == set(restored.learn(batch)) == {"critic loss", "actor loss"}
    for name in NETS:
        for x, y in zip(_params(original, name), _params(restored, name)):
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_td3_cli_run_writes_td3_snapshots_and_resumes(tmp_path: Path) -> None:
    """`--algo td3` end to end: td3-actor/td3-critic snapshots and a checkpoint holding the twin critics and
    their optimizer state; --resume continues the run as TD3 without being told."""
    result = run_cli("train", *TINY, "--algo", "td3", "--run-name", "td3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    run_dir = tmp_path / "model" / "td3"
    assert {p.name for p in run_dir.glob("*.pdparams")} == {"td3-actor0.pdparams", "td3-actor2.pdparams",
                                                            "td3-actor-best.pdparams",
                                                            "td3-critic0.pdparams", "td3-critic2.pdparams"}
    assert summary["steps"] == 150 and summary["learn_steps"] == 150 - 64
    saved = load_checkpoint(run_dir / "checkpoint.pdckpt")
    assert saved["config"]["algo"] == "td3"
    assert {"critic2", "critic2_target"} <= set(saved["agent"])
    moments = [k for k in saved["agent"]["critic_optim"] if k.endswith("_moment1_0")]
    assert len(moments) == 2 * len(saved["agent"]["critic"])  # one Adam steps both critics

    resumed = run_cli("train", "--resume", "model/td3", "--episodes", "4", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = last_json(resumed.stdout)
    assert summary["episodes"] == 4 and summary["steps"] == 200 and summary["learn_steps"] == 200 - 64
    assert (run_dir / "td3-actor3.pdparams").is_file() and not list(run_dir.glob("ddpg-*"))


@pytest.mark.parametrize("algo, delay", [("ddpg", 1), ("td3", 2)])
def test_a_0_3_checkpoint_keeps_the_delay_its_run_trained_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               algo: str, delay: int) -> None:
    """0.3 wrote policy_delay 2 into every config, which its DDPG ignored: its DDPG runs resume with a delay of 1."""
    from paddle_ddpg import checkpoint
    from paddle_ddpg.loop import Trainer

    trainer = Trainer(Config(algo=algo, policy_delay=2, memory_size=100, actor_hidden=(8,), critic_hidden=(8,)))
    monkeypatch.setattr(checkpoint, "FORMAT", "paddle_ddpg/3")
    checkpoint.save_checkpoint(tmp_path / "c.pdckpt", checkpoint.capture(trainer, tmp_path, tmp_path, ("x", 0)))
    monkeypatch.undo()
    trainer.close()
    saved = load_checkpoint(tmp_path / "c.pdckpt")
    assert saved["format"] == "paddle_ddpg/3" and saved["config"]["policy_delay"] == delay
