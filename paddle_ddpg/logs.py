"""The run's VisualDL record, with every write checked.

VisualDL writes from a background thread that swallows its errors (on a full disk it warns and logs nothing), so
after each flush the record is read back from the last good point: it must hold exactly the records written since,
whole (VisualDL frames each as an 8-byte little-endian length and the bytes). If not, it is cut back to that
point, which leaves the earlier record as it was, and the run stops with a `SaveError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
from pathlib import Path

from visualdl import LogWriter

from paddle_ddpg.config import UsageError
from paddle_ddpg.files import SaveError


class RunLog:
    """`add_scalar` as VisualDL's; `commit` checks that it is on disk. It appends to the newest record file, the only
    one VisualDL's server shows; `cut_back` (a file and length from the checkpoint resumed from) drops what a run
    killed after it logged, so no step appears twice."""

    def __init__(self, log_dir: Path, cut_back: tuple[str, int] | None = None) -> None:
        existing = sorted(log_dir.glob("vdlrecords.*.log"))
        if existing and existing[-1].is_symlink():
            raise UsageError(f"{existing[-1]} is a symbolic link; a run writes its log only into its own files")
        if cut_back is not None and existing and existing[-1].name == cut_back[0]:
            try:
                if existing[-1].stat().st_size > cut_back[1]:
                    os.truncate(existing[-1], cut_back[1])
            except OSError as exc:
                raise SaveError(f"cannot cut the VisualDL record {existing[-1]} back to the checkpoint: "
                                f"{exc.strerror}") from None
        with contextlib.redirect_stdout(io.StringIO()):  # VisualDL announces the append on stdout
            self.writer = LogWriter(logdir=str(log_dir), file_name=existing[-1].name if existing else "")
        self.path = Path(self.writer.file_name)
        self.writer.flush()
        self.good, self.pending = self._size(), 0  # the end of the last checked record; records added since

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        self.pending += 1

    def commit(self) -> None:
        if not self.pending:
            return
        self.writer.flush()
        size, count, end = self._size(), 0, self.good
        try:
            with open(self.path, "rb") as f:
                while end < size:
                    f.seek(end)
                    end += 8 + struct.unpack("<Q", f.read(8))[0]
                    count += 1
        except (OSError, struct.error):
            end = -1
        if end != size or count != self.pending:
            with contextlib.suppress(OSError):
                os.truncate(self.path, self.good)
            raise SaveError(f"cannot write the VisualDL record {self.path}: {self.pending} values were logged, "
                            f"{count} reached the file (a full disk?); it is cut back to its last complete record")
        self.good, self.pending = size, 0

    @property
    def position(self) -> tuple[str, int]:
        """The record's file name and the length committed: where a resume cuts it back to."""
        return self.path.name, self.good

    def close(self) -> None:
        self.writer.close()

    def _size(self) -> int:
        try:
            return os.stat(self.path).st_size
        except OSError:
            return -1
