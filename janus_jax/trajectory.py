"""``ImagineProgram``, the one compiled program behind
``WorldModelAgent.imagine_trajectory``: raw observations in (frames of any size
the env gives, resized as the gymnasium adapter does), V's latents, the dream
(``imagination.imagine``) and, when asked, V's decoded frames out, as a dict.

The program compiles once per input shape and static choice: the horizon, the
reward function *object*, the done mode, the resize and ``decode``. Passing the
same function object again reuses the compiled program; a new lambda (or
``functools.partial``) per call compiles anew, as any static argument does.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from janus_jax.acting import resizing
from janus_jax.imagination import WorldModelParams, imagine
from janus_jax.models import vae


def check_reward_fn(reward_fn) -> None:
    """Raises ValueError unless ``reward_fn`` is None or a hashable pure function
    (a static argument of the compiled dream)."""
    if reward_fn is None:
        return
    if isinstance(reward_fn, nn.Module):
        raise ValueError(
            f"reward_fn={reward_fn!r} is a flax module without its parameters: "
            "pass a trainer's reward_fn (trained with reward_model=...) or "
            "janus_jax.models.reward.scorer(RewardModel(module=...), variables)"
        )
    if not callable(reward_fn) or not isinstance(reward_fn, Hashable):
        raise ValueError(
            f"reward_fn={reward_fn!r} is invalid: must be None (M's reward head) "
            "or a hashable pure function (z_t [Z], a_t [A], z_next [Z]) -> scalar"
        )


def check_temperature(temperature) -> None:
    """Raises ValueError unless ``temperature`` is a number >= 0 (``imagine``
    checks the horizon and the done mode)."""
    number = isinstance(temperature, (int, float, np.number))
    if isinstance(temperature, bool) or not number or not temperature >= 0:
        raise ValueError(f"temperature={temperature!r} is invalid: must be >= 0")


def start_observations(initial_obs, shape: tuple[int, ...], crop) -> tuple:
    """Returns (observations [B, ...] as numpy, whether one was given, the
    (size, crop) resizing them as the gymnasium adapter does or None) for
    observations as the env gives them; raises ValueError naming the shapes."""
    obs = np.asarray(initial_obs)
    single = obs.ndim == len(shape)
    batch = obs[None] if single else obs
    expected = (
        f"expected {shape} or [batch, {', '.join(map(str, shape))}] (frames of "
        "another height and width: uint8 with the same channels)"
    )
    if batch.ndim != len(shape) + 1:
        raise ValueError(f"initial_obs has shape {obs.shape}; {expected}")
    try:
        resize = resizing(batch.shape[1:], shape, batch.dtype, crop)
    except ValueError:
        raise ValueError(
            f"initial_obs has shape {obs.shape} and dtype {obs.dtype}; {expected}"
        ) from None
    return batch, single, resize


class ImagineProgram:
    """Preprocessing, V's encoding, the dream and V's decoding in one compiled
    program (``traces`` counts its compilations)."""

    def __init__(self):
        self.traces = 0
        self._compiled = jax.jit(
            self._program,
            static_argnames=("horizon", "reward_fn", "done_mode", "resize", "decode"),
        )

    def _program(
        self,
        key,
        params,
        obs,
        carry,
        temperature,
        *,
        horizon,
        reward_fn,
        done_mode,
        resize,
        decode,
    ) -> dict[str, jax.Array]:
        # Imported here: janus_jax.envs imports gymnax, whose import runs JAX
        # and so starts the backend, which must wait for jax.distributed.
        from janus_jax.envs.preprocess import preprocess_frames

        self.traces += 1  # runs only while JAX traces: one per compilation
        if resize is not None:
            obs = preprocess_frames(obs, *resize)
        z0 = vae.get_latent(params.vae, obs)
        traj = imagine(
            key, params, z0, carry, horizon, temperature, reward_fn, done_mode
        )
        info = traj.info
        out = {
            "latents": traj.obs,
            "actions": traj.action,
            "rewards": traj.reward,
            "dones": traj.terminated,
            "mask": traj.mask,
            "values": info.value,
            "log_probs": info.log_prob,
            "hiddens": info.hidden,
            "next_latents": traj.next_obs,
        }
        if decode:
            out["frames"] = vae.decode(params.vae, traj.obs)
        return out

    def __call__(
        self,
        params: WorldModelParams,
        key: jax.Array,
        obs: jax.Array,
        carry: Any,
        temperature: jax.Array,
        *,
        horizon: int,
        reward_fn,
        done_mode: str,
        resize: tuple | None,
        decode: bool,
    ) -> dict[str, jax.Array]:
        """Returns the dream of observations [B, *obs] as a dict of [T, B, ...]
        arrays (see ``WorldModelAgent.imagine_trajectory``)."""
        return self._compiled(
            key,
            params,
            obs,
            carry,
            temperature,
            horizon=horizon,
            reward_fn=reward_fn,
            done_mode=done_mode,
            resize=resize,
            decode=bool(decode),
        )
