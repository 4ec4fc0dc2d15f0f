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


def test_evaluations_by_env_steps_come_mid_episode_and_the_last_is_not_repeated() -> None:
    """The TD3 paper's protocol: every N steps whatever the episodes; a run ending on such a step ends evaluated."""
    config = Config(episodes=3, max_episode_steps=20, learning_starts=16, batch_size=8, eval_interval=0,
                    eval_step_interval=15, eval_episodes=1, memory_size=500, total_steps=45)
    hooks = Recorder()
    trainer = Trainer(config, hooks)
    assert trainer.run(StopRequest()) is None
    trainer.close()
    assert [(e["steps"], e["episodes"]) for e in trainer.evals] == [(15, 0), (30, 1), (45, 2)]
    assert hooks.scalars["eval return"] == [0, 0, 1] and trainer.episode == 3


def package_imports() -> dict[str, set[str]]:
    """Each module of the package (dotted, without `paddle_ddpg.`) and the package's modules it imports anywhere
    in its file, inside functions too: a function-level import that closes a cycle is still a cycle."""
    root = Path(paddle_ddpg.loop.__file__).parent
    names = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for p in root.rglob("*.py")}
    graph = {}
    for name in names:
        path = root / (name.replace(".", "/") + ".py")
        tree = ast.parse((path if path.exists() else root / name.replace(".", "/") / "__init__.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("paddle_ddpg"):
                base = node.module.removeprefix("paddle_ddpg").lstrip(".")
                subs = {f"{base}.{a.name}".lstrip(".") for a in node.names} & names
                found |= subs or ({base} & names)
        graph[name] = found - {name}
    return graph


def test_the_core_imports_only_the_core_and_nothing_imports_in_a_cycle() -> None:
    """The loop and the algorithm import no file layer, lock, log writer, progress bar or fast engine; operations
    import the core, never the reverse, and no chain of imports comes back to where it started."""
    graph = package_imports()
    for name in CORE | {"loop"}:
        assert graph[name] <= CORE, (name, graph[name] - CORE)

    for name in graph:
        stack, seen = list(graph[name]), set()
        while stack:
            module = stack.pop()
            assert module != name, f"{name} imports itself through {sorted(seen)}"
            if module not in seen:
                seen.add(module)
                stack.extend(graph[module])
