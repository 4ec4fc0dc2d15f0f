"""Recording one update's kernel calls and replaying them as one straight-line function, without the Python
(loops, look-ups, calls) around them, a noticeable share of an update at the tutorial's sizes. Each kind of update
calls the same kernels on the same tensors (parameters and moments change in place, inputs are copied into kept
tensors, constants are made once), so it must draw no random numbers, read no tensor's values, make tensors only
through `layers.kernels` (which recording swaps: one thread at a time) and return only tensors those made.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.fast import layers


class Trace:
    """`update`'s kernel calls: recorded (`outputs` are what that run returned), replayed by `run()`."""

    def __init__(self, update: Callable[[], tuple[paddle.Tensor, ...]]) -> None:
        self._names: dict[int, str] = {}  # id of each tensor seen -> its name: v3 made by a kernel, c4 a constant
        self._namespace: dict[str, Any] = {}  # the kernels and tensors named, all kept alive while recording
        self._lines: list[str] = []
        layers.kernels = self
        try:
            self.outputs = update()
        finally:
            layers.kernels = _C_ops
        returned = [self._names.get(id(t), "") for t in self.outputs]
        if not all(name.startswith("v") for name in returned):
            raise ValueError("a traced update must return tensors its kernels made")
        # Each temporary is deleted after the last call naming it, as eager code frees it: kept to the end, they
        # slowed large updates down (benchmarks/README.md).
        last = {name: i for i, line in enumerate(self._lines) for name in re.findall(r"\bv\d+\b", line)}
        source = ["def run():"]
        for i, line in enumerate(self._lines):
            dying = [name for name, at in last.items() if at == i and name not in returned]
            source += [line] + (["del " + ", ".join(dying)] if dying else [])
        self.source = "\n    ".join(source + [f"return ({''.join(name + ', ' for name in returned)})"]) + "\n"
        self._namespace = {name: v for name, v in self._namespace.items() if not re.fullmatch(r"v\d+", name)}
        exec(compile(self.source, "<traced update>", "exec"), self._namespace)
        self.run: Callable[[], tuple[paddle.Tensor, ...]] = self._namespace["run"]

    def __getattr__(self, op: str) -> Callable[..., Any]:
        kernel = self._namespace[op] = getattr(_C_ops, op)

        def record(*args: Any) -> Any:
            arguments = ", ".join(map(self._argument, args))
            result = kernel(*args)
            self._lines.append(f"{self._target(result)} = {op}({arguments})")
            return result
        return record

    def _argument(self, value: Any) -> str:
        if isinstance(value, paddle.Tensor):
            name = self._names.setdefault(id(value), f"c{len(self._names)}")  # c: made before or outside kernels
            self._namespace.setdefault(name, value)
            return name
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(map(self._argument, value)) + "]"
        if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and np.isfinite(value)):
            return repr(value)
        raise TypeError(f"cannot trace a kernel argument of type {type(value).__name__}")

    def _target(self, result: Any) -> str:
        if isinstance(result, paddle.Tensor) and id(result) not in self._names:
            self._names[id(result)] = name = f"v{len(self._names)}"
            self._namespace[name] = result
            return name
        parts = [self._target(r) for r in result] if isinstance(result, (list, tuple)) else []
        return "(" + "".join(part + ", " for part in parts) + ")" if any(p != "_" for p in parts) else "_"
