"""The networks' forward and backward passes in Paddle's kernels, so that no autograd graph is built: biases join
the matrix product (addmm), bias gradients are products with a row of ones, and the backward uses Paddle's own
gradient kernels. tests/test_fast.py holds every pass equal to the layers and to `paddle.grad`.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic

kernels: Any = _C_ops  # every kernel call of the engine goes through this name, so that `Trace` can record it
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@functools.cache
def filled(rows: int, columns: int, value: float, place: paddle.base.core.Place) -> paddle.Tensor:
    """A constant tensor, made once per `place` (the current device, as a tensor's `.place`: cheap to hash)."""
    return paddle.full([rows, columns], value, dtype="float32")


def relu_grad(out: paddle.Tensor, g: paddle.Tensor) -> paddle.Tensor:
    """relu_grad's values from hardtanh_grad over (0, float32's largest), faster on CPU; 0 for a diverged input."""
    return kernels.hardtanh_grad(out, g, 0.0, _FLOAT32_MAX)


class _Stack:
    """A network's linear layers with ReLUs between them. A critic's action joins the input of layer `join`
    through that weight's last rows (a view): a second product added costs less than a concatenation."""

    join = -1

    def __init__(self, net: Actor | Critic) -> None:
        self.layers = [(fc.weight, fc.bias) for fc in net.fcs]

    def forward(self, x: paddle.Tensor, action: paddle.Tensor | None = None) -> tuple[paddle.Tensor, list]:
        """The last layer's output, and for `backward` each layer's input, then (a critic's) the action."""
        inputs = []
        for i, (weight, bias) in enumerate(self.layers):
            inputs.append(x)
            z = kernels.addmm(bias, x, self.input_rows if i == self.join else weight, 1.0, 1.0)
            if i == self.join:
                z = kernels.addmm(z, action, self.action_rows, 1.0, 1.0)
            x = kernels.relu(z) if i < len(self.layers) - 1 else z
        return z, inputs if action is None else inputs + [action]

    def backward(self, saved: list[paddle.Tensor], g: paddle.Tensor) -> list[paddle.Tensor]:
        """Gradients (w1, b1, w2, b2, ...) from `g`, the gradient at the last layer's output."""
        grads = []
        for i in range(len(self.layers) - 1, -1, -1):
            weight = self.input_rows if i == self.join else self.layers[i][0]
            if i:
                d_input, d_weight = kernels.matmul_grad(saved[i], weight, g, False, False)
            else:
                d_weight = kernels.matmul(saved[0], g, True, False)
            if i == self.join:
                d_weight = kernels.concat([d_weight, kernels.matmul(saved[len(self.layers)], g, True, False)], 0)
            grads += [kernels.matmul(filled(1, g.shape[0], 1.0, g.place), g, False, False), d_weight]
            if i:
                g = relu_grad(saved[i], d_input)
        return grads[::-1]


class ActorPass(_Stack):
    """`Actor`: tanh(z) * scale + shift. With bounds alike and centred on zero (Pendulum's, MuJoCo's) one stanh
    kernel does tanh, multiply and add, and one stanh_grad their backward."""

    def __init__(self, net: Actor) -> None:
        super().__init__(net)
        self.scale, self.shift = net.action_scale, net.action_bias
        scale, shift = self.scale.numpy(), self.shift.numpy()
        self.symmetric_scale = float(scale[0]) if np.all(scale == scale[0]) and not shift.any() else None

    def forward(self, state: paddle.Tensor, action: None = None) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
        """mu(s), and for `backward` each layer's input, then z, then (bounds not alike and centred) tanh(z)."""
        z, saved = super().forward(state)
        if self.symmetric_scale is not None:
            return kernels.stanh(z, 1.0, self.symmetric_scale), saved + [z]
        squashed = kernels.tanh(z)
        return kernels.add(kernels.multiply(squashed, self.scale), self.shift), saved + [z, squashed]

    def backward(self, saved: list[paddle.Tensor], d_action: paddle.Tensor, tanh_penalty: float = 0.0) -> list:
        """Gradients given dLoss/dAction, plus those of `tanh_penalty` * mean(square of z past +-TANH_MARGIN)."""
        z = saved[len(self.layers)]
        if self.symmetric_scale is not None:
            g = kernels.stanh_grad(z, d_action, 1.0, self.symmetric_scale)
        else:
            g = kernels.tanh_grad(saved[-1], kernels.multiply(d_action, self.scale))
        if tanh_penalty:
            excess = kernels.subtract(z, kernels.clip(z, -TANH_MARGIN, TANH_MARGIN))
            g = kernels.add(g, kernels.scale(excess, 2.0 * tanh_penalty / (z.shape[0] * z.shape[1]), 0.0, True))
        return super().backward(saved, g)


class CriticPass(_Stack):
    """`Critic`: Q(s, a), the action joining the input of layer `action_layer`."""

    def __init__(self, net: Critic) -> None:
        super().__init__(net)
        self.join = net.action_layer
        weight = self.layers[self.join][0]
        split = weight.shape[0] - net.action_dim
        self.input_rows, self.action_rows = weight._slice(0, split), weight._slice(split, weight.shape[0])

    def action_grad(self, saved: list[paddle.Tensor], d_q: paddle.Tensor) -> paddle.Tensor:
        """dLoss/dAction without the critic's own gradients, which the actor step does not need."""
        g = d_q
        for i in range(len(self.layers) - 1, self.join, -1):
            g = relu_grad(saved[i], kernels.matmul(g, self.layers[i][0], False, True))
        return kernels.matmul(g, self.action_rows, False, True)
