"""Where Paddle computes: the device, the number of CPU threads, the memory a run may take, and the
settings a program makes for its process as it starts."""

from __future__ import annotations

import os
import warnings

from paddle_ddpg.config import UsageError


def prepare_process() -> None:
    """Settings a program (`python -m paddle_ddpg.train` and the others) makes for its own process as it
    starts, before Paddle loads; importing the package makes none. Each keeps a value the user set.

    - Paddle's CPU matrix products run on Intel MKL, which takes a slow generic path on AMD processors;
      MKL_DEBUG_CPU_TYPE=5 selects its AVX2 kernels (benchmarks/README.md has the difference).
    - Paddle's C++ side logs informational lines and warnings on stderr (running an exported program,
      tracing one for export), which would bury the one-line errors the programs promise; its errors show.
    - Paddle warns about a C++ extension cache on every import; nothing here builds extensions.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
    if "MKL_DEBUG_CPU_TYPE" in os.environ:
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


def set_device(device: str) -> None:
    """Select the device Paddle computes on. The number of CPU threads is set by a private call, so the
    programs ask the fast engine for it: `fast.set_cpu_threads(cpu_threads(threads, batch_size))`."""
    import paddle  # imported here, not above: `prepare_process` in this module must run before Paddle loads

    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UsageError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); this one is CPU-only")
    paddle.set_device(device)


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
