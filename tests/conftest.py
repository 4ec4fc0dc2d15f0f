"""Shared helpers for the end-to-end tests: calling the programs' `main(argv)` in this process (a real
interpreter only where the process is the point) and reading what they leave.

The end-to-end tests train for a few hundred steps at most (tiny episodes, learning after 64 transitions).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from visualdl import LogReader

from paddle_ddpg.device import prepare_process
from paddle_ddpg.memory import Batch

# The programs' main() runs in this process, which is set up as a program sets up its own, before Paddle loads
# (nothing imported above loads it).
prepare_process()

# A short training run: 3 episodes of 50 steps, learning from step 65 on (in episode 1), every episode logged
# and checkpointed. Tests add --run-name, --seed, --eval-interval as they need.
TINY = ["--episodes", "3", "--max-episode-steps", "50", "--learning-starts", "64", "--batch-size", "16",
        "--eval-interval", "0", "--eval-episodes", "2", "--log-interval", "1"]

CLI_TIMEOUT = 180  # seconds; a real process of a tiny run takes a few seconds, this only guards against a hang

# The programs whose main() runs in this process; the sweep starts Ray, so it keeps a process of its own.
IN_PROCESS = ("train", "evaluate", "export")

_WARNING_LINE = re.compile(r"^\S.*:\d+: \w*Warning: ")
_EPOCH_LINE = re.compile(r"^Epoch:(\d+), episode reward is (\S+)")


def random_batch(rng: np.random.Generator, size: int, state_dim: int, low: Any, high: Any,
                 terminated: float = 0.2) -> Batch:
    """Random transitions: standard normal states and rewards, actions within [low, high] (one column per
    bound), a fraction `terminated` of them terminal."""
    def f32(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    return Batch(f32(rng.standard_normal((size, state_dim))), f32(rng.uniform(low, high, (size, len(low)))),
                 f32(rng.standard_normal((size, 1))), f32(rng.standard_normal((size, state_dim))),
                 f32(rng.random((size, 1)) < terminated))


def cli_env() -> dict[str, str]:
    """The current environment with unbuffered output, so a reader sees each line as it is printed."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_cli(module: str, *args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m paddle_ddpg.<module> args...` in `cwd`: its exit status and what it printed.

    train, evaluate and export run as `main(argv)` in this process; an exit through SystemExit gives its
    status, as the interpreter would. An exception escapes to the test (a real process would print a
    traceback). The sweep, or a program given its own environment `env`, runs in a real process
    (`run_process`)."""
    if module not in IN_PROCESS or env is not None:
        return run_process(module, *args, cwd=cwd, env=env)
    main = importlib.import_module(f"paddle_ddpg.{module}").main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(list(args))
        except SystemExit as exc:
            status = exit_status(exc)
    return subprocess.CompletedProcess([module, *args], status, stdout.getvalue(), stderr.getvalue())


def exit_status(exc: SystemExit) -> int:
    """The status the interpreter exits with for `exc`: None is 0, a message is printed and gives 1."""
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def run_process(module: str, *args: str, cwd: Path, env: dict[str, str] | None = None,
                timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`python -m paddle_ddpg.<module> args...` as a real process in `cwd` (with `env`, default `cli_env()`),
    output captured as text: for what only a process shows (its signals, its own environment, a kill)."""
    return subprocess.run([sys.executable, "-m", f"paddle_ddpg.{module}", *args], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens at now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def last_json(stdout: str) -> dict[str, Any]:
    """The JSON object both CLIs print as their last stdout line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output on stdout"
    return json.loads(lines[-1])


def epoch_rewards(stdout: str) -> dict[int, float]:
    """Episode index -> reward from the tutorial's 'Epoch:N, episode reward is R' lines."""
    return {int(m.group(1)): float(m.group(2)) for line in stdout.splitlines() if (m := _EPOCH_LINE.match(line))}


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not Python warnings (a warning is a 'file:line: XWarning: ...' line and the
    indented source line after it)."""
    out, in_warning = [], False
    for line in stderr.splitlines():
        if _WARNING_LINE.match(line):
            in_warning = True
            continue
        if in_warning and line.startswith(" "):
            continue
        in_warning = False
        if line.strip():
            out.append(line)
    return out


def assert_usage_error(result: subprocess.CompletedProcess[str], *needles: str, status: int = 2) -> str:
    """Exit `status` (2: a usage error), no traceback, exactly one (non-warning) stderr line that contains every
    needle; returns that line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert result.returncode == status, (result.returncode, result.stderr)
    assert len(lines) == 1, lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def snapshot(root: Path) -> dict[str, str]:
    """Every file and directory under `root`: files map to their sha256, directories to '<dir>'."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "<dir>" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def record_file(log_dir: Path) -> Path:
    """The one VisualDL record file of a run's log directory."""
    files = sorted(log_dir.glob("vdlrecords.*.log"))
    assert len(files) == 1, f"expected one VisualDL record file in {log_dir}, found {[f.name for f in files]}"
    return files[0]


def scalars(record: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) points of one scalar tag, as VisualDL's own reader sees them."""
    reader = LogReader(file_path=str(record))
    return [(int(r.id), float(r.value)) for r in reader.get_data("scalar", tag)]


@dataclass(frozen=True)
class TrainedRun:
    """A finished tiny run: `root` is the working directory holding model/<name> and logs/<name>."""

    root: Path
    name: str
    summary: dict[str, Any]
    stdout: str

    @property
    def run_dir(self) -> Path:
        return self.root / "model" / self.name

    @property
    def log_dir(self) -> Path:
        return self.root / "logs" / self.name


BASE_ARGS = [*TINY, "--eval-interval", "2", "--seed", "0", "--run-name", "base"]


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> TrainedRun:
    """One tiny Pendulum run shared by the read-only end-to-end tests (copy it before changing anything)."""
    root = tmp_path_factory.mktemp("base_run")
    result = run_cli("train", *BASE_ARGS, cwd=root)
    assert result.returncode == 0, result.stderr
    return TrainedRun(root, "base", last_json(result.stdout), result.stdout)


@pytest.fixture
def base_copy(base_run: TrainedRun, tmp_path: Path) -> TrainedRun:
    """A private copy of the shared run, for tests that may (or must not) change it."""
    root = tmp_path / "work"
    shutil.copytree(base_run.root, root)
    return TrainedRun(root, base_run.name, base_run.summary, base_run.stdout)
