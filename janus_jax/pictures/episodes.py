"""What the pictures show: a real episode of the controller, V's reconstruction of
it, and M's open-loop dream of it (M fed the real actions, never the real frames
after the first). The episode comes from the env's one rollout interface; the
dream is ``imagine`` with a fixed action sequence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax import agent
from janus_jax.envs import compiled
from janus_jax.imagination import WorldModelParams, imagine
from janus_jax.models import mdn_rnn, vae


def record_episode(key, env, params: WorldModelParams, num_steps: int):
    """Returns (frames [T+1, ...], actions [T, ...]) of the first env's first
    episode of the controller (argmax / mean actions), cut at ``num_steps``
    steps or where the episode ends."""
    start_key, run_key = jax.random.split(key)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    state = env.start(start_key, carry)
    _, steps = compiled(env, agent.act_greedy, num_steps)(params, state, run_key)
    steps = jax.device_get(steps)
    ended = np.logical_or(steps.terminated[:, 0], steps.truncated[:, 0])
    stop = int(np.argmax(ended)) + 1 if ended.any() else num_steps
    obs, next_obs = np.asarray(steps.obs[:stop, 0]), np.asarray(steps.next_obs)
    return np.concatenate([obs, next_obs[stop - 1 : stop, 0]]), steps.action[:stop, 0]


@jax.jit
def reconstruct(vae_params: vae.VAEParams, frames: jax.Array) -> jax.Array:
    """Returns V's reconstruction of frames [N, ...] from their posterior means."""
    return vae.decode(vae_params, vae.get_latent(vae_params, frames))


def _no_reward(latent, action, next_latent):
    return 0.0  # a dream seen, not learned from: any reward will do


@jax.jit
def open_loop_dream(key, params: WorldModelParams, first_frame, actions, temperature):
    """Returns decoded frames [T+1, ...]: z_0 = V(first frame), then z_{t+1}
    sampled from M given (z_t, a_t) with the real actions [T, ...], at
    ``temperature``; the dream runs on past any done M predicts."""
    z0 = vae.get_latent(params.vae, first_frame[None])
    reward_fn = None if params.mdn_rnn.config.predict_reward else _no_reward
    dream = imagine(
        key, params, z0, None, None, temperature, reward_fn, actions=actions[:, None]
    )
    latents = jnp.concatenate([z0, dream.next_obs[:, 0]])
    return vae.decode(params.vae, latents)
