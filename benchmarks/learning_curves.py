"""Learning curves over seeds: noise-free evaluation return against env steps, paddle_ddpg and optionally SB3.

The seeds train as the trials of one local sweep (`paddle_ddpg.sweep`: Ray Tune runs as many at a time as
there are CPU cores, one thread each unless --set threads=N), each an ordinary `paddle_ddpg.train.train` run
that keeps its evaluations (every --eval-interval episodes, plus one at the end); each final policy is then
evaluated again on
--final-episodes episodes (default 100), whose first starts are the curve's: ten Pendulum episodes put the
mean within about +-25 of the policy's true mean return, a hundred within about +-8. With --sb3,
Stable-Baselines3's DDPG or TD3 trains on the same budget with the preset's hyperparameters and is
evaluated on the same reset seeds at the same env steps. Writes <out-dir>/<name>.png (mean over seeds with
a 95% Student-t confidence band), <name>.md (final evaluation per seed, mean +- std, wall seconds) and
<name>.json (every number behind them).

    python benchmarks/learning_curves.py --preset Pendulum-v1 --seeds 0 1 2 3 4 --sb3
    python benchmarks/learning_curves.py --preset Pendulum-v1 --seeds 0 1 --total-steps 2000 \\
        --set actor_hidden=[64,64] --set critic_hidden=[64,64] --out-dir /tmp/curves     # a smoke test
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import dataclasses
import json
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
import paddle

from paddle_ddpg.cli import Parser
from paddle_ddpg.config import PRESETS, Config, UsageError
from paddle_ddpg.device import cpu_threads, usable_cpus
from paddle_ddpg.env import EVAL_STREAM, episode_seed, make_env
from paddle_ddpg.env import evaluate
from paddle_ddpg.policy import load_policy
from paddle_ddpg.sweep import Sweep
from paddle_ddpg.sweep.report import CONFIDENCE, mean_band
from paddle_ddpg.sweep.tuning import run_sweep

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RUNTIME = ("threads", "device", "engine", "loss_log_interval")  # they change a run's speed, not its numbers
# Settings SB3 runs do not take.
SB3_UNUSED = ("critic_action_layer", "random_steps", "explore", "epsilon_min", "tanh_penalty")


@dataclass
class Run:
    """One seed's learning curve: evaluation means at env steps, and its time (train = wall - evaluation)."""

    seed: int
    steps: list[int]
    means: list[float]
    wall_seconds: float
    train_seconds: float
    final_mean: float  # the final policy over --final-episodes episodes


def run_paddle(config: Config, preset: str, seeds: list[int], final_episodes: int) -> list[Run]:
    """Train the seeds as one local sweep, then evaluate each final policy on `final_episodes` episodes;
    checkpoints, logs and Tune's records go to a temporary directory, only the curves are kept. A seed that
    did not finish (a crash, Ctrl-C) is left out."""
    with tempfile.TemporaryDirectory() as tmp:
        base = dataclasses.replace(config, logdir=f"{tmp}/logs/curves", model_dir=f"{tmp}/model/curves")
        rows = run_sweep(Sweep(name="curves", preset=preset, base=base.to_dict(), seeds=seeds),
                         Path(tmp) / "tune" / "curves")
        runs = []
        for row in rows:
            if row["status"] != "DONE":
                print(f"paddle_ddpg seed {row['seed']}: {row['status']} {row['error'] or ''}", flush=True)
                continue
            policy = load_policy(row["checkpoint"])
            env = policy.make_env()
            final = float(evaluate(policy, env, final_episodes, row["seed"]).mean())
            env.close()
            evals = row["evals"]
            runs.append(Run(row["seed"], [e["steps"] for e in evals], [e["mean"] for e in evals],
                            row["wall_seconds"], evals[-1]["train_seconds"], final))
    return runs


def sb3_settings(config: Config) -> tuple[dict[str, Any], list[str]]:
    """SB3 constructor arguments equivalent to `config`, and the differences that remain, in words.

    SB3 adds exploration noise to actions rescaled to [-1, 1], so its sigma is noise_std itself: the same
    noise_std * half-range in env units that paddle_ddpg draws.
    """
    if config.noise != "gaussian":
        raise UsageError("--sb3 compares Gaussian exploration noise only; this preset uses " + config.noise)
    if config.lr_actor != config.lr_critic:
        raise UsageError(f"SB3 takes one learning rate; the preset has lr_actor {config.lr_actor} and lr_critic "
                         f"{config.lr_critic} (make them equal with --set)")
    kwargs: dict[str, Any] = dict(
        learning_rate=config.lr_actor, buffer_size=config.memory_size, learning_starts=config.learning_starts,
        batch_size=config.batch_size, tau=config.tau, gamma=config.gamma, train_freq=1, gradient_steps=1,
        policy_kwargs=dict(net_arch=dict(pi=list(config.actor_hidden), qf=list(config.critic_hidden))))
    if config.algo == "td3":
        kwargs.update(policy_delay=config.policy_delay, target_policy_noise=config.target_noise,
                      target_noise_clip=config.target_noise_clip)
    notes = ["SB3's networks see actions rescaled to [-1, 1]; paddle_ddpg's env-scale actions",
             "SB3 resets its training env with its own seeds; evaluation resets are shared"]
    if config.critic_action_layer != 0:
        notes.insert(0, f"SB3's critic takes the action at its input layer; paddle_ddpg's joins it at layer "
                        f"{config.critic_action_layer} (1: after the first, the tutorial's critic)")
    if config.random_steps != config.learning_starts:
        notes.append(f"SB3 acts at random for its first learning_starts ({config.learning_starts}) steps; "
                     f"paddle_ddpg for random_steps ({config.random_steps})")
    if config.tanh_penalty:
        notes.append(f"paddle_ddpg's actor loss adds the tanh penalty ({config.tanh_penalty}); SB3's has none")
    if config.epsilon_min < 1:
        notes.append("paddle_ddpg decays its exploration noise (epsilon); SB3's stays constant")
    return kwargs, notes


def run_sb3(config: Config, seed: int, eval_steps: list[int], kwargs: dict[str, Any], final_episodes: int) -> Run:
    """Train SB3 for the same budget and evaluate it at `eval_steps`, like paddle_ddpg after that step's update.

    `learn` continued piece by piece (reset_num_timesteps=False keeps the env, the buffer and the counters)
    returns after the update of its last step, so one call per evaluation step needs no callback.
    """
    import torch
    from stable_baselines3 import DDPG, TD3  # optional: only --sb3 needs it
    from stable_baselines3.common.noise import NormalActionNoise

    # As many threads as Paddle's CPU kernels use, so that the wall times compare like with like.
    torch.set_num_threads(cpu_threads(config.threads, config.batch_size))

    env = make_env(config.env, config.max_episode_steps)
    if (config.reward_offset, config.reward_scale) != (0.0, 1.0):
        env = gym.wrappers.TransformReward(env, lambda r: (r + config.reward_offset) / config.reward_scale)
    eval_env = make_env(config.env, config.max_episode_steps)
    action_dim = env.action_space.shape[0]
    noise = NormalActionNoise(np.zeros(action_dim), np.full(action_dim, config.noise_std))
    model = (TD3 if config.algo == "td3" else DDPG)("MlpPolicy", env, action_noise=noise, seed=seed, device="cpu",
                                                    verbose=0, **kwargs)
    means, eval_seconds = [], 0.0
    started = time.perf_counter()
    for step in eval_steps:
        model.learn(total_timesteps=step - model.num_timesteps, reset_num_timesteps=False)
        eval_started = time.perf_counter()
        means.append(sb3_eval_mean(model, eval_env, config.eval_episodes, seed))
        eval_seconds += time.perf_counter() - eval_started
    wall = time.perf_counter() - started
    final = sb3_eval_mean(model, eval_env, final_episodes, seed)
    env.close()
    eval_env.close()
    return Run(seed, eval_steps, means, round(wall, 2), round(wall - eval_seconds, 2), final)


def sb3_eval_mean(model: Any, env: gym.Env, episodes: int, seed: int) -> float:
    """Mean return of deterministic episodes reset as paddle_ddpg.evaluate resets them."""
    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=episode_seed(seed, EVAL_STREAM, i))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def band(runs: list[Run]) -> dict[str, list[float]]:
    """Mean over seeds and its 95% t-interval at every evaluation step (the sweep's `mean_band`)."""
    return mean_band([(r.steps, r.means) for r in runs])


def plot(curves: dict[str, list[Run]], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (label, runs), color in zip(curves.items(), ("tab:blue", "tab:orange")):
        b = band(runs)
        for r in runs:
            ax.plot(r.steps, r.means, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(b["steps"], b["mean"], color=color, label=f"{label} (mean of {len(runs)} seeds)")
        ax.fill_between(b["steps"], b["low"], b["high"], color=color, alpha=0.2)
    ax.set(xlabel="env steps", ylabel="noise-free evaluation return",
           title=f"{title}\nthin: single seeds; band: {CONFIDENCE:.0%} t-interval of the mean")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(curves: dict[str, list[Run]], title: str, command: str, notes: list[str], png: str,
             eval_episodes: int, final_episodes: int) -> str:
    labels = list(curves)
    head = "| seed | " + " | ".join(f"{lb} final, {final_episodes} ep | {lb} last curve point, {eval_episodes} ep | "
                                    f"{lb} wall s | {lb} train s" for lb in labels) + " |"
    rows = [head, "|---:|" + "---:|---:|---:|---:|" * len(labels)]
    for i, seed in enumerate(r.seed for r in curves[labels[0]]):
        cells = [f"{c[i].final_mean:.1f} | {c[i].means[-1]:.1f} | {c[i].wall_seconds:.0f} | {c[i].train_seconds:.0f}"
                 for c in curves.values()]
        rows.append(f"| {seed} | " + " | ".join(cells) + " |")
    summary = []
    for runs in curves.values():
        cells = []
        for values in ([r.final_mean for r in runs], [r.means[-1] for r in runs]):
            std = np.std(values, ddof=1) if len(runs) > 1 else 0.0
            cells.append(f"**{np.mean(values):.1f} +- {std:.1f}**")
        walls, trains = np.mean([r.wall_seconds for r in runs]), np.mean([r.train_seconds for r in runs])
        summary.append(" | ".join(cells) + f" | {walls:.0f} | {trains:.0f}")
    rows.append("| mean +- std | " + " | ".join(summary) + " |")
    lines = [f"# {title}", "", f"`{command}`", "",
             f"Final: the final policy's mean noise-free return over {final_episodes} episodes; last curve point: "
             f"the run's last evaluation ({eval_episodes} episodes, the first {eval_episodes} of those starts). "
             "Wall: the whole run; train: without the time spent evaluating. +- is the standard deviation over "
             "seeds.", "", *rows, "", f"![learning curves]({png})", ""]
    if notes:
        lines += ["Differences that remain between the two implementations:", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def parse_set(items: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs; VALUE is read as JSON (numbers, lists) and otherwise kept as a string."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python benchmarks/learning_curves.py", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="Pendulum-v1", help=f"one of {', '.join(PRESETS)} (default Pendulum-v1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="(default 0 1 2 3 4)")
    parser.add_argument("--algo", choices=("ddpg", "td3"), help="(default: the preset's)")
    parser.add_argument("--total-steps", type=int, help="env steps per run (default: the preset's)")
    parser.add_argument("--eval-interval", type=int, metavar="EPISODES",
                        help="evaluate every this many episodes (default: the preset's)")
    parser.add_argument("--final-episodes", type=int, default=100, metavar="N",
                        help="episodes of the final policy's evaluation (default 100)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other Config field, VALUE as JSON, e.g. --set actor_hidden=[64,64] (repeatable)")
    parser.add_argument("--name", help="output file name (default <preset>_<algo>_<total steps>)")
    parser.add_argument("--sb3", action="store_true", help="also train Stable-Baselines3 with the same settings")
    parser.add_argument("--out-dir", type=Path, default=RESULTS, help="(default benchmarks/results)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs in <out-dir>/<name>.json that these settings would repeat (per "
                             "implementation) and run only the others")
    return parser


def resolve(args: argparse.Namespace) -> Config:
    if args.preset not in PRESETS:
        raise UsageError(f"unknown preset {args.preset!r}; choose from {', '.join(PRESETS)}")
    flags = {k: v for k, v in (("algo", args.algo), ("total_steps", args.total_steps),
                               ("eval_interval", args.eval_interval)) if v is not None}
    values = parse_set(args.set)
    config = PRESETS[args.preset].updated({**values, **flags}, source="--set")
    if config.total_steps == 0:
        raise UsageError("the curves need a step budget: pass --total-steps")
    # The resumable checkpoint (replay memory included) is written every log_interval episodes: a cost that
    # SB3 does not pay and the curve does not need, so only the final one, unless --set asks otherwise.
    return config if "log_interval" in values else dataclasses.replace(config, log_interval=10**9)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = resolve(args).validate()
        if args.final_episodes <= 0:
            raise UsageError(f"--final-episodes must be > 0, got {args.final_episodes}")
        sb3 = sb3_settings(config) if args.sb3 else None
        if sb3 is not None:
            import stable_baselines3  # noqa: F401  (fail before hours of paddle_ddpg training, not after)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    except ImportError:
        parser.exit(2, f"{parser.prog}: error: --sb3 needs stable-baselines3 (pip install stable-baselines3)\n")
    name = args.name or f"{args.preset}_{config.algo}_{config.total_steps}"
    title = f"{config.env}, {config.algo.upper()} (preset {args.preset}), {config.total_steps} steps"
    command = shlex.join(["python", "benchmarks/learning_curves.py", *(sys.argv[1:] if argv is None else argv)])
    # One thread per seed unless --set threads=N; SB3 gets as many, so that the wall times compare like with like.
    config = config if config.threads else dataclasses.replace(config, threads=1)
    notes = [*sb3[1], f"paddle_ddpg's seeds trained as parallel trials of a Ray Tune sweep, {usable_cpus()} at a "
                      f"time with {config.threads} thread(s) each; SB3's one after another with as many threads"
             ] if sb3 is not None else []
    kept = finished_runs(args, config, name) if args.resume else {}
    if kept:
        listed = "; ".join(f"{label} seeds {', '.join(str(seed) for seed in sorted(kept) if label in kept[seed])}"
                           for label in ("paddle_ddpg", "sb3") if any(label in runs for runs in kept.values()))
        print(f"kept from {name}.json: {listed}", flush=True)
        notes = notes + [f"kept from an earlier run with the same settings (--resume): {listed}"]
    todo = [seed for seed in args.seeds if "paddle_ddpg" not in kept.get(seed, {})]
    trained = {r.seed: r for r in run_paddle(config, args.preset, todo, args.final_episodes)} if todo else {}
    curves: dict[str, list[Run]] = {"paddle_ddpg": []}
    written: list[str] = []
    for seed in args.seeds:
        done = kept.get(seed, {})
        run = done.get("paddle_ddpg") or trained.get(seed)
        if run is None:  # it did not finish; run_paddle said why
            continue
        curves["paddle_ddpg"].append(run)
        print(f"paddle_ddpg seed {seed}: final {run.final_mean:.1f} ({args.final_episodes} episodes; last curve point "
              f"{run.means[-1]:.1f}) after {run.steps[-1]} steps, {run.wall_seconds:.0f} s", flush=True)
        if sb3 is not None:
            run = done.get("sb3") or run_sb3(config, seed, run.steps, sb3[0], args.final_episodes)
            curves.setdefault("sb3", []).append(run)
            print(f"sb3 seed {seed}: final {run.final_mean:.1f} (last curve point {run.means[-1]:.1f}), "
                  f"{run.wall_seconds:.0f} s", flush=True)
        # After every seed, so that a long run stopped part way keeps the seeds it finished.
        written = write_results(args, config, curves, name, title, command, notes)
    print(json.dumps({"written": written}))
    return 0 if len(curves["paddle_ddpg"]) == len(args.seeds) else 1


def finished_runs(args: argparse.Namespace, config: Config, name: str) -> dict[int, dict[str, Run]]:
    """The runs of `args.seeds` in <name>.json that these settings would repeat, by seed and label:
    paddle_ddpg's if every setting but the RUNTIME ones is the same, SB3's if also the SB3_UNUSED ones may
    differ; both with the same --final-episodes. A setting the file predates counts at its default."""
    path = args.out_dir / f"{name}.json"
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    if build_parser().parse_args(shlex.split(saved["command"])[2:]).final_episodes != args.final_episodes:
        return {}
    fields = {f.name for f in dataclasses.fields(Config)}
    before = Config().updated({k: v for k, v in saved["config"].items() if k in fields}, source=str(path))
    compared = fields - {"seed", "logdir", "model_dir", "run_name"}  # per run, not per file

    def same(ignored: tuple[str, ...]) -> bool:
        return all(getattr(before, f) == getattr(config, f) for f in compared - set(ignored))

    keep = {"paddle_ddpg": same(RUNTIME), "sb3": args.sb3 and same(RUNTIME + SB3_UNUSED)}
    kept: dict[int, dict[str, Run]] = {}
    for label, runs in saved["runs"].items():
        for run in runs:
            if keep.get(label) and run["seed"] in args.seeds:
                kept.setdefault(run["seed"], {})[label] = Run(**run)
    return kept


def write_results(args: argparse.Namespace, config: Config, curves: dict[str, list[Run]], name: str, title: str,
                  command: str, notes: list[str]) -> list[str]:
    """The PNG, Markdown and JSON of the seeds finished so far."""
    args.out_dir.mkdir(parents=True, exist_ok=True)
    plot(curves, title, args.out_dir / f"{name}.png")
    (args.out_dir / f"{name}.md").write_text(markdown(curves, title, command, notes, f"{name}.png",
                                                      config.eval_episodes, args.final_episodes))
    figures = {"title": title, "command": command, "preset": args.preset,
               "seeds": [r.seed for r in curves["paddle_ddpg"]],
               "config": {k: v for k, v in config.to_dict().items() if k not in ("seed", "logdir", "model_dir",
                                                                                 "run_name")},
               "band": f"{CONFIDENCE:.0%} Student-t interval of the mean over seeds", "notes": notes,
               "runs": {label: [dataclasses.asdict(r) for r in runs] for label, runs in curves.items()},
               "curves": {label: band(runs) for label, runs in curves.items()},
               "versions": versions(args.sb3), "machine": platform.processor() or platform.machine()}
    (args.out_dir / f"{name}.json").write_text(json.dumps(figures, indent=1) + "\n")
    return [str(args.out_dir / f"{name}.{ext}") for ext in ("png", "md", "json")]


def versions(with_sb3: bool) -> dict[str, str]:
    out = {"python": platform.python_version(), "paddle": paddle.__version__, "gymnasium": gym.__version__,
           "numpy": np.__version__}
    if with_sb3:
        import stable_baselines3
        import torch
        out.update({"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
                    "torch_threads": str(torch.get_num_threads())})
    return out


if __name__ == "__main__":
    sys.exit(main())
