"""The CPU thread default (`cpu_threads`); evaluation itself is tested through its CLI in test_cli.py."""

from __future__ import annotations

import os

import pytest

from paddle_ddpg import device
from paddle_ddpg.device import cpu_threads


def test_threads_asked_for_are_kept() -> None:
    assert cpu_threads(3, 32) == 3
    assert cpu_threads(1, 256) == 1


def test_small_batches_get_one_thread_large_ones_up_to_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device, "usable_cpus", lambda: 8)
    assert (cpu_threads(0, 32), cpu_threads(0, 63), cpu_threads(0, 64), cpu_threads(0, 256)) == (1, 1, 2, 2)
    monkeypatch.setattr(device, "usable_cpus", lambda: 1)
    assert cpu_threads(0, 256) == 1


def test_cores_are_counted_without_an_affinity_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS and Windows have no os.sched_getaffinity; the default must not crash there."""
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert device.usable_cpus() == 6
    assert cpu_threads(0, 256) == 2
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert cpu_threads(0, 256) == 1
