"""Rollout datasets on disk (shards + a manifest) and streaming loaders.

``DatasetWriter`` appends whole episodes crash-safely; ``RolloutDataset`` streams
random frames (for V) and fixed-length windows (for M) within a memory cap;
``MixedDataset`` mixes several datasets by weight. Collection (running envs)
lives in ``janus_jax.data.collect``, imported on its own so that reading a
dataset needs no env packages.
"""

from janus_jax.data.dataset import RolloutDataset
from janus_jax.data.manifest import DatasetCorruptError
from janus_jax.data.mixed import MixedDataset
from janus_jax.data.shards import Windows
from janus_jax.data.writer import DatasetWriter

__all__ = [
    "DatasetCorruptError",
    "DatasetWriter",
    "MixedDataset",
    "RolloutDataset",
    "Windows",
]
