"""The sweep's trials on Ray Tune: each an ordinary `train` run that reports its evaluations to Tune.

Fresh or resumed, a sweep runs what its record does not show as ended: the planned trials (every grid point and
seed; a search's unfinished seeds) as one Tuner, then the configurations a search has still to sample as another.
Tune's own restore is never used: it unpickles the sweep directory's tuner.pkl, which could run any code.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import paddle
import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint
from paddle_ddpg.config import UsageError, error_summary
from paddle_ddpg.device import usable_cpus
from paddle_ddpg.logs import RunLog
from paddle_ddpg.sweep.arguments import Sweep, decode, encode, trial_name
from paddle_ddpg.train import train

METRIC = "eval_return"  # what Tune, its scheduler and its searcher compare: the noise-free evaluation mean
VDL_METRICS = ["eval return", "episode reward"]  # the run's VisualDL tags the hyperparameter view compares
# Read from the driver's environment when Ray starts here (its raylet and workers inherit them) and when Tune
# runs, so set where Ray starts, never on import; a value the user set wins.
RAY_SETTINGS = {"RAY_USAGE_STATS_ENABLED": "0",  # no usage report (and no prompt about it)
                "RAY_AIR_NEW_OUTPUT": "0",  # the reporter that verbose=0 silences
                "RAY_worker_niceness": "0",  # trials at a plain train's priority, not Ray's nice 15
                "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}  # JSON logs only: no tensorboardX, and with it torch


def point_of(sweep: Sweep, params: dict[str, Any]) -> dict[str, Any]:
    """A trial's varied fields (as Tune carries them) and seed: a planned trial holds them as its "point"; a
    searched configuration repeats once per seed, numbered by Tune's Repeater."""
    if "point" in params:
        return dict(params["point"])
    return {**{name: params[name] for name in sweep.varied}, "seed": sweep.seeds[params["__trial_index__"]]}


def run_trial(params: dict[str, Any], sweep: Sweep) -> None:
    """One trial: an ordinary training run that reports each evaluation to Tune, then its summary."""
    # Paddle's dynamic-graph mode is per thread and on only in the thread that imported Paddle; Tune runs
    # each trial in a thread of its own, and a reused worker runs the next trial in another.
    paddle.disable_static()
    point = point_of(sweep, params)
    values = {name: decode(name, point[name]) for name in sweep.varied}
    config = sweep.config().updated({**values, "seed": point["seed"], "run_name": tune.get_context().get_trial_name()},
                                    source="sweep")
    node, evals = ray.get_runtime_context().get_node_id(), []

    def report(entry: dict[str, Any]) -> None:
        evals.append({k: entry[k] for k in ("steps", "mean", "train_seconds")})
        tune.report({METRIC: entry["mean"], "steps": entry["steps"], "node_id": node, "evals": evals})

    run_dir, log_dir = Path(config.model_dir) / config.run_name, Path(config.logdir) / config.run_name
    try:  # overwrite: a trial that --resume runs again begins from nothing
        summary = train(config, overwrite=True, on_eval=report)
    except Exception:  # how far it ran, from its last checkpoint or evaluation; the error itself goes to Tune
        saved = load_checkpoint(run_dir / CHECKPOINT_NAME)["steps"] if (run_dir / CHECKPOINT_NAME).is_file() else 0
        tune.report({METRIC: evals[-1]["mean"] if evals else math.nan, "node_id": node, "evals": evals,
                     "steps": max([saved, *(e["steps"] for e in evals)])})
        raise
    finally:  # the hyperparameters go into the run's own record, which VisualDL's view compares
        if any(log_dir.glob("vdlrecords.*.log")):
            log = RunLog(log_dir)
            log.writer.add_hparams({k: point[k] for k in [*sweep.varied, "seed"]}, VDL_METRICS)
            log.close()
    tune.report({METRIC: summary["final_eval_mean"], "steps": summary["steps"], "node_id": node, "evals": evals,
                 "finished": True, "wall_seconds": summary["wall_seconds"], "checkpoint": summary["checkpoint"]})


def start_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a Ray on this machine's CPUs; quietly either way (trial output
    stays in Ray's session logs, where Tune's error files point)."""
    for name, value in RAY_SETTINGS.items():
        os.environ.setdefault(name, value)
    where = dict(address=address) if address else dict(num_cpus=usable_cpus(), include_dashboard=False)
    try:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, **where)
    except ConnectionError as exc:
        raise UsageError(f"cannot join the Ray cluster at {address}: {error_summary(exc.__cause__ or exc)}") from None
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # a crashed trial's traceback is in its error file


def row(sweep: Sweep, name: str, point: dict[str, Any], last: dict[str, Any], status: str,
        error: str | None) -> dict[str, Any]:
    """A trial's line of the results: its settings, status, numbers and learning curve."""
    evals = last.get("evals", [])
    return {"trial": name, "number": point["number"], **{k: point[k] for k in sweep.varied}, "seed": point["seed"],
            "status": status, "final_eval": last[METRIC] if status == "DONE" else None,
            "best_eval": max((e["mean"] for e in evals), default=None), "steps": last.get("steps", 0),
            "wall_seconds": last.get("wall_seconds", round(last.get("time_total_s", 0.0), 2)),
            "node_id": last.get("node_id"), "checkpoint": last.get("checkpoint"), "error": error, "evals": evals}


class Progress(tune.Callback):
    """Numbers and names the trials, prints a line as each ends (Tune's own reporting is off) and records it."""

    def __init__(self, sweep: Sweep, rows: list[dict[str, Any]], record: Callable[[list], None]) -> None:
        self.sweep, self.rows, self.record = sweep, rows, record  # rows: the trials ended so far, earlier runs too
        self.ids: dict[str, int] = {}  # Tune's trial id -> number, in the order Tune created the trials
        self.points: dict[str, dict[str, Any]] = {}  # trial name -> number, varied fields and seed
        self.status: dict[str, tuple[str, str | None]] = {}  # trial name -> status and error, as it ended
        self.next = max((r["number"] for r in rows), default=0) + 1

    def __deepcopy__(self, memo: dict) -> Progress:  # Tune copies its spec, the namer with it, for every trial
        return self

    def name(self, trial: Trial) -> str:
        point = point_of(self.sweep, trial.config)
        number = self.ids[trial.trial_id] = point.pop("number", None) or self.ids.get(trial.trial_id) or self.next
        self.next = max(self.next, number + 1)
        self.points[name := trial_name(number, point)] = {"number": number, **point}
        return name

    def ended(self, trial: Trial, status: str, what: str, error: str | None = None) -> None:
        self.status[str(trial)] = status, error
        self.rows.append(row(self.sweep, str(trial), self.points[str(trial)], trial.last_result,
                             status, error))
        print(f"[{len(self.rows)}/{self.sweep.total_trials()}] {trial}: {what}", flush=True)
        self.record(self.rows)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last = trial.last_result
        if last.get("finished"):
            self.ended(trial, "DONE", f"final eval {last[METRIC]:.1f} after {last['steps']} steps, "
                                      f"{last['wall_seconds']:.0f} s")
        else:
            self.ended(trial, "STOPPED", f"stopped by the scheduler at {last.get('steps', 0)} steps "
                                         f"(eval {last.get(METRIC, math.nan):.1f})")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        text = Path(trial.error_file).read_text() if trial.error_file else "unknown error"  # as Tune just wrote it
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        self.ended(trial, "ERROR", f"ERROR after {trial.last_result.get('steps', 0)} steps (traceback in "
                                   f"{trial.path}/error.txt)", error=lines[-1])


def remaining(sweep: Sweep, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """What is left to run: the planned trials (number, varied fields, seed) and the configurations to sample."""
    ended = {tuple(r[k] for k in [*sweep.varied, "seed"]) for r in rows}
    if sweep.space:
        configs = list(dict.fromkeys(tuple(r[k] for k in sweep.varied) for r in rows))
        planned = [(c, s) for c in configs for s in sweep.seeds]
        todo = sweep.trials - len(configs)
    else:
        configs = itertools.product(*[[encode(k, v) for v in values] for k, values in sweep.grid.items()])
        planned = list(itertools.product(configs, sweep.seeds))
        todo = 0
    numbers = itertools.count(max((r["number"] for r in rows), default=0) + 1)
    points = [{"number": i + 1 if not sweep.space else next(numbers), **dict(zip(sweep.varied, c)), "seed": s}
              for i, (c, s) in enumerate(planned) if (*c, s) not in ended]
    return points, todo


def tuners(sweep: Sweep, sweep_dir: Path, rows: list[dict[str, Any]], progress: Progress) -> Iterator[tune.Tuner]:
    points, todo = remaining(sweep, rows)
    trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=sweep), {"cpu": sweep.cpus_per_trial})
    # ASHA's rungs counted in reports, at most 10**6 of them; every run still ends by its own budget
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=10**6, grace_period=sweep.grace_period,
                              reduction_factor=sweep.reduction_factor) if sweep.scheduler else None
    run_config = tune.RunConfig(name=sweep_dir.name, storage_path=str(sweep_dir.parent), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=0),
                                callbacks=[JsonLoggerCallback(), progress])
    common = dict(metric=METRIC, mode="max", scheduler=scheduler, reuse_actors=True, trial_name_creator=progress.name,
                  trial_dirname_creator=progress.name, max_concurrent_trials=sweep.max_concurrent or None)
    if points:
        yield tune.Tuner(trainable, param_space={"point": tune.grid_search(points)}, run_config=run_config,
                         tune_config=tune.TuneConfig(**common))
    if todo:  # Optuna learns from the finished configurations: their means over the seeds
        means: dict[tuple, list[float]] = {}
        for r in rows:
            if r["status"] == "DONE":
                means.setdefault(tuple(r[k] for k in sweep.varied), []).append(r["final_eval"])
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        search = OptunaSearch(seed=sweep.seeds[0] + len(rows),
                              points_to_evaluate=[dict(zip(sweep.varied, c)) for c in means] or None,
                              evaluated_rewards=[sum(v) / len(v) for v in means.values()] or None)
        space = {name: tune.choice([encode(name, v) for v in spec["choices"]]) if "choices" in spec
                 else ((tune.lograndint if spec["log"] else tune.randint)(spec["low"], spec["high"] + 1)  # open end
                       if isinstance(spec["low"], int) else (tune.loguniform if spec["log"] else tune.uniform)(
                           spec["low"], spec["high"])) for name, spec in sweep.space.items()}
        yield tune.Tuner(trainable, param_space=space, run_config=run_config, tune_config=tune.TuneConfig(
            search_alg=Repeater(search, repeat=len(sweep.seeds)), num_samples=todo * len(sweep.seeds), **common))


def run_sweep(sweep: Sweep, sweep_dir: Path, address: str | None = None, rows: list[dict[str, Any]] | None = None,
              record: Callable[[list], None] = lambda rows: None) -> list[dict[str, Any]]:
    """Run what is left of the sweep after the ended trials `rows` (all of it for a new one) and return one row
    per trial, in the order of their numbers. Ctrl-C ends it early, keeping the finished trials. Joins the cluster
    at `address`, or starts a Ray here and stops it."""
    out, progress = list(rows or []), Progress(sweep, list(rows or []), record)
    start_ray(address)
    try:
        record(out)
        for tuner in tuners(sweep, sweep_dir, out, progress):
            new = [row(sweep, name, progress.points[name], r.metrics, *progress.status.get(name, ("UNFINISHED", None)))
                   for r in tuner.fit() if (name := Path(r.path).name)]  # fit() returns at Ctrl-C: UNFINISHED trials
            out += new
            if any(r["status"] == "UNFINISHED" for r in new):
                break
    finally:
        ray.shutdown()
    return sorted(out, key=lambda r: r["number"])
