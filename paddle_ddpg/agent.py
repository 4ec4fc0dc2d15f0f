"""The DDPG agent: four networks, two optimizers, `select_action`, `learn`, and the tutorial's `soft_update`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_ddpg import fused
from paddle_ddpg.config import Config, UsageError
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic
from paddle_ddpg.noise import make_noise


def soft_update(target: nn.Layer | paddle.Tensor, source: nn.Layer | paddle.Tensor, tau: float) -> None:
    """target <- tau * source + (1 - tau) * target: parameter by parameter for two layers (the tutorial's
    call), or at once for two flat parameter buffers (what `DDPG.learn` passes: every target network at once).

    In place, where the tutorial's `set_value(t * (1 - tau) + s * tau)` made temporaries and copied back:
    scale the target, then let the SGD kernel add tau * source (its p - lr * g with lr = -tau, one vectorised
    pass and no temporary; half the time of scale, scale and add). The same roundings as the formula, so tau 1
    copies exactly, which `lerp_`'s t + tau * (s - t) would not.
    """
    pairs = zip(target.parameters(), source.parameters()) if isinstance(target, nn.Layer) else [(target, source)]
    with paddle.no_grad():
        for target_param, param in pairs:
            fused.kernels.scale_(target_param, 1.0 - tau, 0.0, True)
            fused.kernels.sgd_(target_param, fused.filled(1, 1, -tau, param.place), param, None, False)


def td_target(reward: paddle.Tensor, terminated: paddle.Tensor, q_next: paddle.Tensor,
              gamma: float) -> paddle.Tensor:
    """y = r + gamma * (1 - terminated) * Q'(s', mu'(s')).

    Only `terminated` stops bootstrapping: an episode cut by a time limit (`truncated`, as every Pendulum
    episode is) still has a future. The tutorial had no done flag at all, right for Pendulum by accident.
    Three kernels, gamma * (1 - terminated) being one scale (-gamma * terminated + gamma); the operators
    would make four, each through Python's operator overloading.
    """
    k = fused.kernels  # Paddle's, or a Trace recording them
    return k.add(reward, k.multiply(k.scale(terminated, -gamma, gamma, True), q_next))


class DDPG:
    """Actor, critic and their targets, trained as in the tutorial's loop (section 四).

    With `algo="td3"` the same agent becomes TD3 (Fujimoto et al., 2018): a second critic whose minimum
    with the first forms the target, clipped noise on the target action, and actor and target updates only
    every `policy_delay` critic updates. DDPG is TD3 with one critic, no target noise and a delay of 1,
    which is what the default settings give: one code path, not two.

    Gradients come from autograd through the layers (`fused=False`, the tutorial's way and the readable
    reference) or from the explicit kernels of `paddle_ddpg.fused` (the default, about twice as fast at the
    tutorial's sizes). Both feed the same merged Adam and the soft update over flat parameter buffers.
    """

    def __init__(self, state_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 config: Config, rng: np.random.Generator | None = None) -> None:
        config.validate()
        if not (np.all(np.isfinite(action_low)) and np.all(np.isfinite(action_high))
                and np.all(np.less(action_low, action_high))):
            raise UsageError(f"action bounds must be finite with low < high, got {list(action_low)} and "
                             f"{list(action_high)}")
        td3 = config.algo == "td3"
        self.gamma = config.gamma
        self.tau = config.tau
        self.policy_delay = config.policy_delay if td3 else 1
        self.target_noise = config.target_noise if td3 else 0.0
        self.target_noise_clip = config.target_noise_clip
        self.fused = config.fused
        self.tanh_penalty = config.tanh_penalty
        self.rng = rng if rng is not None else np.random.default_rng()
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)
        self.action_scale = (self.action_high - self.action_low) / 2
        actor = functools.partial(Actor, state_dim, action_dim, action_low, action_high, config.actor_hidden)
        critic = functools.partial(Critic, state_dim, action_dim, config.critic_hidden, config.critic_action_layer)
        self.actor, self.critic = actor(), critic()
        self.critic2 = critic() if td3 else None
        # Targets start as exact copies. The tutorial initialised them independently at random, which
        # tau = 0.001 takes thousands of updates to forget while they bias every Bellman target.
        self.actor_target, self.critic_target = actor(), critic()
        self.critic2_target = critic() if td3 else None
        for net, target in self._target_pairs():
            target.set_state_dict(net.state_dict())
        # Online parameters in one buffer, targets in another laid out alike: one soft update for all targets.
        actor_params, critic_params = self.actor.parameters(), self._critic_parameters()
        self._online = fused.share_flat(actor_params + critic_params)
        self._target = fused.share_flat([p for _, target in self._target_pairs() for p in target.parameters()])
        self.actor_optim = fused.MergedAdam(actor_params, config.lr_actor)
        self.critic_optim = fused.MergedAdam(critic_params, config.lr_critic)
        self._layers = {net: fused.critic_layers(net) if isinstance(net, Critic) else fused.actor_layers(net)
                        for pair in self._target_pairs() for net in pair}
        # Inputs are copied into these tensors' memory (`_fill`), a fraction of the cost of new tensors.
        self._place = paddle.framework._current_expected_place()
        self._state, self._target_noise = paddle.zeros([1]), paddle.zeros([1])
        self._batch = [paddle.zeros([1]) for _ in Batch._fields]
        self._traces: dict[tuple[int, bool, float, float], fused.Trace] = {}  # recorded updates (`learn`)
        self.noise = make_noise(config.noise, action_dim, config.noise_std, self.rng, theta=config.ou_theta)
        self.learn_steps = 0
        self._widths = Batch.widths(state_dim, action_dim)

    def _target_pairs(self) -> list[tuple[nn.Layer, nn.Layer]]:
        pairs = [(self.actor, self.actor_target), (self.critic, self.critic_target)]
        return pairs + ([(self.critic2, self.critic2_target)] if self.critic2 is not None else [])

    def _critic_parameters(self) -> list[paddle.Tensor]:
        return self.critic.parameters() + (self.critic2.parameters() if self.critic2 is not None else [])

    def _critics(self) -> list[Critic]:
        return [self.critic] + ([self.critic2] if self.critic2 is not None else [])

    def _mu(self, actor: Actor, state: paddle.Tensor) -> paddle.Tensor:
        if not self.fused:
            return actor(state)
        return fused.actor_forward(self._layers[actor], state)[0]

    def _q(self, critic: Critic, state: paddle.Tensor, action: paddle.Tensor) -> paddle.Tensor:
        return fused.critic_forward(self._layers[critic], state, action)[0] if self.fused else critic(state, action)

    def select_action(self, state: np.ndarray, epsilon: float = 0.0) -> np.ndarray:
        """mu(s) plus epsilon-scaled noise, clipped to the bounds; epsilon 0 is the noise-free policy."""
        if np.shape(state) != (self._widths.state,):
            raise UsageError(f"select_action takes one state of shape ({self._widths.state},), "
                             f"got shape {np.shape(state)}")
        with paddle.no_grad():
            action = self._mu(self.actor, self._fill(self._state, np.asarray(state)[None])).numpy()[0]
        if epsilon > 0:
            action = action + epsilon * self.action_scale * self.noise()
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)

    def _fill(self, tensor: paddle.Tensor, array: np.ndarray) -> paddle.Tensor:
        """Copy `array` as float32 into `tensor`'s memory on the agent's device, taking the array's shape:
        about half a microsecond, where creating a tensor takes 8 (and splitting one batch tensor into
        Batch's five fields 12 more). The tensor is overwritten at the next call: nothing keeps it."""
        tensor.get_tensor().set(np.asarray(array, dtype=np.float32), self._place)
        return tensor

    def random_action(self) -> np.ndarray:
        """Uniform over the bounds: the warm-up action before the policy has learned anything."""
        return self.rng.uniform(self.action_low, self.action_high).astype(np.float32)

    def target_q(self, next_state: paddle.Tensor) -> paddle.Tensor:
        """Q'(s', a') with a' = mu'(s'); for TD3, a' carries clipped noise and Q' is the smaller of the two."""
        if self.target_noise > 0:
            self._draw_target_noise(next_state.shape[0])
        return self._target_q(next_state)

    def _draw_target_noise(self, rows: int) -> None:
        """TD3's noise on the target action, drawn with numpy so the checkpointed generator state covers it,
        clipped and scaled to each action range, into the tensor `_target_q` adds."""
        noise = np.clip(self.target_noise * self.rng.standard_normal((rows, len(self.action_scale))),
                        -self.target_noise_clip, self.target_noise_clip) * self.action_scale
        self._fill(self._target_noise, noise)

    def _target_q(self, next_state: paddle.Tensor) -> paddle.Tensor:
        """`target_q` with the noise already drawn."""
        next_action = self._mu(self.actor_target, next_state)
        if self.target_noise > 0:
            k = fused.kernels
            next_action = k.add(next_action, self._target_noise)
            next_action = k.minimum(k.maximum(next_action, self.actor.action_low), self.actor.action_high)
        q_next = self._q(self.critic_target, next_state, next_action)
        if self.critic2_target is not None:
            q_next = fused.kernels.minimum(q_next, self._q(self.critic2_target, next_state, next_action))
        return q_next

    def learn(self, batch: Batch) -> dict[str, paddle.Tensor]:
        """One critic step, then (every `policy_delay` steps) one actor step and the soft updates.

        Returns the losses computed, keyed by their VisualDL tags, as tensors: reading them would sync.

        On the fused path the first update of each kind (batch size, with or without the actor step, gamma
        and tau) is recorded and later ones replay its kernels without the Python around them
        (`fused.Trace`): the same kernels on the same tensors, so the same numbers.
        """
        self._check(batch)
        for tensor, array in zip(self._batch, batch):
            self._fill(tensor, array)
        if self.target_noise > 0:
            self._draw_target_noise(len(batch.next_state))
        self.learn_steps += 1
        actor_step = self.learn_steps % self.policy_delay == 0
        if not self.fused:
            losses = self._update(actor_step)
        else:
            key = (len(batch.state), actor_step, self.gamma, self.tau)
            with paddle.no_grad():
                if key in self._traces:
                    losses = self._traces[key].run()
                else:
                    self._traces[key] = trace = fused.Trace(functools.partial(self._update, actor_step))
                    losses = trace.outputs
        return dict(zip(("critic loss", "actor loss"), losses))

    def _check(self, batch: Batch) -> None:
        """Refuse a batch whose fields are not (rows, width) arrays of one row count. Broadcasting would
        otherwise run a wrong update without a word: a reward of shape (rows,) against Q's (rows, 1) makes
        a (rows, rows) target."""
        rows = len(batch.state)
        for name, array, width in zip(Batch._fields, batch, self._widths):
            if np.shape(array) != (rows, width) or rows == 0:
                raise UsageError(f"batch.{name} must have shape ({rows or 'rows > 0'}, {width}) "
                                 f"(batch size, width), got {np.shape(array)}")

    def _update(self, actor_step: bool) -> tuple[paddle.Tensor, ...]:
        """The critic loss and, with `actor_step`, the actor loss, from the batch `learn` copied in."""
        state, action, reward, next_state, terminated = self._batch
        with paddle.no_grad():
            y = td_target(reward, terminated, self._target_q(next_state), self.gamma)
        losses = (self._critic_step(state, action, y),)
        if actor_step:
            losses += (self._actor_step(state),)
            soft_update(self._target, self._online, self.tau)
        return losses

    def _critic_step(self, state: paddle.Tensor, action: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        """One Adam step on the mean squared TD error, summed over the critics."""
        if self.fused:  # `learn` runs it without autograd
            loss, grads = None, []
            for critic in self._critics():
                q, saved = fused.critic_forward(self._layers[critic], state, action)
                mse, d_q = fused.mse_and_grad(q, y)
                loss = mse if loss is None else fused.kernels.add(loss, mse)
                grads += fused.critic_backward(self._layers[critic], saved, d_q)
            self.critic_optim.step(grads)
            return loss
        loss = sum(F.mse_loss(critic(state, action), y) for critic in self._critics())
        loss.backward()
        self.critic_optim.step([p.grad for p in self._critic_parameters()])
        _clear_gradients(self._critic_parameters())
        return loss.detach()

    def _actor_step(self, state: paddle.Tensor) -> paddle.Tensor:
        """One Adam step of the actor up the critic's Q(s, mu(s)), less `tanh_penalty`; returns -mean Q, the
        tutorial's 'actor loss', without the penalty."""
        if self.fused:  # `learn` runs it without autograd
            actor, critic = self._layers[self.actor], self._layers[self.critic]
            action, saved_actor = fused.actor_forward(actor, state)
            q, saved_critic = fused.critic_forward(critic, state, action)
            loss, d_q = fused.minus_mean_and_grad(q)
            d_action = fused.critic_action_grad(critic, saved_critic, d_q)
            self.actor_optim.step(fused.actor_backward(actor, saved_actor, d_action, self.tanh_penalty))
            return loss
        # The tutorial wrapped this in critic.eval()/train(), which changes nothing for layers without
        # dropout or batch norm. Freezing the critic's weights instead spares the backward pass their
        # gradients, which the actor step never uses.
        _freeze(self.critic, True)
        z = self.actor.preactivation(state)
        loss = -self.critic(state, self.actor.squash(z)).mean()
        penalised = loss
        if self.tanh_penalty:  # no clip and subtract per step when it is off, as in the fused path
            excess = z - z.clip(-TANH_MARGIN, TANH_MARGIN)
            penalised = loss + self.tanh_penalty * excess.square().mean()
        penalised.backward()
        _freeze(self.critic, False)
        self.actor_optim.step([p.grad for p in self.actor.parameters()])
        _clear_gradients(self.actor.parameters())
        return loss.detach()

    def parameters_finite(self) -> bool:
        return bool(paddle.isfinite(self._online).all())

    def _network_names(self) -> list[str]:
        names = ["actor", "critic", "actor_target", "critic_target"]
        return names + (["critic2", "critic2_target"] if self.critic2 is not None else [])

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training, as numpy arrays (portable across processes)."""
        return {
            **{name: _numpy(getattr(self, name).state_dict()) for name in self._network_names()},
            "actor_optim": self.actor_optim.state_dict(),
            "critic_optim": self.critic_optim.state_dict(),
            "noise": self.noise.state_dict(),
            "learn_steps": self.learn_steps,
        }

    def set_state_dict(self, saved: dict[str, Any]) -> None:
        for name in self._network_names():
            getattr(self, name).set_state_dict(saved[name])
        self.actor_optim.set_state_dict(saved["actor_optim"])
        self.critic_optim.set_state_dict(saved["critic_optim"])
        self.noise.set_state_dict(saved["noise"])
        self.learn_steps = saved["learn_steps"]


def _freeze(net: nn.Layer, frozen: bool) -> None:
    for p in net.parameters():
        p.stop_gradient = frozen


def _clear_gradients(params: list[paddle.Tensor]) -> None:
    """Drop autograd's gradients, which it would otherwise add the next step's to."""
    for p in params:
        p.clear_gradient(False)


def _numpy(state: dict[str, paddle.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in state.items()}
