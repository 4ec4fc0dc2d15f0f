"""Every hyperparameter in one dataclass, and the named presets. One object serves Python (`Config(episodes=50)`),
a JSON or YAML file and the command line (paddle_ddpg.cli makes each field a flag named after it)."""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from dataclasses import dataclass, field
from typing import Any


class UsageError(Exception):
    """A mistake in what the user asked for; the CLI prints it on one line and exits with status 2."""


def error_summary(exc: Exception) -> str:
    """The line of a library's many-line error that names it (a traced Paddle program's begin "In user code:")."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if "Error" in line), lines[0] if lines else type(exc).__name__)


def _help(default: Any, text: str) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass(frozen=True)
class Config:
    """Defaults are the AI Studio tutorial's values (section 四, 训练模型) so the default run is the tutorial's."""

    # environment and run
    env: str = _help("Pendulum-v1", "gymnasium environment id (flat Box observations, bounded Box actions)")
    episodes: int = _help(200, "training episodes (the tutorial ran until interrupted; 200 covers its printed curve)")
    total_steps: int = _help(0, "also stop once this many env steps are done, mid-episode if need be; 0: no limit")
    max_episode_steps: int = _help(0, "step limit per episode; 0 keeps the environment's own limit (Pendulum-v1: "
                                      "200, the tutorial's range(200))")
    seed: int = _help(0, "seed for networks, exploration noise, replay sampling and environment resets")
    device: str = _help("cpu", "cpu or gpu")
    threads: int = _help(0, "CPU threads for Paddle's kernels; 0: one for batches under 64, else one per CPU core "
                            "this process may use, at most 2 (more were not measured)")
    logdir: str = _help("logs", "VisualDL root; the run logs into <logdir>/<run-name>")
    model_dir: str = _help("model", "checkpoint root; the run saves into <model-dir>/<run-name>")
    run_name: str = _help("", "name of the run directory (default: <env>_<preset>_s<seed>_<time>)")
    # networks
    actor_hidden: tuple[int, ...] = _help((256, 128), "hidden layer sizes of the actor")
    critic_hidden: tuple[int, ...] = _help((256, 128), "hidden layer sizes of the critic")
    critic_action_layer: int = _help(1, "the critic layer whose input the action joins: 1 after the first hidden "
                                        "layer (the tutorial, the DDPG paper), 0 beside the state (the TD3 paper, SB3; "
                                        "on Hopper-v5, 1 left some seeds' actors at the action bound)")
    # algorithm
    algo: str = _help("ddpg", "ddpg, or td3: twin critics, target policy smoothing and delayed actor updates")
    policy_delay: int = _help(0, "critic updates per actor and target update; 0: the algorithm's own, 1 for ddpg "
                                 "(the tutorial), 2 for td3 (the TD3 paper)")
    target_noise: float = _help(0.2, "td3: std of the noise on target actions, as a fraction of the half-range")
    target_noise_clip: float = _help(0.5, "td3: that noise is clipped to +- this (fraction of the half-range)")
    # optimisation
    lr_actor: float = _help(1e-5, "Adam learning rate of the actor")
    lr_critic: float = _help(3e-5, "Adam learning rate of the critic")
    gamma: float = _help(0.99, "discount factor")
    tau: float = _help(0.001, "soft update rate: target <- tau * online + (1 - tau) * target")
    batch_size: int = _help(32, "transitions per update")
    tanh_penalty: float = _help(0.0, "weight of the mean square of how far the actor's tanh input goes past +-3 "
                                     "(tanh 0.995), added to the actor loss: keeps the tanh out of saturation, where "
                                     "it passes back no gradient and the policy can stick at a bound for thousands "
                                     "of steps; 0: none, as in the tutorial")
    engine: str = _help("fast", "fast: the update through paddle_ddpg.fast's kernels; plain: agent.py's layers and "
                                "autograd, as written; the same math (a Paddle the fast engine cannot run on falls "
                                "back to plain)")
    memory_size: int = _help(50000, "replay memory capacity; the oldest transitions fall out first")
    learning_starts: int = _help(1280, "learning begins once more than this many transitions are stored")
    random_steps: int = _help(0, "act uniformly at random for the first this many steps (the TD3 paper's and SB3's "
                                 "warm-up; the tutorial acted with its noisy policy from the start)")
    reward_offset: float = _help(8.1, "stored reward is (r + offset) / scale; the tutorial's Pendulum normalisation")
    reward_scale: float = _help(8.1, "stored reward is (r + offset) / scale")
    # exploration
    noise: str = _help("gaussian", "exploration noise: gaussian (the tutorial's) or ou (Ornstein-Uhlenbeck, as in "
                                   "the DDPG paper)")
    noise_std: float = _help(0.2, "noise scale as a fraction of each action dimension's half-range")
    ou_theta: float = _help(0.15, "mean reversion rate of the Ornstein-Uhlenbeck noise")
    explore: int = _help(50000, "epsilon, the noise multiplier, falls from 1 by 1/explore per step")
    epsilon_min: float = _help(0.0, "floor of epsilon")
    # bookkeeping
    log_interval: int = _help(10, "print progress and write the resumable checkpoint every this many episodes")
    loss_log_interval: int = _help(10, "write 'critic loss' and 'actor loss' to VisualDL as their mean over this "
                                       "many learn steps; 1 writes every step, as the tutorial did, at a cost: "
                                       "VisualDL opens and closes its file for every value")
    save_interval: int = _help(200, "save <algo>-actor<episode>/<algo>-critic<episode> every this many episodes")
    eval_interval: int = _help(20, "noise-free evaluation every this many episodes; 0 disables it")
    eval_step_interval: int = _help(0, "also evaluate every this many env steps, mid-episode if need be (the TD3 "
                                       "paper's protocol); 0: never")
    eval_episodes: int = _help(10, "episodes per noise-free evaluation (the final one included)")

    def validate(self) -> Config:
        """Reject values that would crash later or silently train nonsense, with one readable sentence."""
        for name, value in vars(self).items():  # a Config built in Python has had no type checks yet
            for number in value if isinstance(value, (list, tuple)) else (value,):  # before any message shows it
                if isinstance(number, int) and abs(number) >= 2**64:
                    raise UsageError(f"{name} must be within +-2**64, got an integer of {number.bit_length()} bits")
            _coerce(name, field_types()[name], value, "Config")
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{name} must be a finite number, got {value}")
            if isinstance(value, str) and "\0" in value:
                raise UsageError(f"{name} must not contain a NUL character")
            if isinstance(value, str) and any("\ud800" <= c <= "\udfff" for c in value):  # argv's undecodable bytes
                raise UsageError(f"{name} must be UTF-8 text (the run writes it to JSON), got {value!r}")
        hidden = len(self.critic_hidden)
        checks = [(getattr(self, name) > 0, f"{name} must be > 0, got {getattr(self, name)}") for name in _POSITIVE]
        checks += [(getattr(self, name) >= low, f"{name} must be >= {low}, got {getattr(self, name)}")
                   for name, low in _AT_LEAST.items()]
        checks += [(getattr(self, name) in choices, f"{name} must be one of {', '.join(choices)}, got "
                    f"{getattr(self, name)!r}") for name, choices in CHOICES.items()]
        checks += [
            (0 <= self.seed < 2**64, f"seed must be in [0, 2**64), got {self.seed}"),
            (0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}"),
            (0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}"),
            (0 <= self.epsilon_min <= 1, f"epsilon_min must be in [0, 1], got {self.epsilon_min}"),
            (self.batch_size <= self.memory_size,
             f"batch_size ({self.batch_size}) must not exceed memory_size ({self.memory_size})"),
            (self.reward_scale != 0, "reward_scale must be non-zero"),
            (0 <= self.threads < 2**31, f"threads must be in [0, 2**31), got {self.threads}"),  # Paddle's C int
            *[(len(sizes) > 0 and all(h > 0 for h in sizes), f"{name} must be positive sizes, got {list(sizes)}")
              for name, sizes in (("actor_hidden", self.actor_hidden), ("critic_hidden", self.critic_hidden))],
            (0 <= self.critic_action_layer <= hidden, f"critic_action_layer must be in [0, {hidden}] for {hidden} "
             f"hidden layers, got {self.critic_action_layer}"),
            ("/" not in self.run_name and self.run_name not in (".", ".."),
             f"run_name must be a plain directory name, got {self.run_name!r}"),
            (len(self.run_name.encode()) <= 255,
             f"run_name must be at most 255 bytes (a file name), got {len(self.run_name.encode())}"),
        ]
        if problems := [message for ok, message in checks if not ok]:
            raise UsageError(problems[0])
        return self

    def to_dict(self) -> dict[str, Any]:
        return {name: list(v) if isinstance(v, tuple) else v for name, v in vars(self).items()}

    def updated(self, values: dict[str, Any], source: str) -> Config:
        """Return a copy with `values` applied after checking names and types; `source` names them in errors."""
        changes = {}
        for name, value in values.items():
            if name not in field_types():
                raise UsageError(f"{source}: unknown key {name!r}")
            changes[name] = _coerce(name, field_types()[name], value, source)
        return dataclasses.replace(self, **changes)


NOISES, ENGINES, ALGOS = ("gaussian", "ou"), ("fast", "plain"), ("ddpg", "td3")
CHOICES = {"device": ("cpu", "gpu"), "noise": NOISES, "algo": ALGOS, "engine": ENGINES}
_POSITIVE = ("episodes", "lr_actor", "lr_critic", "batch_size", "memory_size", "ou_theta", "explore", "log_interval",
             "loss_log_interval", "save_interval", "eval_episodes")
_AT_LEAST = {"total_steps": 0, "max_episode_steps": 0, "learning_starts": 0, "random_steps": 0, "policy_delay": 0,
             "target_noise": 0, "target_noise_clip": 0, "noise_std": 0, "tanh_penalty": 0, "eval_interval": 0,
             "eval_step_interval": 0}


def _published(env: str, algo: str, total_steps: int, **changes: Any) -> Config:
    """Settings for `env` as published, on the base that the TD3 paper and the zoo share."""
    return Config(**{**dict(env=env, algo=algo, total_steps=total_steps, episodes=10**6, actor_hidden=(400, 300),
                            critic_hidden=(400, 300), lr_actor=1e-3, lr_critic=1e-3, tau=0.005, noise_std=0.1,
                            epsilon_min=1.0, reward_offset=0.0, reward_scale=1.0, eval_interval=10,
                            save_interval=100), **changes})


_ZOO = dict(gamma=0.98, memory_size=200_000, learning_starts=10_000, random_steps=10_000, batch_size=256)
PRESETS: dict[str, Config] = {
    # The tutorial's program, hyperparameter for hyperparameter.
    "tutorial": Config(),
    # Pendulum-v1 fast: small nets, common DDPG rates, larger batches, constant noise, a penalty keeping the tanh
    # unsaturated, random warm-up with the action at the critic's input (better together); benchmarks/README.md.
    "fast": Config(episodes=50, actor_hidden=(128, 128), critic_hidden=(128, 128), critic_action_layer=0,
                   lr_actor=1e-3, lr_critic=1e-3, tau=0.005, batch_size=128, tanh_penalty=0.01, learning_starts=1000,
                   random_steps=1000, noise_std=0.1, epsilon_min=1.0, eval_interval=10),
    # rl-baselines3-zoo hyperparams/ddpg.yml; the zoo's once-per-episode updates are one per step here, same count.
    "Pendulum-v1": _published("Pendulum-v1", "ddpg", 20_000, **_ZOO),
    "LunarLanderContinuous-v3": _published("LunarLanderContinuous-v3", "ddpg", 300_000, **_ZOO, eval_interval=20),
    # The TD3 paper (Fujimoto et al. 2018, section 6.1; 1M steps there); the critic keeps the tutorial's shape,
    # which ended HalfCheetah-v5 runs better than the paper's action at the input; on Hopper-v5 that shape sent
    # some seeds' actors to the action bound for good, so Hopper-v5 takes the paper's critic, and so does Walker2d-v5,
    # a walker that falls as Hopper does (benchmarks/README.md).
    **{env: _published(env, "td3", steps, batch_size=100, memory_size=10**6, learning_starts=warm_up,
                       random_steps=warm_up, **extra)
       for env, steps, warm_up, extra in (
           ("InvertedPendulum-v5", 50_000, 1000, {}),
           ("HalfCheetah-v5", 10**6, 10_000, dict(eval_interval=0, eval_step_interval=5000)),
           ("Hopper-v5", 10**6, 1000, dict(eval_interval=0, eval_step_interval=5000, critic_action_layer=0)),
           ("Walker2d-v5", 10**6, 1000, dict(eval_interval=0, eval_step_interval=5000, critic_action_layer=0)))},
}


@functools.cache  # the annotations are strings until resolved
def field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


def _coerce(name: str, kind: Any, value: Any, source: str) -> Any:
    """Accept JSON values of the field's type; ints are fine where floats are expected, bools never are."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if typing.get_origin(kind) is tuple:
        if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return tuple(value)
    elif kind is float and (is_int or isinstance(value, float)):
        return float(value)
    elif isinstance(value, kind) and (kind is not int or is_int):
        return value
    wanted = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(kind,
                                                                                            "a list of integers")
    raise UsageError(f"{source}: {name} must be {wanted}, got {value!r} ({type(value).__name__})")
