"""janus-jax: World Models (Ha & Schmidhuber, 2018) with a PPO controller, in JAX."""

from janus_jax import imagination, optim, ppo
from janus_jax.acting import AgentState
from janus_jax.agent import MDNRNN, VariationalAutoencoder, WorldModelAgent, act
from janus_jax.config.models import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
)
from janus_jax.config.run import RunConfig
from janus_jax.config.training import ControllerTrainingConfig, WorldModelTrainingConfig
from janus_jax.imagination import WorldModelParams, imagine
from janus_jax.models import controller, mdn_rnn, vae
from janus_jax.models.reward import RewardModel
from janus_jax.records import Transition

__version__ = "0.1.0"

# The trainers pull in orbax, tensorboardX and matplotlib: import them on first use.
_TRAIN = (
    "WorldModelTrainer",
    "WorldModelPPOTrainer",
    "load_agent",
    "load_config",
)


def __getattr__(name: str):
    if name in _TRAIN:
        from janus_jax import train

        return getattr(train, name)
    raise AttributeError(f"module 'janus_jax' has no attribute {name!r}")


__all__ = [
    *_TRAIN,
    "MDNRNN",
    "ActionSpec",
    "AgentState",
    "ControllerTrainingConfig",
    "MDNRNNConfig",
    "NetworkConfig",
    "PPOConfig",
    "RewardModel",
    "RunConfig",
    "Transition",
    "VAEConfig",
    "VariationalAutoencoder",
    "WorldModelAgent",
    "WorldModelParams",
    "WorldModelTrainingConfig",
    "act",
    "controller",
    "imagination",
    "imagine",
    "mdn_rnn",
    "optim",
    "ppo",
    "vae",
]
