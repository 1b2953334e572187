"""The controller's update as pure functions: real rollout records, M's refresh on
them, dreams started from them, and the PPO update on the mix.

``learn`` is shared by both env families; ``gymnax_chunk`` adds the on-device
rollout and scans whole updates, so a gymnax run is one compiled program per
chunk. The gymnasium trainer steps its envs on the host and calls ``learn``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from janus_jax import agent, imagination, ppo
from janus_jax.configs import PPOConfig
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, vae
from janus_jax.train.fit import FitState, fit_chunk


@dataclasses.dataclass(frozen=True)
class ControlSetup:
    """Static settings of the controller phase (closed over by its jitted code)."""

    num_envs: int
    rollout_length: int
    dream_starts: int  # dreams per update (0: no imagination)
    horizon: int
    temperature: float
    use_real: bool  # False at imagination_ratio 1: C learns from dreams only
    window: int  # M's refresh windows, in steps
    num_windows: int
    world_model_updates: int  # M gradient steps per update (0: M frozen)
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
    mdn: FitState
    env_state: Any  # gymnax env states [E] (None for gymnasium: not checkpointable)
    obs: jax.Array  # [E, *obs_shape]
    carry: tuple  # M's carry per env, zero at each episode start
    episode_return: jax.Array  # [E] running return
    key: jax.Array  # uint32 key data; update u uses fold_in(key, u)
    updates: jax.Array  # int32 updates done
    imagined_steps: jax.Array  # int32 dreamed transitions used so far


# ControlState fields with one row per env: sharded over the devices.
PER_ENV_FIELDS = ("env_state", "obs", "carry", "episode_return")


class RealStep(NamedTuple):
    """One step of the controller in the real env, per env (stacked [T, E])."""

    latent: jax.Array  # [E, Z] z_t
    carry: tuple  # M's carry before (z_t, a_t): h_t = hidden(carry)
    raw_action: jax.Array
    action: jax.Array  # the env's action
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_latent: jax.Array  # z of o_{t+1} (the true final obs where it ended)
    next_value: jax.Array  # V of o_{t+1}
    finished_return: jax.Array  # the episode's return where it ended, else 0


def observe(params: WorldModelParams, step: agent.Step, final_obs: jax.Array):
    """Returns (z, V) of the observation after ``step`` (its carry is h_{t+1})."""
    latent = vae.get_latent(params.vae, final_obs)
    hidden = mdn_rnn.hidden(step.carry)
    _, value = controller.apply(params.controller, imagination.features(latent, hidden))
    return latent, value


def record(step: agent.Step, carry, reward, terminated, truncated, nxt, ret):
    """Returns the RealStep of ``step`` and the running return after it, and the
    carry / running return to continue with (reset where the episode ended)."""
    ended = jnp.logical_or(terminated, truncated)
    total = ret + reward
    real = RealStep(
        latent=step.latent,
        carry=carry,
        raw_action=step.raw_action,
        action=step.action,
        log_prob=step.log_prob,
        value=step.value,
        reward=reward,
        terminated=terminated,
        truncated=truncated,
        next_latent=nxt[0],
        next_value=nxt[1],
        finished_return=jnp.where(ended, total, 0.0),
    )
    reset = lambda x: jnp.where(ended[:, None], 0.0, x)  # noqa: E731
    return real, jax.tree.map(reset, step.carry), jnp.where(ended, 0.0, total)


def real_batch(real: RealStep, config: PPOConfig) -> ppo.Batch:
    """Returns the PPO batch [T, E] of a real rollout; GAE keeps termination (no
    future) and truncation (bootstrap from the final observation) apart."""
    advantages, returns = ppo.gae(
        real.reward,
        real.value,
        real.next_value,
        real.terminated,
        real.truncated,
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


def rollout_windows(real: RealStep, action_spec, length: int, num_windows: int):
    """Returns M's training sequences (latents [W, L+1, Z], actions, rewards, dones,
    mask) cut from a rollout [T, E]: a window starts at every ``length``-th step of
    an episode segment and never runs past its end (those steps get mask 0).
    Windows beyond ``num_windows`` are dropped; missing ones are all masked."""
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
        [jnp.swapaxes(real.latent, 0, 1)[env, t0][:, None], take(real.next_latent)], 1
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


def dream(setup: ControlSetup, params: WorldModelParams, real: RealStep, key):
    """Returns the Trajectory [H, S] dreamed from S (z_t, carry_t) of the rollout."""
    start_key, dream_key = jax.random.split(key)
    flat = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
    size = setup.num_envs * setup.rollout_length
    replace = setup.dream_starts > size
    index = jax.random.choice(start_key, size, (setup.dream_starts,), replace=replace)
    z0 = flat(real.latent)[index]
    h0 = jax.tree.map(lambda x: flat(x)[index], real.carry)
    if setup.start_sharding is not None:
        z0, h0 = jax.lax.with_sharding_constraint((z0, h0), setup.start_sharding)
    return imagination.imagine(
        dream_key, params, z0, h0, setup.horizon, setup.temperature
    )


def learn(
    setup: ControlSetup, params: WorldModelParams, state: ControlState, real, key
):
    """Returns (state, metrics) after M's refresh on the rollout ``real`` [T, E] and
    a PPO update on it and/or on dreams started from it.

    M learns from the rollout before dreaming (as Dyna and Dreamer order it), so
    dreams see the current policy's failures; the dreams' start carries come from
    M one refresh older, a negligible mismatch.
    """
    dream_key, ppo_key = jax.random.split(key)
    metrics = {}
    if setup.world_model_updates:
        sequences = rollout_windows(
            real, params.controller.action, setup.window, setup.num_windows
        )
        batches = jax.tree.map(
            lambda x: jnp.broadcast_to(x, (setup.world_model_updates,) + x.shape),
            sequences,
        )
        mdn_state, metrics = fit_chunk(
            state.mdn, batches, loss_fn=_mdn_loss, optimizer=setup.mdn_optimizer
        )
        metrics = {k: v for k, v in metrics.items() if k.startswith("mdn/")}
        state = state.replace(mdn=mdn_state)
        params = params.replace(mdn_rnn=mdn_state.params)
    config = setup.ppo
    parts = [real_batch(real, config)] if setup.use_real else []
    if setup.dream_starts:
        traj = dream(setup, params, real, dream_key)
        parts.append(imagination.to_ppo_batch(traj, config.gamma, config.gae_lambda))
        metrics["dream/steps"] = jnp.sum(traj.mask)
        dreamed = jnp.sum(traj.mask).astype(jnp.int32)
        state = state.replace(imagined_steps=state.imagined_steps + dreamed)
        metrics["dream/reward"] = jnp.sum(traj.rewards * traj.mask) / setup.dream_starts
    flat = lambda *xs: jnp.concatenate([x.reshape((-1,) + x.shape[2:]) for x in xs])  # noqa: E731
    train, ppo_metrics = ppo.update(
        state.train, jax.tree.map(flat, *parts), ppo_key, config, setup.optimizer
    )
    metrics.update(ppo_metrics)
    ended = jnp.logical_or(real.terminated, real.truncated)
    metrics["real/return_sum"] = jnp.sum(real.finished_return)
    metrics["real/episodes"] = jnp.sum(ended).astype(jnp.float32)
    return state.replace(train=train, updates=state.updates + 1), metrics


def update_key(state: ControlState) -> jax.Array:
    """Returns the key of the state's next update (from the state alone)."""
    return jax.random.fold_in(jax.random.wrap_key_data(state.key), state.updates)


def gymnax_rollout(env, setup: ControlSetup, params: WorldModelParams, state, key):
    """Returns (state, RealStep [T, E]): C acting in a gymnax env for T steps."""

    def body(state: ControlState, step_key):
        act_key, env_key = jax.random.split(step_key)
        step = agent.act(params, state.carry, state.obs, act_key)
        out = jax.vmap(env.step)(
            jax.random.split(env_key, setup.num_envs), state.env_state, step.action
        )
        nxt = observe(params, step, out.final_obs)
        real, carry, ret = record(
            step,
            state.carry,
            out.reward,
            out.terminated,
            out.truncated,
            nxt,
            state.episode_return,
        )
        state = state.replace(
            env_state=out.state, obs=out.obs, carry=carry, episode_return=ret
        )
        return state, real

    keys = jax.random.split(key, setup.rollout_length)
    return jax.lax.scan(body, state, keys)


def gymnax_update(env, setup: ControlSetup, vae_params, state: ControlState, _):
    """Returns (state, metrics) after one real rollout and ``learn`` on it."""
    rollout_key, learn_key = jax.random.split(update_key(state))
    params = WorldModelParams(vae_params, state.mdn.params, state.train.params)
    state, real = gymnax_rollout(env, setup, params, state, rollout_key)
    return learn(setup, params, state, real, learn_key)


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


def gymnax_chunk(state, vae_params, *, env, setup: ControlSetup, num_updates: int):
    """Returns (state, summarized metrics) after ``num_updates`` updates, one scan."""

    def body(state, _):
        return gymnax_update(env, setup, vae_params, state, None)

    state, metrics = jax.lax.scan(body, state, None, length=num_updates)
    return state, summarize(metrics)
