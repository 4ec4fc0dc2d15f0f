"""The TD3 presets for their full million steps on MuJoCo, beside the TD3 paper's, CleanRL's and the zoo's tables.

`train ENV` trains the seeds of one preset one after another, each an ordinary `paddle_ddpg.train` run with one
thread, evaluated on 10 noise-free episodes every 5,000 steps (the paper's protocol, the preset's setting). Run it
again after an interruption and each seed goes on from its last checkpoint; a finished seed is skipped. Two
`train` commands side by side (one per environment, or one per seed: `--seeds 0`, `--seeds 1`) fill a 2-core
machine. `report` reads every run's checkpoint and writes results/mujoco_1m.{json,md} (`--name`) and one curve plot
per environment, listing the runs not finished yet.

    python benchmarks/mujoco_1m.py train HalfCheetah-v5 --seeds 0 1 2 &
    python benchmarks/mujoco_1m.py train Hopper-v5 --seeds 0 1 2
    python benchmarks/mujoco_1m.py train Walker2d-v5
    python benchmarks/mujoco_1m.py report
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads: MKL's fast path on AMD

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from paddle_ddpg import __version__
from paddle_ddpg.checkpoint import CHECKPOINT_NAME, load_checkpoint
from paddle_ddpg.config import PRESETS
from paddle_ddpg.train import main as train_main

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# Max average return over the run (TD3 paper Table 1: 10 seeds; CleanRL: MuJoCo v4, 3 seeds; zoo: v3).
PUBLISHED = {
    "HalfCheetah-v5": {"TD3 paper": "9636.95 +- 859.07", "paper's DDPG": "8577.29", "CleanRL TD3": "9583.22 +- 126.09",
                       "zoo TD3": "9655.67"},
    "Hopper-v5": {"TD3 paper": "3564.07 +- 114.74", "paper's DDPG": "1860.02", "CleanRL TD3": "3134.61 +- 360.18",
                  "zoo TD3": "3606.39"},
    "Walker2d-v5": {"TD3 paper": "4682.82 +- 539.64", "paper's DDPG": "3098.11", "CleanRL TD3": "4057.59 +- 658.78",
                    "zoo TD3": "4717.82"},
}


def run_name(env: str, seed: int) -> str:
    return f"{env}_s{seed}"


def finished(saved: dict[str, Any]) -> bool:
    """A checkpoint at its run's step budget, with the final evaluation done."""
    evals = saved["evals"]
    return saved["steps"] >= saved["config"]["total_steps"] and bool(evals) and evals[-1]["steps"] == saved["steps"]


def train(env: str, seeds: list[int], root: Path) -> int:
    """Each seed from its checkpoint if it has one, else from the start; stops at the first that does not finish."""
    for seed in seeds:
        checkpoint = root / "model" / run_name(env, seed) / CHECKPOINT_NAME
        if checkpoint.is_file():
            saved = load_checkpoint(checkpoint)
            if finished(saved):
                print(f"{run_name(env, seed)}: finished, {saved['steps']} steps", flush=True)
                continue
            argv = ["--resume", str(checkpoint)]
        else:
            argv = ["--preset", env, "--seed", str(seed), "--threads", "1", "--run-name", run_name(env, seed),
                    "--model-dir", str(root / "model"), "--logdir", str(root / "logs")]
        if code := train_main([*argv, "--no-progress"]):
            return code
    return 0


def runs_of(root: Path) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Every finished run under `root`, by environment: its curve, max and final returns, wall time and speed;
    and where each unfinished run stands."""
    found: dict[str, list[dict[str, Any]]] = {}
    unfinished: list[dict[str, Any]] = []
    for checkpoint in sorted((root / "model").glob(f"*_s*/{CHECKPOINT_NAME}")):
        saved = load_checkpoint(checkpoint)
        config, evals = saved["config"], saved["evals"]
        if not finished(saved):
            print(f"{checkpoint.parent.name}: unfinished ({saved['steps']} steps), left out", flush=True)
            unfinished.append({"env": config["env"], "seed": config["seed"], "steps": saved["steps"],
                               "max_so_far": max((e["mean"] for e in evals), default=None),
                               "last_evals": [e["mean"] for e in evals[-3:]]})
            continue
        found.setdefault(config["env"], []).append({
            "seed": config["seed"], "steps": [e["steps"] for e in evals], "means": [e["mean"] for e in evals],
            "max": max(e["mean"] for e in evals), "final": evals[-1]["mean"],
            "wall_seconds": round(saved["wall_seconds"], 1), "eval_seconds": round(saved["eval_seconds"], 1),
            "steps_per_second": round(saved["steps"] / (saved["wall_seconds"] - saved["eval_seconds"]), 1),
            "config": {k: v for k, v in config.items() if k not in ("logdir", "model_dir", "run_name")}})
    return found, unfinished


def spread(values: list[float], digits: int = 1) -> str:
    """Mean +- the sample standard deviation over seeds; one seed's value alone."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} +- {np.std(values, ddof=1):.{digits}f}"


def plot(env: str, runs: list[dict[str, Any]], path: Path) -> None:
    """Each seed's curve, their mean and a band of one sample standard deviation (a t-interval over two or three
    seeds would span most of the plot)."""
    steps = sorted(set.intersection(*(set(r["steps"]) for r in runs)))
    values = np.array([np.interp(steps, r["steps"], r["means"]) for r in runs])
    mean, std = values.mean(axis=0), values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros(len(steps))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in runs:
        ax.plot(r["steps"], r["means"], color="tab:blue", alpha=0.25, linewidth=0.8)
    label = f"paddle_ddpg TD3 (mean of {len(runs)} seeds)" if len(runs) > 1 else "paddle_ddpg TD3 (one seed)"
    ax.plot(steps, mean, color="tab:blue", label=label)
    ax.fill_between(steps, mean - std, mean + std, color="tab:blue", alpha=0.2)
    if env in PUBLISHED:
        paper = float(PUBLISHED[env]["TD3 paper"].split()[0])
        ax.axhline(paper, color="tab:gray", linestyle="--", linewidth=1,
                   label=f"TD3 paper, max over the run ({paper:.0f})")
    ax.set(xlabel="env steps", ylabel="noise-free evaluation return (10 episodes)",
           title=f"{env}, TD3 preset, {runs[0]['steps'][-1]:,} steps\nthin: single seeds; band: mean +- one standard "
                 "deviation over seeds")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(root: Path, out: Path, name: str) -> int:
    found, unfinished = runs_of(root)
    if not found:
        print(f"no finished runs under {root / 'model'}", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    rows = [("| env | seeds | max average return | final return | TD3 paper | CleanRL TD3 | zoo TD3 | paper's DDPG | "
             "wall per run | steps/s (training) |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for env, runs in found.items():
        plot(env, runs, out / f"{name}_{env}.png")
        published = PUBLISHED.get(env, {})
        rows.append(f"| {env} | {', '.join(str(r['seed']) for r in runs)} | {spread([r['max'] for r in runs])} | "
                    f"{spread([r['final'] for r in runs])} | " + " | ".join(
                        published.get(k, "-") for k in ("TD3 paper", "CleanRL TD3", "zoo TD3", "paper's DDPG")) +
                    f" | {np.mean([r['wall_seconds'] for r in runs]) / 60:.0f} min | "
                    f"{np.mean([r['steps_per_second'] for r in runs]):.0f} |")
    if unfinished:
        rows.append("")
    for u in unfinished:
        stands = "not evaluated yet" if u["max_so_far"] is None else f"max so far {u['max_so_far']:.1f}"
        rows.append(f"- unfinished: {u['env']} seed {u['seed']} at {u['steps']:,} steps, {stands}")
    (out / f"{name}.md").write_text("\n".join(rows) + "\n")
    (out / f"{name}.json").write_text(json.dumps({
        "runs": found, "unfinished": unfinished, "published": PUBLISHED, "report_version": __version__,
        "machine": platform.processor() or platform.machine(), "protocol": "max and final of the noise-free "
        "evaluations (10 episodes every 5,000 steps); mean +- sample std over seeds"}, indent=1) + "\n")
    print("\n".join(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/mujoco_1m.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("benchmarks/mujoco"),
                        help="where the runs' checkpoints and logs go (default benchmarks/mujoco)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train (or go on training) one preset's seeds")
    run.add_argument("env", choices=[e for e in PUBLISHED if e in PRESETS])
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    written = commands.add_parser("report", help="the table and plots of the finished runs")
    written.add_argument("--out-dir", type=Path, default=RESULTS)
    written.add_argument("--name", default="mujoco_1m", help="the files' name: NAME.md, NAME.json, NAME_<env>.png")
    args = parser.parse_args(argv)
    if args.command == "train":
        return train(args.env, args.seeds, args.dir)
    return report(args.dir, args.out_dir, args.name)


if __name__ == "__main__":
    sys.exit(main())
