"""A trained actor as a static Paddle program for deployment: `python -m paddle_ddpg.export`.

`paddle.jit.save` traces the actor into a program plus its weights, which `paddle.jit.load` (or Paddle
Inference) runs without this package's classes. The actor scales tanh to the action bounds inside, so
the program maps env-scale states to env-scale actions, bounds baked in. Paddle 3 writes the program as
`<prefix>.json` (PIR); older versions, or FLAGS_enable_pir_api=0, write `<prefix>.pdmodel`. Beside them
`<prefix>_meta.json` records the environment and its step limit, so evaluation runs it where it trained.
Not `<prefix>.meta.json`: `paddle.jit.load` reads every `<prefix>.<name>.json` as the program of a method
`<name>`, and fails on anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paddle
import paddle.nn as nn

from paddle_ddpg.config import Parser, UsageError, error_summary
from paddle_ddpg.networks import Actor

PROGRAM_SUFFIXES = (".json", ".pdmodel")  # PIR program (Paddle 3), legacy ProgramDesc
PARAMS_SUFFIX = ".pdiparams"
META_SUFFIX = "_meta.json"
EXPORT_SUFFIXES = (META_SUFFIX, PARAMS_SUFFIX, *PROGRAM_SUFFIXES)  # "_meta.json" before ".json"
FORMAT = "paddle_ddpg-export/1"


def export_actor(actor: Actor, path_prefix: str | Path, env_id: str | None = None,
                 max_episode_steps: int = 0) -> list[Path]:
    """Save `actor` for any batch size of states, and its meta file; returns the files written.

    `max_episode_steps` 0 means the environment's own limit, as in `Config`.
    """
    prefix = str(path_prefix)
    if not Path(prefix).name or prefix.endswith(("/", os.sep)):
        raise UsageError(f"the output must be a path prefix ending in a file name (e.g. export/actor), got {prefix!r}")
    state_dim, action_dim = actor.fcs[0].weight.shape[0], actor.fcs[-1].weight.shape[1]
    try:
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        paddle.jit.save(actor, prefix,
                        input_spec=[paddle.static.InputSpec([None, state_dim], "float32", name="state")])
        meta = {"format": FORMAT, "env": env_id, "max_episode_steps": max_episode_steps, "state_dim": state_dim,
                "action_dim": action_dim, "action_low": actor.action_low.numpy().tolist(),
                "action_high": actor.action_high.numpy().tolist()}
        Path(prefix + META_SUFFIX).write_text(json.dumps(meta, indent=2) + "\n")
    except (OSError, RuntimeError, ValueError) as exc:  # Paddle reports a file it cannot open as a RuntimeError
        raise UsageError(f"cannot write the exported model to {prefix}: {error_summary(exc)}") from None
    program = program_file(prefix)
    assert program is not None, f"paddle.jit.save wrote no program file for {prefix}"
    return [program, Path(prefix + PARAMS_SUFFIX), Path(prefix + META_SUFFIX)]


def program_file(prefix: str) -> Path | None:
    """The program file of an export at `prefix`, if there is one."""
    return next((Path(prefix + s) for s in PROGRAM_SUFFIXES if Path(prefix + s).is_file()), None)


def exported_prefix(path: str) -> str | None:
    """The export prefix that `path` names (the prefix itself or one of its files), or None if it names
    none, which leaves a run directory or a checkpoint to the checkpoint reader."""
    for suffix in EXPORT_SUFFIXES:
        if path.endswith(suffix):
            return path[: -len(suffix)]
    return path if not Path(path).exists() and program_file(path) is not None else None


def load_exported(prefix: str) -> tuple[nn.Layer, dict[str, Any]]:
    """The exported program as a callable layer and its meta data ({} without a meta file), with every way
    the files can be missing or damaged turned into one UsageError line."""
    program = program_file(prefix)
    if program is None:
        raise UsageError(f"exported model not found: no {prefix}.json or {prefix}.pdmodel")
    if not Path(prefix + PARAMS_SUFFIX).is_file():
        # jit.load would accept this and fail only at the first action, with a KeyError.
        raise UsageError(f"exported model {program} has no weights file {prefix}{PARAMS_SUFFIX}")
    try:
        layer = paddle.jit.load(prefix)
    except Exception as exc:  # Paddle raises RuntimeError/ValueError with multi-line C++ messages
        raise UsageError(f"exported model {prefix} is corrupt or truncated: {error_summary(exc)}") from None
    return layer, _read_meta(prefix)


def _read_meta(prefix: str) -> dict[str, Any]:
    path = Path(prefix + META_SUFFIX)
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise UsageError(f"{path} is unreadable or not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UsageError(f"{path} is not a paddle_ddpg export meta file")
    return meta


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m paddle_ddpg.export", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help="a run directory, its checkpoint.pdckpt, or an <algo>-actor<episode>.pdparams")
    parser.add_argument("--output", required=True, metavar="PREFIX",
                        help=f"path prefix of the files written: PREFIX.json (or .pdmodel), PREFIX{PARAMS_SUFFIX}, "
                             f"PREFIX{META_SUFFIX}")
    parser.add_argument("--env", default=None, help="environment id (default: the one the checkpoint trained on)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Imported here: evaluate imports this module to run exports, so a top-level import would be circular.
    from paddle_ddpg.evaluate import load_actor

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if exported_prefix(args.checkpoint) is not None:
            raise UsageError(f"{args.checkpoint} is an exported model already; export a checkpoint")
        actor, env = load_actor(args.checkpoint, args.env)
        env.close()
        files = export_actor(actor, args.output, env.spec.id, env.spec.max_episode_steps or 0)
    except UsageError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(json.dumps({"files": [str(f) for f in files], "env": env.spec.id,
                      "max_episode_steps": env.spec.max_episode_steps}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
