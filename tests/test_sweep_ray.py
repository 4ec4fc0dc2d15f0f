"""End to end on a real Ray: sweeps of tiny runs, their results against the runs' own records and a plain
`train`, ASHA, an Optuna search, crashing trials, Ctrl-C and --resume (with doctored pickles in the sweep
directory), and a two-node cluster on loopback. The argument checks are in test_sweep.py."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle
import psutil
import pytest
from visualdl import LogReader
from visualdl.server import lib as visualdl_lib

from conftest import (CLI_TIMEOUT, cli_env, epoch_rewards, error_lines, free_port, last_json, record_file, run_cli,
                      scalars)
from test_sweep import SMALL

pytestmark = pytest.mark.ray
pytest.importorskip("ray", reason="the sweeps need the [sweep] extra")
GRID = ["--seeds", "0", "1", "--grid", "lr_actor=1e-4,1e-3"]  # 2 configurations x 2 seeds


@dataclass(frozen=True)
class Finished:
    """A sweep command that ended: its output and what it left in `root`."""

    root: Path
    result: subprocess.CompletedProcess[str]

    @property
    def summary(self) -> dict[str, Any]:
        return last_json(self.result.stdout)

    @property
    def record(self) -> dict[str, Any]:
        return json.loads(Path(self.summary["results"]).read_text())

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.record["trial_results"]


def run_sweep_cli(root: Path, *args: str, env: dict[str, str] | None = None) -> Finished:
    return Finished(root, run_cli("sweep", *args, cwd=root, env=env))


def file_hashes(*dirs: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for d in dirs for p in sorted(d.rglob("*"))
            if p.is_file()}


def table_rows(stdout: str) -> dict[str, list[str]]:
    """The trial table's rows by trial number (its first column)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["trial"])
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        rows[line.split()[0]] = line.split()
    return rows


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """2 learning rates x 2 seeds of tiny runs on a local Ray, two at a time."""
    root = tmp_path_factory.mktemp("sweep")
    finished = run_sweep_cli(root, *SMALL, *GRID, "--name", "tiny")
    assert finished.result.returncode == 0, finished.result.stderr
    return finished


def test_tiny_sweep_reports_every_trial_as_its_own_run_recorded_it(tiny: Finished) -> None:
    summary, trials = tiny.summary, tiny.trials
    assert summary["sweep"] == "tiny" and summary["trials"] == 4 and len(trials) == 4
    assert sorted((t["lr_actor"], t["seed"]) for t in trials) == [(1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)]
    table = table_rows(tiny.result.stdout)
    for trial in trials:
        log_dir = tiny.root / "logs" / "tiny" / trial["trial"]
        run_config = json.loads((tiny.root / "model" / "tiny" / trial["trial"] / "config.json").read_text())
        assert (run_config["seed"], run_config["lr_actor"], run_config["threads"]) == (trial["seed"],
                                                                                      trial["lr_actor"], 1)
        evals = scalars(record_file(log_dir), "eval return")
        assert [e["mean"] for e in trial["evals"]] == pytest.approx([v for _, v in evals], rel=1e-6)  # float32
        assert [e["steps"] for e in trial["evals"]] == [50, 100, 150]
        assert (trial["status"], trial["steps"]) == ("DONE", 150)
        assert trial["final_eval"] == trial["evals"][-1]["mean"]
        assert trial["best_eval"] == max(e["mean"] for e in trial["evals"])
        number = trial["trial"].partition("_")[0]
        row = table[number]
        assert row[3:6] == [f"{trial['final_eval']:.1f}", f"{trial['best_eval']:.1f}", "150"] and row[-1] == "DONE"
    with open(Path(summary["results"]).with_name("results.csv")) as f:
        assert [float(r["final_eval"]) for r in csv.DictReader(f)] == [t["final_eval"] for t in trials]
    assert Path(summary["results"]).with_name("curves.png").stat().st_size > 10_000


def test_per_configuration_summary_is_over_the_seeds(tiny: Finished) -> None:
    configs = {c["config"]["lr_actor"]: c for c in tiny.record["configurations"]}
    for lr, config in configs.items():
        finals = [t["final_eval"] for t in tiny.trials if t["lr_actor"] == lr]
        assert config["mean"] == pytest.approx(np.mean(finals))
        assert config["std"] == pytest.approx(np.std(finals, ddof=1))
        half = 12.7062 * np.std(finals, ddof=1) / np.sqrt(2)  # t(0.975, 1 degree of freedom)
        assert config["ci95"] == pytest.approx([np.mean(finals) - half, np.mean(finals) + half], rel=1e-4)
    best = max(configs.values(), key=lambda c: c["mean"])
    assert tiny.summary["best_config"] == best["config"] and tiny.summary["best_mean"] == best["mean"]


@pytest.mark.parametrize("which", [0, -1])  # the first trial, and the last (the second in a reused process)
def test_a_trial_trains_exactly_as_plain_train(tiny: Finished, tmp_path: Path, which: int) -> None:
    trial = tiny.trials[which]
    plain = run_cli("train", *SMALL, "--lr-actor", str(trial["lr_actor"]), "--seed", str(trial["seed"]),
                    "--threads", "1", "--run-name", "plain", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    assert [e["mean"] for e in last_json(plain.stdout)["evals"]] == [e["mean"] for e in trial["evals"]]
    rewards = scalars(record_file(tiny.root / "logs" / "tiny" / trial["trial"]), "episode reward")
    assert [np.float32(r) for r in epoch_rewards(plain.stdout).values()] == [np.float32(v) for _, v in rewards]


def test_visualdl_shows_each_trial_with_its_hyperparameters(tiny: Finished) -> None:
    listed = visualdl_lib.get_hparam_list(LogReader(logdir=str(tiny.root / "logs" / "tiny")))
    assert sorted((item["hparams"]["lr_actor"], item["hparams"]["seed"]) for item in listed) == [
        (1e-4, 0), (1e-4, 1), (1e-3, 0), (1e-3, 1)]
    finals = {(t["lr_actor"], t["seed"]): t["final_eval"] for t in tiny.trials}
    for item in listed:
        assert item["metrics"]["eval return"] == pytest.approx(finals[item["hparams"]["lr_actor"],
                                                                      item["hparams"]["seed"]], rel=1e-6)


def test_asha_stops_a_configuration_that_does_not_learn(tmp_path: Path) -> None:
    """The actor of lr 1e-7 stays at its initial policy while lr 1e-3 improves by the first evaluation; one
    trial at a time, so the good one sets the first rung's cutoff."""
    finished = run_sweep_cli(tmp_path, "--preset", "fast", "--episodes", "6", "--eval-interval", "2",
                             "--eval-episodes", "2", "--learning-starts", "200", "--random-steps", "200",
                             "--actor-hidden", "32", "32", "--critic-hidden", "32", "32", "--batch-size", "64",
                             "--grid", "lr_actor=1e-3,1e-7", "--scheduler", "asha", "--reduction-factor", "2",
                             "--max-concurrent", "1", "--name", "asha")
    assert finished.result.returncode == 0, finished.result.stderr
    good, bad = sorted(finished.trials, key=lambda t: -t["lr_actor"])
    assert (good["status"], good["steps"]) == ("DONE", 1200)
    assert bad["status"] == "STOPPED" and bad["steps"] < good["steps"] and len(bad["evals"]) == 1
    assert bad["evals"][0]["mean"] < good["evals"][0]["mean"]
    assert finished.summary["best_config"] == {"lr_actor": 1e-3}


def test_an_optuna_search_runs_each_sampled_configuration_on_every_seed(tmp_path: Path) -> None:
    finished = run_sweep_cli(tmp_path, *SMALL, "--seeds", "0", "1", "--search", "optuna", "--trials", "2",
                             "--space", "lr_actor=1e-4:1e-2:log", "actor_hidden=16x16,32", "--name", "search")
    assert finished.result.returncode == 0, finished.result.stderr
    assert len(finished.trials) == 4 and all(t["status"] == "DONE" for t in finished.trials)
    configs = finished.record["configurations"]
    assert len(configs) == 2 and all(sorted(c["seeds"]) == [0, 1] for c in configs)
    for trial in finished.trials:
        assert 1e-4 <= trial["lr_actor"] <= 1e-2 and trial["actor_hidden"] in ("16x16", "32")
        run_config = json.loads((tmp_path / "model" / "search" / trial["trial"] / "config.json").read_text())
        assert run_config["lr_actor"] == trial["lr_actor"] and run_config["seed"] == trial["seed"]
        assert run_config["actor_hidden"] == [int(n) for n in trial["actor_hidden"].split("x")]


def test_a_crashing_trial_is_reported_with_the_steps_it_ran_and_the_others_finish(tmp_path: Path) -> None:
    """The learning rate 1e30 takes the critic to inf once learning starts (step 65), with no evaluation before."""
    finished = run_sweep_cli(tmp_path, *SMALL, "--eval-interval", "0", "--grid", "lr_critic=1e-3,1e30",
                             "--name", "crash")
    assert finished.result.returncode == 1, finished.result.stderr
    good, bad = sorted(finished.trials, key=lambda t: t["lr_critic"])
    assert (good["status"], good["steps"]) == ("DONE", 150)
    assert bad["status"] == "ERROR" and "TrainingDiverged" in bad["error"] and 50 <= bad["steps"] < 150
    assert f"ERROR after {bad['steps']} steps, eval nan (traceback in " in finished.result.stdout
    assert table_rows(finished.result.stdout)["002"][-1] == "ERROR"
    assert finished.summary["best_config"] == {"lr_critic": 1e-3}


@pytest.mark.skipif(paddle.device.is_compiled_with_cuda(), reason="needs a Paddle that cannot run on a GPU")
def test_a_trial_that_cannot_start_is_reported(tmp_path: Path) -> None:
    finished = run_sweep_cli(tmp_path, *SMALL, "--grid", "device=cpu,gpu", "--name", "gpu")
    assert finished.result.returncode == 1, finished.result.stderr
    by_device = {t["device"]: t for t in finished.trials}
    assert by_device["gpu"]["status"] == "ERROR" and "CUDA" in by_device["gpu"]["error"]
    assert by_device["gpu"]["steps"] == 0 and by_device["cpu"]["status"] == "DONE"


class Payload:
    """Unpickled, it creates the marker file: what a doctored pickle in a shared sweep directory could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return Path.touch, (self.marker,)


def test_ctrl_c_keeps_the_finished_trials_and_resume_runs_only_the_rest(tmp_path: Path) -> None:
    """Short and long runs two at a time: Ctrl-C once the first short one ends, with a long one mid-run."""
    args = [*SMALL, "--seeds", "0", "1", "--grid", "episodes=2,30", "--name", "cut"]
    proc = subprocess.Popen([sys.executable, "-m", "paddle_ddpg.sweep", *args], cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("[1/4]"):
            proc.send_signal(signal.SIGINT)
            break
    rest, stderr = proc.communicate(timeout=CLI_TIMEOUT)
    assert proc.returncode == 130, stderr
    assert error_lines(stderr)[-1].strip() == f"python -m paddle_ddpg.sweep --resume {tmp_path / 'sweeps' / 'cut'}"
    cut = json.loads(Path(last_json(rest)["results"]).read_text())
    assert cut["interrupted"]
    done = [t["trial"] for t in cut["trial_results"] if t["status"] == "DONE"]
    assert 1 <= len(done) < 4
    pickles = list((tmp_path / "sweeps" / "cut").rglob("*.pkl"))  # Tune's tuner.pkl, the trials' params.pkl
    assert tmp_path / "sweeps" / "cut" / "tuner.pkl" in pickles
    for path in pickles:
        path.write_bytes(pickle.dumps(Payload(tmp_path / "marker")))
    pickle.loads(pickle.dumps(Payload(tmp_path / "probe")))  # the payload works
    assert (tmp_path / "probe").exists()
    kept = file_hashes(*[d / "cut" / name for d in (tmp_path / "model", tmp_path / "logs", tmp_path / "sweeps")
                         for name in done])

    resumed = run_sweep_cli(tmp_path, "--resume", "sweeps/cut")
    assert resumed.result.returncode == 0, resumed.result.stderr
    assert not (tmp_path / "marker").exists()
    assert not resumed.record["interrupted"]
    assert file_hashes(*[d / "cut" / name for d in (tmp_path / "model", tmp_path / "logs", tmp_path / "sweeps")
                         for name in done]) == kept
    assert sorted((t["episodes"], t["seed"], t["status"]) for t in resumed.trials) == [
        (2, 0, "DONE"), (2, 1, "DONE"), (30, 0, "DONE"), (30, 1, "DONE")]
    for trial in resumed.trials:  # a restarted trial's curve is its new run's alone
        assert [e["steps"] for e in trial["evals"]] == [50 * (i + 1) for i in range(trial["episodes"])]
    assert set(table_rows(resumed.result.stdout)) == {t["trial"].partition("_")[0] for t in resumed.trials}


def stop_node(temp_dir: str) -> None:
    """End the processes of the Ray node whose files are in `temp_dir`, and their children, by process id
    (`ray stop` would end every Ray on the machine)."""
    procs = {}
    for p in psutil.process_iter(["cmdline"]):
        if p.pid != os.getpid() and temp_dir in " ".join(p.info["cmdline"] or []):
            procs[p.pid] = p
            procs.update({c.pid: c for c in p.children(recursive=True)})
    for p in procs.values():
        p.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=3)
    for p in alive:
        p.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


BOTH_CPUS_SEEN = """
import sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False)
deadline = time.monotonic() + 60
while ray.cluster_resources().get("CPU", 0) < 2:
    if time.monotonic() > deadline:
        sys.exit(f"the cluster has {ray.cluster_resources()}")
    time.sleep(0.2)
"""


@pytest.fixture
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker node of one CPU each on this machine, joined over loopback with a token of their
    own; yields the head's address and the environment that may join it."""
    env = {**cli_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0"}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    port = free_port()
    # Short paths: Ray's socket paths under the temp dir must fit the 107 bytes a Unix socket name allows.
    temp_dirs = [tempfile.mkdtemp(prefix="rayh", dir="/tmp"), tempfile.mkdtemp(prefix="rayw", dir="/tmp")]
    commands = [
        [ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false",
         "--temp-dir", temp_dirs[0]],
        [ray_cli, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--temp-dir", temp_dirs[1],
         "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port()),
         "--min-worker-port", "21000", "--max-worker-port", "21999"],
    ]
    try:
        for command in commands:
            started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT)
            assert started.returncode == 0, started.stderr
        # `ray start` returns before the worker's CPU reaches the head: a sweep started at once could see one.
        joined = subprocess.run([sys.executable, "-c", BOTH_CPUS_SEEN, f"127.0.0.1:{port}"], env=env,
                                capture_output=True, text=True, timeout=CLI_TIMEOUT)
        assert joined.returncode == 0, joined.stderr
        yield f"127.0.0.1:{port}", env
    finally:
        for temp_dir in temp_dirs:
            stop_node(temp_dir)


def test_the_same_sweep_runs_on_a_two_node_cluster(tmp_path: Path, two_nodes: tuple[str, dict[str, str]]) -> None:
    """Two trials, one CPU per node: each node runs one. The trials are long enough (seconds, not the tiny runs'
    fraction of one) for the worker node's actor to start before the head's trial ends: Tune hands a finished
    trial's actor to a trial whose own actor is still starting, so trials shorter than an actor's start all
    run on the first node."""
    address, env = two_nodes
    longer = [*SMALL, "--episodes", "300", "--eval-interval", "50", "--log-interval", "100"]
    finished = run_sweep_cli(tmp_path, *longer, "--seeds", "0", "--grid", "lr_actor=1e-4,1e-3", "--name", "cluster",
                             "--address", address, env=env)
    assert finished.result.returncode == 0, finished.result.stderr
    assert [t["status"] for t in finished.trials] == ["DONE"] * 2
    assert len({t["node_id"] for t in finished.trials}) == 2
