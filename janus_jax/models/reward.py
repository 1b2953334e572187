"""A learned reward model r(z_t, a_t, z_{t+1}) for the dreams, beside M's reward
head: the seed's ``LearnedRewardModel`` as a flax linen module, with pure
``init`` / ``apply`` / ``loss`` as V's and M's have, and ``scorer``, the
per-example reward function ``janus_jax.imagination.imagine`` takes, bound to
the model's parameters.

``as_dream_reward`` turns what ``WorldModelPPOTrainer(reward_model=...)``
accepts (None, a pure function, a module, a ``RewardModel``) into one of the
two forms the controller phase carries: a static function, or a ``RewardModel``
whose parameters learn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from janus_jax.records import Windows

ExampleReward = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
"""A pure ``reward_fn(z_t [Z], a_t [A], z_next [Z]) -> []`` for one example."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewardModel:
    """A learned reward model for ``WorldModelPPOTrainer(reward_model=...)``.

    module: a flax linen module whose ``__call__(z_t [..., Z], a_t [..., A],
        z_next [..., Z])`` returns the reward [...], one scalar per example (the
        seed's ``LearnedRewardModel``); a_t is the action vector M sees (one-hot
        for discrete actions, the env's values for continuous ones).
    learning_rate: Adam's step size (None: the training config's
        ``world_model_learning_rate``, M's).
    max_grad_norm: global-norm gradient clipping (M's refresh clips at 1.0;
        0 turns it off).
    """

    module: nn.Module
    learning_rate: float | None = None
    max_grad_norm: float = 1.0

    def __post_init__(self):
        if not isinstance(self.module, nn.Module):
            raise ValueError(
                f"RewardModel.module={self.module!r} is invalid: must be a flax "
                "linen Module with __call__(z_t, a_t, z_next) -> reward"
            )
        lr = self.learning_rate
        if lr is not None and (
            isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0
        ):
            raise ValueError(
                f"RewardModel.learning_rate={lr!r} is invalid: must be a number "
                "> 0, or None for the training config's world_model_learning_rate"
            )
        clip = self.max_grad_norm
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or clip < 0:
            raise ValueError(
                f"RewardModel.max_grad_norm={clip!r} is invalid: must be a number "
                ">= 0 (0: no clipping)"
            )


def as_dream_reward(reward_model: Any) -> ExampleReward | RewardModel | None:
    """Returns the dreams' reward as the controller phase carries it: None (M's
    reward head), a pure per-example function (as given), or a ``RewardModel``
    (a bare linen module is wrapped in one with the default settings).
    Anything else raises ValueError."""
    if reward_model is None or isinstance(reward_model, RewardModel):
        return reward_model
    if isinstance(reward_model, nn.Module):
        return RewardModel(module=reward_model)
    if callable(reward_model) and isinstance(reward_model, Hashable):
        return reward_model
    raise ValueError(
        f"reward_model={reward_model!r} is invalid: must be None (M's reward "
        "head), a pure function reward_fn(z_t, a_t, z_next) -> scalar, a flax "
        "linen Module with that __call__, or janus_jax.RewardModel(module=...)"
    )


def init(key: jax.Array, model: RewardModel, latent_dim: int, action_dim: int):
    """Returns the module's variables for latents of ``latent_dim`` and action
    vectors of ``action_dim``; raises ValueError when the module does not
    return one scalar per example."""
    z = jnp.zeros((2, latent_dim), jnp.float32)
    a = jnp.zeros((2, action_dim), jnp.float32)
    variables = model.module.init(key, z, a, z)
    shape = jax.eval_shape(model.module.apply, variables, z, a, z).shape
    if shape != (2,):
        raise ValueError(
            f"RewardModel.module returns shape {shape} for a batch of 2 examples; "
            "it must return one scalar per example, shape (2,) (squeeze the last "
            "axis, as the seed's .squeeze(-1) does)"
        )
    return variables


def apply(
    model: RewardModel, variables, z_t: jax.Array, a_t: jax.Array, z_next: jax.Array
) -> jax.Array:
    """Returns the predicted reward [...] of z_t [..., Z], a_t [..., A] and
    z_next [..., Z]."""
    return model.module.apply(variables, z_t, a_t, z_next)


def loss(
    model: RewardModel, variables, windows: Windows, key: jax.Array | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (loss, metrics): the squared error of the predicted rewards
    against the real ones, averaged over the windows' valid steps exactly as M's
    reward loss is (``mdn_rnn.loss``).

    windows: batch-major, observations as V's latents [W, L+1, Z] and actions as
    M's vectors [W, L, A] (what M's refresh fits on). ``key`` is unused (a
    ``fit.LossFn``)."""
    del key
    latents = windows.obs
    predicted = apply(
        model, variables, latents[:, :-1], windows.actions, latents[:, 1:]
    )
    mask = windows.mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(mask), 1.0)
    mse = jnp.sum((predicted - windows.rewards) ** 2 * mask) / count
    return mse, {"reward/mse": mse}


def scorer(model: RewardModel, variables) -> ExampleReward:
    """Returns the per-example ``reward_fn(z_t [Z], a_t [A], z_next [Z]) -> []``
    of the model with ``variables``, as ``imagination.imagine`` takes it."""

    def reward_fn(z_t, a_t, z_next):
        return apply(model, variables, z_t, a_t, z_next)

    return reward_fn
