"""A trained policy from a run directory, checkpoint, actor snapshot (ours or the tutorial's `.para`) or export:
`paddle_ddpg.load_policy(path)`. No code from the file runs; every bad file is one UsageError line."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import paddle

from paddle_ddpg import checkpoint
from paddle_ddpg.actor_program import check_paddle_params, check_program
from paddle_ddpg.cli import load_config_file
from paddle_ddpg.config import Config, UsageError, error_summary
from paddle_ddpg.env import make_env
from paddle_ddpg.files import read_regular
from paddle_ddpg.networks import Actor

# An export: the program (Paddle's PIR format), weights, meta; not PREFIX.meta.json, which `paddle.jit.load` reads
# as the program of a method "meta". LEGACY_SUFFIXES: the pre-PIR format, whose loader unpickles the .info file.
PROGRAM_SUFFIX, PARAMS_SUFFIX, META_SUFFIX = ".json", ".pdiparams", "_meta.json"
LEGACY_SUFFIXES = (".pdmodel", ".pdiparams.info")
ALL_SUFFIXES = (META_SUFFIX, PARAMS_SUFFIX, PROGRAM_SUFFIX, *LEGACY_SUFFIXES)  # "_meta.json" before ".json"
EXPORT_FORMAT = "paddle_ddpg-export/1"
META_LIMIT = 1 << 16  # bytes: a meta file is a few hundred


@dataclass
class Policy:
    """A deterministic policy in env units: `predict(obs)` for one observation or a batch, numpy in and out."""

    network: Callable[[paddle.Tensor], paddle.Tensor]  # an Actor, or an exported program
    env_id: str | None
    state_dim: int
    action_dim: int
    action_low: np.ndarray
    action_high: np.ndarray
    max_episode_steps: int = 0  # the run's step limit; 0: the env's own
    config: Config | None = None  # the run's settings, where the file records them

    def predict(self, obs: np.ndarray) -> np.ndarray:
        """mu(obs) without noise: shape (action_dim,) for one observation, (n, action_dim) for n."""
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[-1:] != (self.state_dim,) or obs.ndim > 2:
            raise UsageError(f"predict takes observations of shape ({self.state_dim},) or (n, {self.state_dim}), "
                             f"got {obs.shape}")
        with paddle.no_grad():
            action = self.network(paddle.to_tensor(obs.reshape(-1, self.state_dim))).numpy()
        return action[0] if obs.ndim == 1 else action

    __call__ = predict

    @property
    def action_space(self) -> gym.spaces.Box:  # the env's bounds, which the actor's scaled tanh cannot leave
        return gym.spaces.Box(self.action_low, self.action_high, dtype=np.float32)

    @property
    def observation_space(self) -> gym.spaces.Box:  # by size only; the env from make_env() has the bounds
        return gym.spaces.Box(-np.inf, np.inf, (self.state_dim,), dtype=np.float32)

    def make_env(self, env_id: str | None = None, render_mode: str | None = None) -> gym.Env:
        """The env the policy was trained on (or `env_id`), with the run's step limit, checked to fit."""
        return fitting_env(env_id, self.env_id, self.max_episode_steps, (self.state_dim, self.action_dim), render_mode)


def fitting_env(env_id: str | None, trained_on: str | None, steps: int, sizes: tuple[int, int],
                render_mode: str | None = None) -> gym.Env:
    """`env_id`, else `trained_on` with the run's step limit `steps`; one of other sizes is refused in a sentence."""
    if env_id is None and trained_on is None:
        raise UsageError("the file carries no environment id; pass --env")
    env = make_env(env_id or trained_on, steps if env_id in (None, trained_on) else 0, render_mode=render_mode)
    if (have := (env.observation_space.shape[0], env.action_space.shape[0])) != sizes:
        env.close()
        raise UsageError(f"the policy was trained on {trained_on or env_id} (observation {sizes[0]}, action "
                         f"{sizes[1]}); {env_id or trained_on} has observation {have[0]}, action {have[1]}")
    return env


def load_policy(path: str | Path, env_id: str | None = None) -> Policy:
    """The policy saved at `path`; the env id (or `env_id`, overriding it) gives a snapshot its action bounds."""
    if (prefix := exported_prefix(str(path))) is not None:
        return _load_exported(prefix, env_id)
    file, config = checkpoint.resolve_checkpoint(str(path)), None
    if file.suffix != checkpoint.CHECKPOINT_SUFFIX:  # a state dict: ours (.pdparams) or the tutorial's (.para)
        if re.search(r"-critic\d+\.pdparams$", file.name):
            raise UsageError(f"{file} is a critic snapshot; load the run's actor (*-actor<N>.pdparams)")
        weights, settings = checkpoint.load_state_dict(file), file.parent / "config.json"
        run_config = load_config_file(str(settings)) if settings.is_file() else {}
    else:
        saved = checkpoint.load_checkpoint(file)
        weights = saved["agent"].get("actor")
        if not isinstance(weights, dict) or not all(isinstance(v, np.ndarray) for v in weights.values()):
            raise UsageError(f"checkpoint {file} is damaged: it holds no actor weights")
        settings, run_config = file, saved["config"]
        config = Config().updated(run_config, source=str(file)).validate()
    # The two settings used here, checked: a config.json beside a snapshot may have been edited by hand.
    run = Config().updated({k: v for k, v in run_config.items() if k in ("env", "max_episode_steps")},
                           source=str(settings)).validate()
    layers = range(1, len(weights) // 2 + 1)
    if len(weights) < 2 or set(weights) != {f"fc{i}.{kind}" for i in layers for kind in ("weight", "bias")}:
        raise UsageError(f"{file} does not hold actor weights (fc1.weight, fc1.bias, ...), it holds "
                         f"{sorted(weights)[:6]}")
    shapes = [tuple(np.shape(weights[f"fc{i}.weight"])) for i in layers]
    # A critic's layer that takes the action does not chain; Paddle would leave it random with only a warning.
    if (any(len(s) != 2 or min(s) < 1 for s in shapes) or any(a[1] != b[0] for a, b in zip(shapes, shapes[1:]))
            or [tuple(np.shape(weights[f"fc{i}.bias"])) for i in layers] != [(s[1],) for s in shapes]):
        raise UsageError(f"{file} does not hold actor weights (layer sizes {shapes} do not chain)")
    trained_on, sizes = run.env if "env" in run_config else None, (shapes[0][0], shapes[-1][1])
    with fitting_env(env_id, trained_on, run.max_episode_steps, sizes) as env:
        low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    actor = Actor(*sizes, low, high, hidden=[s[1] for s in shapes[:-1]])
    actor.set_state_dict({k: np.asarray(v, np.float32) for k, v in weights.items()})
    steps = run.max_episode_steps if env_id in (None, trained_on) else 0
    return Policy(actor, env_id or trained_on, *sizes, low, high, steps, config)


def exported_prefix(path: str) -> str | None:
    """The export prefix that `path` names (the prefix itself or one of its files), or None."""
    if suffix := next((s for s in ALL_SUFFIXES if path.endswith(s)), None):
        return path[: -len(suffix)]
    try:
        return path if not Path(path).exists() and any(Path(path + s).exists() for s in ALL_SUFFIXES) else None
    except OSError:  # a name too long: the checkpoint reader says so in one line
        return None


def _load_exported(prefix: str, env_id: str | None) -> Policy:
    """An export, checked before Paddle reads it and run once on a zero state: a bad one fails here, not mid-episode."""
    if legacy := [prefix + s for s in LEGACY_SUFFIXES if Path(prefix + s).exists()]:
        raise UsageError(f"{legacy[0]} is Paddle's legacy program format, whose loader runs code from the "
                         "files; re-export the checkpoint with this version (Paddle's PIR format)")
    program, params = Path(prefix + PROGRAM_SUFFIX), Path(prefix + PARAMS_SUFFIX)
    if missing := [file for file in (program, params) if not file.is_file()]:
        raise UsageError(f"exported model {prefix} is incomplete: no {missing[0]}")
    meta = read_meta(prefix)
    # Paddle loads a private copy: what was checked runs, and no PREFIX.<name>.json beside it is read unchecked.
    try:
        with tempfile.TemporaryDirectory(prefix="paddle_ddpg-export-") as private:
            copy = Path(private) / "actor"
            weights = Path(shutil.copyfile(params, f"{copy}{PARAMS_SUFFIX}"))
            check_paddle_params(weights)
            Path(f"{copy}{PROGRAM_SUFFIX}").write_bytes(check_program(program, weights.stat().st_size))
            try:
                network = paddle.jit.load(str(copy))
            except Exception as exc:  # Paddle raises RuntimeError/ValueError with multi-line C++ messages
                raise UsageError(f"exported model {prefix} is corrupt or truncated: {error_summary(exc)}") from None
    except OSError as exc:
        raise UsageError(f"cannot read exported model {prefix}: {error_summary(exc)}") from None
    low, high = (np.asarray(meta[key], np.float32) for key in ("action_low", "action_high"))
    policy = Policy(network, meta["env"], meta["state_dim"], meta["action_dim"], low, high, meta["max_episode_steps"])
    try:
        shape = policy.predict(np.zeros(policy.state_dim, dtype=np.float32)).shape
    except Exception as exc:  # a program of other sizes, or damaged, in any of Paddle's exception types
        raise UsageError(f"exported model {prefix} does not run on its recorded observation size "
                         f"{policy.state_dim}: {error_summary(exc)}") from None
    if shape != (policy.action_dim,):
        raise UsageError(f"exported model {prefix} gives actions of shape {shape}, its meta file says "
                         f"({policy.action_dim},)")
    if env_id is not None and env_id != policy.env_id:
        policy.make_env(env_id).close()  # checks the sizes
        policy.env_id, policy.max_episode_steps = env_id, 0
    return policy


META_FIELDS: dict[str, Callable[[Any], bool]] = {
    "env": lambda v: v is None or isinstance(v, str),
    "max_episode_steps": lambda v: type(v) is int and v >= 0,  # type(): true and false are no sizes
    "state_dim": lambda v: type(v) is int and 0 < v <= checkpoint.MAX_WIDTH,
    "action_dim": lambda v: type(v) is int and 0 < v <= checkpoint.MAX_WIDTH,
}


def read_meta(prefix: str) -> dict[str, Any]:
    """An export's meta file, every field checked for its type."""
    path = Path(prefix + META_SUFFIX)
    if not path.exists():
        raise UsageError(f"exported model {prefix} is incomplete: no {path}")
    try:
        meta = json.loads(read_regular(path, META_LIMIT, "export meta file"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise UsageError(f"{path} is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise UsageError(f"{path} is not a paddle_ddpg export meta file")
    for key, ok in META_FIELDS.items():
        if key not in meta or not ok(meta[key]):
            raise UsageError(f"{path}: {key} is missing or of the wrong type ({meta.get(key)!r})")
    for key in ("action_low", "action_high"):
        value = meta.get(key)
        if not (isinstance(value, list) and len(value) == meta["action_dim"]
                and all(type(v) in (int, float) and np.isfinite(v) for v in value)):
            raise UsageError(f"{path}: {key} must be a list of {meta['action_dim']} finite numbers")
    return meta
