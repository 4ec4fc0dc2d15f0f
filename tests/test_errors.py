"""The programs' main(argv): every user mistake gets exit status 2, one line on stderr, no traceback, and
leaves the files already on disk exactly as they were; a diverging run stops with status 1 and a good
checkpoint."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest

from conftest import TINY, TrainedRun, assert_usage_error, record_file, run_cli, run_process, scalars, snapshot
from paddle_ddpg import runfiles
from paddle_ddpg.checkpoint import load_checkpoint
from paddle_ddpg.files import SaveError


def _write_bad_config(root: Path, kind: str) -> str:
    path = root / f"{kind}.json"
    if kind == "unparsable":
        path.write_text('{"lr_actor": 1e-4,')
    elif kind == "unknown_key":
        path.write_text('{"lr_actr": 1e-4}')
    elif kind == "wrong_type":
        path.write_text('{"batch_size": "32"}')
    elif kind == "not_utf8":
        path.write_bytes(b"\xff\xfe{}")
    elif kind == "nul_in_logdir":
        path.write_text('{"logdir": "a\\u0000b"}')
    return str(path.relative_to(root))


# (extra train arguments, text the one error line must contain)
TRAIN_USAGE_ERRORS = {
    "unknown env": (["--env", "Pendulum-v0"], ["Pendulum-v1"]),
    "discrete actions": (["--env", "CartPole-v1"], ["CartPole-v1", "Discrete"]),
    "lr_actor zero": (["--lr-actor", "0"], ["lr_actor"]),
    "lr_critic negative": (["--lr-critic=-1e-3"], ["lr_critic"]),
    "tau zero": (["--tau", "0"], ["tau"]),
    "tau above one": (["--tau", "1.5"], ["tau"]),
    "gamma above one": (["--gamma", "1.5"], ["gamma"]),
    "batch above memory": (["--batch-size", "64", "--memory-size", "32"], ["batch_size", "memory_size"]),
    "zero episodes": (["--episodes", "0"], ["episodes"]),
    "unknown preset": (["--preset", "nope"], ["nope"]),
    "not an integer": (["--episodes", "1.5"], ["--episodes"]),
    "unknown flag": (["--lr-actr", "1e-4"], ["--lr-actr"]),
    "missing config file": (["--config", "nope.json"], ["nope.json"]),
    "unparsable config file": (["--config", "@unparsable"], ["not valid JSON"]),
    "unknown key in config file": (["--config", "@unknown_key"], ["lr_actr"]),
    "wrong type in config file": (["--config", "@wrong_type"], ["batch_size"]),
    "resume missing checkpoint": (["--resume", "model/base/nope.pdckpt"], ["nope.pdckpt"]),
    "existing run name": (["--run-name", "base"], ["base", "--resume", "--overwrite"]),
    "negative seed": (["--seed=-1"], ["seed"]),
    "seed past 64 bits": (["--seed", str(2**64)], ["seed"]),
    "infinite reward offset": (["--reward-offset", "inf"], ["reward_offset", "finite"]),
    "infinite learning rate": (["--lr-actor", "inf"], ["lr_actor", "finite"]),
    "run name longer than a file name": (["--run-name", "x" * 300], ["run_name", "255"]),
    "config file not UTF-8": (["--config", "@not_utf8"], ["UTF-8"]),
    "NUL in a path": (["--config", "@nul_in_logdir"], ["logdir", "NUL"]),
    "memory past any machine": (["--memory-size", str(10**19)], ["memory_size", "GiB"]),
    "resume with other noise": (["--resume", "model/base", "--noise", "ou"], ["noise", "gaussian"]),
    "resume under a new run name": (["--resume", "model/base", "--run-name", "other"], ["run_name", "base"]),
    "resume into another log dir": (["--resume", "model/base", "--logdir", "elsewhere"], ["logdir"]),
    "resume with a preset": (["--resume", "model/base", "--preset", "fast"], ["--preset", "--resume"]),
    "resume with overwrite": (["--resume", "model/base", "--overwrite"], ["--overwrite", "--resume"]),
    "resume on another env": (["--resume", "model/base/checkpoint.pdckpt", "--env", "MountainCarContinuous-v0"],
                              ["env"]),
    "resume with other network sizes": (["--resume", "model/base", "--actor-hidden", "64", "64"], ["actor_hidden"]),
    # --overwrite replaces a run only once the new one can start
    "overwrite with an unknown env": (["--run-name", "base", "--overwrite", "--env", "Pendulum-v0"], ["Pendulum-v1"]),
}


@pytest.mark.parametrize("case", list(TRAIN_USAGE_ERRORS))
def test_train_usage_errors(base_copy: TrainedRun, case: str) -> None:
    """Each mistake is named on one line with status 2; the existing run's files are byte-for-byte
    unchanged, and (as the README promises) nothing else appears on disk either."""
    args, needles = TRAIN_USAGE_ERRORS[case]
    root = base_copy.root
    args = [_write_bad_config(root, a[1:]) if a.startswith("@") else a for a in args]
    before = snapshot(root)
    run_name = [] if "--run-name" in args or "--resume" in args else ["--run-name", "new"]
    result = run_cli("train", *TINY, *run_name, *args, cwd=root)
    assert_usage_error(result, *needles)
    after = snapshot(root)
    assert {k: after.get(k) for k in before} == before, "pre-existing files changed"
    assert sorted(set(after) - set(before)) == [], "a rejected command created files or directories"


@pytest.mark.subprocess
@pytest.mark.parametrize("args, needle", [
    (["train", *TINY, "--run-name", "new", "--env", "Pendulum-v0"], "Pendulum-v1"),
    (["evaluate", "--checkpoint", "model/base", "--env", "MountainCarContinuous-v0", "--episodes", "1"],
     "MountainCarContinuous-v0"),
    (["export", "--checkpoint", "model/base", "--output", "exported/"], "prefix")])
def test_a_real_process_says_it_in_one_line(base_copy: TrainedRun, args: list[str], needle: str) -> None:
    """What the in-process tests cannot see: a real interpreter's stderr, which Paddle's C++ side writes to as
    well, holds the one line, and the process exits with status 2."""
    assert_usage_error(run_process(args[0], *args[1:], cwd=base_copy.root), needle)


def _truncated_checkpoint(run: TrainedRun) -> str:
    source = run.run_dir / "checkpoint.pdckpt"
    target = run.root / "truncated.pdckpt"
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return target.name


def _random_bytes(run: TrainedRun) -> str:
    target = run.root / "random.pdckpt"
    target.write_bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8).tobytes())
    return target.name


@pytest.mark.parametrize("make, needle", [(_truncated_checkpoint, "corrupt"), (_random_bytes, "random.pdckpt")])
@pytest.mark.parametrize("command", [["train", "--resume"], ["evaluate", "--episodes", "1", "--checkpoint"]])
def test_a_bad_checkpoint(base_copy: TrainedRun, make: Callable[[TrainedRun], str], needle: str,
                          command: list[str]) -> None:
    path = make(base_copy)
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli(*command, path, cwd=base_copy.root), needle)
    assert snapshot(base_copy.root) == before


@pytest.mark.parametrize("args, needles", [
    (["--checkpoint", "model/nothing"], ["model/nothing"]),
    (["--checkpoint", "model/base", "--episodes", "0"], ["episodes"]),
    (["--checkpoint", "model/base", "--seed=-1"], ["seed"]),
    # a Pendulum checkpoint (observation 3) on MountainCarContinuous (observation 2): a sentence naming both
    # envs, not a matmul shape error
    (["--checkpoint", "model/base", "--env", "MountainCarContinuous-v0", "--episodes", "1"],
     ["Pendulum-v1", "MountainCarContinuous-v0"]),
])
def test_evaluate_usage_errors(base_copy: TrainedRun, args: list[str], needles: list[str]) -> None:
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli("evaluate", *args, cwd=base_copy.root), *needles)
    assert snapshot(base_copy.root) == before


def test_evaluate_a_critic_file_as_an_actor(base_copy: TrainedRun) -> None:
    """ddpg-critic*.pdparams has the actor's keys but a (257, 128) fc2: loading it as an actor must be
    refused, not run with fc2 silently left at random initial weights; renamed, its sizes give it away."""
    result = run_cli("evaluate", "--checkpoint", "model/base/ddpg-critic2.pdparams", "--episodes", "1",
                     cwd=base_copy.root)
    assert_usage_error(result, "critic snapshot")
    (base_copy.run_dir / "ddpg-critic2.pdparams").rename(base_copy.run_dir / "renamed.pdparams")
    result = run_cli("evaluate", "--checkpoint", "model/base/renamed.pdparams", "--episodes", "1",
                     cwd=base_copy.root)
    assert_usage_error(result, "actor weights")


@pytest.mark.parametrize("settings, needle", [('{"env": 5}', "env"), ('{"max_episode_steps": "x"}',
                                                                        "max_episode_steps")])
def test_evaluate_a_snapshot_beside_damaged_settings(base_copy: TrainedRun, settings: str, needle: str) -> None:
    """A hand-edited config.json beside a snapshot is named in one line, not met with a TypeError."""
    (base_copy.run_dir / "config.json").write_text(settings)
    result = run_cli("evaluate", "--checkpoint", "model/base/ddpg-actor2.pdparams", "--episodes", "1",
                     cwd=base_copy.root)
    assert_usage_error(result, needle, "config.json")


def test_export_to_a_directory_name(base_copy: TrainedRun) -> None:
    before = snapshot(base_copy.root)
    for output in ("exported/", ""):
        result = run_cli("export", "--checkpoint", "model/base", "--output", output, cwd=base_copy.root)
        assert_usage_error(result, "prefix")
    assert snapshot(base_copy.root) == before


def test_env_whose_package_is_missing(tmp_path: Path) -> None:
    """gymnasium registers environments whose package may be absent (phys2d/ needs jax): one line naming
    the package, not a ModuleNotFoundError."""
    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed here")
    result = run_cli("train", *TINY, "--env", "phys2d/Pendulum-v0", cwd=tmp_path)
    assert_usage_error(result, "phys2d/Pendulum-v0", "jax")
    assert list(tmp_path.iterdir()) == []


def test_a_run_without_a_checkpoint_is_not_offered_for_resuming(tmp_path: Path) -> None:
    """A run that stopped before its first checkpoint (here: only its config.json) cannot be resumed, so the
    name clash must not suggest --resume with a file that does not exist."""
    (tmp_path / "model" / "early").mkdir(parents=True)
    (tmp_path / "model" / "early" / "config.json").write_text("{}")
    result = run_cli("train", *TINY, "--run-name", "early", cwd=tmp_path)
    line = assert_usage_error(result, "early", "--overwrite")
    assert "--resume" not in line, line


def _directory_is_writable(path: Path) -> bool:
    probe = path / ".probe"
    try:
        probe.touch()
    except OSError:
        return False
    probe.unlink()
    return True


def test_model_dir_without_write_permission(base_copy: TrainedRun) -> None:
    """A read-only --model-dir is reported before training, not after the first episode's save fails."""
    locked = base_copy.root / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if _directory_is_writable(locked):
            pytest.skip("running as root: a 0o500 directory is still writable (see the next test)")
        before = snapshot(base_copy.root)
        result = run_cli("train", *TINY, "--run-name", "new", "--model-dir", "locked", cwd=base_copy.root)
        assert_usage_error(result, "cannot write")
        assert snapshot(base_copy.root) == before
    finally:
        locked.chmod(0o700)


def test_model_dir_under_a_regular_file(base_copy: TrainedRun) -> None:
    """A --model-dir below an existing regular file cannot be created by anyone, root included."""
    blocker = base_copy.root / "blocker"
    blocker.write_text("a file, not a directory")
    before = snapshot(base_copy.root)
    result = run_cli("train", *TINY, "--run-name", "new", "--model-dir", "blocker/models", cwd=base_copy.root)
    assert_usage_error(result, "cannot write", "blocker")
    assert {k: v for k, v in snapshot(base_copy.root).items() if k in before} == before


def test_overwrite_replaces_the_old_run(base_copy: TrainedRun) -> None:
    """With --overwrite the old run's snapshots, checkpoint and VisualDL record are replaced by the new run's
    (without it, the name is refused: the table above)."""
    result = run_cli("train", *TINY, "--run-name", "base", "--episodes", "2", "--overwrite", cwd=base_copy.root)
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in base_copy.run_dir.iterdir())
    assert names == ["checkpoint.pdckpt", "config.json", "ddpg-actor-best.pdparams", "ddpg-actor0.pdparams",
                     "ddpg-actor1.pdparams", "ddpg-critic0.pdparams", "ddpg-critic1.pdparams"]  # no ddpg-*2 left
    assert load_checkpoint(base_copy.run_dir / "checkpoint.pdckpt")["episode"] == 2
    assert [s for s, _ in scalars(record_file(base_copy.log_dir), "episode reward")] == [0, 1]


def test_non_finite_loss_stops_with_status_1_and_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    """--reward-offset 1e39 makes stored rewards about 1.2e38, whose squared TD error is inf in float32.
    Learning starts in episode 1, after the checkpoint of episode 0 was written: the run must stop with
    status 1 and one line naming the learn step, and leave that checkpoint loadable and finite."""
    result = run_cli("train", *TINY, "--run-name", "nan", "--reward-offset", "1e39", cwd=tmp_path)
    line = assert_usage_error(result, "diverged", status=1)
    assert re.search(r"learn step \d+", line), line

    run_dir = tmp_path / "model" / "nan"
    saved = load_checkpoint(run_dir / "checkpoint.pdckpt")
    assert saved["episode"] == 1  # written after episode 0, before any learning
    for net in ("actor", "critic", "actor_target", "critic_target"):
        assert all(np.isfinite(v).all() for v in saved["agent"][net].values()), net
    snapshot0 = paddle.load(str(run_dir / "ddpg-actor0.pdparams"))
    assert all(np.isfinite(np.asarray(v)).all() for v in snapshot0.values())
    assert sorted(p.name for p in run_dir.glob("ddpg-actor*")) == ["ddpg-actor0.pdparams"]


def test_a_checkpoint_that_cannot_be_written_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk mid-run (the write itself is tested in test_checkpoint.py) ends with status 1 and one line
    naming the file, not a traceback."""
    def disk_full(path: Path, state: dict[str, Any]) -> None:
        raise SaveError(f"cannot write {path}: No space left on device")

    monkeypatch.setattr(runfiles, "save_checkpoint", disk_full)
    result = run_cli("train", *TINY, "--run-name", "full", cwd=tmp_path)
    assert_usage_error(result, "checkpoint.pdckpt: No space left on device", status=1)
