"""What a sweep runs: from its command line, or for --resume from its own sweep.json and results.json, checked
alike before anything starts. Needs none of the [sweep] extra, so every mistake is reported without Ray."""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import shlex
import socket
import time
import typing
from pathlib import Path
from typing import Any

from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError, field_types
from paddle_ddpg.device import usable_cpus
from paddle_ddpg.env import make_env
from paddle_ddpg.train import PLACE

SPEC_FILE, RESULTS_FILE = "sweep.json", "results.json"  # the sweep's own record, which --resume continues from
SWEEP_OWNED = ("seed", *PLACE)  # set by the sweep for every trial: where a run lives, and its seed (--seeds)
ENDED = ("DONE", "STOPPED", "ERROR")  # trained to the end, stopped by the scheduler, crashed; else UNFINISHED
ROW = {"trial": str, "number": int, "seed": int, "status": str, "final_eval": (int, float, type(None)),
       "best_eval": (int, float, type(None)), "steps": int, "wall_seconds": (int, float), "node_id": (str, type(None)),
       "checkpoint": (str, type(None)), "error": (str, type(None)), "evals": list}  # a trial's row, and its types


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    preset: str
    base: dict[str, Any]  # Config.to_dict() of the base run; logdir and model_dir are the sweep's, absolute
    seeds: list[int]
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # field -> values (tuples as lists)
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # {choices} or {low, high, log}
    trials: int = 0  # configurations a search samples
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

    def total_trials(self) -> int:
        return (self.trials if self.space else len(list(itertools.product(*self.grid.values())))) * len(self.seeds)


def encode(name: str, value: Any) -> Any:
    """A value as Tune and Optuna carry it: a tuple field's sizes as text, "64x64" (Optuna's choices are plain)."""
    return "x".join(map(str, value)) if is_tuple(name) else value


def decode(name: str, value: Any) -> Any:
    return [int(v) for v in value.split("x")] if is_tuple(name) else value


def is_tuple(name: str) -> bool:
    return typing.get_origin(field_types()[name]) is tuple


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_name(number: int, point: dict[str, Any]) -> str:
    """`<number>_<field>=<value>,...,seed=<seed>`: a trial's Tune name, directory and run name (so `visualdl
    --logdir <logdir>/<sweep>` labels each curve with its settings)."""
    return (f"{number:03d}_" + ",".join(f"{k}={short(v)}" for k, v in point.items())).replace("/", "-")[:200]


class _FieldParser(Parser):
    def error(self, message: str) -> typing.NoReturn:  # one --grid or --space value at a time: raise, not exit
        raise UsageError(message)


def parse_items(items: list[str], option: str) -> dict[str, Any]:
    """FIELD=V1,V2 (or for --space LOW:HIGH[:log]) items, each value parsed as the field's own flag parses it; a
    tuple field's sizes are joined by x (64x64)."""
    parser, out = _FieldParser(add_help=False), {}
    add_config_arguments(parser)
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name or not text:
            raise UsageError(f"{option} takes FIELD=VALUES, got {item!r}")
        if name in out:
            raise UsageError(f"{option}: {name} given twice")
        check_field(name, option)
        ranged = option == "--space" and ":" in text
        words = text.removesuffix(":log").split(":") if ranged else text.split(",")
        if ranged and (field_types()[name] not in (int, float) or len(words) > 2):
            raise UsageError(f"--space {item}: a range is LOW:HIGH or LOW:HIGH:log, of an int or float field")
        values, flag = [], "--" + name.replace("_", "-")
        for word in words:
            try:
                values.append(getattr(parser.parse_args([flag, *word.split("x")] if is_tuple(name)
                                                        else [f"{flag}={word}"]), name))
            except UsageError as exc:
                raise UsageError(f"{option} {name}={word}: {exc}") from None
        out[name] = (dict(low=values[0], high=values[1], log=text.endswith(":log")) if ranged
                     else {"choices": values} if option == "--space" else values)
    return out


def check_field(name: Any, option: str) -> None:
    if name not in field_types():
        raise UsageError(f"{option}: unknown field {name!r} (the fields are the flags of python -m "
                         "paddle_ddpg.train --help, with underscores)")
    if name in SWEEP_OWNED:
        raise UsageError(f"{option}: {name} is set by the sweep for each trial"
                         + (" (give seeds with --seeds)" if name == "seed" else ""))


def check(sweep: Sweep) -> Sweep:
    """Every value of a sweep, from the command line or a sweep.json: types, then values (the runs' through Config)."""
    least = {"trials": 1 if sweep.space else 0, "grace_period": 1, "cpus_per_trial": 1, "max_concurrent": 0}
    for field in dataclasses.fields(Sweep):
        kind = {"str": str, "int": int, "float": (int, float), "list[int]": list}.get(field.type, dict)
        if not isinstance(value := getattr(sweep, field.name), kind) or isinstance(value, bool):
            raise UsageError(f"{field.name} must be {getattr(kind, '__name__', 'a number')}, got {value!r}")
        if field.name in least and value < least[field.name]:
            raise UsageError(f"--{field.name.replace('_', '-')} must be >= {least[field.name]}, got {value}")
    if sweep.grid and sweep.space or bool(sweep.space) != bool(sweep.trials):
        raise UsageError("a grid runs every combination; a search samples --trials N configurations of a --space")
    if sweep.scheduler not in ("", "asha"):
        raise UsageError(f"--scheduler is asha or none, got {sweep.scheduler!r}")
    if sweep.reduction_factor <= 1:
        raise UsageError(f"--reduction-factor must be > 1, got {sweep.reduction_factor}")
    if "/" in sweep.name or sweep.name in ("", ".", "..") or "\0" in sweep.name:
        raise UsageError(f"--name must be a plain directory name, got {sweep.name!r}")
    if (base := sweep.config().validate()).eval_interval == 0 and sweep.scheduler:
        raise UsageError("--scheduler asha compares the periodic evaluations: set --eval-interval above 0")
    if not sweep.seeds or len(set(map(json.dumps, sweep.seeds))) < len(sweep.seeds):
        raise UsageError("--seeds: a seed is repeated, or none given")
    for seed in sweep.seeds:
        base.updated({"seed": seed}, source="--seeds").validate()
    for option, items in (("--grid", {k: {"choices": v} for k, v in sweep.grid.items()}), ("--space", sweep.space)):
        for name, spec in items.items():
            check_field(name, option)
            keys = spec.keys() if isinstance(spec, dict) else None
            if not (keys == {"choices"} and isinstance(spec["choices"], list) and spec["choices"]
                    or keys == {"low", "high", "log"} and isinstance(spec["log"], bool)):
                raise UsageError(f"{option} {name}: {spec!r} is neither values nor a range")
            choices, ends = spec.get("choices", []), [spec[end] for end in ("low", "high") if end in spec]
            if len(set(map(json.dumps, choices))) < len(choices):
                raise UsageError(f"{option} {name}: a value is repeated")
            for value in choices + ends:
                try:
                    base.updated({name: value}, source=option).validate()
                except UsageError as exc:
                    raise UsageError(f"{option} {name}={short(encode(name, value))}: {exc}") from None
            shown = f"{option} {name}={':'.join(map(short, ends))}{':log' if spec.get('log') else ''}"
            if ends and not ends[0] < ends[1]:
                raise UsageError(f"{shown}: the low end must be below the high end")
            if ends and spec["log"] and ends[0] <= 0:
                raise UsageError(f"{shown}: a log range needs a positive low end")
    for combination in itertools.product(*sweep.grid.values()):  # fields that must agree, such as batch and memory
        try:
            base.updated(dict(zip(sweep.grid, combination)), source="--grid").validate()
        except UsageError as exc:
            shown = " ".join(f"{k}={short(encode(k, v))}" for k, v in zip(sweep.grid, combination))
            raise UsageError(f"--grid {shown}: {exc}") from None
    for env in {base.env, *sweep.grid.get("env", []), *sweep.space.get("env", {}).get("choices", [])}:
        make_env(env, base.max_episode_steps).close()
    return sweep


def prepare(args: argparse.Namespace, argv: list[str]) -> tuple[Sweep, Path, list[dict[str, Any]]]:
    """The sweep, its directory and the trials that ended in an earlier run, every value checked; nothing written."""
    sweep, sweep_dir = load_sweep(args) if args.resume else plan(args, argv)
    record = read_json(sweep_dir / RESULTS_FILE) if (sweep_dir / RESULTS_FILE).exists() else {"trial_results": []}
    rows = record.get("trial_results") if isinstance(record, dict) else None
    for i, r in enumerate(rows if isinstance(rows, list) else [None]):  # the earlier run's results, as it wrote them
        if not (isinstance(r, dict) and r.keys() == {*ROW, *sweep.varied} and r["seed"] in sweep.seeds
                and all(isinstance(r[k], t) and not isinstance(r[k], bool) for k, t in ROW.items())
                and all(isinstance(e, dict) and e.keys() == {"steps", "mean", "train_seconds"}
                        and all(isinstance(v, (int, float)) for v in e.values()) for e in r["evals"])):
            raise UsageError(f"{sweep_dir / RESULTS_FILE}: trial_results[{i}] is not a trial of this sweep")
    if args.address not in (None, "auto"):  # an address nothing listens at fails now: Ray retries it for minutes
        host, sep, port = args.address.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--address must be auto or HOST:PORT, got {args.address!r}")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as exc:
            raise UsageError(f"no Ray cluster at {args.address}: {exc.strerror or exc}") from None
    return sweep, sweep_dir, [r for r in rows if r["status"] in ENDED]


def plan(args: argparse.Namespace, argv: list[str]) -> tuple[Sweep, Path]:
    if getattr(args, "run_name", None) is not None:
        raise UsageError("--run-name: the sweep names each trial's run <logdir>/<sweep>/<trial>")
    if args.search and args.grid:
        raise UsageError("--grid and --search are alternatives: a grid runs every combination, a search samples")
    if bool(args.search) != bool(args.space) or bool(args.search) != (args.trials is not None):
        raise UsageError("a search needs all three: --search optuna, --trials N and --space")
    if args.address is None and args.cpus_per_trial > (cpus := usable_cpus()):
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial}: this machine has {cpus} CPUs for the sweep's Ray")
    base, name = resolve_config(args), args.name or f"sweep_{time.strftime('%Y%m%d-%H%M%S')}"
    base = dataclasses.replace(base, threads=base.threads or args.cpus_per_trial,  # the CPUs Ray gives a trial
                               logdir=str(Path(base.logdir).resolve() / name),
                               model_dir=str(Path(base.model_dir).resolve() / name))
    sweep = check(Sweep(name, args.preset or "tutorial", base.to_dict(), [base.seed] if args.seeds is None
                        else args.seeds, parse_items(args.grid or [], "--grid"),
                        parse_items(args.space or [], "--space"), args.trials or 0, args.scheduler or "",
                        args.grace_period, args.reduction_factor, args.cpus_per_trial, args.max_concurrent,
                        shlex.join(["python", "-m", "paddle_ddpg.sweep", *argv])))
    sweep_dir = Path(args.storage).resolve() / name
    for d in (sweep_dir, Path(base.logdir), Path(base.model_dir)):
        if d.exists() and (not d.is_dir() or any(d.iterdir())):
            raise UsageError(f"sweep {name!r} already exists in {d}; continue it with --resume {sweep_dir}, or "
                             "pick another --name")
    return sweep, sweep_dir


def load_sweep(args: argparse.Namespace) -> tuple[Sweep, Path]:
    given = [f"--{f.name.replace('_', '-')}" for f in dataclasses.fields(Config) if hasattr(args, f.name)]
    given += [f"--{option}" for option in ("preset", "config", "seeds", "grid", "space", "search", "trials",
                                           "scheduler", "name") if getattr(args, option)]
    if given:
        raise UsageError(f"{given[0]} cannot be used with --resume: a resumed sweep runs with its own settings")
    if not (path := (sweep_dir := Path(args.resume).resolve()) / SPEC_FILE).exists():
        raise UsageError(f"{sweep_dir} is not a sweep directory (it has no {SPEC_FILE})")
    fields = [f.name for f in dataclasses.fields(Sweep)]
    if not isinstance(saved := read_json(path), dict) or sorted(saved) != sorted(fields):
        raise UsageError(f"{path} is not a sweep's settings: a JSON object of {', '.join(fields)}")
    try:
        return check(Sweep(**saved)), sweep_dir
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


def read_json(path: Path) -> Any:
    """A JSON file of the sweep directory, read as a config file is: a regular file, at most 64 MiB."""
    try:
        if not path.is_file() or path.stat().st_size > 1 << 26:
            raise UsageError(f"{path} is not a regular file of at most 64 MiB")
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.sweep", description="Many seeds and hyperparameter sweeps as Ray "
                    "Tune trials.", epilog="Every trial is a run of python -m paddle_ddpg.train with these settings; "
                    "its logs go to <logdir>/<sweep>/<trial>, its checkpoints to <model-dir>/<sweep>/<trial>.")
    parser.add_argument("--preset", help=f"the base run's starting settings: {', '.join(PRESETS)} (default: tutorial)")
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file of the base run's settings")
    group = parser.add_argument_group("sweep").add_argument
    group("--seeds", type=int, nargs="+", metavar="N", help="each configuration runs once per seed (default: --seed)")
    group("--grid", nargs="+", metavar="FIELD=V1,V2", help="every combination of these values, parsed as the "
          "field's flag parses them; a list field's sizes are joined by x: actor_hidden=64x64,128x128")
    group("--search", choices=("optuna",), help="sample configurations with Optuna (Tune's OptunaSearch)")
    group("--trials", type=int, metavar="N", help="configurations the search samples")
    group("--space", nargs="+", metavar="FIELD=SPEC", help="the search's fields: LOW:HIGH or LOW:HIGH:log (an int or "
          "float field, both ends included) or V1,V2,... (choices)")
    group("--scheduler", choices=("asha",), help="asha: Tune's ASHAScheduler stops trials whose evaluation trails")
    group("--grace-period", type=int, default=1, metavar="N", help="asha: evaluations before a trial can be stopped")
    group("--reduction-factor", type=float, default=3.0, metavar="X",
          help="asha: a rung keeps the best 1/X of the trials that reach it (default 3)")
    group("--max-concurrent", type=int, default=0, metavar="N", help="trials at once (default 0: as the CPUs allow)")
    group("--cpus-per-trial", type=int, default=1, metavar="N",
          help="CPUs Ray reserves per trial, and the trial's --threads unless given (default 1)")
    group("--name", help="the sweep's name (default: sweep_<time>)")
    group("--storage", default="sweeps", metavar="DIR", help="Tune's state and the results go to DIR/<name> "
          "(default: sweeps; on a cluster of several machines, storage they all reach)")
    group("--address", metavar="auto|HOST:PORT", help="join a running Ray cluster (default: start one here)")
    group("--resume", metavar="SWEEP_DIR", help="continue an interrupted sweep: its ended trials are kept")
    add_config_arguments(parser)
    return parser
