"""Configuration: the model configs (V, M, C, PPO), the training phases' configs,
``RunConfig`` with its JSON and ``--set`` forms, the presets, and ``sizes``, the
one place that derives a size from a config (dreams per update, rounding to the
devices) and checks it."""

from janus_jax.config.models import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
)
from janus_jax.config.run import RunConfig
from janus_jax.config.training import ControllerTrainingConfig, WorldModelTrainingConfig

__all__ = [
    "ActionSpec",
    "ControllerTrainingConfig",
    "MDNRNNConfig",
    "NetworkConfig",
    "PPOConfig",
    "RunConfig",
    "VAEConfig",
    "WorldModelTrainingConfig",
]
