"""Rollout datasets: round trips, crash safety, integrity, streaming, mixing.

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
    MixedDataset,
    RolloutDataset,
    Windows,
)

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


def check_windows(windows: Windows, lengths: dict[int, int]):
    """Asserts every row is the true window of its episode; returns (ids, starts,
    valid steps) per row."""
    batch, length = windows.mask.shape
    episode, start = np.divmod(windows.obs[:, 0, 0, 0].astype(np.int64) - 1, BASE)
    steps = np.array([lengths[e] for e in episode])
    valid = np.minimum(length, steps - start)
    assert (valid >= 1).all()
    k = np.arange(length + 1)
    code = 1 + episode[:, None] * BASE + start[:, None] + k  # [B, L + 1]
    obs_real, step_real = k <= valid[:, None], k[:-1] < valid[:, None]
    obs = np.where(obs_real, code, 0)[:, :, None, None]
    np.testing.assert_array_equal(windows.obs, np.broadcast_to(obs, windows.obs.shape))
    act = np.where(step_real, code[:, :-1], 0)
    np.testing.assert_array_equal(windows.actions, np.stack([act, -act], -1))
    np.testing.assert_array_equal(windows.rewards, act)
    np.testing.assert_array_equal(windows.mask, step_real.astype(np.float32))
    last = (start[:, None] + k[:-1] == steps[:, None] - 1) & step_real
    even = (episode % 2 == 0)[:, None]
    np.testing.assert_array_equal(windows.terminated, last & even)
    np.testing.assert_array_equal(windows.truncated, last & ~even)
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
    for windows in take(dataset.windows(32, 6, seed=0), 20):
        assert windows.obs.shape == (32, 7, *OBS_SHAPE)
        assert windows.actions.shape == (32, 6, 2)
        assert windows.terminated.dtype == bool and windows.mask.dtype == np.float32
        check_windows(windows, lengths)
    seen = [check_frames(f, lengths) for f in take(dataset.frames(64, seed=1), 20)]
    episode, t = map(np.concatenate, zip(*seen, strict=True))
    final = t == np.array([lengths[e] for e in episode])
    assert final.any() and (t == 0).any()  # o_T and o_0 are both drawn


def test_windows_never_mix_episodes_and_mask_the_tail(tmp_path):
    lengths = write_dataset(tmp_path, random_lengths(60, 1, 25, seed=1))
    dataset = RolloutDataset(tmp_path)
    rows = [check_windows(w, lengths) for w in take(dataset.windows(64, 8, 3), 60)]
    episode, start, valid = map(np.concatenate, zip(*rows, strict=True))
    assert (valid < 8).any() and (valid == 8).any()  # padded and full windows
    assert (start == 0).any()
    assert set(episode) == set(lengths)  # every episode, length 1 included


def test_same_seed_same_batches(tmp_path):
    write_dataset(tmp_path, random_lengths(40, 1, 20), shard_steps=30)

    def batches(seed):
        dataset = RolloutDataset(tmp_path, max_resident_bytes=4000)
        windows = take(dataset.windows(16, 5, seed), 30)
        return windows, take(dataset.frames(16, seed), 30)

    (w1, f1), (w2, f2), (w3, f3) = batches(5), batches(5), batches(6)
    for a, b in zip(w1, w2, strict=True):
        for name in Windows._fields:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(np.stack(f1), np.stack(f2))
    assert not np.array_equal(w1[0].obs, w3[0].obs)
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
    episode, _, _ = check_windows(next(dataset.windows(500, 4, 0)), lengths)
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
        next(dataset.frames(8, 0))
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz"):
        RolloutDataset(tmp_path).verify()
    path.write_bytes(bytes(len(data)))  # unreadable, even without the hash
    with pytest.raises(DatasetCorruptError, match="shard-00001.npz.*cannot be read"):
        next(RolloutDataset(tmp_path, verify=False).windows(8, 4, 0))
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


def test_memory_cap_streams_every_shard(tmp_path):
    # 12 shards of 4 episodes x 10 steps; the cap holds 3 of them.
    lengths = write_dataset(tmp_path, {i: 10 for i in range(48)}, shard_steps=40)
    shard_bytes = json.loads((tmp_path / "manifest.json").read_text())["shards"]
    cap = int(3.5 * shard_bytes[0]["array_bytes"])
    dataset = RolloutDataset(tmp_path, max_resident_bytes=cap)
    assert dataset.nbytes > 3 * cap
    for name, batches in [
        ("frames", dataset.frames(16, seed=0)),
        ("windows", dataset.windows(16, 4, seed=0)),
    ]:
        counts = np.zeros(12, int)
        for batch in take(batches, 300):
            assert 0 < dataset.resident_bytes <= cap
            if name == "frames":
                episode, _ = check_frames(batch, lengths)
            else:
                episode, _, _ = check_windows(batch, lengths)
            shard = episode // 4
            assert len(set(shard)) <= 3  # a batch only sees resident shards
            counts += np.bincount(shard, minlength=12)
        assert (counts > 0.4 * counts.mean()).all(), (name, counts)
        batches.close()
        assert dataset.resident_bytes == 0
    with pytest.raises(ValueError, match="max_resident_bytes=100 .*shard-0000"):
        RolloutDataset(tmp_path, max_resident_bytes=100)


def test_mixed_dataset_follows_weights_and_reports_sources(tmp_path):
    lengths_a = write_dataset(tmp_path / "a", random_lengths(20, 2, 15))
    lengths_b = write_dataset(tmp_path / "b", random_lengths(20, 2, 15, first_id=500))
    lengths = {**lengths_a, **lengths_b}
    a, b = RolloutDataset(tmp_path / "a"), RolloutDataset(tmp_path / "b")
    mixed = MixedDataset([a, b], weights=[0.8, 0.2])
    sources = []
    for windows in take(mixed.windows(200, 5, seed=0), 20):
        episode, _, _ = check_windows(windows, lengths)
        np.testing.assert_array_equal(windows.source, (episode >= 500).astype(int))
        sources.append(windows.source)
    assert abs(np.mean(np.concatenate(sources) == 0) - 0.8) < 0.025
    frames, source = next(mixed.frames(4000, seed=1, with_source=True))
    episode, _ = check_frames(frames, lengths)
    np.testing.assert_array_equal(source, (episode >= 500).astype(int))
    assert abs(np.mean(source == 0) - 0.8) < 0.025
    assert (
        abs(np.mean(next(MixedDataset([a, b]).windows(4000, 2, 0)).source) - 0.5) < 0.03
    )
    only_a = MixedDataset([a, b], weights=[1, 0])
    batches = only_a.frames(64, seed=0)
    assert (check_frames(next(batches), lengths)[0] < 500).all()
    assert b.resident_bytes == 0  # a zero-weight dataset is never loaded


def test_mixed_dataset_rejects_mismatches_and_bad_weights(tmp_path):
    write_dataset(tmp_path / "a", {0: 5})
    a = RolloutDataset(tmp_path / "a")
    for change, field in [
        ({"observation_shape": (3, 2)}, "observation_shape"),
        ({"observation_dtype": "uint8"}, "observation_dtype"),
        ({"action_shape": (3,)}, "action_shape"),
    ]:
        spec = {**SPEC, **change}
        obs = np.zeros((3, *spec["observation_shape"]), spec["observation_dtype"])
        actions = np.zeros((2, *spec["action_shape"]), np.float32)
        path = tmp_path / field
        with DatasetWriter(path, env_id="Other-v0", **spec) as writer:
            writer.add_episode(obs, actions, [1, 2], [0, 1], [0, 0])
        if field == "action_shape":
            # Frames from envs with other action spaces may train one VAE together;
            # only windows (which carry actions) need the actions to agree.
            mixed = MixedDataset([a, RolloutDataset(path)])
            assert next(mixed.frames(4, seed=0)).shape == (
                4,
                *SPEC["observation_shape"],
            )
            with pytest.raises(ValueError, match=f"datasets\\[1\\].*{field}"):
                mixed.windows(2, 2, seed=0)
            continue
        with pytest.raises(ValueError, match=f"datasets\\[1\\].*{field}"):
            MixedDataset([a, RolloutDataset(path)])
    for weights in ([0.5], [-1.0, 2.0], [0, 0], [float("nan"), 1.0]):
        with pytest.raises(ValueError, match="weights="):
            MixedDataset([a, a], weights=weights)
    with pytest.raises(ValueError, match="datasets is empty"):
        MixedDataset([])


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
        (lambda: dataset.windows(4, 0, 0), "length=0"),
        (lambda: dataset.windows(4, 2, -1), "seed=-1"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    DatasetWriter(tmp_path / "empty", env_id="Probe-v0", **SPEC).close()
    with pytest.raises(ValueError, match="holds no episodes"):
        RolloutDataset(tmp_path / "empty").frames(4, 0)
