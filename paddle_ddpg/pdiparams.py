"""Exported weights (an export's PREFIX.pdiparams), checked before Paddle's C++ reader sees them.

The file is a sequence of tensors, each a version, its LoD levels, a TensorDesc message (data type and dims)
and the raw data. Paddle's reader would allocate whatever size a damaged or doctored file declares, so each
declared size is checked against the bytes that follow. Hand-written: the format is Paddle's own, with no
reader outside Paddle; protobuf (a Paddle dependency) decodes the TensorDesc.
"""

from __future__ import annotations

import io
import math
import struct
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from paddle_ddpg.config import UsageError

_DTYPE_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16}
# Paddle's TensorDesc: data_type = 1, dims = 2 (int64, packed or not); its other fields are skipped. The
# message is built in a pool of its own, leaving protobuf's default pool as it was.
_PROTO = descriptor_pb2.FileDescriptorProto(name="paddle_ddpg/tensor_desc.proto", package="paddle_ddpg")
_PROTO.message_type.add(name="TensorDesc").field.extend([
    descriptor_pb2.FieldDescriptorProto(name="data_type", number=1, type=5, label=1),  # int32, optional
    descriptor_pb2.FieldDescriptorProto(name="dims", number=2, type=3, label=3)])  # int64, repeated
_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_PROTO)
TensorDesc = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("paddle_ddpg.TensorDesc"))


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
                desc = TensorDesc.FromString(f.read(desc_bytes))
            except (struct.error, message.DecodeError):
                raise UsageError(damaged) from None
            if not desc.HasField("data_type") or desc.data_type not in _DTYPE_BYTES or any(d < 0 for d in desc.dims):
                raise UsageError(damaged)
            nbytes = math.prod(desc.dims) * _DTYPE_BYTES[desc.data_type]
            if nbytes > size - f.tell():
                raise UsageError(f"{damaged}: a tensor declares {nbytes} bytes, more than the file holds")
            f.seek(nbytes, io.SEEK_CUR)
