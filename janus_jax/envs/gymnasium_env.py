"""A thin adapter over ``gymnasium.make_vec`` for CPU environments (Box2D...).

The vector env resets finished episodes in the same step
(``AutoresetMode.SAME_STEP``, gymnasium >= 1.1), so ``step`` returns the next
episode's first observation together with the true last observation of the one
that ended (gymnasium reports it as an object array ``info["final_obs"]`` with
the mask ``info["_final_obs"]``). Pixels are cropped and resized here, in the
main process and for all envs at once, so async workers never run JAX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, NoReturn

import gymnasium
import jax
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import AddRenderObservation

from janus_jax.configs import ActionSpec
from janus_jax.envs import ids
from janus_jax.envs.preprocess import (
    as_crop,
    as_size,
    cropped_shape,
    preprocess_frames,
)
from janus_jax.envs.spec import EnvSpec, Transition, action_shape, random_actions

OBSERVATIONS = ("state", "pixels")
VECTORIZATION_MODES = ("sync", "async")


class GymStep(NamedTuple):
    """One step of E envs (numpy); ``obs`` already starts the next episode."""

    obs: np.ndarray  # [E, *observation_shape]
    reward: np.ndarray  # [E] float32
    terminated: np.ndarray  # [E] bool
    truncated: np.ndarray  # [E] bool
    final_obs: np.ndarray  # [E, *observation_shape]: the true last observation


def _is_image(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and len(space.shape) == 3
        and space.dtype == np.uint8
    )


class RenderObservation(AddRenderObservation):
    """``AddRenderObservation`` whose env can be rebuilt from its spec.

    gymnasium <= 1.3.0 records its arguments under their pre-1.0 names
    (``pixels_only``), so ``gymnasium.make(env.spec)`` and ``check_env`` fail
    with a TypeError (fixed upstream in Farama-Foundation/Gymnasium#1658).
    """

    def __init__(
        self,
        env: gymnasium.Env,
        render_only: bool = True,
        render_key: str = "pixels",
        obs_key: str = "state",
    ):
        # Recorded first: RecordConstructorArgs keeps the first record it gets.
        gymnasium.utils.RecordConstructorArgs.__init__(
            self, render_only=render_only, render_key=render_key, obs_key=obs_key
        )
        super().__init__(env, render_only, render_key, obs_key)


def _observe_render(env: gymnasium.Env) -> gymnasium.Env:
    # Envs that already observe pixels (CarRacing) keep their own frames.
    if _is_image(env.observation_space):
        return env
    return RenderObservation(env, render_only=True)


def _sub_env_setup(
    observation: str, env_kwargs: dict[str, Any]
) -> tuple[dict[str, Any], list[Callable[[gymnasium.Env], gymnasium.Env]]]:
    if observation not in OBSERVATIONS:
        raise ValueError(
            f"observation={observation!r} is invalid: must be one of {OBSERVATIONS}"
        )
    if observation == "state":
        return dict(env_kwargs), []
    render_mode = env_kwargs.get("render_mode", "rgb_array")
    if render_mode != "rgb_array":
        raise ValueError(
            f"render_mode={render_mode!r} is invalid with observation='pixels': "
            "the frames come from render_mode='rgb_array'"
        )
    return {**env_kwargs, "render_mode": "rgb_array"}, [_observe_render]


def make_single_env(
    env_id: str, observation: str = "state", **env_kwargs
) -> gymnasium.Env:
    """Returns one sub-env built as ``GymnasiumEnv`` builds each of its envs.

    The frames are not yet cropped or resized: that happens batched in the
    vector adapter. Useful for gymnasium's ``check_env`` and for rendering.
    """
    kwargs, wrappers = _sub_env_setup(observation, env_kwargs)
    env = gymnasium.make(env_id, **kwargs)
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def _unsupported(env_id: str, what: str, space: spaces.Space, allowed: str) -> NoReturn:
    raise ValueError(
        f"{env_id}: {what} space {space} is not supported: janus-jax handles {allowed}"
    )


def _action_spec(env_id: str, space: spaces.Space) -> tuple[ActionSpec, int]:
    """Returns the ActionSpec and the offset added to actions (Discrete start)."""
    if isinstance(space, spaces.Discrete):
        # The agent always emits 0..n-1; Discrete(n, start=s) gets action + s.
        return ActionSpec(continuous=False, dim=int(space.n)), int(space.start)
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            _unsupported(env_id, "action", space, "Box actions with finite bounds")
        low, high = (tuple(float(v) for v in b) for b in (space.low, space.high))
        return ActionSpec(continuous=True, dim=len(low), low=low, high=high), 0
    _unsupported(env_id, "action", space, "Discrete(n) and 1-D Box actions")


class GymnasiumEnv:
    """E gymnasium envs stepped together; numpy in, numpy out, ``[E, ...]``.

    observation: "state" observes what the env returns; "pixels" observes its
        rgb_array render instead (envs that already return frames keep them),
        so CarRacing, LunarLander and BipedalWalker can share one image model.
    image_size: (h, w) frames are resized to; None keeps the (cropped) size.
    crop: (top, bottom, left, right) pixels removed before resizing.
    vectorization_mode: "sync" (one process) or "async" (one process per env).
    env_kwargs: passed to ``gymnasium.make`` for each env (e.g.
        ``max_episode_steps``, ``continuous``).
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int = 1,
        *,
        observation: str = "state",
        image_size: tuple[int, int] | None = (64, 64),
        crop: tuple[int, int, int, int] | None = None,
        vectorization_mode: str = "sync",
        **env_kwargs,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs={num_envs!r} is invalid: must be an int >= 1")
        if vectorization_mode not in VECTORIZATION_MODES:
            raise ValueError(
                f"vectorization_mode={vectorization_mode!r} is invalid: must be one "
                f"of {VECTORIZATION_MODES}"
            )
        if not ids.is_gymnasium_id(env_id):
            raise ValueError(ids.unknown_id_message(env_id, "gymnasium"))
        kwargs, wrappers = _sub_env_setup(observation, env_kwargs)
        self._vec = gymnasium.make_vec(
            env_id,
            num_envs,
            vectorization_mode=vectorization_mode,
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            wrappers=wrappers,
            **kwargs,
        )
        try:
            self._init_spec(env_id, env_kwargs, image_size, crop)
        except Exception:
            self._vec.close()  # async workers must not outlive a failed build
            raise

    def _init_spec(self, env_id, env_kwargs, image_size, crop) -> None:
        obs_space = self._vec.single_observation_space
        self._image_size = self._crop = None
        if _is_image(obs_space):
            self._crop = as_crop(crop)
            cropped = cropped_shape(obs_space.shape, self._crop)
            self._image_size = cropped if image_size is None else as_size(image_size)
            shape, dtype = (*self._image_size, obs_space.shape[-1]), "uint8"
        elif isinstance(obs_space, spaces.Box) and len(obs_space.shape) == 1:
            shape, dtype = obs_space.shape, "float32"
        else:
            _unsupported(
                env_id,
                "observation",
                obs_space,
                "1-D Box vectors and uint8 (H, W, C) images; observation='pixels' "
                "observes the env's rgb_array render instead",
            )
        action, self._action_start = _action_spec(env_id, self._vec.single_action_space)
        max_steps = env_kwargs.get("max_episode_steps")
        if max_steps is None and self._vec.spec is not None:
            max_steps = self._vec.spec.max_episode_steps
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
        actions = np.asarray(actions)
        spec, want = self.spec.action, action_shape(self.spec.action, self.num_envs)
        if actions.shape != want:
            raise ValueError(
                f"{self.spec.env_id}: actions of shape {actions.shape} are invalid: "
                f"expected {want} for {self.num_envs} envs and {spec}"
            )
        dtype = self._vec.single_action_space.dtype
        if spec.continuous:
            if not np.all(np.isfinite(actions)):
                raise ValueError(f"{self.spec.env_id}: actions must be finite")
            return actions.astype(dtype)
        if actions.dtype.kind not in "iu":
            raise ValueError(
                f"{self.spec.env_id}: discrete actions must be integers, got "
                f"dtype {actions.dtype}"
            )
        if actions.min() < 0 or actions.max() >= spec.dim:
            raise ValueError(
                f"{self.spec.env_id}: discrete actions must lie in [0, {spec.dim}), "
                f"got {actions.tolist()}"
            )
        return (actions + self._action_start).astype(dtype)

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

    def close(self) -> None:
        """Closes the sub-envs (and the worker processes in async mode)."""
        self._vec.close()

    def __enter__(self) -> GymnasiumEnv:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def collect(
    env: GymnasiumEnv,
    key: jax.Array,
    num_steps: int,
    policy: Callable[[jax.Array, np.ndarray], Any] | None = None,
) -> Transition:
    """Returns T steps of the env's E envs as numpy ``Transition [T, E, ...]``.

    The envs are reset first, seeded from ``key``, so the same key gives the
    same data. policy: ``(key, obs [E, ...]) -> action [E] or [E, A]``; None
    samples uniform random actions. A Python loop: gymnasium envs live on CPU.
    """
    key_seed, key_steps = jax.random.split(key)
    obs = env.reset(seed=int(jax.random.randint(key_seed, (), 0, 2**31 - 1)))
    return collect_from(env, key_steps, obs, num_steps, policy)[1]


def collect_from(
    env: GymnasiumEnv,
    key: jax.Array,
    obs: np.ndarray,
    num_steps: int,
    policy: Callable[[jax.Array, np.ndarray], Any] | None = None,
) -> tuple[np.ndarray, Transition]:
    """Returns (obs after the last step, numpy ``Transition [T, E, ...]``),
    continuing the envs from ``obs [E, ...]`` (what reset or the last step gave),
    so that collection can go on in chunks across episodes."""
    records = []
    for key_t in jax.random.split(key, num_steps):
        if policy is None:
            action = random_actions(key_t, env.spec.action, env.num_envs)
        else:
            action = policy(key_t, obs)
        action = np.asarray(action)
        out = env.step(action)
        records.append(Transition.of_step(obs, action, out))
        obs = out.obs
    return obs, jax.tree.map(lambda *steps: np.stack(steps), *records)
