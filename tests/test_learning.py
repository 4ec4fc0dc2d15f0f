"""DDPG really learns Pendulum-v1: a full (short) training run, judged by a noise-free evaluation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from paddle_ddpg.config import PRESETS
from paddle_ddpg.train import train

RANDOM_POLICY_RETURN = -1200  # what an untrained policy scores on Pendulum-v1, for the message below


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_preset_learns_pendulum(tmp_path: Path, seed: int) -> None:
    config = dataclasses.replace(PRESETS["fast"], episodes=30, seed=seed, eval_interval=0, eval_episodes=10,
                                 logdir=str(tmp_path / "logs"), model_dir=str(tmp_path / "model"), run_name="learn")
    summary = train(config, preset="fast")
    assert summary["episodes"] == 30 and summary["steps"] == 30 * 200
    assert summary["final_eval_mean"] >= -400, (
        f"seed {seed}: noise-free eval {summary['final_eval_mean']:.0f} after 6000 steps "
        f"(a random policy scores about {RANDOM_POLICY_RETURN})")
