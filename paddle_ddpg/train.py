"""The tutorial's training loop (section 四) as a program: `python -m paddle_ddpg.train`.

Per step: act with epsilon-scaled noise, store the transition, and once the memory holds more than
`learning_starts` transitions, learn from one random batch. Per episode: log 'episode reward' to VisualDL,
print the tutorial's progress line, evaluate without noise now and then, and checkpoint.
"""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import argparse
import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from paddle_ddpg import fast, rundir
from paddle_ddpg.agent import DDPG
from paddle_ddpg.checkpoint import (CHECKPOINT_NAME, load_checkpoint, resolve_checkpoint, save_checkpoint,
                                    save_state_dict)
from paddle_ddpg.cli import Parser, add_config_arguments, resolve_config
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.device import cpu_threads, require_memory, set_device
from paddle_ddpg.env import TRAIN_STREAM, episode_seed, make_env
from paddle_ddpg.env import evaluate
from paddle_ddpg.files import SaveError, atomic_write
from paddle_ddpg.logs import RunLog
from paddle_ddpg.memory import Memory
from paddle_ddpg.noise import decay_epsilon
from paddle_ddpg.policy import Policy, check_dims
from paddle_ddpg.progress import TrainingProgress, wanted

LOSS_FLUSH = 200  # losses buffered between syncs: reading a loss forces the device to finish its queue
# Fixed once a run has started.
ARCHITECTURE = ("actor_hidden", "critic_hidden", "critic_action_layer", "memory_size", "env", "algo", "noise")
# Where a run lives: a resumed run continues in its own directories.
PLACE = ("run_name", "logdir", "model_dir")


class TrainingDiverged(Exception):
    """A loss or a parameter became NaN or inf; the last checkpoint on disk predates it."""


class EnvironmentFault(Exception):
    """The environment returned NaN or inf; it was not stored, and the last checkpoint predates it."""


@dataclass
class StopRequest:
    """Set by SIGINT/SIGTERM: the first asks to stop after the episode, a second Ctrl-C after the step."""

    after_episode: bool = False
    now: bool = False
    signal_name: str = ""

    def handle(self, signum: int, _frame: Any) -> None:
        # os.write, not print: a print here could land inside a print of the main loop, which Python refuses.
        if self.after_episode and signum == signal.SIGINT:
            self.now = True
            os.write(1, b"\nsecond Ctrl-C: stopping after this step\n")
            return
        self.after_episode = True
        self.signal_name = signal.Signals(signum).name
        os.write(1, f"\n{self.signal_name}: stopping at the end of this episode (Ctrl-C again to stop now)\n".encode())

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class Trainer:
    """One training run: its environment, agent, memory, counters, logs and checkpoints."""

    def __init__(self, config: Config, run_dir: Path, log_dir: Path, resume: dict[str, Any] | None = None,
                 on_eval: Callable[[dict[str, float]], None] | None = None) -> None:
        self.config = config
        self.on_eval = on_eval
        self.run_dir = run_dir
        self.log_dir = log_dir
        self.env = make_env(config.env, config.max_episode_steps)
        self.eval_env = make_env(config.env, config.max_episode_steps)
        state_dim, action_dim = self.env.observation_space.shape[0], self.env.action_space.shape[0]
        paddle.seed(config.seed)
        # Every draw after initialisation comes from these generators, whose states the checkpoint keeps.
        self.noise_rng = np.random.default_rng([config.seed, 1])
        self.memory = Memory(config.memory_size, state_dim, action_dim, rng=np.random.default_rng([config.seed, 2]))
        require_memory(network_bytes(config, state_dim, action_dim),
                       f"networks of {list(config.actor_hidden)} and {list(config.critic_hidden)} hidden units")
        self.agent = DDPG(state_dim, action_dim, self.env.action_space.low, self.env.action_space.high, config,
                          rng=self.noise_rng)
        # Evaluation acts through the Actor layer, as `python -m paddle_ddpg.evaluate` does: the same returns.
        self.policy = Policy(self.agent.actor, config.env, state_dim, action_dim, self.agent.action_low,
                             self.agent.action_high, config.max_episode_steps, config)
        self.engine = config.engine
        if config.engine == "fast" and (reason := fast.accelerate(self.agent)) is not None:
            print(f"the fast engine cannot run here ({reason}); training with the plain engine", file=sys.stderr)
            self.engine = "plain"
        self.episode = 0
        self.steps = 0
        self.epsilon = 1.0
        self.last_eval: float | None = None
        self.last_eval_std: float | None = None
        self._evaluated_after = -1  # completed episodes at the last evaluation
        self.evals: list[dict[str, float]] = []  # every evaluation of this run: the learning curve
        self.eval_seconds = 0.0  # wall time spent evaluating, left out of the curve's train_seconds
        self._earlier_seconds = 0.0  # wall time of the run before it was last resumed
        self._clock = time.perf_counter()
        self._losses: list[tuple[int, str, paddle.Tensor]] = []  # (learn step, VisualDL tag, loss)
        self._loss_sums: dict[str, tuple[float, int]] = {}  # VisualDL tag -> (sum, count) not yet written
        if resume is not None:
            check_dims(config.env, resume["config"]["env"], resume["state_dim"], resume["action_dim"], self.env)
            self._restore(resume)
        self.writer: RunLog | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    @property
    def best_actor_path(self) -> Path:
        """The actor at the run's best evaluation so far. Pendulum policies swing by tens from one evaluation
        to the next, so the last one is often not the best; the evaluations a run keeps (`evals`) say which
        was, also after a resume."""
        return self.run_dir / f"{self.config.algo}-actor-best.pdparams"

    @property
    def wall_seconds(self) -> float:
        return self._earlier_seconds + time.perf_counter() - self._clock

    def run(self, stop: StopRequest, progress: bool = True) -> dict[str, Any]:
        """Train to the end of the budget; `progress`: a progress bar on stderr, where stderr is a terminal."""
        config = self.config
        self.writer = RunLog(self.log_dir)
        bar = TrainingProgress(config, self.steps, self.episode, show=wanted(progress))
        self._clock = time.perf_counter()
        rate_clock, rate_steps = self._clock, self.steps
        try:
            while self.episode < config.episodes and not self._out_of_steps() and not stop.after_episode:
                episode_reward = self._run_episode(stop)
                self._flush_losses()
                if episode_reward is None:  # a second Ctrl-C cut the episode short: it is not counted
                    break
                if not self.agent.parameters_finite():
                    raise TrainingDiverged(f"non-finite network parameters after learn step {self.agent.learn_steps}"
                                           f" (env step {self.steps}, episode {self.episode})")
                self.writer.add_scalar("episode reward", episode_reward, self.episode)
                self.writer.commit()
                if self.episode % config.log_interval == 0:
                    now = time.perf_counter()
                    rate = (self.steps - rate_steps) / max(now - rate_clock, 1e-9)
                    rate_clock, rate_steps = now, self.steps
                    print(f"Epoch:{self.episode}, episode reward is {episode_reward}"
                          f"  [step {self.steps}, {rate:.0f} steps/s, epsilon {self.epsilon:.3f}]", flush=True)
                if config.eval_interval and (self.episode + 1) % config.eval_interval == 0:
                    self._evaluate(stop, completed=self.episode + 1)
                if self.episode % config.save_interval == 0:
                    self._save_snapshots()
                self.episode += 1
                if self.episode % config.log_interval == 0:
                    self._save_checkpoint()
                bar.episode_done(self.steps, self.episode, self.last_eval)
            interrupted = stop.signal_name or None
            if not interrupted and self._evaluated_after != self.episode:
                self._evaluate(stop, completed=self.episode)
                if self._evaluated_after != self.episode:  # Ctrl-C twice cut the final evaluation short
                    interrupted = stop.signal_name
            self._save_snapshots(self.episode - 1)
            self._save_checkpoint()
        except (TrainingDiverged, EnvironmentFault) as exc:
            kept = (f"the last good checkpoint, {self.checkpoint_path}, is left as it was"
                    if self.checkpoint_path.is_file() else "no checkpoint had been written yet")
            raise type(exc)(f"{exc}; {kept}") from None
        finally:
            bar.close()
            self.writer.close()
            self.env.close()
            self.eval_env.close()
        return {"run": self.run_dir.name, "episodes": self.episode, "steps": self.steps,
                "learn_steps": self.agent.learn_steps, "checkpoint": str(self.checkpoint_path),
                "final_eval_mean": None if interrupted else self.last_eval,
                "final_eval_std": None if interrupted else self.last_eval_std,
                "best_eval_mean": max((e["mean"] for e in self.evals), default=None),
                "best_actor": str(self.best_actor_path) if self.evals else None,
                "wall_seconds": round(self.wall_seconds, 2),
                "train_seconds": round(self.wall_seconds - self.eval_seconds, 2), "logdir": str(self.log_dir),
                "engine": self.engine, "interrupted": interrupted, "evals": self.evals}

    def _run_episode(self, stop: StopRequest) -> float | None:
        """One episode of acting and learning; None if a second Ctrl-C cut it short."""
        config, agent, memory = self.config, self.agent, self.memory
        state, _ = self.env.reset(seed=episode_seed(config.seed, TRAIN_STREAM, self.episode))
        self._check_finite(state, 0.0, "reset")
        agent.noise.reset()
        episode_reward = 0.0
        while True:
            if self.steps < config.random_steps:
                action = agent.random_action()
            else:
                action = agent.select_action(state, self.epsilon)
            if not np.isfinite(action).all():
                raise TrainingDiverged(f"non-finite action from the policy after learn step {agent.learn_steps} "
                                       f"(env step {self.steps + 1}, episode {self.episode})")
            next_state, reward, terminated, truncated, _ = self.env.step(action)
            self._check_finite(next_state, reward, f"env step {self.steps + 1}")
            episode_reward += float(reward)
            memory.add(state, action, (reward + config.reward_offset) / config.reward_scale, next_state, terminated)
            self.steps += 1
            if memory.size() > config.learning_starts and memory.size() >= config.batch_size:
                if agent.learn_steps == 0:
                    print("train begin!", flush=True)
                losses = agent.learn(memory.sample(config.batch_size))
                self._losses.extend((agent.learn_steps, tag, loss) for tag, loss in losses.items())
                if len(self._losses) >= LOSS_FLUSH:
                    self._flush_losses()
            self.epsilon = decay_epsilon(self.epsilon, config.explore, config.epsilon_min)
            state = next_state
            if terminated or truncated or self._out_of_steps():
                return episode_reward
            if stop.now:
                return None

    def _check_finite(self, observation: np.ndarray, reward: float, when: str) -> None:
        """Stop at the first NaN or inf from the env, before it enters the replay memory, naming the env:
        otherwise it would surface later as non-finite network parameters, blaming the networks."""
        if not (np.isfinite(observation).all() and math.isfinite(reward)):
            raise EnvironmentFault(f"{self.config.env} returned a non-finite value at {when} (episode "
                                   f"{self.episode}): observation {np.asarray(observation).tolist()}, reward {reward}")

    def _out_of_steps(self) -> bool:
        return 0 < self.config.total_steps <= self.steps

    def _flush_losses(self) -> None:
        """Check the buffered losses with one device sync, stopping on the first non-finite one, and write
        each tag's mean to VisualDL at every learn step that is a multiple of `loss_log_interval`."""
        if not self._losses:
            return
        entries, self._losses = self._losses, []
        values = paddle.stack([loss for _, _, loss in entries]).numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            step, tag, _ = entries[bad[0]]
            raise TrainingDiverged(f"non-finite {tag} ({values[bad[0]]}) at learn step {step}")
        interval = self.config.loss_log_interval
        for (step, tag, _), value in zip(entries, values):
            total, count = self._loss_sums.get(tag, (0.0, 0))
            total, count = total + float(value), count + 1
            if step % interval == 0:
                self.writer.add_scalar(tag, total / count, step)
                total, count = 0.0, 0
            self._loss_sums[tag] = (total, count)

    def _evaluate(self, stop: StopRequest, completed: int) -> None:
        """Noise-free evaluation after `completed` episodes, logged at the last episode's index."""
        started = time.perf_counter()
        returns = evaluate(self.policy.predict, self.eval_env, self.config.eval_episodes, self.config.seed,
                           should_stop=lambda: stop.now)
        self.eval_seconds += time.perf_counter() - started
        if len(returns) == self.config.eval_episodes:
            self.last_eval, self.last_eval_std = float(returns.mean()), float(returns.std())
            if self.last_eval > max((e["mean"] for e in self.evals), default=-math.inf):
                save_state_dict(self.best_actor_path, self.agent.actor.state_dict())
            self.evals.append({"episodes": completed, "steps": self.steps, "mean": self.last_eval,
                               "std": self.last_eval_std,
                               "train_seconds": round(self.wall_seconds - self.eval_seconds, 2)})
            self._evaluated_after = completed
            self.writer.add_scalar("eval return", self.last_eval, completed - 1)
            if self.on_eval is not None:
                self.on_eval(self.evals[-1])

    def _save_snapshots(self, episode: int | None = None) -> None:
        """The tutorial's `ddpg-actor<epoch>` / `ddpg-critic<epoch>` files (as .pdparams; `td3-` for TD3)."""
        episode = self.episode if episode is None else episode
        if episode < 0:  # stopped before the first episode ended
            return
        algo = self.config.algo
        save_state_dict(self.run_dir / f"{algo}-actor{episode}.pdparams", self.agent.actor.state_dict())
        save_state_dict(self.run_dir / f"{algo}-critic{episode}.pdparams", self.agent.critic.state_dict())

    def _save_checkpoint(self) -> None:
        config = self.config
        save_checkpoint(self.checkpoint_path, {
            "config": config.to_dict(),
            "state_dim": self.env.observation_space.shape[0],
            "action_dim": self.env.action_space.shape[0],
            "agent": self.agent.state_dict(),
            "memory": self.memory.state_dict(),
            "rng": {"noise": self.noise_rng.bit_generator.state, "memory": self.memory.rng.bit_generator.state},
            "episode": self.episode, "steps": self.steps, "epsilon": self.epsilon,
            "wall_seconds": self.wall_seconds, "last_eval": self.last_eval, "last_eval_std": self.last_eval_std,
            "evals": self.evals, "eval_seconds": self.eval_seconds,
            "loss_sums": self._loss_sums,  # so that a resumed run logs the same loss means as an uninterrupted one
            "log_dir_from_run_dir": os.path.relpath(os.path.realpath(self.log_dir), os.path.realpath(self.run_dir)),
        })

    def _restore(self, saved: dict[str, Any]) -> None:
        """Continue from a `load_checkpoint` result; whatever in it does not fit this run is one UsageError."""
        try:
            self.agent.set_state_dict(saved["agent"])
            self.memory.set_state_dict(saved["memory"])
            self.noise_rng.bit_generator.state = saved["rng"]["noise"]
            self.memory.rng.bit_generator.state = saved["rng"]["memory"]
            self.evals = [{k: float(e[k]) if k in ("mean", "std", "train_seconds") else int(e[k])
                           for k in ("episodes", "steps", "mean", "std", "train_seconds")} for e in saved["evals"]]
            self._loss_sums = {str(tag): (float(total), int(count))
                               for tag, (total, count) in saved["loss_sums"].items()}
        except UsageError as exc:
            raise UsageError(f"checkpoint {saved['path']}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise UsageError(f"checkpoint {saved['path']} is damaged: {type(exc).__name__}: {exc}") from None
        self.episode, self.steps, self.epsilon = saved["episode"], saved["steps"], float(saved["epsilon"])
        self.last_eval, self.last_eval_std = saved["last_eval"], saved["last_eval_std"]
        self.eval_seconds, self._earlier_seconds = float(saved["eval_seconds"]), float(saved["wall_seconds"])


def network_bytes(config: Config, state_dim: int, action_dim: int) -> int:
    """Memory the agent's networks take: float32 online and target weights, Adam's two moments, a gradient."""
    def count(sizes_in: list[int], sizes_out: list[int]) -> int:
        return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes_in, sizes_out))

    critic_in = [state_dim, *config.critic_hidden]
    critic_in[config.critic_action_layer] += action_dim
    critics = 2 if config.algo == "td3" else 1
    return 4 * 5 * (count([state_dim, *config.actor_hidden], [*config.actor_hidden, action_dim])
                    + critics * count(critic_in, [*config.critic_hidden, 1]))


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
    trainer = Trainer(config, run_dir, log_dir, resume=resume, on_eval=on_eval)
    lock, trainer.log_dir = rundir.claim(run_dir, log_dir, resume is not None, overwrite)
    try:
        atomic_write(run_dir / "config.json", lambda f: f.write(json.dumps(config.to_dict(), indent=2).encode()))
        return trainer.run(stop or StopRequest(), progress)
    finally:
        lock.release()


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
        print(f"{parser.prog}: error: {exc}; its previous version, if any, is intact", file=sys.stderr)
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
