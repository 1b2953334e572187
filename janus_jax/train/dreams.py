"""What the pictures show: a real episode of the controller, V's reconstruction of
it, and M's open-loop dream of it (M fed the real actions, never the real frames
after the first)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax import agent
from janus_jax.envs import GymnasiumEnv, GymnaxEnv
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, vae


@functools.partial(jax.jit, static_argnames=("env", "num_steps"))
def _gymnax_episode(key, params, env, num_steps):
    reset_key, steps_key = jax.random.split(key)
    obs, state = env.reset(reset_key)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config)

    def body(loop, step_key):
        obs, state, carry = loop
        act_key, env_key = jax.random.split(step_key)
        step = agent.act(params, carry, obs, act_key, deterministic=True)
        out = env.step(env_key, state, step.action)
        return (out.obs, out.state, step.carry), (
            obs,
            step.action,
            out.final_obs,
            out.terminated | out.truncated,
        )

    _, (frames, actions, finals, ended) = jax.lax.scan(
        body, (obs, state, carry), jax.random.split(steps_key, num_steps)
    )
    return frames, actions, finals, ended


def record_episode(key, env, params: WorldModelParams, num_steps: int):
    """Returns (frames [T+1, ...], actions [T, ...]) of the controller's first
    episode, cut at ``num_steps`` steps or where the episode ends."""
    if isinstance(env, GymnaxEnv):
        frames, actions, finals, ended = map(
            np.asarray, _gymnax_episode(key, params, env, num_steps)
        )
        stop = int(np.argmax(ended)) + 1 if ended.any() else num_steps
        return np.concatenate([frames[:stop], finals[stop - 1 : stop]]), actions[:stop]
    return _host_episode(key, env, params, num_steps)


def _host_episode(key, env: GymnasiumEnv, params, num_steps):
    act = jax.jit(functools.partial(agent.act, deterministic=True))
    obs = env.reset(seed=int(jax.random.randint(key, (), 0, 2**31 - 1)))
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    frames, actions = [obs[0]], []
    for t in range(num_steps):
        step = act(params, carry, jnp.asarray(obs), jax.random.fold_in(key, t))
        out = env.step(np.asarray(step.action))
        actions.append(np.asarray(step.action)[0])
        carry, obs = step.carry, out.obs
        if out.terminated[0] or out.truncated[0]:
            frames.append(out.final_obs[0])
            break
        frames.append(obs[0])
    return np.stack(frames), np.stack(actions)


@jax.jit
def reconstruct(vae_params: vae.VAEParams, frames: jax.Array) -> jax.Array:
    """Returns V's reconstruction of frames [N, ...] from their posterior means."""
    return vae.decode(vae_params, vae.get_latent(vae_params, frames))


@functools.partial(jax.jit, static_argnames=())
def open_loop_dream(key, params: WorldModelParams, first_frame, actions, temperature):
    """Returns decoded frames [T+1, ...]: z_0 = V(first frame), then z_{t+1}
    sampled from M given (z_t, a_t) with the real actions, at ``temperature``."""
    z0 = vae.get_latent(params.vae, first_frame)
    action_vectors = controller.encode_action(params.controller.action, actions)

    def body(loop, inputs):
        carry, z = loop
        action, step_key = inputs
        carry, out = mdn_rnn.step(params.mdn_rnn, carry, z, action)
        z_next = mdn_rnn.sample(step_key, out, temperature)
        return (carry, z_next), z_next

    carry = mdn_rnn.initial_carry(params.mdn_rnn.config)
    keys = jax.random.split(key, actions.shape[0])
    _, latents = jax.lax.scan(body, (carry, z0), (action_vectors, keys))
    return vae.decode(params.vae, jnp.concatenate([z0[None], latents]))
