"""Files from elsewhere, second round: arrays hold the bytes they declare, an array is read once however often a
document names it, a resumed run writes only inside its run, a kill leaves no step logged twice, and the
system's refusals (a name too long, a full disk) are one line."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import save as safetensors_bytes

from conftest import TINY, TrainedRun, assert_usage_error, cli_env, record_file, run_cli, scalars, snapshot
from paddle_ddpg import checkpoint
from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from paddle_ddpg.config import UsageError
from paddle_ddpg.snapshot import load_state_dict

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's own, under whichever module name it has
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]


class Declared:
    """Pickles as numpy's `_reconstruct(ndarray, shape, dtype)`, then BUILD with `state` if given: an array
    whose data the file may or may not hold."""

    def __init__(self, shape: tuple[int, ...], state: tuple[Any, ...] | None = None) -> None:
        self.shape, self.state = shape, state

    def __reduce__(self) -> tuple[Any, ...]:
        args = (_RECONSTRUCT, (np.ndarray, self.shape, np.dtype("f4")))
        return args if self.state is None else (*args, self.state)


class FromBuffer:
    """Pickles as protocol 5's `_frombuffer(bytes, dtype, shape, order)`."""

    def __init__(self, data: bytes, shape: tuple[int, ...]) -> None:
        self.data, self.shape = data, shape

    def __reduce__(self) -> tuple[Any, ...]:
        return _FROMBUFFER, (bytearray(self.data), np.dtype("f4"), self.shape, "C")


ACTOR = {"fc1.weight": (3, 128), "fc1.bias": (128,), "fc2.weight": (128, 1), "fc2.bias": (1,)}

SNAPSHOTS = {
    "2^26 wide, no bytes": ({"fc1.weight": Declared((3, 1 << 26))}, "holds no bytes"),
    "3x128, no bytes": ({name: Declared(shape) for name, shape in ACTOR.items()}, "holds no bytes"),
    "3x128 over 16 bytes": ({"fc1.weight": Declared((0,), (1, (3, 128), np.dtype("f4"), False, b"\0" * 16))},
                            "which its 16 bytes do not hold"),
    "protocol 5, 2^26 wide over 16 bytes": ({"fc1.weight": FromBuffer(b"\0" * 16, (3, 1 << 26))},
                                            "which its 16 bytes do not hold"),
}


@pytest.mark.parametrize("case", list(SNAPSHOTS))
def test_a_snapshot_declaring_bytes_it_does_not_hold_is_refused_before_allocation(tmp_path: Path,
                                                                                    case: str) -> None:
    content, needle = SNAPSHOTS[case]
    path = tmp_path / "ddpg-actor3.pdparams"
    path.write_bytes(pickle.dumps(content, protocol=5))
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(UsageError, match=needle):
            load_state_dict(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # no array of the declared size was ever made
    line = assert_usage_error(run_cli("evaluate", "--checkpoint", str(path), "--env", "Pendulum-v1", cwd=tmp_path),
                              needle)
    assert str(path) in line


def test_a_snapshot_with_its_bytes_loads_them(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(2, 3)
    for protocol in (2, 4, 5):
        path = tmp_path / f"p{protocol}.pdparams"
        path.write_bytes(pickle.dumps({"w": weights, "f": np.asfortranarray(weights)}, protocol=protocol))
        loaded = load_state_dict(path)
        np.testing.assert_array_equal(loaded["w"], weights)
        np.testing.assert_array_equal(loaded["f"], weights)


# Checkpoints: one array, many references

def _rewrite(path: Path, change: Any) -> None:
    """Rewrite a safetensors checkpoint's document through `change(document, arrays)`, arrays as they are."""
    with safe_open(str(path), framework="np") as f:
        document = json.loads(f.metadata()[checkpoint.DOCUMENT_KEY])
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    change(document, arrays)
    path.write_bytes(safetensors_bytes(arrays, metadata={checkpoint.DOCUMENT_KEY: json.dumps(document)}))


def _zip_checkpoint(path: Path, document: dict[str, Any], arrays: list[np.ndarray]) -> None:
    """A checkpoint in version 0.2's format: a zip of checkpoint.json and arrays/<i>.npy."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("checkpoint.json", json.dumps({"format": "paddle_ddpg/2", **document}))
        for i, array in enumerate(arrays):
            with archive.open(f"arrays/{i}.npy", "w") as member:
                np.save(member, array)


def test_an_array_referred_to_many_times_is_refused(base_copy: TrainedRun) -> None:
    path = base_copy.run_dir / CHECKPOINT_NAME

    def fan_out(document: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        arrays["big"] = np.zeros(1 << 20, np.float32)
        document["evals"] = [{"__ndarray__": "big"}] * 2000

    _rewrite(path, fan_out)
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli("train", "--resume", "model/base", cwd=base_copy.root), "'big' more than once")
    assert snapshot(base_copy.root) == before
    zipped = base_copy.root / "zipped.pdckpt"
    _zip_checkpoint(zipped, {"evals": [{"__ndarray__": 0}] * 2000}, [np.zeros(1 << 20, np.float32)])
    with pytest.raises(UsageError, match="array 0 more than once"):
        load_checkpoint(zipped)


def test_running_out_of_memory_while_loading_is_one_line(base_copy: TrainedRun,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(checkpoint, "safe_open", no_memory)
    assert_usage_error(run_cli("train", "--resume", "model/base", cwd=base_copy.root), "more data than this machine")


def test_a_huge_array_declared_in_either_format_is_refused_before_allocation(base_copy: TrainedRun) -> None:
    """The safetensors header declaring 10**12 floats over a few bytes (the library checks offsets against the
    file's size), and the same in a version 0.2 zip."""
    path = base_copy.run_dir / CHECKPOINT_NAME
    data = path.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**12]
    encoded = json.dumps(header).encode()
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data[8 + length:])
    assert_usage_error(run_cli("evaluate", "--checkpoint", "model/base", cwd=base_copy.root), "corrupt or truncated")
    zipped = base_copy.root / "zipped.pdckpt"
    _zip_checkpoint(zipped, {"memory": {"__ndarray__": 0}}, [np.zeros(4, np.float32)])
    with zipfile.ZipFile(zipped) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    header_bytes = io.BytesIO()
    np.lib.format.write_array_header_1_0(header_bytes, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    members["arrays/0.npy"] = header_bytes.getvalue() + b"\0" * 16
    with zipfile.ZipFile(zipped, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    with pytest.raises(UsageError, match=r"declares shape \(1000000000000,\)"):
        load_checkpoint(zipped)


def test_the_checkpoint_is_safetensors_with_the_document_in_its_metadata(base_run: TrainedRun) -> None:
    with safe_open(str(base_run.run_dir / CHECKPOINT_NAME), framework="np") as f:
        document = json.loads(f.metadata()[checkpoint.DOCUMENT_KEY])
        names = set(f.keys())
    assert document["format"] == "paddle_ddpg/4" and document["episode"] == 3
    referred = []

    def refs(value: Any) -> None:
        if isinstance(value, dict):
            referred.extend([value["__ndarray__"]] if set(value) == {"__ndarray__"} else [])
            for v in value.values():
                refs(v)
        elif isinstance(value, list):
            for v in value:
                refs(v)

    refs(document)
    assert sorted(referred) == sorted(names) and len(referred) == len(set(referred))


def test_a_checkpoint_of_02_resumes_and_is_rewritten(base_copy: TrainedRun) -> None:
    path = base_copy.run_dir / CHECKPOINT_NAME
    state = load_checkpoint(path)
    for key in ("path", "format", "record"):
        state.pop(key)
    arrays: list[np.ndarray] = []
    document = json.loads(json.dumps(state, default=lambda a: {"__ndarray__": arrays.append(a) or len(arrays) - 1}))
    _zip_checkpoint(path, document, arrays)
    assert load_checkpoint(path)["format"] == "paddle_ddpg/2"
    result = run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root)
    assert result.returncode == 0, result.stderr
    assert path.read_bytes()[8:9] == b"{" and load_checkpoint(path)["episode"] == 4


def test_a_checkpoint_of_01_is_refused_with_how_to_convert_it(base_copy: TrainedRun) -> None:
    """0.1's pickles are never unpickled: one line naming the version that converts them."""
    path = base_copy.run_dir / CHECKPOINT_NAME
    state = load_checkpoint(path)
    for key in ("path", "format", "record"):
        state.pop(key)
    path.write_bytes(pickle.dumps({"format": "paddle_ddpg/1", **state}, protocol=pickle.HIGHEST_PROTOCOL))
    before = snapshot(base_copy.root)
    assert_usage_error(run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root),
                       "is a 0.1 checkpoint", "resume it once with paddle_ddpg 0.2")
    assert snapshot(base_copy.root) == before


# A run's files stay inside the run

@pytest.mark.parametrize("where", ["absolute", "../../.."])
def test_a_stored_log_path_that_leaves_the_run_is_refused(base_copy: TrainedRun, tmp_path: Path, where: str) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "vdlrecords.1.log").write_bytes(b"someone else's record")
    path = base_copy.run_dir / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["path"]
    state["log_dir_from_run_dir"] = str(foreign) if where == "absolute" else "../../.."
    save_checkpoint(path, state)
    before, foreign_before = snapshot(base_copy.root), snapshot(tmp_path)
    line = assert_usage_error(run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root),
                              "lies outside the run")
    assert repr(state["log_dir_from_run_dir"]) in line
    assert snapshot(base_copy.root) == before and snapshot(tmp_path) == foreign_before


def test_a_stored_log_path_to_another_runs_record_is_refused(base_copy: TrainedRun, tmp_path: Path) -> None:
    """A path of the run's own shape (climbing, then its name) that leads to a directory of the same name higher up,
    holding another run's record: refused, and that record is left as it was."""
    other = base_copy.root.parent / "logs" / "base"
    other.mkdir(parents=True)
    (other / "vdlrecords.1.log").write_bytes(b"someone else's record")
    path = base_copy.run_dir / CHECKPOINT_NAME
    state = load_checkpoint(path)
    del state["path"]
    state["log_dir_from_run_dir"] = os.path.join("..", "..", "..", "logs", "base")
    save_checkpoint(path, state)
    before, other_before = snapshot(base_copy.root), snapshot(other)
    assert_usage_error(run_cli("train", "--resume", "model/base", "--episodes", "4", cwd=base_copy.root),
                       "holds another run's VisualDL record")
    assert snapshot(base_copy.root) == before and snapshot(other) == other_before


def test_the_log_path_of_the_default_layout_is_accepted(base_copy: TrainedRun) -> None:
    state = load_checkpoint(base_copy.run_dir / CHECKPOINT_NAME)
    assert state["log_dir_from_run_dir"] == os.path.join("..", "..", "logs", "base")
    assert checkpoint.log_dir_of(base_copy.run_dir.resolve(), state) == base_copy.log_dir.resolve()
    for bad in ("../../logs/other", "../../logs/../base", "/tmp/logs/base"):
        with pytest.raises(UsageError, match="lies outside the run"):
            checkpoint.log_dir_of(base_copy.run_dir.resolve(), {**state, "log_dir_from_run_dir": bad})


# A kill between checkpoints

def _points(record: Path, tag: str) -> list[int]:
    return [step for step, _ in scalars(record, tag)]


@pytest.mark.subprocess
def test_after_a_kill_resume_logs_no_step_twice(tmp_path: Path) -> None:
    """Checkpoints every 4 episodes; SIGKILL once the record holds episodes past the checkpoint; the resumed
    run's record has each episode reward and each loss step exactly once."""
    args = ["--episodes", "100", "--max-episode-steps", "50", "--learning-starts", "64", "--batch-size", "16",
            "--eval-interval", "0", "--log-interval", "4", "--loss-log-interval", "5", "--run-name", "k"]
    process = subprocess.Popen([sys.executable, "-m", "paddle_ddpg.train", *args], cwd=tmp_path, env=cli_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    saved = tmp_path / "model" / "k" / CHECKPOINT_NAME
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before the kill"
            episode = load_checkpoint(saved)["episode"] if saved.is_file() else 0
            logged = _logged_episodes(tmp_path / "logs" / "k")
            if episode and logged > episode:
                break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    at_kill = load_checkpoint(saved)["episode"]
    assert 0 < at_kill < 100
    resumed = run_cli("train", "--resume", "model/k", "--episodes", str(at_kill + 2), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    record = record_file(tmp_path / "logs" / "k")
    assert _points(record, "episode reward") == list(range(at_kill + 2))
    for tag in ("critic loss", "actor loss"):
        steps = _points(record, tag)
        assert steps and len(steps) == len(set(steps)) and steps == sorted(steps), tag


def _logged_episodes(log_dir: Path) -> int:
    """Episode rewards the record holds so far, counting whole records only (it is being written)."""
    files = sorted(log_dir.glob("vdlrecords.*.log"))
    if not files:
        return 0
    try:
        return len(scalars(files[-1], "episode reward"))
    except Exception:  # a record caught half-written
        return 0


# The system's refusals, one line each

def test_a_path_component_too_long_is_one_line(tmp_path: Path) -> None:
    long_name = "x" * 300
    for module, flag in (("evaluate", "--checkpoint"), ("train", "--resume"), ("export", "--checkpoint")):
        extra = ["--env", "Pendulum-v1"] if module == "evaluate" else []
        extra += ["--output", str(tmp_path / "out")] if module == "export" else []
        assert_usage_error(run_cli(module, flag, long_name, *extra, cwd=tmp_path), "File name too long")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fails", ["lock", "directory"])
def test_a_fresh_run_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    fails: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if fails == "lock":  # the lock file is made (an inode was free), its line cannot be written
        write = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: write(fd, data) if fd <= 2 else (_ for _ in ()).throw(full))
    else:
        def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
            raise full

        monkeypatch.setattr(Path, "mkdir", mkdir)
    result = run_cli("train", *TINY, "--run-name", "r", "--model-dir", "deep/model", cwd=root)
    assert_usage_error(result, "No space left on device", status=1)
    assert list(root.iterdir()) == []
