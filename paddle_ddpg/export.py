"""A trained actor as a static Paddle program for deployment (bounds baked in): `python -m paddle_ddpg.export`.
Its program, weights and `<prefix>_meta.json` appear together or not at all: staged, read back through every export's
checks, renamed into place; a failure puts back what was there and removes the directories the export made."""

from __future__ import annotations

if __name__ == "__main__":  # a program starting: its process settings go in before Paddle loads
    from paddle_ddpg.device import prepare_process
    prepare_process()

import errno
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import paddle

from paddle_ddpg.cli import Parser
from paddle_ddpg.config import UsageError, error_summary
from paddle_ddpg.files import SaveError, fsync_directory, remove_stale_temporaries, temporary
from paddle_ddpg.networks import Actor
from paddle_ddpg.policy import (EXPORT_FORMAT, META_SUFFIX, PARAMS_SUFFIX, PROGRAM_SUFFIX, exported_prefix,
                                load_policy, read_meta)

SUFFIXES = (PROGRAM_SUFFIX, PARAMS_SUFFIX, META_SUFFIX)


def export_actor(actor: Actor, path_prefix: str | Path, env_id: str | None = None,
                 max_episode_steps: int = 0) -> list[Path]:
    """Save `actor` for any batch size of states, and its meta file; returns the files written. A full disk is a
    SaveError, any other failure a UsageError; either way nothing was changed."""
    prefix = Path(path_prefix)
    if not prefix.name or str(path_prefix).endswith(("/", os.sep)):
        raise UsageError(f"the output must be a path prefix ending in a file name (e.g. export/actor), got "
                         f"{str(path_prefix)!r}")
    if not paddle.get_flags("FLAGS_enable_pir_api")["FLAGS_enable_pir_api"]:
        raise UsageError("export writes Paddle's PIR program format, which FLAGS_enable_pir_api=0 turns off; "
                         "unset it")
    targets = [Path(f"{prefix}{suffix}") for suffix in SUFFIXES]
    state_dim, action_dim = actor.fcs[0].weight.shape[0], actor.fcs[-1].weight.shape[1]
    meta = {"format": EXPORT_FORMAT, "env": env_id, "max_episode_steps": max_episode_steps, "state_dim": state_dim,
            "action_dim": action_dim, "action_low": actor.action_low.numpy().tolist(),
            "action_high": actor.action_high.numpy().tolist()}
    made: list[Path] = []  # the directories the export makes, innermost first
    staging, done = None, False
    try:  # only an earlier export may be replaced: `--output model/<run>/config` must not overwrite config.json
        existing = [t for t in targets if t.exists() or t.is_symlink()]
        try:
            ours = not existing or (all(t.is_file() and not t.is_symlink() for t in existing)
                                    and bool(read_meta(str(prefix))))
        except UsageError:
            ours = False
        if not ours:
            raise UsageError(f"{existing[0]} exists and is not part of an earlier export at {prefix}; choose "
                             "another --output")
        made = [p for p in (prefix.parent, *prefix.parent.parents) if not (p.exists() or p.is_symlink())]
        prefix.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(prefix.parent)
        staging = temporary(prefix, directory=True)
        paddle.jit.save(actor, str(staging / prefix.name),
                        input_spec=[paddle.static.InputSpec([None, state_dim], "float32", name="state")])
        (staging / (prefix.name + META_SUFFIX)).write_text(json.dumps(meta, indent=2) + "\n")
        staged = [staging / target.name for target in targets]
        for file in staged:
            with open(file, "rb") as f:
                os.fsync(f.fileno())
        if problem := _read_back(actor, str(staging / prefix.name)):
            raise SaveError(f"cannot write the exported model to {prefix}: what was written does not load back "
                            f"({problem}); nothing was changed")
        _swap_in(staged, targets, staging)
        fsync_directory(prefix.parent)
        done = True
    except (OSError, RuntimeError, ValueError) as exc:  # Paddle reports a file it cannot open as a RuntimeError
        failure = SaveError if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) else UsageError
        raise failure(f"cannot write the exported model to {prefix}: {error_summary(exc)}; nothing was "
                      "changed") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for directory in made if not done else ():
            try:
                directory.rmdir()  # only while empty
            except OSError:
                break
    return targets


def _read_back(actor: Actor, staged: str) -> str | None:
    """Why the staged export does not act as `actor`, or None. Paddle writes a program and weights onto a full
    disk without an error, cut short; read back through the checks every export meets, they are refused."""
    try:
        policy = load_policy(staged)
    except UsageError as exc:
        return str(exc)
    states = np.random.default_rng(0).normal(0.0, 1.0, (8, policy.state_dim)).astype(np.float32)
    with paddle.no_grad():
        same = np.allclose(policy.predict(states), actor(paddle.to_tensor(states)).numpy(), rtol=0, atol=1e-5)
    return None if same else "its actions differ from the actor's"


def _swap_in(staged: list[Path], targets: list[Path], staging: Path) -> None:
    """Rename the staged files over the targets, keeping the old ones aside until all are in place."""
    moved: list[Path] = []
    placed = 0
    try:
        for target in (t for t in targets if t.exists()):
            os.replace(target, staging / (target.name + ".old"))
            moved.append(target)
        for file, target in zip(staged, targets):
            os.replace(file, target)
            placed += 1
    except OSError:
        for target in targets[:placed]:
            target.unlink(missing_ok=True)
        for target in moved:
            os.replace(staging / (target.name + ".old"), target)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog="python -m paddle_ddpg.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a run directory, its checkpoint.pdckpt, or an <algo>-actor<episode>.pdparams")
    parser.add_argument("--output", required=True, metavar="PREFIX",
                        help="path prefix of the files written: " + ", ".join(f"PREFIX{s}" for s in SUFFIXES))
    parser.add_argument("--env", default=None, metavar="ID",
                        help="environment id (default: the one the checkpoint trained on)")
    args = parser.parse_args(argv)
    try:
        if exported_prefix(args.checkpoint) is not None:
            raise UsageError(f"{args.checkpoint} is an exported model already; export a checkpoint")
        policy = load_policy(args.checkpoint, args.env)
        (env := policy.make_env()).close()
        files = export_actor(policy.network, args.output, env.spec.id, env.spec.max_episode_steps or 0)
    except (UsageError, SaveError) as exc:
        parser.fail(exc)
    print(json.dumps({"files": [str(f) for f in files], "env": env.spec.id,
                      "max_episode_steps": env.spec.max_episode_steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
