"""V: the variational autoencoder, as pure functions over an explicit parameter pytree.

Images use the encoder of Ha & Schmidhuber (2018): 4x4 convolutions with stride
2 and no padding, ReLU, then dense layers to the mean and log-variance of z.
The decoder mirrors it with transposed convolutions, padding a pixel where the
encoder's floor division dropped one, so any configured image size round-trips.
On CPU the convolutions run as matrix products (``models/conv.py``).
Vectors use an MLP of ``hidden_sizes``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from janus_jax.config.conv_sizes import CONV_KERNEL, CONV_STRIDE
from janus_jax.config.models import VAEConfig
from janus_jax.models import conv


def _encoder_sizes(config: VAEConfig) -> list[tuple[int, int]]:
    """Returns the spatial size before each conv and after the last: [(H, W), ...]."""
    sizes = [(config.input_height, config.input_width)]
    for _ in config.hidden_channels:
        h, w = sizes[-1]
        sizes.append(
            ((h - CONV_KERNEL) // CONV_STRIDE + 1, (w - CONV_KERNEL) // CONV_STRIDE + 1)
        )
    return sizes


class _ImageVAE(nn.Module):
    config: VAEConfig

    def setup(self):
        c = self.config
        self.convs = [
            conv.StridedConv(ch, CONV_KERNEL, CONV_STRIDE) for ch in c.hidden_channels
        ]
        self.to_mean = nn.Dense(c.latent_dim)
        self.to_log_var = nn.Dense(c.latent_dim)
        self.sizes = _encoder_sizes(c)
        h, w = self.sizes[-1]
        self.from_latent = nn.Dense(h * w * c.hidden_channels[-1])
        out_channels = list(reversed(c.hidden_channels[:-1])) + [c.input_channels]
        self.deconvs = [
            conv.StridedConv(ch, CONV_KERNEL, CONV_STRIDE, transposed=True)
            for ch in out_channels
        ]

    def encode(self, image):
        x = image
        for layer in self.convs:
            x = nn.relu(layer(x))
        x = x.reshape(x.shape[:-3] + (-1,))
        return self.to_mean(x), self.to_log_var(x)

    def decode(self, latent):
        h, w = self.sizes[-1]
        x = self.from_latent(latent).reshape(latent.shape[:-1] + (h, w, -1))
        targets = list(reversed(self.sizes[:-1]))
        for i, (deconv, (th, tw)) in enumerate(zip(self.deconvs, targets, strict=True)):
            x = deconv(x)
            # The encoder's floor division may have dropped one row/column: put it back.
            pad = [(0, 0)] * (x.ndim - 3) + [
                (0, th - x.shape[-3]),
                (0, tw - x.shape[-2]),
                (0, 0),
            ]
            x = jnp.pad(x, pad, mode="edge")
            x = nn.relu(x) if i < len(self.deconvs) - 1 else x
        return x  # logits: the image is their sigmoid (``_decode``)

    def __call__(self, image, latent):
        return self.encode(image), self.decode(latent)


class _VectorVAE(nn.Module):
    config: VAEConfig

    def setup(self):
        c = self.config
        self.enc = [nn.Dense(n) for n in c.hidden_sizes]
        self.to_mean = nn.Dense(c.latent_dim)
        self.to_log_var = nn.Dense(c.latent_dim)
        self.dec = [nn.Dense(n) for n in reversed(c.hidden_sizes)]
        self.to_obs = nn.Dense(c.observation_size)

    def encode(self, obs):
        x = obs
        for layer in self.enc:
            x = nn.relu(layer(x))
        return self.to_mean(x), self.to_log_var(x)

    def decode(self, latent):
        x = latent
        for layer in self.dec:
            x = nn.relu(layer(x))
        return self.to_obs(x)

    def __call__(self, obs, latent):
        return self.encode(obs), self.decode(latent)


def _module(config: VAEConfig) -> nn.Module:
    return _ImageVAE(config) if config.is_image else _VectorVAE(config)


@struct.dataclass
class VAEParams:
    """The VAE's weights with its (static) config, so functions need only the params.

    obs_mean and obs_std standardise vector observations before the encoder (the
    squared-error loss weighs every dimension alike, so unscaled velocities would
    take the latent's few nats); they are 0 and 1 (no-ops) until a trainer sets
    them from its dataset with ``with_obs_stats``. Images keep scalar 0 and 1.
    """

    net: Any
    obs_mean: jax.Array
    obs_std: jax.Array
    config: VAEConfig = struct.field(pytree_node=False)


@partial(jax.jit, static_argnums=1)
def _init_net(key: jax.Array, config: VAEConfig):
    """The network's weights, initialised in one compiled program (eagerly, each
    initialiser and layer compiles on its own: 5.8 s against 1.5 s for the 64x64
    conv VAE on the 2-core CPU); the same values bit for bit."""
    obs = jnp.zeros((1,) + config.observation_shape, jnp.float32)
    latent = jnp.zeros((1, config.latent_dim), jnp.float32)
    return _module(config).init(key, obs, latent)


def init(key: jax.Array, config: VAEConfig) -> VAEParams:
    """Returns freshly initialised VAE parameters for ``config``."""
    stats_shape = () if config.is_image else (config.observation_size,)
    return VAEParams(
        net=_init_net(key, config),
        obs_mean=jnp.zeros(stats_shape, jnp.float32),
        obs_std=jnp.ones(stats_shape, jnp.float32),
        config=config,
    )


def with_obs_stats(params: VAEParams, mean, std) -> VAEParams:
    """Returns params that standardise vector observations by ``mean`` and ``std``
    [O] (a std below 1e-6 is raised to it, so constant dimensions stay finite)."""
    if params.config.is_image:
        raise ValueError("with_obs_stats is for vector observations; images are not")
    shape = params.obs_mean.shape
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    if mean.shape != shape or std.shape != shape:
        raise ValueError(
            f"mean and std have shapes {mean.shape} and {std.shape}; the VAE "
            f"expects {shape}"
        )
    return params.replace(obs_mean=mean, obs_std=jnp.maximum(std, 1e-6))


def preprocess(config: VAEConfig, obs: jax.Array) -> jax.Array:
    """Returns observations as float32; uint8 is scaled from [0, 255] to [0, 1]."""
    if obs.shape[-len(config.observation_shape) :] != config.observation_shape:
        raise ValueError(
            f"obs has shape {obs.shape}; the VAE expects [..., "
            f"{', '.join(map(str, config.observation_shape))}] "
            "(channels-last for images)"
        )
    if obs.dtype == jnp.uint8:
        return obs.astype(jnp.float32) / 255.0
    return obs.astype(jnp.float32)


def _obs_stats(params: VAEParams) -> tuple[jax.Array, jax.Array]:
    """Returns (obs_mean, obs_std) outside the gradient: they are the dataset's
    statistics, not weights (an optimiser would otherwise move them)."""
    return jax.lax.stop_gradient(params.obs_mean), jax.lax.stop_gradient(params.obs_std)


def _standardized(params: VAEParams, obs: jax.Array) -> jax.Array:
    """Returns the encoder's input: preprocessed, then standardised."""
    mean, std = _obs_stats(params)
    return (preprocess(params.config, obs) - mean) / std


def _encode(params: VAEParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _module(params.config).apply(params.net, x, method="encode")


def _decode_logits(params: VAEParams, latent: jax.Array) -> jax.Array:
    """Returns the decoder's last layer: an image's logits, a vector itself."""
    return _module(params.config).apply(params.net, latent, method="decode")


def _decode(params: VAEParams, latent: jax.Array) -> jax.Array:
    out = _decode_logits(params, latent)
    return jax.nn.sigmoid(out) if params.config.is_image else out


def encode(params: VAEParams, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns (mean, log_var) of q(z | obs), each [..., Z]; obs [..., *obs_shape]."""
    return _encode(params, _standardized(params, obs))


def decode(params: VAEParams, latent: jax.Array) -> jax.Array:
    """Returns the reconstruction [..., *obs_shape] of z [..., Z], in observation
    units (images in [0, 1])."""
    mean, std = _obs_stats(params)
    return _decode(params, latent) * std + mean


def sample_latent(key: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """Returns z = mean + exp(log_var / 2) * eps, the reparameterised sample."""
    return mean + jnp.exp(0.5 * log_var) * jax.random.normal(
        key, mean.shape, mean.dtype
    )


def get_latent(
    params: VAEParams, obs: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """Returns z [..., Z]: the posterior mean, or a sample when a key is given."""
    mean, log_var = encode(params, obs)
    return mean if key is None else sample_latent(key, mean, log_var)


def kl_divergence(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """Returns KL(N(mean, exp(log_var)) || N(0, I)) summed over the last axis."""
    return -0.5 * jnp.sum(1.0 + log_var - mean**2 - jnp.exp(log_var), axis=-1)


def loss(
    params: VAEParams, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (mean loss, metrics) over a batch of obs [B, *obs_shape].

    loss = reconstruction summed over each observation
           + beta * max(KL, kl_tolerance * Z),
    averaged over the batch, as in the original World Models code. With
    ``likelihood="gaussian"`` the reconstruction term is the squared error (on
    standardised vectors, see ``VAEParams``); with ``"bernoulli"`` (images) it is
    each pixel's binary cross-entropy in nats, -[x log p + (1 - x) log(1 - p)]
    with p the decoded pixel, so a rare set cell (MinAtar's ball) costs as much
    as the nats that would encode it instead of 1/400 of a frame's error.
    """
    config = params.config
    target = _standardized(params, obs)
    mean, log_var = _encode(params, target)
    logits = _decode_logits(params, sample_latent(key, mean, log_var))
    axes = tuple(range(1, target.ndim))
    if config.likelihood == "bernoulli":
        cross_entropy = optax.sigmoid_binary_cross_entropy(logits, target)
        reconstruction = jnp.sum(cross_entropy, axis=axes)
    else:
        recon = jax.nn.sigmoid(logits) if config.is_image else logits
        reconstruction = jnp.sum((recon - target) ** 2, axis=axes)
    kl = kl_divergence(mean, log_var)
    kl_floored = jnp.maximum(kl, config.kl_tolerance * config.latent_dim)
    total = jnp.mean(reconstruction + config.beta * kl_floored)
    metrics = {
        "vae/loss": total,
        "vae/reconstruction": jnp.mean(reconstruction),
        "vae/kl": jnp.mean(kl),
    }
    return total, metrics
