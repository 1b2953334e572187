"""Collection: run a policy (uniform random by default) in any supported env and
write whole episodes to a rollout dataset on disk, with progress and statistics.

Every env family runs through its one rollout interface (gymnax: compiled
chunks on device; gymnasium: the host adapter). Each chunk continues where the
last one stopped, and only complete episodes are written, so a dataset never
holds a cut-off episode.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from janus_jax.data.dataset import check_count
from janus_jax.data.manifest import read_manifest
from janus_jax.data.writer import DatasetWriter, existing_dataset
from janus_jax.envs import (
    ActionFn,
    RandomPolicy,
    StatelessPolicy,
    Transition,
    compiled,
    make,
)

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
    """Holds each env's episode in progress across chunks and cuts whole ones.

    Episodes are chosen when they *start*, the first ``budget`` to start, and
    every chosen one is kept to its end: keeping the first to *finish* would
    favour short episodes (many envs run at once, and short ones end first).
    """

    def __init__(self, num_envs: int, budget: int):
        self.chosen = np.arange(num_envs) < budget
        self.remaining = budget - int(self.chosen.sum())
        self.parts: list[list[Transition]] = [[] for _ in range(num_envs)]

    def cut(self, chunk: Transition) -> Iterator[Episode]:
        """Yields (obs [T+1], actions [T], rewards [T], terminated [T], truncated [T])
        for each chosen episode that ends in ``chunk`` (numpy, [T, E, ...])."""
        ended = np.logical_or(chunk.terminated, chunk.truncated)
        for e in range(ended.shape[1]):
            start = 0
            for end in np.flatnonzero(ended[:, e]) + 1:
                if self.chosen[e]:
                    self.parts[e].append(_slice(chunk, e, start, end))
                    yield _join(self.parts[e])
                self.parts[e] = []
                self.chosen[e] = self.remaining > 0  # the episode starting now
                self.remaining -= int(self.chosen[e])
                start = end
            if self.chosen[e] and start < ended.shape[0]:
                self.parts[e].append(_slice(chunk, e, start, ended.shape[0]))


ENV_FIELDS = ("obs", "action", "reward", "terminated", "truncated", "next_obs")


def _slice(chunk: Transition, env: int, start: int, end: int) -> Transition:
    return Transition(*(getattr(chunk, f)[start:end, env] for f in ENV_FIELDS))


def _join(parts: list[Transition]) -> Episode:
    fields = zip(*(p[: len(ENV_FIELDS)] for p in parts), strict=True)
    steps = Transition(*(np.concatenate(f) for f in fields))
    obs = np.concatenate([steps.obs, steps.next_obs[-1:]])
    return obs, steps.action, steps.reward, steps.terminated, steps.truncated


def _episodes(env, policy, seed: int, chunk_steps: int, budget: int):
    """Yields the first ``budget`` episodes to start, whole, from chunks of
    ``chunk_steps`` steps of the env's envs, each chunk continuing where the
    last one stopped."""
    cutter = EpisodeCutter(env.num_envs, budget)
    key, start_key = jax.random.split(jax.random.key(seed))
    run = compiled(env, policy, chunk_steps)
    state = env.start(start_key)
    while True:
        key, chunk_key = jax.random.split(key)
        state, chunk = run(None, state, chunk_key)
        yield from cutter.cut(jax.device_get(chunk))


def _existing_episodes(path: str | Path, resume: bool) -> int:
    """Returns how many episodes the dataset at ``path`` holds (0 if none);
    refuses an existing dataset unless ``resume``, before anything is written."""
    if not existing_dataset(Path(path), resume):
        return 0
    return read_manifest(Path(path))["totals"]["episodes"]


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
    policy: ActionFn | None = None,
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
    uniformly random actions. The episodes kept are the first ``num_episodes`` to
    start (not to finish, which would favour short ones). With ``resume=True`` an
    existing dataset is appended to until it holds ``num_episodes`` episodes in
    all, with a seed derived from (seed, episodes already there); without it, a
    directory that already holds a dataset is refused before anything runs.
    gymnax envs run ``chunk_steps`` (default 256) steps per compiled call;
    gymnasium envs step on the CPU (default chunks of 16 steps). A progress bar
    shows episodes, steps/s, the last return and an ETA. A policy is a static
    argument of the compiled chunk: it must be hashable (a function is).
    env_kwargs go to ``janus_jax.envs.make``.
    """
    check_count("num_episodes", num_episodes)
    check_count("num_envs", num_envs)
    check_count("seed", seed, minimum=0)
    if chunk_steps is not None:
        check_count("chunk_steps", chunk_steps)
    env_kwargs = dict(env_kwargs or {})
    if "num_envs" in env_kwargs:
        raise ValueError("env_kwargs holds 'num_envs': pass collect(num_envs=...)")
    existing = _existing_episodes(path, resume)
    env = make(env_id, num_envs=num_envs, **env_kwargs)
    # Host-stepped envs come back to write episodes more often.
    chunk_steps = chunk_steps or (256 if env.spec.on_device else 16)
    act = RandomPolicy(env.spec.action) if policy is None else StatelessPolicy(policy)
    # A resumed run draws new episodes: its seed is derived from both numbers.
    run_seed = int(np.random.SeedSequence([seed, existing]).generate_state(1)[0])
    metadata = {
        "seed": seed,
        "run_seed": run_seed,
        "episodes_before": existing,
        "num_envs": num_envs,
        "env_kwargs": {k: repr(v) for k, v in env_kwargs.items()},
        "policy": "random" if policy is None else getattr(policy, "__name__", "custom"),
    }
    start = time.perf_counter()
    returns: list[float] = []
    steps = 0
    target = max(num_episodes - existing, 0)
    try:
        episodes = _episodes(env, act, run_seed, chunk_steps, target)
        # The first episode comes before the dataset is created: a policy or env
        # that fails leaves no empty dataset in the way of the corrected rerun.
        first = next(episodes) if target else None
        with _writer(path, env, resume, metadata, shard_steps) as writer:
            with tqdm(
                total=target,
                disable=not progress or not target,
                unit="ep",
                desc=env.spec.env_id,
            ) as bar:
                while len(returns) < target:
                    episode = first if first is not None else next(episodes)
                    first = None
                    writer.add_episode(*episode)
                    returns.append(float(np.sum(episode[2])))
                    steps += len(episode[2])
                    rate = steps / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(steps_s=f"{rate:,.0f}", ret=f"{returns[-1]:.1f}")
                    bar.update(1)
            total = writer.num_episodes
    finally:
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
