"""Exported weights (an export's PREFIX.pdiparams), checked before Paddle's C++ reader sees them.

The file is a sequence of tensors, each a version, its LoD levels, a TensorDesc message (data type and dims)
and the raw data. Paddle's reader would allocate whatever size a damaged or doctored file declares, so each
declared size is checked against the bytes that follow. Hand-written: the format is Paddle's own, with no
reader outside Paddle, and a TensorDesc needs only two fields of protocol buffers' wire format.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

from paddle_ddpg.config import UsageError

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
