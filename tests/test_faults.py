"""Faults on disk: a full disk while writing a checkpoint, a dataset shard, its
manifest or the metrics log, and files damaged or deleted by hand. Each must end
in an error naming the file and what to do, with what was written before intact
and loadable (checked by loading it and comparing values)."""

import errno
import io
import json
import os
import resource
import shutil
import signal

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from janus_jax import cli
from janus_jax.data import DatasetCorruptError, DatasetWriter, RolloutDataset
from janus_jax.data.manifest import sha256_file
from janus_jax.run import files, metrics_log
from janus_jax.run.checkpoint import CheckpointError, PhaseCheckpoints
from janus_jax.run.files import DiskFullError
from janus_jax.run.metrics_log import MetricsLogger, read_metrics
from janus_jax.train.loop import RunIO, run_chunks

SPEC = dict(
    env_id="Probe-v0",
    observation_shape=(3,),
    observation_dtype="float32",
    action_shape=(),
    action_dtype="int32",
)


class TinyDisk:
    """A disk with ``room`` bytes left, for the ``open`` calls of the modules it
    is patched into: a write past the room writes what fits, then fails with
    ENOSPC, as a real full disk does. ``only`` limits it to names ending so."""

    def __init__(self, room: int, only: str = ""):
        self.room, self.only = room, only

    def open(self, file, mode="r", *args, **kwargs):
        if not ("w" in mode or "a" in mode) or not str(file).endswith(self.only):
            return open(file, mode, *args, **kwargs)
        buffered = io.BufferedWriter(_RoomLimitedFile(self, file, mode[0]))
        if "b" in mode:
            return buffered
        return io.TextIOWrapper(buffered, encoding=kwargs.get("encoding"))


class _RoomLimitedFile(io.RawIOBase):
    def __init__(self, disk: TinyDisk, file, mode: str):
        self._disk, self._file = disk, io.FileIO(file, mode)

    def writable(self):
        return True

    def seekable(self):  # as a real file is: zipfile writes its headers in place
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self._file.seek(offset, whence)

    def tell(self):
        return self._file.tell()

    def write(self, data):
        fits = min(len(data), self._disk.room)
        if fits == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = self._file.write(bytes(data[:fits]))
        self._disk.room -= written
        return written

    def fileno(self):
        return self._file.fileno()

    def close(self):
        self._file.close()
        super().close()


def episode(episode_id: int, steps: int = 4):
    """Returns an episode whose every value encodes (episode_id, t)."""
    code = 100.0 * episode_id + np.arange(steps + 1, dtype=np.float32)
    obs = np.stack([code, -code, code + 0.5], axis=-1)
    done = np.arange(steps) == steps - 1
    return obs, np.arange(steps) % 2, code[:-1], done, np.zeros(steps, bool)


def assert_holds(path, episode_ids):
    """Asserts the dataset at ``path`` opens, verifies and holds exactly these
    episodes, value for value."""
    dataset = RolloutDataset(path)
    dataset.verify()
    stored = list(dataset.iter_episodes())
    assert len(stored) == len(episode_ids)
    for got, episode_id in zip(stored, episode_ids, strict=True):
        for have, want in zip(got, episode(episode_id), strict=True):
            np.testing.assert_array_equal(have, want)


def test_full_disk_while_writing_a_shard_keeps_the_earlier_episodes(
    tmp_path, monkeypatch
):
    writer = DatasetWriter(tmp_path, shard_steps=8, **SPEC)
    for i in range(4):  # two shards of two episodes
        writer.add_episode(*episode(i))
    manifest = (tmp_path / "manifest.json").read_bytes()
    disk = TinyDisk(room=300)  # less than a shard: it fails midway
    monkeypatch.setattr(files, "open", disk.open, raising=False)
    writer.add_episode(*episode(4))
    with pytest.raises(DiskFullError) as info:
        writer.flush()
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC
    assert message.startswith(f"cannot write {tmp_path / 'shard-00002.npz'}: ")
    assert "the disk is full (No space left on device)" in message
    assert f"4 episodes listed in {tmp_path / 'manifest.json'} are intact" in message
    assert "1 buffered episodes were not written" in message
    assert "--resume" in message
    assert (tmp_path / "manifest.json").read_bytes() == manifest
    assert sorted(os.listdir(tmp_path)) == [
        ".lock",
        "manifest.json",
        "shard-00000.npz",
        "shard-00001.npz",
    ]  # the half-written temporary file is gone
    assert_holds(tmp_path, [0, 1, 2, 3])

    disk.room = 10**9  # space was freed: the buffered episode goes in
    writer.close()
    assert_holds(tmp_path, [0, 1, 2, 3, 4])


def test_full_disk_while_writing_the_manifest_removes_the_unlisted_shard(
    tmp_path, monkeypatch
):
    with DatasetWriter(tmp_path, shard_steps=8, **SPEC) as writer:
        writer.add_episode(*episode(0))
        writer.add_episode(*episode(1))
    monkeypatch.setattr(files, "open", TinyDisk(0, only=".json").open, raising=False)
    writer = DatasetWriter(tmp_path, resume=True, shard_steps=8, **SPEC)
    writer.add_episode(*episode(2))
    with pytest.raises(DiskFullError, match="manifest.*the disk is full") as info:
        writer.flush()
    assert "2 episodes listed in" in str(info.value)
    # The shard was in place before the manifest failed; unlisted, it is removed.
    assert not (tmp_path / "shard-00001.npz").exists()
    assert_holds(tmp_path, [0, 1])
    monkeypatch.undo()
    writer.close()
    assert_holds(tmp_path, [0, 1, 2])


def test_full_disk_while_logging_keeps_the_earlier_rows(tmp_path, monkeypatch):
    disk = TinyDisk(room=10**6)
    monkeypatch.setattr(metrics_log, "open", disk.open, raising=False)
    log = MetricsLogger(tmp_path)
    for step in (1, 2, 3):
        log.write("vae", step, {"loss": step / 10})
    disk.room = 12  # the next row is cut after 12 bytes
    with pytest.raises(DiskFullError) as info:
        log.write("vae", 4, {"loss": 0.4})
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / 'metrics.jsonl'}: ")
    assert (
        "the disk is full" in message and "rows before this one are intact" in message
    )
    log.close()  # the failed row is not written again on close
    text = (tmp_path / "metrics.jsonl").read_text()
    assert text.count("\n") == 3 and len(text.rsplit("\n", 1)[1]) == 12
    assert [row["loss"] for row in read_metrics(tmp_path / "metrics.jsonl")] == [
        0.1,
        0.2,
        0.3,
    ]
    monkeypatch.undo()
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: dropped its last line, 12"):
        log = MetricsLogger(tmp_path, resume=True)
    with log:
        log.write("vae", 4, {"loss": 0.4})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert [(row["step"], row["loss"]) for row in rows] == [
        (1, 0.1),
        (2, 0.2),
        (3, 0.3),
        (4, 0.4),
    ]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
def test_the_kernels_own_enospc_is_recognised(tmp_path):
    (tmp_path / "metrics.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with MetricsLogger(tmp_path) as log:
        with pytest.raises(DiskFullError, match=r"metrics\.jsonl: the disk is full"):
            log.write("vae", 1, {"loss": 1.0})


def _checkpoint(value: float) -> dict:
    return {"w": np.full((8,), value, np.float32), "b": np.arange(3, dtype=np.int32)}


def _assert_restores(directory, step: int, value: float) -> None:
    with PhaseCheckpoints(directory) as checkpoints:
        assert checkpoints.latest_step() == step
        state, progress = checkpoints.restore(_checkpoint(0.0))
    np.testing.assert_array_equal(state["w"], np.full((8,), value, np.float32))
    np.testing.assert_array_equal(state["b"], np.arange(3))
    assert progress == {"value": value}


def test_full_disk_while_saving_a_checkpoint_keeps_the_last_good_one(
    tmp_path, monkeypatch
):
    checkpoints = PhaseCheckpoints(tmp_path)
    checkpoints.save(1, _checkpoint(1.0), {"value": 1.0})

    async def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ocp.StandardCheckpointHandler, "async_save", full)
    with pytest.raises(DiskFullError) as info:
        checkpoints.save(2, _checkpoint(2.0), {"value": 2.0})
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / '2'}: the disk is full")
    assert "the latest good checkpoint, step 1, is intact" in message
    assert "--resume" in message
    assert sorted(os.listdir(tmp_path)) == ["1", "latest.json"]  # no partial step
    _assert_restores(tmp_path, 1, 1.0)

    monkeypatch.undo()  # space was freed: the same step saves
    checkpoints.save(2, _checkpoint(2.0), {"value": 2.0})
    checkpoints.close()
    _assert_restores(tmp_path, 2, 2.0)


def test_a_write_failing_inside_tensorstore_is_recognised(tmp_path):
    # A file size limit makes the kernel refuse the write (EFBIG) inside
    # tensorstore's C++ writer: the same path a full disk's ENOSPC takes.
    checkpoints = PhaseCheckpoints(tmp_path)
    checkpoints.save(1, _checkpoint(1.0), {"value": 1.0})
    noise = np.random.default_rng(0).standard_normal(1 << 18, np.float32)  # 1 MB
    big = {"w": noise, "b": np.arange(3, dtype=np.int32)}  # incompressible
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, limits[1]))
    try:
        with pytest.raises(DiskFullError) as info:
            checkpoints.save(2, big, {"value": 2.0})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    message = str(info.value)
    assert message.startswith(f"cannot write {tmp_path / '2'}: the file is larger")
    assert "(File too large)" in message and "step 1, is intact" in message
    assert sorted(os.listdir(tmp_path)) == ["1", "latest.json"]
    checkpoints.close()
    _assert_restores(tmp_path, 1, 1.0)


def test_the_cli_reports_a_full_disk_in_one_line(monkeypatch, capsys):
    def full(args):
        raise DiskFullError("/runs/x/metrics.jsonl", "the disk is full", "all kept")

    monkeypatch.setattr(cli, "_train", full)
    assert cli.main(["train", "--out", "/runs/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("janus-jax train: error: cannot write /runs/x/metrics.jsonl")
    assert err.count("\n") == 1 and "all kept" in err


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


# -- what a killed writer leaves ------------------------------------------------------


def test_leftover_temporary_names_are_atomic_paths_only(tmp_path):
    ours = [
        ".summary.ab12cd_3.tmp.json",  # atomic_path("summary.json")
        "checkpoints/vae/.latest.x9y8z7w6.tmp.json",
        "data/.tmp-abcdefgh.tmp.npz",  # the dataset writer's prefix
        ".metrics.q1w2e3r4.tmp.jsonl",
        ".pointer.00000000.tmp",  # a target without a suffix
    ]
    theirs = [
        "summary.json",
        ".janus-jax.lock",
        ".hidden.tmp",  # no 8-character random part
        "notes.ab12cd34.tmp.json",  # not a dot file
        ".keep",
    ]
    for name in ours + theirs:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "checkpoints" / ".d.abcdefgh.tmp").mkdir()  # a directory: kept
    found = files.leftover_temps(tmp_path)
    assert found == sorted(tmp_path / name for name in ours)


KILLED_WRITER = """
import os, signal, sys
from janus_jax.run import files
with files.atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a summary")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_resuming_removes_what_a_killed_writer_left(tmp_path):
    import dataclasses
    import subprocess
    import sys

    from janus_jax.config import presets
    from janus_jax.run.run_dir import prepare_run_dir

    out = tmp_path / "run"
    config = presets.tiny()
    assert not prepare_run_dir(out, config, resume=False, overwrite=False, fresh=True)
    for target in (out / "summary.json", out / "checkpoints" / "vae" / "latest.json"):
        target.parent.mkdir(parents=True, exist_ok=True)
        killed = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)])
        assert killed.returncode == -signal.SIGKILL
        assert not target.exists()
    assert len(files.leftover_temps(out)) == 2
    other = dataclasses.replace(config, seed=config.seed + 1)
    with pytest.raises(ValueError, match="another config"):
        prepare_run_dir(out, other, resume=True, overwrite=False, fresh=True)
    assert len(files.leftover_temps(out)) == 2  # a refused run is left as it was
    (out / ".keep").write_text("the user's")
    assert prepare_run_dir(out, config, resume=True, overwrite=False, fresh=True)
    assert files.leftover_temps(out) == []
    assert (out / ".keep").read_text() == "the user's"


def test_a_run_made_before_a_field_existed_resumes_at_its_default(tmp_path):
    from janus_jax.config import presets
    from janus_jax.run.run_dir import prepare_run_dir

    out = tmp_path / "run"
    config = presets.tiny()
    prepare_run_dir(out, config, resume=False, overwrite=False, fresh=True)
    saved = json.loads((out / "config.json").read_text())
    del saved["controller"]["eval_policy"]  # as an older version wrote it
    (out / "config.json").write_text(json.dumps(saved))
    assert prepare_run_dir(out, config, resume=True, overwrite=False, fresh=True)
    # A value other than that default is another config.
    saved["controller"]["eval_policy"] = "sample"
    (out / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match="eval_policy: 'sample' there, 'mode' here"):
        prepare_run_dir(out, config, resume=True, overwrite=False, fresh=True)
