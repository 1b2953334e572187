"""Shared fixtures: small configs keep compile times short on a 2-core CPU."""

import importlib
import pathlib
import sys

import pytest

from janus_jax.configs import MDNRNNConfig, VAEConfig

# Tests run on CPU with 64-bit off; chex variants need no extra setup.


@pytest.fixture
def small_image_vae():
    return VAEConfig(
        input_channels=3,
        input_height=64,
        input_width=64,
        latent_dim=8,
        hidden_channels=(8, 8, 16, 16),
    )


@pytest.fixture
def small_mdn():
    return MDNRNNConfig(latent_dim=3, action_dim=2, hidden_dim=16, num_mixtures=4)


EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def import_experiment(name: str):
    """Returns the module experiments/NAME.py (the folder is no package)."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXPERIMENTS))
