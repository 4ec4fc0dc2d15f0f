"""The files of a run, and reading them without ever running code from them.

A run directory holds the tutorial-style snapshots `ddpg-actor<episode>.pdparams` and
`ddpg-critic<episode>.pdparams` (`td3-` for TD3), the actor of the best evaluation, `config.json`, and
`checkpoint.pdckpt`: the full training state that `--resume` continues from.

Files from elsewhere are untrusted. Python's pickle, behind `paddle.load`, runs whatever code a file names,
so nothing here unpickles freely:

- `checkpoint.pdckpt` is a zip of `.npy` arrays and one JSON document (`checkpoint.json`) holding the rest,
  arrays referred to by name; arrays are read with their declared shape and type checked against the bytes
  the file really holds, before anything is allocated.
- `.pdparams` snapshots stay what `paddle.save` writes, so the tutorial's `paddle.load` reads them; this
  package reads them (and the checkpoints of version 0.1, which were pickles) with an unpickler that accepts
  only what a state dict is made of (dicts, lists, numbers, strings, numpy arrays) and refuses any other
  global with one line naming it.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from paddle_ddpg.config import UsageError
from paddle_ddpg.files import atomic_write

CHECKPOINT_SUFFIX = ".pdckpt"
CHECKPOINT_NAME = "checkpoint" + CHECKPOINT_SUFFIX
FORMAT = "paddle_ddpg/2"
PICKLED_FORMAT = "paddle_ddpg/1"  # version 0.1's pickled checkpoints, read through the allow-list
DOCUMENT = "checkpoint.json"
MAX_WIDTH = 1 << 24  # largest observation or action size a file may declare
_ARRAY = "__ndarray__"
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned integers, floats: never objects


# Writing

def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` (nested dicts and lists of numbers, strings, None and numpy arrays) atomically."""
    arrays: list[np.ndarray] = []
    document = json.dumps({"format": FORMAT, **_encode(state, arrays)}, allow_nan=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(DOCUMENT, document)
        for i, array in enumerate(arrays):
            with archive.open(f"arrays/{i}.npy", "w") as member:
                np.save(member, array, allow_pickle=False)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def _encode(value: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        arrays.append(np.ascontiguousarray(value))
        return {_ARRAY: len(arrays) - 1}
    if isinstance(value, dict):
        return {str(k): _encode(v, arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_state_dict(path: Path, state: dict[str, Any]) -> None:
    """A tutorial-style `.pdparams` file (`paddle.save`'s format, which `paddle.load` reads), written atomically."""
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


# Reading

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
    if not p.is_file():
        raise UsageError(f"{path} is not a regular file")
    return p


def _episode_of(path: Path) -> int:
    match = re.search(r"(\d+)\.pdparams$", path.name)
    return int(match.group(1)) if match else -1


# The checkpoint's top level: each key and the types its value may have.
_NUMBER = (int, float)
SCHEMA: dict[str, tuple[type, ...]] = {
    "config": (dict,), "state_dim": (int,), "action_dim": (int,), "agent": (dict,), "memory": (dict,),
    "rng": (dict,), "episode": (int,), "steps": (int,), "epsilon": _NUMBER, "wall_seconds": _NUMBER,
    "last_eval": (*_NUMBER, type(None)), "last_eval_std": (*_NUMBER, type(None)), "evals": (list,),
    "eval_seconds": _NUMBER, "loss_sums": (dict,), "log_dir_from_run_dir": (str,),
}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a full checkpoint, turning every way a file can be wrong into one UsageError line."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(0)
            if magic.startswith(b"PK"):
                state = _read_archive(f, path)
            elif magic[:1] == b"\x80":  # a pickle: version 0.1's checkpoints
                state = _unpickle(f, path)
                if isinstance(state, dict) and state.get("format") != PICKLED_FORMAT:
                    raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
            else:
                raise UsageError(f"{path} is not a paddle_ddpg checkpoint")
    except OSError as exc:
        raise UsageError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if not isinstance(state, dict) or state.get("format") not in (FORMAT, PICKLED_FORMAT):
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


def _read_archive(f: Any, path: Path) -> Any:
    """The document of a zip checkpoint with its arrays in place."""
    size = Path(path).stat().st_size
    damaged = UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint")
    try:
        archive = zipfile.ZipFile(f)
        members = {info.filename: info for info in archive.infolist()}
        for info in members.values():
            # Stored, not compressed: every declared size is bounded by the file's own.
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
                raise damaged
        if DOCUMENT not in members:
            raise damaged
        document = json.loads(archive.read(DOCUMENT))
        return _decode(document, lambda i: _read_npy(archive, members, f"arrays/{i}.npy", path))
    except UsageError:
        raise
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError, EOFError,
            struct.error):
        raise damaged from None


def _decode(value: Any, array: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_ARRAY} and isinstance(value[_ARRAY], int):
            return array(value[_ARRAY])
        return {k: _decode(v, array) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, array) for v in value]
    return value


def _read_npy(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, path: Path) -> np.ndarray:
    if name not in members:
        raise UsageError(f"checkpoint {path} is damaged: it refers to {name}, which it does not hold")
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"npy version {version}")
        shape, fortran, dtype = read_header[version](member)
        if dtype.hasobject:
            raise UsageError(f"checkpoint {path}: {name} holds an array of Python objects; only numbers are accepted")
        if dtype.kind not in _ARRAY_KINDS:
            raise UsageError(f"checkpoint {path}: {name} holds {dtype} values; only numbers are accepted")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != members[name].file_size - member.tell():
            raise UsageError(f"checkpoint {path} is damaged: {name} declares shape {shape} of {dtype}, "
                             "which its bytes do not hold")
        data = member.read(nbytes)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """A `.pdparams` state dict (ours, or the tutorial's `.para`), as numpy arrays by name."""
    try:
        with open(path, "rb") as f:
            state = _unpickle(f, path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(state, dict) or not state:
        raise UsageError(f"{path} is not a Paddle state dict")
    out = {}
    for name, value in state.items():
        if name == "StructuredToParameterName@@":  # Paddle 2's name map, beside the arrays
            continue
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            value = value[1]  # Paddle 2.x saved a tensor as (name, array)
        if not isinstance(name, str) or not isinstance(value, np.ndarray) or value.dtype.kind not in _ARRAY_KINDS:
            raise UsageError(f"{path} is not a Paddle state dict of arrays ({name!r}: {type(value).__name__})")
        out[name] = value
    return out


class _AllowListUnpickler(pickle.Unpickler):
    """An unpickler that builds only what `paddle.save` writes for a state dict: containers, numbers,
    strings and numpy arrays. Any other global, which is how a pickle runs code, is refused."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5's arrays
        ("collections", "OrderedDict"),
        ("builtins", "tuple"),  # Paddle 2.x pickled each tensor as tuple((name, array))
        ("_codecs", "encode"),  # pickle protocol 2 writes the bytes of an array through it
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")


class _Refused(Exception):
    pass


def _unpickle(f: Any, path: Path) -> Any:
    try:
        state = _AllowListUnpickler(f).load()
    except _Refused as exc:
        raise UsageError(f"{path} refers to {exc}, which a saved state never holds; not loaded, since loading "
                         "it could run code from the file") from None
    except MemoryError:
        raise UsageError(f"{path} declares more data than this machine can hold") from None
    except Exception:  # truncated or foreign bytes raise any of a dozen unpickling errors
        raise UsageError(f"{path} is corrupt or truncated; not a Paddle state dict or paddle_ddpg checkpoint") from None
    for array in _arrays(state):
        if array.dtype.hasobject:
            raise UsageError(f"{path} holds an array of Python objects; only numbers are accepted")
    return state


def _arrays(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return []


# Paddle's parameter files (an export's .pdiparams): a sequence of tensors, each a version, its LoD levels, a
# TensorDesc message (data type and dims) and the raw data. Checked before Paddle's C++ reader sees the file,
# which would allocate whatever size a damaged or doctored file declares.
_DTYPE_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16}


def check_paddle_params(path: Path) -> None:
    size = path.stat().st_size
    damaged = f"exported weights {path} are corrupt or truncated"
    with open(path, "rb") as f:
        while f.tell() < size:
            try:
                f.read(4)  # the tensor's version
                (levels,) = struct.unpack("<Q", f.read(8))
                for _ in range(min(levels, size)):
                    (level_bytes,) = struct.unpack("<Q", f.read(8))
                    if level_bytes > size - f.tell():
                        raise UsageError(damaged)
                    f.seek(level_bytes, io.SEEK_CUR)
                f.read(4)  # the tensor description's version
                (desc_bytes,) = struct.unpack("<i", f.read(4))
                if not 0 <= desc_bytes <= size - f.tell():
                    raise UsageError(damaged)
                dtype, dims = _tensor_desc(f.read(desc_bytes))
            except struct.error:
                raise UsageError(damaged) from None
            if dtype not in _DTYPE_BYTES or any(d < 0 for d in dims):
                raise UsageError(damaged)
            nbytes = math.prod(dims) * _DTYPE_BYTES[dtype]
            if nbytes > size - f.tell():
                raise UsageError(f"{damaged}: a tensor declares {nbytes} bytes, more than the file holds")
            f.seek(nbytes, io.SEEK_CUR)


def _tensor_desc(message: bytes) -> tuple[int, list[int]]:
    """(data type, dims) from a TensorDesc protocol buffer: field 1 the type, field 2 the dims (int64,
    packed or not); other fields are skipped."""
    dtype, dims, pos = -1, [], 0
    while pos < len(message):
        key, pos = _varint(message, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(message, pos)
            if field == 1:
                dtype = value
            elif field == 2:
                dims.append(_int64(value))
        elif wire == 2:
            length, pos = _varint(message, pos)
            end = pos + length
            while field == 2 and pos < end:
                value, pos = _varint(message, pos)
                dims.append(_int64(value))
            pos = end
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise struct.error(f"wire type {wire}")
    return dtype, dims


def _varint(buffer: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buffer) or shift > 63:
            raise struct.error("truncated varint")
        byte = buffer[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value
