"""The tutorial's training loop (section 四). What a program writes around it comes in through `Hooks`, so the
loop runs and is tested without files."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import paddle

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.device import require_memory
from paddle_ddpg.env import TRAIN_STREAM, episode_seed, evaluate, make_env
from paddle_ddpg.memory import Memory
from paddle_ddpg.networks import network_bytes
from paddle_ddpg.noise import decay_epsilon

LOSS_FLUSH = 200  # losses buffered between syncs: reading a loss forces the device to finish its queue


class TrainingDiverged(Exception):
    """A loss or a parameter became NaN or inf."""


class EnvironmentFault(Exception):
    """The environment returned NaN or inf; it was not stored."""


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


class Hooks:
    """What happens around the loop; these do nothing, so a bare `Trainer` only learns. `episode_done` comes after
    `trainer.episode` was counted up; `evaluated` after `trainer.evals` grew, `best` if it beats every earlier one."""

    def scalar(self, tag: str, value: float, step: int) -> None: ...
    def episode_done(self, trainer: Trainer) -> None: ...
    def evaluated(self, trainer: Trainer, best: bool) -> None: ...


class Trainer:
    """One run's learning: its environments, agent, replay memory and counters."""

    def __init__(self, config: Config, hooks: Hooks | None = None) -> None:
        self.config, self.hooks = config, hooks or Hooks()
        self.env, self.eval_env, self.noise_rng, self.memory, self.agent = build(config)
        self.episode, self.steps, self.epsilon = 0, 0, 1.0
        self.last_eval: float | None = None
        self.last_eval_std: float | None = None
        self.evaluated_at = -1  # env steps at the last evaluation
        self.evals: list[dict[str, float]] = []  # every evaluation of this run: the learning curve
        self.eval_seconds = 0.0  # wall time spent evaluating, left out of the curve's train_seconds
        self.earlier_seconds = 0.0  # wall time of the run before it was last resumed
        self._clock = time.perf_counter()
        self._losses: list[tuple[int, str, paddle.Tensor]] = []  # (learn step, tag, loss)
        self.loss_sums: dict[str, tuple[float, int]] = {}  # tag -> (sum, count) not yet logged

    @property
    def wall_seconds(self) -> float:
        return self.earlier_seconds + time.perf_counter() - self._clock

    def run(self, stop: StopRequest) -> str | None:
        """Train to the end of the budget, then evaluate; the signal's name if one cut that short, else None."""
        config, rate_steps = self.config, self.steps
        self._clock = rate_clock = time.perf_counter()
        while self.episode < config.episodes and not self._out_of_steps() and not stop.after_episode:
            episode_reward = self._run_episode(stop)
            self._flush_losses()
            if episode_reward is None:  # a second Ctrl-C cut the episode short: it is not counted
                break
            if not self.agent.parameters_finite():
                raise TrainingDiverged(f"non-finite network parameters after learn step {self.agent.learn_steps}"
                                       f" (env step {self.steps}, episode {self.episode})")
            self.hooks.scalar("episode reward", episode_reward, self.episode)
            if self.episode % config.log_interval == 0:
                now = time.perf_counter()
                rate, rate_clock, rate_steps = (self.steps - rate_steps) / max(now - rate_clock, 1e-9), now, self.steps
                print(f"Epoch:{self.episode}, episode reward is {episode_reward}"
                      f"  [step {self.steps}, {rate:.0f} steps/s, epsilon {self.epsilon:.3f}]", flush=True)
            if config.eval_interval and (self.episode + 1) % config.eval_interval == 0:
                self._evaluate(stop, completed=self.episode + 1)
            self.episode += 1
            self.hooks.episode_done(self)
        if stop.signal_name or self.evaluated_at == self.steps:
            return stop.signal_name or None
        self._evaluate(stop, completed=self.episode)
        return stop.signal_name if self.evaluated_at != self.steps else None  # Ctrl-C twice cut it short

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
            if config.eval_step_interval and self.steps % config.eval_step_interval == 0:
                self._evaluate(stop, completed=self.episode)
            if terminated or truncated or self._out_of_steps():
                return episode_reward
            if stop.now:
                return None

    def _check_finite(self, observation: np.ndarray, reward: float, when: str) -> None:
        """Name the env at its first NaN or inf: stored, it would be blamed on the networks."""
        if not (np.isfinite(observation).all() and math.isfinite(reward)):
            raise EnvironmentFault(f"{self.config.env} returned a non-finite value at {when} (episode "
                                   f"{self.episode}): observation {np.asarray(observation).tolist()}, reward {reward}")

    def _out_of_steps(self) -> bool:
        return 0 < self.config.total_steps <= self.steps

    def _flush_losses(self) -> None:
        entries, self._losses = self._losses, []
        for tag, mean, step in loss_means(entries, self.loss_sums, self.config.loss_log_interval):
            self.hooks.scalar(tag, mean, step)

    def _evaluate(self, stop: StopRequest, completed: int) -> None:
        started = time.perf_counter()
        with paddle.no_grad():  # mu(s) through the Actor as `evaluate` acts: the fast `act` may differ in the last bits
            returns = evaluate(lambda s: self.agent.actor(paddle.to_tensor(np.asarray(s, np.float32)[None]))[0].numpy(),
                               self.eval_env, self.config.eval_episodes, self.config.seed, should_stop=lambda: stop.now)
        self.eval_seconds += time.perf_counter() - started
        if len(returns) < self.config.eval_episodes:
            return
        self.last_eval, self.last_eval_std = float(returns.mean()), float(returns.std())
        best = self.last_eval > max((e["mean"] for e in self.evals), default=-math.inf)
        self.evals.append({"episodes": completed, "steps": self.steps, "mean": self.last_eval,
                           "std": self.last_eval_std, "train_seconds": round(self.wall_seconds - self.eval_seconds, 2)})
        self.evaluated_at = self.steps
        self.hooks.scalar("eval return", self.last_eval, max(completed - 1, 0))
        self.hooks.evaluated(self, best)

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def build(config: Config) -> tuple[gym.Env, gym.Env, np.random.Generator, Memory, DDPG]:
    """Seeded: every later draw comes from the noise and memory generators, whose states a checkpoint keeps."""
    env, eval_env = make_env(config.env, config.max_episode_steps), make_env(config.env, config.max_episode_steps)
    state_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    paddle.seed(config.seed)
    noise_rng = np.random.default_rng([config.seed, 1])
    memory = Memory(config.memory_size, state_dim, action_dim, rng=np.random.default_rng([config.seed, 2]))
    require_memory(network_bytes(config, state_dim, action_dim),
                   f"networks of {list(config.actor_hidden)} and {list(config.critic_hidden)} hidden units")
    agent = DDPG(state_dim, action_dim, env.action_space.low, env.action_space.high, config, rng=noise_rng)
    return env, eval_env, noise_rng, memory, agent


def loss_means(entries: list[tuple[int, str, paddle.Tensor]], sums: dict[str, tuple[float, int]],
               interval: int) -> Iterator[tuple[str, float, int]]:
    """(tag, mean since its last one, step) at each multiple of `interval`, `sums` carrying the rest; one device
    sync for them all."""
    values = paddle.stack([loss for _, _, loss in entries]).numpy() if entries else np.zeros(0)
    if (bad := np.flatnonzero(~np.isfinite(values))).size:
        step, tag, _ = entries[bad[0]]
        raise TrainingDiverged(f"non-finite {tag} ({values[bad[0]]}) at learn step {step}")
    for (step, tag, _), value in zip(entries, values):
        total, count = sums.get(tag, (0.0, 0))
        sums[tag] = (0.0, 0) if step % interval == 0 else (total + float(value), count + 1)
        if step % interval == 0:
            yield tag, (total + float(value)) / (count + 1), step
