"""The tutorial's training loop (section 四) as a program: `python -m paddle_ddpg.train`.
The loop is `loop.Trainer`; here a run gets its settings, checkpoint to resume from, directories and lock."""

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

from paddle_ddpg import fast
from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint, record_of, resolve_checkpoint, restore
from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.device import cpu_threads, set_device
from paddle_ddpg.files import SaveError, atomic_write
from paddle_ddpg.loop import EnvironmentFault, StopRequest, Trainer, TrainingDiverged
from paddle_ddpg.runfiles import RunFiles, claim, run_paths

ARCHITECTURE = ("actor_hidden", "critic_hidden", "critic_action_layer", "memory_size", "env", "algo", "noise")
PLACE = ("run_name", "logdir", "model_dir")  # where a run lives: a resumed run continues in its own directories


def train(config: Config, preset: str = "tutorial", resume: dict[str, Any] | None = None, overwrite: bool = False,
          stop: StopRequest | None = None, on_eval: Callable[[dict[str, float]], None] | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train a run, or continue `resume` (a `load_checkpoint` result), and return its summary. `on_eval` gets each
    evaluation as it happens, for a sweep's scheduler."""
    config.validate()
    for name in ARCHITECTURE + PLACE if resume is not None else ():
        if config.to_dict()[name] != resume["config"][name]:
            raise UsageError(f"cannot change {name} when resuming (the run has {resume['config'][name]!r})")
    if not config.run_name:
        label = preset if preset != config.env else config.algo  # env presets are named after their env
        env = config.env.replace("/", "-")  # namespaced ids such as phys2d/Pendulum-v0
        config = dataclasses.replace(config, run_name=f"{env}_{label}_s{config.seed}_{time.strftime('%Y%m%d-%H%M%S')}")
    set_device(config.device)
    fast.set_cpu_threads(cpu_threads(config.threads, config.batch_size))
    run_dir, log_dir = run_paths(config, resume)
    trainer = Trainer(config)  # checks the env and the checkpoint before anything is written
    try:
        engine = config.engine
        if engine == "fast" and (reason := fast.accelerate(trainer.agent)) is not None:
            print(f"fast engine not used: {reason}; training with the plain engine", file=sys.stderr)
            engine = "plain"
        if resume is not None:
            restore(trainer, resume)
        lock, log_dir = claim(run_dir, log_dir, resume is not None, overwrite)
        try:
            atomic_write(run_dir / "config.json", lambda f: f.write(json.dumps(config.to_dict(), indent=2).encode()))
            trainer.hooks = files = RunFiles(trainer, run_dir, log_dir, progress, resume and record_of(resume), on_eval)
            return {**files.run(trainer, stop or StopRequest()), "engine": engine}
        finally:
            lock.release()
    finally:
        trainer.close()


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.train", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", help=f"starting settings: {', '.join(PRESETS)} (default: tutorial)")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON or YAML file of settings; flags override it, it overrides the preset")
    parser.add_argument("--resume", metavar="CHECKPOINT",
                        help=f"continue the run saved in CHECKPOINT (its {CHECKPOINT_NAME} or run directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the logs and checkpoints of an existing run of the same name")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (shown when stderr is a terminal)")
    add_config_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, stop = parser.parse_args(argv), StopRequest()
    try:
        for flag, why in (("preset", "starts from its own settings"), ("overwrite", "continues its own files")):
            if args.resume and getattr(args, flag):
                raise UsageError(f"--{flag} cannot be used with --resume: a resumed run {why}")
        saved = load_checkpoint(resolve_checkpoint(args.resume)) if args.resume else None
        # A resumed run: the checkpoint's settings, then the --config file and flags given with --resume.
        config = resolve_config(args, base=Config().updated(saved["config"], source="checkpoint") if saved else None)
        with stop.installed():
            summary = train(config, args.preset or "tutorial", resume=saved, overwrite=args.overwrite, stop=stop,
                            progress=not args.no_progress)
    except (UsageError, SaveError, TrainingDiverged, EnvironmentFault) as exc:
        parser.fail(exc, "training diverged: " if isinstance(exc, TrainingDiverged) else "")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted before training started\n")
    print(json.dumps(summary), flush=True)
    if summary["interrupted"]:
        print(f"interrupted by {summary['interrupted']}; checkpoint saved. Resume with:\n  python -m "
              f"paddle_ddpg.train --resume {shlex.quote(summary['checkpoint'])}", file=sys.stderr)
        return 128 + signal.Signals[summary["interrupted"]].value
    return 0


if __name__ == "__main__":
    sys.exit(main())
