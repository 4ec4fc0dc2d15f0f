"""Memory: the tutorial's deque(maxlen) replay semantics on a ring of float32 arrays."""

from __future__ import annotations

import numpy as np
import pytest

from paddle_ddpg.config import UsageError
from paddle_ddpg.memory import Memory

STATE_DIM, ACTION_DIM = 3, 2


def _transition(i: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, bool]:
    """Transition number i, every field derived from i so a sampled row tells which transition it is."""
    return (np.full(STATE_DIM, i, np.float32), np.array([i, -i], np.float32) / 10, float(i) / 100,
            np.full(STATE_DIM, i + 1, np.float32), i % 7 == 0)


def _filled(memory_size: int, count: int, seed: int = 0) -> Memory:
    memory = Memory(memory_size, STATE_DIM, ACTION_DIM, rng=np.random.default_rng(seed))
    for i in range(count):
        memory.add(*_transition(i))
    return memory


def _assert_real_transitions(batch_state: np.ndarray, batch: tuple[np.ndarray, ...]) -> np.ndarray:
    """Each sampled row must be one stored transition with all five fields from the same `add`."""
    ids = batch_state[:, 0].astype(int)
    for row, i in enumerate(ids):
        state, action, reward, next_state, terminated = _transition(int(i))
        np.testing.assert_array_equal(batch[0][row], state)
        np.testing.assert_array_equal(batch[1][row], action)
        assert batch[2][row, 0] == np.float32(reward)
        np.testing.assert_array_equal(batch[3][row], next_state)
        assert batch[4][row, 0] == float(terminated)
    return ids


def test_size_grows_then_caps_at_memory_size() -> None:
    """size() counts stored transitions and stops at the capacity, like len(deque(maxlen=n))."""
    memory = Memory(5, STATE_DIM, ACTION_DIM)
    assert memory.size() == 0
    for i in range(8):
        memory.add(*_transition(i))
        assert memory.size() == min(i + 1, 5) == len(memory)


def test_wrap_around_drops_the_oldest_first() -> None:
    """After 13 adds to a memory of 5, exactly transitions 8..12 remain (FIFO)."""
    memory = _filled(5, 13)
    batch = memory.sample(5)
    ids = _assert_real_transitions(batch.state, batch)
    assert sorted(ids) == [8, 9, 10, 11, 12]


@pytest.mark.parametrize("batch_size", [4, 16, 40])  # the redraw path (k <= n/2) and the permutation path
def test_sample_shapes_and_dtypes(batch_size: int) -> None:
    """Batches are float32 with reward and terminated as columns (batch, 1), to match Q's output shape."""
    batch = _filled(100, 50).sample(batch_size)
    assert batch.state.shape == (batch_size, STATE_DIM)
    assert batch.action.shape == (batch_size, ACTION_DIM)
    assert batch.reward.shape == (batch_size, 1)
    assert batch.next_state.shape == (batch_size, STATE_DIM)
    assert batch.terminated.shape == (batch_size, 1)
    assert all(field.dtype == np.float32 for field in batch)


@pytest.mark.parametrize("batch_size", [8, 30, 50])
def test_sample_is_without_replacement_and_from_stored_rows(batch_size: int) -> None:
    """No transition appears twice in a batch (the tutorial's replace=False), and every row is a whole
    transition that was added, never a mix of fields or an unfilled slot."""
    memory = _filled(64, 50)
    for _ in range(20):
        batch = memory.sample(batch_size)
        ids = _assert_real_transitions(batch.state, batch)
        assert len(set(ids.tolist())) == batch_size
        assert set(ids.tolist()) <= set(range(50))


def test_sample_covers_the_whole_memory() -> None:
    """Over many batches every stored transition gets drawn: sampling is not stuck on a part of the ring."""
    memory = _filled(40, 100)  # holds 60..99 after wrapping
    seen: set[int] = set()
    for _ in range(50):
        seen.update(memory.sample(8).state[:, 0].astype(int).tolist())
    assert seen == set(range(60, 100))


def test_batch_larger_than_memory_returns_everything_once() -> None:
    """The tutorial's `if batch_size > len(buffer)` rule: a too-large request gets each stored row once."""
    batch = _filled(10, 6).sample(32)
    assert sorted(batch.state[:, 0].astype(int).tolist()) == list(range(6))


def test_continuous_sample_is_consecutive_in_insertion_order() -> None:
    """continuous=True (the tutorial's option) returns a run of transitions in the order they were added."""
    memory = _filled(100, 60)
    for _ in range(20):
        ids = memory.sample(10, continuous=True).state[:, 0].astype(int)
        assert ids.tolist() == list(range(ids[0], ids[0] + 10))
        assert 0 <= ids[0] <= 50


def test_continuous_sample_after_wrap_around_follows_insertion_order() -> None:
    """Once the ring has wrapped, a run may cross the physical end of the arrays; it must still be the
    consecutive transitions in insertion order, and only ones still stored."""
    memory = _filled(10, 27)  # holds 17..26, oldest at slot 7
    starts = set()
    for _ in range(100):
        ids = memory.sample(6, continuous=True).state[:, 0].astype(int)
        assert ids.tolist() == list(range(ids[0], ids[0] + 6))
        assert 17 <= ids[0] and ids[-1] <= 26
        starts.add(int(ids[0]))
    assert starts == set(range(17, 22))  # every possible run shows up, including those crossing the end


def test_clear_empties_the_memory() -> None:
    """clear() forgets everything: size 0, and new transitions are the only ones sampled."""
    memory = _filled(10, 15)
    memory.clear()
    assert memory.size() == 0
    for i in range(100, 103):
        memory.add(*_transition(i))
    assert memory.size() == 3
    assert sorted(memory.sample(10).state[:, 0].astype(int).tolist()) == [100, 101, 102]


@pytest.mark.parametrize("count", [7, 23])  # not yet full, and wrapped around
def test_state_dict_round_trip_samples_identically(count: int) -> None:
    """A restored memory with the same generator state draws exactly the batches the original would: what
    `--resume` relies on for identical training."""
    original = _filled(10, count, seed=3)
    saved = original.state_dict()
    restored = Memory(10, STATE_DIM, ACTION_DIM, rng=np.random.default_rng(3))
    restored.set_state_dict(saved)
    assert restored.size() == original.size()
    for continuous in (False, True, False):
        a, b = original.sample(5, continuous=continuous), restored.sample(5, continuous=continuous)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    # and both keep going the same way after more adds
    for m in (original, restored):
        m.add(*_transition(500))
    np.testing.assert_array_equal(original.sample(10, continuous=True).state,
                                  restored.sample(10, continuous=True).state)


def test_state_dict_is_a_copy() -> None:
    """Adding after state_dict() must not change what was saved (the checkpoint is written later)."""
    memory = _filled(10, 4)
    saved = memory.state_dict()
    before = saved["state"].copy()
    memory.add(*_transition(99))
    memory.state[0] = 123.0
    np.testing.assert_array_equal(saved["state"], before)


@pytest.mark.parametrize("memory_size, message", [(0, "memory_size must be >= 1"), (10**30, "GiB")])
def test_impossible_sizes_are_refused(memory_size: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Memory(memory_size, STATE_DIM, ACTION_DIM)


def test_set_state_dict_refuses_another_memory_size() -> None:
    """Restoring a 10-slot memory into a 20-slot one would break the ring order; it must be refused."""
    saved = _filled(10, 12).state_dict()
    with pytest.raises(UsageError, match="memory_size"):
        Memory(20, STATE_DIM, ACTION_DIM).set_state_dict(saved)


@pytest.mark.parametrize("field, value", [("state", np.float32(1.0)), ("state", np.ones(1, np.float32)),
                                          ("action", 0.5), ("next_state", np.ones((1, STATE_DIM), np.float32))])
def test_add_refuses_a_field_of_the_wrong_shape(field: str, value: object) -> None:
    """numpy would store a scalar in every column of a field; the memory stays as it was."""
    memory = _filled(10, 3)
    names = ("state", "action", "reward", "next_state", "terminated")
    transition = dict(zip(names, _transition(3)), **{field: value})
    with pytest.raises(UsageError, match=rf"{field} must have shape"):
        memory.add(**transition)
    assert memory.size() == 3
