"""Faults on disk: files damaged or deleted by hand. Each must end in an error
naming the file and what to do, with what was written before intact and
loadable (checked by loading it and comparing values)."""

import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.data import DatasetCorruptError, DatasetWriter, RolloutDataset
from janus_jax.data.manifest import sha256_file
from janus_jax.train.checkpoint import CheckpointError, PhaseCheckpoints
from janus_jax.train.loop import RunIO, run_chunks

SPEC = dict(
    env_id="Probe-v0",
    observation_shape=(3,),
    observation_dtype="float32",
    action_shape=(),
    action_dtype="int32",
)


def episode(episode_id: int, steps: int = 4):
    """Returns an episode whose every value encodes (episode_id, t)."""
    code = 100.0 * episode_id + np.arange(steps + 1, dtype=np.float32)
    obs = np.stack([code, -code, code + 0.5], axis=-1)
    done = np.arange(steps) == steps - 1
    return obs, np.arange(steps) % 2, code[:-1], done, np.zeros(steps, bool)


def _checkpoint(value: float) -> dict:
    return {"w": np.full((8,), value, np.float32), "b": np.arange(3, dtype=np.int32)}


def _assert_restores(directory, step: int, value: float) -> None:
    with PhaseCheckpoints(directory) as checkpoints:
        assert checkpoints.latest_step() == step
        state, progress = checkpoints.restore(_checkpoint(0.0))
    np.testing.assert_array_equal(state["w"], np.full((8,), value, np.float32))
    np.testing.assert_array_equal(state["b"], np.arange(3))
    assert progress == {"value": value}


def test_a_deleted_newest_step_is_refused_with_what_to_do(tmp_path):
    with PhaseCheckpoints(tmp_path) as checkpoints:
        for step in (1, 2):
            checkpoints.save(step, _checkpoint(float(step)), {"value": float(step)})
    shutil.rmtree(tmp_path / "2")
    pointer = tmp_path / "latest.json"
    with PhaseCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CheckpointError) as info:
            checkpoints.latest_step()
    message = str(info.value)
    assert message.startswith(f"checkpoint step 2 is missing from {tmp_path} ")
    assert f"Put {tmp_path / '2'} back" in message
    assert f"delete {pointer} to resume from step 1" in message
    pointer.unlink()  # doing what it says
    _assert_restores(tmp_path, 1, 1.0)
    with PhaseCheckpoints(tmp_path) as checkpoints:
        checkpoints.save(2, _checkpoint(5.0), {"value": 5.0})
    _assert_restores(tmp_path, 2, 5.0)

    shutil.rmtree(tmp_path / "1")  # an older step is not needed: no error
    _assert_restores(tmp_path, 2, 5.0)
    shutil.rmtree(tmp_path / "2")
    with PhaseCheckpoints(tmp_path) as checkpoints:
        with pytest.raises(CheckpointError, match="no step is there.*start this phase"):
            checkpoints.latest_step()


def test_a_step_saved_by_another_instance_is_not_taken_for_a_deleted_one(tmp_path):
    with PhaseCheckpoints(tmp_path) as reader, PhaseCheckpoints(tmp_path) as writer:
        writer.save(1, _checkpoint(1.0), {"value": 1.0})
        assert reader.latest_step() == 1  # listed when opened, reread when needed


def _phase(io, phase, total, kill_at=None):
    def chunk(state, done, count):
        if done == kill_at:
            raise KeyboardInterrupt
        return {"x": state["x"] + 1}, {"loss": 1.0}, {}

    state = {"x": jnp.zeros((), jnp.int32)}
    return run_chunks(
        io,
        phase,
        state,
        total=total,
        chunk=1,
        run_chunk=chunk,
        checkpoint_every=1,
        unit="steps",
    )[0]


def test_a_deleted_earlier_phase_is_refused_not_trained_again(tmp_path):
    io = RunIO(run_dir=tmp_path, progress=False)
    _phase(io, "vae", 3)
    with pytest.raises(KeyboardInterrupt):
        _phase(io, "mdn", 4, kill_at=2)
    resumed = RunIO(run_dir=tmp_path, progress=False, resume=True)
    assert int(_phase(resumed, "vae", 3)["x"]) == 3  # finished: restored as is
    vae = tmp_path / "checkpoints" / "vae"
    shutil.rmtree(vae)
    with pytest.raises(CheckpointError) as info:
        _phase(resumed, "vae", 3)
    message = str(info.value)
    assert message.startswith(f"cannot resume phase vae: {vae} holds no checkpoint")
    assert f"phase mdn has checkpoints in {tmp_path / 'checkpoints' / 'mdn'}" in message
    assert "--overwrite" in message
    shutil.rmtree(tmp_path / "checkpoints" / "mdn")  # the other way out it names
    assert int(_phase(resumed, "vae", 3)["x"]) == 3


def _dataset_with_shards(path, lengths):
    with DatasetWriter(path, shard_steps=1, **SPEC) as writer:
        for i, steps in enumerate(lengths):
            writer.add_episode(*episode(i, steps))
    return json.loads((path / "manifest.json").read_text())


def test_a_shard_of_another_length_than_the_manifest_says_is_named(tmp_path):
    manifest = _dataset_with_shards(tmp_path / "a", [4, 4, 4])
    _dataset_with_shards(tmp_path / "b", [4, 6, 4])
    shard = tmp_path / "a" / "shard-00001.npz"
    shutil.copy(tmp_path / "b" / "shard-00001.npz", shard)
    with pytest.raises(DatasetCorruptError) as info:
        RolloutDataset(tmp_path / "a")
    message = str(info.value)
    assert f"shard {shard} is " in message and "the manifest records" in message
    assert "Restore it from a copy of the dataset, or collect" in message

    # A manifest edited to the file's size and hash, but not to its contents.
    entry = manifest["shards"][1]
    entry["bytes"] = shard.stat().st_size
    entry["sha256"] = sha256_file(shard)
    (tmp_path / "a" / "manifest.json").write_text(json.dumps(manifest))
    dataset = RolloutDataset(tmp_path / "a")
    with pytest.raises(DatasetCorruptError) as info:
        dataset.verify()
    message = str(info.value)
    assert f"shard {shard} is corrupt: " in message
    assert "holds 1 episodes and 6 steps, the manifest says 1 and 4" in message
    assert "Restore it from a copy" in message
    loader = RolloutDataset(tmp_path / "a", verify=False).frames(64, seed=0)
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz is corrupt"):
        next(loader)


def test_a_missing_shard_is_named_with_what_to_do(tmp_path):
    _dataset_with_shards(tmp_path, [4, 4])
    (tmp_path / "shard-00000.npz").unlink()
    with pytest.raises(DatasetCorruptError) as info:
        RolloutDataset(tmp_path)
    message = str(info.value)
    assert message.startswith(f"shard {tmp_path / 'shard-00000.npz'} is missing ")
    assert message.endswith(
        "collect the dataset again into a new directory (janus-jax collect "
        "--out NEW_DIR)"
    )
