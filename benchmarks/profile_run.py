"""Where a training run spends its time: the update, acting, the env step and the replay memory, each timed inside
one `python -m paddle_ddpg.train` run (given its arguments after `--`), against the run's wall time.

An update timed in a loop on its own (`profile_update.py`, `bench_update.py`) can differ from the same update
inside a run; this measures the latter, so the two can be compared on the same machine minutes apart.

    python benchmarks/profile_run.py -- --preset Pendulum-v1 --total-steps 20000
    python benchmarks/profile_run.py --out results/run_parts.json -- --env Pendulum-v1 --batch-size 256 ...
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import collections
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paddle_ddpg import loop, train

spent: collections.Counter[str] = collections.Counter()
calls: collections.Counter[str] = collections.Counter()
PARTS = (("agent", "update", "update"), ("agent", "act", "act"), ("env", "step", "env step"),
         ("memory", "sample", "memory sample"), ("memory", "add", "memory add"))


def clocked(inner: Callable[..., Any], part: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[part] += time.perf_counter() - started
            calls[part] += 1
    return timed


def instrumented(run: Callable[..., Any]) -> Callable[..., Any]:
    """`Trainer.run`, clocking the training loop's calls once the engine is chosen (the fast engine's checks, the
    evaluation episodes and the files are left in the rest)."""
    def run_clocked(trainer: loop.Trainer, *args: Any) -> Any:
        for owner, name, part in PARTS:
            target = getattr(trainer, owner)
            setattr(target, name, clocked(getattr(target, name), part))
        return run(trainer, *args)
    return run_clocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("train_args", nargs="*", help="python -m paddle_ddpg.train's arguments, after --")
    args = parser.parse_args()
    loop.Trainer.run = instrumented(loop.Trainer.run)
    with tempfile.TemporaryDirectory(prefix="profile_run_") as workdir:
        argv = ["--logdir", f"{workdir}/logs", "--model-dir", f"{workdir}/model", "--run-name", "profile",
                *args.train_args]
        load, started, cpu = os.getloadavg(), time.perf_counter(), os.times()
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            code = train.main(argv)
        wall, cpu_end = time.perf_counter() - started, os.times()
    if code:
        raise SystemExit(f"the run exited with {code}")
    summary = json.loads(printed.getvalue().strip().splitlines()[-1])
    cpu_s = (cpu_end.user - cpu.user) + (cpu_end.system - cpu.system)
    parts = {part: {"seconds": round(s, 2), "calls": calls[part], "ms_per_call": round(s / calls[part] * 1e3, 3)}
             for part, s in spent.most_common()}
    result = {"train_args": args.train_args, "engine": summary["engine"], "wall_s": round(wall, 2),
              "cores": round(cpu_s / wall, 2), "load_before": [round(x, 2) for x in load], "parts": parts,
              "rest_s": round(wall - sum(spent.values()), 2)}
    print(f"{summary['engine']} engine, {wall:.1f} s wall, {result['cores']} cores")
    for part, figures in parts.items():
        print(f"  {part:14s} {figures['seconds']:8.2f} s  {figures['calls']:7d} calls  {figures['ms_per_call']:8.3f} ms")
    print(f"  {'the rest':14s} {result['rest_s']:8.2f} s  (start-up, evaluations, logs, checkpoints, the loop)")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
