"""Fitting and control for the CartPole World Models run: a generic jitted
fitting chunk for V and M, the controller's real + dreamed PPO update, and
evaluation in the real env.

Everything here is a pure function of explicit inputs (keys included); the
caller decides what to jit. ``cartpole_world_model.py`` wires these into the
V -> M -> C pipeline.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from cartpole_data import (
    ObsStats,
    Sequences,
    Transition,
    env_reset,
    env_step,
    make_windows,
    normalize,
    to_sequences,
)
from flax import struct

from janus_jax import agent, imagination, ppo
from janus_jax.configs import PPOConfig
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, vae


def mdn_loss(params: mdn_rnn.MDNRNNParams, batch: Sequences, key: jax.Array):
    """Returns ``mdn_rnn.loss`` of a Sequences batch (the key is unused)."""
    del key
    return mdn_rnn.loss(params, *batch)


@struct.dataclass
class FitState:
    """Parameters and optimiser state of a model fitted by ``fit_chunk``."""

    params: Any
    opt_state: Any


LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def fit_chunk(
    state: FitState,
    data: Any,
    key: jax.Array,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    batch_size: int,
) -> tuple[FitState, dict[str, jax.Array]]:
    """Returns the state after ``num_steps`` Adam steps on minibatches drawn with
    replacement from ``data`` (leaves [N, ...]), and the chunk's mean metrics."""
    size = jax.tree.leaves(data)[0].shape[0]
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def body(state, step_key):
        index_key, loss_key = jax.random.split(step_key)
        index = jax.random.randint(index_key, (batch_size,), 0, size)
        batch = jax.tree.map(lambda x: x[index], data)
        (_, metrics), grads = grad_fn(state.params, batch, loss_key)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        return FitState(optax.apply_updates(state.params, updates), opt_state), metrics

    state, metrics = jax.lax.scan(body, state, jax.random.split(key, num_steps))
    return state, jax.tree.map(jnp.mean, metrics)


def evaluate(
    key: jax.Array,
    env,
    env_params,
    params: WorldModelParams | None,
    stats: ObsStats,
    num_episodes: int,
    deterministic: bool = True,
) -> jax.Array:
    """Returns the return [N] of the first episode of each of N parallel envs, for
    the controller acting on [z, h] (argmax when ``deterministic``) or, with
    ``params=None``, for a uniformly random policy."""
    reset_key, steps_key = jax.random.split(key)
    obs, env_state = env_reset(env, env_params, reset_key, num_episodes)
    carry = None
    if params is not None:
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (num_episodes,))

    def body(state, step_key):
        obs, env_state, carry, alive, total = state
        act_key, env_key = jax.random.split(step_key)
        if params is None:
            action = jax.random.randint(act_key, (num_episodes,), 0, env.num_actions)
        else:
            step = agent.act(
                params, carry, normalize(stats, obs), act_key, deterministic
            )
            action, carry = step.action, step.carry
        obs, env_state, (reward, terminated, truncated, _) = env_step(
            env, env_params, env_key, env_state, action
        )
        total = total + reward * alive
        alive = alive * (1.0 - jnp.logical_or(terminated, truncated))
        return (obs, env_state, carry, alive, total), None

    ones = jnp.ones(num_episodes)
    init = (obs, env_state, carry, ones, jnp.zeros(num_episodes))
    keys = jax.random.split(steps_key, env_params.max_steps_in_episode)
    (*_, total), _ = jax.lax.scan(body, init, keys)
    return total


@dataclasses.dataclass(frozen=True)
class ControlSetup:
    """Static settings of the controller phase (closed over by its jitted chunk)."""

    env: Any
    env_params: Any
    stats: ObsStats
    num_envs: int
    num_steps: int
    dream_starts: int
    horizon: int
    temperature: float
    use_real: bool
    window: int
    num_windows: int
    mdn_refresh_steps: int
    mdn_optimizer: optax.GradientTransformation
    ppo: PPOConfig
    optimizer: optax.GradientTransformation


@struct.dataclass
class ControlState:
    """What one controller update carries to the next."""

    train: ppo.TrainState
    mdn: FitState
    env_state: Any
    obs: jax.Array  # [E, O] raw
    carry: tuple  # M's carry per env, zero at each episode start
    episode_return: jax.Array  # [E] running return


class RealStep(NamedTuple):
    """One step of the controller in the real env, per env."""

    transition: Transition
    latent: jax.Array  # [E, Z] z_t
    carry: tuple  # M's carry before (z_t, a_t): h_t = hidden(carry)
    raw_action: jax.Array  # [E]
    log_prob: jax.Array  # [E]
    value: jax.Array  # [E]
    next_value: jax.Array  # [E] V of o_{t+1} (the final obs when the episode ended)
    finished_return: jax.Array  # [E] the episode's return where it ended, else 0


def real_rollout(setup: ControlSetup, params: WorldModelParams, state, key):
    """Returns (state, RealStep [T, E]): C acting in the real env for T steps."""

    def body(state, step_key):
        act_key, env_key = jax.random.split(step_key)
        obs = normalize(setup.stats, state.obs)
        step = agent.act(params, state.carry, obs, act_key)
        next_obs, env_state, rest = env_step(
            setup.env, setup.env_params, env_key, state.env_state, step.action
        )
        reward, terminated, truncated, final_obs = rest
        final_latent = vae.get_latent(params.vae, normalize(setup.stats, final_obs))
        final_features = imagination.features(final_latent, mdn_rnn.hidden(step.carry))
        _, next_value = controller.apply(params.controller, final_features)
        ended = jnp.logical_or(terminated, truncated)
        total = state.episode_return + reward
        record = RealStep(
            transition=Transition(state.obs, step.action, *rest),
            latent=step.latent,
            carry=state.carry,
            raw_action=step.raw_action,
            log_prob=step.log_prob,
            value=step.value,
            next_value=next_value,
            finished_return=jnp.where(ended, total, 0.0),
        )
        reset = lambda x: jnp.where(ended[:, None], 0.0, x)  # noqa: E731
        state = state.replace(
            env_state=env_state,
            obs=next_obs,
            carry=jax.tree.map(reset, step.carry),
            episode_return=jnp.where(ended, 0.0, total),
        )
        return state, record

    return jax.lax.scan(body, state, jax.random.split(key, setup.num_steps))


def real_batch(real: RealStep, config: PPOConfig) -> ppo.Batch:
    """Returns the PPO batch [T, E] of a real rollout, GAE keeping termination
    (no future) and truncation (bootstrap from the final observation) apart."""
    advantages, returns = ppo.gae(
        real.transition.reward,
        real.value,
        real.next_value,
        real.transition.terminated,
        real.transition.truncated,
        config.gamma,
        config.gae_lambda,
    )
    return ppo.Batch(
        features=imagination.features(real.latent, mdn_rnn.hidden(real.carry)),
        raw_actions=real.raw_action,
        log_probs=real.log_prob,
        values=real.value,
        advantages=advantages,
        returns=returns,
        mask=jnp.ones_like(real.value),
    )


def dream(setup: ControlSetup, params: WorldModelParams, real: RealStep, key):
    """Returns the Trajectory [H, S] dreamed from S (z_t, carry_t) of the rollout."""
    start_key, dream_key = jax.random.split(key)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    size = setup.num_envs * setup.num_steps
    replace = setup.dream_starts > size
    index = jax.random.choice(start_key, size, (setup.dream_starts,), replace=replace)
    z0 = flat(real.latent)[index]
    h0 = jax.tree.map(lambda x: flat(x)[index], real.carry)
    return imagination.imagine(
        dream_key, params, z0, h0, setup.horizon, setup.temperature
    )


def control_update(setup: ControlSetup, vae_params, state: ControlState, key):
    """Returns (state, metrics) after one real rollout, M's refresh on it, and a
    PPO update on it and/or on dreams started from it.

    M learns from the rollout before dreaming (as Dyna and Dreamer order it), so
    dreams see the current policy's failures; the dreams' start carries come from
    M one refresh older, a negligible mismatch.
    """
    rollout_key, mdn_key, dream_key, ppo_key = jax.random.split(key, 4)
    params = WorldModelParams(vae_params, state.mdn.params, state.train.params)
    state, real = real_rollout(setup, params, state, rollout_key)
    metrics = {}
    if setup.mdn_refresh_steps:
        windows = make_windows(real.transition, setup.window, setup.num_windows)
        data = to_sequences(vae_params, setup.stats, windows, setup.env.num_actions)
        mdn_state, metrics = fit_chunk(
            state.mdn,
            data,
            mdn_key,
            loss_fn=mdn_loss,
            optimizer=setup.mdn_optimizer,
            num_steps=setup.mdn_refresh_steps,
            batch_size=setup.num_windows,
        )
        state = state.replace(mdn=mdn_state)
        params = params.replace(mdn_rnn=mdn_state.params)
    config = setup.ppo
    batches = []
    if setup.use_real:
        batches.append(real_batch(real, config))
    if setup.dream_starts:
        traj = dream(setup, params, real, dream_key)
        batches.append(imagination.to_ppo_batch(traj, config.gamma, config.gae_lambda))
        metrics["dream/steps"] = jnp.sum(traj.mask)
        metrics["dream/episode_end_rate"] = jnp.sum(traj.dones) / setup.dream_starts
    flat = lambda *xs: jnp.concatenate([x.reshape((-1,) + x.shape[2:]) for x in xs])  # noqa: E731
    batch = jax.tree.map(flat, *batches)
    train, ppo_metrics = ppo.update(
        state.train, batch, ppo_key, config, setup.optimizer
    )
    metrics.update(ppo_metrics)
    ended = jnp.logical_or(real.transition.terminated, real.transition.truncated)
    metrics["real/return_sum"] = jnp.sum(real.finished_return)
    metrics["real/episodes"] = jnp.sum(ended).astype(jnp.float32)
    return state.replace(train=train), metrics


def control_chunk(state, vae_params, key, *, setup: ControlSetup, num_updates: int):
    """Returns (state, metrics) after ``num_updates`` updates, as one scan."""
    update = functools.partial(control_update, setup, vae_params)
    state, metrics = jax.lax.scan(update, state, jax.random.split(key, num_updates))
    sums = {k: jnp.sum(metrics[k]) for k in ("real/return_sum", "real/episodes")}
    out = {k: jnp.mean(v) for k, v in metrics.items() if k not in sums}
    out["real/episode_return"] = sums["real/return_sum"] / jnp.maximum(
        sums["real/episodes"], 1.0
    )
    out["real/episodes"] = sums["real/episodes"]
    if "dream/steps" in metrics:
        out["dream/steps"] = jnp.sum(metrics["dream/steps"])
    return state, out
