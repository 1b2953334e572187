"""Imagination: a policy acting inside the world model's dream, on-device.

``world_step`` is the one C -> M step, shared by the real controller (``act``)
and the dream: the policy picks a_t from [z_t, h_t] and M advances its carry.
``dream_step`` adds M's sample of z_{t+1}, the reward and the done; ``imagine``
scans it over a horizon and vmaps it over start states. The policy is an
argument (a pure ``policy(key, features) -> PolicyOut``, C's own by default) or
a fixed action sequence (the open-loop dream of the pictures). A dream is a
``Transition`` like a real rollout, with latents for observations, and
``batches.to_ppo_batch`` turns either into PPO's batch.

Rewards: M's reward head by default, or a ``RewardFn``: a pure
``reward_fn(z_t [Z], a_t [A], z_next [Z]) -> []`` for ONE example (the dream
vmaps it over start states and scans it over steps), where a_t is the action
vector M sees (one-hot for discrete actions, the env's values for continuous
ones) and z_next the latent M sampled. Under a caller's jit it is static:
hashable, and the same object reuses the compiled program. A learned reward
model is such a function closing over its parameters, built inside the traced
code that owns them (``models.reward.scorer``; the controller's training binds
``ControlState.reward``'s there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from janus_jax.models import controller, mdn_rnn, vae
from janus_jax.records import Transition

RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""A pure ``reward_fn(z_t [Z], a_t [A], z_next [Z]) -> []`` for one example."""
DONE_MODES = ("sample", "threshold")


@struct.dataclass
class WorldModelParams:
    """V, M and C parameters together (each carries its own static config)."""

    vae: vae.VAEParams
    mdn_rnn: mdn_rnn.MDNRNNParams
    controller: controller.ControllerParams


class PolicyOut(NamedTuple):
    """A policy's choice on [z, h] (any batch shape)."""

    raw_action: jax.Array  # int32 or the pre-squash float action (PPO's)
    action: jax.Array  # the env's action
    log_prob: jax.Array  # log pi(raw_action) (0 for fixed actions)
    value: jax.Array  # V([z, h]) (0 for fixed actions)


class ActInfo(NamedTuple):
    """What a step of C and M records for learning (``Transition.info``)."""

    latent: jax.Array  # [..., Z] z_t
    # M's carry before (z_t, a_t) in real rollouts (the replay and the dreams'
    # start states need it); None in a dream, which keeps only h_t (a
    # transformer's carry is its whole key/value cache: per dreamed step, that
    # is 33.1 KiB against an LSTM's 2.0 KiB at the paper's sizes)
    carry: tuple | None
    raw_action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    next_hidden: jax.Array | None  # [..., H] h_{t+1}, M's output after (z_t, a_t)
    hidden: jax.Array | None  # [..., H] h_t = hidden(carry) (None without M)


DreamPolicy = Callable[[jax.Array, jax.Array], PolicyOut]
"""A pure ``policy(key, features [..., Z + H]) -> PolicyOut``."""


def features(latent: jax.Array, hidden: jax.Array | None) -> jax.Array:
    """Returns the controller's input [z, h] [..., Z + H] (z alone without M)."""
    return latent if hidden is None else jnp.concatenate([latent, hidden], axis=-1)


def observation_features(obs: jax.Array, batch_dims: int = 1) -> jax.Array:
    """Returns what model-free C sees of raw observations [*B, ...]: float32,
    pixels (uint8) / 255, flattened to [*B, D]."""
    x = obs.astype(jnp.float32)
    if obs.dtype == jnp.uint8:
        x = x / 255.0
    return x.reshape(obs.shape[:batch_dims] + (-1,))


def controller_act(
    params: controller.ControllerParams,
    key,
    feats,
    deterministic: bool | str = False,
) -> PolicyOut:
    """Returns C's choice on ``feats``: sampled (``deterministic`` False), the
    mode (True) or the expected action ("mean": ``controller.mean_action``)."""
    policy, value = controller.apply(params, feats)
    if deterministic == "mean":
        raw = controller.mean_action(params, policy)
    elif deterministic:
        raw = controller.mode(params, policy)
    else:
        raw = controller.sample(key, params, policy)
    log_prob = controller.log_prob(params, policy, raw)
    return PolicyOut(raw, controller.env_action(params, raw), log_prob, value)


def fixed_action(action: jax.Array) -> DreamPolicy:
    """Returns a policy for one start state that takes ``action`` (log-prob and
    value 0)."""
    zero = jnp.zeros(())  # one start state: a scalar log-prob and value
    return lambda key, feats: PolicyOut(action, action, zero, zero)


def world_step(
    params: WorldModelParams,
    policy: DreamPolicy,
    carry,
    latent,
    key,
    keep_carry: bool = True,
):
    """Returns (M's carry after (z_t, a_t), M's output, ActInfo, a_t): ``policy``
    acts on [z_t, h_t], then M advances by (z_t, a_t). ``keep_carry`` False
    leaves M's carry out of the ActInfo (h_t stays)."""
    hidden = mdn_rnn.hidden(carry)
    choice = policy(key, features(latent, hidden))
    action_vector = controller.encode_action(
        params.controller.action, choice.action, params.controller.task
    )
    next_carry, out = mdn_rnn.step(params.mdn_rnn, carry, latent, action_vector)
    info = ActInfo(
        latent=latent,
        carry=carry if keep_carry else None,
        raw_action=choice.raw_action,
        log_prob=choice.log_prob,
        value=choice.value,
        next_hidden=mdn_rnn.hidden(next_carry),
        hidden=hidden,
    )
    return next_carry, out, info, choice.action


class DreamState(NamedTuple):
    """What one dream step carries to the next (one start state, no batch axis)."""

    carry: tuple  # the MDN-RNN state, leaves [H]
    latent: jax.Array  # [Z] z_t
    alive: jax.Array  # [] 1 until a termination has been predicted


def dream_step(
    params: WorldModelParams,
    policy: DreamPolicy,
    state: DreamState,
    key: jax.Array,
    temperature: jax.Array,
    reward_fn: RewardFn | None = None,
    done_mode: str = "sample",
) -> tuple[DreamState, Transition]:
    """Returns (next state, this step's Transition) of one dreamed step for one
    start state (no time or batch axes; ``truncated`` is 0: ``imagine`` sets it).

    done_mode "sample" ends the dream with probability sigmoid(done_logit);
    "threshold" ends it when that probability exceeds 0.5.
    """
    policy_key, latent_key, done_key = jax.random.split(key, 3)
    carry, out, info, action = world_step(
        params, policy, state.carry, state.latent, policy_key, keep_carry=False
    )
    next_latent = mdn_rnn.sample(latent_key, out, temperature)
    if reward_fn is None:
        reward = out.reward
    else:
        action_vector = controller.encode_action(
            params.controller.action, action, params.controller.task
        )
        reward = reward_fn(state.latent, action_vector, next_latent)
        reward = jnp.asarray(reward, jnp.float32).reshape(())
    done = jnp.zeros((), jnp.float32)
    if params.mdn_rnn.config.predict_done:
        # Terminations are rare, so p(done) seldom passes 0.5: a threshold would let
        # most dreams run on past the failures the model foresees. Sample instead.
        if done_mode == "sample":
            done = jax.random.bernoulli(done_key, jax.nn.sigmoid(out.done_logit))
        else:
            done = out.done_logit > 0.0
        done = done.astype(jnp.float32)
    alive = state.alive
    transition = Transition(
        obs=state.latent,
        action=action,
        reward=reward * alive,
        terminated=done * alive,
        truncated=jnp.zeros(()),
        next_obs=next_latent,
        info=info,
        mask=alive,
    )
    return DreamState(carry, next_latent, alive * (1.0 - done)), transition


def _check(params: WorldModelParams, z0, horizon, reward_fn, done_mode) -> None:
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


def imagine(
    key: jax.Array,
    params: WorldModelParams,
    z0: jax.Array,
    carry0: tuple | None = None,
    horizon: int | None = None,
    temperature: float | jax.Array | None = None,
    reward_fn: RewardFn | None = None,
    done_mode: str = "sample",
    *,
    policy: DreamPolicy | None = None,
    actions: jax.Array | None = None,
) -> Transition:
    """Returns the dreamed Transition [T=horizon, B, ...] from B start states.

    z0: start latents [B, Z]; carry0: M's carry for them (leaves [B, H]) or None
    for the zero state; temperature: tau (default: the MDN-RNN config's).
    policy: a pure ``(key, features [Z + H]) -> PolicyOut`` for one start state
    (default: C in ``params.controller``, sampling); or ``actions`` [T, B] /
    [T, B, A]: a fixed action sequence (the horizon is its length).
    reward_fn: a pure (z_t [Z], a_t [A], z_next [Z]) -> scalar for one example,
    a_t being the action vector M sees (one-hot if discrete, the env's values
    if continuous) and z_next M's sample of z_{t+1}; None uses M's reward head
    (which then must exist: ``MDNRNNConfig.predict_reward``). Its reward is
    masked like M's: 0 once a dream has ended. done_mode: "sample" (a dream
    ends with probability sigmoid(done_logit) at each step) or "threshold"
    (when that is above 0.5). ``horizon``, ``reward_fn``, ``policy`` and
    ``done_mode`` must be static under jit (a closure over traced parameters is
    fine when built inside the jitted code); start state i uses key
    split(key, B)[i]. The returned ``action`` is the env's (indices for
    discrete actions), as a real rollout records it.
    """
    if actions is not None:
        if policy is not None:
            raise ValueError("pass policy= or actions= to imagine, not both")
        if horizon is not None and horizon != actions.shape[0]:
            raise ValueError(
                f"horizon={horizon!r} differs from the {actions.shape[0]} steps of "
                "actions: leave horizon unset with actions="
            )
        horizon = int(actions.shape[0])
    _check(params, z0, horizon, reward_fn, done_mode)
    m_config = params.mdn_rnn.config
    tau = jnp.asarray(
        m_config.temperature if temperature is None else temperature, jnp.float32
    )
    batch = z0.shape[0]
    if carry0 is None:
        carry0 = mdn_rnn.initial_carry(m_config, (batch,))
    if policy is None:
        c_params = params.controller
        policy = lambda k, f: controller_act(c_params, k, f)  # noqa: E731
    # Per start state: the actions of that dream, time-major [T, ...].
    per_start = None if actions is None else jnp.swapaxes(actions, 0, 1)

    def one(key, latent, carry, own_actions):
        def body(state, inputs):
            step_key, action = inputs
            act = policy if action is None else fixed_action(action)
            return dream_step(params, act, state, step_key, tau, reward_fn, done_mode)

        init = DreamState(carry, latent, jnp.ones((), jnp.float32))
        _, traj = jax.lax.scan(
            body, init, (jax.random.split(key, horizon), own_actions)
        )
        return traj

    traj = jax.vmap(one)(jax.random.split(key, batch), z0, carry0, per_start)
    traj = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), traj)
    return traj._replace(truncated=jnp.zeros_like(traj.reward).at[-1].set(1.0))
