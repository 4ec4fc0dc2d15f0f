"""The optimised update is the tutorial's update: same parameters after 100 steps from the same start.

`DDPG.learn` keeps all parameters in two flat buffers (one Adam kernel per optimizer, one soft update for
every target) and by default computes gradients with explicit kernels (`paddle_ddpg.fused`); with
`fused=False` autograd computes them, with the critic frozen during the actor step. The reference below is
the tutorial's way, written plainly: `paddle.optimizer.Adam` per network, critic gradients computed and
discarded, `set_value` soft updates.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from paddle_ddpg.agent import DDPG
from paddle_ddpg.config import Config
from paddle_ddpg.memory import Memory
from paddle_ddpg.networks import Actor, Critic

GAMMA, TAU, LR = 0.99, 0.01, 1e-3


def plain_update(nets: dict, optims: dict, batch: tuple[np.ndarray, ...]) -> None:
    state, action, reward, next_state, terminated = (paddle.to_tensor(x) for x in batch)
    with paddle.no_grad():
        y = reward + GAMMA * (1 - terminated) * nets["critic_target"](next_state, nets["actor_target"](next_state))
    critic_loss = F.mse_loss(nets["critic"](state, action), y)
    optims["critic"].clear_grad()
    critic_loss.backward()
    optims["critic"].step()
    actor_loss = -nets["critic"](state, nets["actor"](state)).mean()
    optims["actor"].clear_grad()
    actor_loss.backward()
    optims["actor"].step()
    for name in ("actor", "critic"):
        for t, p in zip(nets[name + "_target"].parameters(), nets[name].parameters()):
            t.set_value(t * (1.0 - TAU) + p * TAU)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("hidden,batch_size", [((256, 128), 32), ((64, 32), 128)])
def test_optimised_and_plain_updates_agree_after_100_steps(hidden: tuple[int, int], batch_size: int,
                                                           fused: bool) -> None:
    paddle.seed(0)
    config = Config(actor_hidden=hidden, critic_hidden=hidden, lr_actor=LR, lr_critic=LR, gamma=GAMMA, tau=TAU,
                    fused=fused)
    agent = DDPG(3, 2, [-2.0, -1.0], [2.0, 3.0], config)
    nets = {"actor": Actor(3, 2, [-2.0, -1.0], [2.0, 3.0], hidden), "critic": Critic(3, 2, hidden),
            "actor_target": Actor(3, 2, [-2.0, -1.0], [2.0, 3.0], hidden), "critic_target": Critic(3, 2, hidden)}
    for name, net in nets.items():
        net.set_state_dict(getattr(agent, name).state_dict())
    optims = {name: paddle.optimizer.Adam(parameters=nets[name].parameters(), learning_rate=LR)
              for name in ("actor", "critic")}

    start = [p.numpy().copy() for p in agent.actor.parameters()]
    rng = np.random.default_rng(0)
    memory = Memory(2000, 3, 2, rng=rng)
    for _ in range(2000):
        memory.add(rng.standard_normal(3), rng.uniform([-2, -1], [2, 3]), rng.standard_normal(),
                   rng.standard_normal(3), rng.random() < 0.1)
    for _ in range(100):
        batch = memory.sample(batch_size)
        agent.learn(batch)
        plain_update(nets, optims, batch)

    for name, net in nets.items():
        for ours, plain in zip(getattr(agent, name).parameters(), net.parameters()):
            np.testing.assert_allclose(ours.numpy(), plain.numpy(), atol=1e-5, rtol=0, err_msg=name)
    # The comparison means something only if training moved the weights far beyond the tolerance.
    moved = max(float(np.abs(p.numpy() - p0).max()) for p, p0 in zip(agent.actor.parameters(), start))
    assert moved > 1e-2
