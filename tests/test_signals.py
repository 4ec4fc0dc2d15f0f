"""End to end: Ctrl-C and SIGTERM stop training cleanly with a resumable checkpoint, and a resumed run is
exactly the run that was never interrupted. The signals go to a real training process (marked subprocess)."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import paddle
import pytest

from conftest import cli_env, epoch_rewards, last_json, record_file, run_cli, scalars
from paddle_ddpg import loop
from paddle_ddpg import train as train_module
from paddle_ddpg.checkpoint import load_checkpoint
from paddle_ddpg.config import Config
from paddle_ddpg.env import evaluate
from paddle_ddpg.train import StopRequest

LONG = ["--episodes", "30", "--max-episode-steps", "200", "--learning-starts", "64", "--batch-size", "16",
        "--eval-interval", "0", "--log-interval", "1"]
WAIT = 120  # seconds to wait for a line or an exit; only a hang gets near it


class LiveTraining:
    """A training subprocess whose stdout lines are collected as they arrive (stderr goes to a file)."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.stderr_path = cwd / f"stderr-{time.monotonic_ns()}.txt"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "paddle_ddpg.train", *args], cwd=cwd, env=cli_env(),
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self.lines: list[str] = []
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, count: int = 1) -> None:
        """Block until `count` stdout lines match `pattern` (a regex searched in each line)."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        with self._cond:
            while sum(bool(regex.search(line)) for line in self.lines) < count:
                if self._eof:
                    raise AssertionError(f"training ended before {count} lines matching {pattern!r}:\n"
                                         + "".join(self.lines) + self.stderr_path.read_text())
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {count} lines matching {pattern!r} within {WAIT} s")
                self._cond.wait(remaining)

    def send(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; return (status, stdout, stderr)."""
        status = self.proc.wait(timeout=WAIT)
        self._reader.join(timeout=WAIT)
        self._stderr.close()
        return status, "".join(self.lines), self.stderr_path.read_text()

    def __enter__(self) -> LiveTraining:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _resume_path(stderr: str) -> str:
    """The checkpoint path from the printed resume command."""
    commands = [line for line in stderr.splitlines() if "--resume" in line]
    assert len(commands) == 1, stderr
    words = shlex.split(commands[0])
    return words[words.index("--resume") + 1]


@pytest.mark.subprocess
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_at_the_end_of_the_episode(tmp_path: Path, signum: int, status: int) -> None:
    """SIGINT (Ctrl-C) or SIGTERM: the episode in progress finishes, the checkpoint is written, the resume
    command is printed on stderr, and the exit status is 128 + the signal number."""
    with LiveTraining([*LONG, "--run-name", "sig"], tmp_path) as run:
        run.wait_for(r"^Epoch:", count=2)
        run.send(signum)
        run.wait_for(rf"{signal.Signals(signum).name}: stopping at the end of this episode")
        code, stdout, stderr = run.finish()
    assert code == status, stderr
    assert "Traceback" not in stderr
    summary = last_json(stdout)
    episodes = summary["episodes"]
    assert summary["interrupted"] == signal.Signals(signum).name
    assert 2 <= episodes < 30
    assert sorted(epoch_rewards(stdout)) == list(range(episodes))  # every finished episode, none cut short
    assert summary["steps"] == 200 * episodes

    path = _resume_path(stderr)
    assert (tmp_path / path).resolve() == (tmp_path / "model" / "sig" / "checkpoint.pdckpt").resolve()
    saved = load_checkpoint(tmp_path / path)
    assert saved["episode"] == episodes and saved["steps"] == 200 * episodes
    actor = paddle.load(str(tmp_path / "model" / "sig" / f"ddpg-actor{episodes - 1}.pdparams"))
    assert set(actor) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
    assert len(scalars(record_file(tmp_path / "logs" / "sig"), "episode reward")) == episodes


@pytest.mark.subprocess
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    """8 episodes straight vs. Ctrl-C after about 3 episodes and `--resume`: the same episode rewards, the
    same losses, and one VisualDL record holding all 8 episode rewards (steps 0..7)."""
    args = ["--episodes", "8", *LONG[2:]]
    full = run_cli("train", *args, "--run-name", "full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    with LiveTraining([*args, "--run-name", "part"], tmp_path) as run:
        run.wait_for(r"^Epoch:2,")
        run.send(signal.SIGINT)
        code, first_stdout, stderr = run.finish()
    assert code == 130, stderr
    stopped_after = last_json(first_stdout)["episodes"]
    assert 3 <= stopped_after < 8, "the interruption should fall in the middle of the run"

    resumed = run_cli("train", "--resume", _resume_path(stderr), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = last_json(resumed.stdout)
    assert summary["episodes"] == 8 and summary["interrupted"] is None

    full_rewards = epoch_rewards(full.stdout)
    first, second = epoch_rewards(first_stdout), epoch_rewards(resumed.stdout)
    assert sorted(first) == list(range(stopped_after)) and sorted(second) == list(range(stopped_after, 8))
    assert {**first, **second} == full_rewards
    assert summary["steps"] == last_json(full.stdout)["steps"]
    assert summary["learn_steps"] == last_json(full.stdout)["learn_steps"]
    assert summary["final_eval_mean"] == last_json(full.stdout)["final_eval_mean"]

    full_record, part_record = record_file(tmp_path / "logs" / "full"), record_file(tmp_path / "logs" / "part")
    part_rewards = scalars(part_record, "episode reward")
    assert [step for step, _ in part_rewards] == list(range(8))
    assert part_rewards == scalars(full_record, "episode reward")
    part_losses = scalars(part_record, "critic loss")
    assert [step for step, _ in part_losses] == list(range(10, summary["learn_steps"] + 1, 10))
    assert part_losses == scalars(full_record, "critic loss")


@pytest.mark.subprocess
def test_second_ctrl_c_stops_within_the_episode(tmp_path: Path) -> None:
    """A second Ctrl-C stops after the current step: the episode in progress ends mid-way and is not
    counted, and the checkpoint still loads and matches the summary.

    Episodes are 1000 steps and learning starts after 1100 transitions, so 'train begin!' is printed
    101 steps into episode 1: both signals arrive well inside that episode, without any sleep."""
    args = [*LONG, "--max-episode-steps", "1000", "--learning-starts", "1100", "--run-name", "twice"]
    with LiveTraining(args, tmp_path) as run:
        run.wait_for(r"^train begin!")
        run.send(signal.SIGINT)
        run.wait_for(r"SIGINT: stopping at the end of this episode")
        run.send(signal.SIGINT)
        code, stdout, stderr = run.finish()
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "second Ctrl-C" in stdout
    summary = last_json(stdout)
    assert summary["episodes"] == 1 and sorted(epoch_rewards(stdout)) == [0]
    assert 1100 < summary["steps"] < 2000, summary  # stopped inside episode 1

    saved = load_checkpoint(tmp_path / _resume_path(stderr))
    assert saved["episode"] == 1 and saved["steps"] == summary["steps"]
    assert saved["agent"]["learn_steps"] == summary["learn_steps"] == summary["steps"] - 1100
    actor = paddle.load(str(tmp_path / "model" / "twice" / "ddpg-actor0.pdparams"))
    assert set(actor) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}


def test_final_evaluation_cut_short_is_an_interrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C twice during the final evaluation stops it part-way: the run must be reported as interrupted
    with no final evaluation, not as finished with the mean of the evaluation before."""
    stop = StopRequest()
    calls = []

    def ctrl_c_twice_in_the_final_evaluation(*args: Any, **kwargs: Any) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:  # the in-loop evaluation after episode 2 ran first
            stop.handle(signal.SIGINT, None)
            stop.handle(signal.SIGINT, None)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", ctrl_c_twice_in_the_final_evaluation)
    config = Config(episodes=3, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=2,
                    eval_episodes=2, run_name="r", logdir=str(tmp_path / "logs"), model_dir=str(tmp_path / "model"))
    summary = train_module.train(config, stop=stop)
    assert len(calls) == 2
    assert summary["interrupted"] == "SIGINT"
    assert summary["final_eval_mean"] is None
    assert [e["episodes"] for e in summary["evals"]] == [2]
