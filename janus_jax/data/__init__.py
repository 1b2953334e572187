"""Rollout datasets on disk (shards + a manifest) and the loaders that train on them.

``DatasetWriter`` appends whole episodes crash-safely; ``RolloutDataset`` reads
them back one shard at a time. Training reads through ``sequences`` (V's frames,
M's ``Windows`` of V's latents) and ``blocks.BlockStream`` (batches within a
memory cap, the same ones on resume). Collection (running envs) lives in
``janus_jax.data.collect``, imported on its own so that reading a dataset needs
no env packages.
"""

from janus_jax.data.dataset import RolloutDataset
from janus_jax.data.manifest import DatasetCorruptError
from janus_jax.data.writer import DatasetWriter

__all__ = [
    "DatasetCorruptError",
    "DatasetWriter",
    "RolloutDataset",
]
