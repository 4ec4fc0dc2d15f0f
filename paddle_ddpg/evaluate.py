"""Noise-free evaluation of a trained actor: `python -m paddle_ddpg.evaluate --checkpoint PATH`.

Evaluation runs on its own environment with its own reset seeds and no exploration noise, as the textbook
chapter says a deterministic policy should be judged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import paddle
import paddle.nn as nn

from paddle_ddpg.checkpoint import (CHECKPOINT_NAME, CHECKPOINT_SUFFIX, load_checkpoint, load_state_dict,
                                    resolve_checkpoint)
from paddle_ddpg.config import Config, Parser, UsageError, error_summary, load_config_file
from paddle_ddpg.env import EVAL_STREAM, episode_seed, make_env
from paddle_ddpg.export import exported_prefix, load_exported
from paddle_ddpg.networks import Actor


def policy_action(actor: nn.Layer, state: np.ndarray) -> np.ndarray:
    """mu(s) for one observation, in env units; `actor` is an Actor or an exported one (`paddle.jit.load`)."""
    with paddle.no_grad():
        return actor(paddle.to_tensor(state[None], dtype="float32"))[0].numpy()


def evaluate(actor: nn.Layer, env: gym.Env, episodes: int, seed: int,
             should_stop: Callable[[], bool] = lambda: False,
             on_frame: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Returns of `episodes` noise-free episodes; episode i always starts from the same seeded state.

    `on_frame` receives `env.render()` after every step (make the env with render_mode="rgb_array").
    """
    returns = []
    for i in range(episodes):
        state, _ = env.reset(seed=episode_seed(seed, EVAL_STREAM, i))
        total, done = 0.0, False
        while not done and not should_stop():
            state, reward, terminated, truncated, _ = env.step(policy_action(actor, state))
            total += float(reward)
            done = terminated or truncated
            if on_frame is not None:
                on_frame(env.render())
        if not done:
            break
        returns.append(total)
    return np.asarray(returns)


def check_dims(env_id: str, trained_on: str, state_dim: int, action_dim: int, env: gym.Env) -> None:
    """Refuse an env whose sizes differ from the checkpoint's with a sentence, not a shape error."""
    have = (env.observation_space.shape[0], env.action_space.shape[0])
    if have != (state_dim, action_dim):
        raise UsageError(f"checkpoint was trained on {trained_on} (observation {state_dim}, action {action_dim}); "
                         f"{env_id} has observation {have[0]}, action {have[1]}")


def load_actor(path: str, env_id: str | None = None, render_mode: str | None = None) -> tuple[nn.Layer, gym.Env]:
    """The actor stored at `path` (full checkpoint, run directory, tutorial-style <algo>-actor<N>.pdparams, or
    a `paddle_ddpg.export` prefix) and an environment to run it in, with the run's step limit when the run's
    settings are known.

    Sizes are read from the weights, so an actor saved by the tutorial's own program loads too (with --env).
    """
    prefix = exported_prefix(path)
    if prefix is not None:
        return _load_exported(prefix, env_id, render_mode)
    file = resolve_checkpoint(path)
    if file.suffix != CHECKPOINT_SUFFIX:  # a state dict: ours (.pdparams) or the tutorial's (.para)
        if re.search(r"-critic\d+\.pdparams$", file.name):
            # With the action at the critic's input its layer sizes chain like an actor's.
            raise UsageError(f"{file} is a critic snapshot; evaluate the run's actor (*-actor<N>.pdparams)")
        weights = load_state_dict(file)
        settings = file.parent / "config.json"
        run_config = load_config_file(str(settings)) if settings.is_file() else {}
    else:
        saved = load_checkpoint(file)
        settings, (weights, run_config) = file, (saved["agent"]["actor"], saved["config"])
    # The two settings used here, checked: a config.json beside a snapshot may have been edited by hand.
    run = Config().updated({k: v for k, v in run_config.items() if k in ("env", "max_episode_steps")},
                           source=str(settings)).validate()
    trained_on = run.env if "env" in run_config else None
    env_id = _env_id(file, env_id, trained_on)
    try:
        shapes = [tuple(weights[f"fc{i}.weight"].shape) for i in range(1, len(weights) // 2 + 1)]
    except KeyError:
        raise UsageError(f"{file} does not hold actor weights (fc1.weight, ...)") from None
    if any(prev[1] != nxt[0] for prev, nxt in zip(shapes, shapes[1:])):
        # A critic's second layer also takes the action, so its sizes do not chain; Paddle would load the
        # rest and leave that layer random with only a warning.
        raise UsageError(f"{file} does not hold actor weights (layer sizes {shapes} do not chain)")
    env = make_env(env_id, run.max_episode_steps if env_id == trained_on else 0,
                   render_mode=render_mode)
    check_dims(env_id, trained_on or env_id, shapes[0][0], shapes[-1][1], env)
    actor = Actor(shapes[0][0], shapes[-1][1], env.action_space.low, env.action_space.high,
                  hidden=[s[1] for s in shapes[:-1]])
    actor.set_state_dict(weights)
    return actor, env


def _env_id(source: object, env_id: str | None, trained_on: str | None) -> str:
    if env_id is None and trained_on is None:
        raise UsageError(f"{source} carries no environment id; pass --env")
    return env_id or trained_on


def _load_exported(prefix: str, env_id: str | None, render_mode: str | None) -> tuple[nn.Layer, gym.Env]:
    """An exported actor and its environment. One action on a zero state checks that the program runs and
    fits the env, so a damaged or mismatched export fails here with a sentence, not mid-episode."""
    actor, meta = load_exported(prefix)
    trained_on = meta.get("env")
    env_id = _env_id(prefix, env_id, trained_on)
    env = make_env(env_id, meta.get("max_episode_steps", 0) if env_id == trained_on else 0, render_mode=render_mode)
    have = (env.observation_space.shape[0], env.action_space.shape[0])
    if meta:
        check_dims(env_id, trained_on or env_id, meta["state_dim"], meta["action_dim"], env)
    try:
        shape = tuple(policy_action(actor, np.zeros(have[0], dtype=np.float32)).shape)
    except Exception as exc:  # a wrong input size or a damaged program, in any of Paddle's exception types
        raise UsageError(f"exported model {prefix} does not run on {env_id} (observation size {have[0]}): "
                         f"{error_summary(exc)}") from None
    if shape != have[1:]:
        raise UsageError(f"exported model {prefix} gives actions of shape {shape}; {env_id} needs ({have[1]},)")
    return actor, env


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
        actor, env = load_actor(args.checkpoint, args.env)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    try:
        returns = evaluate(actor, env, args.episodes, args.seed)
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    finally:
        env.close()
    print(json.dumps({"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                      "episodes": len(returns), "returns": [round(float(r), 3) for r in returns]}))
    return 0


def cpu_threads(threads: int = 0, batch_size: int = 1) -> int:
    """`threads`, or for 0 the default for updates on batches of `batch_size`: one thread below 64, else one
    per CPU core this process may use, at most two.

    Paddle runs its CPU kernels on one thread unless told otherwise. On a 2-core machine a second thread made
    the update of the 400-300 networks 1.1 to 1.4 times faster at batch 100 and 256
    (benchmarks/bench_update.py --threads), but the tutorial preset's training at batch 32 about 15% slower
    (760-784 against 643-696 steps/s, three runs each): at that size the products are too small to share and
    the second thread costs more in hand-offs than it saves. More than two could not be measured there.
    """
    if threads:
        return threads
    return 1 if batch_size < 64 else min(usable_cpus(), 2)


def usable_cpus() -> int:
    """The CPU cores this process may run on; where the OS has no affinity call (macOS, Windows), all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def set_device(device: str, threads: int = 0, batch_size: int = 1) -> None:
    """Select the device and the number of threads of Paddle's CPU kernels (`cpu_threads`)."""
    if device == "gpu" and not paddle.device.is_compiled_with_cuda():
        raise UsageError("--device gpu needs a CUDA build of paddlepaddle (paddlepaddle-gpu); this one is CPU-only")
    paddle.set_device(device)
    paddle.base.core.set_num_threads(cpu_threads(threads, batch_size))


if __name__ == "__main__":
    sys.exit(main())
