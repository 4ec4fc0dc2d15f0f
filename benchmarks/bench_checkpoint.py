"""The checkpoint format: size on disk and seconds to save and load, against version 0.1's pickled format.

Two full training states, built as `train` builds them (agent, optimizers with moments, a filled replay memory,
counters and RNG states): the tutorial preset on Pendulum-v1 with all 50000 transitions, and the 400-300
networks of the `Pendulum-v1` preset after its 20k steps. Each is saved and loaded in turns, interleaved, and
the medians are reported; the old format is read both as version 0.1 read it (pickle.load, which would run
code from the file) and as this version reads it (the allow-list unpickler).

    python benchmarks/bench_checkpoint.py --repeats 7
"""

from __future__ import annotations

import paddle_ddpg  # noqa: F401  (first, so its CPU settings apply before paddle loads)

import argparse
import json
import pickle
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from paddle_ddpg import checkpoint
from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import PRESETS, Config
from paddle_ddpg.files import atomic_write
from paddle_ddpg.memory import Memory

STATE_DIM, ACTION_DIM = 3, 1  # Pendulum


def training_state(config: Config, transitions: int) -> dict[str, Any]:
    """What `Trainer` checkpoints, with the optimizers stepped once (so their moments exist) and the memory
    holding `transitions` random transitions."""
    rng = np.random.default_rng(0)
    agent = DDPG(STATE_DIM, ACTION_DIM, [-2.0], [2.0], config, rng=rng)
    memory = Memory(config.memory_size, STATE_DIM, ACTION_DIM, rng=np.random.default_rng(1))
    for _ in range(transitions):
        memory.add(rng.standard_normal(STATE_DIM), rng.uniform(-2, 2, ACTION_DIM), float(rng.standard_normal()),
                   rng.standard_normal(STATE_DIM), False)
    agent.learn(memory.sample(config.batch_size))
    return {"config": config.to_dict(), "state_dim": STATE_DIM, "action_dim": ACTION_DIM,
            "agent": agent.state_dict(), "memory": memory.state_dict(),
            "rng": {"noise": rng.bit_generator.state, "memory": memory.rng.bit_generator.state},
            "episode": transitions // 200, "steps": transitions, "epsilon": 0.5, "wall_seconds": 60.0,
            "last_eval": -150.0, "last_eval_std": 10.0, "evals": [], "eval_seconds": 1.0,
            "loss_sums": {"critic loss": (1.0, 3)}, "log_dir_from_run_dir": "../../logs/run"}


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(state: dict[str, Any], directory: Path, repeats: int) -> dict[str, Any]:
    new, old = directory / "new.pdckpt", directory / "old.pdckpt"
    legacy = {"format": checkpoint.PICKLED_FORMAT, **state}

    def save_old() -> None:  # as version 0.1 saved: a pickle, through the same atomic write
        atomic_write(old, lambda f: pickle.dump(legacy, f, protocol=pickle.HIGHEST_PROTOCOL))

    def load_old_unsafely() -> None:
        with open(old, "rb") as f:
            pickle.load(f)

    cases = {"save (zip of .npy + JSON)": lambda: checkpoint.save_checkpoint(new, state),
             "save (0.1: pickle)": save_old,
             "load (zip of .npy + JSON)": lambda: checkpoint.load_checkpoint(new),
             "load 0.1's pickle through the allow-list": lambda: checkpoint.load_checkpoint(old),
             "load 0.1's pickle as 0.1 did (pickle.load)": load_old_unsafely}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        # The first round saves before it loads; a reversed round loads the files of the round before.
        for name in (cases if r % 2 == 0 else reversed(list(cases))):
            times[name].append(seconds(cases[name]))
    return {"bytes": {"zip": new.stat().st_size, "pickle (0.1)": old.stat().st_size},
            "median_ms": {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()},
            "raw_ms": {name: [round(1e3 * x, 2) for x in t] for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/checkpoint.json")
    args = parser.parse_args()
    cases = {"tutorial preset, 50000 transitions": (PRESETS["tutorial"], 50_000),
             "400-300 (Pendulum-v1 preset), 20000 transitions": (PRESETS["Pendulum-v1"], 20_000)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (config, transitions) in cases.items():
            results[name] = measure(training_state(config, transitions), Path(tmp), args.repeats)
            sizes, ms = results[name]["bytes"], results[name]["median_ms"]
            print(f"{name}: {sizes['zip'] / 2**20:.2f} MiB (pickle {sizes['pickle (0.1)'] / 2**20:.2f} MiB)")
            for case, value in ms.items():
                print(f"  {case:45} {value:8.2f} ms")
    Path(args.out).write_text(json.dumps({"repeats": args.repeats, "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
