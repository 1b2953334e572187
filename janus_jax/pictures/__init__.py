"""Pictures: reconstruction grids, dream GIFs and learning curves (``drawing``,
NumPy and matplotlib only), and the episodes and dreams they show
(``episodes``: the controller in the env, M's open-loop dream)."""

from janus_jax.pictures.drawing import dream_gif, learning_curves, reconstruction_grid
from janus_jax.pictures.episodes import open_loop_dream, reconstruct, record_episode

__all__ = [
    "dream_gif",
    "learning_curves",
    "open_loop_dream",
    "reconstruct",
    "reconstruction_grid",
    "record_episode",
]
