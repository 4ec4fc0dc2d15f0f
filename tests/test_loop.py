"""The training loop on its own: a `Trainer` with no files around it learns, counts and evaluates, and tells
its hooks what happened."""

from __future__ import annotations

import ast
from pathlib import Path

import paddle_ddpg.loop
from paddle_ddpg.config import Config
from paddle_ddpg.loop import Hooks, StopRequest, Trainer

CORE = {"agent", "config", "device", "env", "memory", "networks", "noise"}


class Recorder(Hooks):
    def __init__(self) -> None:
        self.scalars: dict[str, list[int]] = {}
        self.episodes: list[int] = []
        self.best: list[bool] = []

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.scalars.setdefault(tag, []).append(step)

    def episode_done(self, trainer: Trainer) -> None:
        self.episodes.append(trainer.episode)

    def evaluated(self, trainer: Trainer, best: bool) -> None:
        self.best.append(best)


def test_a_bare_trainer_runs_and_reports_through_its_hooks() -> None:
    config = Config(episodes=4, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=2,
                    eval_episodes=1, loss_log_interval=5, memory_size=500)
    hooks = Recorder()
    trainer = Trainer(config, hooks)
    assert trainer.run(StopRequest()) is None
    trainer.close()
    assert (trainer.episode, trainer.steps) == (4, 80)
    assert trainer.agent.learn_steps == 80 - 16
    assert hooks.episodes == [1, 2, 3, 4]
    assert hooks.scalars["episode reward"] == [0, 1, 2, 3]
    assert hooks.scalars["eval return"] == [1, 3] and [e["episodes"] for e in trainer.evals] == [2, 4]
    assert hooks.best[0] and len(hooks.best) == 2
    assert hooks.scalars["critic loss"] == list(range(5, trainer.agent.learn_steps + 1, 5))


def test_the_loop_imports_only_the_core() -> None:
    """No file layer, lock, log writer, progress bar or fast engine: the loop is what a learner reads."""
    tree = ast.parse(Path(paddle_ddpg.loop.__file__).read_text())
    imported = {node.module.split(".")[1] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module and node.module.startswith("paddle_ddpg.")}
    assert imported <= CORE, imported - CORE
