"""Blocks of shards: V's frames and M's windows, streamed with bounded memory.

A phase's batches are a pure function of (seed, step), so a resumed run sees the
batches an uninterrupted one would have seen, whichever way the data is held:

- **The dataset fits** (its arrays take at most ``max_resident_bytes``): it is
  loaded once and stays; epoch e is one pass over a permutation of every item
  drawn from (seed, e).
- **It does not**: epoch e visits the shards in a fresh order drawn from
  (seed, e), cut into *blocks* of consecutive shards of at most half the cap.
  A block is loaded, its items are permuted (seed, e, block) and cut into full
  batches, its last partial batch dropped (the next epoch's blocks differ, so
  no item is left out for good). While a block trains, the next one loads in a
  background thread: two blocks are resident at most.

Host memory for the data is then at most ``max_resident_bytes`` plus one shard
being copied into its block, plus the chunk of batches handed to the device.
Epoch lengths in the second case vary a little (the dropped tails); ``epoch``
counts nominal epochs of ``items // batch_size`` steps.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

Gather = Callable[[Any, np.ndarray], Any]


class Source(NamedTuple):
    """One shard's contribution: ``items`` rows taking ``nbytes`` once loaded."""

    items: int
    nbytes: int
    load: Callable[[], Any]  # -> a pytree of host arrays [items, ...]


class _Block(NamedTuple):
    sources: tuple[int, ...]
    items: int
    steps: int
    seed: tuple[int, ...]  # what its permutation is drawn from


class BlockStream:
    """The batches of one phase over ``sources`` (one per shard, in order)."""

    def __init__(
        self,
        sources: Sequence[Source],
        batch_size: int,
        seed: int,
        max_resident_bytes: int,
        what: str,
    ):
        self.sources = tuple(sources)
        self.batch_size = batch_size
        self.seed = seed
        self.max_resident_bytes = max_resident_bytes
        total = sum(s.items for s in self.sources)
        if total < batch_size:
            raise ValueError(
                f"{what}: the dataset has {total} rows, fewer than the batch size "
                f"{batch_size}; collect more episodes or lower the batch size"
            )
        self.steps_per_epoch = total // batch_size
        self.fits = sum(s.nbytes for s in self.sources) <= max_resident_bytes
        self._block_cap = max_resident_bytes // 2
        largest = max(self.sources, key=lambda s: s.nbytes)
        if not self.fits and largest.nbytes > self._block_cap:
            raise ValueError(
                f"max_resident_bytes={max_resident_bytes} is too small for {what}: "
                f"one shard alone takes {largest.nbytes} bytes and two blocks of "
                "shards must fit; raise it or write smaller shards (shard_steps)"
            )
        self._epochs: list[list[_Block]] = []  # planned so far
        self._starts: list[int] = [0]  # first step of each planned epoch
        self._loaded: dict[tuple[int, ...], Any] = {}
        self._next: tuple[tuple[int, ...], concurrent.futures.Future] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="janus-jax-blocks"
        )
        self._permutation: tuple[_Block | None, np.ndarray | None] = (None, None)
        self.peak_resident_bytes = 0
        """Most bytes of loaded blocks held at once (the prefetched one included)."""

    def _plan(self, epoch: int) -> list[_Block]:
        """Returns epoch ``epoch``'s blocks in order."""
        n, b = len(self.sources), self.batch_size
        if self.fits:
            items = sum(s.items for s in self.sources)
            return [_Block(tuple(range(n)), items, items // b, (self.seed, epoch))]
        order = np.random.default_rng([self.seed, epoch]).permutation(n)
        groups: list[list[int]] = [[]]
        used = 0
        for index in order.tolist():
            size = self.sources[index].nbytes
            if groups[-1] and used + size > self._block_cap:
                groups.append([])
                used = 0
            groups[-1].append(index)
            used += size
        blocks = []
        for k, group in enumerate(groups):
            items = sum(self.sources[i].items for i in group)
            blocks.append(
                _Block(tuple(group), items, items // b, (self.seed, epoch, k))
            )
        return blocks

    def _plan_next(self) -> None:
        plan = self._plan(len(self._epochs))
        self._epochs.append(plan)
        self._starts.append(self._starts[-1] + sum(b.steps for b in plan))

    def epoch_start(self, epoch: int) -> int:
        """Returns the first step of epoch ``epoch``."""
        while len(self._epochs) < epoch:
            self._plan_next()
        return self._starts[epoch]

    def blocks_of(self, epoch: int) -> list[_Block]:
        """Returns epoch ``epoch``'s blocks in order (sources, items, steps)."""
        self.epoch_start(epoch + 1)
        return self._epochs[epoch]

    def _locate(self, step: int) -> tuple[_Block, int]:
        """Returns (the block step ``step`` falls in, the step's offset in it)."""
        while self._starts[-1] <= step:
            self._plan_next()
        epoch = int(np.searchsorted(self._starts, step, side="right")) - 1
        offset = step - self._starts[epoch]
        for block in self._epochs[epoch]:
            if offset < block.steps:
                return block, offset
            offset -= block.steps
        raise AssertionError("unreachable: the epoch's steps were counted")

    def _rows(self, block: _Block, offset: int) -> np.ndarray:
        if self._permutation[0] != block:
            rng = np.random.default_rng(list(block.seed))
            self._permutation = (block, rng.permutation(block.items))
        start = offset * self.batch_size
        return self._permutation[1][start : start + self.batch_size]

    def _load(self, sources: tuple[int, ...]) -> Any:
        """Returns the sources' items concatenated, copying one source at a time
        into arrays allocated once (so loading holds one extra shard at most)."""
        total = sum(self.sources[i].items for i in sources)
        out, filled = None, 0
        for index in sources:
            part = self.sources[index].load()
            if out is None:
                out = jax.tree.map(
                    lambda x: np.empty((total, *x.shape[1:]), x.dtype), part
                )
            rows = slice(filled, filled + self.sources[index].items)
            for dst, src in zip(
                jax.tree.leaves(out), jax.tree.leaves(part), strict=True
            ):
                dst[rows] = src
            filled = rows.stop
            del part
        return out

    def _data(self, sources: tuple[int, ...]) -> Any:
        if sources not in self._loaded:
            if self._next is not None and self._next[0] == sources:
                self._loaded[sources] = self._next[1].result()
                self._next = None
            else:
                self._loaded[sources] = self._load(sources)
            self._track()
        return self._loaded[sources]

    def _track(self) -> None:
        held = list(self._loaded.values())
        if self._next is not None and self._next[1].done():
            held.append(self._next[1].result())
        nbytes = sum(x.nbytes for tree in held for x in jax.tree.leaves(tree))
        self.peak_resident_bytes = max(self.peak_resident_bytes, nbytes)

    def batches(self, start: int, count: int, gather: Gather) -> Any:
        """Returns steps ``start .. start + count - 1``'s batches, leaves
        [count, B, ...], built by ``gather(block data, rows [k, B])`` per block
        the steps cross; then starts loading the block after the last one."""
        segments: list[tuple[_Block, list[np.ndarray]]] = []
        for step in range(start, start + count):
            block, offset = self._locate(step)
            if not segments or segments[-1][0] != block:
                segments.append((block, []))
            segments[-1][1].append(self._rows(block, offset))
        parts = []
        for block, rows in segments:
            parts.append(gather(self._data(block.sources), np.stack(rows)))
            # Only the block in use stays (and the one loading next).
            for key in [k for k in self._loaded if k != block.sources]:
                del self._loaded[key]
        last, offset = self._locate(start + count - 1)
        self._prefetch(self._locate(start + count - 1 - offset + last.steps)[0].sources)
        if len(parts) == 1:
            return parts[0]
        on_host = isinstance(jax.tree.leaves(parts[0])[0], np.ndarray)
        concat = np.concatenate if on_host else jax.numpy.concatenate
        return jax.tree.map(lambda *xs: concat(xs, axis=0), *parts)

    def _prefetch(self, sources: tuple[int, ...]) -> None:
        if sources in self._loaded or (self._next and self._next[0] == sources):
            return
        if self._next is not None:  # a block no step asks for any more
            self._next[1].cancel()
        self._next = (sources, self._pool.submit(self._load, sources))

    def close(self) -> None:
        """Drops the loaded blocks and stops the loading thread."""
        self._loaded.clear()
        self._next = None
        self._pool.shutdown(wait=True, cancel_futures=True)
