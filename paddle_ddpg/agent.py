"""The DDPG agent (the tutorial's section 四): four networks, two Adam optimizers, `select_action`, `learn`,
and the tutorial's `soft_update`. Plain Paddle: layers, `loss.backward()`, `optimizer.step()`.

This is the reference implementation. `paddle_ddpg.fast` can replace `update` and `act` with an engine that
computes the same numbers faster (tests/test_fast.py holds the two equal); what is written here is the algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic
from paddle_ddpg.noise import make_noise


def soft_update(target: nn.Layer, source: nn.Layer, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target, parameter by parameter: the tutorial's function."""
    with paddle.no_grad():
        for target_param, param in zip(target.parameters(), source.parameters()):
            target_param.set_value(target_param * (1.0 - tau) + param * tau)


def td_target(reward: paddle.Tensor, terminated: paddle.Tensor, q_next: paddle.Tensor,
              gamma: float) -> paddle.Tensor:
    """y = r + gamma * (1 - terminated) * Q'(s', mu'(s')).

    Only `terminated` stops bootstrapping: an episode cut by a time limit (`truncated`, as every Pendulum
    episode is) still has a future. The tutorial had no done flag at all, right for Pendulum by accident.
    """
    return reward + gamma * (1 - terminated) * q_next


class DDPG:
    """Actor, critic and their targets, trained as in the tutorial's loop.

    With `algo="td3"` the same agent becomes TD3 (Fujimoto et al., 2018) through three additions, each marked
    "TD3:" below: a second critic whose minimum with the first forms the target, clipped noise on the
    target action, and actor and target updates only every second critic update (`policy_delay`, which DDPG
    honours too). DDPG is TD3 with one critic, no target noise and, by default, a delay of 1.
    """

    def __init__(self, state_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 config: Config, rng: np.random.Generator | None = None) -> None:
        config.validate()
        if not (np.all(np.isfinite(action_low)) and np.all(np.isfinite(action_high))
                and np.all(np.less(action_low, action_high))):
            raise UsageError(f"action bounds must be finite with low < high, got {list(action_low)} and "
                             f"{list(action_high)}")
        td3 = config.algo == "td3"
        self.gamma, self.tau, self.tanh_penalty = config.gamma, config.tau, config.tanh_penalty
        self.rng = rng if rng is not None else np.random.default_rng()
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)
        self.action_scale = (self.action_high - self.action_low) / 2

        def actor() -> Actor:
            return Actor(state_dim, action_dim, action_low, action_high, config.actor_hidden)

        def critic() -> Critic:
            return Critic(state_dim, action_dim, config.critic_hidden, config.critic_action_layer)

        self.actor, self.critic = actor(), critic()
        self.actor_target, self.critic_target = actor(), critic()
        # TD3: a second critic and its target.
        self.critic2, self.critic2_target = (critic(), critic()) if td3 else (None, None)
        # The actor and the targets learn every `policy_delay` critic updates: by default every update for DDPG, as
        # in the tutorial, every second for TD3. TD3: noise on the target action.
        self.policy_delay = config.policy_delay or (2 if td3 else 1)
        self.target_noise = config.target_noise if td3 else 0.0
        self.target_noise_clip = config.target_noise_clip
        # Targets start as exact copies. The tutorial initialised them independently at random, which
        # tau = 0.001 takes thousands of updates to forget while they bias every Bellman target.
        for net, target in self.target_pairs():
            target.set_state_dict(net.state_dict())
        # use_multi_tensor: Adam updates all of a network's parameters at once instead of one by one.
        self.actor_optim = paddle.optimizer.Adam(parameters=self.actor.parameters(), learning_rate=config.lr_actor,
                                                 use_multi_tensor=True)
        self.critic_optim = paddle.optimizer.Adam(parameters=self.critic_parameters(), learning_rate=config.lr_critic,
                                                  use_multi_tensor=True)
        self.noise = make_noise(config.noise, action_dim, config.noise_std, self.rng, theta=config.ou_theta)
        self.learn_steps = 0
        self.widths = Batch.widths(state_dim, action_dim)

    def target_pairs(self) -> list[tuple[nn.Layer, nn.Layer]]:
        """(online network, its target) for every network that has one."""
        pairs = [(self.actor, self.actor_target), (self.critic, self.critic_target)]
        return pairs + ([(self.critic2, self.critic2_target)] if self.critic2 is not None else [])

    def critics(self) -> list[Critic]:
        return [self.critic] + ([self.critic2] if self.critic2 is not None else [])

    def critic_parameters(self) -> list[paddle.Tensor]:
        return [p for critic in self.critics() for p in critic.parameters()]

    # Acting

    def select_action(self, state: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """mu(s) plus epsilon-scaled noise, clipped to the bounds; epsilon 0 is the noise-free policy."""
        if np.shape(state) != (self.widths.state,):
            raise UsageError(f"select_action takes one state of shape ({self.widths.state},), "
                             f"got shape {np.shape(state)}")
        action = self.act(np.asarray(state, dtype=np.float32))
        if epsilon > 0:
            action = action + epsilon * self.action_scale * self.noise()
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)

    def act(self, state: np.ndarray) -> np.ndarray:
        """mu(s) for one float32 state, in env units."""
        with paddle.no_grad():
            return self.actor(paddle.to_tensor(state[None]))[0].numpy()

    def random_action(self) -> np.ndarray:
        """Uniform over the bounds: the warm-up action before the policy has learned anything."""
        return self.rng.uniform(self.action_low, self.action_high).astype(np.float32)

    # Learning

    def learn(self, batch: Batch) -> dict[str, paddle.Tensor]:
        """One critic step, then (every `policy_delay` steps) one actor step and the soft updates.

        Returns the losses computed, keyed by their VisualDL tags, as tensors: reading them would make the
        device finish its queue.
        """
        self.check_batch(batch)
        self.learn_steps += 1
        actor_step = self.learn_steps % self.policy_delay == 0
        return self.update(batch, self.draw_target_noise(len(batch.state)), actor_step)

    def update(self, batch: Batch, target_noise: np.ndarray | None, actor_step: bool) -> dict[str, paddle.Tensor]:
        """The update itself, given the noise on the target actions (TD3) and whether the actor steps."""
        state, action, reward, next_state, terminated = (paddle.to_tensor(x) for x in batch)
        with paddle.no_grad():
            y = td_target(reward, terminated, self.target_q(next_state, target_noise), self.gamma)
        losses = {"critic loss": self.critic_step(state, action, y)}
        if actor_step:
            losses["actor loss"] = self.actor_step(state)
            for net, target in self.target_pairs():
                soft_update(target, net, self.tau)
        return losses

    def target_q(self, next_state: paddle.Tensor, target_noise: np.ndarray | None = None) -> paddle.Tensor:
        """Q'(s', mu'(s')); for TD3, mu'(s') plus clipped noise, and the smaller of the two target critics."""
        next_action = self.actor_target(next_state)
        if target_noise is not None:  # TD3: target policy smoothing
            next_action = paddle.minimum(paddle.maximum(next_action + paddle.to_tensor(target_noise),
                                                        self.actor.action_low), self.actor.action_high)
        q_next = self.critic_target(next_state, next_action)
        if self.critic2_target is not None:  # TD3: clipped double Q
            q_next = paddle.minimum(q_next, self.critic2_target(next_state, next_action))
        return q_next

    def critic_step(self, state: paddle.Tensor, action: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        """One Adam step on the mean squared TD error (summed over TD3's two critics)."""
        critic_loss = sum(F.mse_loss(critic(state, action), y) for critic in self.critics())
        self.critic_optim.clear_grad()
        critic_loss.backward()
        self.critic_optim.step()
        return critic_loss.detach()

    def actor_step(self, state: paddle.Tensor) -> paddle.Tensor:
        """One Adam step of the actor up the critic's Q(s, mu(s)); returns -mean Q, the tutorial's 'actor loss'.

        The tutorial wrapped this in critic.eval()/train(), which changes nothing for layers without dropout
        or batch norm. The critic's gradients computed here are cleared by the next critic step.
        """
        actor_loss = -self.critic(state, self.actor(state)).mean()
        loss = actor_loss
        if self.tanh_penalty:
            loss = actor_loss + self.tanh_penalty * tanh_excess(self.actor.preactivation(state))
        self.actor_optim.clear_grad()
        loss.backward()
        self.actor_optim.step()
        return actor_loss.detach()

    def draw_target_noise(self, rows: int) -> np.ndarray | None:
        """TD3's noise on the target actions, clipped and scaled to each action range; None for DDPG.

        Drawn with numpy from the agent's generator, whose state the checkpoint keeps.
        """
        if self.target_noise <= 0:
            return None
        noise = self.target_noise * self.rng.standard_normal((rows, len(self.action_scale)))
        clip = self.target_noise_clip
        return (np.clip(noise, -clip, clip) * self.action_scale).astype(np.float32)

    def check_batch(self, batch: Batch) -> None:
        """Refuse a batch whose fields are not (rows, width) arrays of one row count. Broadcasting would
        otherwise run a wrong update without a word: a reward of shape (rows,) against Q's (rows, 1) makes
        a (rows, rows) target."""
        rows = len(batch.state)
        for name, array, width in zip(Batch._fields, batch, self.widths):
            if np.shape(array) != (rows, width) or rows == 0:
                raise UsageError(f"batch.{name} must have shape ({rows or 'rows > 0'}, {width}) "
                                 f"(batch size, width), got {np.shape(array)}")

    def parameters_finite(self) -> bool:
        return all(bool(paddle.isfinite(p).all()) for net in self.networks().values() for p in net.parameters())

    # Saving and loading

    def networks(self) -> dict[str, nn.Layer]:
        nets = {"actor": self.actor, "critic": self.critic, "actor_target": self.actor_target,
                "critic_target": self.critic_target}
        if self.critic2 is not None:
            nets.update(critic2=self.critic2, critic2_target=self.critic2_target)
        return nets

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training, as numpy arrays."""
        return {
            **{name: {k: v.numpy() for k, v in net.state_dict().items()} for name, net in self.networks().items()},
            "actor_optim": optimizer_state(self.actor_optim, self.actor.parameters()),
            "critic_optim": optimizer_state(self.critic_optim, self.critic_parameters()),
            "noise": self.noise.state_dict(),
            "learn_steps": self.learn_steps,
        }

    def set_state_dict(self, saved: dict[str, Any]) -> None:
        """Load a `state_dict`, refusing with one line any network whose keys or shapes differ."""
        for name, net in self.networks().items():
            load_weights(net, saved[name], name)
        set_optimizer_state(self.actor_optim, self.actor.parameters(), saved["actor_optim"])
        set_optimizer_state(self.critic_optim, self.critic_parameters(), saved["critic_optim"])
        self.noise.set_state_dict(saved["noise"])
        self.learn_steps = int(saved["learn_steps"])


def tanh_excess(z: paddle.Tensor) -> paddle.Tensor:
    """Mean square of how far the tanh's input goes past +-TANH_MARGIN, where tanh passes back almost no
    gradient and a policy pushed to a bound can stay stuck there (`Config.tanh_penalty`)."""
    return (z - z.clip(-TANH_MARGIN, TANH_MARGIN)).square().mean()


def load_weights(net: nn.Layer, weights: dict[str, np.ndarray], name: str) -> None:
    """`net.set_state_dict(weights)` after checking every key and shape: Paddle's own call skips a missing or
    misshapen entry with a warning and leaves that parameter random."""
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    got = {k: tuple(np.shape(v)) for k, v in weights.items()}
    if got != expected:
        raise UsageError(f"{name} weights do not fit this network: expected {expected}, got {got}")
    if not all(np.asarray(v).dtype.kind == "f" for v in weights.values()):
        raise UsageError(f"{name} weights must be floating-point arrays")
    net.set_state_dict({k: np.asarray(v, dtype=np.float32) for k, v in weights.items()})


# Adam keeps moment1, moment2 and the powers of beta1 and beta2 per parameter, keyed by the parameter's
# name. Those names count the layers made in the process before (linear_12.w_0), so a checkpoint keys
# them by the parameter's position instead (param3_moment1_0), and a resumed process finds them.
ADAM_STATE = ("moment1_0", "moment2_0", "beta1_pow_acc_0", "beta2_pow_acc_0")


def optimizer_state(optim: paddle.optimizer.Adam, params: list[paddle.Tensor]) -> dict[str, np.ndarray]:
    """Adam's state by parameter position; empty before its first step (a fresh Adam)."""
    saved = optim.state_dict()
    return {f"param{i}_{kind}": saved[f"{p.name}_{kind}"].numpy()
            for i, p in enumerate(params) for kind in ADAM_STATE if f"{p.name}_{kind}" in saved}


def set_optimizer_state(optim: paddle.optimizer.Adam, params: list[paddle.Tensor],
                        saved: dict[str, np.ndarray]) -> None:
    if not saved:
        return
    expected = {f"param{i}_{kind}": (1,) if "pow" in kind else tuple(p.shape)
                for i, p in enumerate(params) for kind in ADAM_STATE}
    got = {k: tuple(np.shape(v)) for k, v in saved.items()}
    if got != expected:
        raise UsageError(f"optimizer state does not fit these networks: expected {expected}, got {got}")
    optim.set_state_dict({f"{p.name}_{kind}": paddle.to_tensor(np.asarray(saved[f"param{i}_{kind}"], np.float32))
                          for i, p in enumerate(params) for kind in ADAM_STATE})
