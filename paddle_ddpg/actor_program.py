"""The ops an exported actor's program may hold, checked before Paddle reads the program.

An export's PREFIX.json is a program in Paddle's PIR format: `paddle.jit.load` builds whatever ops it lists
and the first prediction runs them, a file-writing `save_combine` as readily as a `matmul`. A traced Actor
uses the seven ops below and a parameter op. A program is read with the json module (bounded in size,
duplicate keys and non-numbers refused) and accepted only if every op is one of them, with the inputs and
attributes `paddle.jit.save` gives it, in an Actor's order, each input a value made by an earlier op.
Hand-written: Paddle offers no check of its own format, and its reader trusts the file (an input naming no
value becomes a null pointer).
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path
from typing import Any

from paddle_ddpg.config import UsageError

PROGRAM_LIMIT = 1 << 22  # bytes: an actor's program takes about 1.5 kB a layer
MAX_DIM = 1 << 24  # largest size a tensor's dimension may declare, as checkpoint.MAX_WIDTH

# op -> (its number of inputs, attribute name -> attribute type) as paddle.jit.save writes an Actor: the state,
# each Linear as matmul and add, relu between them, tanh times the action scale plus its centre, the output.
# Besides them a parameter op ("p") per weight, bias and bound, whose fields are checked in `_parameter`.
OPS: dict[str, tuple[int, dict[str, str]]] = {
    "1.data": (0, {"name": "0.a_str", "shape": "1.a_intarray", "dtype": "1.a_dtype", "place": "1.a_place"}),
    "1.matmul": (2, {"transpose_x": "0.a_bool", "transpose_y": "0.a_bool", "struct_name": "0.a_str"}),
    "1.add": (2, {"struct_name": "0.a_str"}),
    "1.relu": (1, {}),
    "1.tanh": (1, {}),
    "1.multiply": (2, {}),
    "1.fetch": (1, {"name": "0.a_str", "col": "0.a_i32"}),
}
FIRST, LAYER = ["1.data", "1.matmul", "1.add"], ["1.relu", "1.matmul", "1.add"]  # in an Actor's order
LAST = ["1.tanh", "1.multiply", "1.add", "1.fetch"]
RESULT_ATTRIBUTES = {"stop_gradient", "persistable"}  # about the op's result: each an array of one bool
_ONE_BOOL = {json.dumps({"#": "0.a_array", "D": [{"#": "0.a_bool", "D": b}]}, sort_keys=True) for b in (False, True)}
_NAME = re.compile(r"[A-Za-z0-9_./]{0,100}")  # names Paddle gives: state, linear_0.w_0, /Linear_1/, fetch_name_0


def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_dims(value: Any, low: int) -> bool:
    return isinstance(value, list) and 1 <= len(value) <= 2 and all(_is_int(d, low, MAX_DIM) for d in value)


ATTRIBUTE_VALUES = {
    "0.a_str": lambda v: isinstance(v, str) and _NAME.fullmatch(v) is not None,
    "0.a_bool": lambda v: isinstance(v, bool),
    "0.a_i32": lambda v: _is_int(v, 0, 0),
    "1.a_intarray": lambda v: _is_dims(v, -1),
    "1.a_dtype": lambda v: v == "float32",
    "1.a_place": lambda v: (isinstance(v, list) and len(v) == 3 and _is_int(v[0], 0, 16)
                            and _is_int(v[1], 0, 1024) and v[2] == ""),
}


class Refused(Exception):
    """What makes a program other than an exported actor's, in a few words."""


def check_program(path: Path, params_bytes: int) -> bytes:
    """The bytes of the program at `path`, if it is an exported actor's whose parameters fit in
    `params_bytes`; a UsageError naming the first thing that is not."""
    with open(path, "rb") as f:
        text = f.read(PROGRAM_LIMIT + 1)
    if len(text) > PROGRAM_LIMIT:
        raise UsageError(f"{path} is larger than an exported actor's program ({PROGRAM_LIMIT} bytes at most)")
    try:
        program = json.loads(text.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_not_a_number)
        declared = _check(program)
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


def _keys(value: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise Refused(f"{what} has the keys {sorted(value) if isinstance(value, dict) else type(value).__name__}, "
                      f"not {sorted(keys)}")
    return value


def _check(program: Any) -> int:
    """The bytes of parameters the program declares, once every op is found to be an actor's."""
    base = _keys(program, {"base_code", "program"}, "the file")["base_code"]
    base = _keys(base, {"magic", "version", "trainable"}, "base_code")
    if base["magic"] != "pir" or not _is_int(base["version"], 0, 1000) or not isinstance(base["trainable"], bool):
        raise Refused(f"base_code is {base}")
    regions = _keys(program["program"], {"regions"}, "program")["regions"]
    if not isinstance(regions, list) or len(regions) != 1:
        raise Refused("the program must hold one region")
    blocks = _keys(regions[0], {"#", "blocks"}, "the region")["blocks"]
    if not isinstance(blocks, list) or len(blocks) != 1:
        raise Refused("the region must hold one block")
    block = _keys(blocks[0], {"#", "args", "ops"}, "the block")
    if block["args"] != [] or not isinstance(block["ops"], list):
        raise Refused("the block takes arguments")
    values: set[int] = set()  # the ids of the values made so far
    parameters: set[int] = set()
    declared, chain = 0, []
    for op in block["ops"]:
        name = op.get("#") if isinstance(op, dict) else None
        if not isinstance(name, str):
            raise Refused("an op has no name")
        if name == "p":
            declared += _parameter(op, values)
            parameters.add(op["O"]["%"])
        elif name in OPS:
            _op(op, name, values)
            chain.append(op)
        else:
            raise Refused(f"it holds the op {name[:60]!r}, which an exported actor does not use")
    _check_chain(chain, parameters)
    return declared


def _check_chain(chain: list[dict[str, Any]], parameters: set[int]) -> None:
    """The ops in an Actor's order, each taking the value of the op before it and parameters, so that what
    the program gives is the scaled tanh of the last layer."""
    names = [op["#"] for op in chain]
    hidden = (len(names) - len(FIRST) - len(LAST)) // len(LAYER)
    if names != FIRST + LAYER * hidden + LAST:
        raise Refused(f"its ops ({' '.join(names)[:120]}) are not in an actor's order")
    for before, op in itertools.pairwise(chain):
        first, *rest = (value["%"] for value in op["I"])
        if first != before["O"][0]["%"] or not parameters.issuperset(rest):
            raise Refused(f"op {op['#']} does not take the value of the op before it and parameters")


def _new_value(result: Any, values: set[int]) -> list[int]:
    """A value an op makes: a new id and a float32 tensor's type; its dimensions."""
    result = _keys(result, {"%", "TT"}, "an op's result")
    if not _is_int(result["%"], 1, 1 << 31) or result["%"] in values:
        raise Refused(f"a result's id {result['%']!r} is not a new positive number")
    kind = _keys(result["TT"], {"#", "D"}, "a result's type")
    data = kind["D"]
    if (kind["#"] != "0.t_dtensor" or not isinstance(data, list) or len(data) != 5 or data[0] != {"#": "0.t_f32"}
            or not _is_dims(data[1], -1) or data[2] != "NCHW" or data[3] != [] or not _is_int(data[4], 0, 0)):
        raise Refused(f"a result's type {json.dumps(kind)[:80]} is not a float32 tensor's")
    values.add(result["%"])
    return data[1]


def _parameter(op: dict[str, Any], values: set[int]) -> int:
    """A weight, bias or bound: three flags and a name, no inputs; the bytes it declares."""
    op = _keys(op, {"#", "A", "DA", "O", "OA", "QA"}, "a parameter op")
    fields, flags = op["A"], op["OA"]
    if (not isinstance(fields, list) or len(fields) != 4 or not all(_is_int(f, 0, 1) for f in fields[:3])
            or not ATTRIBUTE_VALUES["0.a_str"](fields[3]) or op["DA"] != [] or op["QA"] != []
            or not isinstance(flags, list) or len(flags) != 3 or not all(_is_int(f, 0, 1) for f in flags)):
        raise Refused(f"a parameter op's fields {json.dumps(fields)[:80]} are not a weight's")
    dims = _new_value(op["O"], values)
    if min(dims) < 1:
        raise Refused(f"parameter {fields[3]} has no fixed shape")
    return 4 * math.prod(dims)


def _op(op: dict[str, Any], name: str, values: set[int]) -> None:
    inputs, attributes = OPS[name]
    op = _keys(op, {"#", "A", "I", "O", "OA"}, f"op {name}")
    given = op["I"]
    if (not isinstance(given, list) or len(given) != inputs
            or not all(isinstance(i, dict) and set(i) == {"%"} and _is_int(i["%"], 1, 1 << 31) and i["%"] in values
                       for i in given)):
        raise Refused(f"op {name} must take {inputs} inputs made by earlier ops, it takes {json.dumps(given)[:80]}")
    for key, value in _attributes(op["A"], name).items():
        if key not in attributes or value["#"] != attributes[key] or not ATTRIBUTE_VALUES[attributes[key]](value["D"]):
            raise Refused(f"op {name} has the attribute {key} = {json.dumps(value)[:80]}")
    for key, value in _attributes(op["OA"], name).items():
        if key not in RESULT_ATTRIBUTES or json.dumps(value, sort_keys=True) not in _ONE_BOOL:
            raise Refused(f"op {name} has the result attribute {key} = {json.dumps(value)[:80]}")
    if not isinstance(op["O"], list) or len(op["O"]) != 1:
        raise Refused(f"op {name} must make one value")
    _new_value(op["O"][0], values)


def _attributes(given: Any, name: str) -> dict[str, dict[str, Any]]:
    """An op's attributes, [{"N": name, "AT": {"#": type, "D": value}}, ...], by name, each named once."""
    if not isinstance(given, list):
        raise Refused(f"op {name}'s attributes are not a list")
    named: dict[str, dict[str, Any]] = {}
    for attribute in given:
        attribute = _keys(attribute, {"N", "AT"}, f"an attribute of op {name}")
        if not isinstance(attribute["N"], str) or attribute["N"] in named:
            raise Refused(f"op {name} names an attribute twice or not by a string")
        named[attribute["N"]] = _keys(attribute["AT"], {"#", "D"}, f"attribute {attribute['N']} of op {name}")
    return named
