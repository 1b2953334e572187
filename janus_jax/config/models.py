"""Frozen, keyword-only configuration dataclasses, validated on construction.

Field names and defaults follow the PyTorch World Model README our users come
from; where it gives none, the values of Ha & Schmidhuber (2018) are used.
Every invalid value raises ``ValueError`` naming the field, the value and what
is allowed. Change a config with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Literal

from janus_jax.config.checks import (
    check_bool,
    fail,
    finite_float,
    in_range,
    is_number,
    non_negative,
    positive_int,
    positive_tuple,
)
from janus_jax.config.conv_sizes import min_image_size

ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu", "leaky_relu")
RNN_TYPES = ("lstm", "gru", "transformer")
LIKELIHOODS = ("gaussian", "bernoulli")
# What the controller acts on: [z, h] of the world model, or the raw observation.
FEATURES = ("world_model", "observation")


@dataclasses.dataclass(frozen=True, kw_only=True)
class VAEConfig:
    """The vision model V: a convolutional VAE for images, an MLP VAE for vectors.

    Images are channels-last ``[H, W, C]``, uint8 in [0, 255] or float in [0, 1].
    Set ``observation_size`` to use the vector form instead (CartPole, symbolic
    regression): the image fields are then ignored.
    """

    input_channels: int = 3
    """Image channels C."""
    input_height: int = 64
    """Image height H."""
    input_width: int = 64
    """Image width W."""
    latent_dim: int = 32
    """Size of the latent z."""
    hidden_channels: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of the encoder's 4x4 stride-2 convolutions (mirrored by the decoder)."""
    beta: float = 1.0
    """Weight of the KL term."""
    kl_tolerance: float = 0.5
    """Free bits: the KL of each sample is floored at kl_tolerance * latent_dim nats,
    as in the original World Models code (0 disables it)."""
    observation_size: int | None = None
    """Vector observation size; None means images."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of the vector VAE's MLP encoder (mirrored by the decoder)."""
    likelihood: Literal["gaussian", "bernoulli"] = "gaussian"
    """How V scores a reconstruction: "gaussian", the squared error (the paper's);
    "bernoulli", each pixel's binary cross-entropy, for images whose pixels are
    mostly 0 or 1 (MinAtar), where a rare set cell must not be cheaper to drop
    than to encode. Vector observations take "gaussian" only."""

    def __post_init__(self):
        for field in ("input_channels", "input_height", "input_width", "latent_dim"):
            positive_int(self, field)
        positive_tuple(self, "hidden_channels")
        positive_tuple(self, "hidden_sizes", allow_empty=True)
        non_negative(self, "beta")
        non_negative(self, "kl_tolerance")
        if self.likelihood not in LIKELIHOODS:
            fail(
                "VAEConfig",
                "likelihood",
                self.likelihood,
                f"must be one of {LIKELIHOODS}",
            )
        if self.observation_size is not None:
            positive_int(self, "observation_size")
            if self.likelihood != "gaussian":
                fail(
                    "VAEConfig",
                    "likelihood",
                    self.likelihood,
                    "vector observations (observation_size set) take 'gaussian' only: "
                    "they are standardised, not probabilities",
                )
            return
        need = min_image_size(len(self.hidden_channels))
        for field in ("input_height", "input_width"):
            value = getattr(self, field)
            if value < need:
                fail(
                    "VAEConfig",
                    field,
                    value,
                    f"the image is too small for {len(self.hidden_channels)} 4x4 "
                    f"stride-2 convolutions (hidden_channels={self.hidden_channels}); "
                    f"need at least {need} pixels or fewer hidden_channels",
                )

    @property
    def is_image(self) -> bool:
        return self.observation_size is None

    @property
    def observation_shape(self) -> tuple[int, ...]:
        if self.is_image:
            return (self.input_height, self.input_width, self.input_channels)
        return (self.observation_size,)


@dataclasses.dataclass(frozen=True, kw_only=True)
class MDNRNNConfig:
    """The memory model M: an LSTM/GRU whose output parameterises a Gaussian mixture
    for each latent dimension of z_{t+1}, plus reward and done heads."""

    latent_dim: int = 32
    """Must equal VAEConfig.latent_dim."""
    action_dim: int = 3
    """Size of the action vector fed to the RNN (the number of actions, one-hot
    encoded, for discrete action spaces)."""
    hidden_dim: int = 256
    """RNN hidden size."""
    num_mixtures: int = 5
    """Gaussian components per latent dimension."""
    rnn_type: Literal["lstm", "gru", "transformer"] = "lstm"
    """Memory: "lstm" or "gru" cells, or "transformer": causal attention over the
    last ``context_length`` steps, its keys and values carried as a fixed-size
    cache (see ``janus_jax.models.attention``)."""
    rnn_layers: int = 1
    """Stacked recurrent layers (attention blocks for "transformer")."""
    context_length: int = 16
    """"transformer" only: the steps each step attends to, itself included (the
    cache holds this many keys and values per block)."""
    attention_heads: int = 4
    """"transformer" only: attention heads; must divide hidden_dim."""
    temperature: float = 1.0
    """Sampling temperature tau: mixture logits / tau, sigma * sqrt(tau)."""
    predict_reward: bool = True
    """Train and use the reward head."""
    predict_done: bool = True
    """Train and use the done (termination) head."""
    log_sigma_min: float = -7.0
    """Lower bound of each component's log standard deviation."""
    log_sigma_max: float = 2.0
    """Upper bound of each component's log standard deviation."""

    def __post_init__(self):
        for field in ("latent_dim", "action_dim", "hidden_dim", "num_mixtures"):
            positive_int(self, field)
        for field in ("rnn_layers", "context_length", "attention_heads"):
            positive_int(self, field)
        if self.rnn_type not in RNN_TYPES:
            fail(
                "MDNRNNConfig", "rnn_type", self.rnn_type, f"must be one of {RNN_TYPES}"
            )
        if self.hidden_dim % self.attention_heads and self.rnn_type == "transformer":
            fail(
                "MDNRNNConfig",
                "attention_heads",
                self.attention_heads,
                f"must divide hidden_dim={self.hidden_dim}",
            )
        non_negative(self, "temperature")
        check_bool(self, "predict_reward")
        check_bool(self, "predict_done")
        for field in ("log_sigma_min", "log_sigma_max"):
            if not is_number(value := getattr(self, field)):
                fail("MDNRNNConfig", field, value, "must be a finite number")
        if not self.log_sigma_min < self.log_sigma_max:
            fail(
                "MDNRNNConfig",
                "log_sigma_min",
                self.log_sigma_min,
                f"must be below log_sigma_max={self.log_sigma_max}",
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """The controller C's actor and critic MLPs (one torso each)."""

    layer_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer sizes."""
    activation: str = "tanh"
    """One of tanh, relu, elu, gelu, silu, leaky_relu."""
    use_layer_norm: bool = False
    """LayerNorm after each hidden layer."""
    log_std_init: float = 0.0
    """Continuous actions: the policy's log std before training (one learned
    value per action dimension, state-independent); 0 starts at std 1, -1 at
    std 0.37. Unused for discrete actions."""

    def __post_init__(self):
        positive_tuple(self, "layer_sizes", allow_empty=True)
        check_bool(self, "use_layer_norm")
        in_range(self, "log_std_init", -5.0, 2.0)
        if self.activation not in ACTIVATIONS:
            fail(
                "NetworkConfig",
                "activation",
                self.activation,
                f"must be one of {ACTIVATIONS}",
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ActionSpec:
    """The action space: ``num_actions`` discrete actions, or a box with bounds."""

    continuous: bool
    """True for a box of real-valued actions, False for discrete actions."""
    dim: int
    """Number of discrete actions, or the box's dimension."""
    low: tuple[float, ...] | None = None
    """Box lower bounds (continuous only; default -1 in every dimension)."""
    high: tuple[float, ...] | None = None
    """Box upper bounds (continuous only; default +1 in every dimension)."""

    def __post_init__(self):
        check_bool(self, "continuous")
        positive_int(self, "dim")
        if not self.continuous:
            for field in ("low", "high"):
                if getattr(self, field) is not None:
                    fail(
                        "ActionSpec",
                        field,
                        getattr(self, field),
                        "bounds apply to continuous actions only",
                    )
            return
        for field, default in (("low", -1.0), ("high", 1.0)):
            value = getattr(self, field)
            if value is None:
                value = (default,) * self.dim
            elif isinstance(value, str | bytes) or not isinstance(value, Iterable):
                value = None  # a vector of bounds, not one number or text
            else:  # numpy arrays welcome: an env's Box bounds
                value = tuple(finite_float(v) for v in value)
            if value is None or len(value) != self.dim or None in value:
                fail(
                    "ActionSpec",
                    field,
                    getattr(self, field),
                    f"must be {self.dim} finite numbers",
                )
            object.__setattr__(self, field, value)
        if any(lo >= hi for lo, hi in zip(self.low, self.high, strict=True)):
            fail(
                "ActionSpec",
                "low",
                self.low,
                f"must be below high={self.high} everywhere",
            )


_PPO_MINIBATCH_DEFAULT = 64


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Proximal Policy Optimisation for the controller (clipped surrogate, GAE)."""

    learning_rate: float = 3e-4
    """Adam step size (the start of the schedule when anneal_lr)."""
    n_epochs: int = 10
    """Passes over each rollout."""
    minibatch_size: int = _PPO_MINIBATCH_DEFAULT
    """Rows (transitions) per PPO gradient step; must divide the PPO batch."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_range: float = 0.2
    """Clip range epsilon of the probability ratio."""
    clip_range_vf: float | None = None
    """Clip range of the value update (None: unclipped value loss)."""
    value_coef: float = 0.5
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    anneal_lr: bool = False
    """Decay the learning rate linearly to 0 over training."""
    normalize_advantages: bool = True
    """Standardise advantages within each minibatch."""
    reward_scale: float = 1.0
    """Rewards (real and dreamed) are multiplied by this before GAE, so the
    critic's targets lie where it can reach them: on tanh features its output
    moves by at most about learning_rate x (width + 1) an Adam step, so returns
    in the hundreds (CarRacing) take it thousands of steps. Evaluation returns
    stay the env's."""
    batch_size: dataclasses.InitVar[int | None] = None
    """The seed's name of minibatch_size, taken by the constructor only (not stored:
    read and replace minibatch_size)."""

    def __post_init__(self, batch_size: int | None):
        # minibatch_size at its default counts as unset, so the seed's
        # PPOConfig(batch_size=32) means minibatch_size=32.
        if batch_size is not None and batch_size != self.minibatch_size:
            if self.minibatch_size != _PPO_MINIBATCH_DEFAULT:
                raise ValueError(
                    f"PPOConfig.batch_size={batch_size!r} and minibatch_size="
                    f"{self.minibatch_size!r} disagree: batch_size is the seed's "
                    "name of minibatch_size; give minibatch_size only"
                )
            object.__setattr__(self, "minibatch_size", batch_size)
        positive_int(self, "n_epochs")
        positive_int(self, "minibatch_size")
        for field in ("learning_rate", "clip_range", "max_grad_norm", "reward_scale"):
            non_negative(self, field)
            if getattr(self, field) == 0:
                fail("PPOConfig", field, getattr(self, field), "must be > 0")
        for field in ("value_coef", "entropy_coef"):
            non_negative(self, field)
        if self.clip_range_vf is not None:
            non_negative(self, "clip_range_vf")
        in_range(self, "gamma", 0.0, 1.0)
        in_range(self, "gae_lambda", 0.0, 1.0)
        check_bool(self, "anneal_lr")
        check_bool(self, "normalize_advantages")


def check_compatible(vae: VAEConfig, mdn_rnn: MDNRNNConfig, action: ActionSpec) -> None:
    """Raises ValueError when V, M and the action space disagree on sizes."""
    if vae.latent_dim != mdn_rnn.latent_dim:
        raise ValueError(
            f"MDNRNNConfig.latent_dim={mdn_rnn.latent_dim} is invalid: must equal "
            f"VAEConfig.latent_dim={vae.latent_dim}"
        )
    if action.dim != mdn_rnn.action_dim:
        raise ValueError(
            f"MDNRNNConfig.action_dim={mdn_rnn.action_dim} is invalid: must equal the "
            f"action space's size {action.dim} ({action})"
        )
