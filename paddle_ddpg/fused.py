"""The update's arithmetic as explicit Paddle kernels over flat parameter buffers: the fast path of `DDPG.learn`.

At the tutorial's sizes one update is about 20 MFLOP, a fifth of a millisecond of matrix products on one
core. Autograd's graph, `nn.Layer.__call__`, the optimizer's Python wrapper and a soft update issued
parameter by parameter cost several times that. So here:

- all parameters of the online networks share one contiguous buffer and all target parameters a second one
  laid out alike (`share_flat`), so the soft update of every target network is two kernels
  (`agent.soft_update`), and Adam is one merged kernel per optimizer (`MergedAdam`);
- forward passes keep the activations their backward passes need, and the backward passes are written out
  with Paddle's own gradient kernels (matmul_grad, hardtanh_grad for the ReLUs, tanh_grad or stanh_grad):
  no autograd graph is built;
- biases join the matrix product (addmm) instead of a separate broadcast add, and bias gradients are
  products with a row of ones.

The math is the autograd path's (`DDPG(..., fused=False)`): tests/test_update_equivalence.py holds both paths
and the tutorial's plain update to 1e-5 after 100 updates. The layers stay the source of truth: their
parameters are views of the buffers, so `state_dict`, `set_state_dict` and `paddle.jit.save` see every update.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import paddle
from paddle import _C_ops

from paddle_ddpg.networks import TANH_MARGIN, Actor, Critic

# Every explicit kernel call goes through this name, so that `Trace` can record the calls of one update.
kernels: Any = _C_ops

_FLOAT32_MAX = float(np.finfo(np.float32).max)
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


class MergedAdam:
    """Adam over a network's parameters in one call of Paddle's merged Adam kernel, the multi-tensor kernel
    behind `paddle.optimizer.Adam(use_multi_tensor=True)`. At the tutorial's sizes it takes about a third of
    the time of concatenating the gradients for a single `adam_` call over the flat buffer.

    Its state is saved per parameter under `paramI_moment1_0`-style keys, the layout `paddle.optimizer.Adam`
    uses with parameter positions for names, so checkpoints keep one format whichever path trained them.
    """

    def __init__(self, params: Sequence[paddle.Tensor], learning_rate: float, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.params = list(params)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.learning_rate = paddle.full([1], learning_rate, dtype="float32")
        self.moment1 = [paddle.zeros(p.shape, dtype="float32") for p in self.params]
        self.moment2 = [paddle.zeros(p.shape, dtype="float32") for p in self.params]
        # One power of each beta per parameter: the kernel advances every one it is given.
        self.beta1_pow = [paddle.full([1], beta1, dtype="float32") for _ in self.params]
        self.beta2_pow = [paddle.full([1], beta2, dtype="float32") for _ in self.params]

    def step(self, grads: Sequence[paddle.Tensor]) -> None:
        """One Adam step, given one gradient per parameter in `params` order."""
        with paddle.no_grad():
            kernels.merged_adam_(self.params, list(grads), [self.learning_rate] * len(self.params), self.moment1,
                                self.moment2, None, self.beta1_pow, self.beta2_pow, None, self.beta1, self.beta2,
                                self.epsilon, False, False, False)

    def state_dict(self) -> dict[str, np.ndarray]:
        out = {}
        for i in range(len(self.params)):
            out[f"param{i}_moment1_0"] = self.moment1[i].numpy()
            out[f"param{i}_moment2_0"] = self.moment2[i].numpy()
            out[f"param{i}_beta1_pow_acc_0"] = self.beta1_pow[i].numpy()
            out[f"param{i}_beta2_pow_acc_0"] = self.beta2_pow[i].numpy()
        return out

    def set_state_dict(self, saved: dict[str, np.ndarray]) -> None:
        for i in range(len(self.params)):
            for name in ("moment1", "moment2", "beta1_pow", "beta2_pow"):
                target = getattr(self, name)[i]
                key = f"param{i}_{name}_0" if name.startswith("moment") else f"param{i}_{name}_acc_0"
                target.set_value(np.asarray(saved[key], dtype=np.float32).reshape(target.shape))


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
    hardtanh's gradient (g where t_min < out < t_max) with the range (0, float32's largest): 2-4 times
    faster than Paddle's relu_grad on CPU (16 against 70 us at 256x400, 2.5 against 6.6 at 32x256), the
    same values. Only an activation of float32's largest or inf, which has diverged anyway, gets 0."""
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


class Trace:
    """The kernel calls of one run of `update`, replayed as a straight-line Python function.

    Around its kernels an update runs Python: loops over layers, NamedTuple fields, constant look-ups,
    function calls; about 1 us per kernel, a tenth of an update at the tutorial's sizes. But every update of
    one batch size calls the same kernels on the same tensors: parameters and Adam's moments are updated in
    place, inputs are copied into kept tensors (`DDPG._fill`) and constants are made once. So `Trace` runs
    `update` once with `kernels` recording each call, and writes the calls out as the body of one function
    (`source`), with the tensors that existed before each call as constants and the others as local
    variables. `run()` then calls the kernels alone.

    Whatever else `update` computes is fixed by the recording: it must draw no random numbers, read no tensor
    values and make no tensor but through `kernels`, and it must return only tensors that kernels made
    (checked). Anything that changes between calls (the batch size, tau, gamma, whether the actor steps)
    belongs in the key under which the caller keeps its traces. Recording swaps the module's `kernels`, so
    two threads must not record at once.
    """

    def __init__(self, update: Callable[[], tuple[paddle.Tensor, ...]]) -> None:
        global kernels
        self._names: dict[int, str] = {}  # id of each tensor seen -> its name in the source
        self._namespace: dict[str, Any] = {}  # the kernels and constants the source refers to
        self._calls: list[tuple[str, list[str], list[str]]] = []  # each call's line, variables read and made
        self._reads: list[str] = []  # the variables read by the call being recorded
        self._made: list[str] = []  # and those it makes
        self._seen: list[Any] = []  # keeps every recorded value alive, so that no id is reused meanwhile
        kernels = self
        try:
            self.outputs = update()
        finally:
            kernels = _C_ops
        made = {name for _, _, names in self._calls for name in names}
        returned = [self._names.get(id(t), "") for t in self.outputs]
        if not all(name in made for name in returned):
            raise ValueError("a traced update must return tensors its kernels made")
        self.source = "def run():\n" + "".join(f"    {line}\n" for line in self._body(made - set(returned)))
        self.source += f"    return ({''.join(name + ', ' for name in returned)})\n"
        exec(compile(self.source, "<traced update>", "exec"), self._namespace)
        self.run: Callable[[], tuple[paddle.Tensor, ...]] = self._namespace["run"]
        self._seen = []

    def _body(self, temporaries: set[str]) -> list[str]:
        """The calls, each temporary deleted after the last call that reads it: as in eager code, its memory
        goes back to the allocator while the next tensors are made. Keeping every activation alive to the
        end made the 400-300 update at batch 256 5-30% slower than the untraced one (two runs); deleting
        them, as here, made it as fast or faster."""
        last_use = {}
        for i, (_, reads, made) in enumerate(self._calls):  # a result nothing reads dies where it is made
            last_use.update((name, i) for name in made + reads if name in temporaries)
        dying: dict[int, list[str]] = {}
        for name, i in last_use.items():
            dying.setdefault(i, []).append(name)
        body = []
        for i, (line, _, _) in enumerate(self._calls):
            body += [line] + (["del " + ", ".join(dying[i])] if i in dying else [])
        return body

    def __getattr__(self, op: str) -> Callable[..., Any]:
        kernel = getattr(_C_ops, op)
        self._namespace[op] = kernel

        def record(*args: Any) -> Any:
            self._reads, self._made = [], []
            arguments = ", ".join(self._argument(a) for a in args)
            result = kernel(*args)
            self._seen.append(result)
            self._calls.append((f"{self._target(result)} = {op}({arguments})", self._reads, self._made))
            return result

        return record

    def _argument(self, value: Any) -> str:
        if isinstance(value, paddle.Tensor):
            if id(value) not in self._names:  # made before the recording or outside kernels: a constant
                self._names[id(value)] = name = f"c{len(self._names)}"
                self._namespace[name] = value
                self._seen.append(value)
            self._reads.append(self._names[id(value)])
            return self._names[id(value)]
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(self._argument(v) for v in value) + "]"
        if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and np.isfinite(value)):
            return repr(value)
        raise TypeError(f"cannot trace a kernel argument of type {type(value).__name__}")

    def _target(self, result: Any) -> str:
        if isinstance(result, paddle.Tensor) and id(result) not in self._names:
            self._names[id(result)] = name = f"v{len(self._names)}"
            self._made.append(name)
            return name
        if isinstance(result, (list, tuple)):
            parts = [self._target(r) for r in result]
            if any(part != "_" for part in parts):
                return "(" + "".join(part + ", " for part in parts) + ")"
        return "_"
