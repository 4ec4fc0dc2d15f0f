"""The trials on Ray Tune, each a `train` run reporting its evaluations. Tune's restore is never used: it unpickles
tuner.pkl, which could run any code; a resumed sweep is a new Tuner of the trials that had not ended."""

from __future__ import annotations

import itertools
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import paddle
import ray
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.logger import JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import Repeater
from ray.tune.search.optuna import OptunaSearch

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint
from paddle_ddpg.config import Config, UsageError, error_summary
from paddle_ddpg.device import usable_cpus
from paddle_ddpg.runfiles import RunLog
from paddle_ddpg.sweep import SPEC_FILE, Sweep, encode, short
from paddle_ddpg.train import train

METRIC = "eval_return"  # what Tune, its scheduler and its searcher compare: the noise-free evaluation mean
# Ray's processes and Tune read these from the driver's environment: set where Ray starts; a user's value wins.
RAY_SETTINGS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0",  # no usage report; verbose=0 silences
                "RAY_worker_niceness": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}  # plain priority; no torch


def point_of(sweep: Sweep, params: dict[str, Any]) -> dict[str, Any]:
    """A planned trial's number, varied fields and seed, or a searched one's fields and its seed by Repeater."""
    return dict(params["point"]) if "point" in params else {
        **{k: params[k] for k in sweep.varied}, "seed": sweep.seeds[params["__trial_index__"]]}


def run_trial(params: dict[str, Any], sweep: Sweep) -> None:
    paddle.disable_static()  # dynamic mode is per thread, and Tune runs each trial in a thread of its own
    point = point_of(sweep, params)
    values = {k: [int(v) for v in point[k].split("x")] if isinstance(sweep.base[k], list) else point[k]
              for k in sweep.varied}  # a list field's sizes as encode() wrote them
    config = Config().updated({**sweep.base, **values, "seed": point["seed"],
                               "run_name": tune.get_context().get_trial_name()}, source=SPEC_FILE)
    node, evals, run_dir = ray.get_runtime_context().get_node_id(), [], Path(config.model_dir) / config.run_name

    def report(**result: Any) -> None:
        tune.report({METRIC: evals[-1]["mean"] if evals else math.nan, "node_id": node, "evals": evals, **result})

    def on_eval(entry: dict[str, Any]) -> None:
        evals.append({k: entry[k] for k in ("steps", "mean", "train_seconds")})
        report(steps=entry["steps"])

    try:  # overwrite: a trial that --resume runs again begins from nothing
        summary = train(config, overwrite=True, on_eval=on_eval)
    except Exception:  # how far it ran, by its last checkpoint or evaluation; the error itself goes to Tune
        saved = load_checkpoint(run_dir / CHECKPOINT_NAME)["steps"] if (run_dir / CHECKPOINT_NAME).is_file() else 0
        report(steps=max([saved, *(e["steps"] for e in evals)]))
        raise
    finally:  # the hyperparameters go into the run's own record, which VisualDL's view compares
        if any((log_dir := Path(config.logdir) / config.run_name).glob("vdlrecords.*.log")):
            log = RunLog(log_dir)
            log.writer.add_hparams({k: point[k] for k in [*sweep.varied, "seed"]}, ["eval return", "episode reward"])
            log.close()
    report(**{METRIC: summary["final_eval_mean"], "finished": True},
           **{k: summary[k] for k in ("steps", "wall_seconds", "checkpoint")})


def start_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a Ray on this machine's CPUs; trial output stays in Ray's logs."""
    os.environ.update({k: v for k, v in RAY_SETTINGS.items() if k not in os.environ})
    where = dict(address=address) if address else dict(num_cpus=usable_cpus(), include_dashboard=False)
    try:
        ray.init(logging_level=logging.ERROR, log_to_driver=False, **where)
    except ConnectionError as exc:
        raise UsageError(f"cannot join the Ray cluster at {address}: {error_summary(exc.__cause__ or exc)}") from None
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)  # a crashed trial's traceback is in its error file


class Progress(tune.Callback):
    """Names and numbers the trials; as each ends, prints a line (Tune's own reporting is off) and records its row."""

    def __init__(self, sweep: Sweep, rows: list[dict[str, Any]], record: Callable[[list], None]) -> None:
        self.sweep, self.rows, self.record = sweep, rows, record  # rows: the trials ended so far, earlier runs too
        self.points: dict[str, dict[str, Any]] = {}  # trial name -> number, varied fields and seed
        self.next = max((r["number"] for r in rows), default=0) + 1

    def __deepcopy__(self, memo: dict) -> Progress:  # Tune copies its spec, the namer with it, for every trial
        return self

    def name(self, trial: Trial) -> str:  # also the run's name
        point = point_of(self.sweep, trial.config)
        self.next = max(self.next, (number := point.pop("number", None) or self.next) + 1)
        name = (f"{number:03d}_" + ",".join(f"{k}={short(v)}" for k, v in point.items())).replace("/", "-")[:200]
        self.points[name] = {"number": number, **point}
        return name

    def row(self, name: str, last: dict[str, Any], status: str, error: str | None = None) -> dict[str, Any]:
        evals = last.get("evals", [])
        return {"trial": name, **self.points[name], "status": status, "final_eval": last[METRIC] if status == "DONE"
                else None, "best_eval": max((e["mean"] for e in evals), default=None), "steps": last.get("steps", 0),
                "wall_seconds": last.get("wall_seconds", round(last.get("time_total_s", 0.0), 2)),
                "node_id": last.get("node_id"), "checkpoint": last.get("checkpoint"), "error": error, "evals": evals}

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last, error = trial.last_result, None
        if trial.status == Trial.ERROR:  # its last line, as Tune just wrote it
            text = Path(trial.error_file).read_text() if trial.error_file else "unknown error"
            error = [s for s in map(str.strip, text.splitlines()) if s][-1]
        status = "ERROR" if error else "DONE" if last.get("finished") else "STOPPED"  # by the scheduler
        self.rows.append(row := self.row(str(trial), last, status, error))
        print(f"[{len(self.rows)}/{self.sweep.total_trials()}] {trial}: {status} after {row['steps']} steps, eval "
              f"{last.get(METRIC, math.nan):.1f}" + (f" (traceback in {trial.path}/error.txt)" if error else ""),
              flush=True)
        self.record(self.rows)

    on_trial_error = on_trial_complete


def run_sweep(sweep: Sweep, sweep_dir: Path, address: str | None = None, rows: list[dict[str, Any]] | None = None,
              record: Callable[[list], None] = lambda rows: None) -> list[dict[str, Any]]:
    """Run what is left after the ended trials `rows`, on the cluster at `address` or a Ray started here: the planned
    trials (a grid, or a resumed search's missing seeds), then the configurations a search has still to sample. A row
    per trial, by number; Ctrl-C ends it early, keeping the finished trials."""
    progress, unfinished = Progress(sweep, list(rows or []), record), []
    configs = (dict.fromkeys(tuple(r[k] for k in sweep.varied) for r in progress.rows) if sweep.space else
               list(itertools.product(*[[encode(v) for v in values] for values in sweep.grid.values()])))
    kept, numbers = {tuple(r[k] for k in [*sweep.varied, "seed"]) for r in progress.rows}, (
        itertools.repeat(None) if sweep.space else itertools.count(1))  # a search's: as Tune names them
    points = [{"number": n, **dict(zip(sweep.varied, c)), "seed": s}
              for n, (c, s) in zip(numbers, itertools.product(configs, sweep.seeds)) if (*c, s) not in kept]
    trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=sweep), {"cpu": sweep.cpus_per_trial})
    run_config = tune.RunConfig(name=sweep_dir.name, storage_path=str(sweep_dir.parent), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=0),
                                callbacks=[JsonLoggerCallback(), progress])
    # ASHA's rungs are counted in reports; each run still ends by its own budget
    asha = ASHAScheduler(time_attr="training_iteration", max_t=10**6, **sweep.asha) if sweep.asha else None
    common = dict(metric=METRIC, mode="max", reuse_actors=True, trial_name_creator=progress.name,
                  trial_dirname_creator=str, max_concurrent_trials=sweep.max_concurrent or None, scheduler=asha)
    tuners = [({"point": tune.grid_search(points)}, {})] if points else []
    if sweep.space and (todo := sweep.trials - len(configs)):
        space = {k: CategoricalDistribution([encode(v) for v in s["choices"]]) if "choices" in s else (
            IntDistribution if isinstance(s["low"], int) else FloatDistribution)(**s) for k, s in sweep.space.items()}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna_search = OptunaSearch(space, METRIC, "max", seed=sweep.seeds[0] + len(progress.rows))
        tuners.append(({}, dict(search_alg=Repeater(optuna_search, len(sweep.seeds)),
                                num_samples=todo * len(sweep.seeds))))
    start_ray(address)
    try:
        record(progress.rows)
        for param_space, settings in tuners:
            results = tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                                 tune_config=tune.TuneConfig(**common, **settings)).fit()  # returns at Ctrl-C too
            ended = {r["trial"] for r in progress.rows}
            if unfinished := [progress.row(name, r.metrics, "UNFINISHED") for r in results
                              if (name := Path(r.path).name) not in ended]:
                break
    finally:
        ray.shutdown()
    return sorted(progress.rows + unfinished, key=lambda r: r["number"])
