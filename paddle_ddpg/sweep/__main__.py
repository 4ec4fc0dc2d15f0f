"""The sweep program: every argument checked before Ray starts (a Ray of its own, or with --address a cluster's). Its
record, sweep.json, holds the arguments that rebuild the sweep, so --resume goes through the checks of a new one."""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import argparse
import dataclasses
import functools
import itertools
import json
import shlex
import socket
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError, field_types
from paddle_ddpg.device import usable_cpus
from paddle_ddpg.env import make_env
from paddle_ddpg.files import SaveError
from paddle_ddpg.sweep import RESULTS_FILE, ROW, SPEC_FILE, Sweep, encode, short
from paddle_ddpg.train import PLACE

OPTIONS = ("seeds", "grid", "space", "search", "trials", "scheduler", "grace_period", "reduction_factor",
           "max_concurrent", "cpus_per_trial", "name", "storage")  # what the record keeps besides the base run


class RaisingParser(Parser):
    def error(self, message: str) -> typing.NoReturn:  # a --grid value or a record: the caller names the source
        raise UsageError(message)


def fail(condition: Any, message: str) -> None:
    if condition:
        raise UsageError(message)


def check(base: Config, values: dict[str, Any], option: str) -> None:
    try:
        base.updated(values, source=option).validate()
    except UsageError as exc:
        raise UsageError(f"{option} {' '.join(f'{k}={short(encode(v))}' for k, v in values.items())}: {exc}") from None


def parse_items(items: list[str], option: str, base: Config) -> dict[str, Any]:
    """FIELD=V1,V2 (for --space also LOW:HIGH[:log]), each value parsed by the field's own flag and checked."""
    parser, out = RaisingParser(add_help=False), {}
    add_config_arguments(parser)
    for item in items:
        name, sep, text = item.partition("=")
        ranged, log = option == "--space" and ":" in text, text.endswith(":log")
        words = text.removesuffix(":log").split(":") if ranged else text.split(",")
        fail(not sep or not name or not text, f"{option} takes FIELD=VALUES, got {item!r}")
        fail(name in out, f"{option}: {name} given twice")
        fail(name not in field_types(), f"{option}: unknown field {name!r} (the fields are the flags of python -m "
             "paddle_ddpg.train --help, with underscores)")
        fail(name in ("seed", *PLACE), f"{option}: {name} is set by the sweep for each trial"
             + (" (give seeds with --seeds)" if name == "seed" else ""))
        fail(ranged and (field_types()[name] not in (int, float) or len(words) != 2),
             f"--space {item}: a range is LOW:HIGH or LOW:HIGH:log, of an int or float field")
        values, flag, sizes = [], "--" + name.replace("_", "-"), isinstance(getattr(base, name), tuple)
        for word in words:
            try:
                values.append(getattr(parser.parse_args([flag, *word.split("x")] if sizes else [f"{flag}={word}"]),
                                      name))
            except UsageError as exc:
                raise UsageError(f"{option} {name}={word}: {exc}") from None
            check(base, {name: values[-1]}, option)
        fail(len(set(map(json.dumps, values))) < len(values) and not ranged, f"{option} {name}: a value is repeated")
        shown = f"{option} {name}={':'.join(map(short, values))}{':log' if log else ''}"
        fail(ranged and not values[0] < values[1], f"{shown}: the low end must be below the high end")
        fail(ranged and log and values[0] <= 0, f"{shown}: a log range needs a positive low end")
        out[name] = dict(low=values[0], high=values[1], log=log) if ranged else (
            {"choices": values} if option == "--space" else values)
    return out


def plan(args: argparse.Namespace, resumed: Path | None = None) -> tuple[Sweep, Path]:
    """The sweep from parsed arguments (a new command line, or a record for --resume), every value checked."""
    name, cpus = args.name or f"sweep_{time.strftime('%Y%m%d-%H%M%S')}", usable_cpus()
    least = {"trials": 1, "grace_period": 1, "cpus_per_trial": 1, "max_concurrent": 0}
    for condition, message in [
            (hasattr(args, "run_name"), "--run-name: the sweep names each trial's run <logdir>/<sweep>/<trial>"),
            (args.search and args.grid, "--grid and --search are alternatives: a grid runs every combination, a "
                                        "search samples"),
            (len({bool(args.search), bool(args.space), args.trials is not None}) > 1,
             "a search needs all three: --search optuna, --trials N and --space"),
            *[((v := getattr(args, k)) is not None and v < n, f"--{k.replace('_', '-')} must be >= {n}, got {v}")
              for k, n in least.items()],
            (args.reduction_factor <= 1, f"--reduction-factor must be > 1, got {args.reduction_factor}"),
            (not args.address and args.cpus_per_trial > cpus,
             f"--cpus-per-trial {args.cpus_per_trial}: this machine has {cpus} CPUs for the sweep's Ray"),
            ("/" in name or name in (".", "..") or "\0" in name,
             f"--name must be a plain directory name, got {name!r}"),
            (args.seeds and len(set(args.seeds)) < len(args.seeds), "--seeds: a seed is repeated")]:
        fail(condition, message)
    base = resolve_config(args)
    base = dataclasses.replace(base, threads=base.threads or args.cpus_per_trial,  # the CPUs Ray gives a trial
                               logdir=str(Path(base.logdir).resolve()), model_dir=str(Path(base.model_dir).resolve()))
    fail(base.eval_interval == 0 and args.scheduler, "--scheduler asha compares the periodic evaluations: set "
                                                     "--eval-interval above 0")
    seeds = [base.seed] if args.seeds is None else args.seeds
    grid, space = parse_items(args.grid or [], "--grid", base), parse_items(args.space or [], "--space", base)
    for option, values in [*(("--seeds", {"seed": s}) for s in seeds),  # and fields that must agree (batch, memory)
                           *(("--grid", dict(zip(grid, c))) for c in itertools.product(*grid.values()))]:
        check(base, values, option)
    for env in {base.env, *grid.get("env", []), *space.get("env", {}).get("choices", [])}:
        make_env(env, base.max_episode_steps).close()
    preset, storage = args.preset or "tutorial", Path(args.storage).resolve()
    record = {**{k: v for k, v in base.to_dict().items() if v != PRESETS[preset].to_dict()[k]},
              **{k: getattr(args, k) for k in OPTIONS}, "seeds": seeds, "name": name, "storage": str(storage)}
    places = {k: str(Path(getattr(base, k)) / name) for k in ("logdir", "model_dir")}
    for d in [] if resumed else [storage / name, *map(Path, places.values())]:
        fail(d.exists() and (not d.is_dir() or any(d.iterdir())), f"sweep {name!r} already exists in {d}; continue it "
             f"with --resume {storage / name}, or pick another --name")
    flag = {k: "--" + k.replace("_", "-") for k in record}  # as the parser reads them back (no option is a bool)
    argv = ["--preset", preset, *[a for k, v in record.items() for a in (
        [flag[k], *map(str, v)] if isinstance(v, list) else [] if v is None else [f"{flag[k]}={v}"])]]
    asha = dict(grace_period=args.grace_period, reduction_factor=args.reduction_factor) if args.scheduler else {}
    return Sweep(name, preset, {**base.to_dict(), **places}, seeds, grid, space, args.trials or 0, asha,
                 args.cpus_per_trial, args.max_concurrent, argv), resumed or storage / name


def prepare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Sweep, Path, list[dict[str, Any]]]:
    """The sweep, its directory and the trials that ended in an earlier run, every value checked; nothing written."""
    if args.resume:
        given = [d for d, v in vars(args).items() if d not in ("resume", "address") and v != parser.get_default(d)]
        fail(given, given and f"--{given[0].replace('_', '-')} cannot be used with --resume: a resumed sweep runs "
             "with its own settings")
        fail(not (path := Path(args.resume).resolve() / SPEC_FILE).exists(),
             f"{path.parent} is not a sweep directory (it has no {SPEC_FILE})")
        saved = read_json(path)
        fail(not (isinstance(saved, dict) and saved.keys() == {"argv"} and isinstance(saved["argv"], list)
                  and all(isinstance(a, str) for a in saved["argv"])),
             f"{path} is not a sweep's record: a JSON object of argv, the sweep's arguments")
        try:
            sweep, sweep_dir = plan(build_parser(RaisingParser).parse_args(
                saved["argv"], argparse.Namespace(address=args.address)), path.parent)
        except UsageError as exc:
            raise UsageError(f"{path}: {exc}") from None
    else:
        sweep, sweep_dir = plan(args)
    record = read_json(sweep_dir / RESULTS_FILE) if (sweep_dir / RESULTS_FILE).exists() else {"trial_results": []}
    rows = record.get("trial_results") if isinstance(record, dict) else None
    fail(not isinstance(rows, list) or not all(  # the types that the runs and the report rely on
        isinstance(r, dict) and r.keys() == {*ROW, *sweep.varied} and all(isinstance(r[k], t) for k, t in ROW.items())
        and all(isinstance(r[k], (int, float, str)) for k in sweep.varied) and all(isinstance(e, dict) and isinstance(
            e.get("steps"), int) and isinstance(e.get("mean"), (int, float)) for e in r["evals"]) for r in rows),
         f"{sweep_dir / RESULTS_FILE} does not hold the trial_results of this sweep")
    if args.address not in (None, "auto"):  # an address nothing listens at fails now: Ray retries it for minutes
        host, sep, port = args.address.rpartition(":")
        fail(not sep or not host or not port.isdigit() or not 0 < int(port) < 65536,
             f"--address must be auto or HOST:PORT, got {args.address!r}")
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
        except OSError as exc:
            raise UsageError(f"no Ray cluster at {args.address}: {exc.strerror or exc}") from None
    return sweep, sweep_dir, [r for r in rows if r["status"] in ("DONE", "STOPPED", "ERROR")]  # else UNFINISHED


def read_json(path: Path) -> Any:
    """A JSON file of the sweep directory, read as a config file is: a regular file, at most 64 MiB."""
    try:
        fail(not path.is_file() or path.stat().st_size > 1 << 26, f"{path} is not a regular file of at most 64 MiB")
        return json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def build_parser(kind: type[Parser] = Parser) -> argparse.ArgumentParser:
    parser = kind(prog="python -m paddle_ddpg.sweep", description="Many seeds and hyperparameter sweeps as Ray Tune "
                  "trials.", epilog="Every trial is a run of python -m paddle_ddpg.train with these settings; its "
                  "logs go to <logdir>/<sweep>/<trial>, its checkpoints to <model-dir>/<sweep>/<trial>.")
    add = parser.add_argument
    add("--preset", choices=PRESETS, help="the base run's starting settings (default: tutorial)")
    add("--config", metavar="FILE", help="JSON or YAML file of the base run's settings")
    add("--seeds", type=int, nargs="+", metavar="N", help="each configuration runs once per seed (default: --seed)")
    add("--grid", nargs="+", metavar="FIELD=V1,V2", help="every combination of these values, parsed as the field's "
        "flag parses them; a list field's sizes are joined by x: actor_hidden=64x64,128x128")
    add("--search", choices=("optuna",), help="sample configurations with Optuna (Tune's OptunaSearch)")
    add("--trials", type=int, metavar="N", help="configurations the search samples")
    add("--space", nargs="+", metavar="FIELD=SPEC", help="the search's fields: LOW:HIGH or LOW:HIGH:log (an int or "
        "float field, both ends included) or V1,V2,... (choices)")
    add("--scheduler", choices=("asha",), help="asha: Tune's ASHAScheduler stops trials whose evaluation trails")
    add("--grace-period", type=int, default=1, metavar="N", help="asha: evaluations before a trial can be stopped")
    add("--reduction-factor", type=float, default=3.0, metavar="X", help="asha: a rung keeps the best 1/X (default 3)")
    add("--max-concurrent", type=int, default=0, metavar="N", help="trials at once (default 0: as the CPUs allow)")
    add("--cpus-per-trial", type=int, default=1, metavar="N", help="CPUs per trial, and its --threads unless given")
    add("--name", help="the sweep's name (default: sweep_<time>)")
    add("--storage", default="sweeps", metavar="DIR", help="Tune's state and the results go to DIR/<name> (default: "
        "sweeps; on a cluster of several machines, storage they all reach)")
    add("--address", metavar="auto|HOST:PORT", help="join a running Ray cluster (default: start one here)")
    add("--resume", metavar="SWEEP_DIR", help="continue an interrupted sweep: its ended trials are kept")
    add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = (parser := build_parser()).parse_args(argv)
    try:
        sweep, sweep_dir, kept = prepare(parser, args)
        from paddle_ddpg.sweep.report import write_results  # the [sweep] extra, once the command is right
        from paddle_ddpg.sweep.tuning import run_sweep

        rows = run_sweep(sweep, sweep_dir, args.address, kept,  # as each trial ends: what --resume continues from
                         functools.partial(write_results, sweep, sweep_dir, interrupted=True, everything=False))
        ended = sum(r["status"] != "UNFINISHED" for r in rows)
        outcome, shown = write_results(sweep, sweep_dir, rows, interrupted := ended < sweep.total_trials())
    except (UsageError, SaveError) as exc:  # 2 for a mistake in the input, 1 for a disk that fills
        parser.exit(2 if isinstance(exc, UsageError) else 1, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    print(f"\n{shown}\n\nresults, per-trial CSV and learning curves in {sweep_dir}\n{json.dumps(outcome)}", flush=True)
    if interrupted:
        print(f"interrupted: {ended} of {sweep.total_trials()} trials ended. Continue with:\n  python -m "
              f"paddle_ddpg.sweep --resume {shlex.quote(str(sweep_dir))}", file=sys.stderr)
    return 130 if interrupted else int(any(r["status"] == "ERROR" for r in rows))


if __name__ == "__main__":
    sys.exit(main())
