"""The sweep program: a Ray of its own on this machine, or with --address the trials spread over a running cluster."""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process

    prepare_process()

import functools
import json
import shlex
import sys
from collections.abc import Sequence

from paddle_ddpg.config import UsageError
from paddle_ddpg.files import SaveError
from paddle_ddpg.sweep.arguments import build_parser, prepare


def main(argv: Sequence[str] | None = None) -> int:
    args = (parser := build_parser()).parse_args(argv)
    try:
        sweep, sweep_dir, kept = prepare(parser, args)
        from paddle_ddpg.sweep.report import write_results  # the [sweep] extra, once the command is right
        from paddle_ddpg.sweep.tuning import run_sweep

        rows = run_sweep(sweep, sweep_dir, args.address, kept,  # as each trial ends: what --resume continues from
                         functools.partial(write_results, sweep, sweep_dir, interrupted=True, everything=False))
        ended = sum(r["status"] != "UNFINISHED" for r in rows)
        outcome, shown = write_results(sweep, sweep_dir, rows, interrupted := ended < sweep.total_trials())
    except (UsageError, SaveError) as exc:  # 2 for a mistake in the input, 1 for a disk that fills
        parser.exit(2 if isinstance(exc, UsageError) else 1, f"{parser.prog}: error: {exc}\n")
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    print(f"\n{shown}\n\nresults, per-trial CSV and learning curves in {sweep_dir}\n{json.dumps(outcome)}", flush=True)
    if interrupted:
        print(f"interrupted: {ended} of {sweep.total_trials()} trials ended. Continue with:\n  python -m "
              f"paddle_ddpg.sweep --resume {shlex.quote(str(sweep_dir))}", file=sys.stderr)
    return 130 if interrupted else int(any(r["status"] == "ERROR" for r in rows))


if __name__ == "__main__":
    sys.exit(main())
