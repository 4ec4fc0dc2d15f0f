"""load_policy: every file a run or an export leaves gives the same policy, the one `evaluate` and training's
own final evaluation ran, on the run's env and step limit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TrainedRun, last_json, run_cli
from paddle_ddpg import Config, Policy, UsageError, load_policy
from paddle_ddpg.env import make_env
from paddle_ddpg.env import evaluate

# What each kind of file is, relative to the shared run's root: the final actor of model/base, saved five ways.
KINDS = ["run directory", "checkpoint", "snapshot", "tutorial .para", "export prefix", "export program"]
STEP_LIMIT = 50  # the shared run's --max-episode-steps


@pytest.fixture(scope="module")
def files(base_run: TrainedRun, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The final actor of the shared tiny run as each kind of file load_policy takes."""
    out = tmp_path_factory.mktemp("policy_files")
    exported = run_cli("export", "--checkpoint", str(base_run.run_dir), "--output", str(out / "export" / "actor"),
                       cwd=base_run.root)
    assert exported.returncode == 0, exported.stderr
    last = base_run.summary["episodes"] - 1
    (out / "tutorial").mkdir()
    shutil.copy(base_run.run_dir / f"ddpg-actor{last}.pdparams", out / "tutorial" / "ddpg-actor200.para")
    return {"run directory": base_run.run_dir, "checkpoint": base_run.run_dir / "checkpoint.pdckpt",
            "snapshot": base_run.run_dir / f"ddpg-actor{last}.pdparams",
            "tutorial .para": out / "tutorial" / "ddpg-actor200.para",
            "export prefix": out / "export" / "actor", "export program": out / "export" / "actor.json"}


@pytest.fixture(scope="module")
def policies(files: dict[str, Path]) -> dict[str, Policy]:
    # The tutorial's file carries neither weights' env nor config: the env id comes from the caller.
    return {kind: load_policy(path, "Pendulum-v1" if kind == "tutorial .para" else None)
            for kind, path in files.items()}


@pytest.fixture(scope="module")
def observations() -> np.ndarray:
    """Pendulum observations (cos, sin, angular velocity) over the whole range the env produces."""
    theta = np.random.default_rng(0).uniform(-np.pi, np.pi, 64)
    speed = np.random.default_rng(1).uniform(-8.0, 8.0, 64)
    return np.stack([np.cos(theta), np.sin(theta), speed], axis=1).astype(np.float32)


def test_every_kind_of_file_gives_the_same_actions(policies: dict[str, Policy], observations: np.ndarray) -> None:
    """The same weights behind each file: identical actions from the Actor layer, the exported program within
    float32 rounding; actions inside the bounds and varying with the observation."""
    reference = policies["checkpoint"].predict(observations)
    assert reference.shape == (64, 1)
    assert np.all(np.abs(reference) <= 2.0) and np.ptp(reference) > 1e-3
    for kind, policy in policies.items():
        actions = policy.predict(observations)
        if kind.startswith("export"):
            np.testing.assert_allclose(actions, reference, atol=1e-6, rtol=0, err_msg=kind)
        else:
            np.testing.assert_array_equal(actions, reference, err_msg=kind)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_and_single_predictions_agree(policies: dict[str, Policy], observations: np.ndarray, kind: str) -> None:
    """predict(obs) of one observation is row i of predict(batch): shape (action_dim,) against (n, action_dim)."""
    policy = policies[kind]
    batch = policy.predict(observations)
    singles = np.stack([policy.predict(obs) for obs in observations])
    assert policy.predict(observations[0]).shape == (1,)
    np.testing.assert_allclose(singles, batch, atol=1e-6, rtol=0)
    assert policy(observations[:3]).shape == (3, 1)  # a Policy is also the callable `evaluate` takes


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_evaluates_as_training_did(base_run: TrainedRun, policies: dict[str, Policy], kind: str) -> None:
    """evaluate() on the policy's own env reproduces the run's final noise-free evaluation (its 2 episodes,
    seed 0, the run's 50-step limit); the tutorial's file, which records no step limit, runs 200-step episodes."""
    policy = policies[kind]
    env = policy.make_env()
    try:
        returns = evaluate(policy.predict, env, 2, 0)
    finally:
        env.close()
    if kind == "tutorial .para":
        full_length = make_env("Pendulum-v1")
        expected = evaluate(policies["checkpoint"].predict, full_length, 2, 0)
        full_length.close()
        np.testing.assert_array_equal(returns, expected)
        assert returns.mean() < base_run.summary["final_eval_mean"] * 2  # four times the steps
    elif kind.startswith("export"):
        assert returns.mean() == pytest.approx(base_run.summary["final_eval_mean"], abs=1e-3)
    else:
        assert returns.mean() == base_run.summary["final_eval_mean"]


def test_evaluate_cli_runs_what_load_policy_gives(base_run: TrainedRun, policies: dict[str, Policy],
                                                  files: dict[str, Path]) -> None:
    """`python -m paddle_ddpg.evaluate` on the export returns what evaluate() of load_policy's policy returns."""
    result = run_cli("evaluate", "--checkpoint", str(files["export prefix"]), "--episodes", "3", "--seed", "4",
                     cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    policy = policies["export prefix"]
    env = policy.make_env()
    expected = evaluate(policy.predict, env, 3, 4)
    env.close()
    assert last_json(result.stdout)["returns"] == [round(float(r), 3) for r in expected]


@pytest.mark.parametrize("kind", KINDS)
def test_make_env_is_the_runs_env_with_its_step_limit(policies: dict[str, Policy], kind: str) -> None:
    """The env id, the step limit (the run's 50 steps where the file or its run records it), sizes and bounds."""
    policy = policies[kind]
    limit = 200 if kind == "tutorial .para" else STEP_LIMIT  # the tutorial's file: Pendulum's own limit
    env = policy.make_env()
    try:
        assert policy.env_id == env.spec.id == "Pendulum-v1"
        assert env.spec.max_episode_steps == limit
        env.reset(seed=0)
        steps = next(t for t in range(1, 1000) if any(env.step(env.action_space.sample())[2:4]))
        assert steps == limit
        assert (policy.state_dim, policy.action_dim) == (3, 1)
        assert policy.action_space == env.action_space
        assert policy.observation_space.shape == env.observation_space.shape
        assert policy.observation_space.contains(env.observation_space.high)
    finally:
        env.close()
    with pytest.raises(UsageError, match="observation 3, action 1"):
        policy.make_env("MountainCarContinuous-v0")


def test_config_comes_with_a_full_checkpoint(base_run: TrainedRun, policies: dict[str, Policy]) -> None:
    """A run directory and its checkpoint carry the run's settings, equal to its config.json; the other files
    record none."""
    saved = Config().updated(json.loads((base_run.run_dir / "config.json").read_text()), source="config.json")
    for kind in ("run directory", "checkpoint"):
        assert policies[kind].config == saved
        assert policies[kind].config.max_episode_steps == STEP_LIMIT
    assert all(policies[kind].config is None for kind in KINDS if kind not in ("run directory", "checkpoint"))


def test_predict_refuses_observations_of_the_wrong_size(policies: dict[str, Policy]) -> None:
    for policy in policies.values():
        for obs in (np.zeros(4), np.zeros((2, 2)), np.zeros((2, 2, 3))):
            with pytest.raises(UsageError, match=r"predict takes observations of shape \(3,\)"):
                policy.predict(obs)
