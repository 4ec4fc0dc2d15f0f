"""What a sweep costs and saves on this machine: seeds of the `fast` preset as Ray Tune trials against the
same `train` runs one after another.

Within one invocation, in the order sequential, sequential-1, sweep, sweep, sequential-1, sequential
(repeated --rounds times, so that a drift of the machine's speed falls on every side alike), it measures

  sequential    `python -m paddle_ddpg.train --preset fast --seed S` for each seed, one process after another,
                with train's own thread default (two at this batch size on two cores): what a user without
                the sweep would run;
  sequential-1  the same with --threads 1: the trials' own settings, run one after another;
  sweep         `python -m paddle_ddpg.sweep --preset fast --seeds ...` (a local Ray started and stopped by
                the command, one thread per trial, as many trials at a time as there are cores): start to exit;

and apart from those, Ray's start-up and shutdown (`ray.init` and `ray.shutdown` as the sweep calls them), the
overhead per trial (sweep wall time less start-up, shutdown and the trials' own wall time shared over the
cores, per trial), and memory: the peak RSS summed over the sweep's processes (shared pages count once per
process), split into the driver, Ray's own processes and the trial workers, beside one `train` process's peak.
Writes benchmarks/results/sweep.json.

    python benchmarks/bench_sweep.py                  # 4 seeds, 1 round (4 timed commands)
    python benchmarks/bench_sweep.py --rounds 2 --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import ray

from paddle_ddpg.sweep import tuning
from paddle_ddpg.device import usable_cpus

RESULTS = Path(__file__).resolve().parent / "results" / "sweep.json"
SAMPLE_SECONDS = 0.25


class PeakMemory:
    """Samples a process tree's RSS in a thread: the peak of the sum, and of each part at that moment."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak: dict[str, float] = {"total": 0.0}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            parts = {"driver": 0.0, "trial workers": 0.0, "ray": 0.0}
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            for p in procs:
                try:
                    rss, name = p.memory_info().rss / 2**20, " ".join(p.cmdline()[:1])
                except psutil.Error:
                    continue
                part = ("driver" if p.pid == self.root.pid
                        else "trial workers" if name.startswith(("ray::ImplicitFunc", "ray::run_trial")) else "ray")
                parts[part] += rss
            if sum(parts.values()) > self.peak["total"]:
                self.peak = {"total": sum(parts.values()), **parts}

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        return {k: round(v, 1) for k, v in self.peak.items()}


def timed(cmd: list[str], cwd: str) -> tuple[dict[str, Any], float, dict[str, float]]:
    """Run a command to its end: the JSON of its last stdout line, its wall seconds, its peak memory (MiB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    peak = memory.stop()
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip().splitlines()[-1:]}")
    return json.loads(out.strip().splitlines()[-1]), wall, peak


def sequential(seeds: list[int], root: str, threads: list[str]) -> dict[str, Any]:
    walls, runs, peaks = [], [], []
    for seed in seeds:
        summary, wall, peak = timed([sys.executable, "-m", "paddle_ddpg.train", "--preset", "fast", "--seed",
                                     str(seed), "--run-name", f"seq{seed}-{time.monotonic_ns()}", *threads], root)
        walls.append(wall)
        runs.append(summary["wall_seconds"])
        peaks.append(peak["total"])
    return {"wall_s": round(sum(walls), 2), "process_s": [round(w, 2) for w in walls], "train_wall_s": runs,
            "peak_rss_mb": max(peaks)}


def swept(seeds: list[int], root: str) -> dict[str, Any]:
    name = f"bench{time.monotonic_ns()}"
    outcome, wall, peak = timed([sys.executable, "-m", "paddle_ddpg.sweep", "--preset", "fast", "--seeds",
                                 *map(str, seeds), "--name", name], root)
    trials = json.loads(Path(outcome["results"]).read_text())["trial_results"]
    return {"wall_s": round(wall, 2), "train_wall_s": [t["wall_seconds"] for t in trials],
            "finals": [t["final_eval"] for t in trials], "peak_rss_mb": peak}


def ray_start_stop(repeats: int) -> tuple[float, float]:
    """Median seconds of the sweep's own `start_ray` (a local Ray) and of `ray.shutdown`."""
    starts, stops = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        tuning.start_ray(None)
        starts.append(time.perf_counter() - started)
        started = time.perf_counter()
        ray.shutdown()
        stops.append(time.perf_counter() - started)
    return round(statistics.median(starts), 2), round(statistics.median(stops), 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--rounds", type=int, default=1, help="the six measurements, this many times")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    load = os.getloadavg()
    if load[0] > 0.5:
        print(f"note: load average {load[0]:.2f} before the start; another process shares the cores", flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as root:
        for round_ in range(args.rounds):
            for kind in ("sequential", "sequential-1", "sweep", "sweep", "sequential-1", "sequential"):
                threads = ["--threads", "1"] if kind == "sequential-1" else []
                row = swept(args.seeds, root) if kind == "sweep" else sequential(args.seeds, root, threads)
                rows.append({"kind": kind, **row})
                print(f"round {round_ + 1} {kind}: {row['wall_s']:.1f} s", flush=True)
    startup, shutdown = ray_start_stop(3)
    seq = [r["wall_s"] for r in rows if r["kind"] == "sequential"]
    seq1 = [r["wall_s"] for r in rows if r["kind"] == "sequential-1"]
    swp = [r for r in rows if r["kind"] == "sweep"]
    sweep_median = statistics.median(r["wall_s"] for r in swp)
    slots = min(usable_cpus(), len(args.seeds))
    overheads = [(r["wall_s"] - startup - shutdown - sum(r["train_wall_s"]) / slots) / len(args.seeds) for r in swp]
    result = {
        "what": "seeds of --preset fast: python -m paddle_ddpg.sweep (local Ray, start-up included) against the "
                "same python -m paddle_ddpg.train runs one after another, with train's thread default "
                "(sequential) and with the trials' one thread (sequential-1); order sequential, sequential-1, "
                "sweep, sweep, sequential-1, sequential",
        "seeds": args.seeds, "cpus": usable_cpus(), "load_average_before": round(load[0], 2),
        "sequential_s": seq, "sequential_1_thread_s": seq1, "sweep_s": [r["wall_s"] for r in swp],
        "ratio_sweep_to_sequential": round(sweep_median / statistics.median(seq), 3),
        "ratio_sweep_to_sequential_1_thread": round(sweep_median / statistics.median(seq1), 3),
        "ray_startup_s": startup, "ray_shutdown_s": shutdown,
        "overhead_per_trial_s": round(statistics.median(overheads), 2),
        "train_wall_s": {kind: statistics.median(w for r in rows if r["kind"] == kind
                                                 for w in r["train_wall_s"])
                         for kind in ("sequential", "sequential-1", "sweep")},
        "peak_rss_mb": {"sweep": max((r["peak_rss_mb"] for r in swp), key=lambda p: p["total"]),
                        "train_process": max(r["peak_rss_mb"] for r in rows if r["kind"] != "sweep")},
        "runs": rows,
        "versions": {"python": platform.python_version(), "ray": ray.__version__,
                     "machine": platform.processor() or platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("ratio_sweep_to_sequential", "ratio_sweep_to_sequential_1_thread",
                                             "sequential_s", "sequential_1_thread_s", "sweep_s", "ray_startup_s",
                                             "ray_shutdown_s", "overhead_per_trial_s", "train_wall_s",
                                             "peak_rss_mb")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
