"""benchmarks/learning_curves.py --resume: which runs of an earlier results file a new invocation keeps."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from paddle_ddpg.config import PRESETS, Config

pytest.importorskip("ray", reason="benchmarks/learning_curves.py imports the sweep: the [sweep] extra")

_spec = importlib.util.spec_from_file_location(
    "learning_curves", Path(__file__).resolve().parent.parent / "benchmarks" / "learning_curves.py")
assert _spec is not None and _spec.loader is not None
learning_curves = importlib.util.module_from_spec(_spec)
sys.modules["learning_curves"] = learning_curves  # its dataclasses look their module up there
_spec.loader.exec_module(learning_curves)

EARLIER = dataclasses.replace(PRESETS["Hopper-v5"], total_steps=5000, threads=1, critic_action_layer=0)
FLAGS = ["--preset", "Hopper-v5", "--total-steps", "5000", "--sb3", "--final-episodes", "20"]


def _write(tmp_path: Path, config: Config, drop: tuple[str, ...] = ()) -> None:
    """A results file of seeds 0 and 1 for both implementations, as learning_curves writes it."""
    values: dict[str, Any] = json.loads(json.dumps(config.to_dict()))
    runs = {label: [dataclasses.asdict(learning_curves.Run(seed, [1000], [0.0], 1.0, 1.0, 0.0)) for seed in (0, 1)]
            for label in ("paddle_ddpg", "sb3")}
    (tmp_path / "x.json").write_text(json.dumps({
        "command": "python benchmarks/learning_curves.py " + " ".join(FLAGS + ["--seeds", "0", "1"]),
        "config": {k: v for k, v in values.items() if k not in ("seed", "logdir", "model_dir", "run_name", *drop)},
        "runs": runs}))


def _kept(tmp_path: Path, config: Config, *flags: str) -> dict[int, list[str]]:
    args = learning_curves.build_parser().parse_args([*FLAGS, "--seeds", "0", "1", "2", "--out-dir", str(tmp_path),
                                                      *flags])
    return {seed: sorted(runs) for seed, runs in learning_curves.finished_runs(args, config, "x").items()}


@pytest.mark.parametrize(("change", "kept"), [
    ({}, ["paddle_ddpg", "sb3"]),
    ({"threads": 2, "engine": "plain"}, ["paddle_ddpg", "sb3"]),  # speed only
    ({"critic_action_layer": 1}, ["sb3"]),  # paddle_ddpg's own setting: SB3's runs still hold
    ({"tanh_penalty": 0.5}, ["sb3"]),  # likewise
    ({"batch_size": 256}, []),  # both implementations train on it
])
def test_resume_keeps_the_runs_the_settings_would_repeat(tmp_path: Path, change: dict[str, Any],
                                                         kept: list[str]) -> None:
    _write(tmp_path, EARLIER)
    expected = {0: kept, 1: kept} if kept else {}
    assert _kept(tmp_path, dataclasses.replace(EARLIER, **change)) == expected


def test_resume_needs_the_same_final_evaluation(tmp_path: Path) -> None:
    _write(tmp_path, EARLIER)
    assert _kept(tmp_path, EARLIER, "--final-episodes", "100") == {}


def test_a_setting_the_file_predates_counts_at_its_default(tmp_path: Path) -> None:
    """A file written before critic_action_layer existed was trained with the default, 1."""
    _write(tmp_path, EARLIER, drop=("critic_action_layer",))
    assert EARLIER.critic_action_layer == 0 and Config().critic_action_layer == 1
    assert _kept(tmp_path, EARLIER) == {0: ["sb3"], 1: ["sb3"]}
    assert _kept(tmp_path, dataclasses.replace(EARLIER, critic_action_layer=1)) == {0: ["paddle_ddpg", "sb3"],
                                                                                    1: ["paddle_ddpg", "sb3"]}
