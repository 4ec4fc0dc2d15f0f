"""A real MuJoCo task end to end: TD3 on InvertedPendulum-v5 with its preset, shrunk to a few hundred steps.

InvertedPendulum terminates when the pole falls, so episodes have uneven lengths and `terminated` is set:
the case Pendulum (always truncated at 200 steps) never exercises.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import last_json, run_cli
from paddle_ddpg.checkpoint import load_checkpoint

pytestmark = pytest.mark.mujoco

STEPS, LEARNING_STARTS = 600, 200
ARGS = ["--preset", "InvertedPendulum-v5", "--total-steps", str(STEPS), "--learning-starts", str(LEARNING_STARTS),
        "--random-steps", "200", "--batch-size", "32", "--actor-hidden", "32", "32", "--critic-hidden", "32", "32",
        "--eval-episodes", "2", "--run-name", "mujoco"]


def test_td3_on_inverted_pendulum_trains_and_evaluates(tmp_path: Path) -> None:
    """The run stops at exactly 600 env steps, mid-episode if need be, learning from step 201 on; the
    evaluate CLI on the same seed and episode count reproduces the run's own final evaluation."""
    result = run_cli("train", *ARGS, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["steps"] == STEPS and summary["learn_steps"] == STEPS - LEARNING_STARTS
    assert summary["episodes"] > 1  # the pole falls: episodes end by termination, long before 1000 steps
    assert summary["evals"][-1]["steps"] == STEPS and summary["evals"][-1]["mean"] == summary["final_eval_mean"]
    saved = load_checkpoint(tmp_path / "model" / "mujoco" / "checkpoint.pdckpt")
    assert saved["config"]["env"] == "InvertedPendulum-v5" and saved["config"]["algo"] == "td3"
    assert saved["memory"]["terminated"].sum() >= 1

    evaluated = run_cli("evaluate", "--checkpoint", "model/mujoco", "--episodes", "2", "--seed", "0", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    returns = last_json(evaluated.stdout)
    # +1 per step the pole stays up, 1000 steps at most
    assert returns["episodes"] == 2 and all(1 <= r <= 1000 for r in returns["returns"])
    assert math.isfinite(summary["final_eval_mean"])
    assert returns["mean_return"] == pytest.approx(summary["final_eval_mean"], rel=1e-9)
