"""Where a run lives: its checkpoint and log directories, found, claimed by one process, and kept apart
from every other run's."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, log_dir_of
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.files import LOCK_NAME, RunLock, disk_error, remove_stale_temporaries


def run_paths(config: Config, resume: dict[str, Any] | None) -> tuple[Path, Path]:
    """The run's checkpoint and log directories.

    A resumed run stays beside its checkpoint wherever it is resumed from, and finds its logs from the
    directory's real location (through a symbolic link to the run, `..` would lead somewhere else), by the
    relation `checkpoint.log_dir_of` accepts.
    """
    if resume is None:
        return Path(config.model_dir) / config.run_name, Path(config.logdir) / config.run_name
    run_dir = Path(os.path.realpath(Path(resume["path"]).parent))
    return run_dir, log_dir_of(run_dir, resume)


def claim(run_dir: Path, log_dir: Path, resuming: bool, overwrite: bool) -> tuple[RunLock, Path]:
    """Lock the run, create its directories and return the lock and the log directory to write.

    A new run refuses an existing one of the same name unless `overwrite`; the lock is taken before anything
    is deleted, so two processes never write one run. A resumed run whose log directory belongs to another
    run directory (the run was copied) gets its own, named after its directory. If anything here fails, the
    directories it made are removed again: a run that could not start leaves nothing behind.
    """
    if not resuming and not overwrite:
        _refuse_existing(run_dir, log_dir)
    made = _missing(run_dir)
    lock = RunLock(run_dir)
    try:
        _writable(run_dir, probe=False)
        lock.acquire()
        if not resuming and not overwrite:
            _refuse_existing(run_dir, log_dir)  # another process may have made it while this one waited
        if resuming:
            log_dir = _own_log_dir(run_dir, log_dir)
        made += [d for d in _missing(log_dir) if d not in made]
        for d in (run_dir, log_dir):
            _writable(d, probe=True)
        remove_stale_temporaries(run_dir)
        if overwrite and not resuming:
            for old in [*log_dir.glob("vdlrecords.*"), *run_dir.glob("*-actor*.pdparams"),
                        *run_dir.glob("*-critic*.pdparams"), run_dir / CHECKPOINT_NAME]:
                old.unlink(missing_ok=True)
    except BaseException:
        lock.release()
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            try:
                d.rmdir()  # only ever empty: what this call made and nothing wrote into
            except OSError:
                pass
        raise
    return lock, log_dir


def _missing(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet."""
    missing = []
    try:
        while not directory.exists() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
    except OSError:  # a name too long: nothing of it can be made either
        pass
    return missing


def _writable(directory: Path, probe: bool) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if probe:
            (directory / ".write-test").touch()
            (directory / ".write-test").unlink()
    except OSError as exc:
        raise disk_error(exc, f"cannot write to {directory}") from None


def _refuse_existing(run_dir: Path, log_dir: Path) -> None:
    for d in (run_dir, log_dir):
        try:
            occupied = d.is_dir() and any(p.name != LOCK_NAME for p in d.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot read {d}: {exc.strerror}") from None
        if occupied:
            checkpoint = run_dir / CHECKPOINT_NAME
            resume = f"resume it with --resume {checkpoint}, " if checkpoint.is_file() else ""
            raise UsageError(f"run {run_dir.name!r} already exists in {d}; {resume}pick another --run-name, "
                             "or pass --overwrite")


def _own_log_dir(run_dir: Path, log_dir: Path) -> Path:
    """`log_dir`, unless it is named after another run that still sits beside this one: then this run
    directory is a copy of that run, and gets logs of its own name. A run's two directories share its name,
    so a renamed run (its original gone) keeps its logs, and a copy of the whole tree finds its own copy."""
    if log_dir.name == run_dir.name or not (run_dir.parent / log_dir.name / CHECKPOINT_NAME).is_file():
        return log_dir
    return log_dir.parent / run_dir.name
