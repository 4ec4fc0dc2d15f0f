"""Where the fast engine's update spends its time: each kernel call of the recorded update timed on its own.

The fast engine replays an update as one straight-line function (`paddle_ddpg.fast.trace.Trace.source`).
This script builds the same function with a clock around every call, runs it many times and prints the
time per kind of kernel. The clocks add about a microsecond per call, so compare shares rather than the
total with `bench_update.py`'s figures.

    python benchmarks/profile_update.py                       # tutorial nets, batch 32, one thread
    python benchmarks/profile_update.py --hidden 400 300 --batch-size 256 --threads 2
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import time

import numpy as np

from paddle_ddpg import Config
from paddle_ddpg.agent import DDPG
from paddle_ddpg.fast import accelerate, set_cpu_threads
from paddle_ddpg.memory import Batch


def random_batch(rng: np.random.Generator, size: int) -> Batch:
    return Batch(*(np.asarray(x, np.float32) for x in (
        rng.standard_normal((size, 3)), rng.uniform(-2, 2, (size, 1)), rng.standard_normal((size, 1)),
        rng.standard_normal((size, 3)), rng.random((size, 1)) < 0.2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 128])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--critic-action-layer", type=int, default=Config.critic_action_layer,
                        help="the critic layer the action joins (0: at the input, as CleanRL's)")
    parser.add_argument("--iters", type=int, default=2000)
    args = parser.parse_args()
    set_cpu_threads(args.threads)
    config = Config(actor_hidden=tuple(args.hidden), critic_hidden=tuple(args.hidden), batch_size=args.batch_size,
                    critic_action_layer=args.critic_action_layer)
    agent = DDPG(3, 1, [-2.0], [2.0], config, rng=np.random.default_rng(0))
    if (reason := accelerate(agent)) is not None:
        raise SystemExit(f"the fast engine cannot run here: {reason}")
    agent.update(random_batch(np.random.default_rng(0), args.batch_size), None, True)  # records the trace
    trace = next(iter(agent.update.__self__.traces.values()))

    calls, body = [], []
    for line in trace.source.splitlines()[1:-1]:
        line = line.strip()
        if not line.startswith("del "):
            body.append(f"_t = _clock(); {line}; _spent[{len(calls)}] += _clock() - _t")
            calls.append(line.split("=", 1)[1].strip().split("(")[0])
        else:
            body.append(line)
    namespace = trace._namespace
    namespace.update(_clock=time.perf_counter, _spent=[0.0] * len(calls))
    exec("def timed():\n" + "".join(f"    {line}\n" for line in body), namespace)

    for _ in range(args.iters // 10):
        trace.run()
    started = time.perf_counter()
    for _ in range(args.iters):
        trace.run()
    whole = (time.perf_counter() - started) / args.iters * 1e6
    for _ in range(args.iters):
        namespace["timed"]()
    per_kernel: dict[str, list[float]] = {}
    for kernel, spent in zip(calls, namespace["_spent"]):
        per_kernel.setdefault(kernel, []).append(spent / args.iters * 1e6)
    timed_total = sum(map(sum, per_kernel.values()))
    print(f"{len(calls)} kernel calls; the update {whole:.1f} us untimed, {timed_total:.1f} us with the clocks")
    for kernel, spent in sorted(per_kernel.items(), key=lambda item: -sum(item[1])):
        print(f"{kernel:16s} {len(spent):3d} calls {sum(spent):8.1f} us {sum(spent) / len(spent):7.1f} us/call "
              f"{100 * sum(spent) / timed_total:5.1f}%")


if __name__ == "__main__":
    main()
