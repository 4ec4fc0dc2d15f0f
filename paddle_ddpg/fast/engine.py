"""The fast engine: `DDPG.update` and `DDPG.act` computed with explicit kernels over flat parameter buffers.

At the tutorial's sizes one update is a fifth of a millisecond of matrix products on one core, and
autograd's graph, `nn.Layer.__call__`, the optimizer's Python wrapper and a soft update issued parameter by
parameter cost several times that. So here:

- the parameters of the online networks become views of one contiguous buffer and the target parameters of a
  second one laid out alike (`share_flat`), so the soft update of every target network is two kernels;
- each optimizer is one call of Paddle's merged Adam kernel over the moments of the agent's own
  `paddle.optimizer.Adam`, so `DDPG.state_dict` saves the same optimizer state whichever engine trained;
- gradients come from the hand-written backward passes of `layers`;
- the first update of each kind is recorded and later ones replay its kernel calls (`Trace`).

The layers stay the source of truth: their parameters are views of the buffers, so `state_dict`,
`set_state_dict` and `paddle.jit.save` see every update.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import paddle
from paddle.base import framework

from paddle_ddpg.agent import DDPG
from paddle_ddpg.fast import layers
from paddle_ddpg.fast.layers import filled
from paddle_ddpg.fast.trace import Trace
from paddle_ddpg.memory import Batch
from paddle_ddpg.networks import Critic


def share_flat(params: Sequence[paddle.Tensor]) -> paddle.Tensor:
    """Move `params` into one new contiguous buffer, each becoming a view of its slice; return the buffer.

    Paddle's `set_value` (behind `set_state_dict`) copies into a parameter's memory, so loading weights
    later keeps the views intact.
    """
    buffer = paddle.concat([p.detach().reshape([-1]) for p in params])
    offset = 0
    for p in params:
        shape, stop_gradient, size = list(p.shape), p.stop_gradient, int(np.prod(p.shape))
        buffer._slice(offset, offset + size)._share_buffer_to(p)
        p.get_tensor()._set_dims(shape)
        p.stop_gradient = stop_gradient
        offset += size
    return buffer


def fill(tensor: paddle.Tensor, array: np.ndarray, place: paddle.base.core.Place) -> paddle.Tensor:
    """Copy `array` as float32 into `tensor`'s memory on `place` (the current device, as
    `framework._current_expected_place()` gives it), taking the array's shape. The tensor is overwritten at
    the next call: nothing keeps it."""
    tensor.get_tensor().set(np.asarray(array, dtype=np.float32), place)
    return tensor


class MergedAdam:
    """The steps of a `paddle.optimizer.Adam` in one call of the merged Adam kernel (the multi-tensor kernel
    behind `Adam(use_multi_tensor=True)`), on that optimizer's own moment tensors."""

    def __init__(self, optim: paddle.optimizer.Adam, params: Sequence[paddle.Tensor]) -> None:
        self.optim, self.params = optim, list(params)
        self.learning_rate = paddle.full([1], optim.get_lr(), dtype="float32")
        self.moments: list[list[paddle.Tensor]] = []

    def bind(self) -> None:
        """Have the optimizer make its moments, as its first `step` would (they take the values of a
        `set_state_dict` made before), and keep them."""
        self.optim._create_accumulators(framework.default_main_program().global_block(), self.params)
        accumulators = self.optim._accumulators
        self.moments = [[accumulators[kind][p.name] for p in self.params]
                        for kind in ("moment1", "moment2", "beta1_pow_acc", "beta2_pow_acc")]

    def step(self, grads: Sequence[paddle.Tensor]) -> None:
        moment1, moment2, beta1_pow, beta2_pow = self.moments
        layers.kernels.merged_adam_(self.params, list(grads), [self.learning_rate] * len(self.params), moment1,
                                    moment2, None, beta1_pow, beta2_pow, None, self.optim._beta1,
                                    self.optim._beta2, self.optim._epsilon, False, False, False)


class FastEngine:
    """`update` and `act` with the contracts of `DDPG.update` and `DDPG.act`, on that agent's networks."""

    def __init__(self, agent: DDPG) -> None:
        self.agent = agent
        actor_params, critic_params = agent.actor.parameters(), agent.critic_parameters()
        self.online = share_flat(actor_params + critic_params)
        self.target = share_flat([p for _, target in agent.target_pairs() for p in target.parameters()])
        self.actor_adam = MergedAdam(agent.actor_optim, actor_params)
        self.critic_adam = MergedAdam(agent.critic_optim, critic_params)
        self.layers = {net: layers.critic_layers(net) if isinstance(net, Critic) else layers.actor_layers(net)
                       for pair in agent.target_pairs() for net in pair}
        # Inputs are copied into these tensors' memory (`fill`), a fraction of the cost of new tensors.
        self.place = framework._current_expected_place()
        self.state, self.target_noise = paddle.zeros([1]), paddle.zeros([1])
        self.batch = [paddle.zeros([1]) for _ in Batch._fields]
        self.traces: dict[tuple[int, bool, bool, float, float], Trace] = {}

    def act(self, state: np.ndarray) -> np.ndarray:
        with paddle.no_grad():
            action, _ = layers.actor_forward(self.layers[self.agent.actor], fill(self.state, state[None], self.place))
            return action.numpy()[0]

    def update(self, batch: Batch, target_noise: np.ndarray | None, actor_step: bool) -> dict[str, paddle.Tensor]:
        """The first update of each kind (batch size, with or without the actor step and target noise, gamma
        and tau) runs with its kernel calls recorded; later ones replay them: the same kernels on the same
        tensors."""
        if not self.critic_adam.moments:
            self.actor_adam.bind()
            self.critic_adam.bind()
        for tensor, array in zip(self.batch, batch):
            fill(tensor, array, self.place)
        smoothing = target_noise is not None
        if smoothing:
            fill(self.target_noise, target_noise, self.place)
        key = (len(batch.state), actor_step, smoothing, self.agent.gamma, self.agent.tau)
        with paddle.no_grad():
            if key in self.traces:
                losses = self.traces[key].run()
            else:
                self.traces[key] = trace = Trace(functools.partial(self._update, actor_step, smoothing))
                losses = trace.outputs
        return dict(zip(("critic loss", "actor loss"), losses))

    def _update(self, actor_step: bool, smoothing: bool) -> tuple[paddle.Tensor, ...]:
        k, agent = layers.kernels, self.agent
        state, action, reward, next_state, terminated = self.batch
        # td_target: r + gamma * (1 - terminated) * q_next, gamma * (1 - terminated) being one scale kernel.
        y = k.add(reward, k.multiply(k.scale(terminated, -agent.gamma, agent.gamma, True),
                                     self._target_q(next_state, smoothing)))
        losses = (self._critic_step(state, action, y),)
        if actor_step:
            losses += (self._actor_step(state),)
            # soft_update of every target at once: scale the targets, then add tau * online through the SGD
            # kernel (p - lr * g with lr = -tau), one pass without a temporary.
            k.scale_(self.target, 1.0 - agent.tau, 0.0, True)
            k.sgd_(self.target, filled(1, 1, -agent.tau, self.online.place), self.online, None, False)
        return losses

    def _target_q(self, next_state: paddle.Tensor, smoothing: bool) -> paddle.Tensor:
        k, agent = layers.kernels, self.agent
        next_action, _ = layers.actor_forward(self.layers[agent.actor_target], next_state)
        if smoothing:
            next_action = k.add(next_action, self.target_noise)
            next_action = k.minimum(k.maximum(next_action, agent.actor.action_low), agent.actor.action_high)
        q_next, _ = layers.critic_forward(self.layers[agent.critic_target], next_state, next_action)
        if agent.critic2_target is not None:
            q2_next, _ = layers.critic_forward(self.layers[agent.critic2_target], next_state, next_action)
            q_next = k.minimum(q_next, q2_next)
        return q_next

    def _critic_step(self, state: paddle.Tensor, action: paddle.Tensor, y: paddle.Tensor) -> paddle.Tensor:
        loss, grads = None, []
        for critic in self.agent.critics():
            q, saved = layers.critic_forward(self.layers[critic], state, action)
            mse, d_q = layers.mse_and_grad(q, y)
            loss = mse if loss is None else layers.kernels.add(loss, mse)
            grads += layers.critic_backward(self.layers[critic], saved, d_q)
        self.critic_adam.step(grads)
        return loss

    def _actor_step(self, state: paddle.Tensor) -> paddle.Tensor:
        """The actor's gradient goes back through the critic's action input only: the critic's own weight
        gradients, which autograd computes and the next critic step clears, are never computed."""
        actor, critic = self.layers[self.agent.actor], self.layers[self.agent.critic]
        action, saved_actor = layers.actor_forward(actor, state)
        q, saved_critic = layers.critic_forward(critic, state, action)
        loss, d_q = layers.minus_mean_and_grad(q)
        d_action = layers.critic_action_grad(critic, saved_critic, d_q)
        self.actor_adam.step(layers.actor_backward(actor, saved_actor, d_action, self.agent.tanh_penalty))
        return loss


def install(agent: DDPG) -> None:
    """Give `agent` the engine's `update` and `act`, unchecked (`paddle_ddpg.fast.accelerate` checks first)."""
    engine = FastEngine(agent)
    agent.update, agent.act = engine.update, engine.act
