"""The controller's update as pure functions: a real rollout of C, M's refresh on
windows of recent real data (the replay, which the rollout joins), dreams
started from the rollout, and the PPO update on the mix.

``update`` is one update for both env families: it calls the env's rollout
and ``learn``. ``chunk`` scans ``update`` (a gymnax run's chunk is one compiled
program); a gymnasium run calls ``update`` from Python with ``learn`` jitted
and the rollout stepped on the host (``WorldModelPPOTrainer`` chooses).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from janus_jax import agent, batches, imagination, ppo
from janus_jax.config.models import PPOConfig
from janus_jax.envs import RolloutState
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, reward, vae
from janus_jax.optim import TrainState
from janus_jax.records import Transition, Windows
from janus_jax.train import replay
from janus_jax.train.fit import fit_chunk


@dataclasses.dataclass(frozen=True)
class ControlSetup:
    """Static settings of the controller phase (closed over by its jitted code)."""

    num_envs: int
    rollout_length: int
    dream_starts: int  # dreams per update (0: no imagination)
    dream_from_replay: bool  # dreams start from the replay (else the rollout)
    imagination_horizon: int
    temperature: float
    learn_from_real: bool  # False: C learns from dreams only
    mdn_updates: int  # M gradient steps per update (0: M frozen)
    vae_updates: int  # V gradient steps per update on replay frames (0: V fixed)
    vae_batch_size: int  # frames per V step
    sequence_length: int  # steps per window of M's refresh
    mdn_batch_size: int  # windows per M step, drawn afresh from the replay
    dream_updates: int  # extra PPO updates on fresh dreams only, per real rollout
    vae_optimizer: optax.GradientTransformation
    mdn_optimizer: optax.GradientTransformation
    ppo: PPOConfig
    controller_optimizer: optax.GradientTransformation
    # The dream starts' layout over the devices: a NamedSharding splitting axis 0
    # (None: one device).
    start_sharding: Any = None
    # The dreams' reward: None (M's reward head), a pure per-example function
    # (static: one object, compiled once for the run), or a learned RewardModel
    # whose variables ControlState.reward carries and M's refresh windows train.
    dream_reward: reward.ExampleReward | reward.RewardModel | None = None
    reward_optimizer: optax.GradientTransformation | None = None  # a RewardModel's


@struct.dataclass
class ControlState:
    """What one controller update carries to the next."""

    train: TrainState  # C's
    mdn: TrainState | None  # None: no world model (model-free PPO)
    vae: TrainState | None  # V, when it keeps learning (None: V as given)
    replay: replay.Replay | None  # recent real steps: V's, M's and dreams' data
    rollout: RolloutState  # the envs, M's carry per env (the policy state), returns
    key: jax.Array  # uint32 key data; update u uses fold_in(key, u)
    updates: jax.Array  # int32 updates done
    imagined_steps: jax.Array  # int32 dreamed transitions used so far
    # A learned reward model's variables (None: the dreams score otherwise).
    reward: TrainState | None = None


def _encoded(vae_params, windows: Windows, c_params) -> Windows:
    """Returns the windows with observations [..., L+1, *obs] as V's latents
    [..., L+1, Z] and actions as M's float vectors."""
    obs = windows.obs
    lead = obs.shape[: obs.ndim - len(vae_params.config.observation_shape)]
    latents = vae.get_latent(vae_params, obs.reshape((-1,) + obs.shape[len(lead) :]))
    return windows._replace(
        obs=latents.reshape(lead + latents.shape[-1:]),
        actions=controller.encode_action(
            c_params.action, windows.actions, c_params.task
        ),
    )


def dream_reward_fn(setup: ControlSetup, reward_variables=None):
    """Returns the per-example reward function the dreams score with: None for
    M's reward head, the setup's function, or its RewardModel bound to
    ``reward_variables`` (ControlState.reward's params)."""
    if isinstance(setup.dream_reward, reward.RewardModel):
        return reward.scorer(setup.dream_reward, reward_variables)
    return setup.dream_reward


def dream(
    setup: ControlSetup,
    params: WorldModelParams,
    real: Transition,
    key,
    memory=None,
    reward_variables=None,
):
    """Returns the Transition [H, S] dreamed by C from S start states: (z, carry)
    of stored steps of the replay ``memory`` (encoded by the current V), or of
    the rollout ``real`` [T, E] without one; rewards as ``dream_reward_fn``
    says (``reward_variables``: a learned reward model's)."""
    start_key, dream_key = jax.random.split(key)
    if memory is not None:
        obs, carry0 = replay.starts(memory, start_key, setup.dream_starts)
        z0 = vae.get_latent(params.vae, obs)
    else:
        flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        size = setup.num_envs * setup.rollout_length
        replace = setup.dream_starts > size
        index = jax.random.choice(
            start_key, size, (setup.dream_starts,), replace=replace
        )
        z0 = flat(real.info.latent)[index]
        carry0 = jax.tree.map(lambda x: flat(x)[index], real.info.carry)
    if setup.start_sharding is not None:
        z0, carry0 = jax.lax.with_sharding_constraint(
            (z0, carry0), setup.start_sharding
        )
    return imagination.imagine(
        dream_key,
        params,
        z0,
        carry0,
        setup.imagination_horizon,
        setup.temperature,
        dream_reward_fn(setup, reward_variables),
    )


def _refresh_vae(setup: ControlSetup, state: ControlState, key):
    """Returns (state, metrics) after V's ``vae_updates`` gradient steps, each on
    fresh frames of the replay (so V sees the states the current C reaches)."""
    keys = jax.random.split(key, setup.vae_updates)
    draw = lambda k: replay.frames(state.replay, k, setup.vae_batch_size)  # noqa: E731
    vae_state, metrics = fit_chunk(
        state.vae,
        jax.vmap(draw)(keys),
        loss_fn=vae.loss,
        optimizer=setup.vae_optimizer,
    )
    metrics = {k: v for k, v in metrics.items() if k.startswith("vae/")}
    return state.replace(vae=vae_state), metrics


def _refresh_world_model(setup: ControlSetup, params, state: ControlState, key):
    """Returns (state, metrics) after M's ``mdn_updates`` gradient steps,
    each on fresh windows of the replay starting from the carries stored there
    (and as many steps of a learned reward model on the same windows)."""
    keys = jax.random.split(key, setup.mdn_updates)
    draw = lambda k: replay.windows(  # noqa: E731
        state.replay, k, setup.mdn_batch_size, setup.sequence_length
    )
    batches = _encoded(params.vae, jax.vmap(draw)(keys), params.controller)
    mdn_state, metrics = fit_chunk(
        state.mdn, batches, loss_fn=mdn_rnn.loss, optimizer=setup.mdn_optimizer
    )
    metrics = {k: v for k, v in metrics.items() if k.startswith("mdn/")}
    if state.reward is not None:  # learns beside M's reward head, on its windows
        loss_fn = functools.partial(reward.loss, setup.dream_reward)
        reward_state, reward_metrics = fit_chunk(
            state.reward, batches, loss_fn=loss_fn, optimizer=setup.reward_optimizer
        )
        metrics["reward/mse"] = reward_metrics["reward/mse"]
        state = state.replace(reward=reward_state)
    return state.replace(mdn=mdn_state), metrics


def learn(
    setup: ControlSetup,
    params: WorldModelParams,
    state: ControlState,
    real: Transition,
    key,
):
    """Returns (state, metrics) after the real rollout ``real`` [T, E]
    (observations, with C's ActInfo) joins the replay, M's refresh on windows
    drawn from it, and a PPO update on the rollout and/or on dreams started from
    it.

    M learns from the rollout before dreaming (as Dyna and Dreamer order it), so
    dreams see the current policy's failures; the dreams' start carries (and the
    replay's) come from M as it was when C acted, a small mismatch.
    """
    dream_key, ppo_key, window_key, frame_key = jax.random.split(key, 4)
    metrics = {}
    if state.replay is not None:
        state = state.replace(replay=replay.add(state.replay, real))
    if setup.vae_updates:
        state, metrics = _refresh_vae(setup, state, frame_key)
        params = params.replace(vae=state.vae.params)
    if setup.mdn_updates:
        state, mdn_metrics = _refresh_world_model(setup, params, state, window_key)
        params = params.replace(mdn_rnn=state.mdn.params)
        metrics.update(mdn_metrics)
    real = batches.to_latents(params.vae, real, reuse=not setup.vae_updates)
    config = setup.ppo
    to_batch = lambda tr: batches.to_ppo_batch(  # noqa: E731
        params.controller, tr, config.gamma, config.gae_lambda, config.reward_scale
    )
    parts = [to_batch(real)] if setup.learn_from_real else []
    if setup.dream_starts:
        dreamed = dream(
            setup, params, real, dream_key, _starts(setup, state), _scores(state)
        )
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
        state.train,
        jax.tree.map(_flat, *parts),
        ppo_key,
        config,
        setup.controller_optimizer,
    )
    metrics.update(ppo_metrics)
    if setup.dream_updates:
        train = _dream_updates(
            setup,
            params,
            train,
            real,
            dream_key,
            _starts(setup, state),
            _scores(state),
        )
    ended = jnp.logical_or(real.terminated, real.truncated)
    metrics["real/return_sum"] = jnp.sum(real.episode_return)
    metrics["real/episodes"] = jnp.sum(ended).astype(jnp.float32)
    return state.replace(train=train, updates=state.updates + 1), metrics


def _starts(setup: ControlSetup, state: ControlState):
    """Returns the replay dreams start from (None: from the rollout)."""
    return state.replay if setup.dream_from_replay else None


def _scores(state: ControlState):
    """Returns a learned reward model's variables (None: no learned model)."""
    return None if state.reward is None else state.reward.params


def _flat(*parts):
    return jnp.concatenate([x.reshape((-1,) + x.shape[2:]) for x in parts])


def _dream_updates(
    setup: ControlSetup, params, train, real, key, memory, reward_variables=None
):
    """Returns C's train state after ``dream_updates`` more PPO updates, each on
    fresh dreams of the current C (from the replay ``memory``, or the rollout
    without one): C moves several clipped steps per real rollout, all of them
    in the dream."""
    config = setup.ppo

    def one(train, update_key):
        dream_key, ppo_key = jax.random.split(update_key)
        now = params.replace(controller=train.params)
        dreamed = dream(setup, now, real, dream_key, memory, reward_variables)
        batch = batches.to_ppo_batch(
            train.params, dreamed, config.gamma, config.gae_lambda, config.reward_scale
        )
        train, _ = ppo.update(train, batch, ppo_key, config, setup.controller_optimizer)
        return train, None

    keys = jax.random.split(jax.random.fold_in(key, 1), setup.dream_updates)
    return jax.lax.scan(one, train, keys)[0]


def params_of(state: ControlState, vae_params) -> WorldModelParams:
    """Returns the V, M and C parameters the state's next update acts with (M is
    None for model-free PPO; V is the state's own where it keeps learning)."""
    m_params = None if state.mdn is None else state.mdn.params
    if state.vae is not None:
        vae_params = state.vae.params
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
