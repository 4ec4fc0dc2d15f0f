"""A sweep's results: tables, results.json (also what --resume continues from), results.csv and curves.png."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from paddle_ddpg.files import atomic_write
from paddle_ddpg.sweep import RESULTS_FILE, ROW, SPEC_FILE, Sweep, short

CONFIDENCE = 0.95  # Student-t, not a bootstrap: with 3 to 10 seeds a percentile bootstrap is too narrow


def half_width(n: Any, sem: Any) -> Any:  # NaN below two values
    return sem * stats.t.ppf((1 + CONFIDENCE) / 2, n - 1)


def mean_band(curves: list[tuple[list[int], list[float]]]) -> dict[str, list[float]]:
    """Mean of (steps, values) curves and its t-interval, at every step all curves cover, interpolated linearly."""
    first, last = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    steps = sorted({x for s, _ in curves for x in s if first <= x <= last})
    values = pd.DataFrame([np.interp(steps, s, v) for s, v in curves])
    mean, half = values.mean(), half_width(len(curves), values.sem())
    return {"steps": steps, "mean": mean.tolist(), "low": (mean - half).tolist(), "high": (mean + half).tolist()}


def write_results(sweep: Sweep, sweep_dir: Path, rows: list[dict[str, Any]], interrupted: bool,
                  everything: bool = True) -> tuple[dict[str, Any], str]:
    """results.json (with `everything`, results.csv and curves.png too); returns the outcome and the tables."""
    frame = pd.DataFrame(rows, columns=[*list(ROW)[:2], *sweep.varied, *list(ROW)[2:]]).astype(
        {"final_eval": float, "best_eval": float})
    groups = frame.assign(done=frame.final_eval.where(frame.status == "DONE")).groupby(  # per configuration
        sweep.varied or (lambda _: 0), sort=False).agg(
        rows=("seed", lambda s: s.index.tolist()), seeds=("seed", list), done=("done", "count"),
        mean=("done", "mean"), std=("done", "std"), half=("done", lambda d: half_width(d.count(), d.sem())))
    configs = [{"config": {k: rows[g.rows[0]][k] for k in sweep.varied}, "seeds": g.seeds, "done": int(g.done),
                **{k: None if pd.isna(getattr(g, k)) else getattr(g, k) for k in ("mean", "std")},
                "ci95": [g.mean - g.half, g.mean + g.half] if g.done > 1 else None} for g in groups.itertuples()]
    best = max((c for c in configs if c["mean"] is not None), key=lambda c: c["mean"], default=None)
    outcome = {"sweep": sweep.name, "trials": len(rows), "best_config": best and best["config"],
               "best_mean": best and best["mean"], "results": str(sweep_dir / RESULTS_FILE)}
    if not (sweep_dir / SPEC_FILE).exists():  # the arguments that rebuild the sweep: what --resume reads first
        sweep_dir.mkdir(parents=True, exist_ok=True)
        write_json(sweep_dir / SPEC_FILE, {"argv": sweep.argv})
    write_json(sweep_dir / RESULTS_FILE, {**outcome, "interrupted": interrupted, "command": shlex.join(
        ["python", "-m", "paddle_ddpg.sweep", *sweep.argv]), "preset": sweep.preset, "seeds": sweep.seeds, "grid":
        sweep.grid, "space": sweep.space, "scheduler": sweep.asha or None, "base_config": sweep.base,
        "configurations": configs, "trial_results": rows})
    if everything:
        csv = frame.drop(columns="evals").to_csv(index=False)
        atomic_write(sweep_dir / "results.csv", lambda f: f.write(csv.encode()))
        plot(sweep, [frame.evals[i] for i in groups.rows], configs, sweep_dir / "curves.png")
    trials = frame.assign(trial=frame.number.map("{:03d}".format), **{k: frame[k].map(short) for k in sweep.varied})[
        ["trial", *sweep.varied, "seed", "final_eval", "best_eval", "steps", "wall_seconds", "status"]].rename(
        columns={"final_eval": "final eval", "best_eval": "best eval", "wall_seconds": "wall s"})
    table = pd.DataFrame([{**{k: short(v) for k, v in c["config"].items()}, "seeds done": f"{c['done']}/"
                           f"{len(c['seeds'])}", **{k: "-" if c[k] is None else f"{c[k]:.1f}" for k in ("mean", "std")},
                           f"{CONFIDENCE:.0%} t-interval": "[{:.1f}, {:.1f}]".format(*c["ci95"]) if c["ci95"] else "-"}
                          for c in configs])
    return outcome, "\n".join([trials.to_string(index=False, na_rep="-", float_format="{:.1f}".format), *[
        f"{r['number']:03d}: {r['error']}" for r in rows if r["error"]], "", table.to_string(index=False)])


def plot(sweep: Sweep, evals: list[pd.Series], configs: list[dict[str, Any]], path: Path) -> None:
    """Learning curves per configuration: thin lines per seed, the mean over seeds and its t-interval band."""
    fig = Figure(figsize=(8, 5))  # matplotlib's object API: no pyplot state, no GUI backend
    ax = fig.subplots()
    for i, (config, runs) in enumerate(zip(configs, evals)):
        curves, color = [([e["steps"] for e in run], [e["mean"] for e in run]) for run in runs if run], f"C{i % 10}"
        for steps, means in curves:
            ax.plot(steps, means, color=color, alpha=0.25, linewidth=0.8)
        if curves:
            band, label = mean_band(curves), ", ".join(f"{k}={short(v)}" for k, v in config["config"].items())
            ax.plot(band["steps"], band["mean"], color=color, label=f"{label or 'base run'} ({len(curves)} seeds)")
            ax.fill_between(band["steps"], band["low"], band["high"], color=color, alpha=0.15)
    ax.set(xlabel="env steps", ylabel="noise-free evaluation return",
           title=f"{sweep.name}\nthin: single seeds; band: {CONFIDENCE:.0%} t-interval of the mean")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def write_json(path: Path, value: Any) -> None:  # atomically: a sweep cut short keeps the previous record
    atomic_write(path, lambda f: f.write((json.dumps(value, indent=1) + "\n").encode()))
