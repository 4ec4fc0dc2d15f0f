"""Whole-run speed on Pendulum-v1: env steps/s, and wall seconds until the policy is good.

Two measurements, each over several seeds, all in one invocation so every figure comes from one machine
state; medians and ratios are reported:

  throughput  the tutorial preset's 200 episodes: paddle_ddpg (on each engine of --engine) against the
              straightforward port of the tutorial's program (benchmarks/tutorial_port.py), env steps per
              second of training, and each process's whole wall time (start-up, imports and final
              evaluation included: what a user waits for).
  threshold   time to a noise-free evaluation mean of -200 or better, and the evaluation at 20000 steps:
              paddle_ddpg's `fast` preset against Stable-Baselines3 DDPG with the rl-baselines3-zoo
              Pendulum settings (400-300 nets, batch 256, gamma 0.98, 10k random steps, noise 0.1, 20k steps).
              Both are evaluated every 1000 steps on the same 10 evaluation seeds, and the final policies
              again on 100 (the first 10 the same; ten Pendulum episodes leave about +-25 of noise in the
              mean, a hundred about +-8); evaluation time is not counted as training time.

    python benchmarks/bench_train.py --seeds 0 1 2                   # both measurements
    python benchmarks/bench_train.py --only threshold --seeds 0 1 2 3 4
    python benchmarks/bench_train.py --only throughput --engine fast plain --seeds 0 1

With --like-for-like the threshold measurement compares implementations, not settings: paddle_ddpg trains the
`Pendulum-v1` preset (the zoo's settings) with the action at the critic's input, as SB3's critic takes it;
--sb3-per-step also makes SB3 update once per step, as paddle_ddpg does, instead of the zoo's 200 updates at
each episode's end (the same number of updates, on staler data).

    python benchmarks/bench_train.py --only threshold --like-for-like --threads 1 --seeds 0 1 2 3 4 5
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from visualdl import LogReader

from paddle_ddpg.config import ENGINES
from paddle_ddpg.env import EVAL_STREAM, episode_seed

THRESHOLD = -200.0
BUDGET = 20_000
EVAL_EVERY_STEPS = 1000
EVAL_EPISODES = 10
FINAL_EPISODES = 100
ROOT = Path(__file__).resolve().parent.parent


def run_json(cmd: list[str], cwd: str) -> dict[str, Any]:
    """Run a command and parse the JSON object on its last stdout line."""
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed_run_json(cmd: list[str], cwd: str) -> tuple[dict[str, Any], float]:
    """`run_json`, and the process's wall seconds from start to exit."""
    started = time.perf_counter()
    result = run_json(cmd, cwd)
    return result, round(time.perf_counter() - started, 2)


def engine_key(engine: str) -> str:
    """The name of an engine's results: the default engine keeps the name earlier records gave it."""
    return "paddle_ddpg" if engine == "fast" else f"paddle_ddpg_{engine}"


def throughput(seed: int, engines: list[str], workdir: str) -> dict[str, Any]:
    port, port_seconds = timed_run_json(
        [sys.executable, str(ROOT / "benchmarks" / "tutorial_port.py"), "--seed", str(seed)], workdir)
    run = {"seed": seed,
           "tutorial_port": {"steps_per_second": port["steps_per_second"], "train_seconds": port["wall_seconds"],
                             "process_seconds": port_seconds, "last20_mean": port["last20_mean"],
                             "eval_mean": port["eval_mean"]}}
    for engine in engines:
        ours, seconds = timed_run_json([sys.executable, "-m", "paddle_ddpg.train", "--seed", str(seed),
                                        "--engine", engine, "--eval-interval", "0",
                                        "--run-name", f"throughput_s{seed}_{engine}", "--overwrite"], workdir)
        if ours["engine"] != engine:
            raise SystemExit(f"asked for the {engine} engine, the run trained with {ours['engine']}")
        record = next(Path(workdir, ours["logdir"]).glob("vdlrecords.*"))
        rewards = [p.value for p in LogReader(file_path=str(record)).get_data("scalar", "episode reward")]
        run[engine_key(engine)] = {"steps_per_second": round(ours["steps"] / ours["train_seconds"], 1),
                                   "train_seconds": ours["train_seconds"], "process_seconds": seconds,
                                   "last20_mean": round(float(np.mean(rewards[-20:])), 1),
                                   "eval_mean": round(ours["final_eval_mean"], 1),
                                   "eval_std": round(ours["final_eval_std"], 1)}
    return run


def time_to_threshold(evals: list[dict[str, float]]) -> float | None:
    """Training seconds at the first evaluation at or above THRESHOLD (None if never)."""
    return next((e["train_seconds"] for e in evals if e["mean"] >= THRESHOLD), None)


def ours_threshold(seed: int, workdir: str, like_for_like: bool, threads: int) -> dict[str, Any]:
    settings = ["--preset", "Pendulum-v1", "--critic-action-layer", "0"] if like_for_like else ["--preset", "fast"]
    summary = run_json([sys.executable, "-m", "paddle_ddpg.train", *settings, "--seed", str(seed),
                        "--threads", str(threads),
                        "--total-steps", str(BUDGET), "--episodes", str(BUDGET // 200),
                        "--eval-interval", str(EVAL_EVERY_STEPS // 200), "--eval-episodes", str(EVAL_EPISODES),
                        "--run-name", f"threshold_s{seed}", "--overwrite"], workdir)
    final = run_json([sys.executable, "-m", "paddle_ddpg.evaluate", "--checkpoint", summary["checkpoint"],
                      "--episodes", str(FINAL_EPISODES), "--seed", str(seed)], workdir)
    return {"evals": summary["evals"], "final_eval": summary["evals"][-1]["mean"],
            "final_eval_100": final["mean_return"], "seconds_to_threshold": time_to_threshold(summary["evals"]),
            "train_seconds": summary["train_seconds"],
            "steps_per_second": round(summary["steps"] / summary["train_seconds"], 1)}


def noise_free_return(policy: Any, env: gym.Env, seed: int, episodes: int = EVAL_EPISODES) -> float:
    """Mean return over the same evaluation seeds paddle_ddpg's evaluate() uses."""
    returns = []
    for i in range(episodes):
        state, _ = env.reset(seed=episode_seed(seed, EVAL_STREAM, i))
        total, done = 0.0, False
        while not done:
            state, reward, terminated, truncated, _ = env.step(policy(state))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def sb3_threshold(seed: int, per_step: bool, threads: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import DDPG
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise

    if threads:
        torch.set_num_threads(threads)
    env, eval_env = gym.make("Pendulum-v1"), gym.make("Pendulum-v1")
    schedule = dict(train_freq=1, gradient_steps=1) if per_step else dict(train_freq=(1, "episode"), gradient_steps=-1)
    # SB3 adds the noise to the action rescaled to [-1, 1], so the zoo's noise_std 0.1 is sigma 0.1 itself,
    # not 0.1 times the half-range as paddle_ddpg's noise_std counts it (0.2 N m on Pendulum either way).
    model = DDPG("MlpPolicy", env, gamma=0.98, buffer_size=200_000, learning_starts=10_000, learning_rate=1e-3,
                 action_noise=NormalActionNoise(np.zeros(1), np.full(1, 0.1)), **schedule,
                 policy_kwargs={"net_arch": [400, 300]}, seed=seed, device="cpu", verbose=0)

    class Evaluate(BaseCallback):
        """Noise-free evaluation every EVAL_EVERY_STEPS, with its time kept out of the training time."""

        def __init__(self) -> None:
            super().__init__()
            self.evals: list[dict[str, float]] = []
            self.eval_seconds = 0.0
            self.started = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY_STEPS == 0:
                t = time.perf_counter()
                mean = noise_free_return(lambda s: model.predict(s, deterministic=True)[0], eval_env, seed)
                self.eval_seconds += time.perf_counter() - t
                self.evals.append({"steps": self.num_timesteps, "mean": mean,
                                   "train_seconds": round(time.perf_counter() - self.started - self.eval_seconds, 2)})
            return True

    callback = Evaluate()
    model.learn(BUDGET, callback=callback)
    train_seconds = time.perf_counter() - callback.started - callback.eval_seconds
    final = noise_free_return(lambda s: model.predict(s, deterministic=True)[0], eval_env, seed, FINAL_EPISODES)
    return {"evals": callback.evals, "final_eval": callback.evals[-1]["mean"], "final_eval_100": final,
            "seconds_to_threshold": time_to_threshold(callback.evals), "train_seconds": round(train_seconds, 2),
            "steps_per_second": round(BUDGET / train_seconds, 1), "torch_threads": torch.get_num_threads()}


def throughput_summary(runs: list[dict[str, Any]], engines: list[str]) -> dict[str, Any]:
    """Medians over seeds, and each engine's speedups over the port beside it: of training steps per second,
    and of whole-process wall time, per seed and of the medians. Prints one line per engine."""
    names = ["tutorial_port"] + [engine_key(e) for e in engines]
    steps = {n: statistics.median(r[n]["steps_per_second"] for r in runs) for n in names}
    process = {n: statistics.median(r[n]["process_seconds"] for r in runs) for n in names}
    summary: dict[str, Any] = {"median_steps_per_second": steps, "median_process_seconds": process,
                               "speedup": {}, "process_speedup": {}, "process_speedup_per_seed": {}}
    for name in names[1:]:
        summary["speedup"][name] = round(steps[name] / steps["tutorial_port"], 2)
        summary["process_speedup"][name] = round(process["tutorial_port"] / process[name], 2)
        summary["process_speedup_per_seed"][name] = [
            round(r["tutorial_port"]["process_seconds"] / r[name]["process_seconds"], 2) for r in runs]
        print(f"tutorial preset, 200 episodes: {name} {steps[name]:.0f} steps/s, tutorial port "
              f"{steps['tutorial_port']:.0f} steps/s: {summary['speedup'][name]:.2f}x; whole process "
              f"{process[name]:.1f} s against {process['tutorial_port']:.1f} s: "
              f"{summary['process_speedup'][name]:.2f}x (per seed {summary['process_speedup_per_seed'][name]})")
    return summary


def median(values: list[float | None]) -> float | None:
    """Median, counting a run that never reached the threshold as infinitely slow."""
    if any(v is None for v in values):
        ordered = sorted(v if v is not None else float("inf") for v in values)
        mid = ordered[len(ordered) // 2]
        return None if mid == float("inf") else mid
    return statistics.median(values)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", choices=("throughput", "threshold"))
    parser.add_argument("--engine", nargs="+", choices=ENGINES, default=["fast"],
                        help="the engines the throughput measurement trains with, each beside the same port run")
    parser.add_argument("--like-for-like", action="store_true",
                        help="threshold: paddle_ddpg on the zoo's settings (Pendulum-v1 preset, action at the critic's "
                             "input) instead of its tuned `fast` preset")
    parser.add_argument("--sb3-per-step", action="store_true",
                        help="threshold: SB3 updates once per step instead of 200 times at each episode's end")
    parser.add_argument("--threads", type=int, default=0,
                        help="threshold: CPU threads of both sides (0: each library's default)")
    parser.add_argument("--out", default="benchmarks/results/train.json")
    args = parser.parse_args()
    results: dict[str, Any] = {"seeds": args.seeds, "like_for_like": args.like_for_like,
                               "sb3_per_step": args.sb3_per_step, "threads": args.threads,
                               "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as workdir:
        if args.only in (None, "throughput"):
            runs = [throughput(seed, args.engine, workdir) for seed in args.seeds]
            results["throughput"] = {"runs": runs, **throughput_summary(runs, args.engine)}
        if args.only in (None, "threshold"):
            runs = [{"seed": seed, "paddle_ddpg": ours_threshold(seed, workdir, args.like_for_like, args.threads),
                     "sb3": sb3_threshold(seed, args.sb3_per_step, args.threads), "load_average": os.getloadavg()}
                    for seed in args.seeds]
            summary = {name: {"median_seconds_to_threshold": median([r[name]["seconds_to_threshold"] for r in runs]),
                              "median_final_eval": statistics.median(r[name]["final_eval"] for r in runs),
                              "mean_final_eval": statistics.fmean(r[name]["final_eval"] for r in runs),
                              "median_final_eval_100": statistics.median(r[name]["final_eval_100"] for r in runs),
                              "mean_final_eval_100": statistics.fmean(r[name]["final_eval_100"] for r in runs),
                              "median_steps_per_second": statistics.median(r[name]["steps_per_second"] for r in runs)}
                       for name in ("paddle_ddpg", "sb3")}
            results["threshold"] = {"runs": runs, "summary": summary}
            for name, s in summary.items():
                print(f"{name:>11}: to {THRESHOLD:.0f} in {s['median_seconds_to_threshold']} s (median), eval at "
                      f"{BUDGET} steps {s['median_final_eval']:.1f} (median), {s['median_steps_per_second']} steps/s")
            for key, episodes in (("final_eval", EVAL_EPISODES), ("final_eval_100", FINAL_EPISODES)):
                per_seed = [(r["seed"], round(r["paddle_ddpg"][key], 1), round(r["sb3"][key], 1)) for r in runs]
                print(f"eval at {BUDGET} steps over {episodes} episodes, per seed (seed, paddle_ddpg, sb3):", per_seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
