"""Every hyperparameter in one dataclass, and the named presets.

One object serves Python (`Config(episodes=50)`), a JSON or YAML file and the command line (paddle_ddpg.cli
turns each field into one flag named after it).
"""

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
            for number in value if isinstance(value, (list, tuple)) else (value,):  # before any message shows it
                if isinstance(number, int) and abs(number) >= 2**64:
                    raise UsageError(f"{f.name} must be within +-2**64, got an integer of {number.bit_length()} bits")
            _coerce(f.name, field_types()[f.name], value, "Config")
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"{f.name} must be a finite number, got {value}")
            if isinstance(value, str) and "\0" in value:
                raise UsageError(f"{f.name} must not contain a NUL character")
            if isinstance(value, str) and not _is_utf8(value):  # undecodable bytes in argv arrive as surrogates
                raise UsageError(f"{f.name} must be UTF-8 text (the run writes it to JSON), got {value!r}")
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
            (0 <= self.threads < 2**31, f"threads must be in [0, 2**31), got {self.threads}"),  # Paddle's C int
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


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_name(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return "a list of integers"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[kind]
