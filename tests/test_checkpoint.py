"""Tests for janus_jax.run.checkpoint: orbax round trips, retention, failures."""

import json
import os
import subprocess
import sys
import textwrap
import time

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from janus_jax.run.checkpoint import (
    CheckpointError,
    PhaseCheckpoints,
    read_json,
    write_json_atomic,
)


@flax.struct.dataclass
class TrainState:
    params: dict
    opt_state: optax.OptState
    step: jax.Array
    key_data: jax.Array


def _optimizer() -> optax.GradientTransformation:
    chain = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))
    return optax.MultiSteps(chain, every_k_schedule=2)


def _state(seed: int = 0, hidden: int = 8) -> TrainState:
    """Returns a train state whose every leaf depends on ``seed``."""
    rng = np.random.default_rng(seed)
    params = {
        "Dense_0": {
            "kernel": jnp.asarray(rng.normal(size=(4, hidden)), jnp.float32),
            "bias": jnp.asarray(rng.normal(size=(hidden,)), jnp.float32),
        },
    }
    tx = _optimizer()
    opt_state = tx.init(params)
    # One real update so the Adam moments and counters are not all zeros.
    grads = jax.tree.map(jnp.ones_like, params)
    _, opt_state = tx.update(grads, opt_state, params)
    return TrainState(
        params=params,
        opt_state=opt_state,
        step=jnp.int32(seed + 1),
        key_data=jax.random.key_data(jax.random.key(seed)),
    )


def test_round_trip_keeps_values_and_pytree_types(tmp_path):
    state = _state(seed=3)
    progress = {"phase": "vae", "updates": 7, "complete": False, "losses": [1.5, 0.5]}
    with PhaseCheckpoints(tmp_path / "vae") as checkpoints:
        checkpoints.save(7, state, progress)
        abstract = jax.eval_shape(lambda: _state(seed=0))
        restored, restored_progress = checkpoints.restore(abstract)

    assert restored_progress == progress
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    assert isinstance(restored, TrainState)
    assert isinstance(restored.opt_state, optax.MultiStepsState)
    adam_state = restored.opt_state.inner_opt_state[1][0]
    assert isinstance(adam_state, optax.ScaleByAdamState)
    assert restored.step.dtype == jnp.int32
    assert restored.key_data.dtype == jnp.uint32
    for got, want in zip(
        jax.tree.leaves(restored), jax.tree.leaves(state), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert got.dtype == want.dtype
    chex.assert_trees_all_equal(restored, state)
    # The restored key data still makes the same key.
    key = jax.random.wrap_key_data(restored.key_data)
    np.testing.assert_array_equal(
        jax.random.uniform(key, (3,)), jax.random.uniform(jax.random.key(3), (3,))
    )


def test_fresh_instance_reads_progress_and_state_of_an_earlier_process(tmp_path):
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, _state(1), {"complete": False, "updates": 1})
        checkpoints.save(2, _state(2), {"complete": True, "updates": 2})
    with PhaseCheckpoints(tmp_path) as checkpoints:
        assert checkpoints.latest_step() == 2
        assert checkpoints.progress() == {"complete": True, "updates": 2}
        assert checkpoints.progress(step=1) == {"complete": False, "updates": 1}
        restored, _ = checkpoints.restore(_state(0), step=1)
    chex.assert_trees_all_equal(restored, _state(1))


def test_latest_step_and_retention_of_the_last_two(tmp_path):
    directory = tmp_path / "checkpoints" / "mdn"
    with PhaseCheckpoints(directory, max_to_keep=2) as checkpoints:
        assert checkpoints.latest_step() is None
        assert not directory.exists()  # opening does not create the directory
        for step in (10, 20, 30, 40):
            checkpoints.save(step, _state(step), {"step": step})
            assert checkpoints.latest_step() == step
        assert checkpoints.all_steps() == [30, 40]
        with pytest.raises(CheckpointError, match=r"no checkpoint for step 10 in"):
            checkpoints.progress(step=10)
    assert sorted(os.listdir(directory)) == ["30", "40", "latest.json"]
    assert json.loads((directory / "latest.json").read_text()) == {"step": 40}


def test_max_to_keep_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_to_keep"):
        PhaseCheckpoints(tmp_path, max_to_keep=0)


@pytest.mark.parametrize("step", [5, 4])
def test_saving_the_same_or_an_older_step_raises(tmp_path, step):
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(5, _state(5), {"step": 5})
        with pytest.raises(CheckpointError, match=rf"step {step} .*step 5"):
            checkpoints.save(step, _state(9), {"step": 9})
        restored, progress = checkpoints.restore(_state(0))
    assert progress == {"step": 5}
    chex.assert_trees_all_equal(restored, _state(5))


def test_another_shape_raises_naming_path_and_leaf(tmp_path):
    with PhaseCheckpoints(tmp_path / "vae") as checkpoints:
        checkpoints.save(3, _state(hidden=8), {})
        with pytest.raises(CheckpointError) as info:
            checkpoints.restore(_state(hidden=16))
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "vae" / "3") in message
    assert "does not match this run's config" in message
    assert "leaf params/Dense_0/kernel has shape (4, 8), this run expects (4, 16)" in (
        message
    )
    assert "and " in message and "more" in message  # capped list of mismatches


def test_another_dtype_raises(tmp_path):
    state = _state()
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, state, {})
        wrong = state.replace(step=jnp.float32(1.0))
        with pytest.raises(CheckpointError, match=r"leaf step has dtype int32"):
            checkpoints.restore(wrong)


def test_another_structure_raises(tmp_path):
    state = _state()
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, state, {})
        params = dict(state.params, Dense_1={"kernel": jnp.zeros((8, 2))})
        with pytest.raises(CheckpointError) as info:
            checkpoints.restore(state.replace(params=params))
        assert "leaf params/Dense_1/kernel is missing from the checkpoint" in str(
            info.value
        )
        # Plain SGD has no Adam moments: the saved ones are reported as extra.
        sgd_state = optax.sgd(0.1).init(state.params)
        with pytest.raises(CheckpointError, match="is in the checkpoint but not in"):
            checkpoints.restore(state.replace(opt_state=sgd_state))


# After a failed read, tensorstore callbacks reach orbax's already-closed event
# loop and print "Event loop is closed": harmless noise from late threads, which
# the sleep below keeps inside this test instead of the next one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_corrupt_array_file_raises_checkpoint_error(tmp_path, damage):
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, _state(), {})
    # After a save orbax merges the arrays into state/d/; those files are the
    # ones a restore reads (state/ocdbt.process_0/ only keeps the per-process copy).
    data_files = list((tmp_path / "1" / "state" / "d").iterdir())
    assert data_files
    for path in data_files:
        if damage == "truncate":
            with open(path, "r+b") as f:
                f.truncate(10)
        else:
            path.unlink()
    with PhaseCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CheckpointError) as info:
            checkpoints.restore(_state())
    time.sleep(0.5)
    message = str(info.value)
    assert type(info.value) is CheckpointError
    assert message.startswith(f"checkpoint {tmp_path / '1'} is unreadable: ")
    assert "\n" not in message and "tensorstore_spec" not in message
    assert f"delete it and {tmp_path / 'latest.json'} to resume from" in message


def test_missing_state_metadata_raises_checkpoint_error(tmp_path):
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(1, _state(), {})
    (tmp_path / "1" / "state" / "_METADATA").unlink()
    with PhaseCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CheckpointError, match=str(tmp_path / "1")):
            checkpoints.restore(_state())


_CRASHING_SAVE = """
import os, sys
import jax.numpy as jnp
from orbax.checkpoint._src.path import atomicity
from janus_jax.run.checkpoint import PhaseCheckpoints

async def die_before_commit(self, *args, **kwargs):
    os._exit(17)  # a kill: no cleanup, no exception handlers

checkpoints = PhaseCheckpoints(sys.argv[1])
checkpoints.save(1, {"w": jnp.arange(4.0)}, {"complete": False})
# Orbax commits a step by renaming its temporary directory; dying right before
# that rename is the worst moment for a crash.
atomicity.AtomicRenameTemporaryPath.finalize = die_before_commit
checkpoints.save(2, {"w": jnp.arange(4.0) + 10}, {"complete": True})
"""


def test_crash_mid_save_keeps_the_previous_checkpoint(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(_CRASHING_SAVE))
    directory = tmp_path / "checkpoints"
    result = subprocess.run(
        [sys.executable, str(script), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    assert result.returncode == 17, result.stderr
    leftovers = [p.name for p in directory.iterdir() if p.name != "1"]
    assert any(name.startswith("2.orbax-checkpoint-tmp") for name in leftovers), (
        leftovers
    )
    with PhaseCheckpoints(directory) as checkpoints:
        assert checkpoints.latest_step() == 1
        assert checkpoints.progress() == {"complete": False}
        restored, _ = checkpoints.restore({"w": jnp.zeros(4)})
        np.testing.assert_array_equal(restored["w"], np.arange(4.0))
        # The resumed run can save the step the crash lost.
        checkpoints.save(2, {"w": jnp.arange(4.0) + 10}, {"complete": True})
        assert checkpoints.latest_step() == 2
        assert checkpoints.progress() == {"complete": True}


def test_missing_directory_raises(tmp_path):
    missing = tmp_path / "nowhere" / "vae"
    with PhaseCheckpoints(missing) as checkpoints:
        assert checkpoints.latest_step() is None
        with pytest.raises(CheckpointError, match=f"^no checkpoint in {missing}$"):
            checkpoints.restore(_state())
        with pytest.raises(CheckpointError, match=f"^no checkpoint in {missing}$"):
            checkpoints.progress()
    assert not missing.exists()


def test_write_json_atomic_round_trip(tmp_path):
    path = tmp_path / "sub" / "config.json"
    obj = {"zeta": 1, "alpha": [1, 2], "nested": {"b": True, "a": None}}
    write_json_atomic(path, obj)
    text = path.read_text()
    assert text == json.dumps(obj, indent=2) + "\n"  # indented, keys in given order
    assert read_json(path, "config") == obj
    write_json_atomic(path, {"replaced": 1})
    assert read_json(path, "config") == {"replaced": 1}
    assert os.listdir(path.parent) == ["config.json"]  # no temporary files left


def test_write_json_atomic_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "progress.json"
    write_json_atomic(path, {"ok": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert read_json(path, "progress") == {"ok": 1}
    assert os.listdir(tmp_path) == ["progress.json"]


def test_read_json_errors(tmp_path):
    missing = tmp_path / "config.json"
    with pytest.raises(CheckpointError, match=f"^no run config at {missing}$"):
        read_json(missing, "run config")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(CheckpointError, match=rf"{broken} is not valid JSON: line 4"):
        read_json(broken, "run config")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_json(listed, "run config")
