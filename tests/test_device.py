"""The CPU thread default (`cpu_threads`) and what a program sets for its process as it starts
(`prepare_process`); evaluation itself is tested through its CLI in test_cli.py."""

from __future__ import annotations

import io
import os
import warnings

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


@pytest.mark.parametrize(("vendor", "mkl"), [("AuthenticAMD", "5"), ("GenuineIntel", None)])
def test_a_program_selects_mkls_avx2_kernels_on_amd_only(monkeypatch: pytest.MonkeyPatch, vendor: str,
                                                         mkl: str | None) -> None:
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE", raising=False)
    monkeypatch.delenv("GLOG_minloglevel", raising=False)
    monkeypatch.setattr(device, "open", lambda *args: io.StringIO(f"processor\t: 0\nvendor_id\t: {vendor}\n"),
                        raising=False)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        device.prepare_process()
        warnings.warn("No ccache found. Please be aware that recompiling all source files may be required.",
                      UserWarning)
        warnings.warn("any other warning", UserWarning)
    assert [str(w.message) for w in shown] == ["any other warning"]
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == mkl and os.environ["GLOG_minloglevel"] == "2"


def test_a_program_keeps_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "4")
    monkeypatch.setenv("GLOG_minloglevel", "0")
    monkeypatch.setattr(device, "open", lambda *args: io.StringIO("vendor_id\t: AuthenticAMD\n"), raising=False)
    with warnings.catch_warnings():
        device.prepare_process()
    assert (os.environ["MKL_DEBUG_CPU_TYPE"], os.environ["GLOG_minloglevel"]) == ("4", "0")

