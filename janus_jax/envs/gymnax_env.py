"""gymnax environments as pure functions, and a rollout compiled as one program.

gymnax 1.0.1's ``step`` returns six values (obs, state, reward, terminated,
truncated, info), resets finished episodes itself, and keeps the pre-reset
observation in ``info["final_observation"]``; ``GymnaxEnv.step`` surfaces it
as ``StepOut.final_obs`` so a world model never learns that a reset is a
transition.

Observations are float32 and reshaped to what V accepts: scalars (FrozenLake)
become (1,), matrices (Catch, DeepSea) are flattened to vectors, and 3-D
observations stay channels-last images. MinAtar's [10, 10, C] observations are
kept as float32 images of 0s and 1s (not uint8: they are channel masks, not
pixels); a convolutional VAE for them needs at most two 4x4 stride-2 layers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from janus_jax.configs import ActionSpec
from janus_jax.envs import ids
from janus_jax.envs.spec import (
    EnvSpec,
    Transition,
    action_shape,
    random_actions,
)

Policy = Callable[[jax.Array, jax.Array], jax.Array]
"""A pure ``(key, obs [E, ...]) -> action [E, ...]``."""


class StepOut(NamedTuple):
    """One env step; ``obs``/``state`` already belong to the next episode if done."""

    obs: jax.Array  # [*observation_shape] float32
    state: Any  # the gymnax env state pytree
    reward: jax.Array  # [] float32
    terminated: jax.Array  # [] bool
    truncated: jax.Array  # [] bool
    final_obs: jax.Array  # [*observation_shape]: the pre-reset observation


def _observation_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 0:
        return (1,)
    if len(shape) == 3:
        return tuple(shape)
    size = 1
    for s in shape:
        size *= s
    return (size,)


def _action_spec(env_id: str, space) -> ActionSpec:
    if isinstance(space, spaces.Discrete):
        return ActionSpec(continuous=False, dim=int(space.n))
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        dim = int(space.shape[0])
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), (dim,))
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), (dim,))
        return ActionSpec(
            continuous=True,
            dim=dim,
            low=tuple(float(v) for v in low),
            high=tuple(float(v) for v in high),
        )
    raise ValueError(
        f"{env_id}: action space {space} is not supported: janus-jax handles "
        "Discrete(n) and one-dimensional Box actions"
    )


class GymnaxEnv:
    """One gymnax environment with its params; pure methods, vmap for many.

    env_params: overrides of the env's default params, e.g.
        ``{"max_steps_in_episode": 200}``.
    env_kwargs: passed to ``gymnax.make`` (the env's constructor).
    """

    def __init__(
        self,
        env_id: str,
        *,
        env_params: Mapping[str, Any] | None = None,
        **env_kwargs,
    ):
        if env_id not in gymnax.registered_envs:
            raise ValueError(ids.unknown_id_message(env_id, "gymnax"))
        self.env, params = gymnax.make(env_id, **env_kwargs)
        if env_params:
            params = params.replace(**dict(env_params))
        self.params = params
        obs = jax.eval_shape(self.env.reset, jax.random.key(0), params)[0]
        if not isinstance(obs, jax.ShapeDtypeStruct):
            raise ValueError(
                f"{env_id}: observations of type {type(obs).__name__} are not "
                "supported: janus-jax handles single arrays"
            )
        max_steps = getattr(params, "max_steps_in_episode", None)
        self.spec = EnvSpec(
            env_id=env_id,
            family="gymnax",
            observation_shape=_observation_shape(obs.shape),
            observation_dtype="float32",
            action=_action_spec(env_id, self.env.action_space(params)),
            on_device=True,
            max_episode_steps=None if max_steps is None else int(max_steps),
        )

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.spec.env_id!r})"

    def _observe(self, obs: jax.Array) -> jax.Array:
        return jnp.asarray(obs, jnp.float32).reshape(self.spec.observation_shape)

    def reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        """Returns the first observation [*observation_shape] and the env state."""
        obs, state = self.env.reset(key, self.params)
        return self._observe(obs), state

    def step(self, key: jax.Array, state: Any, action: jax.Array) -> StepOut:
        """Returns the step of one env, auto-reset when the episode ended.

        action: [] int for discrete actions, [A] float for continuous ones.
        """
        dtype = jnp.float32 if self.spec.action.continuous else jnp.int32
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, jnp.asarray(action, dtype), self.params
        )
        return StepOut(
            obs=self._observe(obs),
            state=state,
            reward=jnp.asarray(reward, jnp.float32),
            terminated=jnp.asarray(terminated, bool),
            truncated=jnp.asarray(truncated, bool),
            final_obs=self._observe(info["final_observation"]),
        )


def _act(
    env: GymnaxEnv, key: jax.Array, obs: jax.Array, policy: Policy | None
) -> jax.Array:
    num_envs = obs.shape[0]
    if policy is None:
        return random_actions(key, env.spec.action, num_envs)
    action = policy(key, obs)
    want = action_shape(env.spec.action, num_envs)
    if action.shape != want:
        raise ValueError(
            f"{env.spec.env_id}: the policy returned actions of shape "
            f"{action.shape}; expected {want} for {num_envs} envs and {env.spec.action}"
        )
    return action


def rollout_from(
    env: GymnaxEnv,
    key: jax.Array,
    obs: jax.Array,
    state: Any,
    num_steps: int,
    policy: Policy | None = None,
) -> tuple[tuple[jax.Array, Any], Transition]:
    """Returns ((obs, state) after the last step, Transition [T, E, ...]).

    Continues E envs from ``obs [E, ...]`` and a batched ``state``. Keys: step t
    uses ``split(key, T)[t]``, split into (policy key, env key); the env key is
    split into one key per env.
    """
    num_envs = obs.shape[0]
    vmapped_step = jax.vmap(env.step)

    def one_step(carry, key_t):
        obs_t, state_t = carry
        key_act, key_env = jax.random.split(key_t)
        action = _act(env, key_act, obs_t, policy)
        out = vmapped_step(jax.random.split(key_env, num_envs), state_t, action)
        return (out.obs, out.state), Transition.of_step(obs_t, action, out)

    return jax.lax.scan(one_step, (obs, state), jax.random.split(key, num_steps))


def rollout(
    env: GymnaxEnv,
    key: jax.Array,
    num_envs: int,
    num_steps: int,
    policy: Policy | None = None,
) -> Transition:
    """Returns T steps of E freshly reset envs, time-major ``[T, E, ...]``.

    One program: the envs are vmapped and the steps run in a ``lax.scan``.
    policy: pure ``(key, obs [E, ...]) -> action [E] or [E, A]``; None samples
    uniform random actions. The caller compiles, e.g.
    ``jax.jit(rollout, static_argnums=(0, 2, 3, 4))``. Keys: ``key`` is split
    into (reset key, scan key); the reset key into one key per env; the scan key
    is used as in ``rollout_from``.
    """
    key_reset, key_scan = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(key_reset, num_envs))
    _, transitions = rollout_from(env, key_scan, obs, state, num_steps, policy)
    return transitions
