"""World-model training throughput at the paper's sizes: V in frames/s and M in
sequence-steps/s, each as janus-jax trains it (``fit_chunk``: one compiled
``lax.scan`` over K gradient steps on batches [K, B, ...]), and V against a
PyTorch eager twin trained the same way.

V: 64x64x3 uint8 frames, latent 32, four 4x4 stride-2 convs (32, 64, 128, 256
channels) and the mirrored transposed convs, batch 100, Adam 1e-3, loss =
summed squared error + max(KL, 0.5 * 32). M: LSTM 256 with 5 mixtures per
latent dimension, latent 32, 3 actions, batch 100 sequences of 100 steps (the
paper's CarRacing M saw sequences of 1000; a step costs the same, and 100 keeps
a chunk short). The data is random: only throughput is measured.

A third V row, the same Adam step jitted alone and called from a Python loop,
is a diagnostic: XLA's own CPU convolutions lost 2.7x inside a ``lax.scan``;
V's convolutions as matrix products (``janus_jax.models.conv``, the default on
CPU) do not (see benchmarks/README.md). Compilation is timed apart
(``lower().compile()``); steady figures are medians over repeats, the V
variants interleaved so that all see the same load on a shared machine.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from benchmarks.common import block
from janus_jax.config.models import MDNRNNConfig, VAEConfig
from janus_jax.models import mdn_rnn, vae
from janus_jax.optim import init_train_state, make_optimizer
from janus_jax.records import Windows
from janus_jax.train.fit import fit_chunk

VAE_CONFIG = VAEConfig(input_height=64, input_width=64, latent_dim=32)
MDN_CONFIG = MDNRNNConfig(latent_dim=32, action_dim=3, hidden_dim=256, num_mixtures=5)
BATCH = 100
SEQUENCE_LENGTH = 100
LEARNING_RATE = 1e-3
TARGET_RATIO = 1.5


def vae_flops_per_frame(config: VAEConfig = VAE_CONFIG) -> float:
    """Returns the multiply-adds x 2 of one frame's training step (forward x 3:
    the backward pass costs about twice the forward), convs and dense layers."""
    sizes = [config.input_height]
    for _ in config.hidden_channels:
        sizes.append((sizes[-1] - 4) // 2 + 1)
    channels = (config.input_channels, *config.hidden_channels)
    convs = sum(
        2 * sizes[i + 1] ** 2 * channels[i + 1] * 16 * channels[i]
        for i in range(len(config.hidden_channels))
    )
    flat = sizes[-1] ** 2 * channels[-1]
    dense = 2 * flat * config.latent_dim * 3  # mean, log-variance, from_latent
    return 3.0 * (2 * convs + dense)  # the decoder mirrors the encoder


def _timed(fn) -> float:
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


class JaxFit:
    """janus-jax's compiled chunk (``fit_chunk``), its state threaded through."""

    def __init__(self, params, loss_fn, batches):
        optimizer = make_optimizer(LEARNING_RATE, None)
        params = jax.tree.map(jnp.copy, params)  # donated: keep the caller's
        self.state = init_train_state(params, optimizer, jax.random.key(0))
        self.batches = batches
        self.steps = jax.tree.leaves(batches)[0].shape[0]
        jitted = jax.jit(
            functools.partial(fit_chunk, loss_fn=loss_fn, optimizer=optimizer),
            donate_argnums=0,
        )
        start = time.perf_counter()
        self.compiled = jitted.lower(self.state, batches).compile()
        self.compile_s = time.perf_counter() - start

    def __call__(self) -> float:
        """Returns the seconds of one chunk (``self.steps`` gradient steps)."""

        def chunk():
            self.state, metrics = self.compiled(self.state, self.batches)
            return self.state, metrics

        return _timed(chunk)


class JaxStepLoop:
    """The chunk's body (the same loss and Adam) jitted alone, once per batch
    from a Python loop: the diagnostic that isolates the scan's cost."""

    def __init__(self, params, loss_fn, batches):
        optimizer = make_optimizer(LEARNING_RATE, None)

        def step(params, opt_state, batch, key):
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, batch, key
            )
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, metrics

        self.params = jax.tree.map(jnp.copy, params)  # donated: keep the caller's
        self.opt_state = optimizer.init(self.params)
        self.batches = [batch for batch in batches]  # sliced once, outside timing
        self.steps = len(self.batches)
        self.key = jax.random.key(0)
        jitted = jax.jit(step, donate_argnums=(0, 1))
        start = time.perf_counter()
        self.compiled = jitted.lower(
            self.params, self.opt_state, self.batches[0], self.key
        ).compile()
        self.compile_s = time.perf_counter() - start

    def __call__(self) -> float:
        def loop():
            for k, batch in enumerate(self.batches):
                key = jax.random.fold_in(self.key, k)
                self.params, self.opt_state, metrics = self.compiled(
                    self.params, self.opt_state, batch, key
                )
            return self.params, metrics

        return _timed(loop)


def random_frames(steps: int, batch: int) -> jax.Array:
    """Returns random uint8 frames [K, B, 64, 64, 3]."""
    shape = (steps, batch, *VAE_CONFIG.observation_shape)
    return jax.random.randint(jax.random.key(1), shape, 0, 256).astype(jnp.uint8)


def mdn_fit(steps: int, length: int) -> JaxFit:
    """Returns M's chunk of ``steps`` steps on random sequences [K, B, T, ...]."""
    keys = jax.random.split(jax.random.key(3), 4)
    shape = (steps, BATCH, length)
    batches = Windows(
        jax.random.normal(keys[0], (steps, BATCH, length + 1, MDN_CONFIG.latent_dim)),
        jax.random.uniform(keys[1], shape + (MDN_CONFIG.action_dim,), minval=-1.0),
        jax.random.normal(keys[2], shape),
        jax.random.bernoulli(keys[3], 0.01, shape).astype(jnp.float32),
        jnp.ones(shape),
    )
    return JaxFit(mdn_rnn.init(jax.random.key(4), MDN_CONFIG), mdn_rnn.loss, batches)


class TorchVAE:
    """The PyTorch eager twin of V (channels-first), Adam steps on random uint8
    frames; ``available`` is False when PyTorch is not importable."""

    def __init__(self, steps: int, batch: int):
        try:
            import torch
        except ImportError:
            self.available = False
            return
        self.available, self.steps, self.compile_s = True, steps, None
        torch.set_num_threads(os.cpu_count())
        torch.manual_seed(0)
        self.model = _torch_module(torch, VAE_CONFIG)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        c = VAE_CONFIG
        shape = (steps, batch, c.input_channels, c.input_height, c.input_width)
        self.frames = torch.randint(0, 256, shape, dtype=torch.uint8)

    def _step(self, batch):
        c = VAE_CONFIG
        x = batch.float() / 255.0
        recon, mean, log_var = self.model(x)
        reconstruction = ((recon - x) ** 2).sum(dim=(1, 2, 3))
        kl = -0.5 * (1 + log_var - mean**2 - log_var.exp()).sum(dim=-1)
        floored = kl.clamp_min(c.kl_tolerance * c.latent_dim)
        loss = (reconstruction + c.beta * floored).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def __call__(self) -> float:
        start = time.perf_counter()
        for batch in self.frames:
            self._step(batch)
        return time.perf_counter() - start


def _torch_module(torch, c: VAEConfig):
    """Returns V's architecture as a torch Module (x -> recon, mean, log_var)."""
    nn = torch.nn
    channels = (c.input_channels, *c.hidden_channels)
    sizes = [c.input_height]
    for _ in c.hidden_channels:
        sizes.append((sizes[-1] - 4) // 2 + 1)  # 64 -> 31 -> 14 -> 6 -> 2
    pairs = list(zip(channels, channels[1:], strict=False))

    class Module(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList(nn.Conv2d(i, o, 4, 2) for i, o in pairs)
            flat = sizes[-1] ** 2 * channels[-1]
            self.to_mean = nn.Linear(flat, c.latent_dim)
            self.to_log_var = nn.Linear(flat, c.latent_dim)
            self.from_latent = nn.Linear(c.latent_dim, flat)
            self.deconvs = nn.ModuleList(
                nn.ConvTranspose2d(o, i, 4, 2) for i, o in reversed(pairs)
            )

        def forward(self, x):
            for conv in self.convs:
                x = torch.relu(conv(x))
            x = x.flatten(1)
            mean, log_var = self.to_mean(x), self.to_log_var(x)
            z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
            y = self.from_latent(z).view(-1, channels[-1], sizes[-1], sizes[-1])
            last = len(self.deconvs) - 1
            for i, (deconv, size) in enumerate(
                zip(self.deconvs, sizes[-2::-1], strict=True)
            ):
                y = deconv(y)
                pad = size - y.shape[-1]  # the row/column the encoder dropped
                if pad:
                    y = nn.functional.pad(y, (0, pad, 0, pad), mode="replicate")
                y = torch.relu(y) if i < last else torch.sigmoid(y)
            return y, mean, log_var

    return Module()


def _row(name, runner, seconds, batch, items_per_step, unit, flops=None) -> dict:
    step_s = statistics.median(seconds) / runner.steps
    row = {
        "model": name,
        "batch": batch,
        "steps_timed": runner.steps * len(seconds),
        "compile_s": runner.compile_s,
        "step_s": step_s,
        unit: items_per_step / step_s,
    }
    if flops is not None:
        row["gflop_per_s"] = flops / step_s / 1e9
    compiled = "-" if runner.compile_s is None else f"{runner.compile_s:.1f}"
    gflops = row.get("gflop_per_s")
    print(
        f"{name:34s} {batch:>5d} {row['steps_timed']:>5d} {compiled:>9s} "
        f"{step_s:>7.3f} {row[unit]:>10,.0f} {unit.replace('_per_s', '/s'):16s} "
        f"{'-' if gflops is None else f'{gflops:.1f}':>7s}",
        flush=True,
    )
    return row


def run(quick: bool) -> dict:
    """Returns {"rows", "targets", "notes"}; prints one row per measurement."""
    # V's batch (quick: small, a scan step at 100 takes 10-20 s), V chunk, loop
    # and torch steps, M chunk steps, repeats.
    batch, fit_k, loop_k, torch_k, mdn_k, repeats = (
        (16, 1, 1, 2, 1, 1) if quick else (BATCH, 2, 2, 10, 4, 3)
    )
    rows, targets, notes = [], {}, []
    load_before = os.getloadavg()[0]
    print(f"1-min load average before: {load_before:.2f}", flush=True)
    print(
        f"{'model':34s} {'batch':>5s} {'steps':>5s} {'compile s':>9s} "
        f"{'s/step':>7s} {'throughput':>27s} {'GFLOP/s':>7s}",
        flush=True,
    )
    frames = random_frames(max(fit_k, loop_k), batch)
    params = vae.init(jax.random.key(2), VAE_CONFIG)
    runners = {
        "V janus-jax fit_chunk (scan)": JaxFit(params, vae.loss, frames[:fit_k]),
        "V jitted step, Python loop": JaxStepLoop(params, vae.loss, frames[:loop_k]),
        "V PyTorch eager": TorchVAE(torch_k, batch),
    }
    if not runners["V PyTorch eager"].available:
        del runners["V PyTorch eager"]
        notes.append("PyTorch is not importable: the eager twin was skipped")
        print(f"note: {notes[-1]}", flush=True)
    for runner in runners.values():  # first runs pay one-off allocations
        runner()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            times[name].append(runner())
    flops = vae_flops_per_frame() * batch
    for name, runner in runners.items():
        row = _row(name, runner, times[name], batch, batch, "frames_per_s", flops)
        rows.append(row)
    if "V PyTorch eager" in runners:  # the target is for the paper's batch only
        ratio = rows[0]["frames_per_s"] / rows[-1]["frames_per_s"]
        loop_ratio = rows[1]["frames_per_s"] / rows[-1]["frames_per_s"]
        print(
            f"V janus-jax fit_chunk / PyTorch eager: {ratio:.2f}x "
            f"(jitted step in a Python loop: {loop_ratio:.2f}x)",
            flush=True,
        )
        if batch == BATCH:
            targets["VAE training >= 1.5x PyTorch eager frames/s"] = {
                "wanted": f">= {TARGET_RATIO}x",
                "measured": f"{ratio:.2f}x",
                "met": ratio >= TARGET_RATIO,
            }
    del runners, frames

    mdn = mdn_fit(mdn_k, SEQUENCE_LENGTH)
    if not quick:
        mdn()
    seconds = [mdn() for _ in range(repeats)]
    name = f"M janus-jax fit_chunk (T={SEQUENCE_LENGTH})"
    items = BATCH * SEQUENCE_LENGTH
    rows.append(_row(name, mdn, seconds, BATCH, items, "seq_steps_per_s"))
    load = {"before": load_before, "after": os.getloadavg()[0]}
    print(f"1-min load average after: {load['after']:.2f}", flush=True)
    return {"rows": rows, "targets": targets, "notes": notes, "load_avg_1min": load}


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2, default=float))
