"""V and M train from a dataset three times the memory cap: the data held never
passes the cap, V's statistics are the whole dataset's, and both models learn
(their loss on every frame and window falls)."""

import jax
import numpy as np
import pytest

from janus_jax.config.models import MDNRNNConfig, VAEConfig
from janus_jax.config.training import WorldModelTrainingConfig
from janus_jax.data import RolloutDataset, sequences
from janus_jax.data.collect import collect
from janus_jax.models import mdn_rnn, vae
from janus_jax.train import WorldModelTrainer
from janus_jax.train.loop import RunIO


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("streamed") / "data"
    collect("CartPole-v1", path, 100, seed=0, shard_steps=40, progress=False)
    return RolloutDataset(path)


def test_v_and_m_learn_from_a_dataset_three_times_the_cap(dataset):
    frames = np.concatenate([s.load() for s in sequences.frame_sources(dataset)])
    cap = frames.nbytes // 3
    assert dataset.num_shards >= 30
    config = WorldModelTrainingConfig(
        vae_epochs=3,
        mdn_epochs=3,
        vae_batch_size=32,
        mdn_batch_size=8,
        sequence_length=16,
        chunk_steps=25,
        max_resident_bytes=cap,
        vae=VAEConfig(observation_size=4, latent_dim=4, hidden_sizes=(32,)),
        mdn_rnn=MDNRNNConfig(latent_dim=4, action_dim=2, hidden_dim=32),
    )
    trainer = WorldModelTrainer(
        "CartPole-v1", config, dataset=dataset.path, io=RunIO(progress=False)
    )
    trainer.train_world_model()
    assert 0 < trainer.data_peak_bytes["vae"] <= cap
    assert 0 < trainer.data_peak_bytes["mdn"] <= cap

    # V's standardisation is the whole dataset's, computed shard by shard
    params = trainer.vae_params
    np.testing.assert_allclose(params.obs_mean, frames.mean(0), rtol=1e-5)
    np.testing.assert_allclose(params.obs_std, frames.std(0), rtol=1e-5)

    key = jax.random.key(7)
    untrained = vae.with_obs_stats(
        vae.init(jax.random.key(0), config.vae), params.obs_mean, params.obs_std
    )
    v_before = float(vae.loss(untrained, frames, key)[0])
    v_after = float(vae.loss(params, frames, key)[0])
    assert v_after < 0.8 * v_before, (v_before, v_after)

    windows = [
        s.load()
        for s in sequences.window_sources(
            dataset, trainer.latents_dir, 16, trainer.spec.action, 4
        )
    ]
    batch = jax.tree.map(lambda *xs: np.concatenate(xs), *windows)
    m_before = float(
        mdn_rnn.loss(mdn_rnn.init(jax.random.key(1), config.mdn_rnn), batch)[0]
    )
    m_after = float(mdn_rnn.loss(trainer.mdn_params, batch)[0])
    assert m_after < m_before - 0.5, (m_before, m_after)
