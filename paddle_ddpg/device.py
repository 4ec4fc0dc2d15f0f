"""Where Paddle computes: the device, the number of CPU threads, and MKL's fast path on AMD processors."""

from __future__ import annotations

import os
import sys

from paddle_ddpg.config import UsageError


def use_mkl_avx2_on_amd() -> None:
    """Paddle's CPU matrix products run on Intel MKL, which takes a slow generic path on AMD processors;
    MKL_DEBUG_CPU_TYPE=5 selects its AVX2 kernels (benchmarks/README.md has the difference).

    It must be set before Paddle loads MKL, so it only applies when paddle_ddpg is imported before paddle,
    and it never overrides a value the user set.
    """
    if "MKL_DEBUG_CPU_TYPE" in os.environ or "paddle" in sys.modules:
        return
    try:
        with open("/proc/cpuinfo") as f:
            amd = "AuthenticAMD" in f.read(4096)
    except OSError:
        return
    if amd:
        os.environ["MKL_DEBUG_CPU_TYPE"] = "5"


def cpu_threads(threads: int = 0, batch_size: int = 1) -> int:
    """`threads`, or for 0 the default for updates on batches of `batch_size`: one thread below 64, else one
    per CPU core this process may use, at most two.

    At small batches the products are too small to share and a second thread costs more in hand-offs than it
    saves; at 100 and more it makes the 400-300 update faster. More than two could not be measured
    (benchmarks/README.md).
    """
    if threads:
        return threads
    return 1 if batch_size < 64 else min(usable_cpus(), 2)


def usable_cpus() -> int:
    """The CPU cores this process may run on; where the OS has no affinity call (macOS, Windows), all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_device(device: str, threads: int = 0, batch_size: int = 1) -> None:
    """Select the device and the number of threads of Paddle's CPU kernels (`cpu_threads`)."""
    import paddle  # imported here: this module runs before Paddle loads, for `use_mkl_avx2_on_amd`

    from paddle_ddpg import fast

    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UsageError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); this one is CPU-only")
    paddle.set_device(device)
    fast.set_cpu_threads(cpu_threads(threads, batch_size))


def available_memory() -> int | None:
    """Bytes of memory this machine can still give a process (Linux's MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def require_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating, what would not fit: numpy and Paddle take memory lazily, so an oversized
    request would succeed and the process be killed later, mid-run, by the kernel's out-of-memory killer."""
    available = available_memory()
    if available is not None and nbytes > available:
        raise UsageError(f"{what} would take {nbytes / 2**30:.3g} GiB of memory; this machine has "
                         f"{available / 2**30:.3g} GiB available")
