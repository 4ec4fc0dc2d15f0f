"""The update's arithmetic as explicit Paddle kernels over flat parameter buffers: the fast path of `DDPG.learn`.

At the tutorial's sizes one update is about 20 MFLOP, a fifth of a millisecond of matrix products on one
core. Autograd's graph, `nn.Layer.__call__`, the optimizer's Python wrapper and a soft update issued
parameter by parameter cost several times that. So here:

- all parameters of the online networks share one contiguous buffer and all target parameters a second one
  laid out alike (`share_flat`), so Adam is one kernel per optimizer and the soft update of every target
  network is two kernels (`FlatAdam`, `agent.soft_update`);
- forward passes keep the activations their backward passes need, and the backward passes are written out
  with Paddle's own gradient kernels (matmul_grad, relu_grad, tanh_grad): no autograd graph is built;
- biases join the matrix product (addmm) instead of a separate broadcast add, and bias gradients are
  products with a row of ones.

The math is the autograd path's (`DDPG(..., fused=False)`): tests/test_update_equivalence.py holds both paths
and the tutorial's plain update to 1e-5 after 100 updates. The layers stay the source of truth: their
parameters are views of the buffers, so `state_dict`, `set_state_dict` and `paddle.jit.save` see every update.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.networks import Actor, Critic

Layers = list[tuple[paddle.Tensor, paddle.Tensor]]  # (weight [in, out], bias [out]) per linear layer


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


def layers_of(net: Actor | Critic) -> Layers:
    return [(fc.weight, fc.bias) for fc in net.fcs]


class FlatAdam:
    """Adam over one flat parameter buffer with Paddle's adam kernel, the one `paddle.optimizer.Adam` runs.

    Its state is saved per parameter under `paramI_moment1_0`-style keys, the layout `paddle.optimizer.Adam`
    uses with parameter positions for names, so checkpoints keep one format whichever path trained them.
    """

    def __init__(self, size: int, shapes: Sequence[Sequence[int]], learning_rate: float,
                 beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.shapes = [list(s) for s in shapes]
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.learning_rate = paddle.full([1], learning_rate, dtype="float32")
        self.moment1 = paddle.zeros([size], dtype="float32")
        self.moment2 = paddle.zeros([size], dtype="float32")
        self.beta1_pow = paddle.full([1], beta1, dtype="float32")
        self.beta2_pow = paddle.full([1], beta2, dtype="float32")

    def step(self, param: paddle.Tensor, grads: Sequence[paddle.Tensor]) -> None:
        """One Adam step on the flat `param`, given one gradient per parameter in buffer order."""
        grad = _C_ops.concat([_C_ops.reshape(g, [-1]) for g in grads], 0)
        _C_ops.adam_(param, grad, self.learning_rate, self.moment1, self.moment2, None, self.beta1_pow,
                     self.beta2_pow, None, None, self.beta1, self.beta2, self.epsilon, False, 1000, False, False,
                     False)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for moment, values in (("moment1", self.moment1.numpy()), ("moment2", self.moment2.numpy())):
            offset = 0
            for i, shape in enumerate(self.shapes):
                size = int(np.prod(shape))
                out[f"param{i}_{moment}_0"] = values[offset:offset + size].reshape(shape)
                offset += size
        for i in range(len(self.shapes)):
            out[f"param{i}_beta1_pow_acc_0"] = self.beta1_pow.numpy()
            out[f"param{i}_beta2_pow_acc_0"] = self.beta2_pow.numpy()
        return out

    def set_state_dict(self, saved: dict[str, np.ndarray]) -> None:
        for moment in ("moment1", "moment2"):
            parts = [np.asarray(saved[f"param{i}_{moment}_0"], dtype=np.float32).reshape(-1)
                     for i in range(len(self.shapes))]
            getattr(self, moment).set_value(np.concatenate(parts))
        self.beta1_pow.set_value(np.asarray(saved["param0_beta1_pow_acc_0"], dtype=np.float32).reshape(1))
        self.beta2_pow.set_value(np.asarray(saved["param0_beta2_pow_acc_0"], dtype=np.float32).reshape(1))


def _affine(x: paddle.Tensor, layer: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
    weight, bias = layer
    return _C_ops.addmm(bias, x, weight, 1.0, 1.0)


@functools.cache
def _filled(rows: int, columns: int, value: float, place: str) -> paddle.Tensor:
    return paddle.full([rows, columns], value, dtype="float32")


def _bias_grad(g: paddle.Tensor) -> paddle.Tensor:
    """Column sums of g as a [1, n] product with ones: a matrix kernel, faster than Paddle's sum on CPU."""
    return _C_ops.matmul(_filled(1, g.shape[0], 1.0, str(g.place)), g, False, False)


def mse_and_grad(q: paddle.Tensor, y: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """mean((q - y)^2) and its gradient 2 (q - y) / batch."""
    error = _C_ops.subtract(q, y)
    return _C_ops.mean(_C_ops.square(error), [], False), _C_ops.scale(error, 2.0 / q.shape[0], 0.0, True)


def minus_mean_and_grad(q: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """-mean(q) (the actor's loss) and its gradient, the constant -1 / batch."""
    return _C_ops.scale(_C_ops.mean(q, [], False), -1.0, 0.0, True), _filled(q.shape[0], 1, -1.0 / q.shape[0],
                                                                             str(q.place))


def actor_forward(layers: Layers, scale: paddle.Tensor, shift: paddle.Tensor,
                  state: paddle.Tensor) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
    """mu(s) as `Actor.forward` computes it, and what `actor_backward` needs: each layer's input, then tanh."""
    saved = [state]
    x = state
    for layer in layers[:-1]:
        x = _C_ops.relu(_affine(x, layer))
        saved.append(x)
    squashed = _C_ops.tanh(_affine(x, layers[-1]))
    saved.append(squashed)
    return _C_ops.add(_C_ops.multiply(squashed, scale), shift), saved


def actor_backward(layers: Layers, saved: list[paddle.Tensor], scale: paddle.Tensor,
                   d_action: paddle.Tensor) -> list[paddle.Tensor]:
    """Gradients of the actor's parameters (w1, b1, w2, b2, ...) given dLoss/dAction."""
    g = _C_ops.tanh_grad(saved[-1], _C_ops.multiply(d_action, scale))
    grads, g = _hidden_backward(layers, saved, g, 0)
    grads += [_bias_grad(g), _C_ops.matmul(saved[0], g, True, False)]
    return grads[::-1]


class CriticLayers(NamedTuple):
    """A critic's layers, with the second layer's weight also as its two row blocks (views, not copies):
    the rows that multiply the first layer's output and the rows that multiply the action.

    Multiplying by each block and adding replaces concatenating the action to the first layer's output,
    which costs more than the small extra product on CPU.
    """

    layers: Layers
    hidden_rows: paddle.Tensor
    action_rows: paddle.Tensor


def critic_layers(net: Critic) -> CriticLayers:
    layers = layers_of(net)
    weight = layers[1][0]
    hidden = net.fcs[0].weight.shape[1]
    return CriticLayers(layers, weight._slice(0, hidden), weight._slice(hidden, weight.shape[0]))


def critic_forward(critic: CriticLayers, state: paddle.Tensor,
                   action: paddle.Tensor) -> tuple[paddle.Tensor, list[paddle.Tensor]]:
    """Q(s, a) as `Critic.forward` computes it, and for the backward each layer's input (the second layer's
    without the action), then the action."""
    layers = critic.layers
    x = _C_ops.relu(_affine(state, layers[0]))
    saved = [state, x]
    z = _C_ops.addmm(_C_ops.addmm(layers[1][1], x, critic.hidden_rows, 1.0, 1.0), action, critic.action_rows,
                     1.0, 1.0)
    for layer in layers[2:]:
        x = _C_ops.relu(z)
        saved.append(x)
        z = _affine(x, layer)
    return z, saved + [action]


def critic_backward(critic: CriticLayers, saved: list[paddle.Tensor], d_q: paddle.Tensor) -> list[paddle.Tensor]:
    """Gradients of the critic's parameters (w1, b1, w2, b2, ...) given dLoss/dQ. The second layer's weight
    comes as its two row blocks, which is its flat layout."""
    inputs, action = saved[:-1], saved[-1]
    state, first = inputs[0], inputs[1]
    grads, g = _hidden_backward(critic.layers, inputs, d_q, 1)
    d_first, d_hidden_rows = _C_ops.matmul_grad(first, critic.hidden_rows, g, False, False)
    grads += [_bias_grad(g), _C_ops.matmul(action, g, True, False), d_hidden_rows]
    g = _C_ops.relu_grad(first, d_first)
    grads += [_bias_grad(g), _C_ops.matmul(state, g, True, False)]
    return grads[::-1]


def critic_action_grad(critic: CriticLayers, saved: list[paddle.Tensor], d_q: paddle.Tensor) -> paddle.Tensor:
    """dLoss/dAction through a critic whose own gradients are not needed (the actor step)."""
    g = d_q
    for i in range(len(critic.layers) - 1, 1, -1):
        g = _C_ops.relu_grad(saved[i], _C_ops.matmul(g, critic.layers[i][0], False, True))
    return _C_ops.matmul(g, critic.action_rows, False, True)


def _hidden_backward(layers: Layers, inputs: list[paddle.Tensor], g: paddle.Tensor,
                     down_to: int) -> tuple[list[paddle.Tensor], paddle.Tensor]:
    """Backward from the gradient `g` at the last layer's output through the layers after `down_to`, whose
    inputs are ReLU outputs. Returns their parameter gradients, last layer first, and the gradient at the
    pre-activation of layer `down_to`."""
    grads = []
    for i in range(len(layers) - 1, down_to, -1):
        d_input, d_weight = _C_ops.matmul_grad(inputs[i], layers[i][0], g, False, False)
        grads += [_bias_grad(g), d_weight]
        g = _C_ops.relu_grad(inputs[i], d_input)
    return grads, g
