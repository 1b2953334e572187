"""sequences.py on a hand-made dataset of two episodes whose observations encode
(episode, t), so every window, row and flag is written out by hand below."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.config.models import ActionSpec, VAEConfig
from janus_jax.data import DatasetWriter, RolloutDataset, sequences
from janus_jax.models import vae

# episode 0: 5 steps, terminated at the end; episode 1: 3 steps, truncated.
ACTIONS = (np.array([0, 1, 2, 0, 1]), np.array([2, 2, 1]))


def _episode(episode: int, steps: int, terminated: bool):
    t = np.arange(steps + 1)
    obs = np.stack([np.full(steps + 1, episode), t], axis=1).astype(np.float32)
    rewards = (100.0 * episode + np.arange(steps)).astype(np.float32)
    end = np.zeros(steps, bool)
    end[-1] = True
    return (
        obs,
        ACTIONS[episode].astype(np.int32),
        rewards,
        end if terminated else np.zeros(steps, bool),
        np.zeros(steps, bool) if terminated else end,
    )


def _writer(path):
    return DatasetWriter(
        path,
        env_id="Probe-v0",
        observation_shape=(2,),
        observation_dtype="float32",
        action_shape=(),
        action_dtype="int32",
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("episodes")
    with _writer(path) as writer:
        writer.add_episode(*_episode(0, 5, terminated=True))
        writer.add_episode(*_episode(1, 3, terminated=False))
    dataset = RolloutDataset(path)
    assert dataset.num_shards == 1
    return dataset


def _frames(dataset):
    return np.concatenate([s.load() for s in sequences.frame_sources(dataset)])


def _windows(dataset, length):
    """The shard's windows with each observation's row number as its frame, so
    ``obs`` says which rows a window looks up."""
    columns = ("episode_lengths", "actions", "rewards", "terminated")
    return sequences.shard_windows(
        np.arange(10), *(dataset.column(0, name) for name in columns), length
    )


def test_frames_are_every_observation_episode_after_episode(dataset):
    frames = _frames(dataset)
    want = [[0, t] for t in range(6)] + [[1, t] for t in range(4)]
    np.testing.assert_array_equal(frames, np.array(want, np.float32))
    assert frames.dtype == np.float32
    (source,) = sequences.frame_sources(dataset)
    assert (source.items, source.nbytes) == (10, frames.nbytes)


def test_windows_of_two_steps(dataset):
    w = _windows(dataset, 2)
    assert sequences.num_windows([5, 3], 2) == len(w.mask) == 5
    # episode 0 (frames 0..5): windows at t=0, 2, 4; the last one padded.
    # episode 1 (frames 6..9): windows at t=0, 2; the last one padded.
    np.testing.assert_array_equal(
        w.obs, [[0, 1, 2], [2, 3, 4], [4, 5, 5], [6, 7, 8], [8, 9, 9]]
    )
    np.testing.assert_array_equal(
        w.mask, np.array([[1, 1], [1, 1], [1, 0], [1, 1], [1, 0]], np.float32)
    )
    np.testing.assert_array_equal(
        w.rewards,
        np.array([[0, 1], [2, 3], [4, 0], [100, 101], [102, 0]], np.float32),
    )
    # only episode 0's last step terminated; episode 1's truncation is no done
    np.testing.assert_array_equal(
        w.dones, np.array([[0, 0], [0, 0], [1, 0], [0, 0], [0, 0]], np.float32)
    )
    want_actions = np.array([[0, 1], [2, 0], [1, -1], [2, 2], [1, -1]])
    valid = w.mask == 1
    np.testing.assert_array_equal(w.actions[valid], want_actions[valid])
    for field in ("rewards", "dones", "mask"):
        assert getattr(w, field).dtype == np.float32


def test_windows_the_length_of_an_episode(dataset):
    w = _windows(dataset, 5)
    np.testing.assert_array_equal(w.obs, [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 9, 9]])
    np.testing.assert_array_equal(w.mask, [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(w.dones, [[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(w.rewards, [[0, 1, 2, 3, 4], [100, 101, 102, 0, 0]])


@pytest.mark.parametrize("length", [1, 2, 3, 4, 7])
def test_no_window_mixes_episodes_and_rows_follow_time(dataset, length):
    windows = _windows(dataset, length)
    obs = _frames(dataset)[windows.obs]  # [W, L+1, 2]
    episode, t = obs[..., 0], obs[..., 1]
    assert np.all(episode == episode[:, :1])
    # along a window t rises by one per valid step (from obs_t to obs_t+1)
    steps = np.diff(t, axis=1)
    np.testing.assert_array_equal(steps[windows.mask == 1], 1)
    # every step of every episode is in exactly one window
    assert windows.mask.sum() == 5 + 3
    assert len(windows.mask) == sequences.num_windows([5, 3], length)


def test_an_empty_dataset_is_refused(tmp_path):
    with _writer(tmp_path):
        pass
    with pytest.raises(ValueError, match="holds no episodes"):
        sequences.frame_sources(RolloutDataset(tmp_path))


@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_frame_stats_are_numpy_mean_and_std(dtype):
    rng = np.random.default_rng(0)
    frames = (rng.uniform(0, 200, size=(50, 3)) + [0, 10, 40]).astype(dtype)
    # given shard by shard, uneven parts and an empty one included
    mean, std = sequences.frame_stats(np.split(frames, [7, 7, 30]))
    np.testing.assert_allclose(mean, frames.astype(np.float64).mean(0), rtol=1e-6)
    np.testing.assert_allclose(std, frames.astype(np.float64).std(0), rtol=1e-6)
    assert mean.dtype == std.dtype == np.float32
    assert mean.shape == std.shape == (3,)


@pytest.mark.parametrize("batch_size", [4, 10, 64])
def test_encode_frames_in_batches_equals_one_call(batch_size):
    config = VAEConfig(observation_size=2, latent_dim=3, hidden_sizes=(8,))
    params = vae.init(jax.random.key(0), config)
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(10, 2)).astype(np.float32)
    latents = sequences.encode_frames(params, frames, batch_size=batch_size)
    want = np.asarray(vae.get_latent(params, jnp.asarray(frames)))
    assert latents.shape == (10, 3)
    np.testing.assert_allclose(latents, want, rtol=1e-5, atol=1e-6)
    # each frame has its own latent (no padding row leaked into the output)
    assert len(np.unique(latents.round(5), axis=0)) == 10


def test_windows_look_up_latents_and_one_hot_actions(dataset):
    windows = _windows(dataset, 2)
    latents = np.stack([np.arange(10), 10 * np.arange(10)], 1).astype(np.float32)
    columns = ("episode_lengths", "actions", "rewards", "terminated")
    seq = sequences.encode_actions(
        sequences.shard_windows(
            latents, *(dataset.column(0, name) for name in columns), 2
        ),
        ActionSpec(continuous=False, dim=3),
    )
    rows = [[0, 1, 2], [2, 3, 4], [4, 5, 5], [6, 7, 8], [8, 9, 9]]
    np.testing.assert_array_equal(seq.obs[..., 0], rows)
    np.testing.assert_array_equal(seq.obs[..., 1], 10 * np.array(rows))
    one_hot = {0: [1, 0, 0], 1: [0, 1, 0], 2: [0, 0, 1]}
    want_actions = [[0, 1], [2, 0], [1, None], [2, 2], [1, None]]
    assert seq.actions.shape == (5, 2, 3)
    assert seq.actions.dtype == np.float32
    for w, window in enumerate(want_actions):
        for t, action in enumerate(window):
            if action is not None:
                np.testing.assert_array_equal(seq.actions[w, t], one_hot[action])
    np.testing.assert_array_equal(seq.rewards, windows.rewards)
    np.testing.assert_array_equal(seq.dones, windows.dones)
    np.testing.assert_array_equal(seq.mask, windows.mask)


def test_windows_keep_continuous_actions_as_floats():
    windows = sequences.shard_windows(
        np.arange(6, dtype=np.float32).reshape(3, 2),  # one episode of 2 steps
        np.array([2]),
        np.array([[0.5, -1.0], [0.25, 1.0]], np.float64),
        np.zeros(2, np.float32),
        np.zeros(2, bool),
        2,
    )
    seq = sequences.encode_actions(windows, ActionSpec(continuous=True, dim=2))
    np.testing.assert_array_equal(seq.actions, [[[0.5, -1.0], [0.25, 1.0]]])
    assert seq.actions.dtype == np.float32
    np.testing.assert_array_equal(seq.obs, [[[0, 1], [2, 3], [4, 5]]])


def test_window_sources_read_back_the_latents_written_beside_the_run(dataset, tmp_path):
    config = VAEConfig(observation_size=2, latent_dim=3, hidden_sizes=(8,))
    params = vae.init(jax.random.key(0), config)
    sequences.encode_dataset(params, dataset, tmp_path)
    action = ActionSpec(continuous=False, dim=3)
    (source,) = sequences.window_sources(dataset, tmp_path, 2, action, 3)
    seq = source.load()
    frames = _frames(dataset)
    want = np.asarray(vae.get_latent(params, jnp.asarray(frames)))
    rows = [[0, 1, 2], [2, 3, 4], [4, 5, 5], [6, 7, 8], [8, 9, 9]]
    np.testing.assert_allclose(seq.obs, want[np.array(rows)], rtol=1e-5)
    np.testing.assert_array_equal(seq.mask, _windows(dataset, 2).mask)
    assert source.items == 5
    # the byte count planned before loading is what the loaded windows take
    assert source.nbytes == sum(x.nbytes for x in jax.tree.leaves(seq))
