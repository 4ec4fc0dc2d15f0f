"""The tutorial's replay memory: `add`, `size`, `sample`, `clear`, and deque(maxlen) semantics.

The tutorial kept a `collections.deque(maxlen=memory_size)` of Python tuples and sampled with
`np.random.choice(np.arange(len(buffer)), replace=False)`. That costs O(memory size) per batch (a
permutation of all 50000 indices), deque indexing walks the list, and each batch is re-stacked from
tuples. Here the same behaviour (append, the oldest transition falls out once full) sits on one preallocated
float32 array used as a ring, a transition per row, so a batch is one gather of whole rows: a cache line or
two per transition instead of one per field.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from paddle_ddpg.config import UsageError
from paddle_ddpg.device import require_memory


class Batch(NamedTuple):
    """Stacked float32 arrays; `reward` and `terminated` have shape (batch, 1) to match Q's output."""

    state: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_state: np.ndarray
    terminated: np.ndarray

    @classmethod
    def widths(cls, state_dim: int, action_dim: int) -> Batch:
        """Each field's number of columns, for a memory's layout and the shape checks on its way in and out."""
        return cls(state_dim, action_dim, 1, state_dim, 1)


class Memory:
    """Fixed-capacity FIFO of (state, action, reward, next_state, terminated) transitions."""

    def __init__(self, memory_size: int, state_dim: int, action_dim: int,
                 rng: np.random.Generator | None = None) -> None:
        if memory_size < 1:
            raise UsageError(f"memory_size must be >= 1, got {memory_size}")
        self.memory_size = memory_size
        self.rng = rng if rng is not None else np.random.default_rng()
        widths = Batch.widths(state_dim, action_dim)
        self._shapes = ((widths.state,), (widths.action,))
        ends = np.cumsum(widths)
        self._slices = [slice(int(a), int(b)) for a, b in zip([0, *ends[:-1]], ends)]
        require_memory(memory_size * int(ends[-1]) * 4, f"memory_size {memory_size}")
        try:
            self._rows = np.zeros((memory_size, int(ends[-1])), dtype=np.float32)
        except (MemoryError, ValueError):  # ValueError: more elements than an array can index
            raise UsageError(f"memory_size {memory_size} needs {memory_size * int(ends[-1]) * 4 / 2**30:.3g} GiB, "
                             "more than this machine can allocate") from None
        # Each field as a view of its columns.
        self.state, self.action, self.reward, self.next_state, self.terminated = self._columns(self._rows)
        self._next = 0  # slot the next transition goes to
        self._size = 0

    def add(self, state: np.ndarray, action: np.ndarray, reward: float, next_state: np.ndarray,
            terminated: bool) -> None:
        # numpy would broadcast a scalar or one-element array into every column of its field without a word.
        for name, value, shape in (("state", state, self._shapes[0]), ("action", action, self._shapes[1]),
                                   ("next_state", next_state, self._shapes[0])):
            if np.shape(value) != shape:
                raise UsageError(f"Memory.add: {name} must have shape {shape}, got {np.shape(value)}")
        i = self._next
        self.state[i] = state
        self.action[i] = action
        self.reward[i] = reward
        self.next_state[i] = next_state
        self.terminated[i] = terminated
        self._next = (i + 1) % self.memory_size
        self._size = min(self._size + 1, self.memory_size)

    def size(self) -> int:
        return self._size

    __len__ = size

    def sample(self, batch_size: int, continuous: bool = False) -> Batch:
        """A random batch without replacement, or with `continuous` (the tutorial's option) a run of
        consecutive transitions in the order they were added."""
        n = self._size
        batch_size = min(batch_size, n)
        if continuous:
            start = self.rng.integers(0, n - batch_size + 1)
            oldest = (self._next - n) % self.memory_size
            idx = (oldest + start + np.arange(batch_size)) % self.memory_size
        else:
            # O(batch_size) per draw: numpy samples without replacement by Floyd's algorithm at these sizes.
            idx = self.rng.choice(n, batch_size, replace=False)
        return Batch(*self._columns(self._rows[idx]))

    def _columns(self, rows: np.ndarray) -> list[np.ndarray]:
        return [rows[:, columns] for columns in self._slices]

    def clear(self) -> None:
        self._next = 0
        self._size = 0

    def state_dict(self) -> dict[str, np.ndarray | int]:
        """The filled slots as they lie in the ring, so a restored memory samples exactly as this one."""
        n = self._size
        return {"state": self.state[:n].copy(), "action": self.action[:n].copy(), "reward": self.reward[:n].copy(),
                "next_state": self.next_state[:n].copy(), "terminated": self.terminated[:n].copy(),
                "next": self._next, "memory_size": self.memory_size}

    def set_state_dict(self, saved: dict[str, np.ndarray | int]) -> None:
        """Restore a `state_dict`, refusing with one line one of another layout or size."""
        if saved["memory_size"] != self.memory_size:
            raise UsageError(f"saved memory has memory_size {saved['memory_size']}, this one {self.memory_size}")
        n = len(saved["reward"])
        for name in ("state", "action", "reward", "next_state", "terminated"):
            shape = (n, getattr(self, name).shape[1])
            if np.shape(saved[name]) != shape or n > self.memory_size:
                raise UsageError(f"saved memory's {name} has shape {np.shape(saved[name])}, expected {shape} "
                                 f"(at most {self.memory_size} rows)")
        if not 0 <= int(saved["next"]) < self.memory_size:
            raise UsageError(f"saved memory's next slot {saved['next']} is outside [0, {self.memory_size})")
        for name in ("state", "action", "reward", "next_state", "terminated"):
            getattr(self, name)[:n] = saved[name]
        self._size = n
        self._next = int(saved["next"])
