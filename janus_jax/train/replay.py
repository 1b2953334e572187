"""The controller phase's replay: the last ``capacity`` real steps of every env,
as raw observations with the carry M had when C acted, so M's refresh (and V's)
draws fresh windows of recent real data every update instead of fitting the
latest rollout over and over.

A ring over time per env column: the rollout [T, E] of update u is written at
rows ``head .. head + T - 1`` (mod capacity), so env e's column is its own
stream of steps in order, episodes back to back. Memory is bounded by
``capacity x num_envs`` steps whatever the run's length (``replay_bytes`` says
how much). It lives in the controller's state, so a checkpoint holds it and a
resumed run continues with the same data.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from janus_jax.envs.spec import EnvSpec
from janus_jax.records import Transition, Windows


@struct.dataclass
class Replay:
    """The last ``capacity`` steps of each of E envs, time-major [C, E, ...]."""

    obs: jax.Array  # [C, E, *obs] o_t, as the env gave it
    next_obs: jax.Array  # [C, E, *obs] o_{t+1} (the true final one where t ended)
    action: jax.Array  # [C, E, ...] a_t, as the env took it
    reward: jax.Array  # [C, E]
    terminated: jax.Array  # [C, E] bool
    truncated: jax.Array  # [C, E] bool
    carry: tuple  # M's carry when C acted at t (leaves [C, E, H])
    head: jax.Array  # int32: the row the next step goes to
    filled: jax.Array  # int32: rows holding data (<= C)


def capacity_for(replay_steps: int, num_envs: int, rollout_length: int) -> int:
    """Returns the rows per env that keep about ``replay_steps`` steps in all (at
    least one rollout: an update writes a whole one)."""
    return max(rollout_length, -(-replay_steps // num_envs))


def init(capacity: int, spec: EnvSpec, carry: tuple) -> Replay:
    """Returns an empty replay of ``capacity`` rows for the envs of ``spec``,
    ``carry`` being M's carry of one step of them (leaves [E, H])."""
    num_envs = jax.tree.leaves(carry)[0].shape[0]
    rows = lambda shape, dtype: jnp.zeros((capacity, num_envs) + shape, dtype)  # noqa: E731
    obs = lambda: rows(spec.observation_shape, spec.observation_dtype)  # noqa: E731
    continuous = spec.action.continuous
    return Replay(
        obs=obs(),
        next_obs=obs(),
        action=rows(
            (spec.action.dim,) if continuous else (),
            jnp.float32 if continuous else jnp.int32,
        ),
        reward=rows((), jnp.float32),
        terminated=rows((), bool),
        truncated=rows((), bool),
        carry=jax.tree.map(lambda c: rows(c.shape[1:], c.dtype), carry),
        head=jnp.zeros((), jnp.int32),
        filled=jnp.zeros((), jnp.int32),
    )


def replay_bytes(replay: Replay) -> int:
    """Returns the replay's size in bytes (all of it is allocated up front)."""
    return sum(
        int(np.prod(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(replay)
    )


def add(replay: Replay, real: Transition) -> Replay:
    """Returns the replay with the rollout ``real`` [T, E] written after its
    newest rows (the oldest T rows give way once it is full)."""
    capacity = replay.obs.shape[0]
    steps = real.reward.shape[0]
    if steps > capacity:
        raise ValueError(
            f"a rollout of {steps} steps does not fit a replay of {capacity} rows "
            "per env"
        )
    rows = (replay.head + jnp.arange(steps)) % capacity
    put = lambda buf, x: buf.at[rows].set(x.astype(buf.dtype))  # noqa: E731
    return replay.replace(
        obs=put(replay.obs, real.obs),
        next_obs=put(replay.next_obs, real.next_obs),
        action=put(replay.action, real.action),
        reward=put(replay.reward, real.reward),
        terminated=put(replay.terminated, real.terminated),
        truncated=put(replay.truncated, real.truncated),
        carry=jax.tree.map(put, replay.carry, real.info.carry),
        head=(replay.head + steps) % capacity,
        filled=jnp.minimum(replay.filled + steps, capacity),
    )


def cut(replay: Replay) -> Replay:
    """Returns the replay with every env's newest step marked truncated: the
    envs' next steps start new episodes (a resumed host env), so no window may
    run on from that step into them."""
    newest = (replay.head - 1) % replay.reward.shape[0]
    ends = replay.truncated.at[newest].set(replay.filled > 0)
    return replay.replace(truncated=ends)


def windows(replay: Replay, key: jax.Array, num: int, length: int) -> Windows:
    """Returns ``num`` windows of ``length`` steps (observations and actions as
    the env gave and took them), each starting at a uniformly drawn stored step
    of a uniformly drawn env, with the carry M had there.

    A window never runs into the next episode or past the newest step: the steps
    after its episode's end (terminated or truncated, that step included in the
    mask) and beyond the newest row are masked out. The replay must hold data."""
    capacity, num_envs = replay.reward.shape
    start_key, env_key = jax.random.split(key)
    filled = jnp.maximum(replay.filled, 1)
    oldest = (replay.head - replay.filled) % capacity
    start = jax.random.randint(start_key, (num,), 0, filled)  # steps after oldest
    env = jax.random.randint(env_key, (num,), 0, num_envs)
    offset = start[:, None] + jnp.arange(length)  # [W, L]
    stored = offset < replay.filled
    rows = (oldest + jnp.minimum(offset, filled - 1)) % capacity
    column = env[:, None]
    take = lambda buf: buf[rows, column]  # noqa: E731  [W, L, ...]
    ended = (take(replay.terminated) | take(replay.truncated)) & stored
    ended_before = (jnp.cumsum(ended, axis=1) - ended) > 0
    valid = stored & ~ended_before
    first = (rows[:, 0], env)
    obs = jnp.concatenate([replay.obs[first][:, None], take(replay.next_obs)], 1)
    return Windows(
        obs=obs,
        actions=take(replay.action),
        rewards=jnp.where(valid, take(replay.reward), 0.0),
        dones=(take(replay.terminated) & valid).astype(jnp.float32),
        mask=valid.astype(jnp.float32),
        carry=jax.tree.map(lambda c: c[first], replay.carry),
    )


def _steps(replay: Replay, key: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """Returns (rows, envs) [num] of stored steps drawn uniformly (the replay
    must hold data)."""
    capacity, num_envs = replay.reward.shape
    step_key, env_key = jax.random.split(key)
    oldest = (replay.head - replay.filled) % capacity
    start = jax.random.randint(step_key, (num,), 0, jnp.maximum(replay.filled, 1))
    env = jax.random.randint(env_key, (num,), 0, num_envs)
    return (oldest + start) % capacity, env


def frames(replay: Replay, key: jax.Array, num: int) -> jax.Array:
    """Returns ``num`` observations [num, *obs] drawn uniformly from the stored
    steps of every env."""
    return replay.obs[_steps(replay, key, num)]


def starts(replay: Replay, key: jax.Array, num: int) -> tuple[jax.Array, tuple]:
    """Returns (observations [num, *obs], M's carry there, leaves [num, H]) of
    ``num`` stored steps drawn uniformly: where dreams start."""
    at = _steps(replay, key, num)
    return replay.obs[at], jax.tree.map(lambda c: c[at], replay.carry)
