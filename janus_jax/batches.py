"""PPO's batches from rollouts, real or dreamed: ``to_latents`` puts a real
rollout of C in the dream's terms (its observations replaced by latents), and
``to_ppo_batch`` turns any ``Transition`` in latents, a dream or a real rollout,
into PPO's batch (GAE stopping at terminations, bootstrapping at truncations)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from janus_jax import ppo
from janus_jax.imagination import features, observation_features
from janus_jax.models import controller, vae
from janus_jax.records import Transition


def to_latents(
    vae_params: vae.VAEParams, real: Transition, reuse: bool = False
) -> Transition:
    """Returns a real rollout [T, E] in the dream's terms: observations replaced
    by their latents (z_t as C saw it, and V's z of every next observation);
    without V (``vae_params`` None), by C's observation features.

    ``reuse`` (V the one C acted with): the next observation of a step whose
    episode went on is the observation C saw next, so its z is C's z of step
    t + 1; V encodes only the last step's next observations and those where an
    episode ended (up to E + T E / 8 of them; more, and it encodes every one).
    The same latents, up to float rounding between batch sizes, for a fraction
    of the encoding."""
    next_obs = real.next_obs
    if vae_params is None:  # model-free: C saw the observations themselves
        next_latent = observation_features(next_obs, batch_dims=2)
        return real._replace(obs=real.info.latent, next_obs=next_latent)
    lead = next_obs.shape[:2]
    flat = next_obs.reshape((-1,) + next_obs.shape[2:])
    if reuse:
        next_latent = _next_latents(vae_params, real, flat)
    else:
        next_latent = vae.get_latent(vae_params, flat)
    return real._replace(
        obs=real.info.latent,
        next_obs=next_latent.reshape(lead + next_latent.shape[1:]),
    )


def _next_latents(vae_params: vae.VAEParams, real: Transition, flat) -> jax.Array:
    """Returns z of every next observation [T E, Z] (``to_latents``'s reuse)."""
    steps, envs = real.reward.shape
    latents = real.info.latent
    shifted = jnp.concatenate([latents[1:], latents[:1]]).reshape(steps * envs, -1)
    encode = jnp.logical_or(real.terminated, real.truncated).at[-1].set(True)
    encode = encode.reshape(-1)
    budget = min(steps * envs, envs + steps * envs // 8)

    def some(_):
        # Padding repeats index 0, whose z is then V's own: still its true value.
        where = jnp.nonzero(encode, size=budget, fill_value=0)[0]
        return shifted.at[where].set(vae.get_latent(vae_params, flat[where]))

    def every(_):
        return vae.get_latent(vae_params, flat)

    return jax.lax.cond(jnp.sum(encode) <= budget, some, every, None)


def to_ppo_batch(
    c_params: controller.ControllerParams,
    transition: Transition,
    gamma: float,
    gae_lambda: float,
    reward_scale: float = 1.0,
) -> ppo.Batch:
    """Returns the PPO batch [T, B] of a Transition in latents (a dream, or a real
    rollout through ``to_latents``): GAE on the rewards times ``reward_scale``
    stops at ``terminated`` (no future) and bootstraps at ``truncated`` from
    V([z_{t+1}, h_{t+1}]); masked steps count for nothing."""
    info = transition.info
    _, next_values = controller.apply(
        c_params, features(transition.next_obs, info.next_hidden)
    )
    advantages, returns = ppo.gae(
        transition.reward * reward_scale,
        info.value,
        next_values,
        transition.terminated,
        transition.truncated,
        gamma,
        gae_lambda,
    )
    mask = transition.mask
    return ppo.Batch(
        features=features(info.latent, info.hidden),
        raw_actions=info.raw_action,
        log_probs=info.log_prob,
        values=info.value,
        advantages=advantages,
        returns=returns,
        mask=jnp.ones_like(info.value) if mask is None else mask,
    )
