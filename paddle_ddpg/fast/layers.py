"""The networks' forward and backward passes as explicit Paddle kernels, for the fast engine.

Forward passes keep the activations their backward passes need, and the backward passes are written out
with Paddle's own gradient kernels (matmul_grad; hardtanh_grad for the ReLUs; tanh_grad or stanh_grad), so
no autograd graph is built. Biases join the matrix product (addmm) instead of a separate broadcast add, and
bias gradients are products with a row of ones. Each function computes what `Actor.forward`,
`Critic.forward` and autograd compute; tests/test_fast.py checks every gradient against `paddle.grad`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic

# Every kernel call of the engine goes through this name, so that `Trace` can record the calls of one update.
kernels: Any = _C_ops

_FLOAT32_MAX = float(np.finfo(np.float32).max)
Layers = list[tuple[paddle.Tensor, paddle.Tensor]]  # (weight [in, out], bias [out]) per linear layer


def layers_of(net: Actor | Critic) -> Layers:
    return [(fc.weight, fc.bias) for fc in net.fcs]


def _affine(x: paddle.Tensor, layer: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
    weight, bias = layer
    return kernels.addmm(bias, x, weight, 1.0, 1.0)


@functools.cache
def filled(rows: int, columns: int, value: float, place: paddle.base.core.Place) -> paddle.Tensor:
    """A constant [rows, columns] tensor, made once: `place` (a tensor's `.place`, the device of the tensors
    it will meet) keys the cache and must be the current device. Places hash and compare by device, and
    passing one costs a third of its string."""
    return paddle.full([rows, columns], value, dtype="float32")


def _bias_grad(g: paddle.Tensor) -> paddle.Tensor:
    """Column sums of g as a [1, n] product with ones: a matrix kernel, faster than Paddle's sum on CPU."""
    return kernels.matmul(filled(1, g.shape[0], 1.0, g.place), g, False, False)


def mse_and_grad(q: paddle.Tensor, y: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """mean((q - y)^2) and its gradient 2 (q - y) / batch."""
    error = kernels.subtract(q, y)
    return kernels.mean(kernels.square(error), [], False), kernels.scale(error, 2.0 / q.shape[0], 0.0, True)


def minus_mean_and_grad(q: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """-mean(q) (the actor's loss) and its gradient, the constant -1 / batch."""
    loss = kernels.scale(kernels.mean(q, [], False), -1.0, 0.0, True)
    return loss, filled(q.shape[0], 1, -1.0 / q.shape[0], q.place)


class ActorLayers(NamedTuple):
    """An actor's layers and its output's affine map onto the action bounds, tanh(z) * scale + shift.

    `symmetric_scale` is the scale as one number when every dimension has the same bounds centred on zero
    (Pendulum's [-2, 2], MuJoCo's [-1, 1]): then one `stanh` kernel (scale * tanh(z)) does the work of tanh,
    multiply and add, and one `stanh_grad` the backward's two.
    """

    layers: Layers
    scale: paddle.Tensor
    shift: paddle.Tensor
    symmetric_scale: float | None


def actor_layers(net: Actor) -> ActorLayers:
    scale, shift = net.action_scale.numpy(), net.action_bias.numpy()
    symmetric = bool(np.all(scale == scale[0]) and np.all(shift == 0))
    return ActorLayers(layers_of(net), net.action_scale, net.action_bias, float(scale[0]) if symmetric else None)


def actor_forward(actor: ActorLayers, state: paddle.Tensor) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
    """mu(s) as `Actor.forward` computes it, and what `actor_backward` needs: each layer's input, then the
    output layer's pre-activation, then (bounds not alike and centred) its tanh."""
    saved = [state]
    x = state
    for layer in actor.layers[:-1]:
        x = kernels.relu(_affine(x, layer))
        saved.append(x)
    z = _affine(x, actor.layers[-1])
    if actor.symmetric_scale is not None:
        return kernels.stanh(z, 1.0, actor.symmetric_scale), saved + [z]
    squashed = kernels.tanh(z)
    return kernels.add(kernels.multiply(squashed, actor.scale), actor.shift), saved + [z, squashed]


def actor_backward(actor: ActorLayers, saved: list[paddle.Tensor], d_action: paddle.Tensor,
                   tanh_penalty: float = 0.0) -> list[paddle.Tensor]:
    """Gradients of the actor's parameters (w1, b1, w2, b2, ...) given dLoss/dAction, with the gradient of
    `tanh_penalty` * mean(excess ** 2) added, excess being how far the tanh's input z goes past +-TANH_MARGIN."""
    n = len(actor.layers)
    z = saved[n]
    if actor.symmetric_scale is not None:
        g = kernels.stanh_grad(z, d_action, 1.0, actor.symmetric_scale)
    else:
        g = kernels.tanh_grad(saved[-1], kernels.multiply(d_action, actor.scale))
    if tanh_penalty:
        excess = kernels.subtract(z, kernels.clip(z, -TANH_MARGIN, TANH_MARGIN))
        g = kernels.add(g, kernels.scale(excess, 2.0 * tanh_penalty / (z.shape[0] * z.shape[1]), 0.0, True))
    return _backward(actor.layers, saved[:n], g)


class CriticLayers(NamedTuple):
    """A critic's layers, with the weight of the layer the action joins also as its two row blocks (views,
    not copies): the rows that multiply that layer's other input and the rows that multiply the action.

    Multiplying by each block and adding replaces concatenating the action to the input, which costs more
    than the small extra product on CPU.
    """

    layers: Layers
    action_layer: int
    input_rows: paddle.Tensor
    action_rows: paddle.Tensor


def critic_layers(net: Critic) -> CriticLayers:
    layers = layers_of(net)
    weight = layers[net.action_layer][0]
    split = weight.shape[0] - net.action_dim
    return CriticLayers(layers, net.action_layer, weight._slice(0, split), weight._slice(split, weight.shape[0]))


def critic_forward(critic: CriticLayers, state: paddle.Tensor,
                   action: paddle.Tensor) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
    """Q(s, a) as `Critic.forward` computes it, and for the backward each layer's input (without the
    action), then the action."""
    layers = critic.layers
    x, saved = state, []
    for i, layer in enumerate(layers):
        saved.append(x)
        if i == critic.action_layer:
            z = kernels.addmm(kernels.addmm(layer[1], x, critic.input_rows, 1.0, 1.0), action, critic.action_rows,
                             1.0, 1.0)
        else:
            z = _affine(x, layer)
        if i < len(layers) - 1:
            x = kernels.relu(z)
    return z, saved + [action]


def critic_backward(critic: CriticLayers, saved: list[paddle.Tensor], d_q: paddle.Tensor) -> list[paddle.Tensor]:
    """Gradients of the critic's parameters (w1, b1, w2, b2, ...) given dLoss/dQ."""
    return _backward(critic.layers, saved[:-1], d_q, (critic.action_layer, critic.input_rows, saved[-1]))


def critic_action_grad(critic: CriticLayers, saved: list[paddle.Tensor], d_q: paddle.Tensor) -> paddle.Tensor:
    """dLoss/dAction through a critic whose own gradients are not needed (the actor step)."""
    g = d_q
    for i in range(len(critic.layers) - 1, critic.action_layer, -1):
        g = _relu_grad(saved[i], kernels.matmul(g, critic.layers[i][0], False, True))
    return kernels.matmul(g, critic.action_rows, False, True)


def _relu_grad(out: paddle.Tensor, g: paddle.Tensor) -> paddle.Tensor:
    """g where the ReLU's output is positive, else 0, as relu_grad computes it, through the kernel of
    hardtanh's gradient (g where t_min < out < t_max) with the range (0, float32's largest), which is
    faster than relu_grad on CPU (benchmarks/README.md) and gives the same values. Only an activation of
    float32's largest or inf, which has diverged anyway, gets 0."""
    return kernels.hardtanh_grad(out, g, 0.0, _FLOAT32_MAX)


def _backward(layers: Layers, inputs: list[paddle.Tensor], g: paddle.Tensor,
              join: tuple[int, paddle.Tensor, paddle.Tensor] | None = None) -> list[paddle.Tensor]:
    """Parameter gradients (w1, b1, w2, b2, ...) of linear layers with ReLUs between them, given the gradient
    `g` at the last layer's output and each layer's input (the first, the network's input, needs none).

    `join` is (layer, the rows of its weight that multiply its input, action) for a critic, whose action
    joins that layer's input: the action's rows get their gradient from the action.
    """
    grads = []
    for i in range(len(layers) - 1, -1, -1):
        joined = join is not None and i == join[0]
        weight = join[1] if joined else layers[i][0]
        if i > 0:
            d_input, d_weight = kernels.matmul_grad(inputs[i], weight, g, False, False)
        else:
            d_weight = kernels.matmul(inputs[0], g, True, False)
        if joined:
            d_weight = kernels.concat([d_weight, kernels.matmul(join[2], g, True, False)], 0)
        grads += [_bias_grad(g), d_weight]
        if i > 0:
            g = _relu_grad(inputs[i], d_input)
    return grads[::-1]
