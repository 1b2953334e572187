"""The records every layer shares: a step is a ``Transition``, real or dreamed, and
a policy's answer for one step is a ``PolicyStep``.

This module imports nothing of the project, so envs, models, imagination and the
trainers can all speak it without importing each other.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class Transition(NamedTuple):
    """One step of a time-major rollout ``[T, B, ...]``: real (B envs) or dreamed
    (B start states).

    In a real rollout ``obs`` and ``next_obs`` are the env's observations;
    ``next_obs[t]`` is the observation the action led to, also where the episode
    ended (the pre-reset observation), while ``obs[t + 1]`` then starts the next
    episode. In a dream they are the latents z_t and z_{t+1}. ``terminated``
    ends the MDP (no bootstrapping); ``truncated`` cuts it (a time limit, the
    end of a dream's horizon) and bootstraps from ``next_obs``.
    """

    obs: jax.Array  # [T, B, *observation_shape] (a dream: [T, B, Z])
    action: jax.Array  # [T, B] int32 or [T, B, A] float32: the env's action
    reward: jax.Array  # [T, B] float32
    terminated: jax.Array  # [T, B] bool (a dream: float, the predicted done)
    truncated: jax.Array  # [T, B] bool (a dream: float, 1 at the horizon)
    next_obs: jax.Array  # [T, B, *observation_shape] (a dream: z_{t+1})
    info: Any = None  # what the policy recorded about each step (or None)
    episode_return: Any = None  # [T, B] the return of the episode ending here, else 0
    mask: Any = None  # [T, B] 1 for a step that happened (a dream: 0 after a done)


class PolicyStep(NamedTuple):
    """A policy's answer for one step of E envs."""

    action: jax.Array  # [E] int32 or [E, A] float32
    state: Any  # the policy's state to carry on with (e.g. M's carry), leaves [E, ...]
    info: Any = None  # anything to record in Transition.info
