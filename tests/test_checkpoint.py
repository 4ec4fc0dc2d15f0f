"""Checkpoint files: atomic writes, one-line errors for bad files, and finding a run's checkpoint."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path
from typing import IO

import numpy as np
import paddle
import pytest

from paddle_ddpg.checkpoint import (CHECKPOINT_NAME, capture, load_checkpoint, record_of, resolve_checkpoint,
                                    restore, save_checkpoint)
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.files import SaveError, atomic_write
from paddle_ddpg.loop import StopRequest, Trainer
from paddle_ddpg.snapshot import load_state_dict, save_state_dict
from paddle_ddpg.networks import Actor


class WriterCrashed(Exception):
    pass


def _crashing_writer(f: IO[bytes]) -> None:
    f.write(b"half of a new checkpoint")
    raise WriterCrashed


def test_atomic_write_replaces_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"old")
    atomic_write(path, lambda f: f.write(b"new contents"))
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path: Path) -> None:
    """A crash in the middle of a save (here: the writer raises after writing half) leaves the previous
    checkpoint byte for byte, and no temporary file beside it."""
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"the previous good checkpoint")
    with pytest.raises(WriterCrashed):
        atomic_write(path, _crashing_writer)
    assert path.read_bytes() == b"the previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


def test_atomic_write_of_a_new_file_that_fails_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(WriterCrashed):
        atomic_write(tmp_path / "new.bin", _crashing_writer)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_is_a_save_error_and_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"the previous good checkpoint")

    def disk_full(f: IO[bytes]) -> None:
        f.write(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(SaveError, match=f"{CHECKPOINT_NAME}: No space left on device"):
        atomic_write(path, disk_full)
    assert path.read_bytes() == b"the previous good checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]


def test_atomic_write_gives_ordinary_file_permissions(tmp_path: Path) -> None:
    """Checkpoints, config.json and ddpg-actor files should be readable like any file the user creates
    (0o644 under umask 022, as the tutorial's paddle.save gave), not owner-only: others on a shared
    machine evaluate or serve them."""
    old_umask = os.umask(0o022)
    try:
        path = tmp_path / "config.json"
        atomic_write(path, lambda f: f.write(b"{}"))
        plain = tmp_path / "plain.json"
        plain.write_bytes(b"{}")
    finally:
        os.umask(old_umask)
    assert oct(path.stat().st_mode & 0o777) == oct(plain.stat().st_mode & 0o777) == oct(0o644)


def minimal_state(**changes: object) -> dict:
    """The top level a checkpoint must have, with small values."""
    state = {"config": {}, "state_dim": 3, "action_dim": 1, "agent": {}, "memory": {}, "rng": {}, "episode": 3,
             "steps": 600, "epsilon": 0.5, "wall_seconds": 1.0, "last_eval": None, "last_eval_std": None,
             "evals": [], "eval_seconds": 0.0, "loss_sums": {}, "log_dir_from_run_dir": "../../logs/r"}
    return {**state, **changes}


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    state = minimal_state(episode=7, agent={"fc1.weight": np.arange(6, dtype=np.float32).reshape(2, 3)})
    save_checkpoint(path, state)
    loaded = load_checkpoint(path)
    assert loaded["episode"] == 7
    np.testing.assert_array_equal(loaded["agent"]["fc1.weight"], state["agent"]["fc1.weight"])
    assert loaded["agent"]["fc1.weight"].dtype == np.float32


@pytest.fixture
def good_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, minimal_state(memory={"blob": np.random.default_rng(0).standard_normal(5000)}))
    return path


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_load_truncated_checkpoint_raises_usage_error(good_checkpoint: Path, fraction: float) -> None:
    """A checkpoint cut short (disk full, copied while written) is reported as corrupt, not as an
    UnpicklingError/EOFError traceback."""
    data = good_checkpoint.read_bytes()
    good_checkpoint.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(UsageError, match="corrupt or truncated|not a paddle_ddpg checkpoint"):
        load_checkpoint(good_checkpoint)


@pytest.mark.parametrize("seed", range(5))
def test_load_random_bytes_raises_usage_error(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "junk.pdckpt"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(UsageError):
        load_checkpoint(path)


def test_load_missing_checkpoint_raises_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "missing.pdckpt")


def test_load_foreign_pickle_raises_usage_error(tmp_path: Path) -> None:
    """A valid pickle that is not ours (no format tag) is refused by name."""
    path = tmp_path / "other.pdckpt"
    path.write_bytes(pickle.dumps({"episode": 3}))
    with pytest.raises(UsageError, match="not a paddle_ddpg checkpoint"):
        load_checkpoint(path)


def test_state_dict_file_round_trip_loads_with_paddle(tmp_path: Path) -> None:
    """save_state_dict writes a tutorial-style file: `paddle.load` + `set_state_dict` restore the actor."""
    paddle.seed(0)
    actor = Actor(3, 1, [-2.0], [2.0], hidden=(8, 8))
    path = tmp_path / "ddpg-actor0.pdparams"
    save_state_dict(path, actor.state_dict())
    other = Actor(3, 1, [-2.0], [2.0], hidden=(8, 8))
    other.set_state_dict(paddle.load(str(path)))
    for a, b in zip(actor.parameters(), other.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert set(load_state_dict(path)) == set(actor.state_dict())


@pytest.mark.parametrize("content", [b"", b"not a paddle file", None])
def test_load_bad_state_dict_raises_usage_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "ddpg-actor5.pdparams"
    if content is None:  # a truncated real file
        save_state_dict(path, Actor(3, 1, [-2.0], [2.0]).state_dict())
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.write_bytes(content)
    with pytest.raises(UsageError):
        load_state_dict(path)


def _touch(directory: Path, *names: str) -> None:
    for name in names:
        (directory / name).write_bytes(b"x")


def test_resolve_directory_prefers_the_full_checkpoint(tmp_path: Path) -> None:
    _touch(tmp_path, "ddpg-actor5.pdparams", "ddpg-critic5.pdparams", CHECKPOINT_NAME)
    assert resolve_checkpoint(str(tmp_path)) == tmp_path / CHECKPOINT_NAME


def test_resolve_directory_without_checkpoint_picks_the_newest_actor_numerically(tmp_path: Path) -> None:
    """ddpg-actor200 is newer than ddpg-actor30 although '3' sorts after '2' as text; critic files and the
    best-evaluation actor are never picked."""
    _touch(tmp_path, "ddpg-actor0.pdparams", "ddpg-actor30.pdparams", "ddpg-actor200.pdparams",
           "ddpg-actor9.pdparams", "ddpg-critic999.pdparams", "ddpg-actor-best.pdparams")
    assert resolve_checkpoint(str(tmp_path)) == tmp_path / "ddpg-actor200.pdparams"


def test_resolve_file_is_returned_as_given(tmp_path: Path) -> None:
    _touch(tmp_path, "ddpg-actor3.pdparams")
    assert resolve_checkpoint(str(tmp_path / "ddpg-actor3.pdparams")) == tmp_path / "ddpg-actor3.pdparams"


def test_resolve_empty_directory_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no checkpoint in directory"):
        resolve_checkpoint(str(tmp_path))
    with pytest.raises(UsageError, match="checkpoint not found"):
        resolve_checkpoint(str(tmp_path / "nope.pdckpt"))


def test_arrays_keep_their_shape_and_type(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT_NAME
    arrays = {"scalar": np.array(True), "empty": np.zeros((0, 3), np.float32), "ints": np.arange(3, dtype=np.int64),
              "doubles": np.linspace(0, 1, 4), "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))}
    save_checkpoint(path, minimal_state(agent=arrays))
    loaded = load_checkpoint(path)["agent"]
    for name, array in arrays.items():
        assert loaded[name].shape == array.shape and loaded[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded[name], array)


TINY_CONFIG = Config(episodes=2, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=0,
                     log_interval=1, memory_size=500)


def test_a_restored_trainer_continues_as_the_one_saved(tmp_path: Path) -> None:
    """capture -> file -> restore gives a Trainer whose networks, optimizers, memory, generators and counters
    are the saved one's: both continue with the same actions and the same next batch."""
    trainer = Trainer(TINY_CONFIG)
    trainer.run(StopRequest())
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, capture(trainer, tmp_path / "model" / "r", tmp_path / "logs" / "r", ("vdlrecords.1.log", 7)))
    saved = load_checkpoint(path)
    restored = Trainer(TINY_CONFIG)
    restore(restored, saved)
    assert (restored.episode, restored.steps, restored.epsilon) == (trainer.episode, trainer.steps, trainer.epsilon)
    assert restored.loss_sums == trainer.loss_sums and record_of(saved) == ("vdlrecords.1.log", 7)
    state = np.zeros(3, np.float32)
    np.testing.assert_array_equal(restored.agent.select_action(state, 1.0), trainer.agent.select_action(state, 1.0))
    for a, b in zip(restored.memory.sample(8), trainer.memory.sample(8)):
        np.testing.assert_array_equal(a, b)
    for name, net in trainer.agent.networks().items():
        for key, value in net.state_dict().items():
            np.testing.assert_array_equal(restored.agent.networks()[name].state_dict()[key].numpy(), value.numpy())
    with pytest.raises(UsageError, match="VisualDL record entry"):
        record_of({**saved, "record": {"file": "../../etc/passwd", "bytes": 1}})
