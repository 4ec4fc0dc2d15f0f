"""The sweep's argument checks and its resume record's checks, in this process: each mistake is one line, exit
status 2, before Ray starts and before anything is written. The sweeps themselves are in test_sweep_ray.py.

Ray need not be installed: the program checks everything before it imports the [sweep] extra."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLI_TIMEOUT, TINY, error_lines, free_port
from paddle_ddpg.sweep.__main__ import RaisingParser, build_parser, main, plan, prepare

SMALL = [*TINY, "--eval-interval", "1", "--actor-hidden", "16", "16", "--critic-hidden", "16", "16"]
PROG = "python -m paddle_ddpg.sweep: error: "


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """main(argv)'s one error line, after checking exit status 2 and nothing on stdout."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = error_lines(captured.err)
    assert len(lines) == 1 and lines[0].startswith(PROG) and not captured.out, captured
    return lines[0].removeprefix(PROG)


@pytest.mark.parametrize(("args", "message"), [
    (["--grid", "nosuch=1,2"], "--grid: unknown field 'nosuch'"),
    (["--grid", "tau=0.01,2"], "--grid tau=2: tau must be in (0, 1], got 2.0"),
    (["--grid", "tau=0.01,0.01"], "--grid tau: a value is repeated"),
    (["--grid", "tau=0.01", "tau=0.02"], "--grid: tau given twice"),
    (["--grid", "tau"], "--grid takes FIELD=VALUES, got 'tau'"),
    (["--grid", "lr_actor=abc"], "--grid lr_actor=abc: argument --lr-actor: invalid float value: 'abc'"),
    (["--grid", "actor_hidden=64x64,64x0"], "--grid actor_hidden=64x0: actor_hidden must be positive sizes"),
    (["--grid", "noise=gaussian,pink"], "--grid noise=pink: argument --noise: invalid choice: 'pink'"),
    (["--grid", "batch_size=64,100000"], "--grid batch_size=100000: batch_size (100000) must not exceed memory_size"),
    (["--grid", "batch_size=64,128", "memory_size=100,1000"], "--grid batch_size=128 memory_size=100: batch_size"),
    (["--grid", "seed=1,2"], "--grid: seed is set by the sweep for each trial (give seeds with --seeds)"),
    (["--grid", "logdir=a,b"], "--grid: logdir is set by the sweep for each trial"),
    (["--search", "optuna", "--trials", "4", "--space", "lr_actor=1e-2:1e-5"],
     "--space lr_actor=0.01:1e-05: the low end must be below the high end"),
    (["--search", "optuna", "--trials", "4", "--space", "gamma=0:0.99:log"],
     "--space gamma=0:0.99:log: a log range needs a positive low end"),
    (["--search", "optuna", "--trials", "4", "--space", "lr_actor=0:1e-2:log"], "lr_actor must be > 0"),
    (["--search", "optuna", "--trials", "4", "--space", "noise=0:1"], "--space noise=0:1: a range is LOW:HIGH"),
    (["--search", "optuna", "--trials", "4", "--space", "tau=0.1:0.2:lin"], "--space tau=0.1:0.2:lin: a range is"),
    (["--search", "optuna", "--trials", "0", "--space", "lr_actor=1e-5:1e-2:log"], "--trials must be >= 1, got 0"),
    (["--search", "optuna", "--trials", "2"], "a search needs all three: --search optuna, --trials N and --space"),
    (["--space", "lr_actor=1e-5:1e-2"], "a search needs all three"),
    (["--trials", "2"], "a search needs all three"),
    (["--seeds"], "argument --seeds: expected at least one argument"),
    (["--seeds", "1", "1"], "--seeds: a seed is repeated"),
    (["--seeds", "-1"], "seed must be in [0, 2**64), got -1"),
    (["--grid", "tau=0.01", "--search", "optuna", "--trials", "2", "--space", "lr_actor=1e-5:1e-2"],
     "--grid and --search are alternatives"),
    (["--scheduler", "asha", "--eval-interval", "0"], "--scheduler asha compares the periodic evaluations"),
    (["--reduction-factor", "1"], "--reduction-factor must be > 1, got 1.0"),
    (["--grace-period", "0"], "--grace-period must be >= 1, got 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be >= 1, got 0"),
    (["--max-concurrent", "-1"], "--max-concurrent must be >= 0, got -1"),
    (["--cpus-per-trial", "1000"], "--cpus-per-trial 1000: this machine has"),
    (["--name", ".."], "--name must be a plain directory name, got '..'"),
    (["--run-name", "x"], "--run-name: the sweep names each trial's run"),
    (["--env", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
    (["--grid", "env=Pendulum-v1,NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
    (["--resume", "nowhere"], "--episodes cannot be used with --resume"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str], args: list[str],
                                                          message: str) -> None:
    monkeypatch.chdir(tmp_path)
    assert message in usage_error([*SMALL, *args], capsys)
    assert not any(tmp_path.iterdir())


def test_an_address_nobody_listens_at_fails_in_one_line_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    address = f"127.0.0.1:{free_port()}"
    assert usage_error([*SMALL, "--address", address], capsys) == f"no Ray cluster at {address}: Connection refused"
    assert usage_error([*SMALL, "--address", "nowhere"], capsys) == "--address must be auto or HOST:PORT, got 'nowhere'"
    assert not any(tmp_path.iterdir())


def test_resume_needs_a_sweep_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert usage_error(["--resume", "nowhere"], capsys) == (
        f"{tmp_path / 'nowhere'} is not a sweep directory (it has no sweep.json)")
    assert not any(tmp_path.iterdir())


def test_the_record_rebuilds_the_same_sweep_without_its_config_file(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What --resume re-parses: relative paths made absolute, the --config file's settings written out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("tau: 0.02\ngamma: 0.95\n")
    argv = [*SMALL, "--config", "base.yaml", "--logdir", "l", "--seeds", "3", "4", "--search", "optuna", "--trials",
            "3", "--space", "lr_actor=1e-4:1e-2:log", "critic_hidden=16x16,32", "batch_size=8:16", "--scheduler",
            "asha", "--grace-period", "2", "--reduction-factor", "2.5", "--max-concurrent", "1", "--name", "r"]
    parser = build_parser()
    sweep, sweep_dir, kept = prepare(parser, parser.parse_args(argv))
    (tmp_path / "base.yaml").unlink()
    assert (sweep.base["tau"], sweep.base["gamma"], sweep.base["logdir"]) == (0.02, 0.95, str(tmp_path / "l" / "r"))
    assert sweep.space["critic_hidden"] == {"choices": [[16, 16], [32]]} and kept == []
    assert plan(build_parser(RaisingParser).parse_args(sweep.argv), sweep_dir) == (sweep, sweep_dir)
    assert not any(tmp_path.iterdir())


def saved_sweep(directory: Path) -> dict:
    """The sweep.json a two-seed, two-value grid writes: the arguments that rebuild it."""
    directory.mkdir(parents=True)
    spec = {"argv": ["--preset", "tutorial", "--episodes=3", f"--logdir={directory / 'logs'}",
                     f"--model-dir={directory / 'model'}", "--threads=1", "--seeds", "0", "1", "--grid",
                     "lr_actor=1e-4,1e-3", "--name=s", f"--storage={directory.parent}"]}
    (directory / "sweep.json").write_text(json.dumps(spec))
    return spec


@pytest.mark.parametrize(("change", "message"), [
    ('{"foo": 1}', "is not a sweep's record: a JSON object of argv, the sweep's arguments"),
    ("[1, 2]", "is not a sweep's record"),
    ('{"argv": "--seeds 0"}', "is not a sweep's record"),
    ('{"argv": [1' + "0" * 5000 + "]}", "cannot read"),
    (["--seeds", "0", "True"], "sweep.json: argument --seeds: invalid int value: 'True'"),
    (["--grid", "seed=1,2"], "sweep.json: --grid: seed is set by the sweep"),
    (["--grid", "tau=0.1,7"], "sweep.json: --grid tau=7: tau must be in (0, 1], got 7.0"),
    (["--nosuch=1"], "sweep.json: unrecognized arguments: --nosuch=1"),
    (["--name=../x"], "sweep.json: --name must be a plain directory name"),
    (["--scheduler=pbt"], "sweep.json: argument --scheduler: invalid choice: 'pbt'"),
])
def test_resume_of_a_damaged_sweep_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    change: object, message: str) -> None:
    """The record goes through a new sweep's checks. `change`: arguments added to the saved ones, or the file's
    whole text."""
    spec = saved_sweep(tmp_path / "s")
    (tmp_path / "s" / "sweep.json").write_text(change if isinstance(change, str) else json.dumps(
        {"argv": spec["argv"] + change}))
    before = sorted(tmp_path.rglob("*"))
    assert message in usage_error(["--resume", str(tmp_path / "s")], capsys)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("results", [
    [1, 2], {"trial_results": 3}, {"trial_results": [{"trial": "001"}]},
    {"trial_results": [{"trial": "001_lr_actor=0.0001,seed=0", "number": 1, "lr_actor": 1e-4, "seed": 0,
                        "status": "DONE", "final_eval": "high", "best_eval": None, "steps": 150, "wall_seconds": 1.0,
                        "node_id": None, "checkpoint": None, "error": None, "evals": []}]},
])
def test_resume_of_a_damaged_results_json_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      results: object) -> None:
    saved_sweep(tmp_path / "s")
    (tmp_path / "s" / "results.json").write_text(json.dumps(results))
    assert "results.json" in usage_error(["--resume", str(tmp_path / "s")], capsys)


def test_a_fifo_as_sweep_json_is_refused_without_reading_it(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "s").mkdir()
    os.mkfifo(tmp_path / "s" / "sweep.json")
    assert "is not a regular file" in usage_error(["--resume", str(tmp_path / "s")], capsys)


def test_importing_the_sweep_sets_no_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray's and Tune's settings are made where Ray starts, not on import."""
    tuning = pytest.importorskip("paddle_ddpg.sweep.tuning", reason="the [sweep] extra")
    for name in tuning.RAY_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    importlib.reload(tuning)
    assert not set(tuning.RAY_SETTINGS) & set(os.environ)


@pytest.mark.subprocess
def test_train_does_not_import_ray() -> None:
    probe = "import sys, paddle_ddpg.train; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], timeout=CLI_TIMEOUT).returncode == 0
