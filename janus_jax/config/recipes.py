"""Recipes: one set of values per kind of observation and action, not per env.

A recipe is a preset measured on one env (``cartpole``, ``pendulum``,
``breakout``, ``carracing``) whose values hold for its whole kind: its V and M
are sized from the env's observations and actions by the recipe's own rule (the
MinAtar recipe keeps its Bernoulli V on any game's channels), and its budgets
count real env steps (``world_model.random_steps``), so they mean the same cost
on an env nobody has measured. ``janus-jax train --env ID`` without ``--preset``
runs the recipe that :func:`recipe_for` picks from the env's spaces, and
``--preset NAME --env ID`` moves a recipe's preset with the same rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from janus_jax.config.models import MDNRNNConfig, VAEConfig

# MinAtar-like frames: a grid of cells with one channel per object kind, small
# enough that V takes two 4x4 convolutions; bigger images are pixels.
MAX_GRID_SIDE = 21


def vector_architecture(
    observation_size: int, action_dim: int, rnn_type: str
) -> tuple[VAEConfig, MDNRNNConfig]:
    """Returns the vector recipes' V and M: a 64x64 MLP V with one latent per
    observation dimension, an M 64 wide with 5 mixtures whose memory is
    ``rnn_type`` (the vector-discrete recipe's attention memory: every CartPole
    seed past 475 within 20k real steps against one of three with the LSTM,
    docs/results/memory.md; the vector-continuous recipe's LSTM: not measured
    with attention)."""
    vae = VAEConfig(
        observation_size=observation_size,
        latent_dim=observation_size,
        hidden_sizes=(64, 64),
        kl_tolerance=1.0,
    )
    mdn = MDNRNNConfig(
        latent_dim=observation_size,
        action_dim=action_dim,
        hidden_dim=64,
        num_mixtures=5,
        rnn_type=rnn_type,
    )
    return vae, mdn


def minatar_architecture(
    height: int, width: int, channels: int, action_dim: int
) -> tuple[VAEConfig, MDNRNNConfig]:
    """Returns the MinAtar recipe's V and M: two convolutions (32, 64) scoring
    each binary cell by its Bernoulli likelihood, a 16-dim latent with 2 free
    nats a dimension, an LSTM-128 M with 5 mixtures (docs/results/breakout.md
    says why Bernoulli, and why the free nats: with 0.5 V left SpaceInvaders'
    cannon out of 91-99% of frames)."""
    vae = VAEConfig(
        input_height=height,
        input_width=width,
        input_channels=channels,
        hidden_channels=(32, 64),
        latent_dim=16,
        kl_tolerance=2.0,
        likelihood="bernoulli",
    )
    mdn = MDNRNNConfig(latent_dim=16, action_dim=action_dim, hidden_dim=128)
    return vae, mdn


def pixel_architecture(
    height: int, width: int, channels: int, action_dim: int
) -> tuple[VAEConfig, MDNRNNConfig]:
    """Returns the pixel recipe's V and M: the paper's four convolutions with a
    32-dim latent, an LSTM-256 M."""
    vae = VAEConfig(
        input_height=height, input_width=width, input_channels=channels, latent_dim=32
    )
    mdn = MDNRNNConfig(latent_dim=32, action_dim=action_dim, hidden_dim=256)
    return vae, mdn


def _is_vector(spec: Any) -> bool:
    return len(spec.observation_shape) == 1


def _is_grid(spec: Any) -> bool:
    shape = spec.observation_shape
    return (
        len(shape) == 3
        and spec.observation_dtype != "uint8"
        and max(shape[:2]) <= MAX_GRID_SIDE
    )


def _is_pixels(spec: Any) -> bool:
    return len(spec.observation_shape) == 3 and spec.observation_dtype == "uint8"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One kind's values: the preset holding them and its model-free twin."""

    name: str
    preset: str  # the world-model preset measured with these values
    model_free: str | None  # model-free PPO with the same evaluation (None: none)
    kind: str  # the observations and actions it serves, in words
    serves: Callable[[Any], bool]  # EnvSpec -> whether this recipe is for it
    architecture: Callable[[Any], tuple[VAEConfig, MDNRNNConfig]]  # EnvSpec -> V, M


RECIPES = (
    Recipe(
        "vector-discrete",
        "cartpole",
        "cartpole-ppo",
        "vector observations, discrete actions",
        lambda s: _is_vector(s) and not s.action.continuous,
        lambda s: vector_architecture(
            s.observation_shape[0], s.action.dim, "transformer"
        ),
    ),
    Recipe(
        "vector-continuous",
        "pendulum",
        "pendulum-ppo",
        "vector observations, continuous actions",
        lambda s: _is_vector(s) and s.action.continuous,
        lambda s: vector_architecture(s.observation_shape[0], s.action.dim, "lstm"),
    ),
    Recipe(
        "minatar",
        "breakout",
        "breakout-ppo",
        f"grids of binary cells (MinAtar), at most {MAX_GRID_SIDE} a side, "
        "discrete actions",
        lambda s: _is_grid(s) and not s.action.continuous,
        lambda s: minatar_architecture(*s.observation_shape, s.action.dim),
    ),
    Recipe(
        "pixels",
        "carracing",
        None,
        "uint8 pixel images (resized to 64x64)",
        _is_pixels,
        lambda s: pixel_architecture(*s.observation_shape, s.action.dim),
    ),
)
# Every preset built from a recipe's values (its model-free twin included).
PRESET_RECIPES = {
    **{r.preset: r for r in RECIPES},
    **{r.model_free: r for r in RECIPES if r.model_free},
}


def _space(spec: Any) -> str:
    shape = spec.observation_shape
    kind = "continuous" if spec.action.continuous else "discrete"
    return (
        f"observations {spec.observation_dtype} {tuple(shape)} and {spec.action.dim} "
        f"{kind} action{'s' if spec.action.dim != 1 else ''}"
    )


def recipe_for(spec: Any) -> Recipe:
    """Returns the recipe for an env of this ``EnvSpec``; raises ValueError,
    naming its spaces and what each recipe serves, when none does."""
    for recipe in RECIPES:
        if recipe.serves(spec):
            return recipe
    kinds = "; ".join(f"{r.name}: {r.kind}" for r in RECIPES)
    raise ValueError(
        f"no recipe serves {spec.env_id}, whose {_space(spec)}: the recipes are "
        f"{kinds}. Choose a preset with --preset NAME (its V and M are derived "
        "from the env)"
    )


def picked_line(recipe: Recipe, spec: Any) -> str:
    """Returns the line ``janus-jax train --env`` prints about the recipe."""
    return (
        f"--env {spec.env_id} without --preset: the {recipe.name} recipe (preset "
        f"{recipe.preset}, for {recipe.kind}), as {spec.env_id} has {_space(spec)}"
    )
