"""End to end: `python -m paddle_ddpg.train` and `python -m paddle_ddpg.evaluate` through their main(argv), and
the package imported in a fresh interpreter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import pytest

from conftest import (BASE_ARGS, CLI_TIMEOUT, TINY, TrainedRun, cli_env, epoch_rewards, last_json, record_file,
                      run_cli, scalars)
from paddle_ddpg.checkpoint import load_checkpoint
from paddle_ddpg.config import Config
from paddle_ddpg.networks import Actor, Critic

EPISODES, EPISODE_STEPS, LEARNING_STARTS = (int(TINY[TINY.index(flag) + 1]) for flag in
                                             ("--episodes", "--max-episode-steps", "--learning-starts"))


def test_train_prints_the_json_summary_last(base_run: TrainedRun) -> None:
    """The last stdout line is one JSON object with the run's numbers; 3 episodes of 50 steps learn once
    per step after the first 64 transitions."""
    s = base_run.summary
    assert s["run"] == "base"
    assert s["episodes"] == EPISODES
    assert s["steps"] == EPISODES * EPISODE_STEPS
    assert s["learn_steps"] == EPISODES * EPISODE_STEPS - LEARNING_STARTS
    assert s["interrupted"] is None
    assert (base_run.root / s["checkpoint"]).resolve() == (base_run.run_dir / "checkpoint.pdckpt").resolve()
    assert isinstance(s["final_eval_mean"], float) and math.isfinite(s["final_eval_mean"])
    assert -16.3 * EPISODE_STEPS <= s["final_eval_mean"] <= 0  # Pendulum rewards lie in [-16.3, 0] per step
    assert sorted(epoch_rewards(base_run.stdout)) == [0, 1, 2]  # --log-interval 1: every episode printed


def test_run_directory_holds_the_tutorial_files(base_run: TrainedRun) -> None:
    """ddpg-actor<N>/ddpg-critic<N> at episode 0 (the tutorial's `epoch % 200 == 0`) and at the end, plus
    config.json and the full checkpoint."""
    names = sorted(p.name for p in base_run.run_dir.iterdir())
    assert names == ["checkpoint.pdckpt", "config.json", "ddpg-actor-best.pdparams", "ddpg-actor0.pdparams",
                     "ddpg-actor2.pdparams", "ddpg-critic0.pdparams", "ddpg-critic2.pdparams"]


def test_snapshots_load_as_in_the_tutorial(base_run: TrainedRun) -> None:
    """`paddle.load` + `Actor(...).set_state_dict` as the tutorial loads its files, giving exactly the
    final weights in the full checkpoint."""
    saved = load_checkpoint(base_run.run_dir / "checkpoint.pdckpt")
    actor = Actor(3, 1, [-2.0], [2.0])
    actor.set_state_dict(paddle.load(str(base_run.run_dir / "ddpg-actor2.pdparams")))
    for key, value in actor.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved["agent"]["actor"][key], err_msg=key)
    critic = Critic(3, 1)
    critic.set_state_dict(paddle.load(str(base_run.run_dir / "ddpg-critic2.pdparams")))
    for key, value in critic.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), saved["agent"]["critic"][key], err_msg=key)
    # the episode-0 snapshot predates most learning: it differs from the final one
    first = paddle.load(str(base_run.run_dir / "ddpg-actor0.pdparams"))
    assert not np.array_equal(np.asarray(first["fc1.weight"]), saved["agent"]["actor"]["fc1.weight"])


def test_checkpoint_records_where_the_run_is(base_run: TrainedRun) -> None:
    saved = load_checkpoint(base_run.run_dir / "checkpoint.pdckpt")
    assert saved["episode"] == EPISODES and saved["steps"] == EPISODES * EPISODE_STEPS
    assert saved["agent"]["learn_steps"] == base_run.summary["learn_steps"]
    assert saved["epsilon"] == pytest.approx(1 - EPISODES * EPISODE_STEPS / 50000)
    assert saved["state_dim"] == 3 and saved["action_dim"] == 1
    assert len(saved["memory"]["reward"]) == EPISODES * EPISODE_STEPS


def test_config_json_is_the_runs_settings(base_run: TrainedRun) -> None:
    """config.json holds every setting of the run and reads back into the same Config."""
    values = json.loads((base_run.run_dir / "config.json").read_text())
    assert set(values) == set(Config().to_dict())
    expected = Config(episodes=3, max_episode_steps=50, learning_starts=64, batch_size=16, eval_interval=2,
                      eval_episodes=2, log_interval=1, seed=0, run_name="base")
    assert Config().updated(values, source="config.json") == expected


def test_visualdl_record_has_the_tutorial_tags(base_run: TrainedRun) -> None:
    """One record file with the tutorial's tags: 'episode reward' per episode (the printed rewards),
    'critic loss'/'actor loss' every 10 learn steps (the default --loss-log-interval), 'eval return' per
    evaluation (after episode 2 and the final one after episode 3)."""
    record = record_file(base_run.log_dir)
    rewards = scalars(record, "episode reward")
    printed = epoch_rewards(base_run.stdout)
    assert [step for step, _ in rewards] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in rewards], [printed[i] for i in range(3)], rtol=1e-6)

    learn_steps = base_run.summary["learn_steps"]
    for tag in ("critic loss", "actor loss"):
        points = scalars(record, tag)
        assert [step for step, _ in points] == list(range(10, learn_steps + 1, 10)), tag
        assert all(math.isfinite(v) for _, v in points), tag
    assert all(v >= 0 for _, v in scalars(record, "critic loss"))  # an MSE

    evals = scalars(record, "eval return")
    assert [step for step, _ in evals] == [1, 2]  # logged at the index of the last episode evaluated
    assert evals[-1][1] == pytest.approx(base_run.summary["final_eval_mean"], rel=1e-6)


def test_logged_losses_are_means_over_the_interval(tmp_path: Path) -> None:
    """--loss-log-interval 1 writes every learn step's loss, as the tutorial did; 4 writes, at every fourth
    learn step, the mean of the four losses up to it. Same seed, so the same losses."""
    records = {}
    for interval in ("1", "4"):
        result = run_cli("train", *TINY, "--episodes", "2", "--run-name", f"i{interval}", "--loss-log-interval",
                         interval, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        records[interval] = record_file(tmp_path / "logs" / f"i{interval}")
    for tag in ("critic loss", "actor loss"):
        every = scalars(records["1"], tag)
        assert [step for step, _ in every] == list(range(1, len(every) + 1))
        means = np.array([v for _, v in every][:len(every) // 4 * 4]).reshape(-1, 4).mean(axis=1)
        grouped = scalars(records["4"], tag)
        assert [step for step, _ in grouped] == list(range(4, len(every) + 1, 4))
        np.testing.assert_allclose([v for _, v in grouped], means, rtol=1e-5)


@pytest.fixture(scope="module")
def evaluated(base_run: TrainedRun) -> dict[str, Any]:
    result = run_cli("evaluate", "--checkpoint", str(base_run.run_dir), "--episodes", "3", cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    return last_json(result.stdout)


def test_evaluate_a_run_directory(evaluated: dict[str, Any]) -> None:
    """The evaluate CLI prints mean and std of exactly the requested number of noise-free episodes, run
    with the run's own 50-step limit (a 200-step Pendulum episode scores far below -16.3 * 50)."""
    assert evaluated["episodes"] == 3
    returns = evaluated["returns"]
    assert len(returns) == 3
    assert evaluated["mean_return"] == pytest.approx(np.mean(returns), abs=1e-3)
    assert evaluated["std_return"] == pytest.approx(np.std(returns), abs=1e-3)
    assert all(-16.3 * EPISODE_STEPS <= r <= 0 for r in returns)


def test_evaluate_an_actor_file_gives_the_same_returns(base_run: TrainedRun, evaluated: dict[str, Any]) -> None:
    """The final ddpg-actor file holds the checkpoint's actor: evaluating either gives identical returns
    (the env id comes from the run's config.json)."""
    result = run_cli("evaluate", "--checkpoint", str(base_run.run_dir / "ddpg-actor2.pdparams"), "--episodes", "3",
                     cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    out = last_json(result.stdout)
    assert out["episodes"] == 3
    assert out["returns"] == evaluated["returns"]
    assert out["mean_return"] == evaluated["mean_return"]


def test_best_actor_is_the_actor_of_the_best_evaluation_and_survives_a_resume(tmp_path: Path) -> None:
    """With seed 5 and fast learning rates the six evaluations peak at the second (checked first, so the
    test tells the best from the first and the last): evaluating the best-actor file on the run's
    evaluation seeds gives that evaluation's mean. Two more episodes after a resume evaluate worse and leave
    the file as it was."""
    args = [*TINY, "--episodes", "6", "--eval-interval", "1", "--seed", "5", "--lr-actor", "1e-3", "--lr-critic",
            "1e-3", "--run-name", "peak"]
    result = run_cli("train", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    means = [e["mean"] for e in summary["evals"]]
    assert len(means) == 6 and max(means) not in (means[0], means[-1])
    assert summary["best_eval_mean"] == max(means)
    best = tmp_path / summary["best_actor"]
    assert best == tmp_path / "model" / "peak" / "ddpg-actor-best.pdparams"
    evaluated = run_cli("evaluate", "--checkpoint", str(best), "--episodes", "2", "--seed", "5", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert last_json(evaluated.stdout)["mean_return"] == pytest.approx(max(means), rel=1e-9)

    before = best.read_bytes()
    resumed = run_cli("train", "--resume", "model/peak", "--episodes", "8", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    later = [e["mean"] for e in last_json(resumed.stdout)["evals"]]
    assert later[:6] == means and len(later) == 8 and max(later[6:]) < max(means)
    assert best.read_bytes() == before and last_json(resumed.stdout)["best_eval_mean"] == max(means)


def test_evaluate_a_tutorial_para_file(base_run: TrainedRun, tmp_path: Path) -> None:
    """The tutorial saved `ddpg-actor<epoch>.para` with paddle.save; such a file, alone in a folder with no
    config.json, evaluates given --env, with the same returns as the same weights saved by the package."""
    weights = paddle.load(str(base_run.run_dir / "ddpg-actor2.pdparams"))
    paddle.save(weights, str(tmp_path / "ddpg-actor200.para"))
    paddle.save(weights, str(tmp_path / "ddpg-actor2.pdparams"))  # no config.json beside it either
    without_env = run_cli("evaluate", "--checkpoint", str(tmp_path / "ddpg-actor200.para"), cwd=tmp_path)
    assert without_env.returncode == 2 and "pass --env" in without_env.stderr
    result = run_cli("evaluate", "--checkpoint", str(tmp_path / "ddpg-actor200.para"), "--env", "Pendulum-v1",
                     "--episodes", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    reference = run_cli("evaluate", "--checkpoint", str(tmp_path / "ddpg-actor2.pdparams"), "--env", "Pendulum-v1",
                        "--episodes", "2", cwd=tmp_path)
    assert last_json(result.stdout)["returns"] == last_json(reference.stdout)["returns"]


def test_evaluate_reproduces_the_final_training_evaluation(base_run: TrainedRun) -> None:
    """Training's final evaluation and the evaluate CLI use the same reset seeds, step limit and no noise:
    with the run's --eval-episodes 2 and seed 0 they report the same mean return."""
    result = run_cli("evaluate", "--checkpoint", "model/base", "--episodes", "2", "--seed", "0", cwd=base_run.root)
    assert result.returncode == 0, result.stderr
    assert last_json(result.stdout)["mean_return"] == pytest.approx(base_run.summary["final_eval_mean"], rel=1e-9)


def test_same_seed_same_rewards_other_seed_other_rewards(base_run: TrainedRun, tmp_path: Path) -> None:
    """--seed fixes networks, noise, replay sampling and resets: a second run with seed 0 repeats every
    episode reward and the final weights exactly; seed 1 does not."""
    args = list(BASE_ARGS)
    args[args.index("base")] = "again"
    again = run_cli("train", *args, cwd=tmp_path)
    args[args.index("--seed") + 1] = "1"
    args[args.index("again")] = "other"
    other = run_cli("train", *args, cwd=tmp_path)
    assert again.returncode == 0 and other.returncode == 0, again.stderr + other.stderr

    base_rewards = epoch_rewards(base_run.stdout)
    assert len(base_rewards) == 3
    assert epoch_rewards(again.stdout) == base_rewards
    other_rewards = epoch_rewards(other.stdout)
    assert sorted(other_rewards) == sorted(base_rewards)
    assert all(other_rewards[i] != base_rewards[i] for i in base_rewards)

    a = paddle.load(str(base_run.run_dir / "ddpg-actor2.pdparams"))
    b = paddle.load(str(tmp_path / "model" / "again" / "ddpg-actor2.pdparams"))
    for key in a:
        np.testing.assert_array_equal(np.asarray(a[key]), np.asarray(b[key]), err_msg=key)


def test_total_steps_stops_mid_episode(tmp_path: Path) -> None:
    """--total-steps 120 with 50-step episodes stops after exactly 120 env steps."""
    result = run_cli("train", *TINY, "--episodes", "10", "--total-steps", "120", "--run-name", "ts", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["steps"] == 120
    assert summary["learn_steps"] == 120 - LEARNING_STARTS
    assert load_checkpoint(tmp_path / "model" / "ts" / "checkpoint.pdckpt")["steps"] == 120


@pytest.mark.parametrize("module, flags", [
    ("train", ["--lr-actor", "--lr-critic", "--resume", "--overwrite", "--env", "--actor-hidden", "--preset",
               "--config"]),
    ("evaluate", ["--checkpoint", "--env", "--episodes", "--seed"])])
def test_help_lists_the_flags_and_writes_nothing(tmp_path: Path, module: str, flags: list[str]) -> None:
    result = run_cli(module, "--help", cwd=tmp_path)
    assert result.returncode == 0
    for flag in flags:
        assert flag in result.stdout, flag
    assert list(tmp_path.iterdir()) == []


def test_resume_for_more_episodes_appends_to_the_same_record(base_copy: TrainedRun) -> None:
    """`--resume <checkpoint> --episodes 5` continues a finished 3-episode run: episodes 3 and 4 are added,
    and VisualDL's one record file ends up with all five episode rewards and a gap-free loss curve."""
    result = run_cli("train", "--resume", "model/base/checkpoint.pdckpt", "--episodes", "5", cwd=base_copy.root)
    assert result.returncode == 0, result.stderr
    summary = last_json(result.stdout)
    assert summary["episodes"] == 5 and summary["steps"] == 5 * EPISODE_STEPS
    assert summary["learn_steps"] == 5 * EPISODE_STEPS - LEARNING_STARTS
    assert sorted(epoch_rewards(result.stdout)) == [3, 4]
    record = record_file(base_copy.log_dir)
    assert [step for step, _ in scalars(record, "episode reward")] == [0, 1, 2, 3, 4]
    assert [step for step, _ in scalars(record, "critic loss")] == list(range(10, summary["learn_steps"] + 1, 10))
    assert load_checkpoint(base_copy.run_dir / "checkpoint.pdckpt")["episode"] == 5
    assert (base_copy.run_dir / "ddpg-actor4.pdparams").is_file()
    assert json.loads((base_copy.run_dir / "config.json").read_text())["episodes"] == 5


def test_resume_from_another_directory_continues_the_same_run(base_copy: TrainedRun, tmp_path: Path) -> None:
    """Resuming with the checkpoint's absolute path from another working directory must continue the run
    where its checkpoint lies (update that checkpoint, append to that run's VisualDL record), not start a
    second copy of the run under the new directory's model/ and logs/."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checkpoint = base_copy.run_dir / "checkpoint.pdckpt"
    result = run_cli("train", "--resume", str(checkpoint), "--episodes", "4", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(checkpoint)["episode"] == 4
    assert [step for step, _ in scalars(record_file(base_copy.log_dir), "episode reward")] == [0, 1, 2, 3]
    assert list(elsewhere.iterdir()) == []


def test_train_from_python(tmp_path: Path) -> None:
    """train(Config(...)) in-process returns the same summary the CLI prints and writes the same files."""
    from paddle_ddpg.train import train

    config = Config(episodes=2, max_episode_steps=30, learning_starts=40, batch_size=8, eval_interval=0,
                    eval_episodes=1, log_interval=1, run_name="py", logdir=str(tmp_path / "logs"),
                    model_dir=str(tmp_path / "model"))
    summary = train(config)
    assert summary["episodes"] == 2 and summary["steps"] == 60 and summary["learn_steps"] == 20
    assert Path(summary["checkpoint"]) == tmp_path / "model" / "py" / "checkpoint.pdckpt"
    assert load_checkpoint(Path(summary["checkpoint"]))["episode"] == 2
    assert len(scalars(record_file(tmp_path / "logs" / "py"), "episode reward")) == 2


@pytest.mark.subprocess
def test_importing_the_package_changes_nothing_in_the_process() -> None:
    """In a fresh interpreter, `import paddle_ddpg` leaves the environment and the warning filters as they were
    and loads no Paddle; then every name in paddle_ddpg.__all__ exists."""
    code = ("import os, sys, warnings; environ, filters = dict(os.environ), list(warnings.filters); "
            "import paddle_ddpg as p; "
            "print(dict(os.environ) == environ, warnings.filters == filters, 'paddle' not in sys.modules, "
            "all(hasattr(p, n) for n in p.__all__), len(p.__all__))")
    # without what a program sets as it starts (this process did, in conftest), so that a change would show
    env = {k: v for k, v in cli_env().items() if k not in ("MKL_DEBUG_CPU_TYPE", "GLOG_minloglevel")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    *unchanged, count = result.stdout.split()[-5:]
    assert unchanged == ["True"] * 4 and int(count) > 0, result.stdout
