"""Imagination: the controller acting inside the world model's dream, on-device.

``imagine`` unrolls a horizon as one ``lax.scan`` per start state, vmapped over
a batch of start states: the controller picks a_t from [z_t, h_t], the MDN-RNN
advances its state and samples z_{t+1} with temperature tau, and the reward is
the learned reward head or any pure ``reward_fn(z_t, a_t, z_next)``. Steps after
a predicted termination are masked out (mask 0, reward 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from janus_jax import ppo
from janus_jax.models import controller, mdn_rnn, vae

RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
DONE_MODES = ("sample", "threshold")


@struct.dataclass
class WorldModelParams:
    """V, M and C parameters together (each carries its own static config)."""

    vae: vae.VAEParams
    mdn_rnn: mdn_rnn.MDNRNNParams
    controller: controller.ControllerParams


class Trajectory(NamedTuple):
    """An imagined rollout, time-major: every field is [T, B, ...]."""

    latents: jax.Array  # [T, B, Z] z_t
    hiddens: jax.Array  # [T, B, H] h_t, the RNN output the controller saw
    raw_actions: jax.Array  # [T, B] int32 or [T, B, A] pre-squash
    actions: jax.Array  # [T, B] or [T, B, A] environment actions
    log_probs: jax.Array  # [T, B]
    values: jax.Array  # [T, B] V([z_t, h_t])
    rewards: jax.Array  # [T, B] r_t, 0 after a termination
    dones: jax.Array  # [T, B] 1 at the step the episode is predicted to end
    mask: jax.Array  # [T, B] 1 up to and including the first predicted done
    next_latents: jax.Array  # [T, B, Z] z_{t+1}
    last_value: jax.Array  # [B] V of the state after the horizon (the bootstrap)


def features(latent: jax.Array, hidden: jax.Array) -> jax.Array:
    """Returns the controller's input [z, h] [..., Z + H]."""
    return jnp.concatenate([latent, hidden], axis=-1)


class DreamState(NamedTuple):
    """What one dream step carries to the next (one start state, no batch axis)."""

    carry: tuple  # the MDN-RNN state, leaves [H]
    latent: jax.Array  # [Z] z_t
    alive: jax.Array  # [] 1 until a termination has been predicted


def dream_step(
    params: WorldModelParams,
    state: DreamState,
    key: jax.Array,
    temperature: jax.Array,
    reward_fn: RewardFn | None = None,
    done_mode: str = "sample",
) -> tuple[DreamState, Trajectory]:
    """Returns (next state, this step's record) of one dreamed step for one start state.

    The record is a Trajectory without time or batch axes (its last_value is 0).
    done_mode "sample" ends the dream with probability sigmoid(done_logit);
    "threshold" ends it when that probability exceeds 0.5.
    """
    c_params, m_params = params.controller, params.mdn_rnn
    policy_key, latent_key, done_key = jax.random.split(key, 3)
    hidden = mdn_rnn.hidden(state.carry)
    policy, value = controller.apply(c_params, features(state.latent, hidden))
    raw_action = controller.sample(policy_key, c_params, policy)
    action = controller.env_action(c_params, raw_action)
    action_vector = controller.encode_action(c_params.action, action)
    carry, out = mdn_rnn.step(m_params, state.carry, state.latent, action_vector)
    next_latent = mdn_rnn.sample(latent_key, out, temperature)
    if reward_fn is None:
        reward = out.reward
    else:
        reward = reward_fn(state.latent, action_vector, next_latent)
        reward = jnp.asarray(reward, jnp.float32).reshape(())
    done = jnp.zeros((), jnp.float32)
    if m_params.config.predict_done:
        # Terminations are rare, so p(done) seldom passes 0.5: a threshold would let
        # most dreams run on past the failures the model foresees. Sample instead.
        if done_mode == "sample":
            done = jax.random.bernoulli(done_key, jax.nn.sigmoid(out.done_logit))
        else:
            done = out.done_logit > 0.0
        done = done.astype(jnp.float32)
    alive = state.alive
    record = Trajectory(
        latents=state.latent,
        hiddens=hidden,
        raw_actions=raw_action,
        actions=action,
        log_probs=controller.log_prob(c_params, policy, raw_action),
        values=value,
        rewards=reward * alive,
        dones=done * alive,
        mask=alive,
        next_latents=next_latent,
        last_value=jnp.zeros(()),
    )
    return DreamState(carry, next_latent, alive * (1.0 - done)), record


def _imagine_one(
    key: jax.Array,
    params: WorldModelParams,
    latent0: jax.Array,
    carry0: tuple,
    horizon: int,
    temperature: jax.Array,
    reward_fn: RewardFn | None,
    done_mode: str,
) -> Trajectory:
    def body(state, step_key):
        return dream_step(params, state, step_key, temperature, reward_fn, done_mode)

    init = DreamState(carry0, latent0, jnp.ones((), jnp.float32))
    final, traj = jax.lax.scan(body, init, jax.random.split(key, horizon))
    hidden = mdn_rnn.hidden(final.carry)
    _, last_value = controller.apply(params.controller, features(final.latent, hidden))
    return traj._replace(last_value=last_value)


def imagine(
    key: jax.Array,
    params: WorldModelParams,
    z0: jax.Array,
    h0: tuple | None,
    horizon: int,
    temperature: float | jax.Array | None = None,
    reward_fn: RewardFn | None = None,
    done_mode: str = "sample",
) -> Trajectory:
    """Returns the time-major Trajectory [T=horizon, B, ...] dreamed from B starts.

    z0: start latents [B, Z]; h0: the MDN-RNN carry for them (leaves [B, H]) or
    None for the zero state; temperature: tau (default: the MDN-RNN config's);
    reward_fn: a pure (z_t [Z], a_t [A], z_next [Z]) -> scalar for one example, a_t
    being the action vector the MDN-RNN sees (one-hot if discrete); it is vmapped.
    None uses the learned reward head. done_mode: "sample" (a dream ends with
    probability sigmoid(done_logit) at each step) or "threshold" (when that is
    above 0.5). ``horizon``, ``reward_fn`` and ``done_mode`` must be static under
    jit; start state i uses key split(key, B)[i], so its dream does not depend on
    the rest of the batch.
    """
    m_config = params.mdn_rnn.config
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon={horizon!r} is invalid: must be an integer >= 1")
    if z0.ndim != 2 or z0.shape[-1] != m_config.latent_dim:
        raise ValueError(
            f"z0 has shape {z0.shape}; expected "
            f"[batch, latent_dim={m_config.latent_dim}]"
        )
    if reward_fn is None and not m_config.predict_reward:
        raise ValueError(
            "reward_fn=None needs the learned reward head, but "
            "MDNRNNConfig.predict_reward=False: pass a reward_fn"
        )
    if done_mode not in DONE_MODES:
        raise ValueError(
            f"done_mode={done_mode!r} is invalid: must be one of {DONE_MODES}"
        )
    if temperature is None:
        temperature = m_config.temperature
    batch = z0.shape[0]
    if h0 is None:
        h0 = mdn_rnn.initial_carry(m_config, (batch,))
    tau = jnp.asarray(temperature, jnp.float32)

    def one(k, z, h):
        return _imagine_one(k, params, z, h, horizon, tau, reward_fn, done_mode)

    traj = jax.vmap(one)(jax.random.split(key, batch), z0, h0)
    time_major = jax.tree.map(
        lambda x: jnp.swapaxes(x, 0, 1), traj._replace(last_value=None)
    )
    return time_major._replace(last_value=traj.last_value)


def to_ppo_batch(traj: Trajectory, gamma: float, gae_lambda: float) -> ppo.Batch:
    """Returns the PPO batch [T, B] of a dream: termination where a done was predicted,
    truncation (bootstrapping from the value of the state reached) at the horizon."""
    next_values = jnp.concatenate([traj.values[1:], traj.last_value[None]], axis=0)
    truncated = jnp.zeros_like(traj.dones).at[-1].set(1.0)
    advantages, returns = ppo.gae(
        traj.rewards, traj.values, next_values, traj.dones, truncated, gamma, gae_lambda
    )
    return ppo.Batch(
        features=features(traj.latents, traj.hiddens),
        raw_actions=traj.raw_actions,
        log_probs=traj.log_probs,
        values=traj.values,
        advantages=advantages,
        returns=returns,
        mask=traj.mask,
    )
