"""An export's program and weights, checked before Paddle reads them: a program runs whatever ops it holds (a
file-writing `save_combine` as readily as a `matmul`), and Paddle's weights reader allocates whatever sizes the
file declares. Hand-written: Paddle offers no check of its formats, and its readers trust the file."""

from __future__ import annotations

import io
import itertools
import json
import math
import re
import struct
from functools import partial
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

from paddle_ddpg.config import UsageError
from paddle_ddpg.files import read_regular

PROGRAM_LIMIT = 1 << 22  # bytes: an actor's program takes about 1.5 kB a layer
MAX_DIM = 1 << 24  # largest size a tensor's dimension may declare, as checkpoint.MAX_WIDTH
_NAME = re.compile(r"[A-Za-z0-9_./]{0,100}")  # names Paddle gives: state, linear_0.w_0, /Linear_1/, fetch_name_0


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_dims(value: Any) -> bool:
    return isinstance(value, list) and 1 <= len(value) <= 2 and all(_is_int(d, -1, MAX_DIM) for d in value)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


_is_id, _is_flag = partial(_is_int, low=1, high=1 << 31), partial(_is_int, low=0, high=1)
_is_device = partial(_is_int, low=0, high=1024)
# The forms allowed, as patterns for `_fits`: a dict holds exactly its keys, a list has its length, a type or a
# function says yes, anything else is equal. The program: one region of one block of ops.
PROGRAM = {"base_code": {"magic": "pir", "version": partial(_is_int, low=0, high=1000), "trainable": bool},
           "program": {"regions": [{"#": object, "blocks": [{"#": object, "args": [], "ops": list}]}]}}
RESULT = {"%": _is_id, "TT": {"#": "0.t_dtensor", "D": [{"#": "0.t_f32"}, _is_dims, "NCHW", [], 0]}}
# A weight, bias or bound ("p"): three flags and a name, no inputs, one float32 tensor.
PARAMETER = {"#": "p", "A": [_is_flag] * 3 + [_is_name], "DA": [], "O": RESULT, "OA": [_is_flag] * 3, "QA": []}
_STR, _BOOL = {"#": "0.a_str", "D": _is_name}, {"#": "0.a_bool", "D": bool}
# op -> (its number of inputs, the attributes it may have) as paddle.jit.save writes an Actor: the state, each
# Linear as matmul and add, relu between them, tanh times the action scale plus its centre, the output.
OPS: dict[str, tuple[int, dict[str, Any]]] = {
    "1.data": (0, {"name": _STR, "shape": {"#": "1.a_intarray", "D": _is_dims},
                   "dtype": {"#": "1.a_dtype", "D": "float32"},
                   "place": {"#": "1.a_place", "D": [partial(_is_int, low=0, high=16), _is_device, ""]}}),
    "1.matmul": (2, {"transpose_x": _BOOL, "transpose_y": _BOOL, "struct_name": _STR}),
    "1.add": (2, {"struct_name": _STR}),
    "1.relu": (1, {}),
    "1.tanh": (1, {}),
    "1.multiply": (2, {}),
    "1.fetch": (1, {"name": _STR, "col": {"#": "0.a_i32", "D": 0}}),
}
RESULT_ATTRIBUTES = {key: {"#": "0.a_array", "D": [_BOOL]} for key in ("stop_gradient", "persistable")}
FIRST, LAYER = ["1.data", "1.matmul", "1.add"], ["1.relu", "1.matmul", "1.add"]  # in an Actor's order
LAST = ["1.tanh", "1.multiply", "1.add", "1.fetch"]


class Refused(Exception):
    """What makes a program other than an exported actor's, in a few words."""


def check_program(path: Path, params_bytes: int) -> bytes:
    """The bytes of the program at `path` if it is an exported actor's whose parameters fit in `params_bytes`."""
    text = read_regular(path, PROGRAM_LIMIT, "exported program")
    try:
        declared = _check(json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys,
                                     parse_constant=_not_a_number))
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError and 5000-digit numbers are ValueErrors
        raise UsageError(f"exported model {path} is corrupt: not a JSON program") from None
    except Refused as exc:
        raise UsageError(f"{path} is not an exported actor's program: {exc}; refused, since loading it runs its "
                         "ops") from None
    if declared > params_bytes:
        raise UsageError(f"{path} declares {declared} bytes of parameters, more than its weights file holds")
    return text


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):  # Paddle's reader might take the other of two values
        raise Refused(f"a key appears twice in one object ({sorted(keys)})")
    return dict(pairs)


def _not_a_number(name: str) -> None:
    raise Refused(f"{name} is not a number JSON allows")


def _fits(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and set(value) == set(pattern) and all(_fits(value[k], p)
                                                                              for k, p in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and len(value) == len(pattern) and all(map(_fits, value, pattern))
    if isinstance(pattern, type):
        return isinstance(value, pattern)
    return pattern(value) if callable(pattern) else type(value) is type(pattern) and value == pattern


def _check(program: Any) -> int:
    """The parameter bytes declared, once every op is an actor's, in an Actor's order, each taking the value of
    the op before it and parameters (so the program gives the scaled tanh of the last layer)."""
    if not _fits(program, PROGRAM):
        raise Refused(f"it is not one region of one block of ops without arguments: {json.dumps(program)[:80]}")
    values: set[int] = set()  # the ids of the values made so far
    parameters: set[int] = set()
    declared, chain = 0, []
    for op in program["program"]["regions"][0]["blocks"][0]["ops"]:
        name = op.get("#") if isinstance(op, dict) else None
        if name == "p":
            if not _fits(op, PARAMETER):
                raise Refused(f"a parameter op {json.dumps(op)[:80]} is not a weight's")
            result = op["O"]
            if min(result["TT"]["D"][1]) < 1:
                raise Refused(f"parameter {op['A'][3]} has no fixed shape")
            declared += 4 * math.prod(result["TT"]["D"][1])
            parameters.add(result["%"])
        elif isinstance(name, str) and name in OPS:
            inputs, attributes = OPS[name]
            if not _fits(op, {"#": name, "A": list, "I": list, "O": [RESULT], "OA": list}):
                raise Refused(f"op {name} {json.dumps(op)[:80]} does not make one float32 tensor as an actor's does")
            if len(op["I"]) != inputs or not all(isinstance(i, dict) and set(i) == {"%"} and _is_id(i["%"])
                                                 and i["%"] in values for i in op["I"]):
                raise Refused(f"op {name} must take {inputs} inputs made by earlier ops, it takes "
                              f"{json.dumps(op['I'])[:80]}")
            for given, allowed, kind in ((op["A"], attributes, "attribute"),
                                         (op["OA"], RESULT_ATTRIBUTES, "result attribute")):
                seen: set[str] = set()
                for attribute in given:
                    key = attribute.get("N") if isinstance(attribute, dict) else None
                    if (not isinstance(key, str) or key in seen or key not in allowed
                            or not _fits(attribute, {"N": key, "AT": allowed[key]})):
                        raise Refused(f"op {name} has the {kind} {str(key)[:60]} = {json.dumps(attribute)[:80]}")
                    seen.add(key)
            result = op["O"][0]
            chain.append(op)
        else:
            raise Refused(f"it holds the op {name[:60]!r}, which an exported actor does not use"
                          if isinstance(name, str) else "an op has no name")
        if result["%"] in values:
            raise Refused(f"a result's id {result['%']!r} is not new")
        values.add(result["%"])
    names = [op["#"] for op in chain]
    if names != FIRST + LAYER * ((len(names) - len(FIRST) - len(LAST)) // len(LAYER)) + LAST:
        raise Refused(f"its ops ({' '.join(names)[:120]}) are not in an actor's order")
    for before, op in itertools.pairwise(chain):
        first, *rest = (value["%"] for value in op["I"])
        if first != before["O"][0]["%"] or not parameters.issuperset(rest):
            raise Refused(f"op {op['#']} does not take the value of the op before it and parameters")
    return declared


_DTYPE_BYTES = {0: 1, 1: 2, 2: 4, 3: 8, 4: 2, 5: 4, 6: 8, 20: 1, 21: 1, 22: 2, 23: 8, 24: 16}
# Paddle's TensorDesc (data_type = 1, dims = 2), decoded by protobuf in a pool of its own.
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
                _version, levels = struct.unpack("<IQ", f.read(12))  # the tensor's format version, its LoD levels
                for _ in range(min(levels, size)):
                    (level_bytes,) = struct.unpack("<Q", f.read(8))
                    if level_bytes > size - f.tell():
                        raise UsageError(damaged)
                    f.seek(level_bytes, io.SEEK_CUR)
                _version, desc_bytes = struct.unpack("<Ii", f.read(8))
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
