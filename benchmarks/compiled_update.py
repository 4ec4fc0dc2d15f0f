"""The plain agent's DDPG update compiled by Paddle's own compiler, `paddle.jit.to_static`, to measure against
the fast engine's hand-written kernels (issue #20, point 5: try Paddle's compiler before keeping our own).

Paddle's own tests compile a whole train step, forward, `loss.backward()` and `optimizer.step()`, as one
`to_static(full_graph=True)` function (test/dygraph_to_static/test_train_step.py). That works on the legacy
program IR only: under PIR, Paddle 3's default, a traced loss has no `backward()`, and with the legacy IR
switched back on (FLAGS_enable_pir_api=0) Paddle 3.3's layers no longer trace. So Adam cannot be compiled
into the step, and what can be compiled is compiled in one of two ways:

  losses  the critic's loss (its Bellman target included, under no_grad) and the actor's loss, each one
          full-graph program, whose `backward()` runs the compiled backward program; the agent's own Adam
          steps; the soft update of every target as one more program.
  whole   the agent's own `DDPG.update`, unchanged, wrapped by to_static's bytecode translator (SOT,
          full_graph=False): it compiles what it can trace and runs backward() and step() in between.

    python benchmarks/compiled_update.py     # each way's largest difference from the plain agent
"""

from __future__ import annotations

from paddle_ddpg.device import prepare_process

prepare_process()  # as the programs do, before Paddle loads

import argparse
from typing import Any

import numpy as np
import paddle
import paddle.nn.functional as F

from paddle_ddpg.agent import DDPG, td_target
from paddle_ddpg.config import Config
from paddle_ddpg.memory import Batch

MODES = ("losses", "whole")


def compile_update(agent: DDPG, mode: str) -> None:
    """Replace `agent.update` with a compiled one (DDPG without the tanh penalty, as the benchmark runs it)."""
    if agent.critic2 is not None or agent.tanh_penalty:
        raise ValueError("the compiled update is written for DDPG without tanh_penalty")
    if mode == "whole":
        def whole(batch: Batch, target_noise: np.ndarray | None, actor_step: bool) -> dict[str, paddle.Tensor]:
            return DDPG.update(agent, batch, target_noise, actor_step)

        agent.update = paddle.jit.to_static(whole, full_graph=False)
        return

    @paddle.jit.to_static(full_graph=True)
    def critic_loss(state: paddle.Tensor, action: paddle.Tensor, reward: paddle.Tensor,
                    next_state: paddle.Tensor, terminated: paddle.Tensor) -> paddle.Tensor:
        with paddle.no_grad():
            y = td_target(reward, terminated, agent.target_q(next_state), agent.gamma)
        return F.mse_loss(agent.critic(state, action), y)

    @paddle.jit.to_static(full_graph=True)
    def actor_loss(state: paddle.Tensor) -> paddle.Tensor:
        return -agent.critic(state, agent.actor(state)).mean()

    @paddle.jit.to_static(full_graph=True)
    def soft_update_all() -> None:
        # set_value, which agent.soft_update uses, cannot be traced; assigning into the parameter can.
        for net, target in agent.target_pairs():
            for target_param, param in zip(target.parameters(), net.parameters()):
                paddle.assign(target_param * (1.0 - agent.tau) + param * agent.tau, target_param)

    def losses(batch: Batch, target_noise: np.ndarray | None, actor_step: bool) -> dict[str, paddle.Tensor]:
        state, action, reward, next_state, terminated = (paddle.to_tensor(x) for x in batch)
        loss = critic_loss(state, action, reward, next_state, terminated)
        agent.critic_optim.clear_grad()
        loss.backward()
        agent.critic_optim.step()
        result = {"critic loss": loss.detach()}
        if actor_step:
            loss = actor_loss(state)
            agent.actor_optim.clear_grad()
            loss.backward()
            agent.actor_optim.step()
            result["actor loss"] = loss.detach()
            with paddle.no_grad():
                soft_update_all()
        return result

    agent.update = losses


def difference_from_plain(hidden: tuple[int, int], mode: str, updates: int = 50, batch_size: int = 32) -> float:
    """The largest parameter difference, over all four networks, between a plain and a compiled agent after
    `updates` updates from the same weights on the same random batches (Pendulum's sizes)."""
    config = Config(actor_hidden=hidden, critic_hidden=hidden, lr_actor=1e-3, lr_critic=1e-3, tau=0.005)
    plain, compiled = (DDPG(3, 1, [-2.0], [2.0], config, rng=np.random.default_rng(0)) for _ in range(2))
    compiled.set_state_dict(plain.state_dict())
    compile_update(compiled, mode)
    rng = np.random.default_rng(1)
    for _ in range(updates):
        batch = Batch(*(rng.standard_normal((batch_size, width)).astype(np.float32) for width in (3, 1, 1, 3)),
                      (rng.random((batch_size, 1)) < 0.1).astype(np.float32))
        plain.learn(batch)
        compiled.learn(batch)
    return max(float(np.abs(a.numpy() - b.numpy()).max()) for name, net in plain.networks().items()
               for a, b in zip(net.parameters(), compiled.networks()[name].parameters()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200)
    args = parser.parse_args()
    cases: list[tuple[Any, ...]] = [((256, 128), 32), ((400, 300), 256)]
    for hidden, batch_size in cases:
        for mode in MODES:
            error = difference_from_plain(hidden, mode, args.updates, batch_size)
            print(f"{hidden[0]}-{hidden[1]} nets, batch {batch_size}, {mode}: largest parameter difference from "
                  f"the plain agent after {args.updates} updates {error:.3g}")


if __name__ == "__main__":
    main()
