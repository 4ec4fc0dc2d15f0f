"""The run's state: what `checkpoint.pdckpt` holds, how it is written, read back, checked, and put back into a
`Trainer`, so that `--resume` continues exactly the run that was interrupted.

The file is safetensors: the arrays under numbered names, and everything else as one JSON document in its
metadata, arrays referred to by name. The safetensors library checks every array's type, shape and offsets
against the file's size before anything is read, and the format holds no code. Each array is read when the
document first refers to it; a second reference is refused, so a small file cannot fan out into much memory.
Checkpoints of version 0.2 (a zip of `.npy` files, `legacy.py`) and 0.1 (a pickle, read through the
allow-list of `snapshot.py`) load too; a resumed run writes the current format.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from paddle_ddpg import legacy
from paddle_ddpg.config import UsageError
from paddle_ddpg.device import require_memory
from paddle_ddpg.files import atomic_write
from paddle_ddpg.loop import Trainer
from paddle_ddpg.snapshot import NUMBER_KINDS, load_state_dict, unpickle

# load_state_dict: a run's snapshots are read where its checkpoint is (policy.py, the safety tests).
__all__ = ["CHECKPOINT_NAME", "CHECKPOINT_SUFFIX", "MAX_WIDTH", "capture", "load_checkpoint", "load_state_dict",
           "log_dir_of", "record_of", "resolve_checkpoint", "restore", "save_checkpoint"]

CHECKPOINT_SUFFIX = ".pdckpt"
CHECKPOINT_NAME = "checkpoint" + CHECKPOINT_SUFFIX
FORMAT = "paddle_ddpg/3"
PICKLED_FORMAT = "paddle_ddpg/1"  # version 0.1's pickled checkpoints
DOCUMENT_KEY = "paddle_ddpg"  # the metadata entry holding the JSON document
MAX_WIDTH = 1 << 24  # largest observation or action size a file may declare
_ARRAY = "__ndarray__"
_RECORD_NAME = re.compile(r"^vdlrecords\.[0-9A-Za-z_.-]+\.log$")  # VisualDL's record file names

# The top level: each key and the types its value may have.
_NUMBER = (int, float)
SCHEMA: dict[str, tuple[type, ...]] = {
    "config": (dict,), "state_dim": (int,), "action_dim": (int,), "agent": (dict,), "memory": (dict,),
    "rng": (dict,), "episode": (int,), "steps": (int,), "epsilon": _NUMBER, "wall_seconds": _NUMBER,
    "last_eval": (*_NUMBER, type(None)), "last_eval_std": (*_NUMBER, type(None)), "evals": (list,),
    "eval_seconds": _NUMBER, "loss_sums": (dict,), "log_dir_from_run_dir": (str,),
}


# A run's state, out of a Trainer and back in

def capture(trainer: Trainer, run_dir: Path, log_dir: Path, record: tuple[str, int]) -> dict[str, Any]:
    """Everything `restore` needs to continue `trainer`'s run; `record`: the VisualDL record's file name and
    its length now, to which a resume cuts it back (after a kill, it holds points logged since)."""
    return {
        "config": trainer.config.to_dict(),
        "state_dim": trainer.env.observation_space.shape[0], "action_dim": trainer.env.action_space.shape[0],
        "agent": trainer.agent.state_dict(), "memory": trainer.memory.state_dict(),
        "rng": {"noise": trainer.noise_rng.bit_generator.state, "memory": trainer.memory.rng.bit_generator.state},
        "episode": trainer.episode, "steps": trainer.steps, "epsilon": trainer.epsilon,
        "wall_seconds": trainer.wall_seconds, "last_eval": trainer.last_eval, "last_eval_std": trainer.last_eval_std,
        "evals": trainer.evals, "eval_seconds": trainer.eval_seconds,
        "loss_sums": trainer.loss_sums,  # so that a resumed run logs the same loss means as an uninterrupted one
        "log_dir_from_run_dir": os.path.relpath(os.path.realpath(log_dir), os.path.realpath(run_dir)),
        "record": {"file": record[0], "bytes": record[1]},
    }


def restore(trainer: Trainer, saved: dict[str, Any]) -> None:
    """Continue from a `load_checkpoint` result; whatever in it does not fit this run is one UsageError."""
    path = saved["path"]
    sizes = (trainer.env.observation_space.shape[0], trainer.env.action_space.shape[0])
    if sizes != (saved["state_dim"], saved["action_dim"]):
        raise UsageError(f"checkpoint {path} is damaged: it holds observation and action sizes {saved['state_dim']}, "
                         f"{saved['action_dim']}; {trainer.config.env} has {sizes[0]}, {sizes[1]}")
    try:
        trainer.agent.set_state_dict(saved["agent"])
        trainer.memory.set_state_dict(saved["memory"])
        trainer.noise_rng.bit_generator.state = saved["rng"]["noise"]
        trainer.memory.rng.bit_generator.state = saved["rng"]["memory"]
        trainer.evals = [{k: float(e[k]) if k in ("mean", "std", "train_seconds") else int(e[k])
                          for k in ("episodes", "steps", "mean", "std", "train_seconds")} for e in saved["evals"]]
        trainer.loss_sums = {str(tag): (float(total), int(count)) for tag, (total, count) in saved["loss_sums"].items()}
    except UsageError as exc:
        raise UsageError(f"checkpoint {path}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UsageError(f"checkpoint {path} is damaged: {type(exc).__name__}: {exc}") from None
    trainer.episode, trainer.steps, trainer.epsilon = saved["episode"], saved["steps"], float(saved["epsilon"])
    trainer.last_eval, trainer.last_eval_std = saved["last_eval"], saved["last_eval_std"]
    trainer.eval_seconds, trainer.earlier_seconds = float(saved["eval_seconds"]), float(saved["wall_seconds"])


def log_dir_of(run_dir: Path, saved: dict[str, Any]) -> Path:
    """Where the resumed run logs: the log directory of the run's name, reached from the run directory as it
    was when the run began (`../../logs/<name>` for the default layout). The relation is read from the file,
    so it is accepted only in that shape: relative, climbing first and then only descending, and ending in a
    directory named after the run; an absolute path or one into any other directory is refused."""
    relation = saved["log_dir_from_run_dir"]
    parts = Path(relation).parts
    climb = next((i for i, part in enumerate(parts) if part != ".."), len(parts))
    names = {run_dir.name, str(saved["config"].get("run_name"))}
    inside = not parts or (parts[-1] in names and ".." not in parts[climb:] and climb < len(run_dir.parts))
    if Path(relation).is_absolute() or "\0" in relation or not inside:
        raise UsageError(f"checkpoint {saved['path']} is damaged: its log directory {relation!r} lies outside the "
                         "run; not resumed")
    return Path(os.path.normpath(run_dir / relation))


def record_of(saved: dict[str, Any]) -> tuple[str, int] | None:
    """The VisualDL record's file name and length at the checkpoint (None from version 0.2, which kept none)."""
    record = saved.get("record")
    if record is None:
        return None
    length = record.get("bytes") if isinstance(record, dict) else None
    if not (isinstance(record, dict) and isinstance(record.get("file"), str) and _RECORD_NAME.match(record["file"])
            and type(length) is int and length >= 0):
        raise UsageError(f"checkpoint {saved['path']} is damaged: its VisualDL record entry is {record!r}")
    return record["file"], length


# The file

def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts and lists of numbers, strings, None and numpy arrays) atomically."""
    arrays: dict[str, np.ndarray] = {}
    document = json.dumps({"format": FORMAT, **_encode(state, arrays)}, allow_nan=True)
    data = safetensors_bytes(arrays, metadata={DOCUMENT_KEY: document})
    atomic_write(path, lambda f: f.write(data))


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        name = str(len(arrays))
        arrays[name] = value if value.flags.c_contiguous else value.copy(order="C")  # 0-d stays 0-d
        return {_ARRAY: name}
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint file as given, or a run directory's full checkpoint (else its newest actor snapshot)."""
    p = Path(path)
    try:
        if p.is_dir():
            if (p / CHECKPOINT_NAME).is_file():
                return p / CHECKPOINT_NAME
            snapshots = sorted(p.glob("*-actor*.pdparams"), key=_episode_of)
            if not snapshots:
                raise UsageError(f"no checkpoint in directory {path} (expected {CHECKPOINT_NAME} or "
                                 "*-actor<N>.pdparams)")
            return snapshots[-1]
        if not p.exists():
            raise UsageError(f"checkpoint not found: {path}")
    except OSError as exc:  # a name too long, a directory that cannot be read
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not p.is_file():
        raise UsageError(f"{path} is not a regular file")
    return p


def _episode_of(path: Path) -> int:
    match = re.search(r"(\d+)\.pdparams$", path.name)
    return int(match.group(1)) if match else -1


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a full checkpoint, turning every way a file can be wrong into one UsageError line."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            require_memory(size, f"checkpoint {path}")
            head = f.read(9)
            f.seek(0)
            if head[:2] == b"PK":
                state = _decode(*legacy.read_zip(f, path, size), path)
            elif head[:1] == b"\x80":
                state = unpickle(f, path)
                if isinstance(state, dict) and state.get("format") != PICKLED_FORMAT:
                    raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
            elif head[8:9] == b"{":
                state = _read(path)
            else:
                raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except MemoryError:
        raise UsageError(f"checkpoint {path} declares more data than this machine can hold") from None
    except RecursionError:  # a document nested deeper than Python's stack
        raise UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint") from None
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, legacy.ZIP_FORMAT, PICKLED_FORMAT):
        raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
    for key, kinds in SCHEMA.items():
        value = state.get(key)
        if key not in state or not isinstance(value, kinds) or isinstance(value, bool):
            raise UsageError(f"checkpoint {path} is damaged: {key!r} is missing or of the wrong type "
                             f"({type(value).__name__})")
    if not (0 < state["state_dim"] <= MAX_WIDTH and 0 < state["action_dim"] <= MAX_WIDTH):
        raise UsageError(f"checkpoint {path} is damaged: sizes {state['state_dim']}, {state['action_dim']}")
    state["path"] = str(path)  # where it was read from: a resumed run continues beside it
    return state


def _read(path: Path) -> Any:
    """The document of a safetensors checkpoint with its arrays in place."""
    try:
        with safe_open(str(path), framework="np") as f:
            document = json.loads((f.metadata() or {})[DOCUMENT_KEY])
            names = set(f.keys())

            def array(name: Any) -> np.ndarray:
                if name not in names:
                    raise UsageError(f"checkpoint {path} is damaged: it refers to array {name!r}, which it does not "
                                     "hold")
                return f.get_tensor(name)

            return _decode(document, array, path)
    except (SafetensorError, KeyError, TypeError, ValueError, RecursionError):  # json's errors are ValueErrors
        raise UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint") from None


def _decode(document: Any, array: Callable[[Any], np.ndarray], path: Path) -> Any:
    """`document` with each array reference replaced by the array, each array read once: a second reference
    to one is refused, since our files never make one and a doctored file would multiply its memory by it."""
    taken: set[Any] = set()

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {_ARRAY} and isinstance(value[_ARRAY], (int, str)):
                name = value[_ARRAY]
                if name in taken:
                    raise UsageError(f"checkpoint {path} is damaged: it refers to array {name!r} more than once")
                taken.add(name)
                got = array(name)
                if got.dtype.kind not in NUMBER_KINDS:
                    raise UsageError(f"checkpoint {path}: array {name!r} holds {got.dtype} values; only numbers "
                                     "are accepted")
                return got
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(document)
