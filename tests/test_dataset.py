"""Rollout datasets: round trips, crash safety, integrity, and the frames and
training windows read back from them.

Every value an episode writes encodes (episode id, step): ``1 + id * BASE + t``,
so each sampled frame or window is checked against the ground truth on its own,
independently of the reader's bookkeeping.
"""

import hashlib
import json

import numpy as np
import pytest

from janus_jax.config.models import VAEConfig
from janus_jax.data import (
    DatasetCorruptError,
    DatasetWriter,
    RolloutDataset,
    sequences,
)
from janus_jax.records import Windows

BASE = 1000
OBS_SHAPE = (2, 3)
SPEC = dict(
    observation_shape=OBS_SHAPE,
    observation_dtype="float32",
    action_shape=(2,),
    action_dtype="float32",
)


def make_episode(episode_id: int, steps: int):
    """Returns (obs, actions, rewards, terminated, truncated) encoding the ids;
    even ids end terminated, odd ones truncated."""
    code = 1 + episode_id * BASE + np.arange(steps + 1)
    obs = np.broadcast_to(code[:, None, None], (steps + 1, *OBS_SHAPE))
    actions = np.stack([code[:-1], -code[:-1]], axis=-1)
    last = np.arange(steps) == steps - 1
    even = episode_id % 2 == 0
    return obs.astype(np.float32), actions, code[:-1], last & even, last & ~even


def write_dataset(path, lengths: dict[int, int], shard_steps=50, **kwargs):
    """Writes one episode per (id, length) and returns the lengths."""
    with DatasetWriter(
        path, env_id="Probe-v0", shard_steps=shard_steps, **SPEC, **kwargs
    ) as writer:
        for episode_id, steps in lengths.items():
            writer.add_episode(*make_episode(episode_id, steps))
    return lengths


def random_lengths(count, low, high, seed=0, first_id=0):
    rng = np.random.default_rng(seed)
    return {first_id + i: int(n) for i, n in enumerate(rng.integers(low, high, count))}


def training_windows(dataset: RolloutDataset, length: int):
    """Returns every shard's windows for M (``sequences.shard_windows`` on its
    stored observations, as training cuts V's latents of them), concatenated."""
    columns = ("episode_lengths", "actions", "rewards", "terminated")
    parts = [
        sequences.shard_windows(
            dataset.column(i, "obs"), *(dataset.column(i, n) for n in columns), length
        )
        for i in range(dataset.num_shards)
    ]
    fields = zip(*(w[:5] for w in parts), strict=True)  # carry: None, zeros
    return Windows(*map(np.concatenate, fields))


def check_windows(windows: Windows, lengths: dict[int, int]):
    """Asserts every row is the true window of its episode; returns (ids, starts,
    valid steps) per row."""
    obs, actions, rewards, dones, mask, _ = windows
    batch, length = mask.shape
    episode, start = np.divmod(obs[:, 0, 0, 0].astype(np.int64) - 1, BASE)
    steps = np.array([lengths[e] for e in episode])
    valid = np.minimum(length, steps - start)
    assert (valid >= 1).all()
    k = np.arange(length + 1)
    # Past an episode's end the rows repeat its last observation and action
    # (clipped, never a neighbour's), with rewards and dones zero and mask 0.
    t = np.minimum(start[:, None] + k, steps[:, None])  # [B, L + 1]
    code = 1 + episode[:, None] * BASE + t
    np.testing.assert_array_equal(
        obs, np.broadcast_to(code[:, :, None, None], obs.shape)
    )
    step_real = k[:-1] < valid[:, None]
    act = 1 + episode[:, None] * BASE + np.minimum(t[:, :-1], steps[:, None] - 1)
    np.testing.assert_array_equal(actions, np.stack([act, -act], -1))
    np.testing.assert_array_equal(rewards, np.where(step_real, code[:, :-1], 0))
    np.testing.assert_array_equal(mask, step_real.astype(np.float32))
    last = (start[:, None] + k[:-1] == steps[:, None] - 1) & step_real
    even = (episode % 2 == 0)[:, None]
    np.testing.assert_array_equal(dones, (last & even).astype(np.float32))
    return episode, start, valid


def check_frames(frames: np.ndarray, lengths: dict[int, int]):
    """Asserts every frame is a true observation; returns (ids, steps) per frame."""
    assert frames.shape[1:] == OBS_SHAPE and frames.dtype == np.float32
    assert (frames == frames[:, :1, :1]).all()
    episode, t = np.divmod(frames[:, 0, 0].astype(np.int64) - 1, BASE)
    assert all(0 <= s <= lengths[e] for e, s in zip(episode, t, strict=True))
    return episode, t


def take(iterator, count):
    return [next(iterator) for _ in range(count)]


def test_round_trip_manifest_and_contents(tmp_path):
    lengths = random_lengths(30, 1, 20)
    config = VAEConfig(latent_dim=8)
    write_dataset(tmp_path, lengths, metadata={"seed": 7, "vae": config})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["env_id"] == "Probe-v0"
    assert manifest["observation_shape"] == [2, 3]
    assert manifest["metadata"]["seed"] == 7
    assert manifest["metadata"]["vae"]["latent_dim"] == 8
    total = sum(lengths.values())
    assert manifest["totals"] == {
        "episodes": 30,
        "steps": total,
        "shards": len(manifest["shards"]),
    }
    for i, entry in enumerate(manifest["shards"]):
        data = (tmp_path / entry["file"]).read_bytes()
        assert entry["file"] == f"shard-{i:05d}.npz"
        assert entry["bytes"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        if i < len(manifest["shards"]) - 1:  # flushed once 50 steps were buffered
            assert entry["steps"] >= 50
    dataset = RolloutDataset(tmp_path)
    assert (dataset.num_episodes, dataset.num_steps) == (30, total)
    np.testing.assert_array_equal(dataset.episode_lengths(), list(lengths.values()))
    returns = [sum(1 + e * BASE + t for t in range(n)) for e, n in lengths.items()]
    np.testing.assert_allclose(dataset.episode_returns(), returns, rtol=1e-6)
    windows = training_windows(dataset, 6)
    count = sum(-(-n // 6) for n in lengths.values())
    assert windows.obs.shape == (count, 7, *OBS_SHAPE)
    assert windows.actions.shape == (count, 6, 2)
    assert windows.dones.dtype == windows.mask.dtype == np.float32
    check_windows(windows, lengths)
    seen = [check_frames(f, lengths) for f in take(dataset.frames(64, seed=1), 20)]
    episode, t = map(np.concatenate, zip(*seen, strict=True))
    final = t == np.array([lengths[e] for e in episode])
    assert final.any() and (t == 0).any()  # o_T and o_0 are both drawn


def test_windows_never_mix_episodes_and_mask_the_tail(tmp_path):
    lengths = write_dataset(tmp_path, random_lengths(60, 1, 25, seed=1))
    dataset = RolloutDataset(tmp_path)
    assert dataset.num_shards > 1  # episodes on both sides of a shard boundary
    episode, start, valid = check_windows(training_windows(dataset, 8), lengths)
    assert (valid < 8).any() and (valid == 8).any()  # padded and full windows
    assert (start == 0).any()
    # every step of every episode in exactly one window, length 1 included
    np.testing.assert_array_equal(
        np.bincount(episode, weights=valid, minlength=60), list(lengths.values())
    )


def test_same_seed_same_frames(tmp_path):
    write_dataset(tmp_path, random_lengths(40, 1, 20), shard_steps=30)

    def batches(seed):
        return take(RolloutDataset(tmp_path).frames(16, seed), 30)

    f1, f2, f3 = batches(5), batches(5), batches(6)
    np.testing.assert_array_equal(np.stack(f1), np.stack(f2))
    assert not np.array_equal(f1[0], f3[0])


def test_resume_after_interrupted_writer(tmp_path, monkeypatch):
    first = random_lengths(6, 3, 10)
    writer = DatasetWriter(tmp_path, env_id="Probe-v0", metadata={"seed": 1}, **SPEC)
    for episode_id, steps in first.items():
        writer.add_episode(*make_episode(episode_id, steps))
    writer.flush()

    # A crash between a shard's rename and the manifest's: orphan shards.
    def crash(*args):
        raise OSError("simulated crash before the manifest update")

    monkeypatch.setattr("janus_jax.data.writer.write_manifest", crash)
    writer.add_episode(*make_episode(50, 5))
    with pytest.raises(OSError, match="simulated crash"):
        writer.flush()
    with pytest.raises(OSError, match="simulated crash"):
        writer.close()  # retries the flush into yet another orphan
    monkeypatch.undo()
    (tmp_path / ".tmp-leftover.part").write_bytes(b"half a shard")
    orphans = {
        n: (tmp_path / n).read_bytes() for n in ("shard-00001.npz", "shard-00002.npz")
    }

    second = random_lengths(5, 3, 10, first_id=100)
    with pytest.warns(UserWarning, match="shard-00001.npz"):
        writer = DatasetWriter(
            tmp_path, env_id="Probe-v0", metadata={"seed": 2}, resume=True, **SPEC
        )
    assert (writer.num_episodes, writer.num_steps) == (6, sum(first.values()))
    with writer:
        for episode_id, steps in second.items():
            writer.add_episode(*make_episode(episode_id, steps))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [s["file"] for s in manifest["shards"]] == [
        "shard-00000.npz",
        "shard-00003.npz",
    ]
    assert manifest["metadata"] == {"seed": 1}
    assert manifest["resumes"] == [
        {"first_shard": "shard-00003.npz", "metadata": {"seed": 2}}
    ]
    assert all((tmp_path / n).read_bytes() == b for n, b in orphans.items())
    assert not (tmp_path / ".tmp-leftover.part").exists()
    lengths = {**first, **second}
    dataset = RolloutDataset(tmp_path)
    assert dataset.num_episodes == 11
    np.testing.assert_array_equal(dataset.episode_lengths(), list(lengths.values()))
    episode, _, _ = check_windows(training_windows(dataset, 4), lengths)
    assert set(episode) == set(lengths)  # never episode 50 from the orphans


def test_writer_never_overwrites_and_checks_what_it_resumes(tmp_path):
    write_dataset(tmp_path, {0: 5})
    with pytest.raises(FileExistsError, match="resume=True"):
        DatasetWriter(tmp_path, env_id="Probe-v0", **SPEC)
    for change, match in [
        ({"env_id": "Other-v0"}, "env_id is 'Probe-v0'"),
        ({"observation_shape": (3, 2)}, "observation_shape"),
        ({"action_dtype": "int32"}, "action_dtype"),
    ]:
        kwargs = {"env_id": "Probe-v0", **SPEC, **change}
        with pytest.raises(ValueError, match=match):
            DatasetWriter(tmp_path, resume=True, **kwargs)
    with DatasetWriter(tmp_path, env_id="Probe-v0", resume=True, **SPEC):
        with pytest.raises(RuntimeError, match="another DatasetWriter"):
            DatasetWriter(tmp_path, env_id="Probe-v0", resume=True, **SPEC)
    assert RolloutDataset(tmp_path).num_episodes == 1


def test_exception_inside_the_writer_keeps_completed_episodes(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with DatasetWriter(tmp_path, env_id="Probe-v0", shard_steps=1000, **SPEC) as w:
            w.add_episode(*make_episode(0, 4))
            w.add_episode(*make_episode(1, 6))
            raise KeyboardInterrupt
    assert RolloutDataset(tmp_path).num_steps == 10


def test_corrupted_shard_is_named(tmp_path):
    write_dataset(tmp_path, random_lengths(20, 5, 10), shard_steps=40)
    path = tmp_path / "shard-00001.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    dataset = RolloutDataset(tmp_path)  # same size: found by the hash on load
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz.*sha256"):
        list(dataset.iter_episodes())
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz"):
        RolloutDataset(tmp_path).verify()
    path.write_bytes(bytes(len(data)))  # unreadable, even without the hash
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz.*cannot be read"):
        list(RolloutDataset(tmp_path, verify=False).iter_episodes())
    assert issubclass(DatasetCorruptError, ValueError)


def test_truncated_missing_shards_and_manifests_are_named(tmp_path):
    write_dataset(tmp_path, random_lengths(20, 5, 10), shard_steps=40)
    path = tmp_path / "shard-00000.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetCorruptError, match="shard-00000.npz.*truncated"):
        RolloutDataset(tmp_path)
    path.unlink()
    with pytest.raises(DatasetCorruptError, match="shard-00000.npz is missing"):
        RolloutDataset(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format_version": 1, "env')
    with pytest.raises(DatasetCorruptError, match="manifest.json is not valid JSON"):
        RolloutDataset(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*manifest.json"):
        RolloutDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        RolloutDataset(tmp_path / "no-such-dir")


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda e: (e[0][:-1], *e[1:]),
            r"obs has shape \(4, 2, 3\); expected \[T \+ 1",
        ),
        (lambda e: (e[0].reshape(5, 3, 2), *e[1:]), r"obs has shape \(5, 3, 2\)"),
        (lambda e: (e[0], e[1][:, :1], *e[2:]), r"actions has shape \(4, 1\)"),
        (lambda e: (*e[:2], e[2][:, None], *e[3:]), r"rewards has shape \(4, 1\)"),
        (lambda e: (e[0][:1], e[1][:0], [], [], []), r"expected \[T\] with T >= 1"),
        (lambda e: (e[0].astype(complex), *e[1:]), r"obs has dtype complex128"),
        (lambda e: (*e[:3], [0, 1, 0, 1], e[4]), r"terminated\[1\] is True before"),
        (lambda e: (*e[:3], e[3], [0, 0, 2, 0]), r"truncated must be bool"),
        (
            lambda e: (*e[:2], [1, 2, np.nan, 4], *e[3:]),
            r"rewards is not finite at index 2",
        ),
        (lambda e: (*e[:2], ["a"] * 4, *e[3:]), r"rewards has dtype <U1"),
    ],
)
def test_add_episode_rejects_bad_input(tmp_path, edit, match):
    with DatasetWriter(tmp_path, env_id="Probe-v0", **SPEC) as writer:
        with pytest.raises(ValueError, match=match):
            writer.add_episode(*edit(make_episode(0, 4)))
        assert writer.num_episodes == 0  # nothing was buffered
    with pytest.raises(ValueError, match="closed"):
        writer.add_episode(*make_episode(0, 4))


def test_integer_data_must_fit_and_settings_are_checked(tmp_path):
    spec = {
        **SPEC,
        "observation_dtype": "uint8",
        "action_shape": (),
        "action_dtype": "int32",
    }
    with DatasetWriter(tmp_path / "u8", env_id="Pixels-v0", **spec) as writer:
        ok = np.full((3, *OBS_SHAPE), 255)  # int64 values that fit are accepted
        writer.add_episode(ok, [0, 1], [0.0, 1.0], [False, True], [False, False])
        with pytest.raises(ValueError, match="do not fit in uint8"):
            writer.add_episode(ok + 1, [0, 1], [0, 1], [0, 1], [0, 0])
        with pytest.raises(ValueError, match="obs has dtype float32; .* uint8"):
            writer.add_episode(ok.astype(np.float32), [0, 1], [0, 1], [0, 1], [0, 0])
    assert RolloutDataset(tmp_path / "u8").observation_dtype == np.uint8
    for change, match in [
        ({"env_id": ""}, "env_id=''"),
        ({"shard_steps": 0}, "shard_steps=0"),
        ({"observation_shape": (0, 3)}, r"observation_shape=\(0, 3\)"),
        ({"action_dtype": "object"}, "action_dtype='object'"),
        ({"metadata": {"policy": object()}}, "metadata="),
    ]:
        with pytest.raises(ValueError, match=match):
            DatasetWriter(tmp_path / "bad", **{"env_id": "Probe-v0", **SPEC, **change})
    write_dataset(tmp_path / "ok", {0: 3})
    dataset = RolloutDataset(tmp_path / "ok")
    for call, match in [
        (lambda: dataset.frames(0, 0), "batch_size=0"),
        (lambda: dataset.frames(4, -1), "seed=-1"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    DatasetWriter(tmp_path / "empty", env_id="Probe-v0", **SPEC).close()
    with pytest.raises(ValueError, match="holds no episodes"):
        RolloutDataset(tmp_path / "empty").frames(4, 0)
