"""A run's directory: found, claimed by one process and kept apart from every other run's (`run_paths`,
`claim`), then written as `loop.Trainer` goes (`RunFiles`, its `Hooks`): the VisualDL record, the tutorial's
snapshots, the actor of the best evaluation, checkpoints, and the progress bar."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, capture, log_dir_of, record_of, save_checkpoint
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.files import LOCK_NAME, RunLock, disk_error, remove_stale_temporaries
from paddle_ddpg.logs import RunLog
from paddle_ddpg.loop import EnvironmentFault, Hooks, StopRequest, Trainer, TrainingDiverged
from paddle_ddpg.progress import TrainingProgress, wanted
from paddle_ddpg.snapshot import save_state_dict


def run_paths(config: Config, resume: dict[str, Any] | None) -> tuple[Path, Path]:
    """The run's checkpoint and log directories. A resumed run stays beside its checkpoint and finds its logs
    from the directory's real location (through a symbolic link to the run, `..` would lead elsewhere)."""
    if resume is None:
        return Path(config.model_dir) / config.run_name, Path(config.logdir) / config.run_name
    run_dir = Path(os.path.realpath(Path(resume["path"]).parent))
    log_dir, record = log_dir_of(run_dir, resume), record_of(resume)
    # The stored way there has the shape of the run's own; a directory it leads to that holds VisualDL records,
    # none of them the one the checkpoint names, is another run's.
    if record is not None and any(log_dir.glob("vdlrecords.*.log")) and not (log_dir / record[0]).is_file():
        raise UsageError(f"checkpoint {resume['path']}: its log directory {log_dir} holds another run's VisualDL "
                         f"record, not {record[0]}; not resumed")
    return run_dir, log_dir


def claim(run_dir: Path, log_dir: Path, resuming: bool, overwrite: bool) -> tuple[RunLock, Path]:
    """Lock the run and make its directories; the lock and the log directory to write. The lock is taken before an
    `overwrite` deletes anything, so two processes never write one run; if anything here fails, what it made is
    removed, so a run that could not start leaves nothing behind."""
    if not resuming and not overwrite:
        _refuse_existing(run_dir, log_dir)
    made = _missing(run_dir)
    lock = RunLock(run_dir)
    try:
        _writable(run_dir, probe=False)
        lock.acquire()
        if not resuming and not overwrite:
            _refuse_existing(run_dir, log_dir)  # another process may have made it while this one waited
        if resuming and log_dir.name != run_dir.name and (run_dir.parent / log_dir.name / CHECKPOINT_NAME).is_file():
            log_dir = log_dir.parent / run_dir.name  # a copy of a run still beside it (a renamed one keeps its logs)
        made += [d for d in _missing(log_dir) if d not in made]
        for d in (run_dir, log_dir):
            _writable(d, probe=True)
        remove_stale_temporaries(run_dir)
        if overwrite and not resuming:
            for old in [*log_dir.glob("vdlrecords.*"), *run_dir.glob("*-actor*.pdparams"),
                        *run_dir.glob("*-critic*.pdparams"), run_dir / CHECKPOINT_NAME]:
                old.unlink(missing_ok=True)
    except BaseException:
        lock.release()
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()  # only ever empty: what this call made and nothing wrote into
        raise
    return lock, log_dir


def _missing(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet."""
    missing = []
    with contextlib.suppress(OSError):  # a name too long: nothing of it can be made either
        while not directory.exists() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
    return missing


def _writable(directory: Path, probe: bool) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if probe:
            (directory / ".write-test").touch()
            (directory / ".write-test").unlink()
    except OSError as exc:
        raise disk_error(exc, f"cannot write to {directory}") from None


def _refuse_existing(run_dir: Path, log_dir: Path) -> None:
    for d in (run_dir, log_dir):
        try:
            occupied = d.is_dir() and any(p.name != LOCK_NAME for p in d.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot read {d}: {exc.strerror}") from None
        if occupied:
            checkpoint = run_dir / CHECKPOINT_NAME
            resume = f"resume it with --resume {checkpoint}, " if checkpoint.is_file() else ""
            raise UsageError(f"run {run_dir.name!r} already exists in {d}; {resume}pick another --run-name, "
                             "or pass --overwrite")


class RunFiles(Hooks):
    """A run directory and a log directory, written as `Trainer.run` goes. `cut_back`: the VisualDL record's
    point at the checkpoint a run resumes from. The actor of the best evaluation is kept beside the last:
    Pendulum policies swing by tens from one evaluation to the next, and `evals` says which was best."""

    def __init__(self, trainer: Trainer, run_dir: Path, log_dir: Path, progress: bool,
                 cut_back: tuple[str, int] | None, on_eval: Callable[[dict[str, float]], None] | None) -> None:
        self.run_dir, self.log_dir, self.on_eval = run_dir, log_dir, on_eval
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.best_actor = run_dir / f"{trainer.config.algo}-actor-best.pdparams"
        self.log = RunLog(log_dir, cut_back)
        self.bar = TrainingProgress(trainer.config, trainer.steps, trainer.episode, show=wanted(progress))

    def run(self, trainer: Trainer, stop: StopRequest) -> dict[str, Any]:
        """`trainer.run` with its files, and the run's summary."""
        try:
            interrupted = trainer.run(stop)
            self.snapshots(trainer, trainer.episode - 1)
            self.checkpoint(trainer)
        except (TrainingDiverged, EnvironmentFault) as exc:
            kept = (f"the last good checkpoint, {self.checkpoint_path}, is left as it was"
                    if self.checkpoint_path.is_file() else "no checkpoint had been written yet")
            raise type(exc)(f"{exc}; {kept}") from None
        finally:
            self.bar.close()
            self.log.close()
        return {"run": self.run_dir.name, "episodes": trainer.episode, "steps": trainer.steps,
                "learn_steps": trainer.agent.learn_steps, "checkpoint": str(self.checkpoint_path),
                "final_eval_mean": None if interrupted else trainer.last_eval,
                "final_eval_std": None if interrupted else trainer.last_eval_std,
                "best_eval_mean": max((e["mean"] for e in trainer.evals), default=None),
                "best_actor": str(self.best_actor) if trainer.evals else None,
                "wall_seconds": round(trainer.wall_seconds, 2),
                "train_seconds": round(trainer.wall_seconds - trainer.eval_seconds, 2), "logdir": str(self.log_dir),
                "interrupted": interrupted, "evals": trainer.evals}

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.log.add_scalar(tag, value, step)

    def episode_done(self, trainer: Trainer) -> None:
        self.log.commit()
        if (trainer.episode - 1) % trainer.config.save_interval == 0:
            self.snapshots(trainer, trainer.episode - 1)
        if trainer.episode % trainer.config.log_interval == 0:
            self.checkpoint(trainer)
        self.bar.episode_done(trainer.steps, trainer.episode, trainer.last_eval)

    def evaluated(self, trainer: Trainer, best: bool) -> None:
        if best:
            save_state_dict(self.best_actor, trainer.agent.actor.state_dict())
        if self.on_eval is not None:
            self.on_eval(trainer.evals[-1])

    def snapshots(self, trainer: Trainer, episode: int) -> None:
        """The tutorial's `ddpg-actor<epoch>` / `ddpg-critic<epoch>` files (as .pdparams; `td3-` for TD3)."""
        for name, net in (("actor", trainer.agent.actor), ("critic", trainer.agent.critic)):
            if episode >= 0:  # else stopped before the first episode ended
                save_state_dict(self.run_dir / f"{trainer.config.algo}-{name}{episode}.pdparams", net.state_dict())

    def checkpoint(self, trainer: Trainer) -> None:
        """The full state, with the VisualDL record's length once everything logged so far is on disk."""
        self.log.commit()
        save_checkpoint(self.checkpoint_path, capture(trainer, self.run_dir, self.log_dir, self.log.position))
