"""`DDPG.update` and `DDPG.act` in explicit kernels (`layers`): at the tutorial's sizes autograd, `nn.Layer` calls,
the optimizer's Python and a soft update parameter by parameter cost several times the matrix products. So the
online parameters become views of one buffer and the targets of another laid out alike (`share_flat`): a soft
update is two kernels; each Adam steps in one merged kernel on the agent's own optimizer's moments, which
`DDPG.state_dict` saves; each kind of update replays the kernel calls of its first (`Trace`).
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
    """Move `params` into one new buffer, each a view of its slice (loading weights copies into them: they stay)."""
    buffer = paddle.concat([p.detach().reshape([-1]) for p in params])
    offset = 0
    for p in params:
        shape, stop_gradient, size = list(p.shape), p.stop_gradient, int(np.prod(p.shape))
        buffer._slice(offset, offset + size)._share_buffer_to(p)
        p.get_tensor()._set_dims(shape)
        p.stop_gradient = stop_gradient
        offset += size
    return buffer


class MergedAdam:
    """A `paddle.optimizer.Adam`'s step as one call of the merged Adam kernel, on the moments that optimizer
    makes as its first `step` would (taking the values of a `set_state_dict` made before)."""

    def __init__(self, optim: paddle.optimizer.Adam, params: Sequence[paddle.Tensor]) -> None:
        self.optim, self.params = optim, list(params)
        self.learning_rate = paddle.full([1], optim.get_lr(), dtype="float32")
        optim._create_accumulators(framework.default_main_program().global_block(), self.params)
        self.moments = [[optim._accumulators[kind][p.name] for p in self.params]
                        for kind in ("moment1", "moment2", "beta1_pow_acc", "beta2_pow_acc")]

    def step(self, grads: Sequence[paddle.Tensor]) -> None:
        moment1, moment2, beta1_pow, beta2_pow = self.moments
        layers.kernels.merged_adam_(self.params, list(grads), [self.learning_rate] * len(self.params), moment1,
                                    moment2, None, beta1_pow, beta2_pow, None, self.optim._beta1,
                                    self.optim._beta2, self.optim._epsilon, False, False, False)


class FastEngine:
    """`update` and `act` with the contracts of `DDPG.update` and `DDPG.act`, on that agent's networks, given to it
    unchecked (`paddle_ddpg.fast.accelerate` checks first)."""

    def __init__(self, agent: DDPG) -> None:
        self.agent, self.adams = agent, ()
        self.online = share_flat(agent.actor.parameters() + agent.critic_parameters())
        self.target = share_flat([p for _, target in agent.target_pairs() for p in target.parameters()])
        self.passes = {net: layers.CriticPass(net) if isinstance(net, Critic) else layers.ActorPass(net)
                       for pair in agent.target_pairs() for net in pair}
        # Inputs are copied into these tensors' memory on the current device, cheaper than new tensors.
        self.state, self.target_noise, *self.batch = (paddle.zeros([1]) for _ in range(2 + len(Batch._fields)))
        self.place = framework._current_expected_place()
        self.traces: dict[tuple[int, bool, bool, float, float], Trace] = {}
        agent.update, agent.act = self.update, self.act

    def act(self, state: np.ndarray) -> np.ndarray:
        self.state.get_tensor().set(np.asarray(state[None], np.float32), self.place)
        with paddle.no_grad():
            return self.passes[self.agent.actor].forward(self.state)[0].numpy()[0]

    def update(self, batch: Batch, target_noise: np.ndarray | None, actor_step: bool) -> dict[str, paddle.Tensor]:
        """Each kind of update (batch size, actor step, target noise, gamma, tau) replays the kernels of its first."""
        if not self.adams:  # made now, after any optimizer state was loaded
            self.adams = (MergedAdam(self.agent.actor_optim, self.agent.actor.parameters()),
                          MergedAdam(self.agent.critic_optim, self.agent.critic_parameters()))
        for tensor, array in zip([*self.batch, self.target_noise], [*batch, target_noise]):
            if array is not None:
                tensor.get_tensor().set(np.asarray(array, np.float32), self.place)
        key = (len(batch.state), actor_step, target_noise is not None, self.agent.gamma, self.agent.tau)
        with paddle.no_grad():
            if key in self.traces:
                losses = self.traces[key].run()
            else:
                self.traces[key] = Trace(functools.partial(self._update, actor_step, target_noise is not None))
                losses = self.traces[key].outputs
        return dict(zip(("critic loss", "actor loss"), losses))

    def _update(self, actor_step: bool, smoothing: bool) -> tuple[paddle.Tensor, ...]:
        """`DDPG.update` on the kept batch: target_q, critic_step, then actor_step and soft_update."""
        k, agent, passes = layers.kernels, self.agent, self.passes
        state, action, reward, next_state, terminated = self.batch
        next_action, _ = passes[agent.actor_target].forward(next_state)
        if smoothing:
            next_action = k.minimum(k.maximum(k.add(next_action, self.target_noise), agent.actor.action_low),
                                    agent.actor.action_high)
        q_next, _ = passes[agent.critic_target].forward(next_state, next_action)
        if agent.critic2_target is not None:
            q_next = k.minimum(q_next, passes[agent.critic2_target].forward(next_state, next_action)[0])
        # td_target: r + gamma * (1 - terminated) * q_next, gamma * (1 - terminated) being one scale kernel.
        y = k.add(reward, k.multiply(k.scale(terminated, -agent.gamma, agent.gamma, True), q_next))
        critic_loss, grads = None, []
        for critic in agent.critics():  # the mean squared TD error, and its gradient 2 (q - y) / batch
            q, saved = passes[critic].forward(state, action)
            error = k.subtract(q, y)
            mse = k.mean(k.square(error), [], False)
            critic_loss = mse if critic_loss is None else k.add(critic_loss, mse)
            grads += passes[critic].backward(saved, k.scale(error, 2.0 / q.shape[0], 0.0, True))
        self.adams[1].step(grads)
        if not actor_step:
            return (critic_loss,)
        # -mean Q, its gradient -1 / batch through the critic's action input only: the critic's own gradients, which
        # autograd computes and the next critic step clears, are never computed.
        actor, critic = passes[agent.actor], passes[agent.critic]
        mu, saved_actor = actor.forward(state)
        q, saved = critic.forward(state, mu)
        actor_loss = k.scale(k.mean(q, [], False), -1.0, 0.0, True)
        d_action = critic.action_grad(saved, filled(q.shape[0], 1, -1.0 / q.shape[0], q.place))
        self.adams[0].step(actor.backward(saved_actor, d_action, agent.tanh_penalty))
        # soft_update of every target at once: scale, then add tau * online through the SGD kernel (lr = -tau).
        k.scale_(self.target, 1.0 - agent.tau, 0.0, True)
        k.sgd_(self.target, filled(1, 1, -agent.tau, self.online.place), self.online, None, False)
        return critic_loss, actor_loss
