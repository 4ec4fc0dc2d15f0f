"""Files from elsewhere are untrusted, and no failure loses or corrupts a run: code in a file never runs, a
damaged file is one line, writes cannot half-happen, one process writes a run, paths stay inside it, and sizes
are checked before anything is allocated."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import paddle
import pytest
from visualdl.io import bfile

from conftest import (TINY, TrainedRun, assert_usage_error, cli_env, last_json, record_file, run_cli, run_process,
                      scalars, snapshot)
from paddle_ddpg import export as export_module
from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint, load_state_dict, save_checkpoint
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.export import export_actor
from paddle_ddpg.files import remove_stale_temporaries, temporary
from paddle_ddpg.networks import Actor
from paddle_ddpg.policy import META_SUFFIX, load_policy
from paddle_ddpg.train import EnvironmentFault, train


class Planted:
    """Unpickling this runs `touch marker`: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def _plant(directory: Path, marker: Path) -> dict[str, Path]:
    """One malicious file of each kind the package reads, and a run directory holding the checkpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    old_checkpoint = directory / "old.pdckpt"  # version 0.1's format, refused by its tag without unpickling
    old_checkpoint.write_bytes(pickle.dumps({"format": "paddle_ddpg/1", "config": Planted(marker)}, protocol=4))
    snapshot_file = directory / "ddpg-actor3.pdparams"
    snapshot_file.write_bytes(pickle.dumps({"fc1.weight": Planted(marker)}, protocol=4))
    tutorial_file = directory / "ddpg-actor200.para"
    tutorial_file.write_bytes(pickle.dumps({"fc1.weight": Planted(marker)}, protocol=2))
    run_dir = directory / "run"
    run_dir.mkdir()
    shutil.copy(old_checkpoint, run_dir / CHECKPOINT_NAME)
    object_array = directory / "objects.pdckpt"  # our zip format, one array of Python objects inside
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("checkpoint.json", json.dumps({"format": "paddle_ddpg/2", "config": {"__ndarray__": 0}}))
        with archive.open("arrays/0.npy", "w") as member:
            np.save(member, np.array([Planted(marker)], dtype=object), allow_pickle=True)
    object_array.write_bytes(buffer.getvalue())
    legacy_export = directory / "legacy"  # Paddle's pre-PIR export, whose loader unpickles the .info file
    Path(f"{legacy_export}.pdmodel").write_bytes(b"\x00")
    Path(f"{legacy_export}.pdiparams").write_bytes(b"")
    Path(f"{legacy_export}.pdiparams.info").write_bytes(pickle.dumps(Planted(marker)))
    return {"old checkpoint": old_checkpoint, "snapshot": snapshot_file, "tutorial .para": tutorial_file,
            "run directory": run_dir, "object array": object_array, "legacy export": legacy_export}


def test_no_loader_runs_code_from_a_file(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    files = _plant(tmp_path / "files", marker)
    for loader, path in [(load_checkpoint, files["old checkpoint"]), (load_checkpoint, files["object array"]),
                         (load_state_dict, files["snapshot"]), (load_state_dict, files["tutorial .para"])]:
        with pytest.raises(UsageError, match="posix.system|objects|0.1 checkpoint"):
            loader(path)
    for kind in files:
        with pytest.raises(UsageError):
            load_policy(files[kind], env_id="Pendulum-v1")
    assert not marker.exists()


CLI_ENTRIES = [("train", "--resume", "old checkpoint"), ("train", "--resume", "run directory"),
               ("train", "--resume", "object array"), ("evaluate", "--checkpoint", "old checkpoint"),
               ("evaluate", "--checkpoint", "snapshot"), ("evaluate", "--checkpoint", "tutorial .para"),
               ("evaluate", "--checkpoint", "run directory"), ("evaluate", "--checkpoint", "legacy export"),
               ("export", "--checkpoint", "snapshot"), ("export", "--checkpoint", "run directory")]


@pytest.mark.parametrize(("module", "flag", "kind"), CLI_ENTRIES)
def test_no_command_runs_code_from_a_file(tmp_path: Path, module: str, flag: str, kind: str) -> None:
    """Each entry point given a malicious file: one line naming what was refused, status 2, and the planted
    command never ran."""
    _refuse_planted(tmp_path, module, flag, kind, run_cli)


@pytest.mark.subprocess
@pytest.mark.parametrize(("module", "flag", "kind"), [("train", "--resume", "old checkpoint"),
                                                      ("evaluate", "--checkpoint", "legacy export")])
def test_a_real_process_refuses_a_planted_file_in_one_line(tmp_path: Path, module: str, flag: str,
                                                           kind: str) -> None:
    """The same in a real interpreter, whose stderr Paddle's C++ side writes to as well: still one line."""
    _refuse_planted(tmp_path, module, flag, kind, run_process)


def _refuse_planted(tmp_path: Path, module: str, flag: str, kind: str,
                    run: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    marker = tmp_path / "ran"
    files = _plant(tmp_path / "files", marker)
    args = [flag, str(files[kind])] + (["--env", "Pendulum-v1"] if module != "train" else [])
    args += ["--output", str(tmp_path / "out" / "actor")] if module == "export" else []
    line = assert_usage_error(run(module, *args, cwd=tmp_path))
    assert any(reason in line for reason in ("posix.system", "objects", "legacy", "0.1 checkpoint")), line
    assert not marker.exists()


def _doctor(run: TrainedRun, change: Any) -> Path:
    """The run's checkpoint, changed by `change(state)` and written back in the package's own format."""
    path = run.run_dir / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["path"]
    change(state)
    save_checkpoint(path, state)
    return path


DOCTORED = {
    "a missing key": (lambda s: s["agent"].pop("actor_optim"), "actor_optim"),
    "a wrong type": (lambda s: s.update(epsilon="high"), "epsilon"),
    "a wrong shape": (lambda s: s["agent"]["actor"].update({"fc1.weight": np.zeros((4, 4), np.float32)}), "fc1"),
    "a wrong dtype": (lambda s: s["agent"]["critic"].update(
        {"fc1.weight": s["agent"]["critic"]["fc1.weight"].astype(np.int32)}), "floating"),
    "memory rows": (lambda s: s["memory"].update(state=s["memory"]["state"][:-1]), "memory"),
    "a generator state": (lambda s: s["rng"].update(noise={"bit_generator": "PCG64", "state": 5}), "damaged"),
    "evaluations": (lambda s: s.update(evals=["x"]), "damaged"),
    "settings": (lambda s: s["config"].update(lr_actor="fast"), "lr_actor"),
    "sizes": (lambda s: s.update(state_dim=-1), "sizes"),
}


@pytest.mark.parametrize("case", list(DOCTORED))
def test_a_doctored_checkpoint_is_one_line(base_copy: TrainedRun, case: str) -> None:
    change, needle = DOCTORED[case]
    _doctor(base_copy, change)
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli("train", "--resume", "model/base", cwd=base_copy.root), needle)
    assert snapshot(base_copy.root) == before


# Writes that cannot half-happen

def test_a_full_disk_under_the_logs_stops_the_run_and_keeps_the_record(base_copy: TrainedRun,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """VisualDL swallows its write errors; the run checks what reached the file, stops with status 1 and one
    line, and the record holds exactly the points logged before, every one readable."""
    record = record_file(base_copy.log_dir)
    rewards = scalars(record, "episode reward")
    # One write opens the record, the first resumed episode writes 11 values (5 means of each loss and its
    # reward), the disk fills during the second.
    writes, write = [0], bfile.LocalFileSystem._write

    def half_a_record_then_full(self: Any, filename: str, content: bytes, mode: str) -> None:
        writes[0] += 1
        if writes[0] > 14:
            write(self, filename, content[: len(content) // 2], mode)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write(self, filename, content, mode)

    monkeypatch.setattr(bfile.LocalFileSystem, "_write", half_a_record_then_full)
    result = run_cli("train", "--resume", "model/base", "--episodes", "6", cwd=base_copy.root)
    line = assert_usage_error(result, "VisualDL record", status=1)
    assert "cut back" in line
    after = scalars(record_file(base_copy.log_dir), "episode reward")
    assert after[:len(rewards)] == rewards and len(after) == len(rewards) + 1  # the earlier record and episode 3
    with open(record, "rb") as f:  # every record whole: the file ends at a record boundary
        data, end = f.read(), 0
    while end < len(data):
        end += 8 + int.from_bytes(data[end:end + 8], "little")
    assert end == len(data)


def test_a_full_disk_during_export_leaves_nothing_and_the_old_export_intact(base_run: TrainedRun, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = tmp_path / "actor"
    assert run_cli("export", "--checkpoint", str(base_run.run_dir), "--output", str(prefix),
                   cwd=tmp_path).returncode == 0
    before = snapshot(tmp_path)
    save = paddle.jit.save

    def save_then_fail(*args: Any, **kwargs: Any) -> None:
        save(*args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(paddle.jit, "save", save_then_fail)
    for target in (prefix, tmp_path / "new" / "actor"):  # over an export, and where no directory exists yet
        result = run_cli("export", "--checkpoint", str(base_run.run_dir), "--output", str(target), cwd=tmp_path)
        assert_usage_error(result, "No space left on device", "nothing was changed", status=1)
        assert snapshot(tmp_path) == before


def test_an_export_that_fails_while_renaming_puts_the_old_one_back(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    actor = Actor(3, 1, [-2.0], [2.0], hidden=(8,))
    export_actor(actor, tmp_path / "actor", "Pendulum-v1")
    before = snapshot(tmp_path)
    replace, calls = os.replace, []

    def fail_on_the_fifth(source: Any, target: Any) -> None:  # 3 old files moved aside, 1 new one in, then this
        calls.append(target)
        if len(calls) == 5:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        replace(source, target)

    monkeypatch.setattr(export_module.os, "replace", fail_on_the_fifth)
    with pytest.raises(UsageError, match="nothing was changed"):
        export_actor(Actor(3, 1, [-2.0], [2.0], hidden=(8,)), tmp_path / "actor", "Pendulum-v1")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


def test_an_export_never_replaces_a_runs_own_files(base_copy: TrainedRun) -> None:
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli("export", "--checkpoint", "model/base", "--output", "model/base/config",
                               cwd=base_copy.root), "config.json", "not part of an earlier export")
    assert snapshot(base_copy.root) == before


_KILLED_SAVING = """
import os, signal, sys
import paddle_ddpg
real_fsync = os.fsync
def fsync(fd):
    if ".checkpoint.pdckpt." in os.readlink(f"/proc/self/fd/{fd}"):  # the new checkpoint, before its rename
        os.kill(os.getpid(), signal.SIGKILL)
    real_fsync(fd)
os.fsync = fsync
from paddle_ddpg.train import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.subprocess
def test_a_kill_during_a_save_leaves_the_old_checkpoint_and_the_next_start_cleans_up(base_copy: TrainedRun) -> None:
    checkpoint = base_copy.run_dir / CHECKPOINT_NAME
    before = checkpoint.read_bytes()
    result = subprocess.run([sys.executable, "-c", _KILLED_SAVING, "--resume", "model/base", "--episodes", "5"],
                            cwd=base_copy.root, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == -signal.SIGKILL
    leftovers = [p.name for p in base_copy.run_dir.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the kill should have come mid-save"
    assert checkpoint.read_bytes() == before
    resumed = run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in base_copy.run_dir.iterdir() if p.name.endswith(".tmp")]


def test_atomic_writes_leave_names_the_cleanup_knows(tmp_path: Path) -> None:
    made = temporary(tmp_path / CHECKPOINT_NAME)
    (tmp_path / ".hidden-user-file.tmp").write_text("not ours")
    remove_stale_temporaries(tmp_path)
    assert not made.exists() and (tmp_path / ".hidden-user-file.tmp").exists()


# One writer per run

def _start_long_run(root: Path, name: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-m", "paddle_ddpg.train", "--episodes", "100000",
                                "--max-episode-steps", "50", "--learning-starts", "64", "--batch-size", "16",
                                "--eval-interval", "0", "--log-interval", "1", "--run-name", name],
                               cwd=root, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (root / "model" / name / CHECKPOINT_NAME).is_file():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read() if process.stderr else ""
        time.sleep(0.2)
    return process


@pytest.mark.subprocess
def test_a_second_process_on_a_running_run_is_refused(tmp_path: Path) -> None:
    first = _start_long_run(tmp_path, "busy")
    try:
        for args in (["--run-name", "busy", "--overwrite"], ["--resume", "model/busy"]):
            line = assert_usage_error(run_cli("train", *TINY, *args, cwd=tmp_path), "in use by process")
            assert f"process {first.pid} " in line
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM
    # Released on exit: the run resumes now.
    assert run_cli("train", "--resume", "model/busy", "--episodes", str(10**5 + 1), "--total-steps", "1",
                   cwd=tmp_path).returncode == 0


@pytest.mark.subprocess
def test_a_killed_processs_lock_is_taken(tmp_path: Path) -> None:
    first = _start_long_run(tmp_path, "dead")
    first.kill()
    first.communicate(timeout=60)
    result = run_cli("train", "--resume", "model/dead", "--total-steps", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# Paths stay inside the run

def test_resuming_through_a_symlink_logs_into_the_runs_own_logs(base_copy: TrainedRun) -> None:
    elsewhere = base_copy.root / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "link").symlink_to(base_copy.run_dir)
    before = len(scalars(record_file(base_copy.log_dir), "episode reward"))
    result = run_cli("train", "--resume", "elsewhere/link", "--episodes", "4", cwd=base_copy.root)
    assert result.returncode == 0, result.stderr
    assert len(scalars(record_file(base_copy.log_dir), "episode reward")) == before + 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["link"] and not (base_copy.root / "logs" / "link").exists()


def test_a_copied_run_gets_its_own_logs(base_copy: TrainedRun) -> None:
    copy = base_copy.root / "model" / "copy"
    shutil.copytree(base_copy.run_dir, copy)
    original = record_file(base_copy.log_dir).read_bytes()
    result = run_cli("train", "--resume", "model/copy", "--episodes", "4", cwd=base_copy.root)
    assert result.returncode == 0, result.stderr
    assert record_file(base_copy.log_dir).read_bytes() == original
    assert last_json(result.stdout)["logdir"].endswith(os.path.join("logs", "copy"))
    assert [step for step, _ in scalars(record_file(base_copy.root / "logs" / "copy"), "episode reward")] == [3]


def test_a_symlink_planted_in_the_log_directory_is_not_followed(base_copy: TrainedRun) -> None:
    outside = base_copy.root / "outside.txt"
    outside.write_text("keep me")
    (base_copy.log_dir / "vdlrecords.9999999999.log").symlink_to(outside)
    assert_usage_error(run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root),
                       "symbolic link")
    assert outside.read_text() == "keep me"


# Limits on input

@pytest.mark.parametrize(("args", "needle"), [(["--actor-hidden", "1000000000"], "GiB"),
                                              (["--critic-hidden", "100000", "100000"], "GiB"),
                                              (["--memory-size", str(10**12)], "GiB"),
                                              (["--config", "/dev/zero"], "not a regular file")])
def test_sizes_beyond_the_machine_are_refused_before_allocation(tmp_path: Path, args: list[str],
                                                                needle: str) -> None:
    """The refusal does not wait for an allocation: it comes before the env is stepped, and writes nothing."""
    result = run_cli("train", *TINY, *args, cwd=tmp_path)
    assert_usage_error(result, needle)
    assert "Epoch" not in result.stdout
    assert list(tmp_path.iterdir()) == []


class _Glitching(gym.Wrapper):
    """Pendulum whose observation turns NaN at one step of the run."""

    at = 0
    steps = 0

    def step(self, action: np.ndarray) -> Any:
        observation, reward, terminated, truncated, info = self.env.step(action)
        _Glitching.steps += 1
        if _Glitching.steps == _Glitching.at:
            observation = np.full_like(observation, np.nan)
        return observation, reward, terminated, truncated, info


def _glitching(**kwargs: Any) -> gym.Env:
    return _Glitching(gym.make("Pendulum-v1", **kwargs))


@pytest.mark.parametrize("at", [30, 120])
def test_a_non_finite_observation_is_named_as_the_envs_before_it_is_stored(tmp_path: Path, at: int) -> None:
    """Before learning starts (step 30) and after (step 120): the run stops naming the env and the step, and
    the last checkpoint holds no NaN."""
    if "GlitchingPendulum-v0" not in gym.registry:
        gym.register("GlitchingPendulum-v0", entry_point=_glitching, max_episode_steps=50)
    _Glitching.at, _Glitching.steps = at, 0
    config = Config(env="GlitchingPendulum-v0", episodes=5, learning_starts=64, batch_size=16, eval_interval=0,
                    log_interval=1, run_name="glitch", logdir=str(tmp_path / "logs"), model_dir=str(tmp_path / "m"))
    with pytest.raises(EnvironmentFault, match=f"GlitchingPendulum-v0 returned a non-finite value at env step {at}"):
        train(config)
    checkpoint = tmp_path / "m" / "glitch" / CHECKPOINT_NAME
    if checkpoint.exists():
        memory = load_checkpoint(checkpoint)["memory"]
        assert all(np.isfinite(memory[k]).all() for k in ("state", "next_state", "reward"))
    assert at > 50 or not checkpoint.exists()


def test_export_meta_of_the_wrong_shape_is_one_line(base_run: TrainedRun, tmp_path: Path) -> None:
    prefix = tmp_path / "actor"
    assert run_cli("export", "--checkpoint", str(base_run.run_dir), "--output", str(prefix),
                   cwd=tmp_path).returncode == 0
    meta_path = Path(f"{prefix}{META_SUFFIX}")
    meta = json.loads(meta_path.read_text())
    for change, needle in (({"state_dim": None}, "state_dim"), ({"env": ["Pendulum-v1"]}, "env"),
                           ({"action_low": [0.0, 1.0]}, "action_low")):
        meta_path.write_text(json.dumps({**meta, **change}))
        assert_usage_error(run_cli("evaluate", "--checkpoint", str(prefix), "--episodes", "1", cwd=tmp_path), needle)
