"""Supervised fitting of V and M: optimiser, epoch schedule and the jitted chunk.

A phase is a number of gradient steps; the Python loop asks a
``blocks.BlockStream`` for the batches of steps ``[s, s + K)`` and hands the
chunk ``[K, B, ...]`` to ``fit_chunk``, one compiled ``lax.scan``.
Every step's key is ``fold_in(state.key, state.step)``, so the state alone
(restored from a checkpoint) decides the rest of the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


@struct.dataclass
class FitState:
    """Parameters, optimiser state, gradient steps done and the phase's key data."""

    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: gradient (micro-batch) steps done
    key: jax.Array  # uint32 key data (jax.random.key_data), stored in checkpoints


def make_optimizer(
    learning_rate: float, max_grad_norm: float | None, accumulation_steps: int = 1
) -> optax.GradientTransformation:
    """Returns Adam after global-norm clipping, applied once every
    ``accumulation_steps`` micro-batches on their mean gradient (optax.MultiSteps)."""
    parts = [optax.clip_by_global_norm(max_grad_norm)] if max_grad_norm else []
    optimizer = optax.chain(*parts, optax.adam(learning_rate))
    if accumulation_steps > 1:
        optimizer = optax.MultiSteps(optimizer, every_k_schedule=accumulation_steps)
    return optimizer


def init_fit_state(
    params: Any, optimizer: optax.GradientTransformation, key: jax.Array
) -> FitState:
    """Returns the state of a phase about to take its first step."""
    return FitState(
        params=params,
        opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
        key=jax.random.key_data(key),
    )


def fit_step(
    state: FitState,
    batch: Any,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
) -> tuple[FitState, dict[str, jax.Array]]:
    """Returns (state after one gradient step on ``batch``, that step's metrics);
    the step's key is ``fold_in(state.key, state.step)``."""
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.key), state.step)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    (_, metrics), grads = grad_fn(state.params, batch, step_key)
    metrics["grad_norm"] = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), (
        metrics
    )


def fit_chunk(
    state: FitState,
    batches: Any,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
) -> tuple[FitState, dict[str, jax.Array]]:
    """Returns (state after K steps, the chunk's mean metrics) for ``batches``
    whose leaves are [K, B, ...]: step k takes batch k, all in one ``lax.scan``."""

    def body(state: FitState, batch):
        return fit_step(state, batch, loss_fn=loss_fn, optimizer=optimizer)

    state, metrics = jax.lax.scan(body, state, batches)
    return state, jax.tree.map(jnp.mean, metrics)
