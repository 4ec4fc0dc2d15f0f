"""The run's state: what `checkpoint.pdckpt` holds, how it is written, read, checked and put back into a `Trainer`.
Safetensors (no code; sizes checked by the library) of numbered arrays, with a JSON document in its metadata referring
to each once, so a small file cannot fan out into much memory. 0.2's zips of `.npy` load too, their shapes checked
against their bytes here (numpy does not)."""

from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save as safetensors_bytes

from paddle_ddpg.config import UsageError
from paddle_ddpg.device import require_memory
from paddle_ddpg.files import atomic_write
from paddle_ddpg.loop import Trainer
from paddle_ddpg.snapshot import NUMBER_KINDS
from paddle_ddpg.snapshot import load_state_dict as load_state_dict  # a run's snapshots, read beside its checkpoint

CHECKPOINT_SUFFIX = ".pdckpt"
CHECKPOINT_NAME = "checkpoint" + CHECKPOINT_SUFFIX
FORMAT, ZIP_FORMAT, PICKLED_FORMAT = "paddle_ddpg/4", "paddle_ddpg/2", "paddle_ddpg/1"  # 0.2 zips, 0.1 pickles
SAFETENSORS_FORMATS = ("paddle_ddpg/3", FORMAT)  # 3: 0.3's, whose DDPG ignored policy_delay
DOCUMENT_KEY = "paddle_ddpg"  # the metadata entry holding the JSON document
MAX_WIDTH = 1 << 24  # largest observation or action size a file may declare
_ARRAY = "__ndarray__"
_RECORD_NAME = re.compile(r"^vdlrecords\.[0-9A-Za-z_.-]+\.log$")  # VisualDL's record file names
_NPY_HEADER = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_NUMBER = (int, float)
SCHEMA: dict[str, tuple[type, ...]] = {  # the top level: each key and the types its value may have
    "config": (dict,), "state_dim": (int,), "action_dim": (int,), "agent": (dict,), "memory": (dict,),
    "rng": (dict,), "episode": (int,), "steps": (int,), "epsilon": _NUMBER, "wall_seconds": _NUMBER,
    "last_eval": (*_NUMBER, type(None)), "last_eval_std": (*_NUMBER, type(None)), "evals": (list,),
    "eval_seconds": _NUMBER, "loss_sums": (dict,), "log_dir_from_run_dir": (str,),
}


def capture(trainer: Trainer, run_dir: Path, log_dir: Path, record: tuple[str, int]) -> dict[str, Any]:
    """`record`: the VisualDL record's file name and length, to which a resume cuts it back after a kill."""
    return {
        "config": trainer.config.to_dict(), "agent": trainer.agent.state_dict(), "memory": trainer.memory.state_dict(),
        "state_dim": trainer.env.observation_space.shape[0], "action_dim": trainer.env.action_space.shape[0],
        "rng": {"noise": trainer.noise_rng.bit_generator.state, "memory": trainer.memory.rng.bit_generator.state},
        "episode": trainer.episode, "steps": trainer.steps, "epsilon": trainer.epsilon,
        "wall_seconds": trainer.wall_seconds, "last_eval": trainer.last_eval, "last_eval_std": trainer.last_eval_std,
        "evals": trainer.evals, "eval_seconds": trainer.eval_seconds,
        "loss_sums": trainer.loss_sums,  # so that a resumed run logs the same loss means as an uninterrupted one
        "log_dir_from_run_dir": os.path.relpath(os.path.realpath(log_dir), os.path.realpath(run_dir)),
        "record": {"file": record[0], "bytes": record[1]}}


def restore(trainer: Trainer, saved: dict[str, Any]) -> None:
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
    """The resumed run's log directory, reached from the run directory as when it began (`../../logs/<name>`): only
    that shape is accepted from the file, relative, climbing then descending, ending in the run's name."""
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
    """The VisualDL record's file name and length at the checkpoint (None from 0.2, which kept none)."""
    record = saved.get("record")
    if record is not None and not (isinstance(record, dict) and isinstance(record.get("file"), str)
                                   and _RECORD_NAME.match(record["file"])
                                   and type(record.get("bytes")) is int and record["bytes"] >= 0):
        raise UsageError(f"checkpoint {saved['path']} is damaged: its VisualDL record entry is {record!r}")
    return None if record is None else (record["file"], record["bytes"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    arrays: dict[str, np.ndarray] = {}

    def encode(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            arrays[name := str(len(arrays))] = value if value.flags.c_contiguous else value.copy(order="C")
            return {_ARRAY: name}  # 0-d stays 0-d
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        return value.item() if isinstance(value, np.generic) else value

    data = safetensors_bytes(arrays, metadata={DOCUMENT_KEY: json.dumps({"format": FORMAT, **encode(state)})})
    atomic_write(path, lambda f: f.write(data))


def resolve_checkpoint(path: str) -> Path:
    """A checkpoint file as given, or a run directory's full checkpoint (else its newest actor snapshot)."""
    p = Path(path)
    try:
        if p.is_dir():
            if (p / CHECKPOINT_NAME).is_file():
                return p / CHECKPOINT_NAME
            snapshots = sorted(p.glob("*-actor*.pdparams"),
                               key=lambda s: int(m.group(1)) if (m := re.search(r"(\d+)\.pdparams$", s.name)) else -1)
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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Every way a file can be wrong is one UsageError line."""
    foreign = UsageError(f"{path} is not a paddle_ddpg checkpoint")
    try:
        with open(path, "rb") as f:
            require_memory(size := os.fstat(f.fileno()).st_size, f"checkpoint {path}")
            head = f.read(64)
            f.seek(0)
            if head[:2] == b"PK":
                state, tags = _read_zip(f, path, size), (ZIP_FORMAT,)
            elif head[:1] == b"\x80" and PICKLED_FORMAT.encode() in head:  # its tag, read without unpickling
                raise UsageError(f"{path} is a 0.1 checkpoint, which this version does not read; resume it once with "
                                 "paddle_ddpg 0.2, which writes its checkpoint in the 0.2 format this version reads")
            elif head[8:9] == b"{":
                with safe_open(str(path), framework="np") as st:
                    names, tags = set(st.keys()), SAFETENSORS_FORMATS
                    state = _decode(json.loads((st.metadata() or {})[DOCUMENT_KEY]),
                                    lambda name: st.get_tensor(name) if name in names else None, path)
            else:
                raise foreign
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    except MemoryError:
        raise UsageError(f"checkpoint {path} declares more data than this machine can hold") from None
    # The libraries' ways of finding a file damaged; RuntimeError: a document nested past Python's stack.
    except (SafetensorError, zipfile.BadZipFile, struct.error, EOFError, KeyError, TypeError, ValueError,
            RuntimeError):
        raise UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint") from None
    if not isinstance(state, dict) or state.get("format") not in tags:  # each format's own tags
        raise foreign
    for key, kinds in SCHEMA.items():
        value = state.get(key)
        if key not in state or not isinstance(value, kinds) or isinstance(value, bool):
            raise UsageError(f"checkpoint {path} is damaged: {key!r} is missing or of the wrong type "
                             f"({type(value).__name__})")
    if not (0 < state["state_dim"] <= MAX_WIDTH and 0 < state["action_dim"] <= MAX_WIDTH):
        raise UsageError(f"checkpoint {path} is damaged: sizes {state['state_dim']}, {state['action_dim']}")
    if state["format"] != FORMAT and state["config"].get("algo") == "ddpg":  # its policy_delay was TD3's alone
        state["config"]["policy_delay"] = 1
    state["path"] = str(path)  # where it was read from: a resumed run continues beside it
    return state


def _read_zip(f: IO[bytes], path: Path, size: int) -> Any:
    """A 0.2 checkpoint: stored members only, so that none is larger than the file."""
    archive = zipfile.ZipFile(f)
    members = {info.filename: info for info in archive.infolist()}
    if "checkpoint.json" not in members or any(info.compress_type != zipfile.ZIP_STORED or info.file_size > size
                                               for info in members.values()):
        raise ValueError("not a stored zip of a checkpoint")

    def array(index: Any) -> np.ndarray | None:
        name = f"arrays/{index}.npy"
        if name not in members:
            return None
        with archive.open(name) as member:
            shape, fortran, dtype = _NPY_HEADER[np.lib.format.read_magic(member)](member)  # KeyError: another version
            _numbers(dtype, index, path)  # before anything is read
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes != members[name].file_size - member.tell():
                raise UsageError(f"checkpoint {path} is damaged: {name} declares shape {shape} of {dtype}, "
                                 "which its bytes do not hold")
            return np.frombuffer(member.read(nbytes), dtype).reshape(shape, order="F" if fortran else "C").copy()

    return _decode(json.loads(archive.read("checkpoint.json")), array, path)


def _numbers(dtype: np.dtype, name: Any, path: Path) -> None:
    if dtype.hasobject or dtype.kind not in NUMBER_KINDS:
        raise UsageError(f"checkpoint {path}: array {name!r} holds Python objects or {dtype} values; only numbers "
                         "are accepted")


def _decode(document: Any, array: Callable[[Any], np.ndarray | None], path: Path) -> Any:
    """Each array reference replaced by its array; a second reference is refused (ours never make one)."""
    taken: set[Any] = set()

    def walk(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {_ARRAY} and isinstance(value[_ARRAY], (int, str)):
            if (name := value[_ARRAY]) in taken:
                raise UsageError(f"checkpoint {path} is damaged: it refers to array {name!r} more than once")
            taken.add(name)
            if (got := array(name)) is None:
                raise UsageError(f"checkpoint {path} is damaged: it refers to array {name!r}, which it does not hold")
            _numbers(got.dtype, name, path)
            return got
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return [walk(v) for v in value] if isinstance(value, list) else value

    return walk(document)
