"""Reading files from elsewhere within bounds, and writing so that no crash, kill, full disk or second process costs a
user their work. The run lock is `fcntl.flock` itself: the filelock package truncates the lock file as it tries it,
erasing the holder's line."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from paddle_ddpg.config import UsageError

try:
    import fcntl
except ImportError:  # Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
_TEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what `temporary` names


class SaveError(Exception):
    """A file could not be written (a full disk, say); its previous version, if any, is intact."""


def read_regular(path: str | Path, limit: int, what: str) -> bytes:
    """At most `limit` bytes, of a regular file: checked before opening (a FIFO blocks the open, /dev/zero never ends)
    and on what was opened (the path may have been replaced meanwhile)."""
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            kind = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket"}
            raise UsageError(f"{what} {path} is {kind.get(stat.S_IFMT(before.st_mode), 'a device')}, not a regular "
                             "file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        with open(fd, "rb") as f:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(opened.st_mode):
                raise UsageError(f"{what} {path} was replaced while it was being opened")
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise UsageError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit // 1024} KiB")
    return data


def temporary(path: Path, directory: bool = False) -> Path:
    """A new file (or directory) beside `path`, named so that `remove_stale_temporaries` knows it."""
    names = {"dir": path.parent, "prefix": f".{path.name}.", "suffix": ".tmp"}
    if directory:
        return Path(tempfile.mkdtemp(**names))
    fd, name = tempfile.mkstemp(**names)
    os.close(fd)
    return Path(name)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Write beside `path`, then rename over it: a crash leaves the old file or the new one, never half of one; a
    symlink at `path` is replaced, not followed."""
    tmp = None
    try:
        tmp = temporary(path)
        os.umask(umask := os.umask(0))
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; a checkpoint is an ordinary file
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        fsync_directory(path.parent)
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {exc.strerror or exc}; its previous version, if any, is "
                        "intact") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` survive a power cut (a no-op where directories cannot be opened or synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete what interrupted saves left; only the directory's holder calls it, so no other save is in flight."""
    for p in directory.iterdir() if directory.is_dir() else ():
        if _TEMP.match(p.name) and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def disk_error(exc: OSError, doing: str) -> Exception:
    """`doing` failed: a full disk is a SaveError (status 1), anything else the user's to fix (status 2)."""
    message = f"{doing}: {exc.strerror or exc}"
    return SaveError(message) if exc.errno in (errno.ENOSPC, errno.EDQUOT) else UsageError(message)


class RunLock:
    """A run directory's lock for the run's life, released by the system on any exit; a second writer is refused in
    one line naming the holder."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                raise disk_error(exc, f"cannot lock run {self.path.parent}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise UsageError(f"run {self.path.parent} is in use by {holder}; wait for it to finish or stop "
                                 "it first") from None
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            os.close(fd)  # the holder removed this file as it finished: lock the new one
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"process {os.getpid()} ({' '.join(sys.argv)[:300]})".encode(errors="replace"))
        except OSError as exc:
            self.release()
            raise disk_error(exc, f"cannot lock run {self.path.parent}") from None

    def release(self) -> None:
        """Remove the file, then let go: a process that opened it meanwhile sees it gone and retries."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
