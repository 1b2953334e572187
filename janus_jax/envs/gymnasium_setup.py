"""The sub-envs of the gymnasium adapter: what each env observes, its action
space in janus-jax terms (and the agent's actions as the env takes them), and
the errors for spaces janus-jax does not handle."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NoReturn

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import AddRenderObservation

from janus_jax.config.models import ActionSpec
from janus_jax.envs import custom
from janus_jax.envs.carracing_frames import cull_offscreen
from janus_jax.envs.spec import EnvSpec, action_shape

OBSERVATIONS = ("state", "pixels")


def is_image(space: spaces.Space) -> bool:
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
    if is_image(env.observation_space):
        return env
    return RenderObservation(env, render_only=True)


def quiet_headless_pygame() -> None:
    """Keeps pygame's SDL from printing a dozen lines to stderr when an env is
    rendered to an array on a machine without sound or display (ALSA's "Unknown
    PCM default", SDL's "XDG_RUNTIME_DIR is invalid"): no audio device, and no
    video device where there is no display to open a window on. Settings the
    user exported win; the worker processes of async envs inherit these."""
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def sub_env_setup(
    observation: str, env_kwargs: dict[str, Any]
) -> tuple[dict[str, Any], list[Callable[[gymnasium.Env], gymnasium.Env]]]:
    """Returns (gymnasium.make's kwargs, the wrappers each sub-env gets,
    innermost first). The first draws CarRacing's road from the polygons in
    view, the same pixels in less time (``carracing_frames``); the others make
    the render the observation where ``observation="pixels"``."""
    if observation not in OBSERVATIONS:
        raise ValueError(
            f"observation={observation!r} is invalid: must be one of {OBSERVATIONS}"
        )
    if observation == "state":
        return dict(env_kwargs), [cull_offscreen]
    quiet_headless_pygame()
    render_mode = env_kwargs.get("render_mode", "rgb_array")
    if render_mode != "rgb_array":
        raise ValueError(
            f"render_mode={render_mode!r} is invalid with observation='pixels': "
            "the frames come from render_mode='rgb_array'"
        )
    return {**env_kwargs, "render_mode": "rgb_array"}, [cull_offscreen, _observe_render]


def make_single_env(
    env_id: str, observation: str = "state", **env_kwargs
) -> gymnasium.Env:
    """Returns one sub-env built as ``GymnasiumEnv`` builds each of its envs
    (``env_id`` an id or a class path ``module:Class``).

    The frames are not yet cropped or resized: that happens batched in the
    vector adapter. Useful for gymnasium's ``check_env`` and for rendering.
    """
    kwargs, wrappers = sub_env_setup(observation, env_kwargs)
    env = gymnasium.make(custom.gymnasium_source(env_id, None)[1], **kwargs)
    for wrapper in wrappers:
        env = wrapper(env)
    return env


def unsupported(env_id: str, what: str, space: spaces.Space, allowed: str) -> NoReturn:
    raise ValueError(
        f"{env_id}: {what} space {space} is not supported: janus-jax handles {allowed}"
    )


def action_spec(env_id: str, space: spaces.Space) -> tuple[ActionSpec, int]:
    """Returns the ActionSpec and the offset added to actions (Discrete start)."""
    if isinstance(space, spaces.Discrete):
        # The agent always emits 0..n-1; Discrete(n, start=s) gets action + s.
        return ActionSpec(continuous=False, dim=int(space.n)), int(space.start)
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            unsupported(env_id, "action", space, "Box actions with finite bounds")
        low, high = (tuple(float(v) for v in b) for b in (space.low, space.high))
        return ActionSpec(continuous=True, dim=len(low), low=low, high=high), 0
    unsupported(env_id, "action", space, "Discrete(n) and 1-D Box actions")


def env_actions(spec: EnvSpec, actions, num_envs: int, dtype, start: int) -> np.ndarray:
    """Returns the agent's ``actions`` (indices [E] in [0, n), or floats [E, A])
    as the vector env takes them (``dtype``; discrete ones offset by the
    space's ``start``); actions of another shape, non-finite floats or indices
    outside [0, n) raise ValueError."""
    actions = np.asarray(actions)
    action, want = spec.action, action_shape(spec.action, num_envs)
    if actions.shape != want:
        raise ValueError(
            f"{spec.env_id}: actions of shape {actions.shape} are invalid: "
            f"expected {want} for {num_envs} envs and {action}"
        )
    if action.continuous:
        if not np.all(np.isfinite(actions)):
            raise ValueError(f"{spec.env_id}: actions must be finite")
        return actions.astype(dtype)
    if actions.dtype.kind not in "iu":
        raise ValueError(
            f"{spec.env_id}: discrete actions must be integers, got "
            f"dtype {actions.dtype}"
        )
    if actions.min() < 0 or actions.max() >= action.dim:
        raise ValueError(
            f"{spec.env_id}: discrete actions must lie in [0, {action.dim}), "
            f"got {actions.tolist()}"
        )
    return (actions + start).astype(dtype)


def made_with(env) -> dict:
    """Returns the ``gymnasium.make`` kwargs a gymnasium env was made with (its
    spec's kwargs and time limit), so copies of it can be made; {} otherwise."""
    spec = env.spec if isinstance(env, gymnasium.Env) else None
    if spec is None:
        return {}
    kwargs = dict(spec.kwargs)
    if spec.max_episode_steps is not None:
        kwargs["max_episode_steps"] = spec.max_episode_steps
    return kwargs
