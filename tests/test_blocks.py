"""blocks.py: the batches of a phase, in memory and streamed in blocks of shards,
against a NumPy reference of the schedule, the resume property (any window of
steps equals the slice of one long call) and the memory cap."""

import numpy as np
import pytest

from janus_jax.data.blocks import BlockStream, Source

ITEM_BYTES = 8  # each item below is one int64: its global id


def _sources(sizes, loads=None):
    """Returns one source per size whose items are their global ids."""
    offsets = np.concatenate([[0], np.cumsum(sizes)])

    def load(i):
        if loads is not None:
            loads.append(i)
        return {"id": np.arange(offsets[i], offsets[i + 1], dtype=np.int64)}

    return [Source(n, n * ITEM_BYTES, lambda i=i: load(i)) for i, n in enumerate(sizes)]


def _take(data, rows):
    return {"id": data["id"][rows]}


def _ids(stream, start, count):
    return stream.batches(start, count, _take)["id"]


def test_a_dataset_that_fits_is_one_permutation_per_epoch():
    sizes, batch, seed = (4, 3, 4), 3, 5
    stream = BlockStream(_sources(sizes), batch, seed, 10**6, "V phase")
    assert stream.fits and stream.steps_per_epoch == 11 // 3
    got = _ids(stream, 0, 4 * 3)
    # the reference: epoch e takes rows of rng([seed, e]).permutation(11) in order
    want = np.concatenate(
        [
            np.random.default_rng([seed, e]).permutation(11)[:9].reshape(3, 3)
            for e in range(4)
        ]
    )
    np.testing.assert_array_equal(got, want)
    stream.close()


@pytest.mark.parametrize("cap", [10**6, 20 * ITEM_BYTES])
def test_every_epoch_draws_distinct_rows_and_every_row_comes_up(cap):
    sizes = (5, 7, 3, 6, 4, 5)  # 30 items: 240 bytes, over the smaller cap
    stream = BlockStream(_sources(sizes), 4, 0, cap, "V phase")
    assert stream.fits == (cap > 240)
    seen = set()
    for epoch in range(30):
        start, end = stream.epoch_start(epoch), stream.epoch_start(epoch + 1)
        ids = _ids(stream, start, end - start).ravel()
        assert len(set(ids.tolist())) == len(ids)  # no row twice in one epoch
        assert ids.min() >= 0 and ids.max() < 30
        seen |= set(ids.tolist())
    assert seen == set(range(30))  # the dropped tails differ from epoch to epoch
    stream.close()


@pytest.mark.parametrize("cap", [10**6, 20 * ITEM_BYTES])
@pytest.mark.parametrize("start,count", [(0, 1), (2, 5), (3, 3), (5, 10), (13, 17)])
def test_any_window_of_steps_equals_the_slice_of_one_long_call(cap, start, count):
    sizes = (5, 7, 3, 6, 4, 5)
    long = _ids(BlockStream(_sources(sizes), 3, 3, cap, "M phase"), 0, 40)
    fresh = BlockStream(_sources(sizes), 3, 3, cap, "M phase")  # a resumed run
    np.testing.assert_array_equal(
        _ids(fresh, start, count), long[start : start + count]
    )
    fresh.close()


def test_different_seeds_give_different_batches():
    a = _ids(BlockStream(_sources((20,)), 4, 0, 10**6, "V"), 0, 10)
    b = _ids(BlockStream(_sources((20,)), 4, 1, 10**6, "V"), 0, 10)
    assert not np.array_equal(a, b)


def test_a_streamed_epoch_is_blocks_of_shards_each_within_half_the_cap():
    sizes = (5, 7, 3, 6, 4, 5)
    cap = 20 * ITEM_BYTES  # blocks of at most 10 items
    loads = []
    stream = BlockStream(_sources(sizes, loads), 2, 1, cap, "V phase")
    epochs = 6
    total = stream.epoch_start(epochs)
    ids = _ids(stream, 0, total)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    shard_of = np.searchsorted(offsets, ids, side="right") - 1
    step = 0
    for plan in map(stream.blocks_of, range(epochs)):
        assert sorted(i for block in plan for i in block.sources) == list(range(6))
        for block in plan:
            assert sum(sizes[i] for i in block.sources) * ITEM_BYTES <= cap // 2
            # the block's steps draw only from its own shards
            drawn = set(shard_of[step : step + block.steps].ravel().tolist())
            assert drawn <= set(block.sources)
            step += block.steps
    # each block of each epoch was read once (prefetched or not), shard by shard,
    # and the first block of the next epoch is loading
    stream._next[1].result()
    following = stream.blocks_of(epochs)[0].sources
    assert len(loads) == epochs * len(sizes) + len(following)
    assert sorted(loads[-len(following) :]) == sorted(following)
    assert stream.peak_resident_bytes <= cap
    stream.close()


def test_a_block_loads_in_the_background_while_the_one_before_trains():
    sizes = (8, 8, 8, 8)
    stream = BlockStream(_sources(sizes), 4, 0, 16 * ITEM_BYTES, "V phase")
    first = stream._locate(0)[0]
    _ids(stream, 0, 1)  # a chunk inside the first block
    assert stream._next is not None and stream._next[0] != first.sources
    stream._next[1].result()
    assert list(stream._loaded) == [first.sources]
    stream.close()


def test_too_few_rows_for_one_batch_names_the_phase_and_sizes():
    with pytest.raises(ValueError, match=r"M phase: .* 2 rows, .*batch size 5"):
        BlockStream(_sources((2,)), 5, 0, 10**6, "M phase")


def test_a_shard_larger_than_half_the_cap_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match=r"max_resident_bytes=100 .* 80 bytes"):
        BlockStream(_sources((10, 5)), 2, 0, 100, "V phase")
