"""Noise-free evaluation of a trained policy: `python -m paddle_ddpg.evaluate --checkpoint PATH`.
Its own environment and reset seeds, no exploration noise: how the textbook judges a deterministic policy."""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process
    prepare_process()

import json
import os
import sys
from collections.abc import Sequence

from paddle_ddpg import fast
from paddle_ddpg.checkpoint import CHECKPOINT_NAME
from paddle_ddpg.cli import Parser
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.device import cpu_threads, set_device
from paddle_ddpg.env import evaluate
from paddle_ddpg.files import SaveError
from paddle_ddpg.policy import load_policy
from paddle_ddpg.progress import EvaluationProgress, wanted
from paddle_ddpg.record import DEFAULT_EVERY, DEFAULT_SIZE, Clip


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m paddle_ddpg.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help=f"a {CHECKPOINT_NAME}, a ddpg-actor<episode>.pdparams, a run directory (its "
                             f"{CHECKPOINT_NAME}), or the PREFIX (or PREFIX.json) of a paddle_ddpg.export model")
    parser.add_argument("--env", default=None, metavar="ID",
                        help="environment id (default: the one the checkpoint trained on)")
    parser.add_argument("--episodes", type=int, default=10, metavar="N", help="evaluation episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the evaluation resets (default 0)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="(default: cpu)")
    watch = parser.add_argument_group("watching the episodes")
    watch.add_argument("--render", action="store_true", help="show the episodes in a window (needs a display)")
    watch.add_argument("--record", metavar="FILE", help="write the episodes to FILE, a .gif or an .mp4 (.mp4 needs "
                                                        "the [record] extra), playing at real speed")
    watch.add_argument("--record-size", type=int, default=DEFAULT_SIZE, metavar="PIXELS",
                       help=f"downscale frames to fit in PIXELS x PIXELS (default {DEFAULT_SIZE})")
    watch.add_argument("--record-every", type=int, metavar="N",
                       help=f"keep every Nth frame (default {DEFAULT_EVERY}, more where a GIF would play too fast)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (shown on a terminal for more than one episode)")
    args, env = parser.parse_args(argv), None
    try:
        if args.episodes <= 0:
            raise UsageError(f"episodes must be > 0, got {args.episodes}")
        if args.render and args.record:
            raise UsageError("--render and --record cannot be combined: an environment renders to a window or to "
                             "frames, not both")
        Config(seed=args.seed).validate()  # training's rule for seeds
        clip = Clip(args.record, args.record_size, args.record_every) if args.record else None
        # On Linux a window needs an X or Wayland display; the renderers' own errors without one run to lines.
        if args.render and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                                     or os.environ.get("WAYLAND_DISPLAY")):
            raise UsageError("--render needs a display and none is set (DISPLAY, WAYLAND_DISPLAY); record the "
                             "episodes with --record out.gif instead")
        set_device(args.device)
        fast.set_cpu_threads(cpu_threads())  # one state at a time
        policy = load_policy(args.checkpoint, args.env)
        env = policy.make_env(render_mode="rgb_array" if clip else "human" if args.render else None)
        if clip is not None:
            clip.start(env, args.episodes)
        with EvaluationProgress(args.episodes, wanted(not args.no_progress)) as progress:
            returns = evaluate(policy.predict, env, args.episodes, args.seed, on_episode=progress.episode_done,
                               on_frame=clip.add if clip else None, frame_every=clip.every if clip else 1)
        if clip is not None:
            clip.save()
    except (UsageError, SaveError) as exc:
        parser.fail(exc)
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted\n")
    finally:
        if env is not None:
            env.close()
    print(json.dumps({"mean_return": float(returns.mean()), "std_return": float(returns.std()),
                      "episodes": len(returns), "returns": [round(float(r), 3) for r in returns]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
