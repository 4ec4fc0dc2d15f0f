"""What the checks on an export cost: seconds to load a Pendulum actor's export with this version's
`load_policy` (the program checked against an actor's ops, loaded from a private copy) against version 0.2's
(the weights checked, then `paddle.jit.load`), and to export with and without reading the files back.

Two actors, as `train` builds them: the tutorial preset's 256-128 and the `Pendulum-v1` preset's 400-300.
Loads run in turns, interleaved, and the medians are reported. Version 0.2's loader comes from commit 69296c0
(`git show`), so the script runs in a clone of the repository; the weights check it called has since moved to
`actor_program.py` unchanged in what it does.

    python benchmarks/bench_export.py --repeats 51
"""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import paddle
from bench_checkpoint import module_at

from paddle_ddpg import export
from paddle_ddpg.actor_program import check_paddle_params, check_program
from paddle_ddpg.checkpoint import MAX_WIDTH
from paddle_ddpg.config import PRESETS
from paddle_ddpg.networks import Actor
from paddle_ddpg.policy import load_policy

VERSION_02 = "69296c0"  # the last commit whose policy.py loaded an export without checking its program


def version_02(directory: Path) -> ModuleType:
    """Version 0.2's policy module, as it was; the checks it called on `checkpoint` are given to it from where
    they live now."""
    module = module_at(VERSION_02, "paddle_ddpg/policy.py", directory)
    module.checkpoint = types.SimpleNamespace(check_paddle_params=check_paddle_params, MAX_WIDTH=MAX_WIDTH)
    return module


def seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(hidden: tuple[int, ...], old: ModuleType, directory: Path, repeats: int) -> dict[str, Any]:
    actor = Actor(3, 1, [-2.0], [2.0], hidden=hidden)
    prefix = directory / "_".join(map(str, hidden)) / "actor"
    read_back = export._read_back
    exports = {"export (reading the files back)": lambda: export.export_actor(actor, prefix, "Pendulum-v1", 200),
               "export (0.2: no read-back)": lambda: no_read_back(actor, prefix)}

    def no_read_back(actor: Actor, prefix: Path) -> None:
        export._read_back = lambda *args: None
        try:
            export.export_actor(actor, prefix, "Pendulum-v1", 200)
        finally:
            export._read_back = read_back

    program, params = Path(f"{prefix}.json"), Path(f"{prefix}.pdiparams")
    exports["export (reading the files back)"]()
    loads = {"load_policy (this version: program checked, private copy)": lambda: load_policy(prefix),
             "load_policy (0.2: weights checked, then paddle.jit.load)": lambda: old.load_policy(prefix),
             "the program check alone": lambda: check_program(program, params.stat().st_size)}
    times: dict[str, list[float]] = {name: [] for name in [*loads, *exports]}
    for r in range(repeats):
        for name in (loads if r % 2 == 0 else reversed(list(loads))):
            times[name].append(seconds(loads[name]))
    for r in range(max(3, repeats // 5)):
        for name in (exports if r % 2 == 0 else reversed(list(exports))):
            times[name].append(seconds(exports[name]))
    return {"bytes": {"program": program.stat().st_size, "weights": params.stat().st_size},
            "median_ms": {name: round(1e3 * statistics.median(t), 2) for name, t in times.items()},
            "raw_ms": {name: [round(1e3 * x, 2) for x in t] for name, t in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=51)
    parser.add_argument("--out", default="benchmarks/results/export.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        old = version_02(Path(tmp))
        for preset in ("tutorial", "Pendulum-v1"):
            hidden = tuple(PRESETS[preset].actor_hidden)
            name = f"{preset} preset's actor, {'-'.join(map(str, hidden))}"
            results[name] = measure(hidden, old, Path(tmp), args.repeats)
            for case, value in results[name]["median_ms"].items():
                print(f"{name}: {case}: {value} ms")
    meta = {"repeats": args.repeats, "python": platform.python_version(), "paddle": paddle.__version__,
            "version_02_commit": VERSION_02, "load_average_1min": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(), "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
