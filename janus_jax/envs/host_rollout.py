"""A rollout of envs stepped on the host (gymnasium's), with the policy jitted.

Each step is one call of the compiled policy (``host_step``: it first zeroes
the policy state of the envs whose episode ended on the step before, and takes
its key from the rollout's keys inside the program) and one transfer of its
answer to the host; the record is kept in NumPy and sent to the device once, at
the end. Keys and results are those of the gymnax rollout's scheme: step t acts
with ``split(split(key, T)[t])[0]``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.envs.rollout import (
    RolloutPolicy,
    RolloutState,
    check_actions,
    recorded,
    reset_where,
)
from janus_jax.records import Transition


def host_step(policy: RolloutPolicy, params, keys, t, obs, state, ended):
    """Step t of a host rollout: ``policy`` acts with key ``split(keys[t])[0]``
    on ``obs`` after the policy state of the envs in ``ended`` is zeroed (their
    episode ended on the step before: ``obs`` starts a new one). Jit it with
    ``policy`` bound."""
    state = reset_where(ended, state)
    return policy(params, jax.random.split(keys[t])[0], obs, state)


def host_rollout(
    env,
    act,
    params: Any,
    state: RolloutState,
    key,
    num_steps: int,
    until_ended: np.ndarray | None = None,
) -> tuple[RolloutState, Transition]:
    """Returns (state after the last step, Transition [T, E, ...] as device
    arrays) of ``env`` (``step(actions)`` -> a GymStep of NumPy arrays, ``spec``,
    ``num_envs``) acting by ``act``, ``host_step`` jitted with its policy.

    ``until_ended`` [E] bool stops the rollout early, after the step on which
    every env it marks has ended an episode (T is then that step + 1): an
    evaluation that waits for first episodes steps no further. The steps taken
    are the same as without it (the same keys)."""
    keys = jax.random.split(key, num_steps)
    records = []
    obs, policy_state = state.obs, state.policy_state
    ret = np.asarray(state.episode_return, np.float32)
    ended = np.zeros(env.num_envs, bool)
    waiting = None if until_ended is None else np.array(until_ended, bool)
    for t in range(num_steps):
        step = act(params, keys, np.int32(t), obs, policy_state, ended)
        action, info = jax.device_get((step.action, step.info))
        check_actions(env.spec.env_id, env.spec.action, action, env.num_envs)
        out = env.step(action)
        transition, ended, ret = recorded(np, np.asarray(obs), action, info, out, ret)
        records.append(transition)
        policy_state, obs = step.state, out.obs
        if waiting is not None:
            waiting &= ~ended
            if not waiting.any():
                break
    stacked = jax.device_put(jax.tree.map(lambda *xs: np.stack(xs), *records))
    policy_state = reset_where(jnp.asarray(ended), policy_state)
    return RolloutState(obs, None, policy_state, ret), stacked
