"""How many Adam steps a fresh critic needs to reach a return: the carracing
preset's C (64x64 tanh, PPO's optimiser: lr 3e-4, eps 1e-5, clip 0.5, no
annealing) fitted to a constant target on 256 random 288-dim features, for
targets of 1.5, 15 and 150 (CarRacing's discounted returns scaled by 0.01, 0.1
and 1). The diagnosis behind ``PPOConfig.reward_scale``
(docs/results/carracing.md).

    python experiments/critic_reach.py
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from janus_jax import ppo
from janus_jax.config import presets
from janus_jax.config.models import ActionSpec
from janus_jax.models import controller


def steps_to_reach(
    target: float, max_steps: int = 20_000, every: int = 50
) -> int | None:
    """Returns the Adam steps after which the critic's mean output first reaches
    90% of ``target`` (checked every ``every`` steps), or None."""
    config = presets.preset("carracing")
    action = ActionSpec(
        continuous=True, dim=3, low=(-1.0, 0.0, 0.0), high=(1.0, 1.0, 1.0)
    )
    # C's input [z, h]: V's latent and M's hidden state
    wm = config.world_model
    width = wm.vae.latent_dim + wm.mdn_rnn.hidden_dim
    params = controller.init(jax.random.key(0), config.network, action, width)
    optimizer = ppo.optimizer(dataclasses.replace(config.ppo, anneal_lr=False))
    features = jnp.asarray(
        np.random.default_rng(0).normal(size=(256, width)).astype(np.float32)
    )

    def value_loss(p):
        return 0.5 * jnp.mean((controller.apply(p, features)[1] - target) ** 2)

    @jax.jit
    def step(p, state):
        updates, state = optimizer.update(jax.grad(value_loss)(p), state, p)
        return optax.apply_updates(p, updates), state

    state = optimizer.init(params)
    for i in range(1, max_steps + 1):
        params, state = step(params, state)
        if i % every == 0:
            if float(jnp.mean(controller.apply(params, features)[1])) >= 0.9 * target:
                return i
    return None


if __name__ == "__main__":
    for target in (1.5, 15.0, 150.0):
        steps = steps_to_reach(target)
        print(f"target {target:6.1f}: 90% reached after {steps} Adam steps")
