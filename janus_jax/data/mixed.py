"""MixedDataset: several rollout datasets (tasks) sampled with per-dataset weights."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from janus_jax.data.dataset import RolloutDataset, check_count
from janus_jax.data.shards import Windows, empty_windows, fill_frames, fill_windows

_MATCHED = ("observation_shape", "observation_dtype")
# Only windows carry actions: frames from envs with other action spaces can still
# train one shared VAE (the seed's multi-task example).
_MATCHED_FOR_WINDOWS = ("action_shape", "action_dtype")


class MixedDataset:
    """Datasets with one observation shape and dtype, mixed by weight (windows also
    need one action shape and dtype; frames do not).

    Each batch element first draws its source dataset with probability
    ``weights[k]`` (uniform when None, as tf.data's ``sample_from_datasets``),
    then a sample from that dataset's own stream (its shuffle buffer and memory
    cap apply per dataset, so the mix holds at most the sum of their caps). The
    source of every row is reported: ``Windows.source`` [B], and
    ``frames(..., with_source=True)`` yields (frames, source) pairs. Datasets
    with weight 0 are never loaded. Env ids may differ (that is the point);
    nothing checks that discrete actions mean the same thing across them.
    """

    def __init__(
        self,
        datasets: Sequence[RolloutDataset],
        weights: Sequence[float] | None = None,
    ):
        self.datasets = tuple(datasets)
        if not self.datasets:
            raise ValueError("datasets is empty: MixedDataset needs at least one")
        for k, dataset in enumerate(self.datasets):
            if not isinstance(dataset, RolloutDataset):
                raise ValueError(
                    f"datasets[{k}] is a {type(dataset).__name__}, not a RolloutDataset"
                )
        self._check_agree(_MATCHED)
        self.weights = self._normalize(weights)
        for k, dataset in enumerate(self.datasets):
            if self.weights[k] > 0 and dataset.num_steps == 0:
                raise ValueError(
                    f"datasets[{k}] ({dataset.path}) holds no episodes but has "
                    f"weight {self.weights[k]:.3g}"
                )

    def _check_agree(self, names: tuple[str, ...]) -> None:
        first = self.datasets[0]
        for k, dataset in enumerate(self.datasets):
            for name in names:
                mine, theirs = getattr(dataset, name), getattr(first, name)
                if mine != theirs:
                    raise ValueError(
                        f"datasets[{k}] ({dataset.path}) has {name}={mine}, but "
                        f"datasets[0] ({first.path}) has {name}={theirs}; "
                        "mixed datasets must agree on it"
                    )

    def _normalize(self, weights) -> np.ndarray:
        count = len(self.datasets)
        if weights is None:
            return np.full(count, 1.0 / count)
        weights = list(weights)
        valid = len(weights) == count and all(
            isinstance(w, (int, float, np.number)) and math.isfinite(w) and w >= 0
            for w in weights
        )
        if not valid or sum(weights) <= 0:
            raise ValueError(
                f"weights={weights!r} is invalid: must be {count} finite numbers "
                ">= 0 (one per dataset) with a positive sum"
            )
        weights = np.asarray(weights, np.float64)
        return weights / weights.sum()

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.datasets[0].observation_shape

    @property
    def observation_dtype(self) -> np.dtype:
        return self.datasets[0].observation_dtype

    @property
    def action_shape(self) -> tuple[int, ...]:
        return self.datasets[0].action_shape

    @property
    def action_dtype(self) -> np.dtype:
        return self.datasets[0].action_dtype

    @property
    def num_episodes(self) -> int:
        return sum(d.num_episodes for d in self.datasets)

    @property
    def num_steps(self) -> int:
        return sum(d.num_steps for d in self.datasets)

    @property
    def resident_bytes(self) -> int:
        """Bytes of shard arrays loaded now, over all datasets."""
        return sum(d.resident_bytes for d in self.datasets)

    def frames(
        self, batch_size: int, seed: int, *, with_source: bool = False
    ) -> Iterator[np.ndarray] | Iterator[tuple[np.ndarray, np.ndarray]]:
        """Returns an endless iterator of random observations [B, *obs_shape], or
        of (observations, source [B] int32) pairs when ``with_source``."""
        check_count("batch_size", batch_size)
        check_count("seed", seed, minimum=0)
        return self._frames(batch_size, seed, with_source)

    def _frames(self, batch_size: int, seed: int, with_source: bool):
        shape, dtype = self.observation_shape, self.observation_dtype
        batches = self._batches(batch_size, seed, "obs")
        try:
            for source, streams in batches:
                out = np.empty((batch_size, *shape), dtype)
                for k, rows in _rows_by_source(source, len(streams)):

                    def fill(shard, idx, pos, rows=rows, out=out):
                        fill_frames(shard, idx, out, rows[pos])

                    streams[k].draw(rows.size, fill)
                yield (out, source) if with_source else out
        finally:
            batches.close()  # releases the shards now, not at garbage collection

    def windows(self, batch_size: int, length: int, seed: int) -> Iterator[Windows]:
        """Returns an endless iterator of random Windows (see RolloutDataset) whose
        ``source`` [B] names the dataset each row came from."""
        check_count("batch_size", batch_size)
        check_count("length", length)
        check_count("seed", seed, minimum=0)
        self._check_agree(_MATCHED_FOR_WINDOWS)
        return self._windows(batch_size, length, seed)

    def _windows(self, batch_size: int, length: int, seed: int) -> Iterator[Windows]:
        spec = self.datasets[0]._spec
        batches = self._batches(batch_size, seed, "steps")
        try:
            for source, streams in batches:
                out = empty_windows(batch_size, length, spec)
                for k, rows in _rows_by_source(source, len(streams)):

                    def fill(shard, steps, pos, rows=rows, out=out):
                        fill_windows(shard, steps, out, rows[pos])

                    streams[k].draw(rows.size, fill)
                out.source[:] = source
                yield out
        finally:
            batches.close()

    def _batches(self, batch_size: int, seed: int, unit: str):
        """Yields (source [B] int32, streams) forever; closes the streams at the end."""
        seeds = np.random.SeedSequence(seed).spawn(len(self.datasets) + 1)
        choose = np.random.default_rng(seeds[0])
        streams = []
        try:
            for dataset, weight, child in zip(
                self.datasets, self.weights, seeds[1:], strict=True
            ):
                rng = np.random.default_rng(child)
                streams.append(dataset._stream(rng, unit) if weight > 0 else None)
            while True:
                source = choose.choice(
                    len(self.datasets), size=batch_size, p=self.weights
                )
                yield source.astype(np.int32), streams
        finally:
            for stream in streams:
                if stream is not None:
                    stream.close()

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{d.env_id}@{w:.3g}"
            for d, w in zip(self.datasets, self.weights, strict=True)
        )
        return f"MixedDataset([{parts}])"


def _rows_by_source(source: np.ndarray, count: int):
    """Yields (dataset index, the batch rows drawn from it) for each one drawn."""
    for k in range(count):
        rows = np.flatnonzero(source == k)
        if rows.size:
            yield k, rows
