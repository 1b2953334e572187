"""A thin adapter over ``gymnasium.make_vec`` for CPU environments (Box2D...).

The vector env resets finished episodes in the same step
(``AutoresetMode.SAME_STEP``, gymnasium >= 1.1), so ``step`` returns the next
episode's first observation together with the true last observation of the one
that ended (gymnasium reports it as an object array ``info["final_obs"]`` with
the mask ``info["_final_obs"]``). Pixels are cropped and resized here, in the
main process and for all envs at once, so async workers never run JAX.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from janus_jax.envs import custom, ids
from janus_jax.envs.gymnasium_setup import (
    action_spec,
    env_actions,
    is_image,
    made_with,
    sub_env_setup,
    unsupported,
)
from janus_jax.envs.gymnasium_wrappers import (
    EPISODE_DEFAULTS,
    episode_steps,
    episode_wrappers,
)
from janus_jax.envs.host_rollout import host_rollout, host_step
from janus_jax.envs.preprocess import (
    as_crop,
    as_size,
    cropped_shape,
    preprocess_frames,
)
from janus_jax.envs.rollout import RolloutPolicy, RolloutState
from janus_jax.envs.spec import EnvSpec
from janus_jax.records import Transition

VECTORIZATION_MODES = ("sync", "async")


def _vector_kwargs(mode: str) -> dict:
    kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP}
    if mode == "async":
        # Workers are started afresh: forking a process that runs JAX's threads
        # can deadlock the child.
        kwargs["context"] = "spawn"
    return kwargs


class GymStep(NamedTuple):
    """One step of E envs (numpy); ``obs`` already starts the next episode."""

    obs: np.ndarray  # [E, *observation_shape]
    reward: np.ndarray  # [E] float32
    terminated: np.ndarray  # [E] bool
    truncated: np.ndarray  # [E] bool
    final_obs: np.ndarray  # [E, *observation_shape]: the true last observation


class GymnasiumEnv:
    """E gymnasium envs stepped together; numpy in, numpy out, ``[E, ...]``.

    observation: "state" observes what the env returns; "pixels" observes its
        rgb_array render instead (envs that already return frames keep them),
        so CarRacing, LunarLander and BipedalWalker can share one image model.
    image_size: (h, w) frames are resized to; None keeps the (cropped) size.
    crop: (top, bottom, left, right) pixels removed before resizing.
    vectorization_mode: "sync" (one process) or "async" (one process per env).
    skip_start, action_repeat, no_progress_steps: episode options, see
        ``gymnasium_wrappers`` (no-op steps hidden after each reset; each action
        held for k steps; truncate after n steps without a positive reward, a
        training option left out of evaluation copies).
    env_kwargs: passed to ``gymnasium.make`` for each env (e.g.
        ``max_episode_steps``, ``continuous``).

    env_id: a registered id, gymnasium's ``module:EnvId-vN``, or a class path
    ``module:Class`` naming a gymnasium.Env subclass (made with the env_kwargs).
    env_fn: instead of an id, a callable returning a new env (called with the
    env_kwargs, none by default); env_id then only names it. In async mode it
    must be picklable: each worker process receives it pickled.
    """

    def __init__(
        self,
        env_id: str | None = None,
        num_envs: int = 1,
        *,
        env_fn: Callable[..., gymnasium.Env] | None = None,
        observation: str = "state",
        image_size: tuple[int, int] | None = (64, 64),
        crop: tuple[int, int, int, int] | None = None,
        vectorization_mode: str = "sync",
        skip_start: int = 0,
        action_repeat: int = 1,
        no_progress_steps: int | None = None,
        **env_kwargs,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
        if vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization_mode={vectorization_mode!r} is invalid: must be one "
                f"of {VECTORIZATION_MODES}"
            )
        if env_fn is None and not isinstance(env_id, str):
            raise ValueError(
                f"env_id={env_id!r} is invalid: pass an env id, module:Class, or "
                "env_fn=<a callable returning a new gymnasium env>"
            )
        if env_fn is None and not ids.is_gymnasium_id(env_id):
            raise ValueError(ids.unknown_id_message(env_id, "gymnasium"))
        env_id, source = custom.gymnasium_source(env_id, env_fn)
        if vectorization_mode == "async":
            custom.check_picklable(source, env_id)
        self.made_with = dict(
            observation=observation,
            image_size=image_size,
            crop=crop,
            vectorization_mode=vectorization_mode,
            **env_kwargs,
        )
        episode = dict(
            skip_start=skip_start,
            action_repeat=action_repeat,
            no_progress_steps=no_progress_steps,
        )
        # Recorded only when set, so an env made without them compares equal.
        self.made_with.update(
            {k: v for k, v in episode.items() if v != EPISODE_DEFAULTS[k]}
        )
        if env_fn is not None:
            self.made_with["env_fn"] = env_fn
        kwargs, wrappers = sub_env_setup(observation, env_kwargs)
        wrappers = [*wrappers, *episode_wrappers(**episode)]
        self._vec = gymnasium.make_vec(
            source,
            num_envs,
            vectorization_mode=vectorization_mode,
            vector_kwargs=_vector_kwargs(vectorization_mode),
            wrappers=wrappers,
            **kwargs,
        )
        self._episode = episode
        self._finish_init(env_id, env_kwargs, image_size, crop)

    @classmethod
    def from_envs(
        cls,
        envs: Sequence[gymnasium.Env],
        *,
        image_size: tuple[int, int] | None = (64, 64),
        crop: tuple[int, int, int, int] | None = None,
        env_fn: Callable[..., gymnasium.Env] | None = None,
    ) -> GymnasiumEnv:
        """Returns the given gymnasium envs stepped together as one vector env
        (synchronously, in this process). They must share one spec (id and
        kwargs) or, made without one, one class: a ValueError names the first
        that differs. Its evaluation copies (``remake``) are made from the id,
        else by ``env_fn``, else as copies of ``envs[0]`` taken now."""
        envs = custom.alike(envs)
        if env_fn is None and not custom.rebuildable(envs[0]):
            env_fn = custom.copies_of(envs[0], "envs[0]")
        self = cls.__new__(cls)
        self._episode = dict(EPISODE_DEFAULTS)  # the envs come wrapped as given
        self._vec = gymnasium.vector.SyncVectorEnv(
            [lambda env=env: env for env in envs],
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        rebuilt = custom.rebuildable(envs[0])
        env_id = envs[0].spec.id if rebuilt else custom.name_of(env_fn)
        kwargs = made_with(envs[0]) if env_fn is None else {}
        self.made_with = dict(image_size=image_size, crop=crop, **kwargs)
        if env_fn is not None:
            self.made_with["env_fn"] = env_fn
        self._finish_init(env_id, kwargs, image_size, crop)
        return self

    def _finish_init(self, env_id, env_kwargs, image_size, crop) -> None:
        self._policies: dict = {}
        try:
            self._init_spec(env_id, env_kwargs, image_size, crop)
        except Exception:
            self._vec.close()  # async workers must not outlive a failed build
            raise

    def _init_spec(self, env_id, env_kwargs, image_size, crop) -> None:
        obs_space = self._vec.single_observation_space
        self._image_size = self._crop = None
        if is_image(obs_space):
            self._crop = as_crop(crop)
            cropped = cropped_shape(obs_space.shape, self._crop)
            self._image_size = cropped if image_size is None else as_size(image_size)
            shape, dtype = (*self._image_size, obs_space.shape[-1]), "uint8"
        elif isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1:
            shape, dtype = obs_space.shape, "float32"
        else:
            unsupported(
                env_id,
                "observation",
                obs_space,
                "1-D Box vectors and uint8 (H, W, C) images; observation='pixels' "
                "observes the env's rgb_array render instead",
            )
        action, self._action_start = action_spec(env_id, self._vec.single_action_space)
        max_steps = env_kwargs.get("max_episode_steps")
        if max_steps is None and self._vec.spec is not None:
            max_steps = self._vec.spec.max_episode_steps
        max_steps = episode_steps(
            max_steps, self._episode["skip_start"], self._episode["action_repeat"]
        )
        self.spec = EnvSpec(
            env_id=env_id,
            family="gymnasium",
            observation_shape=shape,
            observation_dtype=dtype,
            action=action,
            on_device=False,
            max_episode_steps=max_steps,
        )

    @property
    def num_envs(self) -> int:
        return self._vec.num_envs

    def __repr__(self) -> str:
        return f"GymnasiumEnv({self.spec.env_id!r}, num_envs={self.num_envs})"

    def _observe(self, raw: np.ndarray) -> np.ndarray:
        if self._image_size is None:
            return np.asarray(raw, np.float32)
        return np.asarray(preprocess_frames(raw, self._image_size, self._crop))

    def _env_actions(self, actions) -> np.ndarray:
        dtype = self._vec.single_action_space.dtype
        return env_actions(self.spec, actions, self.num_envs, dtype, self._action_start)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Returns the first observations [E, ...]; env i is seeded ``seed + i``."""
        obs, _ = self._vec.reset(seed=seed)
        return self._observe(obs)

    def step(self, actions) -> GymStep:
        """Returns the step of all E envs; finished episodes restart at once.

        actions: [E] integers in [0, n) for discrete actions, [E, A] floats for
        continuous ones.
        """
        obs, reward, terminated, truncated, info = self._vec.step(
            self._env_actions(actions)
        )
        ended = info.get("_final_obs", np.zeros(self.num_envs, bool))
        next_obs = self._observe(obs)
        final_obs = next_obs
        if np.any(ended):
            raw_final = np.array(obs, copy=True)
            for i in np.flatnonzero(ended):
                raw_final[i] = info["final_obs"][i]
            final_obs = self._observe(raw_final)
        return GymStep(
            obs=next_obs,
            reward=np.asarray(reward, np.float32),
            terminated=np.asarray(terminated, bool),
            truncated=np.asarray(truncated, bool),
            final_obs=final_obs,
        )

    def start(self, key: jax.Array, policy_state: Any = None) -> RolloutState:
        """Returns the RolloutState of the envs reset now, env i seeded with
        ``seed + i`` for a seed drawn from ``key`` (so the same key, the same
        episodes)."""
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        obs = self.reset(seed=seed)
        return RolloutState(
            obs, None, policy_state, np.zeros(self.num_envs, np.float32)
        )

    def rollout(
        self,
        policy: RolloutPolicy,
        params: Any,
        state: RolloutState,
        key,
        num_steps: int,
        until_ended: np.ndarray | None = None,
    ) -> tuple[RolloutState, Transition]:
        """Returns (state after the last step, Transition [T, E, ...]) by stepping
        the envs on the host; the policy runs jitted (compiled once per policy).
        Keys as in the gymnax rollout: step t acts with
        ``split(split(key, T)[t])[0]``. The record comes back as device arrays
        (``host_rollout``, which ``until_ended`` [E] stops once every env it
        marks has ended an episode)."""
        if (
            isinstance(num_steps, bool)
            or not isinstance(num_steps, int)
            or num_steps < 1
        ):
            raise ValueError(f"num_steps={num_steps!r} is invalid: must be an int >= 1")
        if policy not in self._policies:
            self._policies[policy] = jax.jit(functools.partial(host_step, policy))
        act = self._policies[policy]
        return host_rollout(self, act, params, state, key, num_steps, until_ended)

    def close(self) -> None:
        """Closes the sub-envs (and the worker processes in async mode)."""
        self._vec.close()

    def __enter__(self) -> GymnasiumEnv:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
