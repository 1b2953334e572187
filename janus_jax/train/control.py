"""The controller's update as pure functions: a real rollout of C, M's refresh on
it, dreams started from it, and the PPO update on the mix.

``update`` is one update for both env families: it calls the env's rollout
and ``learn``. ``chunk`` scans ``update`` (a gymnax run's chunk is one compiled
program); a gymnasium run calls ``update`` from Python with ``learn`` jitted
and the rollout stepped on the host (``WorldModelPPOTrainer`` chooses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from janus_jax import agent, imagination, ppo
from janus_jax.configs import PPOConfig
from janus_jax.envs import RolloutState
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn
from janus_jax.records import Transition
from janus_jax.train.fit import FitState, fit_chunk


@dataclasses.dataclass(frozen=True)
class ControlSetup:
    """Static settings of the controller phase (closed over by its jitted code)."""

    num_envs: int
    rollout_length: int
    dream_starts: int  # dreams per update (0: no imagination)
    horizon: int
    temperature: float
    learn_from_real: bool  # False: C learns from dreams only
    window: int  # M's refresh windows, in steps
    num_windows: int
    world_model_updates: int  # M gradient steps per update (0: M frozen)
    dream_updates: int  # extra PPO updates on fresh dreams only, per real rollout
    mdn_optimizer: optax.GradientTransformation
    ppo: PPOConfig
    optimizer: optax.GradientTransformation
    # The dream starts' layout over the devices: a NamedSharding splitting axis 0
    # (None: one device).
    start_sharding: Any = None


@struct.dataclass
class ControlState:
    """What one controller update carries to the next."""

    train: ppo.TrainState
    mdn: FitState | None  # None: no world model (model-free PPO)
    rollout: RolloutState  # the envs, M's carry per env (the policy state), returns
    key: jax.Array  # uint32 key data; update u uses fold_in(key, u)
    updates: jax.Array  # int32 updates done
    imagined_steps: jax.Array  # int32 dreamed transitions used so far


def rollout_windows(real: Transition, action_spec, length: int, num_windows: int):
    """Returns M's training sequences (latents [W, L+1, Z], actions, rewards, dones,
    mask) cut from a rollout in latents [T, E]: a window starts at every
    ``length``-th step of an episode segment and never runs past its end (those
    steps get mask 0). Windows beyond ``num_windows`` are dropped; missing ones
    are all masked."""
    ended = jnp.logical_or(real.terminated, real.truncated)

    def position(pos, ended_t):
        return jnp.where(ended_t, 0, pos + 1), pos

    num_steps = ended.shape[0]
    _, pos = jax.lax.scan(position, jnp.zeros(ended.shape[1], jnp.int32), ended)
    pos = pos.T  # [E, T]
    (flat,) = jnp.nonzero(
        (pos % length == 0).reshape(-1), size=num_windows, fill_value=-1
    )
    env, t0 = flat // num_steps, flat % num_steps
    t = t0[:, None] + jnp.arange(length)
    clipped = jnp.minimum(t, num_steps - 1)
    e = env[:, None]
    same = pos[e, clipped] == pos[env, t0][:, None] + jnp.arange(length)
    mask = (flat[:, None] >= 0) & (t < num_steps) & same
    take = lambda x: jnp.swapaxes(x, 0, 1)[e, clipped]  # noqa: E731
    latents = jnp.concatenate(
        [jnp.swapaxes(real.obs, 0, 1)[env, t0][:, None], take(real.next_obs)], 1
    )
    actions = controller.encode_action(action_spec, take(real.action))
    return (
        latents,
        actions,
        take(real.reward) * mask,
        (take(real.terminated) & mask).astype(jnp.float32),
        mask.astype(jnp.float32),
    )


def _mdn_loss(params, sequences, key):
    del key
    return mdn_rnn.loss(params, *sequences)


def dream(setup: ControlSetup, params: WorldModelParams, real: Transition, key):
    """Returns the Transition [H, S] dreamed by C from S (z_t, carry_t) of the
    rollout ``real`` [T, E]."""
    start_key, dream_key = jax.random.split(key)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    size = setup.num_envs * setup.rollout_length
    replace = setup.dream_starts > size
    index = jax.random.choice(start_key, size, (setup.dream_starts,), replace=replace)
    z0 = flat(real.info.latent)[index]
    carry0 = jax.tree.map(lambda x: flat(x)[index], real.info.carry)
    if setup.start_sharding is not None:
        z0, carry0 = jax.lax.with_sharding_constraint(
            (z0, carry0), setup.start_sharding
        )
    return imagination.imagine(
        dream_key, params, z0, carry0, setup.horizon, setup.temperature
    )


def _refresh_world_model(setup: ControlSetup, state: ControlState, real, spec):
    """Returns (state, metrics) after M's gradient steps on the rollout's windows."""
    sequences = rollout_windows(real, spec, setup.window, setup.num_windows)
    batches = jax.tree.map(
        lambda x: jnp.broadcast_to(x, (setup.world_model_updates,) + x.shape),
        sequences,
    )
    mdn_state, metrics = fit_chunk(
        state.mdn, batches, loss_fn=_mdn_loss, optimizer=setup.mdn_optimizer
    )
    metrics = {k: v for k, v in metrics.items() if k.startswith("mdn/")}
    return state.replace(mdn=mdn_state), metrics


def learn(
    setup: ControlSetup,
    params: WorldModelParams,
    state: ControlState,
    real: Transition,
    key,
):
    """Returns (state, metrics) after M's refresh on the real rollout ``real``
    [T, E] (observations, with C's ActInfo) and a PPO update on it and/or on
    dreams started from it.

    M learns from the rollout before dreaming (as Dyna and Dreamer order it), so
    dreams see the current policy's failures; the dreams' start carries come from
    M one refresh older, a negligible mismatch.
    """
    dream_key, ppo_key = jax.random.split(key)
    real = imagination.to_latents(params.vae, real)
    metrics = {}
    if setup.world_model_updates:
        spec = params.controller.action
        state, metrics = _refresh_world_model(setup, state, real, spec)
        params = params.replace(mdn_rnn=state.mdn.params)
    config = setup.ppo
    to_batch = lambda tr: imagination.to_ppo_batch(  # noqa: E731
        params.controller, tr, config.gamma, config.gae_lambda
    )
    parts = [to_batch(real)] if setup.learn_from_real else []
    if setup.dream_starts:
        dreamed = dream(setup, params, real, dream_key)
        parts.append(to_batch(dreamed))
        steps = jnp.sum(dreamed.mask)
        metrics["dream/steps"] = steps
        metrics["dream/reward"] = (
            jnp.sum(dreamed.reward * dreamed.mask) / setup.dream_starts
        )
        state = state.replace(
            imagined_steps=state.imagined_steps + steps.astype(jnp.int32)
        )
    train, ppo_metrics = ppo.update(
        state.train, jax.tree.map(_flat, *parts), ppo_key, config, setup.optimizer
    )
    metrics.update(ppo_metrics)
    if setup.dream_updates:
        train = _dream_updates(setup, params, train, real, dream_key)
    ended = jnp.logical_or(real.terminated, real.truncated)
    metrics["real/return_sum"] = jnp.sum(real.episode_return)
    metrics["real/episodes"] = jnp.sum(ended).astype(jnp.float32)
    return state.replace(train=train, updates=state.updates + 1), metrics


def _flat(*parts):
    return jnp.concatenate([x.reshape((-1,) + x.shape[2:]) for x in parts])


def _dream_updates(setup: ControlSetup, params, train, real: Transition, key):
    """Returns C's train state after ``dream_updates`` more PPO updates, each on
    fresh dreams of the current C from the rollout's start states: C moves
    several clipped steps per real rollout, all of them in the dream."""
    config = setup.ppo

    def one(train, update_key):
        dream_key, ppo_key = jax.random.split(update_key)
        now = params.replace(controller=train.params)
        dreamed = dream(setup, now, real, dream_key)
        batch = imagination.to_ppo_batch(
            train.params, dreamed, config.gamma, config.gae_lambda
        )
        train, _ = ppo.update(train, batch, ppo_key, config, setup.optimizer)
        return train, None

    keys = jax.random.split(jax.random.fold_in(key, 1), setup.dream_updates)
    return jax.lax.scan(one, train, keys)[0]


def params_of(state: ControlState, vae_params) -> WorldModelParams:
    """Returns the V, M and C parameters the state's next update acts with (M is
    None for model-free PPO)."""
    m_params = None if state.mdn is None else state.mdn.params
    return WorldModelParams(vae_params, m_params, state.train.params)


def update_key(state: ControlState) -> jax.Array:
    """Returns the key of the state's next update (from the state alone)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.key), state.updates)


def update(
    env,
    setup: ControlSetup,
    vae_params,
    state: ControlState,
    learn_fn: Callable = learn,
    place: Callable = lambda tree, axis: tree,
):
    """Returns (state, metrics) after one real rollout of C in ``env`` and
    ``learn_fn`` on it. ``place(tree, axis)`` lays host-stepped data out over
    the devices (the identity under jit)."""
    rollout_key, learn_key = jax.random.split(update_key(state))
    params = params_of(state, vae_params)
    rollout, real = env.rollout(
        agent.act, params, state.rollout, rollout_key, setup.rollout_length
    )
    state = state.replace(rollout=place(rollout, 0))
    return learn_fn(setup, params, state, place(real, 1), learn_key)


def summarize(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Returns a chunk's metrics [U] reduced: means, summed episode counts and the
    mean return of the episodes that ended in the chunk."""
    sums = {k: jnp.sum(metrics[k]) for k in ("real/return_sum", "real/episodes")}
    out = {k: jnp.mean(v) for k, v in metrics.items() if k not in sums}
    out["real/episode_return"] = sums["real/return_sum"] / jnp.maximum(
        sums["real/episodes"], 1.0
    )
    out["real/episodes"] = sums["real/episodes"]
    if "dream/steps" in metrics:
        out["dream/steps"] = jnp.sum(metrics["dream/steps"])
    return out


def chunk(state, vae_params, *, env, setup: ControlSetup, num_updates: int):
    """Returns (state, summarized metrics) after ``num_updates`` updates in one
    ``lax.scan`` (for envs whose rollout is pure JAX)."""

    def body(state, _):
        return update(env, setup, vae_params, state)

    state, metrics = jax.lax.scan(body, state, None, length=num_updates)
    return state, summarize(metrics)
