"""Where a training run spends its time: the update, acting, the env step and the replay memory, each timed inside
one `python -m paddle_ddpg.train` run (given its arguments after `--`), against the run's wall time.

After the run, the same agent's update is timed again in a loop on one batch from its memory, nothing else
between the calls (as `bench_update.py` times it): the two figures, taken in one process a moment apart, say
whether the run's other work slows the update down.

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
trainers: list[loop.Trainer] = []  # the run's, for the update in a loop afterwards
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
        trainers.append(trainer)
        for owner, name, part in PARTS:
            target = getattr(trainer, owner)
            setattr(target, name, clocked(getattr(target, name), part))
        return run(trainer, *args)
    return run_clocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--loop", type=int, default=2000, metavar="N",
                        help="updates timed in a loop after the run (0: none)")
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
    if args.loop and calls["update"]:
        agent, batch = trainers[0].agent, trainers[0].memory.sample(trainers[0].config.batch_size)
        noise = agent.draw_target_noise(len(batch.state))
        for i in range(args.loop // 10):
            agent.update(batch, noise, i % agent.policy_delay == 0)
        started = time.perf_counter()
        for i in range(args.loop):
            agent.update(batch, noise, i % agent.policy_delay == 0)  # the run's mix of critic and actor steps
        result["update_in_a_loop_ms"] = round((time.perf_counter() - started) / args.loop * 1e3, 3)
    print(f"{summary['engine']} engine, {wall:.1f} s wall, {result['cores']} cores")
    for part, figures in parts.items():
        print(f"  {part:14s} {figures['seconds']:8.2f} s  {figures['calls']:7d} calls  {figures['ms_per_call']:8.3f} ms")
    print(f"  {'the rest':14s} {result['rest_s']:8.2f} s  (start-up, evaluations, logs, checkpoints, the loop)")
    if "update_in_a_loop_ms" in result:
        print(f"  the same update in a loop afterwards: {result['update_in_a_loop_ms']:.3f} ms")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
