"""Progress bars on stderr (tqdm): how much of a run's budget is done, how fast, how long to go, and the last
noise-free evaluation.

A bar shows only where a person is watching, when stderr is a terminal, and `--no-progress` turns it off:
logs, pipes and CI get exactly the lines they got before. While a bar shows, stdout goes through it: each
complete line is written with the bar cleared and the bar drawn again below it, so the tutorial's
`Epoch:N, episode reward is R` lines and the bar never tear each other on a shared terminal.
"""

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
    """Stands in for sys.stdout while a bar shows: complete lines go out with the bar cleared, then the bar is
    drawn again below them, all under tqdm's lock (tqdm.write's way, for lines printed with print)."""

    def __init__(self, stream: IO[str], bar: tqdm) -> None:
        self._stream = stream
        self._bar = bar
        self._pending = ""  # the start of a line not yet ended

    def write(self, text: str) -> int:
        lines, newline, self._pending = (self._pending + text).rpartition("\n")
        if newline:
            with self._bar.get_lock():
                self._bar.clear(nolock=True)
                self._stream.write(lines + newline)
                self._stream.flush()
                self._bar.refresh(nolock=True)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def restore(self) -> IO[str]:
        """The real stdout, with any unfinished line written to it."""
        self._stream.write(self._pending)
        self._pending = ""
        return self._stream

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty...: the real stream's
        return getattr(self._stream, name)


class Progress:
    """A bar over `total` `unit` (`done` of them already) on `file` (default stderr), shown if `show`.

    Use it as a context manager, or call close(): until then it owns sys.stdout.
    """

    def __init__(self, total: int, done: int, unit: str, show: bool, file: IO[str] | None = None) -> None:
        self.bar = tqdm(total=total, initial=done, file=sys.stderr if file is None else file, disable=not show,
                        dynamic_ncols=True, smoothing=SMOOTHING,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} " + unit + " [{elapsed}<{remaining}{postfix}]")
        self._stdout: _AboveBar | None = None
        if show:
            self._stdout = _AboveBar(sys.stdout, self.bar)
            sys.stdout = self._stdout  # type: ignore[assignment]

    def close(self) -> None:
        if self._stdout is not None:
            sys.stdout = self._stdout.restore()
            self._stdout = None
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class TrainingProgress(Progress):
    """A training run's bar: env steps of `total_steps` if the run has a step budget, else episodes of
    `episodes`; then steps per second, the episode (on a bar of steps) and the last evaluation's mean return.

    It moves once per episode, so the training step itself (the tutorial's loop body) carries no progress
    code. `steps` and `episodes` are what the run has done already (a resumed run starts part way).
    """

    def __init__(self, config: Config, steps: int, episodes: int, show: bool, file: IO[str] | None = None) -> None:
        self.by_steps = config.total_steps > 0
        if self.by_steps:
            super().__init__(config.total_steps, steps, "steps", show, file)
        else:
            super().__init__(config.episodes, episodes, "episodes", show, file)
        self._clock, self._steps = time.perf_counter(), steps
        self._rate: float | None = None

    def episode_done(self, steps: int, episodes: int, last_eval: float | None) -> None:
        """`episodes` done after `steps` env steps; `last_eval` the latest evaluation's mean return, if any."""
        if self.bar.disable:
            return
        now = time.perf_counter()
        rate = (steps - self._steps) / max(now - self._clock, 1e-9)
        self._rate = rate if self._rate is None else SMOOTHING * rate + (1 - SMOOTHING) * self._rate
        self._clock, self._steps = now, steps
        shown = [f"{self._rate:.0f} steps/s"] + ([f"episode {episodes}"] if self.by_steps else [])
        shown += [] if last_eval is None else [f"eval {last_eval:.1f}"]
        self.bar.set_postfix_str(", ".join(shown), refresh=False)
        self.bar.update((steps if self.by_steps else episodes) - self.bar.n)


class EvaluationProgress(Progress):
    """The evaluate CLI's bar over its episodes, with the last return and the mean so far; shown only for
    more than one episode, where there is something to wait for."""

    def __init__(self, episodes: int, show: bool, file: IO[str] | None = None) -> None:
        super().__init__(episodes, 0, "episodes", show and episodes > 1, file)
        self._total = 0.0

    def episode_done(self, episode_return: float) -> None:
        if self.bar.disable:
            return
        self._total += episode_return
        self.bar.set_postfix_str(f"return {episode_return:.1f}, mean {self._total / (self.bar.n + 1):.1f}",
                                 refresh=False)
        self.bar.update()
