"""C: the actor-critic controller acting on features [z, h], as pure functions.

Discrete actions use a categorical policy. Continuous actions use a Gaussian on
an unbounded "raw" action u, squashed by tanh and scaled into the action box:
a = low + (tanh(u) + 1) / 2 * (high - low), so every action is inside the
bounds and log-probabilities are exact (change of variables). Rollouts store
the raw action: it is what ``log_prob`` takes.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from janus_jax.config.models import ActionSpec, NetworkConfig
from janus_jax.config.tasks import TaskSlot

_ACTIVATIONS = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "leaky_relu": nn.leaky_relu,
}
LOG_2 = float(np.log(2.0))


class ActionDistribution(NamedTuple):
    """Distribution parameters: logits [..., A], or mean and log_std [..., A]."""

    loc: jax.Array
    log_std: jax.Array | None = None


class _MLP(nn.Module):
    config: NetworkConfig
    out_dim: int
    out_scale: float

    @nn.compact
    def __call__(self, x):
        act = _ACTIVATIONS[self.config.activation]
        for size in self.config.layer_sizes:
            x = nn.Dense(size, kernel_init=nn.initializers.orthogonal(np.sqrt(2)))(x)
            if self.config.use_layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        return nn.Dense(
            self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_scale)
        )(x)


class _ActorCritic(nn.Module):
    config: NetworkConfig
    action: ActionSpec

    @nn.compact
    def __call__(self, features):
        # Small policy-head init keeps the first policy near uniform (PPO practice).
        loc = _MLP(self.config, self.action.dim, 0.01, name="actor")(features)
        value = _MLP(self.config, 1, 1.0, name="critic")(features)[..., 0]
        log_std = None
        if self.action.continuous:
            start = nn.initializers.constant(self.config.log_std_init)
            log_std = self.param("log_std", start, (self.action.dim,))
            log_std = jnp.broadcast_to(log_std, loc.shape)
        return ActionDistribution(loc, log_std), value


@struct.dataclass
class ControllerParams:
    """The controller's weights with its (static) network config and action
    space, and in a shared world model its env's slot in M's action vector."""

    net: Any
    config: NetworkConfig = struct.field(pytree_node=False)
    action: ActionSpec = struct.field(pytree_node=False)
    task: TaskSlot | None = struct.field(pytree_node=False, default=None)


def init(
    key: jax.Array,
    config: NetworkConfig,
    action: ActionSpec,
    feature_dim: int,
    task: TaskSlot | None = None,
) -> ControllerParams:
    """Returns fresh controller parameters for features of size ``feature_dim``
    (``task``: the env's slot in a shared M's action vector, None alone)."""
    net = _init_net(key, config, action, feature_dim)
    return ControllerParams(net=net, config=config, action=action, task=task)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _init_net(key: jax.Array, config: NetworkConfig, action: ActionSpec, features: int):
    """The actor-critic's weights, initialised in one compiled program (as
    ``vae.init`` does, for the same reason)."""
    return _ActorCritic(config, action).init(key, jnp.zeros((1, features), jnp.float32))


def apply(
    params: ControllerParams, features: jax.Array
) -> tuple[ActionDistribution, jax.Array]:
    """Returns (policy, value [...]) for features [..., F]."""
    return _ActorCritic(params.config, params.action).apply(params.net, features)


def _squash_log_det(raw: jax.Array) -> jax.Array:
    """Returns log(1 - tanh(raw)^2) elementwise, stable for large |raw|."""
    return 2.0 * (LOG_2 - raw - jax.nn.softplus(-2.0 * raw))


def _log_half_range(action: ActionSpec) -> jax.Array:
    return jnp.log((jnp.asarray(action.high) - jnp.asarray(action.low)) / 2.0)


def sample(
    key: jax.Array, params: ControllerParams, policy: ActionDistribution
) -> jax.Array:
    """Returns a raw action: an int32 index [...] or a pre-squash vector [..., A]."""
    if not params.action.continuous:
        return jax.random.categorical(key, policy.loc, axis=-1).astype(jnp.int32)
    noise = jax.random.normal(key, policy.loc.shape, policy.loc.dtype)
    return policy.loc + jnp.exp(policy.log_std) * noise


def mode(params: ControllerParams, policy: ActionDistribution) -> jax.Array:
    """Returns the most likely raw action (argmax, or the Gaussian mean)."""
    if not params.action.continuous:
        return jnp.argmax(policy.loc, axis=-1).astype(jnp.int32)
    return policy.loc


# Gauss-Hermite nodes and weights (probabilists': weight exp(-x^2 / 2), the
# weights normalised to sum to 1) for the mean of tanh(loc + std * x), x ~ N(0, 1):
# 64 nodes agree with SciPy's integral to 1e-5 for std <= 2 (16 are 5e-3 off at
# std 2, where tanh turns within a fraction of a node's spacing).
_HERMITE_NODES, _HERMITE_WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_HERMITE_WEIGHTS = _HERMITE_WEIGHTS / _HERMITE_WEIGHTS.sum()


def mean_action(params: ControllerParams, policy: ActionDistribution) -> jax.Array:
    """Returns the raw action whose env action is the policy's expected one,
    E[low + (tanh(u) + 1) / 2 * (high - low)] for u ~ N(loc, std), per dimension
    (a deterministic policy that acts as the sampled one does on average, where
    ``mode``'s tanh(loc) ignores the std); the argmax for discrete actions."""
    if not params.action.continuous:
        return mode(params, policy)
    nodes = jnp.asarray(_HERMITE_NODES, policy.loc.dtype)
    weights = jnp.asarray(_HERMITE_WEIGHTS, policy.loc.dtype)
    u = policy.loc[..., None] + jnp.exp(policy.log_std)[..., None] * nodes
    mean_tanh = jnp.sum(jnp.tanh(u) * weights, axis=-1)
    # |E tanh(u)| < 1: clipped so the inverse stays finite in float32
    bound = 1.0 - jnp.finfo(policy.loc.dtype).epsneg
    return jnp.arctanh(jnp.clip(mean_tanh, -bound, bound))


def log_prob(
    params: ControllerParams, policy: ActionDistribution, raw_action: jax.Array
) -> jax.Array:
    """Returns log pi(action) [...] of the action that ``raw_action`` maps to."""
    if not params.action.continuous:
        log_probs = jax.nn.log_softmax(policy.loc, axis=-1)
        return jnp.take_along_axis(log_probs, raw_action[..., None], axis=-1)[..., 0]
    z = (raw_action - policy.loc) * jnp.exp(-policy.log_std)
    gaussian = -0.5 * z**2 - policy.log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = _squash_log_det(raw_action) + _log_half_range(params.action)
    return jnp.sum(gaussian - log_det, axis=-1)


def entropy(
    params: ControllerParams, policy: ActionDistribution, key: jax.Array
) -> jax.Array:
    """Returns the policy's entropy [...]: exact for discrete actions; for bounded
    continuous actions the Gaussian's entropy plus a one-sample estimate of the
    squashing's expected log-Jacobian (H[f(u)] = H[u] + E log|f'(u)|)."""
    if not params.action.continuous:
        log_probs = jax.nn.log_softmax(policy.loc, axis=-1)
        return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)
    gaussian = 0.5 + 0.5 * jnp.log(2.0 * jnp.pi) + policy.log_std
    raw = sample(key, params, policy)  # reparameterised: gradients reach loc and std
    log_det = _squash_log_det(raw) + _log_half_range(params.action)
    return jnp.sum(gaussian + log_det, axis=-1)


def env_action(params: ControllerParams, raw_action: jax.Array) -> jax.Array:
    """Returns the environment's action: an index, or a vector inside the bounds."""
    if not params.action.continuous:
        return raw_action
    low, high = jnp.asarray(params.action.low), jnp.asarray(params.action.high)
    return low + (jnp.tanh(raw_action) + 1.0) * 0.5 * (high - low)


def encode_action(
    action: ActionSpec, env_act: jax.Array, task: TaskSlot | None = None
) -> jax.Array:
    """Returns environment actions as the MDN-RNN's float vector: [..., A]
    (one-hot for discrete actions, the values for continuous ones); with
    ``task``, that vector in the task's slot of a shared M's [..., task.size]
    vector, the task's one-hot entry set (``config/tasks.py``)."""
    if not action.continuous:
        own = jax.nn.one_hot(env_act, action.dim, dtype=jnp.float32)
    else:
        own = jnp.asarray(env_act).astype(jnp.float32)
    if task is None:
        return own
    lead = own.shape[:-1]
    before = jnp.zeros(lead + (task.offset,), jnp.float32)
    between = task.task_index - task.offset - action.dim
    after = jnp.zeros(lead + (task.size - task.task_index,), jnp.float32)
    after = after.at[..., 0].set(1.0)
    middle = jnp.zeros(lead + (between,), jnp.float32)
    return jnp.concatenate([before, own, middle, after], axis=-1)
