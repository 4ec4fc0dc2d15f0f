"""A run's directories: found, claimed by one process and kept apart from every other run's, then written as
`loop.Trainer` goes (`RunFiles`, its `Hooks`; `RunLog`, the VisualDL record)."""

from __future__ import annotations

import contextlib
import io
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from visualdl import LogWriter

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, capture, log_dir_of, record_of, save_checkpoint
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.files import LOCK_NAME, RunLock, SaveError, disk_error, remove_stale_temporaries
from paddle_ddpg.loop import EnvironmentFault, Hooks, StopRequest, Trainer, TrainingDiverged
from paddle_ddpg.progress import TrainingProgress, wanted
from paddle_ddpg.snapshot import save_state_dict


def run_paths(config: Config, resume: dict[str, Any] | None) -> tuple[Path, Path]:
    """A resumed run stays beside its checkpoint and finds its logs from the directory's real location (through a
    symbolic link to the run, `..` would lead elsewhere)."""
    if resume is None:
        return Path(config.model_dir) / config.run_name, Path(config.logdir) / config.run_name
    run_dir = Path(os.path.realpath(Path(resume["path"]).parent))
    log_dir, record = log_dir_of(run_dir, resume), record_of(resume)
    if record is not None and any(log_dir.glob("vdlrecords.*.log")) and not (log_dir / record[0]).is_file():
        raise UsageError(f"checkpoint {resume['path']}: its log directory {log_dir} holds another run's VisualDL "
                         f"record, not {record[0]}; not resumed")
    return run_dir, log_dir


def claim(run_dir: Path, log_dir: Path, resuming: bool, overwrite: bool) -> tuple[RunLock, Path]:
    """Lock the run, then make its directories or clear them for `overwrite`: two processes never write one run, and
    one that could not start leaves nothing behind."""
    fresh = not resuming and not overwrite
    if fresh:
        _refuse_existing(run_dir, log_dir)
    made, lock, where = _missing(run_dir), RunLock(run_dir), run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
        if fresh:
            _refuse_existing(run_dir, log_dir)  # another process may have made it while this one waited
        if resuming and log_dir.name != run_dir.name and (run_dir.parent / log_dir.name / CHECKPOINT_NAME).is_file():
            log_dir = log_dir.parent / run_dir.name  # a copy of a run still beside it (a renamed one keeps its logs)
        made += [d for d in _missing(log_dir) if d not in made]
        for where in (log_dir, run_dir):
            where.mkdir(parents=True, exist_ok=True)
            (where / ".write-test").touch()
            (where / ".write-test").unlink()
        remove_stale_temporaries(run_dir)
        if overwrite and not resuming:
            for old in [*log_dir.glob("vdlrecords.*"), *run_dir.glob("*-actor*.pdparams"),
                        *run_dir.glob("*-critic*.pdparams"), run_dir / CHECKPOINT_NAME]:
                old.unlink(missing_ok=True)
    except BaseException as exc:
        lock.release()
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                d.rmdir()  # only ever empty: what this call made and nothing wrote into
        if isinstance(exc, OSError):
            raise disk_error(exc, f"cannot write to {where}") from None
        raise
    return lock, log_dir


def _missing(directory: Path) -> list[Path]:
    missing = []
    with contextlib.suppress(OSError):  # a name too long: nothing of it can be made either
        while not directory.exists() and directory != directory.parent:
            missing.append(directory)
            directory = directory.parent
    return missing


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
    """`cut_back`: the VisualDL record's point at the checkpoint resumed from. The best evaluation's actor is kept
    beside the last: Pendulum policies swing by tens from one evaluation to the next."""

    def __init__(self, trainer: Trainer, run_dir: Path, log_dir: Path, progress: bool,
                 cut_back: tuple[str, int] | None, on_eval: Callable[[dict[str, float]], None] | None) -> None:
        self.run_dir, self.log_dir, self.on_eval = run_dir, log_dir, on_eval
        self.checkpoint_path = run_dir / CHECKPOINT_NAME
        self.best_actor = run_dir / f"{trainer.config.algo}-actor-best.pdparams"
        self.log = RunLog(log_dir, cut_back)
        self.bar = TrainingProgress(trainer.config, trainer.steps, trainer.episode, show=wanted(progress))

    def run(self, trainer: Trainer, stop: StopRequest) -> dict[str, Any]:
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
        """The tutorial's `ddpg-actor<epoch>` / `ddpg-critic<epoch>` files; none if stopped before an episode ended."""
        for name, net in (("actor", trainer.agent.actor), ("critic", trainer.agent.critic)) if episode >= 0 else ():
            save_state_dict(self.run_dir / f"{trainer.config.algo}-{name}{episode}.pdparams", net.state_dict())

    def checkpoint(self, trainer: Trainer) -> None:
        self.log.commit()
        record = (self.log.path.name, self.log.good)  # the length committed: where a resume cuts the record back to
        save_checkpoint(self.checkpoint_path, capture(trainer, self.run_dir, self.log_dir, record))


class RunLog:
    """VisualDL's writer, whose thread swallows errors (a full disk): `commit` reads the frames (an 8-byte length, the
    bytes) back, cutting a short record back to its last good point. It appends to the newest record, the one VisualDL
    shows; `cut_back` drops what a killed run logged after its checkpoint, so no step appears twice."""

    def __init__(self, log_dir: Path, cut_back: tuple[str, int] | None = None) -> None:
        existing = sorted(log_dir.glob("vdlrecords.*.log"))
        if existing and existing[-1].is_symlink():
            raise UsageError(f"{existing[-1]} is a symbolic link; a run writes its log only into its own files")
        if cut_back is not None and existing and existing[-1].name == cut_back[0]:
            try:
                if existing[-1].stat().st_size > cut_back[1]:
                    os.truncate(existing[-1], cut_back[1])
            except OSError as exc:
                raise SaveError(f"cannot cut the VisualDL record {existing[-1]} back to the checkpoint: "
                                f"{exc.strerror}") from None
        with contextlib.redirect_stdout(io.StringIO()):  # VisualDL announces the append on stdout
            self.writer = LogWriter(logdir=str(log_dir), file_name=existing[-1].name if existing else "")
        self.path = Path(self.writer.file_name)
        self.writer.flush()
        self.good, self.pending = self._size(), 0  # the end of the last checked record; records added since

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)
        self.pending += 1

    def commit(self) -> None:
        if not self.pending:
            return
        self.writer.flush()
        size, count, end = self._size(), 0, self.good
        try:
            with open(self.path, "rb") as f:
                while end < size:
                    f.seek(end)
                    end += 8 + struct.unpack("<Q", f.read(8))[0]
                    count += 1
        except (OSError, struct.error):
            end = -1
        if end != size or count != self.pending:
            with contextlib.suppress(OSError):
                os.truncate(self.path, self.good)
            raise SaveError(f"cannot write the VisualDL record {self.path}: {self.pending} values were logged, "
                            f"{count} reached the file (a full disk?); it is cut back to its last complete record")
        self.good, self.pending = size, 0

    def close(self) -> None:
        self.writer.close()

    def _size(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else -1
