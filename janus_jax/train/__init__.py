"""Trainers: jitted chunks of updates inside a plain Python loop that does the I/O
(checkpoints, logs, progress, pictures)."""

from janus_jax.config.run import RunConfig
from janus_jax.config.training import ControllerTrainingConfig, WorldModelTrainingConfig
from janus_jax.run.run_dir import load_agent, load_config
from janus_jax.train.ppo_trainer import WorldModelPPOTrainer
from janus_jax.train.world_model import WorldModelTrainer

__all__ = [
    "ControllerTrainingConfig",
    "RunConfig",
    "WorldModelPPOTrainer",
    "WorldModelTrainer",
    "WorldModelTrainingConfig",
    "load_agent",
    "load_config",
]
