"""benchmarks/mujoco_1m.py report: the table's figures from the runs' checkpoints, unfinished runs listed apart."""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from paddle_ddpg.train import main as train_main

pytest.importorskip("matplotlib", reason="benchmarks/mujoco_1m.py plots: the [sweep] or [bench] extra")

_spec = importlib.util.spec_from_file_location(
    "mujoco_1m", Path(__file__).resolve().parent.parent / "benchmarks" / "mujoco_1m.py")
assert _spec is not None and _spec.loader is not None
mujoco_1m = importlib.util.module_from_spec(_spec)
sys.modules["mujoco_1m"] = mujoco_1m
_spec.loader.exec_module(mujoco_1m)


def _train(root: Path, seed: int, episodes: int) -> None:
    """A 400-step budget evaluated every 200 steps; one 200-step Pendulum episode leaves it unfinished."""
    name = mujoco_1m.run_name("Pendulum-v1", seed)
    assert train_main(["--env", "Pendulum-v1", "--seed", str(seed), "--run-name", name, "--episodes", str(episodes),
                       "--total-steps", "400", "--eval-step-interval", "200", "--eval-interval", "0",
                       "--eval-episodes", "1", "--actor-hidden", "8", "8", "--critic-hidden", "8", "8",
                       "--learning-starts", "50", "--threads", "1", "--no-progress",
                       "--model-dir", str(root / "model"), "--logdir", str(root / "logs")]) == 0


def test_report_takes_max_and_final_over_finished_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for seed, episodes in ((0, 10), (1, 10), (2, 1), (3, 1)):
        _train(tmp_path, seed, episodes)
    load = mujoco_1m.load_checkpoint

    def stopped_early(path: Path) -> dict[str, Any]:  # seed 3 as if stopped with Ctrl-C before an evaluation
        saved = load(path)
        return {**saved, "evals": []} if path.parent.name.endswith("_s3") else saved

    monkeypatch.setattr(mujoco_1m, "load_checkpoint", stopped_early)
    assert mujoco_1m.report(tmp_path, tmp_path / "out", "x") == 0

    record = json.loads((tmp_path / "out" / "x.json").read_text())
    runs = record["runs"]["Pendulum-v1"]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["steps"] == [200, 400] for r in runs)
    maxima, finals = [max(r["means"]) for r in runs], [r["means"][-1] for r in runs]
    assert [r["max"] for r in runs] == maxima and [r["final"] for r in runs] == finals
    assert [(u["seed"], u["steps"]) for u in record["unfinished"]] == [(2, 200), (3, 200)]

    table = (tmp_path / "out" / "x.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| Pendulum-v1 "))
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[1] == "0, 1"
    assert cells[2] == f"{statistics.mean(maxima):.1f} +- {statistics.stdev(maxima):.1f}"  # the sample std
    assert cells[3] == f"{statistics.mean(finals):.1f} +- {statistics.stdev(finals):.1f}"
    assert "unfinished: Pendulum-v1 seed 2 at 200 steps, max so far" in table
    assert "unfinished: Pendulum-v1 seed 3 at 200 steps, not evaluated yet" in table
    assert (tmp_path / "out" / "x_Pendulum-v1.png").stat().st_size > 0
