"""The one train state and the one optimiser factory of every phase: V's and
M's supervised fitting (``train.fit``) and C's PPO updates (``ppo``).

Each caller passes its own numbers (PPO: Adam's eps 1e-5, a linear decay of the
step size with ``anneal_lr``; V and M: optax's default eps 1e-8, gradient
accumulation), so one factory builds every optimiser the runs had before.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


@struct.dataclass
class TrainState:
    """Parameters, optimiser state, gradient steps done and, for a phase whose
    steps draw their keys from the state (V's and M's), the key data."""

    params: Any
    opt_state: optax.OptState
    step: jax.Array  # int32 scalar: gradient (micro-batch) steps done
    # uint32 key data (jax.random.key_data), stored in checkpoints; None where
    # the caller passes each step's key (PPO).
    key: jax.Array | None = None


def make_optimizer(
    learning_rate: float | optax.Schedule,
    max_grad_norm: float | None,
    *,
    eps: float = 1e-8,
    accumulation_steps: int = 1,
) -> optax.GradientTransformation:
    """Returns Adam (step size ``learning_rate``, a number or an optax schedule,
    and ``eps``) after global-norm clipping at ``max_grad_norm`` (None or 0: no
    clipping), applied once every ``accumulation_steps`` micro-batches on their
    mean gradient (optax.MultiSteps)."""
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm else []
    optimizer = optax.chain(*parts, optax.adam(learning_rate, eps=eps))
    if accumulation_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=accumulation_steps)
    return optimizer


def init_train_state(
    params: Any, optimizer: optax.GradientTransformation, key: jax.Array | None = None
) -> TrainState:
    """Returns the state of a phase about to take its first step (holding
    ``key``'s data when one is given)."""
    return TrainState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=None if key is None else jax.random.key_data(key),
    )
