"""Every hyperparameter in one dataclass, the named presets, and the CLI built from them.

One object serves Python (`Config(episodes=50)`), a JSON or YAML file (`--config run.yaml`) and the command line
(`--lr-actor 1e-4`): each field becomes one flag named after it. Precedence is preset < file < flags.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


class UsageError(Exception):
    """A mistake in what the user asked for; the CLI prints it on one line and exits with status 2."""


def error_summary(exc: Exception) -> str:
    """One line of a library's error (Paddle's, gymnasium's) for a UsageError: the line naming the error if
    there is one (a traced program's errors start with "In user code:"), else the first; Paddle's C++ errors
    run to many lines of hints."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "Error" in line), lines[0] if lines else type(exc).__name__)


def _help(text: str, **kwargs: Any) -> Any:
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class Config:
    """Defaults are the AI Studio tutorial's values (section 四, 训练模型) so the default run is the tutorial's."""

    # environment and run
    env: str = _help("gymnasium environment id (flat Box observations, bounded Box actions)", default="Pendulum-v1")
    episodes: int = _help("training episodes (the tutorial ran until interrupted; 200 covers its printed curve)",
                          default=200)
    total_steps: int = _help("also stop once this many env steps are done, mid-episode if need be; 0: no limit",
                             default=0)
    max_episode_steps: int = _help("step limit per episode; 0 keeps the environment's own limit (Pendulum-v1: "
                                   "200, the tutorial's range(200))", default=0)
    seed: int = _help("seed for networks, exploration noise, replay sampling and environment resets", default=0)
    device: str = _help("cpu or gpu", default="cpu")
    threads: int = _help("CPU threads for Paddle's kernels; 0: one for batches under 64, else one per CPU core "
                         "this process may use, at most 2 (more were not measured)", default=0)
    logdir: str = _help("VisualDL root; the run logs into <logdir>/<run-name>", default="logs")
    model_dir: str = _help("checkpoint root; the run saves into <model-dir>/<run-name>", default="model")
    run_name: str = _help("name of the run directory (default: <env>_<preset>_s<seed>_<time>)", default="")
    # networks
    actor_hidden: tuple[int, ...] = _help("hidden layer sizes of the actor", default=(256, 128))
    critic_hidden: tuple[int, ...] = _help("hidden layer sizes of the critic", default=(256, 128))
    critic_action_layer: int = _help("the critic layer whose input the action joins: 1 after the first hidden "
                                     "layer (the tutorial, the DDPG paper), 0 beside the state (the TD3 paper, SB3)",
                                     default=1)
    # algorithm
    algo: str = _help("ddpg, or td3: twin critics, target policy smoothing and delayed actor updates", default="ddpg")
    policy_delay: int = _help("td3: critic updates per actor and target update", default=2)
    target_noise: float = _help("td3: std of the noise on target actions, as a fraction of the half-range",
                                default=0.2)
    target_noise_clip: float = _help("td3: that noise is clipped to +- this (fraction of the half-range)",
                                     default=0.5)
    # optimisation
    lr_actor: float = _help("Adam learning rate of the actor", default=1e-5)
    lr_critic: float = _help("Adam learning rate of the critic", default=3e-5)
    gamma: float = _help("discount factor", default=0.99)
    tau: float = _help("soft update rate: target <- tau * online + (1 - tau) * target", default=0.001)
    batch_size: int = _help("transitions per update", default=32)
    tanh_penalty: float = _help("weight of the mean square of how far the actor's tanh input goes past +-3 "
                                "(tanh 0.995), added to the actor loss: keeps the tanh out of saturation, where it "
                                "passes back no gradient and the policy can stick at a bound for thousands of "
                                "steps; 0: none, as in the tutorial", default=0.0)
    engine: str = _help("fast: the update through paddle_ddpg.fast's kernels; plain: agent.py's layers and autograd, "
                        "as written; the same math (a Paddle the fast engine cannot run on falls back to plain)",
                        default="fast")
    memory_size: int = _help("replay memory capacity; the oldest transitions fall out first", default=50000)
    learning_starts: int = _help("learning begins once more than this many transitions are stored", default=1280)
    random_steps: int = _help("act uniformly at random for the first this many steps (the TD3 paper's and SB3's "
                              "warm-up; the tutorial acted with its noisy policy from the start)", default=0)
    reward_offset: float = _help("stored reward is (r + offset) / scale; the tutorial's Pendulum normalisation",
                                 default=8.1)
    reward_scale: float = _help("stored reward is (r + offset) / scale", default=8.1)
    # exploration
    noise: str = _help("exploration noise: gaussian (the tutorial's) or ou (Ornstein-Uhlenbeck, as in the DDPG paper)",
                       default="gaussian")
    noise_std: float = _help("noise scale as a fraction of each action dimension's half-range", default=0.2)
    ou_theta: float = _help("mean reversion rate of the Ornstein-Uhlenbeck noise", default=0.15)
    explore: int = _help("epsilon, the noise multiplier, falls from 1 by 1/explore per step", default=50000)
    epsilon_min: float = _help("floor of epsilon", default=0.0)
    # bookkeeping
    log_interval: int = _help("print progress and write the resumable checkpoint every this many episodes",
                              default=10)
    loss_log_interval: int = _help("write 'critic loss' and 'actor loss' to VisualDL as their mean over this many "
                                   "learn steps; 1 writes every step, as the tutorial did, at a cost: VisualDL "
                                   "opens and closes its file for every value", default=10)
    save_interval: int = _help("save <algo>-actor<episode>/<algo>-critic<episode> every this many episodes",
                               default=200)
    eval_interval: int = _help("noise-free evaluation every this many episodes; 0 disables it", default=20)
    eval_episodes: int = _help("episodes per noise-free evaluation (the final one included)", default=10)

    def validate(self) -> Config:
        """Reject values that would crash later or silently train nonsense, with one readable sentence."""
        for f in dataclasses.fields(self):  # a Config built in Python has had no type checks yet
            value = getattr(self, f.name)
            _coerce(f.name, field_types()[f.name], value, "Config")
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{f.name} must be a finite number, got {value}")
            if isinstance(value, str) and "\0" in value:
                raise UsageError(f"{f.name} must not contain a NUL character")
        checks = [
            (0 <= self.seed < 2**64, f"seed must be in [0, 2**64), got {self.seed}"),
            (self.lr_actor > 0, f"lr_actor must be > 0, got {self.lr_actor}"),
            (self.lr_critic > 0, f"lr_critic must be > 0, got {self.lr_critic}"),
            (0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}"),
            (0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.episodes > 0, f"episodes must be > 0, got {self.episodes}"),
            (self.total_steps >= 0, f"total_steps must be >= 0, got {self.total_steps}"),
            (self.max_episode_steps >= 0, f"max_episode_steps must be >= 0, got {self.max_episode_steps}"),
            (self.batch_size > 0, f"batch_size must be > 0, got {self.batch_size}"),
            (self.memory_size > 0, f"memory_size must be > 0, got {self.memory_size}"),
            (self.batch_size <= self.memory_size,
             f"batch_size ({self.batch_size}) must not exceed memory_size ({self.memory_size})"),
            (self.learning_starts >= 0, f"learning_starts must be >= 0, got {self.learning_starts}"),
            (self.random_steps >= 0, f"random_steps must be >= 0, got {self.random_steps}"),
            (self.reward_scale != 0, "reward_scale must be non-zero"),
            (self.noise in NOISES, f"noise must be one of {', '.join(NOISES)}, got {self.noise!r}"),
            (self.algo in ALGOS, f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}"),
            (self.engine in ENGINES, f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}"),
            (self.policy_delay >= 1, f"policy_delay must be >= 1, got {self.policy_delay}"),
            (self.target_noise >= 0, f"target_noise must be >= 0, got {self.target_noise}"),
            (self.target_noise_clip >= 0, f"target_noise_clip must be >= 0, got {self.target_noise_clip}"),
            (self.noise_std >= 0, f"noise_std must be >= 0, got {self.noise_std}"),
            (self.tanh_penalty >= 0, f"tanh_penalty must be >= 0, got {self.tanh_penalty}"),
            (self.ou_theta > 0, f"ou_theta must be > 0, got {self.ou_theta}"),
            (self.explore > 0, f"explore must be > 0, got {self.explore}"),
            (0 <= self.epsilon_min <= 1, f"epsilon_min must be in [0, 1], got {self.epsilon_min}"),
            (self.device in ("cpu", "gpu"), f"device must be cpu or gpu, got {self.device!r}"),
            (self.threads >= 0, f"threads must be >= 0, got {self.threads}"),
            (all(h > 0 for h in self.actor_hidden) and len(self.actor_hidden) > 0,
             f"actor_hidden must be positive sizes, got {list(self.actor_hidden)}"),
            (all(h > 0 for h in self.critic_hidden) and len(self.critic_hidden) > 0,
             f"critic_hidden must be positive sizes, got {list(self.critic_hidden)}"),
            (0 <= self.critic_action_layer <= len(self.critic_hidden),
             f"critic_action_layer must be in [0, {len(self.critic_hidden)}] for {len(self.critic_hidden)} hidden "
             f"layers, got {self.critic_action_layer}"),
            (self.log_interval > 0, f"log_interval must be > 0, got {self.log_interval}"),
            (self.loss_log_interval > 0, f"loss_log_interval must be > 0, got {self.loss_log_interval}"),
            (self.save_interval > 0, f"save_interval must be > 0, got {self.save_interval}"),
            (self.eval_interval >= 0, f"eval_interval must be >= 0, got {self.eval_interval}"),
            (self.eval_episodes > 0, f"eval_episodes must be > 0, got {self.eval_episodes}"),
            ("/" not in self.run_name and self.run_name not in (".", ".."),
             f"run_name must be a plain directory name, got {self.run_name!r}"),
            (len(self.run_name.encode()) <= 255,
             f"run_name must be at most 255 bytes (a file name), got {len(self.run_name.encode())}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}

    def updated(self, values: dict[str, Any], source: str) -> Config:
        """Return a copy with `values` applied after checking names and types; `source` names them in errors."""
        known = {f.name: f for f in dataclasses.fields(self)}
        changes = {}
        for name, value in values.items():
            if name == "fused" and isinstance(value, bool):  # the setting's name in version 0.1's config files
                name, value = "engine", "fast" if value else "plain"
            if name not in known:
                raise UsageError(f"{source}: unknown key {name!r}")
            changes[name] = _coerce(name, field_types()[name], value, source)
        return dataclasses.replace(self, **changes)


CONFIG_FILE_LIMIT = 1 << 20
NOISES = ("gaussian", "ou")
ENGINES = ("fast", "plain")
ALGOS = ("ddpg", "td3")

def _published(env: str, algo: str, total_steps: int, **changes: Any) -> Config:
    """Settings for `env` as published, on the shared base: 400-300 networks, Adam 1e-3, tau 0.005,
    constant Gaussian noise 0.1, uniform random actions before learning starts, no reward rescaling."""
    base: dict[str, Any] = dict(env=env, algo=algo, total_steps=total_steps, episodes=10**6,
                                actor_hidden=(400, 300), critic_hidden=(400, 300), lr_actor=1e-3, lr_critic=1e-3,
                                tau=0.005, noise_std=0.1, epsilon_min=1.0, reward_offset=0.0, reward_scale=1.0,
                                eval_interval=10, save_interval=100)
    return Config(**{**base, **changes})


PRESETS: dict[str, Config] = {
    # The tutorial's program, hyperparameter for hyperparameter.
    "tutorial": Config(),
    # Pendulum-v1 fast: small nets, the common DDPG rates, larger batches, constant noise; a penalty that keeps the
    # actor's tanh out of saturation, where a policy stuck at a bound gets no gradient back; uniform random actions
    # until learning starts and the action at the critic's input, which together ended runs better than either
    # alone. Chosen on seeds the benchmarks do not use; the record is in benchmarks/README.md.
    "fast": Config(episodes=50, actor_hidden=(128, 128), critic_hidden=(128, 128), critic_action_layer=0,
                   lr_actor=1e-3, lr_critic=1e-3, tau=0.005, batch_size=128, tanh_penalty=0.01, learning_starts=1000,
                   random_steps=1000, noise_std=0.1, epsilon_min=1.0, eval_interval=10),
    # rl-baselines3-zoo hyperparams/ddpg.yml (Pendulum, LunarLanderContinuous): gamma 0.98, 200k memory,
    # 10k random steps, batch 256 (SB3's default). The zoo trains once per episode with as many updates as
    # steps; here it is one update per step, the same count.
    "Pendulum-v1": _published("Pendulum-v1", "ddpg", 20_000, gamma=0.98, memory_size=200_000,
                              learning_starts=10_000, random_steps=10_000, batch_size=256),
    "LunarLanderContinuous-v3": _published("LunarLanderContinuous-v3", "ddpg", 300_000, gamma=0.98,
                                           memory_size=200_000, learning_starts=10_000, random_steps=10_000,
                                           batch_size=256, eval_interval=20),
    # Fujimoto et al. (2018), TD3 paper, section 6.1: batch 100, 1M memory, 1000 random steps (10000 for
    # HalfCheetah), exploration N(0, 0.1), target noise 0.2 clipped at 0.5, delay 2; 1M steps there. The
    # critic keeps the tutorial's shape (the action joins after the first layer), which ended HalfCheetah-v5
    # runs better than the paper's (action at the input; benchmarks/README.md).
    "InvertedPendulum-v5": _published("InvertedPendulum-v5", "td3", 50_000, batch_size=100, memory_size=10**6,
                                      learning_starts=1000, random_steps=1000),
    "HalfCheetah-v5": _published("HalfCheetah-v5", "td3", 10**6, batch_size=100, memory_size=10**6,
                                 learning_starts=10_000, random_steps=10_000),
    "Hopper-v5": _published("Hopper-v5", "td3", 10**6, batch_size=100, memory_size=10**6,
                            learning_starts=1000, random_steps=1000),
}


@functools.cache
def field_types() -> dict[str, Any]:
    """Config's field types by name, resolved once (the annotations are strings until resolved)."""
    return typing.get_type_hints(Config)


def _coerce(name: str, kind: Any, value: Any, source: str) -> Any:
    """Accept JSON values of the field's type; ints are fine where floats are expected, bools never are."""
    wrong = UsageError(f"{source}: {name} must be {_type_name(kind)}, got {value!r} ({type(value).__name__})")
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                          for v in value):
            raise wrong
        return tuple(value)
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise wrong


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a list of integers"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]


def load_config_file(path: str) -> dict[str, Any]:
    """Read a file of Config fields: JSON (the file a run writes as config.json reads back unchanged) or YAML,
    told apart by the extension (.json; .yaml or .yml), else by the content (JSON starts with "{" or "[").

    Either may hold the settings themselves or, as rl-baselines3-zoo's hyperparameter files do, one section
    of them under an env id, which then sets `env`. At most CONFIG_FILE_LIMIT bytes are read: a settings
    file is a few kilobytes, and a path such as /dev/zero would otherwise be read until memory runs out.
    """
    try:
        with open(path, "rb") as f:
            data = f.read(CONFIG_FILE_LIMIT + 1)
        if len(data) > CONFIG_FILE_LIMIT:
            raise UsageError(f"config file {path} is larger than {CONFIG_FILE_LIMIT // 1024} KiB; not a settings file")
        text = data.decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text") from None
    suffix = os.path.splitext(path)[1].lower()
    is_yaml = suffix in YAML_SUFFIXES or (suffix != ".json" and not text.lstrip().startswith(("{", "[")))
    try:
        values = _parse_yaml(text, path) if is_yaml else json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise UsageError(f"config file {path} nests too deeply to be a settings file") from None
    if not isinstance(values, dict):
        raise UsageError(f"config file {path} must hold a {'mapping' if is_yaml else 'JSON object'} of settings")
    sections = [key for key, value in values.items() if isinstance(value, dict)]
    if values and len(sections) == len(values) and not values.keys() & field_types().keys():
        if len(sections) > 1:
            raise UsageError(f"config file {path} holds settings for {len(sections)} environments "
                             f"({', '.join(map(str, sections))}); keep the one to train")
        return {"env": sections[0], **values[sections[0]]}
    return values


YAML_SUFFIXES = (".yaml", ".yml")


class _SettingsLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values only: a tag such as !!python/object, which the full loader would
    call, stops the load), without aliases, and with YAML 1.2's floats.

    An alias repeats a node by reference, so a few lines of nested aliases stand for billions of values that
    any walk over them (an error message's repr) would expand. YAML 1.1 reads 1e-4 as a string (it wants
    1.0e-4), which is why the zoo writes !!float 1e-4; people write 1e-4.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "an alias (*name) stands for other values; write them "
                                              "out", self.peek_event().start_mark)
        return super().compose_node(parent, index)


_SettingsLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                      re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                      list("-+0123456789"))


def _parse_yaml(text: str, path: str) -> Any:
    try:
        return yaml.load(text, Loader=_SettingsLoader)
    except yaml.constructor.ConstructorError as exc:
        tag = re.search(r"tag '([^']*)'", str(exc.problem))
        line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
        if tag:
            name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            raise UsageError(f"config file {path}: YAML tag {name} refused{line}; settings are plain values, and "
                             "a tag could run code") from None
        raise UsageError(f"config file {path} is not valid YAML settings: {exc.problem}{line}") from None
    except yaml.MarkedYAMLError as exc:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise UsageError(f"config file {path} is not valid YAML: {exc.problem}{line}") from None
    except yaml.YAMLError as exc:  # unmarked: a byte YAML does not allow, say
        raise UsageError(f"config file {path} is not valid YAML: {error_summary(exc)}") from None


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format: one line on stderr, exit status 2, no usage dump."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


_METAVARS = {"env": "ID", "logdir": "DIR", "model_dir": "DIR", "run_name": "NAME"}
_CHOICES = {"device": ("cpu", "gpu"), "noise": NOISES, "algo": ALGOS, "engine": ENGINES}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per Config field, named after it with dashes; unset flags stay out of the namespace."""
    types_ = field_types()
    group = parser.add_argument_group("settings (every Config field; shown defaults are the tutorial preset's)")
    for f in dataclasses.fields(Config):
        kind = types_[f.name]
        default = getattr(PRESETS["tutorial"], f.name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        help_ = f.metadata["help"] + (f" (tutorial: {shown})" if shown != "" else "")
        kwargs: dict[str, Any] = dict(dest=f.name, default=argparse.SUPPRESS, help=help_)
        if typing.get_origin(kind) is tuple:
            kwargs.update(type=int, nargs="+", metavar="N")
        elif kind is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
        elif f.name in _CHOICES:
            kwargs.update(type=kind, choices=_CHOICES[f.name])
        else:
            kwargs.update(type=kind, metavar=_METAVARS.get(f.name, {int: "N", float: "X"}.get(kind, "S")))
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    # Version 0.1's flags for the engine, kept as hidden aliases.
    for flag, engine in (("--fused", "fast"), ("--no-fused", "plain")):
        group.add_argument(flag, dest="engine", action="store_const", const=engine, default=argparse.SUPPRESS,
                           help=argparse.SUPPRESS)


def resolve_config(args: argparse.Namespace, base: Config | None = None) -> Config:
    """`base` (default: the --preset), then the --config file, then explicit flags; validated."""
    if base is None:
        preset = getattr(args, "preset", None) or "tutorial"
        if preset not in PRESETS:
            raise UsageError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        base = PRESETS[preset]
    if getattr(args, "config", None):
        base = base.updated(load_config_file(args.config), source=args.config)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    return base.updated(flags, source="command line").validate()


__all__ = ["Config", "PRESETS", "Parser", "UsageError", "add_config_arguments", "error_summary", "load_config_file",
           "resolve_config"]
