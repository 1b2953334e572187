"""The PyTorch-style parameter holders of V and M (``state_dict`` and
``load_state_dict`` as in the PyTorch World Model README); the pure functions
they call live in ``janus_jax.models``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from janus_jax.config.models import MDNRNNConfig, VAEConfig
from janus_jax.models import mdn_rnn, vae


class Component:
    """A parameter holder with the PyTorch-style ``state_dict``/``load_state_dict``."""

    def __init__(self, params):
        self.params = params

    def state_dict(self):
        """Returns the parameter pytree (arrays are immutable: sharing is safe)."""
        return self.params

    def load_state_dict(self, params) -> None:
        """Replaces the parameters after checking that config and shapes agree."""
        mine, theirs = self.params, params
        if type(mine) is not type(theirs) or mine.config != theirs.config:
            raise ValueError(
                f"cannot load {type(theirs).__name__} with config "
                f"{getattr(theirs, 'config', None)} into {type(mine).__name__} "
                f"with config {mine.config}"
            )
        shapes = lambda p: jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), p)  # noqa: E731
        if shapes(mine) != shapes(theirs):
            raise ValueError(f"parameter shapes differ for {type(mine).__name__}")
        self.params = theirs


class VariationalAutoencoder(Component):
    """V with its parameters.

    ``VariationalAutoencoder(VAEConfig(...)).get_latent(obs)``
    """

    def __init__(
        self, config: VAEConfig, seed: int = 0, params: vae.VAEParams | None = None
    ):
        super().__init__(
            params if params is not None else vae.init(jax.random.key(seed), config)
        )
        self.config = config

    def encode(self, obs):
        return vae.encode(self.params, jnp.asarray(obs))

    def decode(self, latent):
        return vae.decode(self.params, jnp.asarray(latent))

    def get_latent(self, obs, key: jax.Array | None = None):
        return vae.get_latent(self.params, jnp.asarray(obs), key)


class MDNRNN(Component):
    """M with its parameters."""

    def __init__(
        self,
        config: MDNRNNConfig,
        seed: int = 0,
        params: mdn_rnn.MDNRNNParams | None = None,
    ):
        p = params if params is not None else mdn_rnn.init(jax.random.key(seed), config)
        super().__init__(p)
        self.config = config

    def initial_carry(self, batch_shape: tuple[int, ...] = ()):
        return mdn_rnn.initial_carry(self.config, batch_shape)

    def step(self, carry, latent, action):
        return mdn_rnn.step(self.params, carry, latent, action)

    def unroll(self, carry, latents, actions):
        return mdn_rnn.unroll(self.params, carry, latents, actions)
