"""The tutorial's snapshots (`ddpg-actor<episode>.pdparams`, what `paddle.save` writes), read without running code.
No library reads a pickle safely, hence this hand-written allow-list of dicts, lists, numbers, strings and arrays of
numbers; numpy's array constructors, which allocate a declared shape before its bytes, are replaced by checked ones."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from paddle_ddpg.config import UsageError
from paddle_ddpg.files import atomic_write

NUMBER_KINDS = "biuf"  # bool, signed and unsigned integers, floats: never objects
_NDARRAY = object()  # what the file gets for `numpy.ndarray`: good only as `_reconstruct`'s first argument


def save_state_dict(path: Path, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    paddle.save(state, buffer)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def load_state_dict(path: Path) -> dict[str, np.ndarray]:
    """Ours, or the tutorial's `.para`."""
    try:
        with open(path, "rb") as f:
            state = _filled(_AllowListUnpickler(f).load(), {})
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except _Refused as exc:
        raise UsageError(f"{path} {exc}") from None
    except MemoryError:
        raise UsageError(f"{path} declares more data than this machine can hold") from None
    except Exception:  # truncated or foreign bytes raise any of a dozen unpickling errors
        raise UsageError(f"{path} is corrupt or truncated; not a Paddle state dict") from None
    if not isinstance(state, dict) or not state:
        raise UsageError(f"{path} is not a Paddle state dict")
    state.pop("StructuredToParameterName@@", None)  # Paddle 2's name map, beside the arrays
    for name, value in state.items():
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], np.ndarray):
            state[name] = value = value[1]  # Paddle 2.x saved a tensor as (name, array)
        if not isinstance(name, str) or not isinstance(value, np.ndarray):
            raise UsageError(f"{path} is not a Paddle state dict of arrays ({name!r}: {type(value).__name__})")
    return state


class _Refused(Exception):
    """The rest of a one-line refusal, after the file's name."""


class _PendingArray:
    """`_reconstruct`'s result: no memory until BUILD hands it the array's state, bytes included."""

    array: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        if self.array is not None or not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused("holds an array state numpy never writes")
        _, shape, dtype, fortran, data = state
        if isinstance(data, str):  # protocol 0 and 1 write the bytes as text
            data = data.encode("latin1")
        self.array = _from_bytes(data, dtype, shape, "F" if fortran else "C")


def _from_bytes(data: Any, dtype: Any, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, np.dtype):
        raise _Refused(f"holds an array of {type(dtype).__name__}; only numbers are accepted")
    if dtype.kind not in NUMBER_KINDS:
        raise _Refused(f"holds an array of Python objects or {dtype} values; only numbers are accepted")
    dtype = np.dtype(dtype.str)  # the standard type of that name: a file cannot change its item size
    if not (isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)):
        raise _Refused(f"declares an array of shape {shape!r}")
    view = memoryview(data).cast("B") if isinstance(data, (bytes, bytearray, pickle.PickleBuffer)) else None
    declared = math.prod(shape) * dtype.itemsize
    if view is None or view.nbytes != declared:
        raise _Refused(f"declares an array of shape {shape} of {dtype} ({declared} bytes), which its "
                       f"{'no' if view is None else view.nbytes} bytes do not hold; not loaded")
    return np.frombuffer(view, dtype=dtype).reshape(shape, order=order).copy()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _PendingArray:
    if subtype is not _NDARRAY:
        raise _Refused("builds an object other than a numpy array")
    return _PendingArray()


def _latin1(text: Any, encoding: Any) -> bytes:  # `_codecs.encode` as protocol 2 writes an array's bytes
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("encodes text in a way a saved state never does")
    return text.encode("latin1")


# What the file's globals become: numpy's array constructors are replaced by the checked ones above.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): np.dtype, ("collections", "OrderedDict"): dict,
    ("builtins", "tuple"): tuple,  # Paddle 2.x pickled each tensor as tuple((name, array))
    ("_codecs", "encode"): _latin1,
    **{key: value for core in ("numpy.core", "numpy._core") for key, value in (
        ((f"{core}.multiarray", "_reconstruct"), _reconstruct),
        ((f"{core}.multiarray", "scalar"), lambda dtype, data: _from_bytes(data, dtype, (), "C")[()]),
        ((f"{core}.numeric", "_frombuffer"),  # protocol 5: the bytes come first, then the shape they must fill
         lambda buffer, dtype, shape, order: _from_bytes(buffer, dtype, shape, "F" if order == "F" else "C")))}}


class _AllowListUnpickler(pickle.Unpickler):
    """Any global but the allowed ones (how a pickle runs code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise _Refused(f"refers to {module}.{name}, which a saved state never holds; not loaded, since loading it "
                       "could run code from the file")


def _filled(value: Any, done: dict[int, Any]) -> Any:
    """Pending arrays replaced by what BUILD gave them, refused if never given bytes; a shared container is rebuilt
    once (`done`)."""
    if id(value) in done:
        return done[id(value)]
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise _Refused("declares an array it holds no bytes for; not loaded")
        return value.array
    if isinstance(value, np.dtype) or value is _NDARRAY:
        raise _Refused("holds a numpy type where a saved state holds values")
    if isinstance(value, dict):
        out: Any = {_filled(k, done): _filled(v, done) for k, v in value.items()}
    elif isinstance(value, (list, tuple)):
        out = type(value)(_filled(v, done) for v in value)
    else:
        return value
    done[id(value)] = out
    return out
