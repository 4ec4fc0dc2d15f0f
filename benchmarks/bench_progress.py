"""What the training progress bar costs per env step.

Two measurements, both with the bar drawn on a real pseudo-terminal (a thread reads the other end, as a
terminal window would):

- calls: `TrainingProgress.episode_done`, the bar's only hook in the training loop (once per episode), timed
  over many calls with the bar shown and with it off, and one redraw of the bar; their sum divided by the
  steps of a Pendulum episode (200) bounds the cost per step;
- runs: whole `python -m paddle_ddpg.train --preset fast` runs on a pseudo-terminal, with the bar and with
  --no-progress, interleaved pair by pair so that the load of a shared machine falls on both alike; the
  figure is training time per step (train_seconds, which leaves evaluation out), and the median of the
  pairs' differences with its spread says whether the bar's cost stands out from run-to-run noise.

    python benchmarks/bench_progress.py --pairs 6 --episodes 20 --out bench_progress.json
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import fcntl
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path
from typing import Any

from paddle_ddpg.config import Config
from paddle_ddpg.progress import TrainingProgress

EPISODE_STEPS = 200  # Pendulum-v1's episodes: the steps one episode_done call stands for


def terminal(columns: int = 120) -> int:
    """The slave side of a pseudo-terminal of `columns` columns, whose master a thread drains as a terminal
    window would (so that writes never block) until the slave is closed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))

    def drain() -> None:
        try:
            while os.read(master, 1 << 16):
                pass
        except OSError:  # the slave side closed
            pass
        finally:
            os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    return slave


def call_cost(calls: int, show: bool) -> tuple[float, float]:
    """Seconds per `episode_done` call on a bar of episodes drawn on a pseudo-terminal (or off), at tqdm's
    pace (it redraws at most every 0.1 s, so most of these calls only count), and seconds per redraw: the
    cost of a call when episodes end more than 0.1 s apart, as Pendulum's do in training."""
    slave = terminal()
    with open(slave, "w", closefd=True) as file:
        bar = TrainingProgress(Config(episodes=2 * calls), steps=0, episodes=0, show=show, file=file)
        start = time.perf_counter()
        for episode in range(1, calls + 1):
            bar.episode_done(episode * EPISODE_STEPS, episode, -150.0)
        per_call = (time.perf_counter() - start) / calls
        start = time.perf_counter()
        for _ in range(calls // 10):
            bar.refresh()
        per_redraw = (time.perf_counter() - start) / (calls // 10)
        bar.close()
    return per_call, per_redraw


def train_seconds_per_step(episodes: int, progress: bool, workdir: Path, name: str) -> float:
    """One fast-preset training run on a pseudo-terminal; its training time per env step."""
    slave = terminal()
    args = [sys.executable, "-m", "paddle_ddpg.train", "--preset", "fast", "--episodes", str(episodes),
            "--eval-interval", "0", "--eval-episodes", "1", "--run-name", name, "--logdir", str(workdir / "logs"),
            "--model-dir", str(workdir / "model")] + ([] if progress else ["--no-progress"])
    # stdout through a pipe, so the summary can be read; stderr, where the bar goes, on the terminal
    result = subprocess.run(args, stdin=slave, stdout=subprocess.PIPE, stderr=slave, text=True, check=True)
    os.close(slave)
    summary = json.loads(result.stdout.splitlines()[-1])
    return summary["train_seconds"] / summary["steps"]


def run_pairs(pairs: int, episodes: int) -> dict[str, Any]:
    """Training time per step of `pairs` runs with the bar and as many without, interleaved."""
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        with_bar, without = [], []
        for pair in range(pairs):
            order = [True, False] if pair % 2 == 0 else [False, True]  # neither always runs first
            for progress in order:
                seconds = train_seconds_per_step(episodes, progress, workdir, f"p{pair}{int(progress)}")
                (with_bar if progress else without).append(seconds)
    differences = [(a - b) * 1e6 for a, b in zip(with_bar, without)]
    return {
        "episodes": episodes, "steps_per_run": episodes * EPISODE_STEPS, "pairs": pairs,
        "train_us_per_step_with_bar": [round(s * 1e6, 1) for s in with_bar],
        "train_us_per_step_without": [round(s * 1e6, 1) for s in without],
        "median_us_per_step_with_bar": round(statistics.median(with_bar) * 1e6, 1),
        "median_us_per_step_without": round(statistics.median(without) * 1e6, 1),
        "median_difference_us_per_step": round(statistics.median(differences), 1),
        "difference_range_us_per_step": [round(min(differences), 1), round(max(differences), 1)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6, help="interleaved pairs of training runs; 0: none (default 6)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per training run (default 20)")
    parser.add_argument("--calls", type=int, default=20000, help="episode_done calls timed (default 20000)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()

    shown = [call_cost(args.calls, show=True) for _ in range(5)]
    call, redraw = statistics.median(c for c, _ in shown), statistics.median(r for _, r in shown)
    off = statistics.median(call_cost(args.calls, show=False)[0] for _ in range(5))
    results: dict[str, Any] = {
        "episode_done_us": {"shown": round(call * 1e6, 2), "off": round(off * 1e6, 3)},
        "redraw_us": round(redraw * 1e6, 1),
        # every episode redrawn: the most the bar can cost a 200-step episode, per step
        "per_step_us_at_most": round((call + redraw - off) / EPISODE_STEPS * 1e6, 3),
    }
    if args.pairs:
        results["runs"] = run_pairs(args.pairs, args.episodes)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
