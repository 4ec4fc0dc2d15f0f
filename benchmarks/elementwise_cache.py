"""Why the update's elementwise kernels run slower than alone: the cache, not page faults or denormal numbers.

Three checks on one thread, written to results/elementwise_cache.json:
- a 256x256 ReLU on an input it has just read, right after the product that wrote it, and after 32 MB of other
  reads have flushed the caches;
- page faults (getrusage) over updates of 256-256 nets at batch 256, CleanRL's DDPG settings;
- those updates with flush-to-zero and denormals-are-zero set on the thread (MXCSR) and without, interleaved;
  Python cannot set MXCSR, so a three-line C helper is compiled with `cc` (skipped where there is none).

    python benchmarks/elementwise_cache.py
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import ctypes
import json
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F

from paddle_ddpg import Config
from paddle_ddpg.agent import DDPG
from paddle_ddpg.fast import accelerate, set_cpu_threads
from profile_update import random_batch

RESULTS = Path(__file__).resolve().parent / "results"
MXCSR_HELPER = """#include <pmmintrin.h>
void ftz(int on) { _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
                   _MM_SET_DENORMALS_ZERO_MODE(on ? _MM_DENORMALS_ZERO_ON : _MM_DENORMALS_ZERO_OFF); }
"""


def clocked(fn: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def relu_times(calls: int = 3000) -> dict[str, float]:
    """Median microseconds of one 256x256 ReLU by where its input is."""
    x, w, b = paddle.randn([256, 256]), paddle.randn([256, 256]) * 0.06, paddle.zeros([256])
    hot, flush = paddle.addmm(b, x, w), [paddle.randn([1024, 1024]) for _ in range(8)]
    times: dict[str, list[float]] = {"input just read": [], "right after its product": [], "caches flushed": []}
    with paddle.no_grad():
        for i in range(calls):
            times["right after its product"].append(clocked(F.relu, paddle.addmm(b, x, w)))
            F.relu(hot)
            times["input just read"].append(clocked(F.relu, hot))
            if i % 10 == 0:
                for block in flush:
                    block.sum()
                times["caches flushed"].append(clocked(F.relu, hot))
    return {k: round(float(np.median(v)) * 1e6, 1) for k, v in times.items()}


def mxcsr_helper(workdir: Path) -> ctypes.CDLL | None:
    if shutil.which("cc") is None:
        return None
    (workdir / "ftz.c").write_text(MXCSR_HELPER)
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-msse3", "-o", str(workdir / "ftz.so"), str(workdir / "ftz.c")],
                   check=True)
    return ctypes.CDLL(str(workdir / "ftz.so"))


def update_checks(blocks: int = 8, per_block: int = 300) -> dict[str, object]:
    config = Config(actor_hidden=(256, 256), critic_hidden=(256, 256), batch_size=256, critic_action_layer=0)
    agent = DDPG(3, 1, [-2.0], [2.0], config, rng=np.random.default_rng(0))
    if (reason := accelerate(agent)) is not None:
        raise SystemExit(f"the fast engine cannot run here: {reason}")
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, 256) for _ in range(50)]
    for i in range(500):
        agent.update(batches[i % 50], None, True)
    before = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(1000):
        agent.update(batches[i % 50], None, True)
    after = resource.getrusage(resource.RUSAGE_SELF)
    out: dict[str, object] = {"page faults over 1,000 updates": {"minor": after.ru_minflt - before.ru_minflt,
                                                                 "major": after.ru_majflt - before.ru_majflt}}
    with tempfile.TemporaryDirectory() as workdir:
        if (helper := mxcsr_helper(Path(workdir))) is None:
            return out
        ms: dict[str, list[float]] = {"flush-to-zero": [], "as is": []}
        for block in range(blocks):
            for mode in (("flush-to-zero", "as is") if block % 2 == 0 else ("as is", "flush-to-zero")):
                helper.ftz(int(mode == "flush-to-zero"))
                start = time.perf_counter()
                for i in range(per_block):
                    agent.update(batches[i % 50], None, True)
                ms[mode].append(round((time.perf_counter() - start) / per_block * 1e3, 3))
        helper.ftz(0)
    out["update ms by MXCSR, interleaved blocks"] = {k: {"median": float(np.median(v)), "blocks": v}
                                                     for k, v in ms.items()}
    return out


def main() -> None:
    set_cpu_threads(1)
    record = {"relu 256x256 us (median)": relu_times(), **update_checks(), "threads": 1}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "elementwise_cache.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
