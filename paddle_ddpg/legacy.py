"""Checkpoints of version 0.2: a zip of `.npy` arrays and one JSON document (`checkpoint.json`), arrays referred
to by number. Read so that a run saved by 0.2 resumes; the run then writes the current format.

numpy reads the `.npy` headers; what it does not check (a declared shape against the bytes the member holds,
before anything is allocated, and stored members only, so that no size exceeds the file's) is checked here.
"""

from __future__ import annotations

import json
import math
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

from paddle_ddpg.config import UsageError
from paddle_ddpg.snapshot import NUMBER_KINDS

ZIP_FORMAT = "paddle_ddpg/2"
DOCUMENT = "checkpoint.json"


def read_zip(f: IO[bytes], path: Path, size: int) -> tuple[Any, Callable[[int], np.ndarray]]:
    """The JSON document of a 0.2 checkpoint of `size` bytes, and a reader of its arrays by number."""
    damaged = UsageError(f"checkpoint {path} is corrupt or truncated; not a paddle_ddpg checkpoint")
    try:
        archive = zipfile.ZipFile(f)
        members = {info.filename: info for info in archive.infolist()}
        if DOCUMENT not in members or any(info.compress_type != zipfile.ZIP_STORED or info.file_size > size
                                          for info in members.values()):
            raise damaged
        document = json.loads(archive.read(DOCUMENT))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError, RecursionError, ValueError, EOFError,
            struct.error):
        raise damaged from None

    def array(index: int) -> np.ndarray:
        try:
            return _read_npy(archive, members, f"arrays/{index}.npy", path)
        except (zipfile.BadZipFile, ValueError, EOFError, struct.error):
            raise damaged from None

    return document, array


def _read_npy(archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str, path: Path) -> np.ndarray:
    if name not in members:
        raise UsageError(f"checkpoint {path} is damaged: it refers to {name}, which it does not hold")
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"npy version {version}")
        shape, fortran, dtype = read_header[version](member)
        if dtype.hasobject or dtype.kind not in NUMBER_KINDS:
            raise UsageError(f"checkpoint {path}: {name} holds an array of Python objects or {dtype} values; only "
                             "numbers are accepted")
        nbytes = math.prod(shape) * dtype.itemsize
        if nbytes != members[name].file_size - member.tell():
            raise UsageError(f"checkpoint {path} is damaged: {name} declares shape {shape} of {dtype}, "
                             "which its bytes do not hold")
        data = member.read(nbytes)
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C").copy()
