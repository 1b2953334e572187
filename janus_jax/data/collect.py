"""Collection: run a policy (uniform random by default) in any supported env and
write whole episodes to a rollout dataset on disk, with progress and statistics.

gymnax envs run on-device in compiled chunks (vmap over envs, scan over steps);
gymnasium envs step through the thin vector adapter on the CPU. Each chunk
continues where the last one stopped, and only complete episodes are written,
so a dataset never holds a cut-off episode.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from janus_jax.data.writer import DatasetWriter
from janus_jax.envs import (
    GymnasiumEnv,
    GymnaxEnv,
    Transition,
    collect_from,
    make,
    rollout_from,
)
from janus_jax.envs.ids import gymnax_ids

Policy = Callable[[jax.Array, jax.Array], jax.Array]
Episode = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class CollectStats:
    """What a collection wrote, and how its episodes went."""

    path: str
    env_id: str
    episodes: int  # written by this call
    steps: int  # env steps in those episodes
    total_episodes: int  # in the dataset now, earlier runs included
    return_mean: float
    return_std: float
    return_min: float
    return_max: float
    wall_time_s: float

    @property
    def steps_per_s(self) -> float:
        return self.steps / max(self.wall_time_s, 1e-9)


class EpisodeCutter:
    """Holds each env's episode in progress across chunks and cuts whole ones."""

    def __init__(self, num_envs: int):
        self.steps: list[list[Transition]] = [[] for _ in range(num_envs)]

    def cut(self, chunk: Transition) -> Iterator[Episode]:
        """Yields (obs [T+1], actions [T], rewards [T], terminated [T], truncated [T])
        for each episode that ends in ``chunk`` (numpy, [T, E, ...])."""
        ended = np.logical_or(chunk.terminated, chunk.truncated)
        for t in range(ended.shape[0]):
            for e in range(ended.shape[1]):
                self.steps[e].append(Transition(*(field[t, e] for field in chunk)))
                if ended[t, e]:
                    steps, self.steps[e] = self.steps[e], []
                    yield _stack_episode(steps)


def _stack_episode(steps: list[Transition]) -> Episode:
    obs = np.stack([s.obs for s in steps] + [steps[-1].next_obs])
    stacked = Transition(*(np.stack(field) for field in zip(*steps, strict=True)))
    return obs, stacked.action, stacked.reward, stacked.terminated, stacked.truncated


def _episodes(env, policy, seed: int, num_envs: int, chunk_steps: int):
    """Yields whole episodes from chunks of ``chunk_steps`` steps of ``num_envs``
    envs, each chunk continuing where the last one stopped."""
    cutter = EpisodeCutter(num_envs)
    key, reset_key = jax.random.split(jax.random.key(seed))
    if isinstance(env, GymnaxEnv):
        run = jax.jit(rollout_from, static_argnums=(0, 4, 5))
        obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))
        while True:
            key, chunk_key = jax.random.split(key)
            (obs, state), chunk = run(env, chunk_key, obs, state, chunk_steps, policy)
            yield from cutter.cut(jax.device_get(chunk))
    else:
        obs = env.reset(seed=seed)
        while True:
            key, chunk_key = jax.random.split(key)
            obs, chunk = collect_from(env, chunk_key, obs, chunk_steps, policy)
            yield from cutter.cut(chunk)


def _writer(path, env, resume: bool, metadata: dict, shard_steps: int) -> DatasetWriter:
    spec = env.spec
    return DatasetWriter(
        path,
        env_id=spec.env_id,
        observation_shape=spec.observation_shape,
        observation_dtype=spec.observation_dtype,
        action_shape=(spec.action.dim,) if spec.action.continuous else (),
        action_dtype="float32" if spec.action.continuous else "int32",
        metadata=metadata,
        shard_steps=shard_steps,
        resume=resume,
    )


def collect(
    env_id: str,
    path: str | Path,
    num_episodes: int,
    *,
    policy: Policy | None = None,
    seed: int = 0,
    num_envs: int = 8,
    chunk_steps: int | None = None,
    shard_steps: int = 10_000,
    resume: bool = False,
    progress: bool = True,
    env_kwargs: dict | None = None,
) -> CollectStats:
    """Returns the statistics of collecting ``num_episodes`` whole episodes of
    ``env_id`` into the dataset at ``path``.

    policy: a pure ``(key, obs [E, ...]) -> actions [E, ...]``, or None for
    uniformly random actions. With ``resume=True`` an existing dataset is appended
    to until it holds ``num_episodes`` episodes in all (the new episodes are drawn
    with seed + episodes already there); without it, a directory that already
    holds a dataset is refused. gymnax envs run ``chunk_steps`` (default 256)
    steps per compiled call; gymnasium envs step on the CPU (default chunks of 16
    steps). A progress bar shows episodes, steps/s, the last return and an ETA.
    env_kwargs go to ``janus_jax.envs.make``.
    """
    for name, value in (("num_episodes", num_episodes), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} is invalid: must be an integer >= 1")
    env_kwargs = dict(env_kwargs or {})
    on_device = env_kwargs.get("family") != "gymnasium" and env_id in gymnax_ids()
    env = make(env_id, **env_kwargs, **({} if on_device else {"num_envs": num_envs}))
    if chunk_steps is None:
        chunk_steps = 256 if on_device else 16
    metadata = {
        "seed": seed,
        "num_envs": num_envs,
        "env_kwargs": {k: repr(v) for k, v in env_kwargs.items()},
        "policy": "random" if policy is None else getattr(policy, "__name__", "custom"),
    }
    start = time.perf_counter()
    returns: list[float] = []
    steps = 0
    try:
        with _writer(path, env, resume, metadata, shard_steps) as writer:
            target = max(num_episodes - writer.num_episodes, 0)
            episodes = _episodes(
                env, policy, seed + writer.num_episodes, num_envs, chunk_steps
            )
            with tqdm(
                total=target, disable=not progress, unit="ep", desc=env.spec.env_id
            ) as bar:
                while len(returns) < target:
                    obs, actions, rewards, terminated, truncated = next(episodes)
                    writer.add_episode(obs, actions, rewards, terminated, truncated)
                    returns.append(float(np.sum(rewards)))
                    steps += len(rewards)
                    rate = steps / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(steps_s=f"{rate:,.0f}", ret=f"{returns[-1]:.1f}")
                    bar.update(1)
            total = writer.num_episodes
    finally:
        if isinstance(env, GymnasiumEnv):
            env.close()
    r = np.asarray(returns) if returns else np.zeros(1)
    return CollectStats(
        path=str(path),
        env_id=env.spec.env_id,
        episodes=len(returns),
        steps=steps,
        total_episodes=total,
        return_mean=float(r.mean()),
        return_std=float(r.std()),
        return_min=float(r.min()),
        return_max=float(r.max()),
        wall_time_s=time.perf_counter() - start,
    )
