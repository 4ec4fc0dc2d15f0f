"""Writing and reading checkpoints so that no crash, kill or bad path costs a user their training.

A run directory holds the tutorial-style snapshots `ddpg-actor<episode>.pdparams` and
`ddpg-critic<episode>.pdparams` (`td3-` for TD3; plain state dicts: `paddle.load` + `set_state_dict`, as in
the tutorial), the actor of the best evaluation, `ddpg-actor-best.pdparams`, `config.json`, and
`checkpoint.pdckpt`: the full training state that `--resume` continues from.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import paddle

from paddle_ddpg.config import UsageError

CHECKPOINT_SUFFIX = ".pdckpt"
CHECKPOINT_NAME = "checkpoint" + CHECKPOINT_SUFFIX
FORMAT = "paddle_ddpg/1"


class SaveError(Exception):
    """A file could not be written (a full disk, say); its previous version, if any, is intact."""


def atomic_write(path: Path, write: Any) -> None:
    """Write through `write(file)` into a temporary file beside `path`, fsync, then rename over `path`.

    The rename is atomic on POSIX, so a reader (or a resumed run after a crash mid-save) sees either the
    old file or the new one, never half of one. The system's errors become a `SaveError` naming `path`.
    """
    try:
        _write_then_rename(path, write)
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_then_rename(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes files private; a checkpoint is an ordinary file
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda f: pickle.dump({"format": FORMAT, **state}, f, protocol=pickle.HIGHEST_PROTOCOL))


def save_state_dict(path: Path, state: dict[str, Any]) -> None:
    """A tutorial-style `.pdparams` file, written atomically."""
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint file as given, or a run directory's full checkpoint (else its newest actor snapshot)."""
    p = Path(path)
    if p.is_dir():
        if (p / CHECKPOINT_NAME).is_file():
            return p / CHECKPOINT_NAME
        snapshots = sorted(p.glob("*-actor*.pdparams"), key=_episode_of)
        if not snapshots:
            raise UsageError(f"no checkpoint in directory {path} (expected {CHECKPOINT_NAME} or *-actor<N>.pdparams)")
        return snapshots[-1]
    if not p.exists():
        raise UsageError(f"checkpoint not found: {path}")
    return p


def _episode_of(path: Path) -> int:
    match = re.search(r"(\d+)\.pdparams$", path.name)
    return int(match.group(1)) if match else -1


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a full checkpoint, turning every way a file can be wrong into one UsageError line."""
    try:
        with open(path, "rb") as f:
            state = pickle.load(f)
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except Exception:  # truncated or foreign bytes raise any of a dozen unpickling errors
        raise UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
    state["path"] = str(path)  # where it was read from: a resumed run continues beside it
    return state


def load_state_dict(path: Path) -> dict[str, Any]:
    """Read a tutorial-style `.pdparams` state dict with the same one-line errors."""
    try:
        state = paddle.load(str(path))
    except Exception:
        raise UsageError(f"checkpoint {path} is corrupt or truncated; not a Paddle state dict") from None
    if not isinstance(state, dict) or not state:
        raise UsageError(f"{path} is not a Paddle state dict")
    return state
