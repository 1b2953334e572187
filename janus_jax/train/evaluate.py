"""Evaluation in the real environment: the return of whole episodes, for the
controller acting on [z, h] or for a uniformly random policy (the baseline every
summary reports beside it)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax import agent
from janus_jax.envs import GymnasiumEnv, GymnaxEnv
from janus_jax.envs.spec import random_actions
from janus_jax.imagination import WorldModelParams
from janus_jax.models import mdn_rnn
from janus_jax.train.metrics_log import Progress

# Episodes of envs without a time limit are cut here (MinAtar's is 100,000 steps).
DEFAULT_MAX_STEPS = 10_000


def _policy(params, deterministic, spec, carry, obs, key, num):
    """Returns (actions, carry): the controller's, or random ones without params."""
    if params is None:
        return random_actions(key, spec.action, num), carry
    step = agent.act(params, carry, obs, key, deterministic)
    return step.action, step.carry


@functools.partial(jax.jit, static_argnames=("env", "num_episodes", "deterministic"))
def _gymnax_returns(key, params, env, num_episodes, deterministic, max_steps):
    spec = env.spec
    reset_key, loop_key = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))
    carry = None
    if params is not None:
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (num_episodes,))
    alive = jnp.ones(num_episodes, bool)
    total = jnp.zeros(num_episodes)

    def cond(state):
        t, *_, alive, _ = state
        return jnp.logical_and(t < max_steps, jnp.any(alive))

    def body(state):
        t, obs, env_state, carry, alive, total = state
        act_key, env_key = jax.random.split(jax.random.fold_in(loop_key, t))
        action, carry = _policy(
            params, deterministic, spec, carry, obs, act_key, num_episodes
        )
        out = jax.vmap(env.step)(
            jax.random.split(env_key, num_episodes), env_state, action
        )
        total = total + out.reward * alive
        alive = alive & ~(out.terminated | out.truncated)
        return t + 1, out.obs, out.state, carry, alive, total

    init = (jnp.zeros((), jnp.int32), obs, env_state, carry, alive, total)
    return jax.lax.while_loop(cond, body, init)[-1]


_act = jax.jit(_policy, static_argnums=(1, 2, 6))


def _gymnasium_returns(
    key,
    params,
    env: GymnasiumEnv,
    num_episodes,
    deterministic,
    max_steps,
    seed,
    progress,
):
    """Returns the first-episode returns of ``num_episodes`` envs, ``env.num_envs``
    at a time, stepping on the host."""
    returns = []
    batch = env.num_envs
    bar = Progress(num_episodes, desc="evaluate", unit="ep", enabled=progress)
    for round_index in range(-(-num_episodes // batch)):
        obs = env.reset(seed=seed + round_index * batch)
        carry = None
        if params is not None:
            carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (batch,))
        alive = np.ones(batch, bool)
        total = np.zeros(batch)
        for t in range(max_steps):
            key_t = jax.random.fold_in(jax.random.fold_in(key, round_index), t)
            action, carry = _act(
                params, deterministic, env.spec, carry, jnp.asarray(obs), key_t, batch
            )
            out = env.step(np.asarray(action))
            total += out.reward * alive
            alive &= ~(out.terminated | out.truncated)
            obs = out.obs
            if not alive.any():
                break
        returns.extend(total.tolist())
        bar.update(min(batch, num_episodes - round_index * batch), ret=total.mean())
    bar.close()
    return np.asarray(returns[:num_episodes])


def episode_returns(
    key: jax.Array,
    env: GymnaxEnv | GymnasiumEnv,
    params: WorldModelParams | None,
    num_episodes: int,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Returns the undiscounted return [N] of one episode in each of N envs.

    params None evaluates a uniformly random policy. The controller acts on
    [z, h] with M's carry reset at the start (argmax / mean actions when
    ``deterministic``). Episodes still running after ``max_steps`` (default: the
    env's time limit, else 10,000) count what they earned. gymnax envs run all
    N episodes in one compiled loop that stops when the last one ends; gymnasium
    envs step on the host, seeded ``seed``, ``seed + 1``..., with a progress bar
    when ``progress``.
    """
    if max_steps is None:
        max_steps = env.spec.max_episode_steps or DEFAULT_MAX_STEPS
    max_steps = min(max_steps, DEFAULT_MAX_STEPS * 10)
    if isinstance(env, GymnaxEnv):
        returns = _gymnax_returns(
            key, params, env, num_episodes, deterministic, jnp.int32(max_steps)
        )
        return np.asarray(returns)
    return _gymnasium_returns(
        key, params, env, num_episodes, deterministic, max_steps, seed, progress
    )
