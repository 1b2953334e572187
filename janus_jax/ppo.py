"""PPO for the controller: GAE, the clipped loss, and a jittable update step.

Rollouts are time-major records ``[T, B, ...]``. Termination and truncation are
kept apart: a terminated step has no future value, a truncated one (time limit,
end of an imagined horizon) bootstraps from the value of its true next state.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from janus_jax.config.models import PPOConfig
from janus_jax.models import controller
from janus_jax.optim import TrainState, make_optimizer


class Batch(NamedTuple):
    """Transitions for a PPO update; leading axes are flattened to [N] before use."""

    features: jax.Array  # [..., F] controller input [z, h]
    raw_actions: jax.Array  # [...] int32 or [..., A]
    log_probs: jax.Array  # [...] log-prob under the policy that acted
    values: jax.Array  # [...] value estimates when acting
    advantages: jax.Array  # [...]
    returns: jax.Array  # [...] advantages + values
    mask: jax.Array  # [...] 1 for real transitions, 0 for padding after a done


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> tuple[jax.Array, jax.Array]:
    """Returns (advantages, returns), each [T, B], by a reverse ``lax.scan``.

    rewards, values, terminated, truncated: [T, B]; next_values [T, B] holds
    V(s_{t+1}) of the state that followed step t, the final observation where
    the episode ended (a time-limited step bootstraps from it; a terminated one
    does not). The recursion stops at every episode end:
    delta_t = r_t + gamma * (1 - term_t) * V(s_{t+1}) - V(s_t),
    A_t = delta_t + gamma * lambda * (1 - (term_t or trunc_t)) * A_{t+1}.
    """
    terminated = terminated.astype(jnp.float32)
    ended = jnp.maximum(terminated, truncated.astype(jnp.float32))
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def body(next_advantage, inputs):
        delta, end = inputs
        advantage = delta + gamma * gae_lambda * (1.0 - end) * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        body, jnp.zeros_like(deltas[0]), (deltas, ended), reverse=True
    )
    return advantages, advantages + values


def explained_variance(
    predictions: jax.Array, targets: jax.Array, mask: jax.Array
) -> jax.Array:
    """Returns 1 - Var[targets - predictions] / Var[targets] over masked entries."""
    count = jnp.maximum(jnp.sum(mask), 1.0)

    def var(x):
        mean = jnp.sum(x * mask) / count
        return jnp.sum(((x - mean) ** 2) * mask) / count

    return 1.0 - var(targets - predictions) / jnp.maximum(var(targets), 1e-8)


def loss(
    params: controller.ControllerParams, batch: Batch, key: jax.Array, config: PPOConfig
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (loss, metrics) of a minibatch: clipped surrogate, value, entropy."""
    mask = batch.mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(mask), 1.0)
    mean = lambda x: jnp.sum(x * mask) / count  # noqa: E731

    policy, values = controller.apply(params, batch.features)
    log_probs = controller.log_prob(params, policy, batch.raw_actions)
    log_ratio = log_probs - batch.log_probs
    ratio = jnp.exp(log_ratio)

    advantages = batch.advantages
    if config.normalize_advantages:
        adv_mean = mean(advantages)
        adv_std = jnp.sqrt(mean((advantages - adv_mean) ** 2))
        advantages = (advantages - adv_mean) / (adv_std + 1e-8)
    clipped_ratio = jnp.clip(ratio, 1.0 - config.clip_range, 1.0 + config.clip_range)
    policy_loss = -mean(jnp.minimum(ratio * advantages, clipped_ratio * advantages))

    value_error = (values - batch.returns) ** 2
    if config.clip_range_vf is not None:
        clipped_values = batch.values + jnp.clip(
            values - batch.values, -config.clip_range_vf, config.clip_range_vf
        )
        value_error = jnp.maximum(value_error, (clipped_values - batch.returns) ** 2)
    value_loss = 0.5 * mean(value_error)
    entropy = mean(controller.entropy(params, policy, key))

    total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
    metrics = {
        "ppo/loss": total,
        "ppo/policy_loss": policy_loss,
        "ppo/value_loss": value_loss,
        "ppo/entropy": entropy,
        "ppo/approx_kl": mean((ratio - 1.0) - log_ratio),
        "ppo/clip_fraction": mean(
            (jnp.abs(ratio - 1.0) > config.clip_range).astype(jnp.float32)
        ),
        "ppo/explained_variance": explained_variance(batch.values, batch.returns, mask),
    }
    return total, metrics


# Adam's eps for C, as the common PPO implementations set it (V and M keep
# optax's default 1e-8).
ADAM_EPS = 1e-5


def optimizer(
    config: PPOConfig, total_gradient_steps: int | None = None
) -> optax.GradientTransformation:
    """Returns ``optim.make_optimizer`` with PPO's settings: Adam (eps 1e-5)
    after global-norm clipping; with anneal_lr the step size decays linearly to
    0 over ``total_gradient_steps`` (required then)."""
    learning_rate = config.learning_rate
    if config.anneal_lr:
        if not total_gradient_steps or total_gradient_steps < 1:
            raise ValueError(
                f"total_gradient_steps={total_gradient_steps!r} is invalid: "
                "PPOConfig.anneal_lr needs the number of gradient steps (>= 1)"
            )
        learning_rate = optax.linear_schedule(
            config.learning_rate, 0.0, total_gradient_steps
        )
    return make_optimizer(learning_rate, config.max_grad_norm, eps=ADAM_EPS)


def update(
    state: TrainState,
    batch: Batch,
    key: jax.Array,
    config: PPOConfig,
    optimizer: optax.GradientTransformation,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Returns the state after n_epochs over shuffled minibatches of ``batch``, and the
    mean metrics. The batch's leading axes are flattened; their product must be a
    multiple of config.minibatch_size."""
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[batch.mask.ndim :]), batch)
    size = flat.mask.shape[0]
    minibatch_size = config.minibatch_size
    if size % minibatch_size:
        raise ValueError(
            f"PPOConfig.minibatch_size={minibatch_size} is invalid for a batch of "
            f"{size} transitions: it must divide the batch size"
        )
    num_minibatches = size // minibatch_size
    grad_fn = jax.value_and_grad(loss, has_aux=True)

    def minibatch_step(state, inputs):
        minibatch, step_key = inputs
        (_, metrics), grads = grad_fn(state.params, minibatch, step_key, config)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return state.replace(
            params=params, opt_state=opt_state, step=state.step + 1
        ), metrics

    def epoch(state, epoch_key):
        perm_key, steps_key = jax.random.split(epoch_key)
        perm = jax.random.permutation(perm_key, size)
        shuffled = jax.tree.map(
            lambda x: x[perm].reshape((num_minibatches, minibatch_size) + x.shape[1:]),
            flat,
        )
        keys = jax.random.split(steps_key, num_minibatches)
        return jax.lax.scan(minibatch_step, state, (shuffled, keys))

    state, metrics = jax.lax.scan(epoch, state, jax.random.split(key, config.n_epochs))
    return state, jax.tree.map(jnp.mean, metrics)
