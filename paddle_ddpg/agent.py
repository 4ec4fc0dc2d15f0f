"""The DDPG agent: four networks, two optimizers, `select_action`, `learn`, and the tutorial's `soft_update`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_ddpg.config import Config
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import Actor, Critic
from paddle_ddpg.noise import make_noise


def soft_update(target: nn.Layer, source: nn.Layer, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, parameter by parameter (the tutorial's formula).

    In place, where the tutorial's `set_value(t * (1 - tau) + s * tau)` made temporaries and copied back.
    Written as scale-then-add rather than `lerp_`, whose t + tau * (s - t) misses an exact copy at tau 1.
    """
    with paddle.no_grad():
        for target_param, param in zip(target.parameters(), source.parameters()):
            target_param.scale_(1.0 - tau).add_(param * tau)


def td_target(reward: paddle.Tensor, terminated: paddle.Tensor, q_next: paddle.Tensor,
              gamma: float) -> paddle.Tensor:
    """y = r + gamma * (1 - terminated) * Q'(s', mu'(s')).

    Only `terminated` stops bootstrapping: an episode cut by a time limit (`truncated`, as every Pendulum
    episode is) still has a future. The tutorial had no done flag at all, right for Pendulum by accident.
    """
    return reward + gamma * (1.0 - terminated) * q_next


class DDPG:
    """Actor, critic and their targets, trained as in the tutorial's loop (section 四).

    With `algo="td3"` the same agent becomes TD3 (Fujimoto et al., 2018): a second critic whose minimum
    with the first forms the target, clipped noise on the target action, and actor and target updates only
    every `policy_delay` critic updates. DDPG is TD3 with one critic, no target noise and a delay of 1,
    which is what the default settings give: one code path, not two.
    """

    def __init__(self, state_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 config: Config, rng: np.random.Generator | None = None) -> None:
        td3 = config.algo == "td3"
        self.gamma = config.gamma
        self.tau = config.tau
        self.policy_delay = config.policy_delay if td3 else 1
        self.target_noise = config.target_noise if td3 else 0.0
        self.target_noise_clip = config.target_noise_clip
        self.rng = rng if rng is not None else np.random.default_rng()
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)
        self.action_scale = (self.action_high - self.action_low) / 2
        self.actor = Actor(state_dim, action_dim, action_low, action_high, config.actor_hidden)
        self.critic = Critic(state_dim, action_dim, config.critic_hidden)
        self.critic2 = Critic(state_dim, action_dim, config.critic_hidden) if td3 else None
        # Targets start as exact copies. The tutorial initialised them independently at random, which
        # tau = 0.001 takes thousands of updates to forget while they bias every Bellman target.
        self.actor_target = Actor(state_dim, action_dim, action_low, action_high, config.actor_hidden)
        self.critic_target = Critic(state_dim, action_dim, config.critic_hidden)
        self.critic2_target = Critic(state_dim, action_dim, config.critic_hidden) if td3 else None
        for net, target in self._target_pairs():
            target.set_state_dict(net.state_dict())
        # Multi-tensor Adam updates all of a network's parameters in one fused kernel instead of one each.
        self.actor_optim = paddle.optimizer.Adam(parameters=self.actor.parameters(), learning_rate=config.lr_actor,
                                                 use_multi_tensor=True)
        self.critic_optim = paddle.optimizer.Adam(parameters=self._critic_parameters(),
                                                  learning_rate=config.lr_critic, use_multi_tensor=True)
        self.noise = make_noise(config.noise, action_dim, config.noise_std, self.rng, theta=config.ou_theta)
        self.learn_steps = 0

    def _target_pairs(self) -> list[tuple[nn.Layer, nn.Layer]]:
        pairs = [(self.actor, self.actor_target), (self.critic, self.critic_target)]
        return pairs + ([(self.critic2, self.critic2_target)] if self.critic2 is not None else [])

    def _critic_parameters(self) -> list[paddle.Tensor]:
        return self.critic.parameters() + (self.critic2.parameters() if self.critic2 is not None else [])

    def select_action(self, state: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """mu(s) plus epsilon-scaled noise, clipped to the bounds; epsilon 0 is the noise-free policy."""
        with paddle.no_grad():
            action = self.actor(paddle.to_tensor(state[None], dtype="float32"))[0].numpy()
        if epsilon > 0:
            action = action + epsilon * self.action_scale * self.noise()
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)

    def random_action(self) -> np.ndarray:
        """Uniform over the bounds: the warm-up action before the policy has learned anything."""
        return self.rng.uniform(self.action_low, self.action_high).astype(np.float32)

    def target_q(self, next_state: paddle.Tensor) -> paddle.Tensor:
        """Q'(s', a') with a' = mu'(s'); for TD3, a' carries clipped noise and Q' is the smaller of the two."""
        next_action = self.actor_target(next_state)
        if self.target_noise > 0:
            # Drawn with numpy so the checkpointed generator state covers it, scaled to each action range.
            noise = np.clip(self.target_noise * self.rng.standard_normal(next_action.shape),
                            -self.target_noise_clip, self.target_noise_clip) * self.action_scale
            next_action = next_action + paddle.to_tensor(noise.astype(np.float32))
            next_action = paddle.minimum(paddle.maximum(next_action, self.actor.action_low), self.actor.action_high)
        q_next = self.critic_target(next_state, next_action)
        if self.critic2_target is not None:
            q_next = paddle.minimum(q_next, self.critic2_target(next_state, next_action))
        return q_next

    def learn(self, batch: Batch) -> dict[str, paddle.Tensor]:
        """One critic step, then (every `policy_delay` steps) one actor step and the soft updates.

        Returns the losses computed, keyed by their VisualDL tags, as tensors: reading them would sync.
        """
        state, action, reward, next_state, terminated = (paddle.to_tensor(x) for x in batch)
        with paddle.no_grad():
            y = td_target(reward, terminated, self.target_q(next_state), self.gamma)
        critic_loss = F.mse_loss(self.critic(state, action), y)
        if self.critic2 is not None:
            critic_loss = critic_loss + F.mse_loss(self.critic2(state, action), y)
        self.critic_optim.clear_grad()
        critic_loss.backward()
        self.critic_optim.step()
        self.learn_steps += 1
        losses = {"critic loss": critic_loss.detach()}
        if self.learn_steps % self.policy_delay:
            return losses

        # The actor climbs Q(s, mu(s)). The tutorial wrapped this in critic.eval()/train(), which changes
        # nothing for layers without dropout or batch norm. Freezing the critic's weights instead spares the
        # backward pass their gradients, which the actor step never uses.
        _freeze(self.critic, True)
        actor_loss = -self.critic(state, self.actor(state)).mean()
        self.actor_optim.clear_grad()
        actor_loss.backward()
        self.actor_optim.step()
        _freeze(self.critic, False)

        for net, target in self._target_pairs():
            soft_update(target, net, self.tau)
        losses["actor loss"] = actor_loss.detach()
        return losses

    def parameters_finite(self) -> bool:
        return all(bool(paddle.isfinite(p).all()) for p in self.actor.parameters() + self._critic_parameters())

    def _network_names(self) -> list[str]:
        names = ["actor", "critic", "actor_target", "critic_target"]
        return names + (["critic2", "critic2_target"] if self.critic2 is not None else [])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training, as numpy arrays (portable across processes)."""
        return {
            **{name: _numpy(getattr(self, name).state_dict()) for name in self._network_names()},
            "actor_optim": _optimizer_state(self.actor_optim, self.actor.parameters()),
            "critic_optim": _optimizer_state(self.critic_optim, self._critic_parameters()),
            "noise": self.noise.state_dict(),
            "learn_steps": self.learn_steps,
        }

    def set_state_dict(self, saved: dict[str, Any]) -> None:
        for name in self._network_names():
            getattr(self, name).set_state_dict(saved[name])
        _set_optimizer_state(self.actor_optim, self.actor.parameters(), saved["actor_optim"])
        _set_optimizer_state(self.critic_optim, self._critic_parameters(), saved["critic_optim"])
        self.noise.set_state_dict(saved["noise"])
        self.learn_steps = saved["learn_steps"]


def _freeze(net: nn.Layer, frozen: bool) -> None:
    for p in net.parameters():
        p.stop_gradient = frozen


def _numpy(state: dict[str, paddle.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}


def _optimizer_state(optim: paddle.optimizer.Optimizer, params: list[paddle.Tensor]) -> dict[str, Any]:
    """Optimizer state keyed by parameter position instead of Paddle's global names.

    Paddle names accumulators after parameters ("linear_7.w_0_moment1_0") and numbers parameters per
    process, so a fresh agent's names rarely match a saved one's; positions always do.
    """
    position = {p.name: f"param{i}" for i, p in enumerate(params)}
    out = {}
    for key, value in optim.state_dict().items():
        param_name, sep, rest = key.partition("_moment") if "_moment" in key else key.partition("_beta")
        if sep and param_name in position:
            key = position[param_name] + sep + rest
        out[key] = value.numpy() if isinstance(value, paddle.Tensor) else value
    return out


def _set_optimizer_state(optim: paddle.optimizer.Optimizer, params: list[paddle.Tensor],
                         saved: dict[str, Any]) -> None:
    name = {f"param{i}": p.name for i, p in enumerate(params)}
    state = {}
    for key, value in saved.items():
        position, sep, rest = key.partition("_")
        state[name[position] + sep + rest if position in name else key] = value
    optim.set_state_dict(state)
