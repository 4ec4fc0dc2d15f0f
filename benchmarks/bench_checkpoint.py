"""The checkpoint format: size on disk and seconds to save and load, this version's safetensors file against
version 0.2's zip of `.npy` arrays (its own code, taken from git).

Two full training states, built as `train` builds them (agent, optimizers with moments, a filled replay memory,
counters and RNG states): the tutorial preset on Pendulum-v1 with all 50000 transitions, and the 400-300
networks of the `Pendulum-v1` preset after its 20k steps. Each case runs in turns, interleaved, and the medians
are reported. Version 0.2's reader and writer come from commit 69296c0 (`git show`), so the script runs in a
clone of the repository.

    python benchmarks/bench_checkpoint.py --repeats 9
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from paddle_ddpg import checkpoint
from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import PRESETS, Config
from paddle_ddpg.memory import Memory

STATE_DIM, ACTION_DIM = 3, 1  # Pendulum
VERSION_02 = "69296c0"  # the last commit whose checkpoint.py wrote and read the zip format


def module_at(commit: str, path: str, directory: Path) -> ModuleType:
    """`path` as it was at `commit`, imported under its own name and the commit's, beside this version's."""
    source = subprocess.run(["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True).stdout
    name = f"{Path(path).stem}_{commit}"
    file = directory / f"{name}.py"
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # a dataclass in it looks itself up there
    spec.loader.exec_module(module)
    return module


def training_state(config: Config, transitions: int) -> dict[str, Any]:
    """What a run checkpoints, with the optimizers stepped once (so their moments exist) and the memory
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
            "loss_sums": {"critic loss": (1.0, 3)}, "log_dir_from_run_dir": "../../logs/run",
            "record": {"file": "vdlrecords.1.log", "bytes": 1000}}


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(state: dict[str, Any], old: ModuleType, directory: Path, repeats: int) -> dict[str, Any]:
    new, zipped = directory / "new.pdckpt", directory / "v02.pdckpt"
    legacy = {key: value for key, value in state.items() if key != "record"}

    cases = {"save (safetensors)": lambda: checkpoint.save_checkpoint(new, state),
             "save (0.2: zip of .npy)": lambda: old.save_checkpoint(zipped, legacy),
             "load (safetensors)": lambda: checkpoint.load_checkpoint(new),
             "load 0.2's zip as 0.2 did": lambda: old.load_checkpoint(zipped),
             "load 0.2's zip as this version does": lambda: checkpoint.load_checkpoint(zipped)}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for r in range(repeats):
        # The first round saves before it loads; a reversed round loads the files of the round before.
        for name in (cases if r % 2 == 0 else reversed(list(cases))):
            times[name].append(seconds(cases[name]))
    return {"bytes": {"safetensors": new.stat().st_size, "zip (0.2)": zipped.stat().st_size},
            "median_ms": {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()},
            "raw_ms": {name: [round(1e3 * x, 2) for x in t] for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--out", default="benchmarks/results/checkpoint.json")
    args = parser.parse_args()
    cases = {"tutorial preset, 50000 transitions": (PRESETS["tutorial"], 50_000),
             "400-300 (Pendulum-v1 preset), 20000 transitions": (PRESETS["Pendulum-v1"], 20_000)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = module_at(VERSION_02, "paddle_ddpg/checkpoint.py", Path(tmp))
        for name, (config, transitions) in cases.items():
            results[name] = measure(training_state(config, transitions), old, Path(tmp), args.repeats)
            sizes, ms = results[name]["bytes"], results[name]["median_ms"]
            print(f"{name}: " + ", ".join(f"{kind} {size / 2**20:.2f} MiB" for kind, size in sizes.items()))
            for case, value in ms.items():
                print(f"  {case:45} {value:8.2f} ms")
    meta = {"repeats": args.repeats, "python": sys.version.split()[0], "numpy": np.__version__,
            "version_02_commit": VERSION_02, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "load_average_1min": round(os.getloadavg()[0], 2)}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
