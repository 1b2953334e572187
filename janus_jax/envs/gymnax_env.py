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

from collections.abc import Mapping
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from janus_jax.config.models import ActionSpec
from janus_jax.envs import ids
from janus_jax.envs.rollout import (
    RolloutPolicy,
    RolloutState,
    check_actions,
    record,
)
from janus_jax.envs.spec import EnvSpec
from janus_jax.records import Transition


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
    """A gymnax environment with its params: pure ``reset``/``step`` for one env,
    and ``start``/``rollout`` for ``num_envs`` of them at once (vmapped).

    num_envs: how many envs ``start`` resets (the batch of every rollout).
    env_params: overrides of the env's default params, e.g.
        ``{"max_steps_in_episode": 200}``.
    env_kwargs: passed to ``gymnax.make`` (the env's constructor).
    """

    def __init__(
        self,
        env_id: str,
        *,
        num_envs: int = 1,
        env_params: Mapping[str, Any] | None = None,
        **env_kwargs,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
        self.num_envs = num_envs
        if env_id not in gymnax.registered_envs:
            raise ValueError(ids.unknown_id_message(env_id, "gymnax"))
        self.made_with = {"env_params": env_params, **env_kwargs}
        """What ``make`` needs to build this env again (``envs.remake``)."""
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
        return f"GymnaxEnv({self.spec.env_id!r}, num_envs={self.num_envs})"

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

    def start(self, key: jax.Array, policy_state: Any = None) -> RolloutState:
        """Returns the RolloutState of ``num_envs`` freshly reset envs (env i
        reset with ``split(key, num_envs)[i]``)."""
        obs, env_state = jax.vmap(self.reset)(jax.random.split(key, self.num_envs))
        return RolloutState(obs, env_state, policy_state, jnp.zeros(self.num_envs))

    def rollout(
        self,
        policy: RolloutPolicy,
        params: Any,
        state: RolloutState,
        key,
        num_steps: int,
    ) -> tuple[RolloutState, Transition]:
        """Returns (state after the last step, Transition [T, E, ...]): pure, one
        ``lax.scan`` over the steps of the vmapped envs. Step t uses
        ``split(key, T)[t]``, split into (policy key, env key); the env key into
        one key per env."""
        num_envs = state.episode_return.shape[0]
        step_envs = jax.vmap(self.step)

        def one_step(state: RolloutState, key_t):
            key_act, key_env = jax.random.split(key_t)
            step = policy(params, key_act, state.obs, state.policy_state)
            check_actions(self.spec.env_id, self.spec.action, step.action, num_envs)
            out = step_envs(
                jax.random.split(key_env, num_envs), state.env_state, step.action
            )
            transition, policy_state, ret = record(
                state.obs, step, out, state.episode_return
            )
            return RolloutState(out.obs, out.state, policy_state, ret), transition

        return jax.lax.scan(one_step, state, jax.random.split(key, num_steps))

    def close(self) -> None:
        """Does nothing: a gymnax env holds no resources (here for symmetry)."""

    def __enter__(self) -> GymnaxEnv:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
