"""Where a run lives: its checkpoint and log directories, found, claimed by one process, and kept apart
from every other run's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from paddle_ddpg.checkpoint import CHECKPOINT_NAME
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.files import LOCK_NAME, RunLock, atomic_write, remove_stale_temporaries

MARKER = ".run.json"  # in a log directory: the run directory it belongs to


def run_paths(config: Config, resume: dict[str, Any] | None) -> tuple[Path, Path]:
    """The run's checkpoint and log directories.

    A resumed run stays beside its checkpoint wherever it is resumed from, and finds its logs by the path
    from the checkpoint's directory recorded when the run began, taken from the directory's real location:
    through a symbolic link to the run, `..` would lead somewhere else.
    """
    if resume is None:
        return Path(config.model_dir) / config.run_name, Path(config.logdir) / config.run_name
    run_dir = Path(os.path.realpath(Path(resume["path"]).parent))
    return run_dir, Path(os.path.normpath(run_dir / resume["log_dir_from_run_dir"]))


def claim(run_dir: Path, log_dir: Path, resume: dict[str, Any] | None, overwrite: bool) -> tuple[RunLock, Path]:
    """Lock the run, create its directories and return the lock and the log directory to write.

    A new run refuses an existing one of the same name unless `overwrite`; the lock is taken before anything
    is deleted, so two processes never write one run. A resumed run whose log directory belongs to another
    run directory (the run was copied) gets its own, named after its directory.
    """
    resuming = resume is not None
    if not resuming and not overwrite:
        _refuse_existing(run_dir, log_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot write to {run_dir}: {exc.strerror}") from None
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        if not resuming and not overwrite:
            _refuse_existing(run_dir, log_dir)  # another process may have made it while this one waited
        if resume is not None:
            log_dir = _own_log_dir(run_dir, log_dir, resume["log_dir_from_run_dir"])
        for d in (run_dir, log_dir):
            try:
                d.mkdir(parents=True, exist_ok=True)
                probe = d / ".write-test"
                probe.touch()
                probe.unlink()
            except OSError as exc:
                raise UsageError(f"cannot write to {d}: {exc.strerror}") from None
        remove_stale_temporaries(run_dir)
        if overwrite and not resuming:
            for old in [*log_dir.glob("vdlrecords.*"), *run_dir.glob("*-actor*.pdparams"),
                        *run_dir.glob("*-critic*.pdparams"), run_dir / CHECKPOINT_NAME]:
                old.unlink(missing_ok=True)
        atomic_write(log_dir / MARKER, lambda f: f.write(json.dumps({"run_dir": os.path.realpath(run_dir)}).encode()))
    except BaseException:
        lock.release()
        raise
    return lock, log_dir


def _refuse_existing(run_dir: Path, log_dir: Path) -> None:
    for d in (run_dir, log_dir):
        try:
            occupied = d.is_dir() and any(p.name not in (LOCK_NAME, MARKER) for p in d.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot read {d}: {exc.strerror}") from None
        if occupied:
            checkpoint = run_dir / CHECKPOINT_NAME
            resume = f"resume it with --resume {checkpoint}, " if checkpoint.is_file() else ""
            raise UsageError(f"run {run_dir.name!r} already exists in {d}; {resume}pick another --run-name, "
                             "or pass --overwrite")


def _own_log_dir(run_dir: Path, log_dir: Path, relative: str) -> Path:
    """`log_dir`, unless it is the log directory of another run directory that still exists: then this run
    is a copy of that one made beside it, and logs under its own directory's name instead. (A copy of the
    whole tree, logs included, finds its own copy of the logs: they are its.)"""
    owner = _owner(log_dir)
    if owner is None or owner == os.path.realpath(run_dir) or not Path(owner).is_dir():
        return log_dir  # its own, from before markers, or the run was moved: it takes the logs along
    if os.path.realpath(os.path.normpath(Path(owner) / relative)) != os.path.realpath(log_dir):
        return log_dir
    copy_logs = log_dir.parent / run_dir.name
    if copy_logs != log_dir and _owner(copy_logs) in (None, os.path.realpath(run_dir)) and not (
            _owner(copy_logs) is None and copy_logs.is_dir() and any(copy_logs.iterdir())):
        return copy_logs
    raise UsageError(f"{run_dir} is a copy of the run in {owner}, whose logs are in {log_dir}; resume the "
                     f"original, or give the copy's directory a name that has no logs yet in {log_dir.parent}")


def _owner(log_dir: Path) -> str | None:
    try:
        owner = json.loads((log_dir / MARKER).read_text()).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return None
    return owner if isinstance(owner, str) else None
