"""ShardStream: the shuffle buffer over shards behind every sampling iterator.

Sampling works as tf.data or array_record loaders do. Each iterator (one
``frames`` or ``windows`` call) walks the shards in a fresh random order per
pass and keeps a FIFO of resident shards holding at most ``max_resident_bytes``
of arrays. Every batch element is drawn uniformly over the resident set: frames
over its observations, windows over its (episode, start step) pairs, so each
step of each resident episode may start a window. Once the iterator has drawn
as many samples as the oldest resident shard holds items, that shard is evicted
and the next ones in the order are loaded until the budget is full. With K
similar shards resident each stays about K rotations and gives about one sample
per item, so a pass draws every item about once in expectation. When the whole
dataset fits in the budget nothing rotates and sampling is exactly uniform.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from janus_jax.data.shards import Shard

Fill = Callable[[Shard, np.ndarray, np.ndarray], None]


class ShardStream:
    """One iterator's FIFO of resident shards, rotated as samples are drawn.

    entries: the manifest's shard entries; ``acquire(index)`` returns a loaded
    shard and ``release(index)`` hands it back (the dataset shares loaded shards
    between streams). unit: "obs" to draw observations, "steps" window starts.
    """

    def __init__(
        self,
        entries: list[dict],
        max_resident_bytes: int,
        acquire: Callable[[int], Shard],
        release: Callable[[int], None],
        rng: np.random.Generator,
        unit: str,
    ):
        self._entries = entries
        self._cap = max_resident_bytes
        self._acquire, self._release = acquire, release
        self._rng = rng
        self._unit = unit
        self._queue: list[int] = []  # the rest of this pass's order, next first
        self._resident: dict[int, Shard] = {}  # insertion order: oldest first
        self._drawn = 0  # samples drawn since the oldest shard last rotated
        self._rotates = sum(e["array_bytes"] for e in entries) > max_resident_bytes
        try:
            if self._rotates:
                self._fill()
            else:
                for index in range(len(entries)):
                    self._resident[index] = acquire(index)
        except BaseException:
            self.close()
            raise

    def _items(self, index: int) -> int:
        entry = self._entries[index]
        return entry["steps"] + (entry["episodes"] if self._unit == "obs" else 0)

    def _fill(self) -> None:
        used = sum(self._entries[i]["array_bytes"] for i in self._resident)
        # The dataset exceeds the cap, so every pass holds a shard that is not
        # resident and either loads or stops us: two passes always suffice.
        for _ in range(2 * len(self._entries) + 1):
            if not self._queue:
                self._queue = self._rng.permutation(len(self._entries)).tolist()
            index = self._queue[0]
            size = self._entries[index]["array_bytes"]
            if index in self._resident:
                # Its turn came while it is loaded: count it as freshly loaded.
                self._resident[index] = self._resident.pop(index)
            elif used + size <= self._cap:
                self._resident[index] = self._acquire(index)
                used += size
            else:
                return
            self._queue.pop(0)

    def draw(self, n: int, fill: Fill) -> None:
        """Draws ``n`` items uniformly over the resident shards and calls
        ``fill(shard, local indices [m], positions in 0..n-1 [m])`` once per shard
        drawn from, then rotates the FIFO by the number drawn."""
        self._sample(n, fill)
        if not self._rotates:
            return
        self._drawn += n
        while self._drawn >= self._items(oldest := next(iter(self._resident))):
            self._drawn -= self._items(oldest)
            del self._resident[oldest]
            self._release(oldest)
            self._fill()

    def _sample(self, n: int, fill: Fill) -> None:
        shards = list(self._resident.values())
        sizes = np.array(
            [s.num_obs if self._unit == "obs" else s.num_steps for s in shards]
        )
        ends = np.cumsum(sizes)
        picks = self._rng.integers(0, ends[-1], size=n)
        which = np.searchsorted(ends, picks, side="right")
        for k, shard in enumerate(shards):
            positions = np.flatnonzero(which == k)
            if positions.size:
                fill(shard, picks[positions] - (ends[k] - sizes[k]), positions)

    def close(self) -> None:
        """Releases every resident shard."""
        while self._resident:
            index, _ = self._resident.popitem()
            self._release(index)
