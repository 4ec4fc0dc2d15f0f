"""Where Paddle computes (device, CPU threads), the memory a run may take, and what a program sets for its own
process as it starts."""

from __future__ import annotations

import contextlib
import os
import warnings

from paddle_ddpg.config import UsageError


def prepare_process() -> None:
    """Run by each program before Paddle loads (importing the package sets nothing), keeping what the user set. MKL
    takes a slow generic path on AMD processors unless MKL_DEBUG_CPU_TYPE=5 (benchmarks/README.md); Paddle's C++ info
    lines and its extension-cache warning (nothing here builds extensions) would bury the one-line errors."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        if "AuthenticAMD" in f.read(4096):
            os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


def cpu_threads(threads: int = 0, batch_size: int = 1) -> int:
    """`threads`, or for 0: one below batches of 64, whose products are too small to share, else at most two
    (more could not be measured; benchmarks/README.md)."""
    return threads or (1 if batch_size < 64 else min(usable_cpus(), 2))


def usable_cpus() -> int:
    """The CPU cores this process may run on; where the OS has no affinity call (macOS, Windows), all."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_device(device: str) -> None:
    """The CPU thread count is a private call: `fast.set_cpu_threads(cpu_threads(threads, batch_size))`."""
    import paddle  # here, not above: `prepare_process` must run before Paddle loads

    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UsageError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); this one is CPU-only")
    paddle.set_device(device)


def require_memory(nbytes: int, what: str) -> None:
    """Refuse what would not fit before allocating: numpy and Paddle take memory lazily, and the kernel's
    out-of-memory killer would end the run later, mid-run. Unknown outside Linux (MemAvailable)."""
    with contextlib.suppress(OSError, ValueError, IndexError, StopIteration), open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
        if nbytes > available:
            raise UsageError(f"{what} would take {nbytes / 2**30:.3g} GiB of memory; this machine has "
                             f"{available / 2**30:.3g} GiB available")
