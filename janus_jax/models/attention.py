"""M's attention memory: a causal transformer over the last K steps whose keys
and values are carried as a fixed-size cache, so one step costs what the
whole-sequence pass costs per step and a dream stays one ``lax.scan``.

Each step t is a token embed([z_t, a_t]) of width H = hidden_dim. A block is
pre-norm: x += attention(LayerNorm(x)); x += MLP(LayerNorm(x)) with a
2H-wide GELU hidden layer. A query attends to itself and to the K - 1 steps
before it (K = context_length), never further back: the whole-sequence pass
and the step-by-step one agree exactly, however long the episode (a banded
causal mask, as in sliding-window attention). Order enters as a learned bias
per head and step offset added to the attention logits (offset 0: the step
itself), which a cache of keys can carry where absolute positions could not.
The top block's output, layer-normalised, is h: the heads' input and the
controller's.

The carry zeroed (as a rollout does where an episode ends) is an empty cache:
``valid`` marks which of the K slots hold a step of this episode. It is larger
than an LSTM's: 2 x L x K x H floats of keys and values per env (L blocks),
which the controller's replay keeps for every stored step (with H=128, K=16:
16 KiB a step, 0.8 GB for a 50,000-step replay).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from janus_jax.config.models import MDNRNNConfig

MASKED = -1e30  # a logit no softmax weight survives (a query always sees itself)


@struct.dataclass
class AttentionCarry:
    """The cache of one episode's last K steps for E envs (leading dims [...]).

    Slot K - 1 is the latest step; a new step shifts every slot down by one."""

    keys: jax.Array  # [..., L, K, H] per block
    values: jax.Array  # [..., L, K, H]
    valid: jax.Array  # [..., K] 1.0 where the slot holds a step, 0.0 while empty
    output: jax.Array  # [..., H] h: the top block's output at the latest step


def initial_carry(config: MDNRNNConfig, batch_shape: tuple[int, ...]) -> AttentionCarry:
    """Returns the empty cache (every leaf a fresh zero buffer)."""
    layers, context, width = config.rnn_layers, config.context_length, config.hidden_dim
    return AttentionCarry(
        keys=jnp.zeros(batch_shape + (layers, context, width), jnp.float32),
        values=jnp.zeros(batch_shape + (layers, context, width), jnp.float32),
        valid=jnp.zeros(batch_shape + (context,), jnp.float32),
        output=jnp.zeros(batch_shape + (width,), jnp.float32),
    )


def band(context: int, steps: int) -> tuple[jax.Array, jax.Array]:
    """Returns (offset [T, K+T] int, inside [T, K+T] bool) for T new steps after
    K cached ones: key j is ``offset`` steps before query t, and ``inside``
    where that is 0..K-1 (the query itself and the K - 1 steps before it)."""
    query = jnp.arange(steps)[:, None] + context
    offset = query - jnp.arange(context + steps)[None, :]
    return offset, (offset >= 0) & (offset < context)


class CausalMemory(nn.Module):
    """Maps (carry, tokens [..., T, D]) to (carry after them, h [..., T, H])."""

    config: MDNRNNConfig

    @nn.compact
    def __call__(self, carry: AttentionCarry, tokens: jax.Array):
        c = self.config
        width, heads, context = c.hidden_dim, c.attention_heads, c.context_length
        head_dim = width // heads
        steps = tokens.shape[-2]
        offset, inside = band(context, steps)
        valid = jnp.concatenate(
            [carry.valid, jnp.ones(carry.valid.shape[:-1] + (steps,), jnp.float32)],
            axis=-1,
        )
        allowed = inside & (valid[..., None, :] > 0)  # [..., T, K+T]
        position_bias = self.param(
            "position_bias", nn.initializers.zeros, (heads, context), jnp.float32
        )
        bias = position_bias[:, jnp.clip(offset, 0, context - 1)]  # [heads, T, K+T]
        split = lambda x: x.reshape(x.shape[:-1] + (heads, head_dim))  # noqa: E731

        x = nn.Dense(width, name="embed")(tokens)
        new_keys, new_values = [], []
        for layer in range(c.rnn_layers):
            normed = nn.LayerNorm(name=f"attention_norm_{layer}")(x)
            q, k, v = jnp.split(nn.Dense(3 * width, name=f"qkv_{layer}")(normed), 3, -1)
            keys = jnp.concatenate([carry.keys[..., layer, :, :], k], axis=-2)
            values = jnp.concatenate([carry.values[..., layer, :, :], v], axis=-2)
            logits = jnp.einsum("...thd,...jhd->...htj", split(q), split(keys))
            logits = logits / math.sqrt(head_dim) + bias
            logits = jnp.where(allowed[..., None, :, :], logits, MASKED)
            weights = jax.nn.softmax(logits, axis=-1)
            mixed = jnp.einsum("...htj,...jhd->...thd", weights, split(values))
            x = x + nn.Dense(width, name=f"attention_out_{layer}")(
                mixed.reshape(mixed.shape[:-2] + (width,))
            )
            normed = nn.LayerNorm(name=f"mlp_norm_{layer}")(x)
            hidden = nn.gelu(nn.Dense(2 * width, name=f"mlp_in_{layer}")(normed))
            x = x + nn.Dense(width, name=f"mlp_out_{layer}")(hidden)
            new_keys.append(keys[..., -context:, :])
            new_values.append(values[..., -context:, :])
        h = nn.LayerNorm(name="output_norm")(x)
        new_carry = AttentionCarry(
            keys=jnp.stack(new_keys, axis=-3),
            values=jnp.stack(new_values, axis=-3),
            valid=valid[..., -context:],
            output=h[..., -1, :],
        )
        return new_carry, h
