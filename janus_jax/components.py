"""The PyTorch-style parameter holders of V and M (``state_dict`` and
``load_state_dict`` as in the PyTorch World Model README); the pure functions
they call live in ``janus_jax.models``; ``init_components`` makes a fresh agent's
V, M and C."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from janus_jax.config.architecture import default_configs
from janus_jax.config.models import ActionSpec, MDNRNNConfig, NetworkConfig, VAEConfig
from janus_jax.config.tasks import TaskSlot, encoded_action
from janus_jax.models import controller, mdn_rnn, vae


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


def init_components(
    observation_shape: tuple[int, ...],
    action_spec: ActionSpec,
    controller_config: NetworkConfig,
    vae_config: VAEConfig | None,
    mdn_rnn_config: MDNRNNConfig | None,
    *,
    features: str,
    seed: int,
    task: TaskSlot | None = None,
) -> tuple[VariationalAutoencoder | None, MDNRNN | None, Component, jax.Array]:
    """Returns (V, M, C, the key left for the agent's own stream), freshly
    initialised from ``seed`` for ``observation_shape`` and ``action_spec``
    (V's and M's configs default to the env's: ``default_configs``). With
    ``features="observation"`` there is no V and no M (None, None) and C acts
    on the flattened observations. ``task``: the env's slot in a shared M's
    action vector (M then takes vectors of ``task.size``)."""
    m_action = action_spec if task is None else encoded_action(task.size)
    vae_config, mdn_rnn_config = default_configs(
        observation_shape, m_action, vae_config, mdn_rnn_config
    )
    vae_key, mdn_key, controller_key, key = jax.random.split(jax.random.key(seed), 4)
    if features == "observation":
        v = m = None
        feature_dim = math.prod(observation_shape)
    else:
        v = VariationalAutoencoder(vae_config, params=vae.init(vae_key, vae_config))
        m = MDNRNN(mdn_rnn_config, params=mdn_rnn.init(mdn_key, mdn_rnn_config))
        feature_dim = vae_config.latent_dim + mdn_rnn_config.hidden_dim
    c = Component(
        controller.init(
            controller_key, controller_config, action_spec, feature_dim, task
        )
    )
    return v, m, c, key
