"""Many seeds and hyperparameter sweeps as Ray Tune trials: what a sweep is. Its program (`__main__`) checks one,
`tuning` runs it, `report` writes its results; importing this package imports none of them, nor Ray or Paddle."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

SPEC_FILE, RESULTS_FILE = "sweep.json", "results.json"  # the sweep's own record, which --resume continues from
ROW = {"trial": str, "number": int, "seed": int, "status": str, "final_eval": (int, float, type(None)),
       "best_eval": (int, float, type(None)), "steps": int, "wall_seconds": (int, float), "node_id": (str, type(None)),
       "checkpoint": (str, type(None)), "error": (str, type(None)), "evals": list}  # a trial's row, and its types


@dataclasses.dataclass(frozen=True)
class Sweep:
    name: str
    preset: str
    base: dict[str, Any]  # Config.to_dict() of the base run; logdir and model_dir are the sweep's, absolute
    seeds: list[int]
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # field -> values (tuples as lists)
    space: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # {choices} or {low, high, log}
    trials: int = 0  # configurations a search samples
    asha: dict[str, Any] = dataclasses.field(default_factory=dict)  # ASHAScheduler's settings; {}: no scheduler
    cpus_per_trial: int = 1
    max_concurrent: int = 0  # 0: as many as the CPUs allow
    argv: list[str] = dataclasses.field(default_factory=list)  # the arguments that rebuild it: its record

    @property
    def varied(self) -> list[str]:
        return [*self.grid, *self.space]

    def total_trials(self) -> int:
        return (self.trials if self.space else len(list(itertools.product(*self.grid.values())))) * len(self.seeds)


def encode(value: Any) -> Any:
    """A value as Tune and Optuna carry it: a tuple field's sizes as text, "64x64" (Optuna's choices are plain)."""
    return "x".join(map(str, value)) if isinstance(value, list) else value


def short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
