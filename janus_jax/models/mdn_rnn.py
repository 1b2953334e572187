"""M: the MDN-RNN, as pure functions over an explicit parameter pytree.

One step maps (carry, z_t, a_t) to the next carry and, from the new top-layer
output h_{t+1} (an LSTM's or a GRU's, or the attention memory's of
``models/attention.py``), a Gaussian mixture over z_{t+1} with its own mixture
weights for **each** latent dimension (as in Ha & Schmidhuber 2018), a
predicted reward r_t and a done logit. ``unroll`` runs the step over a
sequence with ``lax.scan`` (the transformer: one banded causal pass).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from janus_jax.config.models import MDNRNNConfig
from janus_jax.models import attention
from janus_jax.records import Windows

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)  # a float: importing computes nothing
DONE_PRIOR_LOGIT = -4.0


class MDNOutput(NamedTuple):
    """One step's predictions; mixture arrays are [..., Z, K]."""

    mixture_logits: jax.Array
    means: jax.Array
    log_sigmas: jax.Array
    reward: jax.Array  # [...]
    done_logit: jax.Array  # [...]


def _heads(c: MDNRNNConfig, x: jax.Array) -> MDNOutput:
    """Returns the predictions from M's output x [..., H] (its layers are made
    in the calling module, so their names are that module's)."""
    shape = x.shape[:-1] + (c.latent_dim, c.num_mixtures)
    mixture = nn.Dense(3 * c.latent_dim * c.num_mixtures, name="mixture")(x)
    logits, means, raw_log_sigmas = jnp.split(mixture.reshape(shape + (3,)), 3, -1)
    # A smooth bound keeps gradients alive (unlike clip) and sigma away from 0.
    mid = 0.5 * (c.log_sigma_max + c.log_sigma_min)
    half = 0.5 * (c.log_sigma_max - c.log_sigma_min)
    log_sigmas = mid + half * jnp.tanh((raw_log_sigmas[..., 0] - mid) / half)
    reward = nn.Dense(1, name="reward")(x)[..., 0]
    # Terminations are rare: start from p(done) ~ 2% rather than a coin flip.
    done_init = nn.initializers.constant(DONE_PRIOR_LOGIT)
    done_logit = nn.Dense(1, bias_init=done_init, name="done")(x)[..., 0]
    return MDNOutput(logits[..., 0], means[..., 0], log_sigmas, reward, done_logit)


class _MDNRNN(nn.Module):
    config: MDNRNNConfig

    @nn.compact
    def __call__(self, carry, latent, action):
        c = self.config
        cell_type = nn.OptimizedLSTMCell if c.rnn_type == "lstm" else nn.GRUCell
        x = jnp.concatenate([latent, action], axis=-1)
        new_carry = []
        for i, layer_carry in enumerate(carry):
            layer_carry, x = cell_type(c.hidden_dim, name=f"rnn_{i}")(layer_carry, x)
            new_carry.append(layer_carry)
        return tuple(new_carry), _heads(c, x)


class _AttentionMDN(nn.Module):
    """M with the attention memory: T steps at once, [..., T, ...] batch-major."""

    config: MDNRNNConfig

    @nn.compact
    def __call__(self, carry, latents, actions):
        tokens = jnp.concatenate([latents, actions], axis=-1)
        carry, h = attention.CausalMemory(self.config, name="memory")(carry, tokens)
        return carry, _heads(self.config, h)


@struct.dataclass
class MDNRNNParams:
    """The MDN-RNN's weights with its (static) config."""

    net: Any
    config: MDNRNNConfig = struct.field(pytree_node=False)


def initial_carry(config: MDNRNNConfig, batch_shape: tuple[int, ...] = ()) -> Any:
    """Returns the zero recurrent state: (c, h) per LSTM layer, h per GRU layer,
    the empty key/value cache (an ``AttentionCarry``) for the transformer."""
    if config.rnn_type == "transformer":
        return attention.initial_carry(config, batch_shape)

    # A fresh buffer per leaf: shared ones cannot be donated to a jitted chunk.
    def zeros():
        return jnp.zeros(batch_shape + (config.hidden_dim,), jnp.float32)

    lstm = config.rnn_type == "lstm"
    return tuple(
        (zeros(), zeros()) if lstm else zeros() for _ in range(config.rnn_layers)
    )


def hidden(carry: Any) -> jax.Array:
    """Returns the top layer's output h [..., hidden_dim], the controller's input."""
    if isinstance(carry, attention.AttentionCarry):
        return carry.output
    top = carry[-1]
    return top[1] if isinstance(top, tuple) else top


def _module(config: MDNRNNConfig) -> nn.Module:
    transformer = config.rnn_type == "transformer"
    return _AttentionMDN(config) if transformer else _MDNRNN(config)


@partial(jax.jit, static_argnums=1)
def _init_net(key: jax.Array, config: MDNRNNConfig):
    """The network's weights, initialised in one compiled program (as
    ``vae.init`` does, for the same reason)."""
    steps = (1,) if config.rnn_type == "transformer" else ()  # T: one step
    latent = jnp.zeros((1, *steps, config.latent_dim), jnp.float32)
    action = jnp.zeros((1, *steps, config.action_dim), jnp.float32)
    return _module(config).init(key, initial_carry(config, (1,)), latent, action)


def init(key: jax.Array, config: MDNRNNConfig) -> MDNRNNParams:
    """Returns freshly initialised MDN-RNN parameters for ``config``."""
    return MDNRNNParams(net=_init_net(key, config), config=config)


def step(
    params: MDNRNNParams, carry: Any, latent: jax.Array, action: jax.Array
) -> tuple[Any, MDNOutput]:
    """Returns (carry_{t+1}, predictions of z_{t+1}, r_t and done_t).

    latent: z_t [..., Z]; action: a_t [..., A]; carry leaves [..., hidden_dim]
    (the transformer's cache: [..., L, K, hidden_dim]).
    """
    module = _module(params.config)
    if params.config.rnn_type != "transformer":
        return module.apply(params.net, carry, latent, action)
    at = latent.ndim - 1  # the time axis after the batch dims
    carry, out = module.apply(
        params.net, carry, jnp.expand_dims(latent, at), jnp.expand_dims(action, at)
    )
    return carry, jax.tree.map(lambda x: jnp.squeeze(x, at), out)


def unroll(
    params: MDNRNNParams, carry: Any, latents: jax.Array, actions: jax.Array
) -> tuple[Any, MDNOutput]:
    """Returns (final carry, per-step MDNOutput stacked [T, ...]) for time-major
    latents [T, ..., Z] and actions [T, ..., A]: one ``lax.scan`` of ``step``,
    or for the transformer one banded causal pass over all T steps (the same
    outputs as its steps, in one batch of matrix products)."""
    if params.config.rnn_type == "transformer":
        at = latents.ndim - 2  # where the time axis goes: after the batch dims
        module = _module(params.config)
        carry, out = module.apply(
            params.net,
            carry,
            jnp.moveaxis(latents, 0, at),
            jnp.moveaxis(actions, 0, at),
        )
        return carry, jax.tree.map(lambda x: jnp.moveaxis(x, at, 0), out)

    def body(carry, inputs):
        return step(params, carry, *inputs)

    return jax.lax.scan(body, carry, (latents, actions))


def mixture_log_prob(output: MDNOutput, target: jax.Array) -> jax.Array:
    """Returns log p(target | mixture) [...] for target [..., Z], summed over dims."""
    log_weights = jax.nn.log_softmax(output.mixture_logits, axis=-1)
    z = (target[..., None] - output.means) * jnp.exp(-output.log_sigmas)
    log_normal = -0.5 * z**2 - output.log_sigmas - LOG_SQRT_2PI
    per_dim = jax.nn.logsumexp(log_weights + log_normal, axis=-1)
    return jnp.sum(per_dim, axis=-1)


def inverse_cdf(logits: jax.Array, u: jax.Array) -> jax.Array:
    """Returns the component [...] that u [...] in [0, 1) picks from the
    categorical softmax(logits [..., K]) by inverse CDF.

    The cumulative sum is scaled by its own float total and compared with <=, so
    a component of probability 0 is never picked: not at u = 0, and not where the
    float cumsum ends below the largest u."""
    cdf = jnp.cumsum(jax.nn.softmax(logits, axis=-1), axis=-1)
    return jnp.sum(cdf[..., :-1] <= u[..., None] * cdf[..., -1:], axis=-1)


def sample(
    key: jax.Array, output: MDNOutput, temperature: float | jax.Array
) -> jax.Array:
    """Returns z_{t+1} [..., Z] drawn with temperature tau as in the paper: each
    dimension picks a component from softmax(logits / tau), then adds
    sigma * sqrt(tau) noise. tau = 0 gives the mean of the most likely component."""
    component_key, noise_key = jax.random.split(key)
    tau = jnp.asarray(temperature, jnp.float32)
    logits = output.mixture_logits / jnp.maximum(tau, 1e-6)
    # Inverse CDF: one uniform per dimension where Gumbel-max draws K, and random
    # bits are a quarter of a dream step's time at large batches on CPU.
    u = jax.random.uniform(component_key, logits.shape[:-1])
    sampled = inverse_cdf(logits, u)
    component = jnp.where(tau > 0, sampled, jnp.argmax(output.mixture_logits, axis=-1))
    pick = lambda x: jnp.take_along_axis(x, component[..., None], axis=-1)[..., 0]  # noqa: E731
    noise = jax.random.normal(noise_key, component.shape)
    return pick(output.means) + jnp.exp(pick(output.log_sigmas)) * jnp.sqrt(tau) * noise


def loss(
    params: MDNRNNParams, windows: Windows, key: jax.Array | None = None
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns (loss, metrics) of M on batch-major ``windows``.

    windows.obs: the latents z_0..z_T [B, T+1, Z]; actions [B, T, A] float;
    rewards [B, T]; dones [B, T] (termination after step t); mask [B, T] (1 where
    step t is real data); carry: the RNN state before step 0 (leaves [B, H]; None
    for zeros, e.g. windows that start an episode, or the state reached by the
    earlier part of the episode). The latent NLL is averaged per dimension (as
    the original code does), reward is a squared error and done a logistic loss,
    each averaged over valid steps. ``key`` is unused (the loss draws nothing):
    it is there so that ``loss`` is a ``fit.LossFn``.
    """
    del key
    latents, actions, rewards, dones, mask, carry = windows
    config = params.config
    batch = latents.shape[0]
    time_major = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
    if carry is None:
        carry = initial_carry(config, (batch,))
    _, out = unroll(
        params,
        carry,
        time_major(latents[:, :-1]),
        time_major(actions),
    )
    out = jax.tree.map(time_major, out)
    mask = mask.astype(jnp.float32)
    count = jnp.maximum(jnp.sum(mask), 1.0)
    masked_mean = lambda x: jnp.sum(x * mask) / count  # noqa: E731
    nll = -mixture_log_prob(out, latents[:, 1:]) / config.latent_dim
    latent_loss = masked_mean(nll)
    reward_loss = masked_mean((out.reward - rewards) ** 2)
    done_loss = masked_mean(
        optax.sigmoid_binary_cross_entropy(out.done_logit, dones.astype(jnp.float32))
    )
    total = latent_loss
    total += reward_loss if config.predict_reward else 0.0
    total += done_loss if config.predict_done else 0.0
    metrics = {
        "mdn/loss": total,
        "mdn/latent_nll": latent_loss,
        "mdn/reward_mse": reward_loss,
        "mdn/done_bce": done_loss,
    }
    return total, metrics
