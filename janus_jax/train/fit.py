"""Supervised fitting of V and M: a gradient step and the jitted chunk of them
(the state and the optimiser: ``janus_jax.optim``).

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

from janus_jax.optim import TrainState

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


def fit_step(
    state: TrainState,
    batch: Any,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
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
    state: TrainState,
    batches: Any,
    *,
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Returns (state after K steps, the chunk's mean metrics) for ``batches``
    whose leaves are [K, B, ...]: step k takes batch k, all in one ``lax.scan``."""

    def body(state: TrainState, batch):
        return fit_step(state, batch, loss_fn=loss_fn, optimizer=optimizer)

    state, metrics = jax.lax.scan(body, state, batches)
    return state, jax.tree.map(jnp.mean, metrics)
