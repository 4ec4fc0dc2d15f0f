"""Many seeds and hyperparameter sweeps as Ray Tune trials: `python -m paddle_ddpg.sweep`.

Each trial is an ordinary training run (`paddle_ddpg.train.train`) that reports every noise-free
evaluation to Tune. Without --address the sweep starts a Ray of its own on this machine and stops it at the
end; with --address it joins a running Ray cluster and the same command spreads its trials over the
cluster's machines. Ray is imported here only, so `python -m paddle_ddpg.train` never loads it.

    python -m paddle_ddpg.sweep --preset fast --seeds 0 1 2 3 --grid lr_actor=5e-4,1e-3 tau=0.005,0.01
    python -m paddle_ddpg.sweep --preset fast --search optuna --trials 20 --space lr_actor=1e-5:1e-2:log \\
        batch_size=64,128,256 --scheduler asha
"""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import argparse
import csv
import dataclasses
import functools
import itertools
import json
import logging
import math
import os
import shlex
import socket
import sys
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Ray reads these when it starts and when Tune runs; a value the user set wins.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (and no prompt about it)
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the reporter that verbose=0 silences
# Ray starts its workers at nice 15, below everything else on the machine; a trial is an ordinary run and
# gets a plain `train`'s priority (on a Ray this command starts; a cluster's nodes keep their own setting).
os.environ.setdefault("RAY_worker_niceness", "0")
# Tune's results in JSON only (what ExperimentAnalysis reads back): its TensorBoard logger would import
# tensorboardX, and with it torch where torch is installed.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import paddle  # noqa: E402
import ray  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.experiment import Trial  # noqa: E402
from ray.tune.logger import JsonLoggerCallback  # noqa: E402
from ray.tune.schedulers import ASHAScheduler  # noqa: E402
from ray.tune.search import Repeater  # noqa: E402
from ray.tune.search.optuna import OptunaSearch  # noqa: E402

from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config  # noqa: E402
from paddle_ddpg.config import PRESETS, Config, UsageError, error_summary, field_types  # noqa: E402
from paddle_ddpg.device import usable_cpus  # noqa: E402
from paddle_ddpg.env import make_env  # noqa: E402
from paddle_ddpg.files import SaveError, atomic_write  # noqa: E402
from paddle_ddpg.logs import RunLog  # noqa: E402
from paddle_ddpg.train import PLACE, train  # noqa: E402

METRIC = "eval_return"  # what Tune, its scheduler and its searcher compare: the noise-free evaluation mean
CONFIDENCE = 0.95
SPEC_FILE = "sweep.json"  # the sweep's settings, beside Tune's state in the sweep directory, for --resume
# Set by the sweep for every trial: where a run lives, and its seed (--seeds).
SWEEP_OWNED = ("seed", *PLACE)
# A bound on the rungs of ASHA's ladder, counted in evaluations; every run still ends by its own budget.
ASHA_MAX_EVALS = 10**6
VDL_METRICS = ["eval return", "episode reward"]  # the run's VisualDL tags the hyperparameter view compares


@dataclass(frozen=True)
class Sweep:
    """What a sweep runs: one base run, its seeds and the fields it varies; saved as sweep.json."""

    name: str
    preset: str
    base: dict[str, Any]  # Config.to_dict() of the base run; logdir and model_dir are the sweep's, absolute
    seeds: list[int]
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # field -> values (tuples as lists)
    # field -> {"choices": [...]} or {"low": ..., "high": ..., "log": bool}
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    trials: int = 0  # configurations the search samples
    scheduler: str = ""  # "asha", or "" to run every trial to its end
    grace_period: int = 1
    reduction_factor: float = 3.0
    cpus_per_trial: int = 1
    max_concurrent: int = 0  # 0: as many as the CPUs allow
    command: str = ""

    @property
    def varied(self) -> list[str]:
        return [*self.grid, *self.space]

    def config(self) -> Config:
        return Config().updated(self.base, source=SPEC_FILE)

    def seed_of(self, params: dict[str, Any]) -> int:
        """A grid trial carries its seed; a searched configuration repeats once per seed (Tune's Repeater)."""
        return params["seed"] if "seed" in params else self.seeds[params["__trial_index__"]]

    def values_of(self, params: dict[str, Any]) -> dict[str, Any]:
        """The varied fields of a trial as Config takes them."""
        return {name: decode(name, params[name]) for name in self.varied}

    def trial_config(self, params: dict[str, Any], run_name: str) -> Config:
        return self.config().updated({**self.values_of(params), "seed": self.seed_of(params),
                                      "run_name": run_name}, source="sweep")

    def hparams(self, params: dict[str, Any]) -> dict[str, Any]:
        """The trial's varied fields and seed as VisualDL's hyperparameter view takes them (str, int, float)."""
        return {**{name: params[name] for name in self.varied}, "seed": self.seed_of(params)}

    def total_trials(self) -> int:
        if self.space:
            return self.trials * len(self.seeds)
        return math.prod(len(v) for v in self.grid.values()) * len(self.seeds)


def encode(name: str, value: Any) -> Any:
    """A field's value as Tune and Optuna carry it: sizes of a tuple field as text, "64x64", since Optuna's
    choices must be plain numbers or strings."""
    if _is_tuple_field(name):
        return "x".join(str(v) for v in value)
    return value


def decode(name: str, value: Any) -> Any:
    if _is_tuple_field(name):
        return [int(v) for v in value.split("x")]
    return value


def _is_tuple_field(name: str) -> bool:
    return typing.get_origin(field_types()[name]) is tuple


class _FieldParser(Parser):
    """The train CLI's flags, raising instead of exiting: it parses one --grid or --space value at a time."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(message)


def _field_parser() -> argparse.ArgumentParser:
    parser = _FieldParser(add_help=False)
    add_config_arguments(parser)
    return parser


def parse_value(name: str, text: str, option: str, base: Config) -> Any:
    """`text` parsed exactly as the field's own flag parses it, then checked by Config as that flag would be;
    a tuple field's sizes are joined by x (64x64)."""
    flag = "--" + name.replace("_", "-")
    words = [flag, *text.split("x")] if _is_tuple_field(name) else [f"{flag}={text}"]
    try:
        value = getattr(_field_parser().parse_args(words), name)
        base.updated({name: value}, source=option).validate()
    except UsageError as exc:
        raise UsageError(f"{option} {name}={text}: {exc}") from None
    return value


def _split_item(item: str, option: str) -> tuple[str, str]:
    name, sep, text = item.partition("=")
    if not sep or not name or not text:
        raise UsageError(f"{option} takes FIELD=VALUES, got {item!r}")
    if name not in field_types():
        raise UsageError(f"{option}: unknown field {name!r} (the fields are the flags of python -m "
                         "paddle_ddpg.train --help, with underscores)")
    if name in SWEEP_OWNED:
        raise UsageError(f"{option}: {name} is set by the sweep for each trial"
                         + (" (give seeds with --seeds)" if name == "seed" else ""))
    return name, text


def parse_grid(items: list[str], base: Config) -> dict[str, list[Any]]:
    """FIELD=V1,V2,... items; every combination of the values is one configuration."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, text = _split_item(item, "--grid")
        if name in grid:
            raise UsageError(f"--grid: {name} given twice")
        values = [parse_value(name, word, "--grid", base) for word in text.split(",")]
        if len({json.dumps(v) for v in values}) < len(values):
            raise UsageError(f"--grid {item}: a value is repeated")
        grid[name] = values
    for combination in itertools.product(*grid.values()):  # fields that must agree, such as batch and memory
        values = dict(zip(grid, combination))
        try:
            base.updated(values, source="--grid").validate()
        except UsageError as exc:
            shown = " ".join(f"{k}={encode(k, v)}" for k, v in values.items())
            raise UsageError(f"--grid {shown}: {exc}") from None
    return grid


def parse_space(items: list[str], base: Config) -> dict[str, dict[str, Any]]:
    """FIELD=LOW:HIGH[:log] (a number field, both ends included) or FIELD=V1,V2,... (choices)."""
    space: dict[str, dict[str, Any]] = {}
    kinds = field_types()
    for item in items:
        name, text = _split_item(item, "--space")
        if name in space:
            raise UsageError(f"--space: {name} given twice")
        if ":" not in text:
            space[name] = {"choices": [parse_value(name, word, "--space", base) for word in text.split(",")]}
            continue
        parts = text.split(":")
        if kinds[name] not in (int, float) or len(parts) not in (2, 3) or parts[2:] not in ([], ["log"]):
            raise UsageError(f"--space {item}: a range is LOW:HIGH or LOW:HIGH:log, of an int or float field")
        low, high = (parse_value(name, word, "--space", base) for word in parts[:2])
        log = parts[2:] == ["log"]
        if not low < high:
            raise UsageError(f"--space {item}: the low end must be below the high end")
        if log and low <= 0:
            raise UsageError(f"--space {item}: a log range needs a positive low end")
        space[name] = {"low": low, "high": high, "log": log}
    return space


def param_space(sweep: Sweep) -> dict[str, Any]:
    """Tune's param_space: grid_search over every grid field and the seeds, or the search's distributions."""
    if not sweep.space:
        return {**{name: tune.grid_search([encode(name, v) for v in values]) for name, values in sweep.grid.items()},
                "seed": tune.grid_search(sweep.seeds)}
    space = {}
    for name, spec in sweep.space.items():
        if "choices" in spec:
            space[name] = tune.choice([encode(name, v) for v in spec["choices"]])
        elif isinstance(spec["low"], int):  # randint's high end is open
            space[name] = (tune.lograndint if spec["log"] else tune.randint)(spec["low"], spec["high"] + 1)
        else:
            space[name] = (tune.loguniform if spec["log"] else tune.uniform)(spec["low"], spec["high"])
    return space


def trial_name(sweep: Sweep, trial: Trial) -> str:
    """`<number>_<field>=<value>,...,seed=<seed>`: a trial's Tune name, directory and run name (so
    `visualdl --logdir <logdir>/<sweep>` labels each curve with its settings)."""
    params = trial.config
    shown = [f"{k}={_short(params[k])}" for k in sweep.varied] + [f"seed={sweep.seed_of(params)}"]
    return f"{creation_number(trial):03d}_{','.join(shown)}".replace("/", "-")[:200]


def creation_number(trial: Trial) -> int:
    """The trial's place in the order Tune created the trials: its experiment tag starts with it."""
    return int(trial.experiment_tag.partition("_")[0])


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def run_trial(params: dict[str, Any], sweep: Sweep) -> None:
    """One trial: an ordinary training run that reports each evaluation to Tune, then its summary."""
    # Paddle's dynamic-graph mode is per thread and on only in the thread that imported Paddle; Tune runs
    # each trial in a thread of its own, and a reused worker runs the next trial in another.
    paddle.disable_static()
    config = sweep.trial_config(params, tune.get_context().get_trial_name())
    node = ray.get_runtime_context().get_node_id()

    def report(entry: dict[str, float]) -> None:
        tune.report({METRIC: entry["mean"], "eval_std": entry["std"], "steps": entry["steps"],
                     "episodes": entry["episodes"], "train_seconds": entry["train_seconds"], "node_id": node,
                     "finished": False})

    log_dir = Path(config.logdir) / config.run_name
    try:
        # overwrite: a trial that --resume restarts begins again from nothing, as Tune restarts it
        summary = train(config, overwrite=True, on_eval=report)
    finally:
        # Into the run's own record after the run has closed it (also when the scheduler stopped it), since
        # VisualDL's hyperparameter view compares the metrics of the run directory holding the hparams.
        if any(log_dir.glob("vdlrecords.*.log")):
            log = RunLog(log_dir)
            log.writer.add_hparams(sweep.hparams(params), VDL_METRICS)
            log.close()
    tune.report({METRIC: summary["final_eval_mean"], "eval_std": summary["final_eval_std"],
                 "steps": summary["steps"], "episodes": summary["episodes"], "node_id": node, "finished": True,
                 "best_eval_mean": summary["best_eval_mean"], "wall_seconds": summary["wall_seconds"],
                 "train_seconds": summary["train_seconds"], "learn_steps": summary["learn_steps"],
                 "checkpoint": summary["checkpoint"], "logdir": summary["logdir"]})


def check_address(address: str) -> None:
    """Fail at once on an address nothing listens at: Ray itself retries it for minutes."""
    if address == "auto":
        return
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--address must be auto or HOST:PORT, got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"no Ray cluster at {address}: {exc.strerror or exc}") from None


def start_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a Ray on this machine's CPUs; quietly either way (trial
    output stays in Ray's session logs, where Tune's error files point)."""
    options: dict[str, Any] = dict(logging_level=logging.ERROR, log_to_driver=False)
    if address is None:
        ray.init(num_cpus=usable_cpus(), include_dashboard=False, **options)
    else:
        check_address(address)
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            cause = exc.__cause__ or exc
            raise UsageError(f"cannot join the Ray cluster at {address}: {error_summary(cause)}") from None
    # Tune logs each crashed trial's traceback; the progress line names its file and the table its error.
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


class Progress(tune.Callback):
    """A line on stdout as each trial ends (Tune's own reporting is off)."""

    def __init__(self, sweep: Sweep) -> None:
        self.sweep = sweep
        self.total = sweep.total_trials()

    def line(self, trials: list[Trial], trial: Trial, what: str) -> None:
        ended = sum(t.is_finished() for t in trials if t is not trial) + 1  # a resumed sweep's earlier ones too
        print(f"[{ended}/{self.total}] {trial_name(self.sweep, trial)}: {what}", flush=True)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        last = trial.last_result or {}
        if last.get("finished"):
            self.line(trials, trial, f"final eval {last[METRIC]:.1f} after {last['steps']} steps, "
                                     f"{last['wall_seconds']:.0f} s")
        else:
            self.line(trials, trial, f"stopped by the scheduler at {last.get('steps', 0)} steps "
                                     f"(eval {last.get(METRIC, math.nan):.1f})")

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.line(trials, trial, f"ERROR (traceback in {trial.path}/error.txt)")


def build_tuner(sweep: Sweep, sweep_dir: Path, restore: bool) -> tune.Tuner:
    trainable = tune.with_resources(tune.with_parameters(run_trial, sweep=sweep), {"cpu": sweep.cpus_per_trial})
    if restore:
        return tune.Tuner.restore(str(sweep_dir), trainable=trainable)
    search_alg = None
    if sweep.space:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Each sampled configuration runs once per seed; Optuna learns from the mean over the seeds.
        search_alg = Repeater(OptunaSearch(seed=sweep.seeds[0]), repeat=len(sweep.seeds))
    scheduler = None
    if sweep.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=ASHA_MAX_EVALS,
                                  grace_period=sweep.grace_period, reduction_factor=sweep.reduction_factor)
    namer = functools.partial(trial_name, sweep)
    tune_config = tune.TuneConfig(metric=METRIC, mode="max", search_alg=search_alg, scheduler=scheduler,
                                  num_samples=sweep.total_trials() if sweep.space else 1,
                                  max_concurrent_trials=sweep.max_concurrent or None, reuse_actors=True,
                                  trial_name_creator=namer, trial_dirname_creator=namer)
    run_config = tune.RunConfig(name=sweep.name, storage_path=str(sweep_dir.parent), verbose=0,
                                failure_config=tune.FailureConfig(max_failures=0),
                                callbacks=[JsonLoggerCallback(), Progress(sweep)])
    return tune.Tuner(trainable, param_space=param_space(sweep), tune_config=tune_config, run_config=run_config)


def run_sweep(sweep: Sweep, sweep_dir: Path, address: str | None = None,
              restore: bool = False) -> list[dict[str, Any]]:
    """Run (or with `restore` continue) the sweep and return one row per trial (`collect`); Ctrl-C ends it
    early, keeping the finished trials. Joins the cluster at `address`, or starts a Ray here and stops it."""
    start_ray(address)
    try:
        if not restore:
            sweep_dir.mkdir(parents=True)
            write_json(sweep_dir / SPEC_FILE, dataclasses.asdict(sweep))
        build_tuner(sweep, sweep_dir, restore).fit()
    finally:
        ray.shutdown()
    return collect(sweep, sweep_dir)


def collect(sweep: Sweep, sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per trial from Tune's record of the sweep: its settings, status, numbers and curve.

    status: DONE (trained to the end), STOPPED (by the scheduler), ERROR (crashed), or UNFINISHED (the
    sweep was interrupted before it ended; --resume runs it).
    """
    analysis = tune.ExperimentAnalysis(str(sweep_dir))
    rows = []
    for trial in sorted(analysis.trials, key=creation_number):
        frame = analysis.trial_dataframes.get(trial.trial_id)
        history = [] if frame is None or frame.empty else frame.to_dict("records")
        # A trial that --resume restarted appends its new run to the rows of the one cut short (Tune's JSON
        # log opens in append mode); the new run starts again at iteration 1.
        starts = [i for i, r in enumerate(history) if r["training_iteration"] == 1]
        history = history[starts[-1]:] if starts else history
        evals = [{"steps": int(r["steps"]), "mean": float(r[METRIC]), "train_seconds": float(r["train_seconds"])}
                 for r in history if not r["finished"]]
        last = trial.last_result or {}
        done = bool(last.get("finished"))
        status = ("DONE" if done else "ERROR" if trial.status == "ERROR"
                  else "STOPPED" if trial.status == "TERMINATED" else "UNFINISHED")
        error = trial.get_error() if status == "ERROR" else None
        rows.append({
            "trial": trial_name(sweep, trial),
            **{name: encode(name, v) for name, v in sweep.values_of(trial.config).items()},
            "seed": sweep.seed_of(trial.config), "status": status,
            "final_eval": last[METRIC] if done else None,
            "best_eval": last["best_eval_mean"] if done else max((e["mean"] for e in evals), default=None),
            "steps": last["steps"] if done else evals[-1]["steps"] if evals else 0,
            "wall_seconds": last["wall_seconds"] if done else round(float(last.get("time_total_s", 0.0)), 2),
            "node_id": last.get("node_id"), "checkpoint": last.get("checkpoint"),
            "error": _last_line(error) if error else None, "evals": evals})
    return rows


def _last_line(text: str) -> str:
    """The exception line of a traceback."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile by bisection on its CDF, integrated numerically (numpy only; no scipy here)."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 20001)
        return 0.5 + float(np.trapezoid(np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df)), t))

    low, high = 0.0, 1000.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if cdf(mid) < p else (low, mid)
    return (low + high) / 2


def t_half_width(values: Sequence[float] | np.ndarray) -> Any:
    """Half the width of the CONFIDENCE Student-t interval of the mean, t * s / sqrt(n). A t-interval rather
    than a bootstrap: with 3 to 10 seeds a percentile bootstrap is too narrow."""
    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    return t_quantile((1 + CONFIDENCE) / 2, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)


def mean_band(curves: Sequence[tuple[Sequence[int], Sequence[float]]]) -> dict[str, list[float]]:
    """Mean over curves of (steps, values) and its t-interval at every step.

    Curves that evaluate at different steps (episodes of different lengths) are interpolated linearly onto
    all those steps within the range every curve covers.
    """
    first, last = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    steps = sorted({x for s, _ in curves for x in s if first <= x <= last})
    values = np.array([np.interp(steps, s, v) for s, v in curves])
    mean = values.mean(axis=0)
    half = t_half_width(values) if len(curves) > 1 else np.full_like(mean, np.nan)
    return {"steps": steps, "mean": mean.tolist(), "low": (mean - half).tolist(), "high": (mean + half).tolist()}


def by_config(sweep: Sweep, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows grouped by configuration (the varied fields' values), in the order they first appear."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(json.dumps([row[k] for k in sweep.varied]), []).append(row)
    return list(groups.values())


def summarize(sweep: Sweep, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration, over its seeds: the mean, std and t-interval of the final evaluations of the
    trials that trained to the end."""
    out = []
    for group in by_config(sweep, rows):
        finals = [r["final_eval"] for r in group if r["status"] == "DONE"]
        n = len(finals)
        half = float(t_half_width(finals)) if n > 1 else None
        mean = float(np.mean(finals)) if n else None
        out.append({"config": {k: group[0][k] for k in sweep.varied}, "seeds": [r["seed"] for r in group],
                    "done": n, "mean": mean, "std": float(np.std(finals, ddof=1)) if n > 1 else None,
                    "ci95": [mean - half, mean + half] if half is not None else None})
    return out


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    cells = [headers, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def trial_table(sweep: Sweep, rows: list[dict[str, Any]]) -> str:
    headers = ["trial", *sweep.varied, "seed", "final eval", "best eval", "steps", "wall s", "status"]
    body = [[r["trial"].partition("_")[0], *[_short(r[k]) for k in sweep.varied], str(r["seed"]),
             _number(r["final_eval"]), _number(r["best_eval"]), str(r["steps"]), _number(r["wall_seconds"]),
             r["status"]] for r in rows]
    errors = [f"{r['trial'].partition('_')[0]}: {r['error']}" for r in rows if r["error"]]
    return "\n".join([table(headers, body), *errors])


def config_table(sweep: Sweep, summaries: list[dict[str, Any]]) -> str:
    headers = [*sweep.varied, "seeds done", "mean", "std", f"{CONFIDENCE:.0%} t-interval"]
    body = [[*map(_short, s["config"].values()), f"{s['done']}/{len(s['seeds'])}", _number(s["mean"]),
             _number(s["std"]), f"[{s['ci95'][0]:.1f}, {s['ci95'][1]:.1f}]" if s["ci95"] else "-"] for s in summaries]
    return table(headers, body)


def plot(sweep: Sweep, rows: list[dict[str, Any]], summaries: list[dict[str, Any]], path: Path) -> None:
    """Learning curves per configuration: thin lines per seed, the mean over seeds and its t-interval band."""
    from matplotlib.figure import Figure  # only the driver draws: kept out of every trial's imports

    fig = Figure(figsize=(8, 5))  # matplotlib's object API: no pyplot state, no GUI backend
    ax = fig.subplots()
    for i, (summary, group) in enumerate(zip(summaries, by_config(sweep, rows))):
        color = f"C{i % 10}"
        curves = [([e["steps"] for e in r["evals"]], [e["mean"] for e in r["evals"]]) for r in group if r["evals"]]
        if not curves:
            continue
        for steps, means in curves:
            ax.plot(steps, means, color=color, alpha=0.25, linewidth=0.8)
        band = mean_band(curves)
        label = ", ".join(f"{k}={_short(v)}" for k, v in summary["config"].items()) or "base run"
        ax.plot(band["steps"], band["mean"], color=color, label=f"{label} ({len(curves)} seeds)")
        ax.fill_between(band["steps"], band["low"], band["high"], color=color, alpha=0.15)
    ax.set(xlabel="env steps", ylabel="noise-free evaluation return",
           title=f"{sweep.name}\nthin: single seeds; band: {CONFIDENCE:.0%} t-interval of the mean")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_json(path: Path, value: Any) -> None:
    """Atomically: a sweep cut short while writing keeps the previous file, which --resume reads."""
    atomic_write(path, lambda f: f.write((json.dumps(value, indent=1) + "\n").encode()))


def write_results(sweep: Sweep, sweep_dir: Path, rows: list[dict[str, Any]], summaries: list[dict[str, Any]],
                  interrupted: bool) -> dict[str, Any]:
    """results.json, results.csv and curves.png in the sweep directory; returns the line main prints last."""
    ranked = [s for s in summaries if s["mean"] is not None]
    best = max(ranked, key=lambda s: s["mean"]) if ranked else None
    outcome = {"sweep": sweep.name, "trials": len(rows), "best_config": best["config"] if best else None,
               "best_mean": best["mean"] if best else None, "results": str(sweep_dir / "results.json")}
    record = {**outcome, "interrupted": interrupted, "command": sweep.command, "preset": sweep.preset,
              "seeds": sweep.seeds, "grid": sweep.grid, "space": sweep.space, "scheduler": sweep.scheduler or None,
              "base_config": sweep.base, "configurations": summaries, "trial_results": rows}
    write_json(sweep_dir / "results.json", record)
    columns = ["trial", *sweep.varied, "seed", "status", "final_eval", "best_eval", "steps", "wall_seconds",
               "node_id", "error"]
    with open(sweep_dir / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    plot(sweep, rows, summaries, sweep_dir / "curves.png")
    return outcome


def plan(args: argparse.Namespace, argv: list[str]) -> tuple[Sweep, Path]:
    """The sweep the command line `argv` asks for and its directory, every value checked; nothing is written."""
    if getattr(args, "run_name", None) is not None:
        raise UsageError("--run-name: the sweep names each trial's run <logdir>/<sweep>/<trial>")
    if args.search and args.grid:
        raise UsageError("--grid and --search are alternatives: a grid runs every combination, a search samples")
    if args.search and not args.space:
        raise UsageError("--search optuna needs --space")
    if args.space and not args.search:
        raise UsageError("--space is the search's: add --search optuna --trials N")
    if args.search and args.trials is None:
        raise UsageError("--search optuna needs --trials N")
    if args.trials is not None and not args.search:
        raise UsageError("--trials counts a search's configurations: add --search optuna")
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials must be >= 1, got {args.trials}")
    for option, value in (("--cpus-per-trial", args.cpus_per_trial), ("--grace-period", args.grace_period)):
        if value < 1:
            raise UsageError(f"{option} must be >= 1, got {value}")
    cpus = usable_cpus()
    if args.address is None and args.cpus_per_trial > cpus:
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial}: this machine has {cpus} CPUs for the "
                         "sweep's Ray")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent must be >= 1, got {args.max_concurrent}")
    if args.reduction_factor <= 1:
        raise UsageError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    base = resolve_config(args)
    seeds = args.seeds if args.seeds is not None else [base.seed]
    if len(set(seeds)) < len(seeds):
        raise UsageError("--seeds: a seed is repeated")
    for seed in seeds:
        base.updated({"seed": seed}, source="--seeds").validate()
    if args.scheduler == "asha" and base.eval_interval == 0:
        raise UsageError("--scheduler asha compares the periodic evaluations: set --eval-interval above 0")
    name = args.name or f"sweep_{time.strftime('%Y%m%d-%H%M%S')}"
    if "/" in name or name in (".", "..") or "\0" in name:
        raise UsageError(f"--name must be a plain directory name, got {name!r}")
    if not base.threads:  # as many threads as the CPUs Ray gives the trial
        base = dataclasses.replace(base, threads=args.cpus_per_trial)
    base = dataclasses.replace(base, logdir=str(Path(base.logdir).resolve() / name),
                               model_dir=str(Path(base.model_dir).resolve() / name))
    grid = parse_grid(args.grid or [], base)
    space = parse_space(args.space or [], base)
    for env in {base.env, *grid.get("env", []), *space.get("env", {}).get("choices", [])}:
        make_env(env, base.max_episode_steps).close()
    sweep = Sweep(name=name, preset=args.preset or "tutorial", base=base.to_dict(), seeds=seeds, grid=grid,
                  space=space, trials=args.trials or 0, scheduler=args.scheduler or "",
                  grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                  cpus_per_trial=args.cpus_per_trial, max_concurrent=args.max_concurrent or 0,
                  command=shlex.join(["python", "-m", "paddle_ddpg.sweep", *argv]))
    sweep_dir = Path(args.storage).resolve() / name
    for d in (sweep_dir, Path(base.logdir), Path(base.model_dir)):
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise UsageError(f"sweep {name!r} already exists in {d}; continue it with --resume {sweep_dir}, or "
                             "pick another --name")
    return sweep, sweep_dir


def load_sweep(args: argparse.Namespace) -> tuple[Sweep, Path]:
    """The sweep saved in the --resume directory; the settings are its own."""
    given = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(Config) if hasattr(args, f.name)]
    given += [option for option, value in (("--preset", args.preset), ("--config", args.config),
                                           ("--seeds", args.seeds), ("--grid", args.grid), ("--space", args.space),
                                           ("--search", args.search), ("--trials", args.trials),
                                           ("--scheduler", args.scheduler), ("--name", args.name)) if value]
    if given:
        raise UsageError(f"{given[0]} cannot be used with --resume: a resumed sweep runs with its own settings")
    sweep_dir = Path(args.resume).resolve()
    try:
        saved = json.loads((sweep_dir / SPEC_FILE).read_text())
    except FileNotFoundError:
        raise UsageError(f"{sweep_dir} is not a sweep directory (it has no {SPEC_FILE})") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {sweep_dir / SPEC_FILE}: {exc}") from None
    return Sweep(**saved), sweep_dir


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.sweep", description=__doc__.splitlines()[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog="Every trial is a run of python -m paddle_ddpg.train with these settings; its logs go to "
                           "<logdir>/<sweep>/<trial>, its checkpoints to <model-dir>/<sweep>/<trial>.")
    parser.add_argument("--preset", help=f"the base run's starting settings: {', '.join(PRESETS)} (default: tutorial)")
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file of the base run's settings")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument("--seeds", type=int, nargs="+", metavar="N",
                       help="every configuration runs once per seed (default: the base run's --seed)")
    sweep.add_argument("--grid", nargs="+", metavar="FIELD=V1,V2",
                       help="every combination of these values, parsed as the field's flag parses them; a list "
                            "field's sizes are joined by x: actor_hidden=64x64,128x128")
    sweep.add_argument("--search", choices=("optuna",), help="sample configurations with Optuna (Tune's OptunaSearch)")
    sweep.add_argument("--trials", type=int, metavar="N", help="configurations the search samples")
    sweep.add_argument("--space", nargs="+", metavar="FIELD=SPEC",
                       help="the search's fields: LOW:HIGH or LOW:HIGH:log (an int or float field, both ends "
                            "included) or V1,V2,... (choices)")
    sweep.add_argument("--scheduler", choices=("asha",),
                       help="asha: Tune's ASHAScheduler stops trials whose evaluation trails the others'")
    sweep.add_argument("--grace-period", type=int, default=1, metavar="N",
                       help="asha: evaluations before a trial can be stopped (default 1)")
    sweep.add_argument("--reduction-factor", type=float, default=3.0, metavar="X",
                       help="asha: a rung keeps the best 1/X of the trials that reach it (default 3)")
    sweep.add_argument("--max-concurrent", type=int, metavar="N", help="trials at once (default: as the CPUs allow)")
    sweep.add_argument("--cpus-per-trial", type=int, default=1, metavar="N",
                       help="CPUs Ray reserves per trial, and the trial's --threads unless given (default 1)")
    sweep.add_argument("--name", help="the sweep's name (default: sweep_<time>)")
    sweep.add_argument("--storage", default="sweeps", metavar="DIR",
                       help="Tune's state and the results go to DIR/<name> (default: sweeps; on a cluster of "
                            "several machines, storage they all reach)")
    sweep.add_argument("--address", metavar="auto|HOST:PORT",
                       help="join a running Ray cluster (default: start a Ray on this machine for the sweep)")
    sweep.add_argument("--resume", metavar="SWEEP_DIR",
                       help="continue an interrupted sweep: finished trials are kept, the others run")
    add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        sweep, sweep_dir = load_sweep(args) if args.resume else plan(args, argv)
        rows = run_sweep(sweep, sweep_dir, args.address, restore=bool(args.resume))
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except SaveError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    # Tune ends the sweep on Ctrl-C with the trials it had not yet begun left out, or UNFINISHED.
    ended, total = sum(r["status"] != "UNFINISHED" for r in rows), sweep.total_trials()
    interrupted = ended < total
    summaries = summarize(sweep, rows)
    try:
        outcome = write_results(sweep, sweep_dir, rows, summaries, interrupted)
    except SaveError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(f"\n{trial_table(sweep, rows)}\n\n{config_table(sweep, summaries)}")
    print(f"\nresults, per-trial CSV and learning curves in {sweep_dir}")
    print(json.dumps(outcome), flush=True)
    if interrupted:
        print(f"interrupted: {ended} of {total} trials ended. Continue with:\n  python -m "
              f"paddle_ddpg.sweep --resume {shlex.quote(str(sweep_dir))}", file=sys.stderr)
        return 130
    return 1 if any(r["status"] == "ERROR" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
