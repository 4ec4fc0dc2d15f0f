"""Milliseconds per DDPG update and per action selection: paddle_ddpg against plain PyTorch eager.

paddle_ddpg runs on its default (fused) path and with autograd (`fused=False`), on its default CPU threads
(one below batch 64, else up to 2) unless --threads says otherwise. All sides get the same network sizes,
batches (numpy arrays, converted inside the timed call), Adam, MSE critic loss, actor loss -Q(s, mu(s))
and soft update. The PyTorch side is written the way a PyTorch user would write it (eager, default
optimizer settings, default thread count unless --torch-threads says otherwise). Runs are interleaved in
one process so all see the same machine state; medians over repeats are reported.

    python benchmarks/bench_update.py                  # tutorial nets @ batch 32, 400-300 nets @ batch 256
    python benchmarks/bench_update.py --case 64,64@128 --repeats 9
"""

from __future__ import annotations

import paddle_ddpg  # noqa: F401  (first, so its CPU settings apply before paddle loads)

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paddle
import torch
import torch.nn as tnn
import torch.nn.functional as tF

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.evaluate import cpu_threads, set_device, usable_cpus
from paddle_ddpg.memory import Batch

STATE_DIM, ACTION_DIM, GAMMA, TAU = 3, 1, 0.99, 0.005  # Pendulum's sizes


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


def torch_ddpg(hidden: tuple[int, int]) -> tuple[Callable[[Batch], None], Callable[[np.ndarray], np.ndarray]]:
    actor, critic = TorchActor(hidden), TorchCritic(hidden)
    actor_target, critic_target = TorchActor(hidden), TorchCritic(hidden)
    actor_target.load_state_dict(actor.state_dict())
    critic_target.load_state_dict(critic.state_dict())
    actor_optim = torch.optim.Adam(actor.parameters(), lr=1e-3)
    critic_optim = torch.optim.Adam(critic.parameters(), lr=1e-3)

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

    return update, act


def paddle_ddpg_agent(hidden: tuple[int, int],
                      fused: bool) -> tuple[Callable[[Batch], None], Callable[[np.ndarray], np.ndarray]]:
    agent = DDPG(STATE_DIM, ACTION_DIM, [-2.0], [2.0], Config(actor_hidden=hidden, critic_hidden=hidden,
                                                              lr_actor=1e-3, lr_critic=1e-3, tau=TAU, fused=fused))
    return agent.learn, lambda state: agent.select_action(state, 0.0)


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[Batch]:
    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)
    return [Batch(f(batch_size, STATE_DIM), np.clip(f(batch_size, ACTION_DIM), -2, 2), f(batch_size, 1),
                  f(batch_size, STATE_DIM), np.zeros((batch_size, 1), np.float32)) for _ in range(n)]


def ms_per_call(fn: Callable, args: list, iters: int) -> float:
    for x in args[:10]:
        fn(x)
    start = time.perf_counter()
    for i in range(iters):
        fn(args[i % len(args)])
    return (time.perf_counter() - start) / iters * 1e3


def run_case(hidden: tuple[int, int], batch_size: int, repeats: int, iters: int, threads: int) -> dict:
    set_device("cpu", threads, batch_size)  # what training at this batch size would use
    rng = np.random.default_rng(0)
    batches = random_batches(64, batch_size, rng)
    states = [rng.standard_normal(STATE_DIM).astype(np.float32) for _ in range(64)]
    impls = {"paddle_ddpg": paddle_ddpg_agent(hidden, fused=True),
             "paddle_ddpg_autograd": paddle_ddpg_agent(hidden, fused=False), "torch_eager": torch_ddpg(hidden)}
    times: dict[str, dict[str, list[float]]] = {name: {"update": [], "act": []} for name in impls}
    for r in range(repeats):
        order = list(impls) if r % 2 == 0 else list(reversed(impls))  # no side always goes first
        for name in order:
            update, act = impls[name]
            times[name]["update"].append(ms_per_call(update, batches, iters))
            times[name]["act"].append(ms_per_call(act, states, iters * 4))
    med = {name: {k: statistics.median(v) for k, v in t.items()} for name, t in times.items()}
    return {"hidden": list(hidden), "batch_size": batch_size, "repeats": repeats, "iters": iters,
            "paddle_threads": cpu_threads(threads, batch_size),
            "ms": med, "raw_ms": times,
            "update_speedup_vs_torch": med["torch_eager"]["update"] / med["paddle_ddpg"]["update"],
            "update_speedup_vs_autograd": med["paddle_ddpg_autograd"]["update"] / med["paddle_ddpg"]["update"],
            "act_speedup_vs_torch": med["torch_eager"]["act"] / med["paddle_ddpg"]["act"]}


def parse_case(text: str) -> tuple[tuple[int, int], int]:
    nets, batch = text.split("@")
    h = tuple(int(x) for x in nets.split(","))
    return (h[0], h[1]), int(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", metavar="H1,H2@BATCH",
                        help="hidden sizes and batch size (repeatable; default 256,128@32 and 400,300@256)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iters", type=int, default=200, help="updates per timed block")
    parser.add_argument("--threads", type=int, default=0,
                        help="Paddle's CPU threads (default 0: the package's default for each batch size)")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="PyTorch's CPU threads (default 0: PyTorch's own default, one per core)")
    parser.add_argument("--out", default="benchmarks/results/update.json")
    args = parser.parse_args()
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    cases = [parse_case(c) for c in (args.case or ["256,128@32", "400,300@256"])]
    results = [run_case(h, b, args.repeats, args.iters, args.threads) for h, b in cases]
    print(f"{'nets':>9} {'batch':>5} | {'update ms: paddle_ddpg':>22} {'autograd':>8} {'torch':>7} {'vs torch':>8} | "
          f"{'act ms: paddle_ddpg':>19} {'torch':>7} {'vs torch':>8}")
    for r in results:
        p, a, t = r["ms"]["paddle_ddpg"], r["ms"]["paddle_ddpg_autograd"], r["ms"]["torch_eager"]
        print(f"{'-'.join(map(str, r['hidden'])):>9} {r['batch_size']:>5} | {p['update']:>22.3f} {a['update']:>8.3f} "
              f"{t['update']:>7.3f} {r['update_speedup_vs_torch']:>7.2f}x | {p['act']:>19.3f} {t['act']:>7.3f} "
              f"{r['act_speedup_vs_torch']:>7.2f}x")
    meta = {"paddle": paddle.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "cpus": usable_cpus()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
