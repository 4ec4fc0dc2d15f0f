"""Recording one update's kernel calls and replaying them as one straight-line function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.fast import layers


class Trace:
    """The kernel calls of one run of `update`, replayed as a straight-line Python function.

    Around its kernels an update runs Python: loops over layers, NamedTuple fields, constant look-ups,
    function calls, a noticeable share of an update at the tutorial's sizes. But every update of one batch
    size calls the same kernels on the same tensors: parameters and Adam's moments are updated in place,
    inputs are copied into kept tensors (`engine.fill`) and constants are made once. So `Trace` runs
    `update` once with `layers.kernels` recording each call, and writes the calls out as the body of one function
    (`source`), with the tensors that existed before each call as constants and the others as local
    variables. `run()` then calls the kernels alone.

    Whatever else `update` computes is fixed by the recording: it must draw no random numbers, read no tensor
    values and make no tensor but through `kernels`, and it must return only tensors that kernels made
    (checked). Anything that changes between calls (the batch size, tau, gamma, whether the actor steps)
    belongs in the key under which the caller keeps its traces. Recording swaps `layers.kernels`, so
    two threads must not record at once.
    """

    def __init__(self, update: Callable[[], tuple[paddle.Tensor, ...]]) -> None:
        self._names: dict[int, str] = {}  # id of each tensor seen -> its name in the source
        self._namespace: dict[str, Any] = {}  # the kernels and constants the source refers to
        self._calls: list[tuple[str, list[str], list[str]]] = []  # each call's line, variables read and made
        self._reads: list[str] = []  # the variables read by the call being recorded
        self._made: list[str] = []  # and those it makes
        self._seen: list[Any] = []  # keeps every recorded value alive, so that no id is reused meanwhile
        layers.kernels = self
        try:
            self.outputs = update()
        finally:
            layers.kernels = _C_ops
        made = {name for _, _, names in self._calls for name in names}
        returned = [self._names.get(id(t), "") for t in self.outputs]
        if not all(name in made for name in returned):
            raise ValueError("a traced update must return tensors its kernels made")
        self.source = "def run():\n" + "".join(f"    {line}\n" for line in self._body(made - set(returned)))
        self.source += f"    return ({''.join(name + ', ' for name in returned)})\n"
        exec(compile(self.source, "<traced update>", "exec"), self._namespace)
        self.run: Callable[[], tuple[paddle.Tensor, ...]] = self._namespace["run"]
        self._seen = []

    def _body(self, temporaries: set[str]) -> list[str]:
        """The calls, each temporary deleted after the last call that reads it: as in eager code, its memory
        goes back to the allocator while the next tensors are made (kept to the end, they slowed large
        updates down; benchmarks/README.md)."""
        last_use = {}
        for i, (_, reads, made) in enumerate(self._calls):  # a result nothing reads dies where it is made
            last_use.update((name, i) for name in made + reads if name in temporaries)
        dying: dict[int, list[str]] = {}
        for name, i in last_use.items():
            dying.setdefault(i, []).append(name)
        body = []
        for i, (line, _, _) in enumerate(self._calls):
            body += [line] + (["del " + ", ".join(dying[i])] if i in dying else [])
        return body

    def __getattr__(self, op: str) -> Callable[..., Any]:
        kernel = getattr(_C_ops, op)
        self._namespace[op] = kernel

        def record(*args: Any) -> Any:
            self._reads, self._made = [], []
            arguments = ", ".join(self._argument(a) for a in args)
            result = kernel(*args)
            self._seen.append(result)
            self._calls.append((f"{self._target(result)} = {op}({arguments})", self._reads, self._made))
            return result

        return record

    def _argument(self, value: Any) -> str:
        if isinstance(value, paddle.Tensor):
            if id(value) not in self._names:  # made before the recording or outside kernels: a constant
                self._names[id(value)] = name = f"c{len(self._names)}"
                self._namespace[name] = value
                self._seen.append(value)
            self._reads.append(self._names[id(value)])
            return self._names[id(value)]
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(self._argument(v) for v in value) + "]"
        if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and np.isfinite(value)):
            return repr(value)
        raise TypeError(f"cannot trace a kernel argument of type {type(value).__name__}")

    def _target(self, result: Any) -> str:
        if isinstance(result, paddle.Tensor) and id(result) not in self._names:
            self._names[id(result)] = name = f"v{len(self._names)}"
            self._made.append(name)
            return name
        if isinstance(result, (list, tuple)):
            parts = [self._target(r) for r in result]
            if any(part != "_" for part in parts):
                return "(" + "".join(part + ", " for part in parts) + ")"
        return "_"
