"""Collection: run a policy (uniform random by default) in any supported env and
write whole episodes to a rollout dataset on disk, with progress and statistics.

Every env family runs through its one rollout interface (gymnax: compiled
chunks on device; gymnasium: the host adapter). Each chunk continues where the
last one stopped, and only complete episodes are written, so a dataset never
holds a cut-off episode.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
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

    Episodes are chosen when they *start*, the first ``budget`` to start (every
    one until ``stop_choosing`` when ``budget`` is None), and every chosen one is
    kept to its end: keeping the first to *finish* would favour short episodes
    (many envs run at once, and short ones end first). "First" is in the order
    ``cut`` goes: chunk by chunk, and within a chunk env by env.
    """

    def __init__(self, num_envs: int, budget: int | None):
        self.chosen = np.arange(num_envs) < (num_envs if budget is None else budget)
        # Episodes still to choose; inf until stop_choosing when budget is None.
        self.remaining = math.inf if budget is None else budget - int(self.chosen.sum())
        self.parts: list[list[Transition]] = [[] for _ in range(num_envs)]

    def stop_choosing(self) -> None:
        """Chooses no episode that starts from now on; chosen ones still finish."""
        self.remaining = 0

    @property
    def in_progress(self) -> bool:
        """True while a chosen episode has not ended yet."""
        return bool(self.chosen.any())

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


def _episodes(
    env, policy, seed: int, chunk_steps: int, budget: int | None, num_steps: int = 0
):
    """Yields whole episodes from chunks of ``chunk_steps`` steps of the env's
    envs, each chunk continuing where the last one stopped: the first ``budget``
    to start, or (budget None) every one that starts before the episodes yielded
    hold ``num_steps`` steps."""
    cutter = EpisodeCutter(env.num_envs, budget)
    key, start_key = jax.random.split(jax.random.key(seed))
    run = compiled(env, policy, chunk_steps)
    state = env.start(start_key)
    steps = 0
    while cutter.in_progress:
        key, chunk_key = jax.random.split(key)
        state, chunk = run(None, state, chunk_key)
        for episode in cutter.cut(jax.device_get(chunk)):
            steps += len(episode[1])
            # Before the cutter goes on: an episode starting after this one ends
            # is not chosen, and the ones in progress are kept to their end.
            if budget is None and steps >= num_steps:
                cutter.stop_choosing()
            yield episode


def _existing_totals(path: str | Path, resume: bool) -> tuple[int, int]:
    """Returns (episodes, steps) the dataset at ``path`` holds ((0, 0) if none);
    refuses an existing dataset unless ``resume``, before anything is written."""
    if not existing_dataset(Path(path), resume):
        return 0, 0
    totals = read_manifest(Path(path))["totals"]
    return totals["episodes"], totals["steps"]


def _check_budget(num_episodes: int | None, num_steps: int | None) -> None:
    """Raises ValueError unless exactly one budget is given, an int >= 1."""
    if (num_episodes is None) == (num_steps is None):
        raise ValueError(
            f"collect(num_episodes={num_episodes!r}, num_steps={num_steps!r}) is "
            "invalid: give exactly one of num_episodes or num_steps, an int >= 1"
        )
    if num_steps is None:
        check_count("num_episodes", num_episodes)
    else:
        check_count("num_steps", num_steps)


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
    num_episodes: int | None = None,
    *,
    num_steps: int | None = None,
    policy: ActionFn | None = None,
    seed: int = 0,
    num_envs: int = 8,
    chunk_steps: int | None = None,
    shard_steps: int = 10_000,
    resume: bool = False,
    progress: bool = True,
    env_kwargs: dict | None = None,
) -> CollectStats:
    """Returns the statistics of collecting whole episodes of ``env_id`` into the
    dataset at ``path``: ``num_episodes`` of them, or at least ``num_steps`` env
    steps (exactly one of the two is the budget).

    policy: a pure ``(key, obs [E, ...]) -> actions [E, ...]``, or None for
    uniformly random actions. Episodes are chosen when they start (not when they
    finish, which would favour short ones): the first ``num_episodes`` to start,
    or every one that starts before the chosen episodes that ended hold
    ``num_steps`` steps; the chosen episodes still running then are kept to
    their end, so the dataset overshoots ``num_steps`` by at most one episode
    per env. With ``resume=True`` an existing dataset is appended to until it
    holds the budget in all (its episodes or steps count), with a seed derived
    from (seed, episodes already there); without it, a directory that already
    holds a dataset is refused before anything runs. gymnax envs run
    ``chunk_steps`` (default 256) steps per compiled call; gymnasium envs step
    on the CPU (default chunks of 16 steps). A progress bar shows episodes (or
    steps, with ``num_steps``), steps/s, the last return and an ETA. A policy is
    a static argument of the compiled chunk: it must be hashable (a function
    is). env_kwargs go to ``janus_jax.envs.make``.
    """
    _check_budget(num_episodes, num_steps)
    check_count("num_envs", num_envs)
    check_count("seed", seed, minimum=0)
    if chunk_steps is not None:
        check_count("chunk_steps", chunk_steps)
    env_kwargs = dict(env_kwargs or {})
    if "num_envs" in env_kwargs:
        raise ValueError("env_kwargs holds 'num_envs': pass collect(num_envs=...)")
    existing, existing_steps = _existing_totals(path, resume)
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
    if num_steps is not None:
        metadata["num_steps"] = num_steps
    start = time.perf_counter()
    returns: list[float] = []
    steps = 0
    if num_steps is None:
        target = max(num_episodes - existing, 0)  # episodes
        budget, step_budget = target, 0
    else:
        target = max(num_steps - existing_steps, 0)  # steps
        budget, step_budget = None, target
    try:
        episodes = (
            _episodes(env, act, run_seed, chunk_steps, budget, step_budget)
            if target
            else iter(())
        )
        # The first episode comes before the dataset is created: a policy or env
        # that fails leaves no empty dataset in the way of the corrected rerun.
        first = list(itertools.islice(episodes, 1))
        with _writer(path, env, resume, metadata, shard_steps) as writer:
            with tqdm(
                total=target,
                disable=not progress or not target,
                unit="ep" if num_steps is None else "step",
                desc=env.spec.env_id,
            ) as bar:
                for episode in itertools.chain(first, episodes):
                    writer.add_episode(*episode)
                    returns.append(float(np.sum(episode[2])))
                    steps += len(episode[2])
                    rate = steps / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix(steps_s=f"{rate:,.0f}", ret=f"{returns[-1]:.1f}")
                    bar.update(1 if num_steps is None else len(episode[2]))
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
