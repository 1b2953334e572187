"""V's Bernoulli likelihood for binary frames: the loss against NumPy's binary
cross-entropy, the Gaussian loss unchanged, and the config's rule."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.config.models import VAEConfig
from janus_jax.models import vae

SMALL = dict(input_height=10, input_width=10, input_channels=2, latent_dim=3)


def test_bernoulli_loss_matches_numpy_cross_entropy():
    config = VAEConfig(**SMALL, hidden_channels=(8,), likelihood="bernoulli", beta=0.5)
    params = vae.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    obs = (rng.uniform(size=(5, 10, 10, 2)) < 0.1).astype(np.float32)
    key = jax.random.key(1)
    loss, metrics = vae.loss(params, jnp.asarray(obs), key)
    mean, log_var = map(np.asarray, vae.encode(params, obs))
    eps = np.asarray(jax.random.normal(key, mean.shape))
    p = np.asarray(vae.decode(params, mean + np.exp(0.5 * log_var) * eps), np.float64)
    nll = -(obs * np.log(p) + (1 - obs) * np.log1p(-p)).sum(axis=(1, 2, 3))
    kl = 0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var).sum(axis=1)
    floored = np.maximum(kl, 0.5 * 3)
    np.testing.assert_allclose(float(loss), np.mean(nll + 0.5 * floored), rtol=1e-4)
    np.testing.assert_allclose(
        float(metrics["vae/reconstruction"]), nll.mean(), rtol=1e-4
    )


def test_gaussian_stays_the_squared_error_of_the_decoded_image():
    config = VAEConfig(**SMALL, hidden_channels=(8,), kl_tolerance=0.0)
    params = vae.init(jax.random.key(0), config)
    obs = np.random.default_rng(1).uniform(size=(4, 10, 10, 2)).astype(np.float32)
    key = jax.random.key(2)
    _, metrics = vae.loss(params, jnp.asarray(obs), key)
    mean, log_var = map(np.asarray, vae.encode(params, obs))
    eps = np.asarray(jax.random.normal(key, mean.shape))
    recon = np.asarray(vae.decode(params, mean + np.exp(0.5 * log_var) * eps))
    assert recon.min() >= 0 and recon.max() <= 1
    expected = ((recon - obs) ** 2).sum(axis=(1, 2, 3)).mean()
    np.testing.assert_allclose(
        float(metrics["vae/reconstruction"]), expected, rtol=1e-5
    )


def test_likelihood_is_validated():
    with pytest.raises(ValueError, match=r"VAEConfig.likelihood='poisson'.*one of"):
        VAEConfig(likelihood="poisson")
    with pytest.raises(ValueError, match=r"likelihood='bernoulli'.*vector"):
        VAEConfig(observation_size=4, likelihood="bernoulli")
