"""loop.run_chunks: checkpoints between chunks, and what a resumed phase runs."""

import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.run.metrics_log import MetricsLogger, read_metrics
from janus_jax.train.loop import RunIO, run_chunks


def _chunk(state, done, count):
    # state counts chunks; "seen" records the value each chunk started from
    return (
        {"x": state["x"] + 1, "seen": state["seen"].at[done].set(state["x"])},
        {"loss": state["x"]},
        {},
    )


class Killed(Exception):
    pass


def _killed_after_two(state, done, count):
    if done == 2:
        raise Killed
    return _chunk(state, done, count)


def _run(io, total, on_resume=None, run_chunk=_chunk, checkpoint_every=1):
    state = {"x": jnp.zeros((), jnp.int32), "seen": jnp.full((4,), -1, jnp.int32)}
    return run_chunks(
        io,
        "controller",
        state,
        total=total,
        chunk=1,
        run_chunk=run_chunk,
        checkpoint_every=checkpoint_every,
        unit="updates",
        on_resume=on_resume,
    )[0]


def test_on_resume_adjusts_the_restored_state_of_an_unfinished_phase(tmp_path):
    with pytest.raises(Killed):  # checkpoints after chunks 1 and 2, then dies
        _run(RunIO(run_dir=tmp_path, progress=False), 4, run_chunk=_killed_after_two)
    calls = []

    def restarted(state):
        calls.append(int(state["x"]))
        return {**state, "x": state["x"] + 10}

    io = RunIO(run_dir=tmp_path, progress=False, resume=True)
    state = _run(io, total=4, on_resume=restarted)
    assert calls == [2]  # once, with the checkpoint's state, before chunk 3
    np.testing.assert_array_equal(state["seen"], [0, 1, 12, 13])
    # a finished phase is not touched again
    _run(io, total=4, on_resume=restarted)
    assert calls == [2]


def test_a_fresh_run_never_calls_on_resume(tmp_path):
    called = []
    _run(RunIO(run_dir=tmp_path, progress=False), 2, lambda s: called.append(s) or s)
    assert not called


def test_a_phase_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path):
    logger = MetricsLogger(tmp_path)
    io = RunIO(run_dir=tmp_path, logger=logger, progress=False)
    with pytest.raises(Killed):  # two chunks logged, no checkpoint yet
        _run(io, 4, run_chunk=_killed_after_two, checkpoint_every=10)
    logger.close()
    logger = MetricsLogger(tmp_path, resume=True)
    io = RunIO(run_dir=tmp_path, logger=logger, progress=False, resume=True)
    _run(io, 4, checkpoint_every=10)
    logger.close()
    steps = [row["step"] for row in read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == [1, 2, 3, 4]
