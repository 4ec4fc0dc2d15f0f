"""What a training run writes around its loop: the VisualDL record, the tutorial's snapshots, the actor of the
best evaluation, checkpoints, and the progress bar; the `Hooks` of `loop.Trainer`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from paddle_ddpg.checkpoint import CHECKPOINT_NAME, capture, save_checkpoint
from paddle_ddpg.logs import RunLog
from paddle_ddpg.loop import EnvironmentFault, Hooks, StopRequest, Trainer, TrainingDiverged
from paddle_ddpg.progress import TrainingProgress, wanted
from paddle_ddpg.snapshot import save_state_dict


class RunFiles(Hooks):
    """A run directory and a log directory, written as `Trainer.run` goes; made once the run is claimed.
    `cut_back`: the VisualDL record's point at the checkpoint a run resumes from."""

    def __init__(self, trainer: Trainer, run_dir: Path, log_dir: Path, progress: bool,
                 cut_back: tuple[str, int] | None, on_eval: Callable[[dict[str, float]], None] | None) -> None:
        self.run_dir, self.log_dir, self.on_eval = run_dir, log_dir, on_eval
        self.log = RunLog(log_dir, cut_back)
        self.bar = TrainingProgress(trainer.config, trainer.steps, trainer.episode, show=wanted(progress))

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    def best_actor_path(self, algo: str) -> Path:
        """The actor at the run's best evaluation so far. Pendulum policies swing by tens from one evaluation
        to the next, so the last one is often not the best; the evaluations a run keeps (`evals`) say which
        was, also after a resume."""
        return self.run_dir / f"{algo}-actor-best.pdparams"

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
        best = self.best_actor_path(trainer.config.algo)
        return {"run": self.run_dir.name, "episodes": trainer.episode, "steps": trainer.steps,
                "learn_steps": trainer.agent.learn_steps, "checkpoint": str(self.checkpoint_path),
                "final_eval_mean": None if interrupted else trainer.last_eval,
                "final_eval_std": None if interrupted else trainer.last_eval_std,
                "best_eval_mean": max((e["mean"] for e in trainer.evals), default=None),
                "best_actor": str(best) if trainer.evals else None,
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
            save_state_dict(self.best_actor_path(trainer.config.algo), trainer.agent.actor.state_dict())
        if self.on_eval is not None:
            self.on_eval(trainer.evals[-1])

    def snapshots(self, trainer: Trainer, episode: int) -> None:
        """The tutorial's `ddpg-actor<epoch>` / `ddpg-critic<epoch>` files (as .pdparams; `td3-` for TD3)."""
        if episode < 0:  # stopped before the first episode ended
            return
        algo = trainer.config.algo
        save_state_dict(self.run_dir / f"{algo}-actor{episode}.pdparams", trainer.agent.actor.state_dict())
        save_state_dict(self.run_dir / f"{algo}-critic{episode}.pdparams", trainer.agent.critic.state_dict())

    def checkpoint(self, trainer: Trainer) -> None:
        """The full state, with the VisualDL record's length once everything logged so far is on disk."""
        self.log.commit()
        save_checkpoint(self.checkpoint_path, capture(trainer, self.run_dir, self.log_dir, self.log.position))
