"""A PyTorch eager peer of janus-jax's imagination, for the benchmark to compare with.

The same M step and C as ``janus_jax.models.mdn_rnn`` and ``.controller``, with the
same weights (``from_jax``) and the same sampling as ``imagination.dream_step``,
written the way the PyTorch code our users come from is written: ``nn.LSTMCell``
and ``nn.Linear`` modules, called once per step from a plain Python loop under
``torch.no_grad()``. Only what the benchmark needs is mirrored: LSTM layers,
continuous (tanh-squashed, boxed) actions, MLPs without LayerNorm, the learned
reward head.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from janus_jax.config.models import ActionSpec, MDNRNNConfig, NetworkConfig
from janus_jax.imagination import WorldModelParams

_ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": lambda: nn.GELU(approximate="tanh"),  # flax's gelu is the tanh form
    "silu": nn.SiLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
}
LOG_2 = math.log(2.0)


class TorchMDNOutput(NamedTuple):
    """One step's predictions, as ``mdn_rnn.MDNOutput``; mixture arrays [B, Z, K]."""

    mixture_logits: torch.Tensor
    means: torch.Tensor
    log_sigmas: torch.Tensor
    reward: torch.Tensor  # [B]
    done_logit: torch.Tensor  # [B]


class TorchMDNRNN(nn.Module):
    """M: stacked LSTM cells, then the mixture, reward and done heads on h_{t+1}."""

    def __init__(self, config: MDNRNNConfig):
        super().__init__()
        if config.rnn_type != "lstm":
            raise ValueError(
                f"rnn_type={config.rnn_type!r} is not mirrored: only 'lstm' is"
            )
        self.config = config
        sizes = [config.latent_dim + config.action_dim] + [config.hidden_dim] * (
            config.rnn_layers - 1
        )
        # torch's gate order (i, f, g, o) is flax's, so nn.LSTMCell fits as is.
        self.cells = nn.ModuleList(nn.LSTMCell(n, config.hidden_dim) for n in sizes)
        mixtures = config.latent_dim * config.num_mixtures
        self.mixture = nn.Linear(config.hidden_dim, 3 * mixtures)
        self.reward = nn.Linear(config.hidden_dim, 1)
        self.done = nn.Linear(config.hidden_dim, 1)

    def initial_carry(self, batch: int) -> tuple:
        """Returns zeros: (c, h) [B, H] per layer, in flax's order."""
        zeros = lambda: torch.zeros(batch, self.config.hidden_dim)  # noqa: E731
        return tuple((zeros(), zeros()) for _ in self.cells)

    def forward(self, carry, latent, action) -> tuple[tuple, TorchMDNOutput]:
        """Returns (carry_{t+1}, predictions), as ``mdn_rnn.step``."""
        c = self.config
        x = torch.cat([latent, action], dim=-1)
        new_carry = []
        for cell, (cell_c, cell_h) in zip(self.cells, carry, strict=True):
            x, cell_c = cell(x, (cell_h, cell_c))  # torch's carry is (h, c)
            new_carry.append((cell_c, x))
        # janus-jax reshapes the head to [..., Z, K, 3]: logits, means, raw sigmas.
        mixture = self.mixture(x).view(-1, c.latent_dim, c.num_mixtures, 3)
        logits, means, raw = mixture.unbind(-1)
        mid = 0.5 * (c.log_sigma_max + c.log_sigma_min)
        half = 0.5 * (c.log_sigma_max - c.log_sigma_min)
        log_sigmas = mid + half * torch.tanh((raw - mid) / half)
        out = TorchMDNOutput(
            logits,
            means,
            log_sigmas,
            self.reward(x)[:, 0],
            self.done(x)[:, 0],
        )
        return tuple(new_carry), out


def _mlp(config: NetworkConfig, in_dim: int, out_dim: int) -> nn.Sequential:
    if config.use_layer_norm:
        raise ValueError("use_layer_norm=True is not mirrored")
    layers = []
    for size in config.layer_sizes:
        layers += [nn.Linear(in_dim, size), _ACTIVATIONS[config.activation]()]
        in_dim = size
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class TorchController(nn.Module):
    """C: actor and critic MLPs on [z, h] and a state-independent log std."""

    def __init__(self, config: NetworkConfig, action: ActionSpec, feature_dim: int):
        super().__init__()
        if not action.continuous:
            raise ValueError("only continuous actions are mirrored")
        self.actor = _mlp(config, feature_dim, action.dim)
        self.critic = _mlp(config, feature_dim, 1)
        self.log_std = nn.Parameter(torch.zeros(action.dim))
        low = torch.tensor(action.low if action.low else (-1.0,) * action.dim)
        high = torch.tensor(action.high if action.high else (1.0,) * action.dim)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        self.register_buffer("log_half_range", torch.log((high - low) / 2.0))

    def forward(self, features):
        """Returns (loc [B, A], log_std [B, A], value [B])."""
        loc = self.actor(features)
        return loc, self.log_std.expand_as(loc), self.critic(features)[:, 0]

    def env_action(self, raw_action):
        """Returns the action inside the box: low + (tanh(u) + 1) / 2 (high - low)."""
        return self.low + (torch.tanh(raw_action) + 1.0) * 0.5 * (self.high - self.low)

    def log_prob(self, loc, log_std, raw_action):
        """Returns log pi(action) [B] of the squashed action (change of variables)."""
        z = (raw_action - loc) * torch.exp(-log_std)
        gaussian = -0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi)
        log_det = 2.0 * (LOG_2 - raw_action - nn.functional.softplus(-2.0 * raw_action))
        return torch.sum(gaussian - log_det - self.log_half_range, dim=-1)


class TorchWorldModel(nn.Module):
    """M and C together (V is not used by imagination)."""

    def __init__(self, mdn_rnn: TorchMDNRNN, controller: TorchController):
        super().__init__()
        self.mdn_rnn = mdn_rnn
        self.controller = controller


def _copy_dense(linear: nn.Linear, dense: dict) -> None:
    # flax kernels are [in, out]; torch weights are [out, in].
    linear.weight.copy_(torch.from_numpy(np.asarray(dense["kernel"]).T.copy()))
    linear.bias.copy_(torch.from_numpy(np.array(dense["bias"])))


def _cat(dense: dict, name: str) -> torch.Tensor:
    parts = [np.asarray(dense[f"{name}{gate}"]["kernel"]).T for gate in "ifgo"]
    return torch.from_numpy(np.concatenate(parts, axis=0))


@torch.no_grad()
def from_jax(params: WorldModelParams) -> TorchWorldModel:
    """Returns a float32 TorchWorldModel holding a copy of ``params``' M and C.

    Also sets torch's intra-op threads to every core, as JAX's CPU backend uses."""
    torch.set_num_threads(os.cpu_count() or 1)
    m_config, c_params = params.mdn_rnn.config, params.controller
    m_net, c_net = params.mdn_rnn.net["params"], c_params.net["params"]
    mdn = TorchMDNRNN(m_config)
    for i, cell in enumerate(mdn.cells):
        layer = m_net[f"rnn_{i}"]
        cell.weight_ih.copy_(_cat(layer, "i"))
        cell.weight_hh.copy_(_cat(layer, "h"))
        # flax's OptimizedLSTMCell has one bias (on the h side); torch has two.
        cell.bias_ih.zero_()
        biases = [np.array(layer[f"h{gate}"]["bias"]) for gate in "ifgo"]
        cell.bias_hh.copy_(torch.from_numpy(np.concatenate(biases)))
    for name in ("mixture", "reward", "done"):
        _copy_dense(getattr(mdn, name), m_net[name])
    feature_dim = m_config.latent_dim + m_config.hidden_dim
    ctrl = TorchController(c_params.config, c_params.action, feature_dim)
    for head in ("actor", "critic"):
        linears = [m for m in getattr(ctrl, head) if isinstance(m, nn.Linear)]
        for i, linear in enumerate(linears):
            _copy_dense(linear, c_net[head][f"Dense_{i}"])
    ctrl.log_std.copy_(torch.from_numpy(np.array(c_net["log_std"])))
    return TorchWorldModel(mdn, ctrl).float().eval().requires_grad_(False)


def _sample_latent(out: TorchMDNOutput, temperature: float, generator):
    """Returns z_{t+1} [B, Z] as ``mdn_rnn.sample``: a component per dimension from
    softmax(logits / tau), then mean + sigma * sqrt(tau) * noise."""
    batch, latent_dim, mixtures = out.mixture_logits.shape
    if temperature > 0:
        probs = torch.softmax(out.mixture_logits / temperature, dim=-1)
        flat = torch.multinomial(probs.view(-1, mixtures), 1, generator=generator)
        component = flat.view(batch, latent_dim, 1)
    else:
        component = out.mixture_logits.argmax(-1, keepdim=True)
    mean = out.means.gather(-1, component)[..., 0]
    sigma = torch.exp(out.log_sigmas.gather(-1, component)[..., 0])
    noise = torch.randn(mean.shape, generator=generator)
    return mean + sigma * math.sqrt(temperature) * noise


@torch.no_grad()
def imagine_torch(
    model: TorchWorldModel,
    z0: torch.Tensor,
    horizon: int,
    temperature: float,
    generator: torch.Generator | None = None,
    done_mode: str = "sample",
) -> dict[str, torch.Tensor]:
    """Returns a dream from z0 [B, Z] as a dict of time-major tensors [T, B, ...]
    named as ``WorldModelAgent.imagine_trajectory``'s keys, with the raw
    (pre-squash) actions and h_{t+1} besides: 'raw_actions', 'next_hiddens'.

    Mirrors ``imagine`` from the zero carry with the learned reward head: C picks
    a raw action u ~ N(loc, std), the box action low + (tanh(u) + 1) / 2 (high -
    low) goes to M, z_{t+1} is sampled with temperature tau, and a dream ends with
    probability sigmoid(done_logit) (done_mode "sample") or when that exceeds 0.5
    ("threshold"); steps after the first done are masked (mask 0, reward 0)."""
    mdn, ctrl = model.mdn_rnn, model.controller
    if not mdn.config.predict_reward:
        raise ValueError("imagine_torch needs the learned reward head")
    carry = mdn.initial_carry(z0.shape[0])
    latent = z0.float()
    alive = torch.ones(z0.shape[0])
    records = {name: [] for name in _RECORD_FIELDS}
    for _ in range(horizon):
        hidden = carry[-1][1]
        loc, log_std, value = ctrl(torch.cat([latent, hidden], dim=-1))
        noise = torch.randn(loc.shape, generator=generator)
        raw_action = loc + torch.exp(log_std) * noise
        action = ctrl.env_action(raw_action)
        carry, out = mdn(carry, latent, action)
        next_latent = _sample_latent(out, temperature, generator)
        if not mdn.config.predict_done:
            done = torch.zeros_like(alive)
        elif done_mode == "sample":
            done = torch.bernoulli(torch.sigmoid(out.done_logit), generator=generator)
        else:
            done = (out.done_logit > 0.0).float()
        step = (
            latent,
            hidden,
            raw_action,
            action,
            ctrl.log_prob(loc, log_std, raw_action),
            value,
            out.reward * alive,
            done * alive,
            alive,
            next_latent,
            carry[-1][1],
        )
        for name, x in zip(_RECORD_FIELDS, step, strict=True):
            records[name].append(x)
        latent, alive = next_latent, alive * (1.0 - done)
    return {name: torch.stack(xs) for name, xs in records.items()}


_RECORD_FIELDS = (
    "latents",
    "hiddens",
    "raw_actions",
    "actions",
    "log_probs",
    "values",
    "rewards",
    "dones",
    "mask",
    "next_latents",
    "next_hiddens",
)
