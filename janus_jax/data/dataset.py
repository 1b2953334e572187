"""RolloutDataset: reads what DatasetWriter wrote, one shard at a time.

Training reads a dataset shard by shard through ``sequences`` (its frames for V,
its windows of V's latents for M) and ``blocks.BlockStream``, which bounds the
memory. This reader gives the manifest's facts, single shard arrays
(``column``), every episode in order (``iter_episodes``) and a few random
frames (``frames``, for the pictures), never holding more than one shard.

Integrity: at construction every listed shard must exist with the size the
manifest records (a truncated file raises DatasetCorruptError naming it). With
``verify=True`` a shard's sha256 is checked the first time this object reads it
(hashing everything up front would read the whole dataset before the first
batch); ``verify()`` checks all shards now, hashes and contents. A shard that
cannot be parsed or disagrees with the manifest raises DatasetCorruptError
whatever ``verify`` is, with what to do.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from janus_jax.data.manifest import (
    DatasetCorruptError,
    read_manifest,
    sha256_file,
)
from janus_jax.data.shards import Shard, load_shard

__all__ = ["DatasetCorruptError", "RolloutDataset"]


def check_count(name: str, value, minimum: int = 1) -> None:
    """Raises ValueError unless ``value`` is an integer >= ``minimum``."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum:
        raise ValueError(f"{name}={value!r} is invalid: must be an int >= {minimum}")


class RolloutDataset:
    """The rollout dataset in directory ``path``; see the module docstring for
    the integrity checks."""

    def __init__(self, path: str | os.PathLike, *, verify: bool = True):
        self.path = Path(path)
        self.manifest: dict = read_manifest(self.path)
        self._verify_on_load = bool(verify)
        self._verified: set[int] = set()
        self._entries: list[dict] = self.manifest["shards"]
        for entry in self._entries:
            file = self.path / entry["file"]
            if not file.is_file():
                raise DatasetCorruptError(
                    f"shard {file} is missing (listed in {self.path}/manifest.json)"
                )
            size = file.stat().st_size
            if size != entry["bytes"]:
                raise DatasetCorruptError(
                    f"shard {file} is {size} bytes but the manifest records "
                    f"{entry['bytes']} (truncated or overwritten)"
                )
        self._spec = {
            "observation_shape": self.observation_shape,
            "obs_dtype": self.observation_dtype,
            "action_shape": self.action_shape,
            "action_dtype": self.action_dtype,
        }

    env_id = property(lambda self: self.manifest["env_id"])
    metadata = property(lambda self: self.manifest["metadata"])
    num_episodes = property(lambda self: self.manifest["totals"]["episodes"])
    num_steps = property(lambda self: self.manifest["totals"]["steps"])
    num_shards = property(lambda self: len(self._entries))

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["observation_shape"])

    @property
    def observation_dtype(self) -> np.dtype:
        return np.dtype(self.manifest["observation_dtype"])

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["action_shape"])

    @property
    def action_dtype(self) -> np.dtype:
        return np.dtype(self.manifest["action_dtype"])

    def frames(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        """Returns an endless iterator of random observations [B, *obs_shape] in
        the stored dtype, each drawn uniformly over every stored observation
        (final ones included), holding one shard at a time: a few batches to
        look at (the pictures); V trains through ``sequences.frame_sources``."""
        self._check_sampling(batch_size, seed)
        return self._frames(batch_size, seed)

    def _frames(self, batch_size: int, seed: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        sizes = np.array([e["steps"] + e["episodes"] for e in self._entries])
        ends = np.cumsum(sizes)
        while True:
            picks = rng.integers(0, ends[-1], size=batch_size)
            which = np.searchsorted(ends, picks, side="right")
            out = np.empty(
                (batch_size, *self.observation_shape), self.observation_dtype
            )
            for index in np.unique(which).tolist():
                rows = np.flatnonzero(which == index)
                shard = self._load(index)
                out[rows] = shard.obs[picks[rows] - (ends[index] - sizes[index])]
            yield out

    def episode_lengths(self) -> np.ndarray:
        """Returns every episode's number of steps [E] int64, in write order."""
        return np.concatenate(
            [self.column(i, "episode_lengths") for i in range(self.num_shards)]
            or [np.zeros(0, np.int64)]
        )

    def episode_returns(self) -> np.ndarray:
        """Returns every episode's undiscounted return [E] float64, in write order,
        reading only the rewards (shards are not kept resident)."""
        returns = [np.zeros(0)]
        for i in range(self.num_shards):
            lengths = self.column(i, "episode_lengths")
            rewards = self.column(i, "rewards").astype(np.float64)
            if lengths.sum() != len(rewards):
                raise DatasetCorruptError(
                    f"shard {self.path / self._entries[i]['file']} is corrupt: "
                    f"episode_lengths sum to {lengths.sum()}, rewards has "
                    f"{len(rewards)} steps"
                )
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            returns.append(np.add.reduceat(rewards, starts))
        return np.concatenate(returns)

    def iter_episodes(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Yields every episode in write order as (obs [T+1, ...], actions [T, ...],
        rewards [T], terminated [T], truncated [T]), holding one shard at a time."""
        for i in range(self.num_shards):
            shard = self._load(i)
            for e in range(len(shard.lengths)):
                steps = slice(shard.step_starts[e], shard.step_starts[e + 1])
                obs = slice(shard.obs_starts[e], shard.obs_starts[e + 1])
                yield (
                    shard.obs[obs],
                    shard.actions[steps],
                    shard.rewards[steps],
                    shard.terminated[steps],
                    shard.truncated[steps],
                )

    def verify(self) -> None:
        """Checks every shard now, its sha256 and that it holds the episodes,
        steps, shapes and dtypes the manifest says (one shard in memory at a
        time); raises DatasetCorruptError naming the first bad one."""
        for i in range(self.num_shards):
            self._check_hash(i)
            self._load(i)

    def _check_sampling(self, batch_size: int, seed: int) -> None:
        check_count("batch_size", batch_size)
        check_count("seed", seed, minimum=0)
        if self.num_steps == 0:
            raise ValueError(f"the dataset at {self.path} holds no episodes")

    def _check_hash(self, index: int) -> None:
        if index in self._verified:
            return
        entry = self._entries[index]
        file = self.path / entry["file"]
        digest = sha256_file(file)
        if digest != entry["sha256"]:
            raise DatasetCorruptError(
                f"shard {file} is corrupt: its sha256 {digest} differs from the "
                f"manifest's {entry['sha256']}"
            )
        self._verified.add(index)

    def column(self, index: int, name: str) -> np.ndarray:
        """Returns array ``name`` of shard ``index`` (one of the shard arrays),
        reading only that member."""
        if self._verify_on_load:
            self._check_hash(index)
        file = self.path / self._entries[index]["file"]
        try:
            with np.load(file, allow_pickle=False) as npz:  # reads only this member
                return npz[name]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            raise DatasetCorruptError(f"shard {file} cannot be read: {err}") from None

    def _load(self, index: int) -> Shard:
        """Returns shard ``index`` read whole and checked (its hash first, once,
        with ``verify=True``)."""
        if self._verify_on_load:
            self._check_hash(index)
        entry = self._entries[index]
        return load_shard(self.path / entry["file"], entry, self._spec)

    def __repr__(self) -> str:
        return (
            f"RolloutDataset({str(self.path)!r}, env_id={self.env_id!r}, "
            f"episodes={self.num_episodes}, steps={self.num_steps}, "
            f"shards={self.num_shards})"
        )
