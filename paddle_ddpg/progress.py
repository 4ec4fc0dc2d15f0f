"""Progress bars (tqdm) on stderr when it is a terminal: logs, pipes and CI get the same lines as without.
While a bar shows, stdout goes through it so that printed lines and the bar never tear each other (tqdm's
DummyTqdmFile would clear only bars on stdout and drop an unfinished line)."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm

from paddle_ddpg.config import Config

SMOOTHING = 0.3  # weight of the newest speed in the one shown (tqdm's own default for its rates)


def wanted(requested: bool = True, stream: IO[str] | None = None) -> bool:
    """Whether to show a bar on `stream` (default stderr): asked for, and a terminal."""
    stream = sys.stderr if stream is None else stream
    return requested and stream is not None and stream.isatty()


class _AboveBar:
    """Stands in for sys.stdout while a bar shows: each complete line is written with the bar cleared."""
    def __init__(self, stream: IO[str], bar: tqdm) -> None:
        self.stream, self._bar, self.pending = stream, bar, ""

    def write(self, text: str) -> int:
        lines, newline, self.pending = (self.pending + text).rpartition("\n")
        if newline:
            with self._bar.get_lock():
                self._bar.clear(nolock=True)
                self.stream.write(lines + newline)
                self.stream.flush()
                self._bar.refresh(nolock=True)
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, encoding, fileno, isatty...: the real stream's
        return getattr(self.stream, name)


class Progress(tqdm):
    """A bar over `total` `unit` (`done` of them already) on `file` (default stderr), shown if `show`; until
    close() (or the end of its `with`) it owns sys.stdout."""

    def __init__(self, total: int, done: int, unit: str, show: bool, file: IO[str] | None = None) -> None:
        super().__init__(total=total, initial=done, file=sys.stderr if file is None else file, disable=not show,
                         dynamic_ncols=True, smoothing=SMOOTHING,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} " + unit + " [{elapsed}<{remaining}{postfix}]")
        self._stdout = _AboveBar(sys.stdout, self) if show else None
        if self._stdout is not None:
            sys.stdout = self._stdout  # type: ignore[assignment]

    def close(self) -> None:
        if getattr(self, "_stdout", None) is not None:
            sys.stdout = self._stdout.stream
            sys.stdout.write(self._stdout.pending)
            self._stdout = None
        super().close()


class TrainingProgress(Progress):
    """Env steps if the run has a step budget, else episodes; steps/s, the episode and the last evaluation. It
    moves once per episode, so the tutorial's loop body carries no progress code; a resumed run starts part way."""

    def __init__(self, config: Config, steps: int, episodes: int, show: bool, file: IO[str] | None = None) -> None:
        self.by_steps = config.total_steps > 0
        super().__init__(*((config.total_steps, steps, "steps") if self.by_steps
                           else (config.episodes, episodes, "episodes")), show, file)
        self._clock, self._steps, self._rate = time.perf_counter(), steps, None

    def episode_done(self, steps: int, episodes: int, last_eval: float | None) -> None:
        if self.disable:
            return
        now = time.perf_counter()
        rate = (steps - self._steps) / max(now - self._clock, 1e-9)
        self._rate = rate if self._rate is None else SMOOTHING * rate + (1 - SMOOTHING) * self._rate
        self._clock, self._steps = now, steps
        shown = [f"{self._rate:.0f} steps/s"] + ([f"episode {episodes}"] if self.by_steps else [])
        self.set_postfix_str(", ".join(shown + ([] if last_eval is None else [f"eval {last_eval:.1f}"])), refresh=False)
        self.update((steps if self.by_steps else episodes) - self.n)


class EvaluationProgress(Progress):
    """The evaluate CLI's bar, with the last return and the mean so far; only for more than one episode."""

    def __init__(self, episodes: int, show: bool, file: IO[str] | None = None) -> None:
        super().__init__(episodes, 0, "episodes", show and episodes > 1, file)
        self._total = 0.0

    def episode_done(self, episode_return: float) -> None:
        if not self.disable:
            self._total += episode_return
            self.set_postfix_str(f"return {episode_return:.1f}, mean {self._total / (self.n + 1):.1f}", refresh=False)
            self.update()
