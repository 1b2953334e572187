"""V's observation standardisation: vectors are scaled before the encoder and
scaled back after the decoder, so V works in observation units."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.config.models import VAEConfig
from janus_jax.models import vae
from janus_jax.optim import init_train_state, make_optimizer
from janus_jax.train.fit import fit_chunk


@pytest.fixture(scope="module")
def params():
    return vae.init(jax.random.key(0), VAEConfig(observation_size=3, latent_dim=2))


def test_fresh_params_are_identity(params):
    np.testing.assert_array_equal(params.obs_mean, np.zeros(3))
    np.testing.assert_array_equal(params.obs_std, np.ones(3))


def test_encode_and_decode_use_the_stats(params):
    mean, std = np.array([1.0, -2.0, 10.0]), np.array([0.5, 2.0, 100.0])
    scaled = vae.with_obs_stats(params, mean, std)
    obs = jnp.array([[1.5, 0.0, 110.0], [0.0, -2.0, 10.0]])
    # Encoding raw obs with the stats equals encoding the hand-standardised obs
    # with identity stats.
    want = vae.encode(params, (obs - mean) / std)
    got = vae.encode(scaled, obs)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    z = jnp.array([[0.3, -0.7]])
    np.testing.assert_allclose(
        vae.decode(scaled, z), vae.decode(params, z) * std + mean, rtol=1e-5
    )


def test_loss_is_measured_in_standardised_units(params):
    mean, std = np.array([1.0, -2.0, 10.0]), np.array([0.5, 2.0, 100.0])
    scaled = vae.with_obs_stats(params, mean, std)
    obs = jnp.array([[1.5, 0.0, 110.0], [0.0, -2.0, 10.0]])
    key = jax.random.key(1)
    got, _ = vae.loss(scaled, obs, key)
    want, _ = vae.loss(params, (obs - mean) / std, key)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bad_stats_are_refused(params):
    with pytest.raises(ValueError, match="shapes"):
        vae.with_obs_stats(params, np.zeros(4), np.ones(4))
    image = vae.init(jax.random.key(0), VAEConfig(input_height=64, input_width=64))
    with pytest.raises(ValueError, match="vector"):
        vae.with_obs_stats(image, np.zeros(3), np.ones(3))


def test_tiny_std_is_floored(params):
    scaled = vae.with_obs_stats(params, np.zeros(3), np.zeros(3))
    assert np.all(np.isfinite(vae.encode(scaled, jnp.ones((1, 3)))[0]))


def test_training_leaves_the_observation_statistics_alone():
    # Adam moves any leaf with a gradient by about the step size per step, so
    # statistics inside the gradient would drift ~lr x steps from the data's.
    config = VAEConfig(observation_size=3, latent_dim=2, hidden_sizes=(8,))
    params = vae.with_obs_stats(
        vae.init(jax.random.key(0), config), [1.0, -2.0, 3.0], [0.5, 2.0, 4.0]
    )
    optimizer = make_optimizer(1e-2, None)
    state = init_train_state(params, optimizer, jax.random.key(1))
    obs = jax.random.normal(jax.random.key(2), (50, 64, 3)) * 3.0 + 1.0
    state, _ = fit_chunk(state, obs, loss_fn=vae.loss, optimizer=optimizer)
    np.testing.assert_array_equal(state.params.obs_mean, [1.0, -2.0, 3.0])
    np.testing.assert_array_equal(state.params.obs_std, [0.5, 2.0, 4.0])
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), state.params.net, params.net)
    assert max(jax.tree.leaves(moved)) > 1e-3  # the weights themselves did learn
