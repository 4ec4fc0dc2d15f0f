"""The tutorial's training loop (section 四) as a program: `python -m paddle_ddpg.train`.

The loop itself is `loop.Trainer` (the tutorial's section 四); here a run gets its directories, its lock, its
checkpoint to resume from and its files around the loop (`runfiles.RunFiles`).
"""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import argparse
import dataclasses
import json
import shlex
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from paddle_ddpg import fast, rundir
from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint, record_of, resolve_checkpoint, restore
from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.device import cpu_threads, set_device
from paddle_ddpg.files import SaveError, atomic_write
from paddle_ddpg.loop import EnvironmentFault, StopRequest, Trainer, TrainingDiverged
from paddle_ddpg.runfiles import RunFiles

__all__ = ["ARCHITECTURE", "PLACE", "EnvironmentFault", "StopRequest", "Trainer", "TrainingDiverged", "main",
           "resume_config", "train"]

# Fixed once a run has started.
ARCHITECTURE = ("actor_hidden", "critic_hidden", "critic_action_layer", "memory_size", "env", "algo", "noise")
# Where a run lives: a resumed run continues in its own directories.
PLACE = ("run_name", "logdir", "model_dir")


def train(config: Config, preset: str = "tutorial", resume: dict[str, Any] | None = None, overwrite: bool = False,
          stop: StopRequest | None = None, on_eval: Callable[[dict[str, float]], None] | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train a run, or continue the one in `resume` (a `load_checkpoint` result), and return its summary.

    When resuming, `config` normally comes from `resume_config`: the run's own settings plus any changes
    that are safe mid-run (more episodes, another learning rate). `on_eval` is called with each noise-free
    evaluation's entry of `evals` as it happens (a sweep reports them to its scheduler). `progress` shows a
    progress bar on stderr when stderr is a terminal.
    """
    config.validate()
    if resume is not None:
        for name in ARCHITECTURE + PLACE:
            if config.to_dict()[name] != resume["config"][name]:
                raise UsageError(f"cannot change {name} when resuming (the run has {resume['config'][name]!r})")
    if not config.run_name:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        label = preset if preset != config.env else config.algo  # env presets are named after their env
        env = config.env.replace("/", "-")  # namespaced ids such as phys2d/Pendulum-v0
        config = dataclasses.replace(config, run_name=f"{env}_{label}_s{config.seed}_{stamp}")
    set_device(config.device)
    fast.set_cpu_threads(cpu_threads(config.threads, config.batch_size))
    run_dir, log_dir = rundir.run_paths(config, resume)
    # Checks the env and the checkpoint before anything is written.
    trainer = Trainer(config)
    try:
        engine = config.engine
        if engine == "fast" and (reason := fast.accelerate(trainer.agent)) is not None:
            print(f"the fast engine cannot run here ({reason}); training with the plain engine", file=sys.stderr)
            engine = "plain"
        cut_back = None
        if resume is not None:
            restore(trainer, resume)
            cut_back = record_of(resume)
        lock, log_dir = rundir.claim(run_dir, log_dir, resume is not None, overwrite)
        try:
            atomic_write(run_dir / "config.json", lambda f: f.write(json.dumps(config.to_dict(), indent=2).encode()))
            files = RunFiles(trainer, run_dir, log_dir, progress, cut_back, on_eval)
            trainer.hooks = files
            return {**files.run(trainer, stop or StopRequest()), "engine": engine}
        finally:
            lock.release()
    finally:
        trainer.close()


def resume_config(saved: dict[str, Any], args: argparse.Namespace) -> Config:
    """The checkpoint's settings, then the --config file and flags given with --resume."""
    return resolve_config(args, base=Config().updated(saved["config"], source="checkpoint"))


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset",
                        help=f"starting settings: {', '.join(PRESETS)} (default: tutorial)")
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file of settings; flags override it, it "
                                                         "overrides the preset")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help=f"continue the run saved in CHECKPOINT (its {CHECKPOINT_NAME} or run directory)")
    parser.add_argument("--overwrite", action="store_true", help="replace the logs and checkpoints of an existing "
                                                                 "run of the same name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (shown when stderr is a terminal)")
    add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = StopRequest()
    try:
        if args.resume and args.preset:
            raise UsageError("--preset cannot be used with --resume: a resumed run starts from its own settings")
        if args.resume and args.overwrite:
            raise UsageError("--overwrite cannot be used with --resume: a resumed run continues its own files")
        saved = load_checkpoint(resolve_checkpoint(args.resume)) if args.resume else None
        config = resume_config(saved, args) if saved else resolve_config(args)
        with stop.installed():
            summary = train(config, args.preset or "tutorial", resume=saved, overwrite=args.overwrite, stop=stop,
                            progress=not args.no_progress)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except TrainingDiverged as exc:
        print(f"{parser.prog}: error: training diverged: {exc}", file=sys.stderr)
        return 1
    except EnvironmentFault as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except SaveError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted before training started", file=sys.stderr)
        return 130
    print(json.dumps(summary), flush=True)
    if summary["interrupted"]:
        print(f"interrupted by {summary['interrupted']}; checkpoint saved. Resume with:\n  python -m "
              f"paddle_ddpg.train --resume {shlex.quote(summary['checkpoint'])}", file=sys.stderr)
        return 128 + signal.Signals[summary["interrupted"]].value
    return 0


if __name__ == "__main__":
    sys.exit(main())
