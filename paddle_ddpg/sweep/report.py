"""A sweep's results: the trial and configuration tables, results.json (also the record --resume continues
from, which arguments.prepare checks), results.csv and curves.png; pandas for tables and CSV, scipy for intervals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from paddle_ddpg.files import atomic_write
from paddle_ddpg.sweep.arguments import RESULTS_FILE, ROW, Sweep, short

CONFIDENCE = 0.95


def interval(values: np.ndarray) -> tuple[Any, Any]:
    """The CONFIDENCE Student-t interval of the mean over axis 0 (a t-interval, not a bootstrap: with 3 to 10
    seeds a percentile bootstrap is too narrow)."""
    return stats.t.interval(CONFIDENCE, len(values) - 1, loc=values.mean(axis=0), scale=stats.sem(values, axis=0))


def mean_band(curves: list[tuple[list[int], list[float]]]) -> dict[str, list[float]]:
    """Mean over curves of (steps, values) and its t-interval, at every step within the range all curves cover
    (curves that evaluate at different steps are interpolated linearly)."""
    first, last = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    steps = sorted({x for s, _ in curves for x in s if first <= x <= last})
    values = np.array([np.interp(steps, s, v) for s, v in curves])
    low, high = interval(values) if len(curves) > 1 else (np.full(len(steps), np.nan),) * 2
    return {"steps": steps, "mean": values.mean(axis=0).tolist(), "low": list(low), "high": list(high)}


def summarize(sweep: Sweep, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per configuration, over its seeds: mean, std and t-interval of the final evaluations of the trials that
    trained to the end, in the order the configurations first appear."""
    out = []
    frame = pd.DataFrame(rows, columns=[*ROW, *sweep.varied])
    for _, group in frame.groupby(sweep.varied or (lambda _: 0), sort=False):  # no varied field: one group
        finals = group.final_eval[group.status == "DONE"].to_numpy(float)
        ci = [float(end) for end in interval(finals)] if len(finals) > 1 else None
        out.append({"config": {k: rows[group.index[0]][k] for k in sweep.varied}, "seeds": group.seed.tolist(),
                    "done": len(finals), "mean": float(finals.mean()) if len(finals) else None,
                    "std": float(finals.std(ddof=1)) if len(finals) > 1 else None, "ci95": ci, "rows": group.index})
    return out


def tables(sweep: Sweep, rows: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    trials = pd.DataFrame([{"trial": f"{r['number']:03d}", **{k: short(r[k]) for k in sweep.varied},
                            "seed": r["seed"], "final eval": number(r["final_eval"]),
                            "best eval": number(r["best_eval"]), "steps": r["steps"],
                            "wall s": number(r["wall_seconds"]), "status": r["status"]} for r in rows])
    configs = pd.DataFrame([{**{k: short(v) for k, v in s["config"].items()},
                             "seeds done": f"{s['done']}/{len(s['seeds'])}", "mean": number(s["mean"]),
                             "std": number(s["std"]), f"{CONFIDENCE:.0%} t-interval":
                             "[{:.1f}, {:.1f}]".format(*s["ci95"]) if s["ci95"] else "-"} for s in summaries])
    errors = [f"{r['number']:03d}: {r['error']}" for r in rows if r["error"]]
    return "\n".join([trials.to_string(index=False), *errors, "", configs.to_string(index=False)])


def plot(sweep: Sweep, rows: list[dict[str, Any]], summaries: list[dict[str, Any]], path: Path) -> None:
    """Learning curves per configuration: thin lines per seed, the mean over seeds and its t-interval band."""
    from matplotlib.figure import Figure  # only the driver draws: kept out of every trial's imports

    fig = Figure(figsize=(8, 5))  # matplotlib's object API: no pyplot state, no GUI backend
    ax = fig.subplots()
    for i, summary in enumerate(summaries):
        curves = [([e["steps"] for e in r["evals"]], [e["mean"] for e in r["evals"]]) for r in map(rows.__getitem__,
                  summary["rows"]) if r["evals"]]
        for steps, means in curves:
            ax.plot(steps, means, color=f"C{i % 10}", alpha=0.25, linewidth=0.8)
        if curves:
            band, label = mean_band(curves), ", ".join(f"{k}={short(v)}" for k, v in summary["config"].items())
            label = f"{label or 'base run'} ({len(curves)} seeds)"
            ax.plot(band["steps"], band["mean"], color=f"C{i % 10}", label=label)
            ax.fill_between(band["steps"], band["low"], band["high"], color=f"C{i % 10}", alpha=0.15)
    ax.set(xlabel="env steps", ylabel="noise-free evaluation return",
           title=f"{sweep.name}\nthin: single seeds; band: {CONFIDENCE:.0%} t-interval of the mean")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def write_json(path: Path, value: Any) -> None:
    """Atomically: a sweep cut short while writing keeps the previous file, which --resume reads."""
    atomic_write(path, lambda f: f.write((json.dumps(value, indent=1) + "\n").encode()))


def write_results(sweep: Sweep, sweep_dir: Path, rows: list[dict[str, Any]], interrupted: bool,
                  everything: bool = True) -> tuple[dict[str, Any], str]:
    """results.json (with `everything`, results.csv and curves.png too); returns the outcome and the tables."""
    summaries = summarize(sweep, rows)
    best = max((s for s in summaries if s["mean"] is not None), key=lambda s: s["mean"], default=None)
    outcome = {"sweep": sweep.name, "trials": len(rows), "best_config": best and best["config"],
               "best_mean": best and best["mean"], "results": str(sweep_dir / RESULTS_FILE)}
    shown = [{k: v for k, v in s.items() if k != "rows"} for s in summaries]
    write_json(sweep_dir / RESULTS_FILE, {**outcome, "interrupted": interrupted, "command": sweep.command,
                                           "preset": sweep.preset, "seeds": sweep.seeds, "grid": sweep.grid,
                                           "space": sweep.space, "scheduler": sweep.scheduler or None,
                                           "base_config": sweep.base, "configurations": shown, "trial_results": rows})
    if everything:
        columns = ["trial", *sweep.varied, "seed", "status", "final_eval", "best_eval", "steps", "wall_seconds",
                   "node_id", "error"]
        csv = pd.DataFrame(rows, columns=columns).to_csv(index=False)
        atomic_write(sweep_dir / "results.csv", lambda f: f.write(csv.encode()))
        plot(sweep, rows, summaries, sweep_dir / "curves.png")
    return outcome, tables(sweep, rows, summaries)
