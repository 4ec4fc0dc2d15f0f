"""Export of a trained actor for deployment (`paddle.jit.save`), and `paddle_ddpg.evaluate` running it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest

from conftest import TrainedRun, assert_usage_error, last_json, run_cli
from paddle_ddpg.config import UsageError
from paddle_ddpg.env import make_env
from paddle_ddpg.export import export_actor
from paddle_ddpg.policy import META_SUFFIX, PARAMS_SUFFIX, exported_prefix, load_policy, read_meta
from paddle_ddpg.networks import Actor

EVAL_ARGS = ["--episodes", "3", "--seed", "7"]


def _actor_for(case: str) -> tuple[Actor, str | None]:
    """A randomly initialised actor shaped for `case`: a real env's spaces, or hand-made bounds whose
    three dimensions have different centres and widths (the bias and scale the export must carry)."""
    if case == "asymmetric":
        return Actor(5, 3, [-1.0, 0.0, 2.0], [3.0, 1.0, 5.0], hidden=(32, 32)), None
    if case == "HalfCheetah-v5":
        pytest.importorskip("mujoco")
    env = make_env(case)
    env.close()
    return Actor(env.observation_space.shape[0], env.action_space.shape[0], env.action_space.low,
                 env.action_space.high, hidden=(32, 32)), case


@pytest.mark.parametrize("case", ["Pendulum-v1", "HalfCheetah-v5", "asymmetric"])
def test_exported_model_acts_as_the_actor(tmp_path: Path, case: str) -> None:
    """For a batch of env-scale states, and for one state, the exported program returns the Actor layer's
    env-scale actions; its meta file records the env and the sizes and bounds."""
    paddle.seed(3)
    actor, env_id = _actor_for(case)
    state_dim, action_dim = actor.fcs[0].weight.shape[0], actor.fcs[-1].weight.shape[1]
    files = export_actor(actor, tmp_path / "out" / "actor", env_id, 123)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in files)
    exported, meta = load_policy(tmp_path / "out" / "actor").network, read_meta(str(tmp_path / "out" / "actor"))

    states = np.random.default_rng(0).normal(0.0, 3.0, (256, state_dim)).astype(np.float32)
    with paddle.no_grad():
        expected = actor(paddle.to_tensor(states)).numpy()
        got = exported(paddle.to_tensor(states)).numpy()
        single = exported(paddle.to_tensor(states[:1])).numpy()
    assert got.shape == (256, action_dim)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(single, expected[:1], atol=1e-6, rtol=0)
    low, high = actor.action_low.numpy(), actor.action_high.numpy()
    assert np.all(got >= low - 1e-6) and np.all(got <= high + 1e-6)
    assert np.ptp(got, axis=0).min() > 0.1 * (high - low).min()  # not a constant: the states reach the weights
    assert meta["env"] == env_id and meta["max_episode_steps"] == 123
    assert (meta["state_dim"], meta["action_dim"]) == (state_dim, action_dim)
    np.testing.assert_array_equal(meta["action_low"], low)
    np.testing.assert_array_equal(meta["action_high"], high)


def test_export_leaves_the_actor_trainable(tmp_path: Path) -> None:
    """jit.save traces the actor; the layer itself stays an ordinary dynamic-graph layer in training mode."""
    actor, _ = _actor_for("asymmetric")
    export_actor(actor, tmp_path / "actor")
    assert actor.training
    loss = actor(paddle.ones([4, 5])).sum()
    loss.backward()
    assert actor.fcs[0].weight.grad is not None


def test_exported_prefix_names_an_export_by_prefix_or_any_of_its_files(tmp_path: Path) -> None:
    actor, _ = _actor_for("asymmetric")
    export_actor(actor, tmp_path / "m")
    prefix = str(tmp_path / "m")
    for path in (prefix, prefix + ".json", prefix + PARAMS_SUFFIX, prefix + META_SUFFIX):
        assert exported_prefix(path) == prefix, path
    assert exported_prefix(str(tmp_path)) is None  # a directory is a run directory
    assert exported_prefix(str(tmp_path / "checkpoint.pdckpt")) is None
    assert exported_prefix(str(tmp_path / "ddpg-actor3.pdparams")) is None


@pytest.fixture(scope="module")
def exported(base_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """The shared tiny Pendulum run exported by the CLI: (prefix, the CLI's JSON line)."""
    prefix = tmp_path_factory.mktemp("exported") / "actor"
    result = run_cli("export", "--checkpoint", "model/base", "--output", str(prefix), cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    return prefix, last_json(result.stdout)


def test_export_cli_writes_program_weights_and_meta(exported: tuple[Path, dict]) -> None:
    """The JSON line lists exactly the files written; the meta keeps the run's env and its 50-step limit."""
    prefix, printed = exported
    files = sorted(printed["files"])
    assert files == sorted(str(p) for p in prefix.parent.iterdir())
    assert files == sorted(str(prefix) + s for s in (".json", PARAMS_SUFFIX, META_SUFFIX))  # Paddle 3 (PIR)
    meta = json.loads(Path(str(prefix) + META_SUFFIX).read_text())
    assert (meta["env"], meta["max_episode_steps"]) == ("Pendulum-v1", 50) == (printed["env"],
                                                                               printed["max_episode_steps"])


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_evaluating_the_export_gives_the_checkpoints_returns(base_run: TrainedRun, exported: tuple[Path, dict],
                                                             suffix: str) -> None:
    """Same seed and episodes: the exported program scores what the checkpoint scores, episode for episode,
    which needs the same actions and the run's 50-step limit (Pendulum's own limit is 200)."""
    prefix, _ = exported
    from_checkpoint = run_cli("evaluate", "--checkpoint", "model/base", *EVAL_ARGS, cwd=base_run.root)
    from_export = run_cli("evaluate", "--checkpoint", str(prefix) + suffix, *EVAL_ARGS, cwd=base_run.root)
    assert from_checkpoint.returncode == 0, from_checkpoint.stderr
    assert from_export.returncode == 0, from_export.stderr
    expected, got = last_json(from_checkpoint.stdout), last_json(from_export.stdout)
    assert got["episodes"] == 3 and got["returns"] == expected["returns"]
    assert got["mean_return"] == pytest.approx(expected["mean_return"], rel=1e-9)
    assert -16.3 * 50 <= got["mean_return"] <= 0  # 50-step episodes: Pendulum's reward is in [-16.3, 0] per step


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


# damage done to a copy of the export, extra evaluate arguments, text the one error line must contain
DAMAGE = {
    "truncated weights": (lambda p: _truncate(Path(str(p) + PARAMS_SUFFIX)), [], "corrupt or truncated"),
    "garbage program": (lambda p: Path(str(p) + ".json").write_text("not a program"), [], "corrupt"),
    "truncated program": (lambda p: _truncate(Path(str(p) + ".json")), [], "corrupt"),
    "missing weights": (lambda p: Path(str(p) + PARAMS_SUFFIX).unlink(), [], PARAMS_SUFFIX),
    "missing program": (lambda p: Path(str(p) + ".json").unlink(), [], "incomplete"),
    "garbage meta": (lambda p: Path(str(p) + META_SUFFIX).write_text("{"), [], META_SUFFIX),
    "missing meta": (lambda p: Path(str(p) + META_SUFFIX).unlink(), [], META_SUFFIX),
    "env of other sizes": (lambda p: None, ["--env", "MountainCarContinuous-v0"], "MountainCarContinuous-v0"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_export_is_one_usage_error_line(exported: tuple[Path, dict], tmp_path: Path, case: str) -> None:
    damage, args, needle = DAMAGE[case]
    prefix = tmp_path / "actor"
    for f in exported[0].parent.iterdir():
        shutil.copy(f, tmp_path / f.name)
    damage(prefix)
    result = run_cli("evaluate", "--checkpoint", str(prefix) + ".json", "--episodes", "1", *args, cwd=tmp_path)
    assert_usage_error(result, needle)


def test_missing_export_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_policy(tmp_path / "nothing")


def test_export_cli_usage_errors(base_run: TrainedRun, exported: tuple[Path, dict], tmp_path: Path) -> None:
    """A missing checkpoint, an output path that cannot be written, and an export given as the checkpoint
    are one line each with status 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, needle in ((["--checkpoint", "model/nothing", "--output", str(tmp_path / "a")], "model/nothing"),
                         (["--checkpoint", "model/base", "--output", str(blocker / "a")], "cannot write"),
                         (["--checkpoint", str(exported[0]), "--output", str(tmp_path / "b")], "exported model")):
        assert_usage_error(run_cli("export", *args, cwd=base_run.root), needle)
