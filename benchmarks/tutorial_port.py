"""The AI Studio tutorial's program, ported as directly as possible to Paddle 3 and gymnasium 1.x.

This is the reference that the package's speed and results are measured against: the tutorial's networks,
memory, loop and hyperparameters, bugs included (unit-scale actor actions fed to a critic trained on
env-scale actions, independently initialised targets, O(n) sampling). Only what no longer runs changed:
gym -> gymnasium, Pendulum-v0 -> v1, the reset/step signatures, and seeding for repeatable runs.

    python benchmarks/tutorial_port.py --episodes 200 --seed 0
prints one JSON line: wall seconds, env steps/s, mean of the last 20 training episodes, noise-free eval.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import deque

import gymnasium as gym
import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.distribution import Normal


class Critic(nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 256)
        self.fc2 = nn.Linear(256 + 1, 128)
        self.fc3 = nn.Linear(128, 1)
        self.relu = nn.ReLU()

    def forward(self, x: paddle.Tensor, a: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.fc1(x))
        x = paddle.concat((x, a), axis=1)
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class Actor(nn.Layer):
    def __init__(self, is_train: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 1)
        self.relu = nn.ReLU()
        self.tanh = nn.Tanh()
        self.noisy = Normal(0, 0.2)
        self.is_train = is_train

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.tanh(self.fc3(x))

    def select_action(self, epsilon: float, state: np.ndarray) -> np.ndarray:
        state = paddle.to_tensor(state, dtype="float32").unsqueeze(0)
        with paddle.no_grad():
            action = self.forward(state).squeeze() + self.is_train * epsilon * self.noisy.sample([1]).squeeze(0)
        return 2 * paddle.clip(action, -1, 1).numpy()


class Memory:
    def __init__(self, memory_size: int) -> None:
        self.memory_size = memory_size
        self.buffer: deque = deque(maxlen=self.memory_size)

    def add(self, experience: tuple) -> None:
        self.buffer.append(experience)

    def size(self) -> int:
        return len(self.buffer)

    def sample(self, batch_size: int, continuous: bool = True) -> list:
        if batch_size > len(self.buffer):
            batch_size = len(self.buffer)
        if continuous:
            rand = random.randint(0, len(self.buffer) - batch_size)
            return [self.buffer[i] for i in range(rand, rand + batch_size)]
        indexes = np.random.choice(np.arange(len(self.buffer)), size=batch_size, replace=False)
        return [self.buffer[i] for i in indexes]


def soft_update(target: nn.Layer, source: nn.Layer, tau: float) -> None:
    for target_param, param in zip(target.parameters(), source.parameters()):
        target_param.set_value(target_param * (1.0 - tau) + param * tau)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=10)
    args = parser.parse_args()
    paddle.seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)

    env = gym.make("Pendulum-v1")
    actor, critic, actor_target, critic_target = Actor(), Critic(), Actor(), Critic()
    critic_optim = paddle.optimizer.Adam(parameters=critic.parameters(), learning_rate=3e-5)
    actor_optim = paddle.optimizer.Adam(parameters=actor.parameters(), learning_rate=1e-5)
    explore, epsilon, gamma, tau, batch_size = 50000, 1.0, 0.99, 0.001, 32
    memory_replay = Memory(50000)
    rewards, steps = [], 0
    started = time.perf_counter()
    state, _ = env.reset(seed=args.seed)
    for epoch in range(args.episodes):
        if epoch:
            state, _ = env.reset()
        episode_reward = 0.0
        for _ in range(200):
            action = actor.select_action(epsilon, state)
            next_state, reward, _, _, _ = env.step(np.array([action], dtype=np.float32))
            steps += 1
            episode_reward += reward
            reward = (reward + 8.1) / 8.1
            memory_replay.add((state, next_state, action, reward))
            if memory_replay.size() > 1280:
                experiences = memory_replay.sample(batch_size, False)
                batch_state, batch_next_state, batch_action, batch_reward = zip(*experiences)
                batch_state = paddle.to_tensor(np.array(batch_state), dtype="float32")
                batch_next_state = paddle.to_tensor(np.array(batch_next_state), dtype="float32")
                batch_action = paddle.to_tensor(np.array(batch_action), dtype="float32").unsqueeze(1)
                batch_reward = paddle.to_tensor(np.array(batch_reward), dtype="float32").unsqueeze(1)
                with paddle.no_grad():
                    q_next = critic_target(batch_next_state, actor_target(batch_next_state))
                    q_target = batch_reward + gamma * q_next
                critic_loss = F.mse_loss(critic(batch_state, batch_action), q_target)
                critic_optim.clear_grad()
                critic_loss.backward()
                critic_optim.step()
                critic.eval()
                actor_loss = -critic(batch_state, actor(batch_state)).mean()
                actor_optim.clear_grad()
                actor_loss.backward()
                actor_optim.step()
                critic.train()
                soft_update(actor_target, actor, tau)
                soft_update(critic_target, critic, tau)
            if epsilon > 0:
                epsilon -= 1 / explore
            state = next_state
        rewards.append(float(episode_reward))
    wall = time.perf_counter() - started

    eval_env = gym.make("Pendulum-v1")
    returns = []
    for i in range(args.eval_episodes):
        state, _ = eval_env.reset(seed=10_000 + i)
        total, done = 0.0, False
        while not done:
            state, reward, terminated, truncated, _ = eval_env.step(
                np.array([actor.select_action(0.0, state)], dtype=np.float32))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    print(json.dumps({"impl": "tutorial_port", "seed": args.seed, "episodes": args.episodes, "steps": steps,
                      "wall_seconds": round(wall, 2), "steps_per_second": round(steps / wall, 1),
                      "last20_mean": round(float(np.mean(rewards[-20:])), 1),
                      "eval_mean": round(float(np.mean(returns)), 1), "eval_std": round(float(np.std(returns)), 1)}))


if __name__ == "__main__":
    main()
