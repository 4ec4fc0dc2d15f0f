"""Noise-free evaluation of a trained policy: `python -m paddle_ddpg.evaluate --checkpoint PATH`.

Evaluation runs on its own environment with its own reset seeds and no exploration noise, as the textbook
chapter says a deterministic policy should be judged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from paddle_ddpg.checkpoint import CHECKPOINT_NAME
from paddle_ddpg.config import Config, Parser, UsageError
from paddle_ddpg.device import set_device
from paddle_ddpg.env import EVAL_STREAM, episode_seed
from paddle_ddpg.policy import load_policy


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: gym.Env, episodes: int, seed: int,
             should_stop: Callable[[], bool] = lambda: False,
             on_frame: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Returns of `episodes` noise-free episodes of `policy` (observation -> action); episode i always starts
    from the same seeded state.

    `on_frame` receives `env.render()` after every step (make the env with render_mode="rgb_array").
    """
    returns = []
    for i in range(episodes):
        state, _ = env.reset(seed=episode_seed(seed, EVAL_STREAM, i))
        total, done = 0.0, False
        while not done and not should_stop():
            state, reward, terminated, truncated, _ = env.step(policy(state))
            total += float(reward)
            done = terminated or truncated
            if on_frame is not None:
                on_frame(env.render())
        if not done:
            break
        returns.append(total)
    return np.asarray(returns)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help=f"a {CHECKPOINT_NAME}, a ddpg-actor<episode>.pdparams, a run directory (its "
                             f"{CHECKPOINT_NAME}), or the PREFIX (or PREFIX.json) of a paddle_ddpg.export model")
    parser.add_argument("--env", default=None, help="environment id (default: the one the checkpoint trained on)")
    parser.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the evaluation resets (default 0)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="(default: cpu)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.episodes <= 0:
            raise UsageError(f"episodes must be > 0, got {args.episodes}")
        Config(seed=args.seed).validate()  # training's rule for seeds
        set_device(args.device)
        policy = load_policy(args.checkpoint, args.env)
        env = policy.make_env()
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    try:
        returns = evaluate(policy.predict, env, args.episodes, args.seed)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        env.close()
    print(json.dumps({"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                      "episodes": len(returns), "returns": [round(float(r), 3) for r in returns]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
