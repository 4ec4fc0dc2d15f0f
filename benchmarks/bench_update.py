"""Milliseconds per DDPG update and per action selection: paddle_ddpg's engines against PyTorch eager and JAX jit.

The sides, all with the same network sizes, batches (numpy arrays, converted inside the timed call), Adam
(learning rate 1e-3), MSE critic loss, actor loss -Q(s, mu(s)) and soft update:

  fast         `DDPG` with `paddle_ddpg.fast.accelerate`, through `learn` and `select_action` as training calls them
  fast_untraced
               the same engine with its recorded updates (`paddle_ddpg.fast.trace`) turned off: each update runs
               the engine's Python around its kernels; only when --sides names it
  plain        `DDPG` as it is: agent.py's layers, autograd and `paddle.optimizer.Adam`
  torch_eager  the update as a PyTorch user writes it: eager, default optimizer settings, default thread count
               unless --torch-threads says otherwise; skipped with a note where PyTorch is not installed
  jax_jit      CleanRL's JAX DDPG (ddpg_continuous_action_jax.py): a jit-compiled critic update and a
               jit-compiled actor update holding the soft updates, here in plain JAX with Adam written out
               (optax's arithmetic), so that JAX alone is needed; skipped with a note where it is not installed
  compiled_losses, compiled_whole
               the plain agent's update compiled by Paddle's `paddle.jit.to_static` in the two ways of
               benchmarks/compiled_update.py; only when --sides names them

Paddle runs on the package's default CPU threads (one below batch 64, else up to 2) unless --threads says
otherwise. Sides are interleaved in one process, in alternating order, so all see the same machine state; each
block of updates starts after a pause (SETTLE_SECONDS) in which the previous side's idle threads stop spinning.
Medians over blocks are reported, and each ratio also block by block.

    python benchmarks/bench_update.py                  # tutorial nets @ batch 32, 400-300 nets @ batch 256
    python benchmarks/bench_update.py --case 64,64@128 --repeats 9
    python benchmarks/bench_update.py --sides fast plain compiled_losses compiled_whole \
        --out benchmarks/results/update_compiled.json
    python benchmarks/bench_update.py --sides fast fast_untraced --out benchmarks/results/update_trace.json
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from paddle_ddpg import fast
from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.device import cpu_threads, set_device, usable_cpus
from paddle_ddpg.fast import engine
from paddle_ddpg.memory import Batch

try:
    import jax
    import jax.numpy as jnp
except ImportError:
    jax = None
try:
    import torch
    import torch.nn as tnn
    import torch.nn.functional as tF
except ImportError:
    torch = None

STATE_DIM, ACTION_DIM, GAMMA, TAU, LR = 3, 1, 0.99, 0.005, 1e-3  # Pendulum's sizes
BETA1, BETA2, EPSILON = 0.9, 0.999, 1e-8  # Adam's defaults in Paddle, PyTorch and optax alike
SETTLE_SECONDS = 0.25  # longer than the OpenMP runtimes keep idle threads spinning (Intel's: 200 ms)
SIDES = ("fast", "fast_untraced", "plain", "torch_eager", "jax_jit", "compiled_losses", "compiled_whole")
DEFAULT_SIDES = ("fast", "plain", "torch_eager", "jax_jit")
# Speedups reported: (side, reference), each the reference's median time over the side's.
SPEEDUPS = (("fast", "torch_eager"), ("fast", "jax_jit"), ("plain", "torch_eager"), ("fast", "plain"),
            ("jax_jit", "torch_eager"), ("compiled_losses", "plain"), ("compiled_whole", "plain"),
            ("fast", "compiled_losses"), ("fast", "compiled_whole"), ("fast", "fast_untraced"))


@dataclass
class Side:
    """One implementation under test: `update` takes a Batch, `act` one state; `sync` waits for work queued
    by asynchronous dispatch (JAX's) so that a timed block ends when its work is done."""

    update: Callable[[Batch], Any]
    act: Callable[[np.ndarray], np.ndarray]
    sync: Callable[[], None] = lambda: None


def torch_side(hidden: tuple[int, int]) -> Side:
    """The tutorial's networks as a PyTorch user writes them (defined here: PyTorch may be absent)."""

    class TorchActor(tnn.Module):
        def __init__(self, hidden: tuple[int, int]) -> None:
            super().__init__()
            self.fc1, self.fc2 = tnn.Linear(STATE_DIM, hidden[0]), tnn.Linear(hidden[0], hidden[1])
            self.fc3 = tnn.Linear(hidden[1], ACTION_DIM)

        def forward(self, s: torch.Tensor) -> torch.Tensor:
            return 2.0 * torch.tanh(self.fc3(tF.relu(self.fc2(tF.relu(self.fc1(s))))))

    class TorchCritic(tnn.Module):
        def __init__(self, hidden: tuple[int, int]) -> None:
            super().__init__()
            self.fc1, self.fc2 = tnn.Linear(STATE_DIM, hidden[0]), tnn.Linear(hidden[0] + ACTION_DIM, hidden[1])
            self.fc3 = tnn.Linear(hidden[1], 1)

        def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
            x = torch.cat([tF.relu(self.fc1(s)), a], dim=1)
            return self.fc3(tF.relu(self.fc2(x)))

    actor, critic = TorchActor(hidden), TorchCritic(hidden)
    actor_target, critic_target = TorchActor(hidden), TorchCritic(hidden)
    actor_target.load_state_dict(actor.state_dict())
    critic_target.load_state_dict(critic.state_dict())
    actor_optim = torch.optim.Adam(actor.parameters(), lr=LR)
    critic_optim = torch.optim.Adam(critic.parameters(), lr=LR)

    def update(batch: Batch) -> None:
        s, a, r, s2, d = (torch.from_numpy(x) for x in batch)
        with torch.no_grad():
            y = r + GAMMA * (1 - d) * critic_target(s2, actor_target(s2))
        critic_loss = tF.mse_loss(critic(s, a), y)
        critic_optim.zero_grad()
        critic_loss.backward()
        critic_optim.step()
        actor_loss = -critic(s, actor(s)).mean()
        actor_optim.zero_grad()
        actor_loss.backward()
        actor_optim.step()
        with torch.no_grad():
            for net, target in ((actor, actor_target), (critic, critic_target)):
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.mul_(1 - TAU).add_(p, alpha=TAU)

    def act(state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return actor(torch.as_tensor(state[None], dtype=torch.float32))[0].numpy()

    return Side(update, act)


def jax_side(hidden: tuple[int, int]) -> Side:
    """CleanRL's JAX DDPG update: parameters as pytrees, `jax.value_and_grad` of the losses, Adam, and
    target <- tau * source + (1 - tau) * target, in two jitted functions called once each per update."""
    Params = list[tuple[Any, Any]]  # (weight [in, out], bias [out]) per layer

    def dense(key: Any, n_in: int, n_out: int) -> tuple[Any, Any]:
        bound = 1 / np.sqrt(n_in)  # PyTorch's and Paddle's default range for both weight and bias
        k_w, k_b = jax.random.split(key)
        return (jax.random.uniform(k_w, (n_in, n_out), minval=-bound, maxval=bound),
                jax.random.uniform(k_b, (n_out,), minval=-bound, maxval=bound))

    def mlp(key: Any, sizes_in: list[int], sizes_out: list[int]) -> Params:
        return [dense(k, i, o) for k, i, o in zip(jax.random.split(key, len(sizes_in)), sizes_in, sizes_out)]

    def actor_apply(params: Params, s: Any) -> Any:
        (w1, b1), (w2, b2), (w3, b3) = params
        return 2.0 * jnp.tanh(jax.nn.relu(jax.nn.relu(s @ w1 + b1) @ w2 + b2) @ w3 + b3)

    def critic_apply(params: Params, s: Any, a: Any) -> Any:
        (w1, b1), (w2, b2), (w3, b3) = params
        x = jnp.concatenate([jax.nn.relu(s @ w1 + b1), a], axis=1)
        return jax.nn.relu(x @ w2 + b2) @ w3 + b3

    def adam_init(params: Params) -> tuple[Any, Any, Any]:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return zeros, zeros, jnp.zeros((), jnp.int32)

    def adam(params: Params, grads: Params, state: tuple[Any, Any, Any]) -> tuple[Params, tuple[Any, Any, Any]]:
        """optax.adam's update: bias-corrected moments, epsilon added outside the square root."""
        m, v, count = state
        count = count + 1
        m = jax.tree_util.tree_map(lambda m, g: BETA1 * m + (1 - BETA1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: BETA2 * v + (1 - BETA2) * g * g, v, grads)
        m_scale, v_scale = 1 / (1 - BETA1 ** count), 1 / (1 - BETA2 ** count)
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - LR * (m * m_scale) / (jnp.sqrt(v * v_scale) + EPSILON), params, m, v)
        return params, (m, v, count)

    def soft_update(source: Params, target: Params) -> Params:
        return jax.tree_util.tree_map(lambda p, tp: TAU * p + (1 - TAU) * tp, source, target)

    @jax.jit
    def update_critic(s: Any, a: Any, r: Any, s2: Any, d: Any, actor_target: Params, critic: Params,
                      critic_target: Params, critic_opt: Any) -> tuple[Any, Params, Any]:
        y = r + GAMMA * (1 - d) * critic_apply(critic_target, s2, actor_apply(actor_target, s2))

        def mse(params: Params) -> Any:
            return jnp.mean((critic_apply(params, s, a) - y) ** 2)

        loss, grads = jax.value_and_grad(mse)(critic)
        critic, critic_opt = adam(critic, grads, critic_opt)
        return loss, critic, critic_opt

    @jax.jit
    def update_actor(s: Any, actor: Params, actor_target: Params, critic: Params, critic_target: Params,
                     actor_opt: Any) -> tuple[Any, Params, Any, Params, Params]:
        def minus_q(params: Params) -> Any:
            return -jnp.mean(critic_apply(critic, s, actor_apply(params, s)))

        loss, grads = jax.value_and_grad(minus_q)(actor)
        actor, actor_opt = adam(actor, grads, actor_opt)
        return loss, actor, actor_opt, soft_update(actor, actor_target), soft_update(critic, critic_target)

    actor_key, critic_key = jax.random.split(jax.random.PRNGKey(0))
    actor = mlp(actor_key, [STATE_DIM, hidden[0], hidden[1]], [hidden[0], hidden[1], ACTION_DIM])
    critic = mlp(critic_key, [STATE_DIM, hidden[0] + ACTION_DIM, hidden[1]], [hidden[0], hidden[1], 1])
    nets = {"actor": actor, "critic": critic, "actor_target": actor, "critic_target": critic,
            "actor_opt": adam_init(actor), "critic_opt": adam_init(critic)}
    act_jit = jax.jit(actor_apply)

    def update(batch: Batch) -> None:
        s, a, r, s2, d = batch
        _, nets["critic"], nets["critic_opt"] = update_critic(
            s, a, r, s2, d, nets["actor_target"], nets["critic"], nets["critic_target"], nets["critic_opt"])
        _, nets["actor"], nets["actor_opt"], nets["actor_target"], nets["critic_target"] = update_actor(
            s, nets["actor"], nets["actor_target"], nets["critic"], nets["critic_target"], nets["actor_opt"])

    def act(state: np.ndarray) -> np.ndarray:
        return np.asarray(act_jit(nets["actor"], state[None]))[0]

    return Side(update, act, lambda: jax.block_until_ready(nets))


def paddle_agent(hidden: tuple[int, int]) -> DDPG:
    return DDPG(STATE_DIM, ACTION_DIM, [-2.0], [2.0], Config(actor_hidden=hidden, critic_hidden=hidden,
                                                            lr_actor=LR, lr_critic=LR, tau=TAU, gamma=GAMMA))


def paddle_side(agent: DDPG) -> Side:
    return Side(agent.learn, lambda state: agent.select_action(state, 0.0))


class Untraced:
    """In place of `paddle_ddpg.fast.trace.Trace`: the update's Python runs at every call instead of a replay
    of the kernel calls it made the first time."""

    def __init__(self, update: Callable[[], tuple[paddle.Tensor, ...]]) -> None:
        self.run = update
        self.outputs = update()


def fast_side(hidden: tuple[int, int], batch_size: int, traced: bool = True) -> Side:
    """The fast engine; untraced, its one kind of update (this batch size, DDPG's actor step every time) is
    made once with `Untraced` standing in for `Trace`, and kept."""
    agent = paddle_agent(hidden)
    if (reason := fast.accelerate(agent)) is not None:
        raise SystemExit(f"the fast engine cannot run here: {reason}")
    if not traced:
        recorder, engine.Trace = engine.Trace, Untraced
        try:
            agent.learn(random_batches(1, batch_size, np.random.default_rng(1))[0])
        finally:
            engine.Trace = recorder
    return paddle_side(agent)


def make_sides(names: list[str], hidden: tuple[int, int],
               batch_size: int) -> tuple[dict[str, Side], dict[str, Any]]:
    """The sides asked for, and what was learned making them (the compiled updates' difference from plain)."""
    sides, notes = {}, {}
    for name in names:
        if name == "fast":
            sides[name] = fast_side(hidden, batch_size)
        elif name == "plain":
            sides[name] = paddle_side(paddle_agent(hidden))
        elif name == "fast_untraced":
            sides[name] = fast_side(hidden, batch_size, traced=False)
        elif name == "torch_eager":
            if torch is None:
                notes["torch_eager"] = "skipped: torch is not installed (the [bench] extra)"
                print(notes["torch_eager"])
            else:
                sides[name] = torch_side(hidden)
        elif name == "jax_jit":
            if jax is None:
                notes["jax_jit"] = "skipped: jax is not installed (pip install jax jaxlib, or the [bench] extra)"
                print(notes["jax_jit"])
            else:
                sides[name] = jax_side(hidden)
        else:
            import compiled_update  # beside this file; imported here as only these sides need it

            mode = name.removeprefix("compiled_")
            agent = paddle_agent(hidden)
            compiled_update.compile_update(agent, mode)
            sides[name] = paddle_side(agent)
            notes[name] = {"mode": mode, "max_difference_from_plain_after_50_updates":
                           compiled_update.difference_from_plain(hidden, mode, 50, batch_size)}
    return sides, notes


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[Batch]:
    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)
    return [Batch(f(batch_size, STATE_DIM), np.clip(f(batch_size, ACTION_DIM), -2, 2), f(batch_size, 1),
                  f(batch_size, STATE_DIM), np.zeros((batch_size, 1), np.float32)) for _ in range(n)]


def ms_per_call(fn: Callable[[Any], Any], sync: Callable[[], None], args: list, iters: int) -> float:
    time.sleep(SETTLE_SECONDS)
    for x in args[:10]:
        fn(x)
    sync()
    start = time.perf_counter()
    for i in range(iters):
        fn(args[i % len(args)])
    sync()
    return (time.perf_counter() - start) / iters * 1e3


def speedups(times: dict[str, dict[str, list[float]]], med: dict[str, dict[str, float]]) -> dict[str, Any]:
    """For each (side, reference) pair present: the reference's median time over the side's, and the same
    ratio block by block (each block's two timings were taken moments apart), as median, min and max."""
    out = {}
    for side, ref in SPEEDUPS:
        if side in med and ref in med:
            blocks = [r / s for s, r in zip(times[side]["update"], times[ref]["update"])]
            out[f"{side}_vs_{ref}"] = {"of_medians": med[ref]["update"] / med[side]["update"],
                                       "blocks_median": statistics.median(blocks), "blocks_min": min(blocks),
                                       "blocks_max": max(blocks)}
    return out


def run_case(hidden: tuple[int, int], batch_size: int, names: list[str], repeats: int, iters: int,
             threads: int) -> dict[str, Any]:
    set_device("cpu")
    fast.set_cpu_threads(cpu_threads(threads, batch_size))  # what training at this batch size would use
    rng = np.random.default_rng(0)
    batches = random_batches(64, batch_size, rng)
    states = [rng.standard_normal(STATE_DIM).astype(np.float32) for _ in range(64)]
    sides, notes = make_sides(names, hidden, batch_size)
    times: dict[str, dict[str, list[float]]] = {name: {"update": [], "act": []} for name in sides}
    for r in range(repeats):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))  # no side always goes first
        for name in order:
            side = sides[name]
            times[name]["update"].append(ms_per_call(side.update, side.sync, batches, iters))
            times[name]["act"].append(ms_per_call(side.act, side.sync, states, iters * 4))
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    return {"hidden": list(hidden), "batch_size": batch_size, "repeats": repeats, "iters": iters,
            "paddle_threads": cpu_threads(threads, batch_size), "notes": notes, "ms": med, "raw_ms": times,
            "update_speedup": speedups(times, med)}


def parse_case(text: str) -> tuple[tuple[int, int], int]:
    nets, batch = text.split("@")
    h = tuple(int(x) for x in nets.split(","))
    return (h[0], h[1]), int(batch)


def print_table(results: list[dict[str, Any]]) -> None:
    for r in results:
        print(f"\n{'-'.join(map(str, r['hidden']))} nets, batch {r['batch_size']} (medians of {r['repeats']} "
              f"blocks; min-max in brackets)")
        for name, t in r["ms"].items():
            runs = r["raw_ms"][name]
            print(f"  {name:>12}: update {t['update']:7.3f} ms [{min(runs['update']):.3f}-{max(runs['update']):.3f}]"
                  f"   act {t['act']:.4f} ms [{min(runs['act']):.4f}-{max(runs['act']):.4f}]")
        for pair, s in r["update_speedup"].items():
            print(f"  {pair:>28}: {s['of_medians']:5.2f}x (blocks: median {s['blocks_median']:.2f}x, "
                  f"{s['blocks_min']:.2f}-{s['blocks_max']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", metavar="H1,H2@BATCH",
                        help="hidden sizes and batch size (repeatable; default 256,128@32 and 400,300@256)")
    parser.add_argument("--sides", nargs="+", choices=SIDES, default=list(DEFAULT_SIDES))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iters", type=int, default=200, help="updates per timed block")
    parser.add_argument("--threads", type=int, default=0,
                        help="Paddle's CPU threads (default 0: the package's default for each batch size)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="PyTorch's CPU threads (default 0: PyTorch's own default, one per core)")
    parser.add_argument("--out", default="benchmarks/results/update.json")
    args = parser.parse_args()
    if args.torch_threads > 0 and torch is not None:
        torch.set_num_threads(args.torch_threads)
    cases = [parse_case(c) for c in (args.case or ["256,128@32", "400,300@256"])]
    load_at_start = os.getloadavg()  # other work on the machine slows every side, not all alike
    results = [run_case(h, b, args.sides, args.repeats, args.iters, args.threads) for h, b in cases]
    print_table(results)
    meta = {"paddle": paddle.__version__, "torch": torch.__version__ if torch is not None else None,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "jax": jax.__version__ if jax is not None else None, "machine": platform.processor() or platform.machine(),
            "cpus": usable_cpus(), "nice": os.nice(0), "load_average_at_start": load_at_start,
            "load_average_at_end": os.getloadavg(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
