"""Progress bars: on a terminal (a real process on a pseudo-terminal here) train and evaluate show one on stderr
without tearing the lines they print; through pipes, as in CI, and with --no-progress, there is none and the
output is unchanged."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from conftest import BASE_ARGS, CLI_TIMEOUT, TrainedRun, cli_env, epoch_rewards, run_cli
from paddle_ddpg.config import Config
from paddle_ddpg.progress import EvaluationProgress, TrainingProgress, wanted

BAR = re.compile(r"\d+%\|.*\| \d+/\d+ (episodes|steps) \[")
EPOCH_LINE = re.compile(r"^Epoch:\d+, episode reward is -?[\d.]+  \[step \d+, \d+ steps/s, epsilon [\d.]+\]$")


def run_on_terminal(args: list[str], cwd: Path, columns: int = 120) -> tuple[int, str]:
    """`python -m paddle_ddpg.<args>` with stdin, stdout and stderr on one pseudo-terminal of `columns`
    columns, as in a terminal window; returns the exit status and everything written to the terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", *args], cwd=cwd, env=cli_env(), stdin=slave, stdout=slave,
                               stderr=slave, close_fds=True)
    os.close(slave)
    output, deadline = b"", time.monotonic() + CLI_TIMEOUT
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the process has exited and the terminal has no writer left
                    break
                if not chunk:
                    break
                output += chunk
        return process.wait(timeout=10), output.decode()
    finally:
        process.kill()
        os.close(master)


def screen(output: str) -> list[str]:
    """The lines a terminal shows for `output`: a carriage return moves back to the line's start, later
    characters overwrite earlier ones (the terminal turns each \\n into \\r\\n)."""
    lines = []
    for raw in output.replace("\r\n", "\n").split("\n"):
        line: list[str] = []
        column = 0
        for char in raw:
            if char == "\r":
                column = 0
                continue
            line[column:column + 1] = [char]
            column += 1
        lines.append("".join(line).rstrip())
    return lines


@pytest.mark.subprocess
def test_training_bar_on_a_terminal_leaves_the_printed_lines_whole(base_run: TrainedRun, tmp_path: Path) -> None:
    """The shared run again on a terminal: a bar of episodes with steps/s and the last evaluation appears on
    it, and what the screen shows line by line is the piped run's output: the same Epoch lines, each whole on
    its own line, and the same final JSON."""
    status, output = run_on_terminal(["paddle_ddpg.train", *BASE_ARGS], cwd=tmp_path)
    assert status == 0, output
    bars = BAR.findall(output)
    assert bars and set(bars) == {"episodes"}
    assert "3/3 episodes [" in output and "steps/s, eval -" in output
    lines = screen(output)
    assert epoch_rewards("\n".join(lines)) == epoch_rewards(base_run.stdout)
    assert all(EPOCH_LINE.match(line) for line in lines if line.startswith("Epoch:"))
    assert "train begin!" in lines
    summary = next(line for line in lines if line.startswith('{"run": "base"'))
    for key in ("episodes", "steps", "learn_steps", "final_eval_mean", "best_eval_mean"):
        assert f'"{key}": {base_run.summary[key]}' in summary, key


@pytest.mark.subprocess
def test_no_progress_on_a_terminal(base_run: TrainedRun, tmp_path: Path) -> None:
    """--no-progress: nothing but the printed lines reaches the terminal."""
    status, output = run_on_terminal(["paddle_ddpg.train", *BASE_ARGS, "--no-progress"], cwd=tmp_path)
    assert status == 0, output
    assert not BAR.search(output) and "\r" not in output.replace("\r\n", "\n")
    assert epoch_rewards(output.replace("\r\n", "\n")) == epoch_rewards(base_run.stdout)


def test_no_bar_through_pipes(base_run: TrainedRun, tmp_path: Path) -> None:
    """Output captured through pipes (CI, `| tee`): no bar, no carriage return, and stdout is the shared run's
    with the same arguments, line for line but for the measured speeds and times."""
    result = run_cli("train", *BASE_ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not BAR.search(result.stderr) and "\r" not in result.stderr + result.stdout

    def unmeasured(stdout: str) -> list[str]:
        return [re.sub(r"\d+ steps/s|\"(wall|train)_seconds\": [\d.]+", "", line) for line in stdout.splitlines()]

    assert unmeasured(result.stdout) == unmeasured(base_run.stdout)


@pytest.mark.subprocess
def test_evaluation_bar_on_a_terminal(base_run: TrainedRun) -> None:
    """evaluate shows a bar of episodes with the last return and the mean for several episodes, none for one;
    its JSON line is the same either way."""
    status, output = run_on_terminal(["paddle_ddpg.evaluate", "--checkpoint", "model/base", "--episodes", "3"],
                                     cwd=base_run.root)
    assert status == 0, output
    assert "3/3 episodes [" in output and ", mean -" in output
    piped = run_cli("evaluate", "--checkpoint", "model/base", "--episodes", "3", cwd=base_run.root)
    assert piped.stdout.strip() in screen(output)
    status, output = run_on_terminal(["paddle_ddpg.evaluate", "--checkpoint", "model/base", "--episodes", "1"],
                                     cwd=base_run.root)
    assert status == 0 and not BAR.search(output)
    status, output = run_on_terminal(["paddle_ddpg.evaluate", "--checkpoint", "model/base", "--episodes", "3",
                                      "--no-progress"], cwd=base_run.root)
    assert status == 0 and not BAR.search(output)


class Terminal(io.StringIO):
    """A stream that says it is a terminal: tqdm's file, read back in-process."""

    def isatty(self) -> bool:
        return True


def test_wanted_only_on_a_terminal_and_when_asked() -> None:
    assert wanted(True, Terminal()) and not wanted(False, Terminal())
    assert not wanted(True, io.StringIO())


@pytest.mark.parametrize("budget, expected", [
    (dict(episodes=50), r"4/50 episodes \[.*\d+ steps/s, eval -150\.5\]"),
    (dict(total_steps=1000), r"800/1000 steps \[.*\d+ steps/s, episode 4, eval -150\.5\]"),
])
def test_training_bar_counts_the_budget(budget: dict[str, int], expected: str) -> None:
    """A run with a step budget counts steps, else episodes; a resumed run starts where it was."""
    file = Terminal()
    bar = TrainingProgress(Config(**budget), steps=400, episodes=2, show=True, file=file)
    assert re.search(r"\b(2/50 episodes|400/1000 steps) \[", file.getvalue())
    bar.episode_done(600, 3, None)
    bar.episode_done(800, 4, -150.5)
    bar.close()
    assert re.search(expected, file.getvalue()), file.getvalue()


def test_printed_lines_go_above_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    """While a bar shows, a printed line is written whole to stdout with the bar cleared around it, a line
    printed in pieces only once it ends; closing hands stdout back, unfinished text included."""
    stdout = sys.stdout
    file = Terminal()
    with TrainingProgress(Config(episodes=5), 0, 0, show=True, file=file):
        assert sys.stdout is not stdout
        print("Epoch:0, episode reward is -1.5")
        cleared = file.getvalue().count("\r")
        print("train ", end="")
        assert file.getvalue().count("\r") == cleared  # nothing written, nothing cleared yet
        print("begin!")
        print("partial", end="")
    assert sys.stdout is stdout
    assert capsys.readouterr().out == "Epoch:0, episode reward is -1.5\ntrain begin!\npartial"


def test_no_bar_when_not_shown(capsys: pytest.CaptureFixture[str]) -> None:
    file = Terminal()
    stdout = sys.stdout
    with EvaluationProgress(3, show=False, file=file) as bar:
        assert sys.stdout is stdout
        bar.episode_done(-100.0)
        print("line")
    assert file.getvalue() == "" and capsys.readouterr().out == "line\n"
    with EvaluationProgress(1, show=True, file=file):  # one episode: nothing to wait for
        pass
    assert file.getvalue() == ""
