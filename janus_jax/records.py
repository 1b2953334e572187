"""The records every layer shares: a step is a ``Transition``, real or dreamed, a
policy's answer for one step is a ``PolicyStep``, and what M learns from is a
batch of ``Windows``.

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


class Windows(NamedTuple):
    """Fixed-length windows of single episodes, batch-major ``[W, ...]`` (a chunk
    of them: ``[K, W, ...]``): what M learns from, as ``mdn_rnn.loss`` takes it.

    A window holds L steps and the L + 1 observations around them; the steps
    after its episode's end are padding, with ``mask`` 0 and reward and done 0.
    Cut from the env's data, ``obs`` and ``actions`` are as the env gave and
    took them; for M they are V's latents and M's float action vectors.
    ``carry`` None starts M from zeros on every window (the dataset's windows,
    cut at steps 0, L, 2L... of each episode); the replay's hold M's carry there.
    """

    obs: jax.Array  # [W, L+1, *observation_shape] o_t..o_{t+L} (M: latents [.., Z])
    actions: jax.Array  # [W, L, ...] a_t..a_{t+L-1} (M: [W, L, A] float32)
    rewards: jax.Array  # [W, L] float32 r_t..r_{t+L-1}
    dones: jax.Array  # [W, L] float32: 1 where the episode terminated after the step
    mask: jax.Array  # [W, L] float32: 1 on the episode's own steps, 0 on padding
    carry: Any = None  # M's carry before step 0, leaves [W, H] (None: zeros)
