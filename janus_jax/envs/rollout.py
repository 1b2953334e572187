"""The one rollout interface both env families implement.

``env.start(key, policy_state)`` resets ``env.num_envs`` envs and returns a
``RolloutState``; ``env.rollout(policy, params, state, key, num_steps)``
returns ``(state, Transition [T, E, ...])``. gymnax envs implement it as pure
JAX (vmap over envs, scan over steps: jit it and it is one program); gymnasium
envs step on the host, calling the policy jitted. ``compiled(env, policy,
num_steps)`` returns the fastest form of either, so collection, evaluation, the
trainer and the pictures are written once.

A ``RolloutPolicy`` is a pure ``policy(params, key, obs [E, ...], state) ->
PolicyStep``
(hashable: it is a static argument under jit). Where an episode ends, the
rollout zeroes that env's policy state (M's carry starts each episode at 0).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from janus_jax.config.models import ActionSpec
from janus_jax.envs.spec import action_shape, random_actions
from janus_jax.records import PolicyStep, Transition

# A policy acting in an env: (params, key, obs [E, ...], state) -> PolicyStep.
RolloutPolicy = Callable[[Any, jax.Array, jax.Array, Any], PolicyStep]
# A stateless action function: (key, obs [E, ...]) -> actions [E, ...].
ActionFn = Callable[[jax.Array, jax.Array], jax.Array]


@struct.dataclass
class RolloutState:
    """Where E envs stand between two rollouts (every leaf has the env axis)."""

    obs: Any  # [E, *observation_shape]: the observation to act on next
    env_state: Any  # gymnax env states [E] (None: a gymnasium env holds its own)
    policy_state: Any  # the policy's state per env (None for stateless policies)
    episode_return: Any  # [E] the running return of each env's episode


def reset_where(ended: jax.Array, tree: Any) -> Any:
    """Returns ``tree`` with the rows [E, ...] of ended envs set to zero."""

    def reset(x):
        mask = jnp.reshape(ended, ended.shape + (1,) * (x.ndim - ended.ndim))
        return jnp.where(mask, jnp.zeros_like(x), x)

    return jax.tree.map(reset, tree)


def check_actions(env_id: str, action: ActionSpec, actions, num_envs: int) -> None:
    """Raises ValueError unless ``actions`` has the shape E envs of ``action`` need."""
    want = action_shape(action, num_envs)
    if tuple(actions.shape) != want:
        raise ValueError(
            f"{env_id}: the policy returned actions of shape {tuple(actions.shape)}; "
            f"expected {want} for {num_envs} envs and {action}"
        )


def recorded(xp, obs, action, info, out, episode_return):
    """Returns (the step's Transition, ended [E], the running return to go on
    with: reset where the episode ended), computed with ``xp`` (``jax.numpy``
    inside a compiled rollout, ``numpy`` on the host). ``out`` is an env step's
    output (reward, terminated, truncated, final_obs)."""
    ended = xp.logical_or(out.terminated, out.truncated)
    total = episode_return + out.reward
    zero = total.dtype.type(0)
    transition = Transition(
        obs=obs,
        action=action,
        reward=out.reward,
        terminated=out.terminated,
        truncated=out.truncated,
        next_obs=out.final_obs,
        info=info,
        episode_return=xp.where(ended, total, zero),
    )
    return transition, ended, xp.where(ended, zero, total)


def record(obs, step: PolicyStep, out, episode_return) -> tuple[Transition, Any, Any]:
    """Returns (the step's Transition, the policy state and running return to go on
    with): both reset where the episode ended (``recorded`` in JAX)."""
    transition, ended, ret = recorded(
        jnp, obs, step.action, step.info, out, episode_return
    )
    return transition, reset_where(ended, step.state), ret


@dataclasses.dataclass(frozen=True)
class RandomPolicy:
    """Uniformly random actions of ``action`` (its params are ignored)."""

    action: ActionSpec

    def __call__(self, params, key, obs, state) -> PolicyStep:
        return PolicyStep(random_actions(key, self.action, obs.shape[0]), state)


@dataclasses.dataclass(frozen=True)
class StatelessPolicy:
    """Wraps a pure ``fn(key, obs [E, ...]) -> actions [E, ...]`` as a
    RolloutPolicy."""

    fn: ActionFn

    def __call__(self, params, key, obs, state) -> PolicyStep:
        return PolicyStep(self.fn(key, obs), state)


@functools.partial(jax.jit, static_argnames=("env", "policy", "num_steps"))
def _on_device(env, policy, params, state, key, num_steps):
    return env.rollout(policy, params, state, key, num_steps)


def compiled(env, policy: RolloutPolicy, num_steps: int):
    """Returns ``run(params, state, key) -> (state, Transition [T, E, ...])``: one
    compiled program for gymnax envs, a host loop with a jitted policy for
    gymnasium envs."""
    if env.spec.on_device:
        return functools.partial(_on_device, env, policy, num_steps=num_steps)
    return functools.partial(env.rollout, policy, num_steps=num_steps)
