"""The tutorial's Actor and Critic (section 三), sized from the environment instead of hard-coded 3 and 1.

Layers keep the tutorial's names (fc1, fc2, fc3 for the default two hidden layers), so a state dict saved
by the tutorial's program and one saved here have the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from paddle_ddpg.config import Config


def _linear_stack(layer: nn.Layer, sizes_in: Sequence[int], sizes_out: Sequence[int]) -> list[nn.Linear]:
    """Register fc1..fcN on `layer` (the tutorial's names) and return them in order."""
    fcs = []
    for i, (n_in, n_out) in enumerate(zip(sizes_in, sizes_out), start=1):
        fc = nn.Linear(n_in, n_out)
        layer.add_sublayer(f"fc{i}", fc)
        fcs.append(fc)
    return fcs


TANH_MARGIN = 3.0  # past it tanh's slope is under 1%: `tanh_penalty` pulls the tanh's input back inside


class Actor(nn.Layer):
    """Deterministic policy mu(s): ReLU layers, then tanh scaled to the action bounds of each dimension.

    The tutorial's actor returned tanh in [-1, 1] and its `select_action` multiplied by 2 afterwards, so the
    replay memory held env-scale actions while the critic's targets and the actor loss used unit-scale ones.
    Scaling inside the actor gives one action scale everywhere: what the critic sees is what the env gets.
    """

    def __init__(self, state_dim: int, action_dim: int, action_low: Sequence[float], action_high: Sequence[float],
                 hidden: Sequence[int] = (256, 128)) -> None:
        super().__init__()
        self.fcs = _linear_stack(self, [state_dim, *hidden], [*hidden, action_dim])
        low = np.asarray(action_low, dtype="float32").reshape(action_dim)
        high = np.asarray(action_high, dtype="float32").reshape(action_dim)
        # Not persistable: the state dict keeps exactly the tutorial's keys; bounds come from the env.
        self.register_buffer("action_scale", paddle.to_tensor((high - low) / 2), persistable=False)
        self.register_buffer("action_bias", paddle.to_tensor((high + low) / 2), persistable=False)
        self.register_buffer("action_low", paddle.to_tensor(low), persistable=False)
        self.register_buffer("action_high", paddle.to_tensor(high), persistable=False)

    def forward(self, state: paddle.Tensor) -> paddle.Tensor:
        return self.squash(self.preactivation(state))

    def preactivation(self, state: paddle.Tensor) -> paddle.Tensor:
        """The tanh's input, which `tanh_penalty` keeps within +-TANH_MARGIN."""
        x = state
        for fc in self.fcs[:-1]:
            x = F.relu(fc(x))
        return self.fcs[-1](x)

    def squash(self, preactivation: paddle.Tensor) -> paddle.Tensor:
        return paddle.tanh(preactivation) * self.action_scale + self.action_bias


class Critic(nn.Layer):
    """Q(s, a): ReLU layers with the action joining the input of layer `action_layer`.

    1 (the default) lets the state pass one layer first, as in the tutorial and the DDPG paper; 0 feeds
    state and action together to the first layer, as in the TD3 paper and Stable-Baselines3.
    """

    def __init__(self, state_dim: int, action_dim: int, hidden: Sequence[int] = (256, 128),
                 action_layer: int = 1) -> None:
        super().__init__()
        if not 0 <= action_layer <= len(hidden):
            raise ValueError(f"action_layer must be in [0, {len(hidden)}] for {len(hidden)} hidden layers, "
                             f"got {action_layer}")
        self.action_dim = action_dim
        self.action_layer = action_layer
        self.fcs = _linear_stack(self, *critic_sizes(state_dim, action_dim, hidden, action_layer))

    def forward(self, state: paddle.Tensor, action: paddle.Tensor) -> paddle.Tensor:
        x = state
        for i, fc in enumerate(self.fcs):
            if i == self.action_layer:
                x = paddle.concat([x, action], axis=1)
            x = fc(x)
            if i < len(self.fcs) - 1:
                x = F.relu(x)
        return x


def critic_sizes(state_dim: int, action_dim: int, hidden: Sequence[int],
                 action_layer: int) -> tuple[list[int], list[int]]:
    """The (in, out) sizes of the Critic's layers: the action joins the input of layer `action_layer`."""
    sizes_in = [state_dim, *hidden]
    sizes_in[action_layer] += action_dim
    return sizes_in, [*hidden, 1]


def network_bytes(config: Config, state_dim: int, action_dim: int) -> int:
    """Memory the agent's networks take: float32 online and target weights, Adam's two moments, a gradient."""
    def count(sizes_in: Sequence[int], sizes_out: Sequence[int]) -> int:
        return sum(n_in * n_out + n_out for n_in, n_out in zip(sizes_in, sizes_out))

    critic = count(*critic_sizes(state_dim, action_dim, config.critic_hidden, config.critic_action_layer))
    actor = count([state_dim, *config.actor_hidden], [*config.actor_hidden, action_dim])
    return 4 * 5 * (actor + (2 if config.algo == "td3" else 1) * critic)
