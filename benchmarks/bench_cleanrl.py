"""Whole-machine wall time of one DDPG training run: paddle_ddpg against CleanRL's own script, run unmodified.

CleanRL's `ddpg_continuous_action_jax.py` (or, with --peer torch, `ddpg_continuous_action.py`) runs as it is, in its
own virtual environment (--peer-python, with its `cleanrl_utils/` beside the script in --cleanrl-dir); ours runs as
`python -m paddle_ddpg.train` with this interpreter. CleanRL's settings are mapped onto ours row by row (SETTINGS
below, written into the results), and neither side is limited in threads: CleanRL as its libraries start, ours
with each --threads value given (0 is its default). Each round runs every side once, the order reversed every
second round (ours, peer, peer, ours, ...), each in a fresh working directory. The harness times each process from
start to exit, and records the CPU time it used (so cores used = CPU / wall) and the load average before and after.
Ours evaluates once at the end whatever the settings; that evaluation's time is taken from its summary, and the
ratio is given with it counted and without.

    python benchmarks/bench_cleanrl.py --peer-python /path/to/cleanrl-venv/bin/python --cleanrl-dir /path/to/cleanrl
    python benchmarks/bench_cleanrl.py ... --peer torch --threads 0 2 --rounds 5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"jax": "ddpg_continuous_action_jax.py", "torch": "ddpg_continuous_action.py"}
PEER_PACKAGES = ("jax", "jaxlib", "flax", "optax", "torch", "tyro", "gymnasium", "numpy", "stable-baselines3",
                 "tensorboard")
OUR_PACKAGES = ("paddlepaddle", "gymnasium", "numpy")
LEARNING_STARTS = 5000
POLICY_FREQUENCY = 2
PEER = "peer"
WORKDIR = "{workdir}"  # stands for each run's fresh directory in the recorded commands


def settings(env: str, total_steps: int, seed: int, peer: str, delay_honoured: bool) -> list[dict[str, Any]]:
    """CleanRL's settings (its defaults written out, or fixed in its code where it has no flag) and ours for each."""
    rows = [
        ("environment", ["--env-id", env], ["--env", env]),
        ("env steps (ours: episodes unbounded)", ["--total-timesteps", str(total_steps)],
         ["--total-steps", str(total_steps), "--episodes", str(10**6)]),
        ("seed", ["--seed", str(seed)], ["--seed", str(seed)]),
        ("algorithm (CleanRL: the script)", [], ["--algo", "ddpg"]),
        ("hidden layers 256-256 (CleanRL: in its code)", [],
         ["--actor-hidden", "256", "256", "--critic-hidden", "256", "256"]),
        ("action joins the state at the critic's input (CleanRL: in its code)", [], ["--critic-action-layer", "0"]),
        ("Adam learning rate, both nets", ["--learning-rate", "3e-4"], ["--lr-actor", "3e-4", "--lr-critic", "3e-4"]),
        ("soft update rate", ["--tau", "0.005"], ["--tau", "0.005"]),
        ("batch", ["--batch-size", "256"], ["--batch-size", "256"]),
        ("discount", ["--gamma", "0.99"], ["--gamma", "0.99"]),
        ("replay memory", ["--buffer-size", "1000000"], ["--memory-size", "1000000"]),
        ("uniform random actions, then learning", ["--learning-starts", str(LEARNING_STARTS)],
         ["--random-steps", str(LEARNING_STARTS), "--learning-starts", str(LEARNING_STARTS)]),
        ("Gaussian noise, fraction of the half-range, constant", ["--exploration-noise", "0.1"],
         ["--noise", "gaussian", "--noise-std", "0.1", "--epsilon-min", "1.0"]),
        ("actor and target updates every this many critic updates"
         + ("" if delay_honoured else " (ours: not honoured by DDPG in this version, so every update)"),
         ["--policy-frequency", str(POLICY_FREQUENCY)],
         ["--policy-delay", str(POLICY_FREQUENCY)] if delay_honoured else []),
        ("rewards stored as they come (CleanRL: in its code)", [], ["--reward-offset", "0", "--reward-scale", "1"]),
        ("no tanh penalty (CleanRL: none in its code)", [], ["--tanh-penalty", "0"]),
        ("no evaluation (ours: one final episode, which it cannot skip)", ["--no-save-model"],
         ["--eval-interval", "0", "--eval-episodes", "1"]),
        ("no video, no tracking", ["--no-capture-video", "--no-track"], []),
        ("CPU", ["--no-cuda"] if peer == "torch" else [], ["--device", "cpu"]),
    ]
    return [{"setting": name, "cleanrl": cleanrl, "ours": ours} for name, cleanrl, ours in rows]


def delay_honoured_by_ddpg() -> bool:
    """Whether our --policy-delay help says DDPG honours it (older versions applied it to TD3 alone)."""
    text = subprocess.run([sys.executable, "-m", "paddle_ddpg.train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    entry = re.search(r"^\s+--policy-delay N\s+(.*?)(?=^\s+--|\Z)", text, re.MULTILINE | re.DOTALL)
    return entry is not None and "ddpg" in entry.group(1)


def commands(args: argparse.Namespace, table: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each side's command line, keyed by side name; ours writes into WORKDIR, the run's fresh directory."""
    peer = [args.peer_python, str(args.cleanrl_dir / SCRIPTS[args.peer])]
    ours = [sys.executable, "-m", "paddle_ddpg.train", "--logdir", f"{WORKDIR}/logs", "--model-dir",
            f"{WORKDIR}/model", "--run-name", "bench"]
    for row in table:
        peer += row["cleanrl"]
        ours += row["ours"]
    sides = {PEER: peer}
    for threads in args.threads:
        sides[our_side(threads)] = ours + ["--threads", str(threads)]
    return sides


def our_side(threads: int) -> str:
    return f"ours_threads{threads}"


def timed(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run one side to its exit: wall and CPU seconds, cores used, the load average around it, its stdout."""
    load_before = os.getloadavg()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, check=False, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "cores": round(cpu / wall, 2),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "stdout": done.stdout}


def run_side(side: str, command: list[str]) -> dict[str, Any]:
    """One run of one side in a fresh directory (CleanRL writes runs/ where it starts), with what its output says."""
    with tempfile.TemporaryDirectory(prefix="bench_cleanrl_") as workdir:
        command = [arg.replace(WORKDIR, workdir) for arg in command]
        run = timed(command, Path(workdir) if side == PEER else ROOT)
    stdout = run.pop("stdout")
    if side == PEER:
        returns = re.findall(r"episodic_return=\[([-\d.eE+]+)\]", stdout)
        run["last_episode_return"] = float(returns[-1]) if returns else None
        return run
    summary = json.loads(stdout.strip().splitlines()[-1])
    eval_s = summary["wall_seconds"] - summary["train_seconds"]
    run.update(eval_s=round(eval_s, 2), wall_without_eval_s=round(run["wall_s"] - eval_s, 2),
               steps=summary["steps"], learn_steps=summary["learn_steps"], engine=summary["engine"],
               final_eval_mean=round(summary["final_eval_mean"], 1))
    return run


def versions(python: str, packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of `packages` in the environment of `python` (absent ones left out)."""
    code = ("import importlib.metadata as m, json, sys\nfound = {}\nfor p in sys.argv[1:]:\n"
            "    try: found[p] = m.version(p)\n    except m.PackageNotFoundError: pass\nprint(json.dumps(found))")
    return json.loads(subprocess.run([python, "-c", code, *packages], capture_output=True, text=True,
                                     check=True).stdout)


def summarise(rounds: list[dict[str, Any]], ours: list[str]) -> dict[str, Any]:
    """Medians per side, and peer wall / ours wall per round and their median (above 1: ours is faster)."""
    summary: dict[str, Any] = {}
    for side in [PEER, *ours]:
        runs = [r[side] for r in rounds]
        summary[side] = {f"median_{key}": statistics.median(run[key] for run in runs)
                         for key in ("wall_s", "cpu_s", "cores", "eval_s", "wall_without_eval_s") if key in runs[0]}
    for side in ours:
        for key, ours_key in (("ratio", "wall_s"), ("ratio_without_eval", "wall_without_eval_s")):
            per_round = [round(r[PEER]["wall_s"] / r[side][ours_key], 3) for r in rounds]
            summary[side][f"{key}_per_round"] = per_round
            summary[side][f"median_{key}"] = statistics.median(per_round)
    return summary


def print_table(rounds: list[dict[str, Any]], ours: list[str]) -> None:
    print(f"{'round':>5}  {'side':<16} {'wall s':>8} {'cpu s':>8} {'cores':>6}  {'load before -> after':<22}"
          f" {'peer/ours':>9} {'w/o eval':>9}")
    for i, sides in enumerate(rounds):
        for side in sides["order"]:
            run = sides[side]
            ratios = ("", "") if side == PEER else (f"{sides[PEER]['wall_s'] / run['wall_s']:.2f}x",
                                                     f"{sides[PEER]['wall_s'] / run['wall_without_eval_s']:.2f}x")
            load = f"{run['load_before'][0]:.2f} -> {run['load_after'][0]:.2f}"
            print(f"{i:>5}  {side:<16} {run['wall_s']:>8.1f} {run['cpu_s']:>8.1f} {run['cores']:>6.2f}  {load:<22}"
                  f" {ratios[0]:>9} {ratios[1]:>9}")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench_cleanrl.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-python", required=True, help="the python of the environment CleanRL runs in")
    parser.add_argument("--cleanrl-dir", type=Path, required=True,
                        help="the directory holding CleanRL's DDPG scripts and its cleanrl_utils/")
    parser.add_argument("--cleanrl-commit", default="", help="the CleanRL commit the scripts came from, recorded")
    parser.add_argument("--peer", choices=sorted(SCRIPTS), default="jax", help="CleanRL's JAX or PyTorch script")
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--total-steps", type=int, default=30_000)
    parser.add_argument("--seed", type=int, default=1, help="both sides' seed (CleanRL's default: 1)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[0],
                        help="ours: one side per value of --threads (0: its default)")
    parser.add_argument("--name", default="", help="results/cleanrl_<name>.json (default: the --peer value)")
    parser.add_argument("--out", type=Path, help="write the results here instead")
    args = parser.parse_args(argv)
    script = args.cleanrl_dir / SCRIPTS[args.peer]
    if not script.is_file() or not (args.cleanrl_dir / "cleanrl_utils").is_dir():
        parser.error(f"{args.cleanrl_dir} holds no {SCRIPTS[args.peer]} beside a cleanrl_utils/ directory")
    if not os.access(args.peer_python, os.X_OK):
        parser.error(f"--peer-python {args.peer_python} is not an executable")
    if args.rounds < 1 or args.total_steps <= LEARNING_STARTS:
        parser.error(f"--rounds must be at least 1 and --total-steps above {LEARNING_STARTS}")
    args.out = args.out or ROOT / "benchmarks" / "results" / f"cleanrl_{args.name or args.peer}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    delay_honoured = delay_honoured_by_ddpg()
    table = settings(args.env, args.total_steps, args.seed, args.peer, delay_honoured)
    sides = commands(args, table)
    ours = [our_side(t) for t in args.threads]
    updates = args.total_steps - LEARNING_STARTS - 1  # CleanRL learns from step learning_starts + 1 on
    record: dict[str, Any] = {
        "peer": args.peer, "cleanrl_script": SCRIPTS[args.peer], "cleanrl_commit": args.cleanrl_commit,
        "cleanrl_script_sha256": hashlib.sha256((args.cleanrl_dir / SCRIPTS[args.peer]).read_bytes()).hexdigest(),
        "peer_versions": versions(args.peer_python, PEER_PACKAGES),
        "our_versions": versions(sys.executable, OUR_PACKAGES),
        "our_commit": subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                                     text=True, check=False).stdout.strip(),
        "our_policy_delay_honoured_by_ddpg": delay_honoured,
        "peer_updates": {"critic": updates, "actor": sum(1 for s in range(LEARNING_STARTS + 1, args.total_steps)
                                                         if s % POLICY_FREQUENCY == 0)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": table, "commands": sides, "rounds": [],
    }
    for i in range(args.rounds):
        order = [PEER, *ours] if i % 2 else [*ours, PEER]
        result: dict[str, Any] = {"order": order}
        for side in order:
            result[side] = run_side(side, sides[side])
            print(f"round {i} {side}: {result[side]['wall_s']} s", flush=True)
        record["rounds"].append(result)
        record["summary"] = summarise(record["rounds"], ours)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    print_table(record["rounds"], ours)
    for side in ours:
        s = record["summary"][side]
        print(f"{side}: median peer/ours {s['median_ratio']:.2f}x ({s['median_ratio_without_eval']:.2f}x without "
              f"its final evaluation); policy delay honoured: {delay_honoured}; results in {args.out}")


if __name__ == "__main__":
    main()
