"""M with the attention memory (``rnn_type="transformer"``): the cached step
against the whole-sequence pass, causality and the band of K steps, the loss
against an independent NumPy forward pass, and a controller phase stopped
after a checkpoint resuming bit-exactly with its key/value caches in the
replay (in this process; the CLI run killed by a signal is ``slow``)."""

import json
import math
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from test_resume import _kill_when

from janus_jax import (
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
    WorldModelAgent,
    WorldModelPPOTrainer,
)
from janus_jax.envs.rollout import reset_where
from janus_jax.models import mdn_rnn
from janus_jax.records import Windows
from janus_jax.run.checkpoint import PhaseCheckpoints
from janus_jax.run.run_dir import load_agent
from janus_jax.train.loop import RunIO

CONFIG = MDNRNNConfig(
    latent_dim=3,
    action_dim=2,
    hidden_dim=8,
    num_mixtures=2,
    rnn_type="transformer",
    rnn_layers=2,
    context_length=3,
    attention_heads=2,
)


def _params(config: MDNRNNConfig = CONFIG, seed: int = 0) -> mdn_rnn.MDNRNNParams:
    """Returns M's parameters, jittered so no weight (the position bias, the
    LayerNorms) keeps the value its initialiser gives every entry alike."""
    params = mdn_rnn.init(jax.random.key(seed), config)
    leaves, tree = jax.tree.flatten(params.net)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    jittered = [
        x + 0.3 * jax.random.normal(k, x.shape)
        for x, k in zip(leaves, keys, strict=True)
    ]
    return params.replace(net=jax.tree.unflatten(tree, jittered))


def _inputs(steps: int, batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latents = rng.standard_normal((steps, batch, CONFIG.latent_dim))
    actions = rng.standard_normal((steps, batch, CONFIG.action_dim))
    return jnp.asarray(latents, jnp.float32), jnp.asarray(actions, jnp.float32)


class StepAgainstSequenceTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_steps_carry_what_the_whole_sequence_pass_computes(self):
        params = _params()
        latents, actions = _inputs(steps=8, batch=2)  # T > K: the cache wraps
        step = self.variant(lambda c, z, a: mdn_rnn.step(params, c, z, a))
        carry = mdn_rnn.initial_carry(CONFIG, (2,))
        whole_carry, whole = mdn_rnn.unroll(params, carry, latents, actions)
        outputs = []
        for t in range(8):
            carry, out = step(carry, latents[t], actions[t])
            outputs.append(out)
        stepped = jax.tree.map(lambda *x: jnp.stack(x), *outputs)
        chex.assert_trees_all_close(stepped, whole, atol=2e-5, rtol=2e-5)
        chex.assert_trees_all_close(carry, whole_carry, atol=2e-5, rtol=2e-5)
        chex.assert_shape(mdn_rnn.hidden(carry), (2, CONFIG.hidden_dim))

    def test_a_sequence_continued_from_a_carry_is_the_sequence_in_one_pass(self):
        params = _params()
        latents, actions = _inputs(steps=9, batch=2)
        carry = mdn_rnn.initial_carry(CONFIG, (2,))
        _, whole = mdn_rnn.unroll(params, carry, latents, actions)
        middle, _ = mdn_rnn.unroll(params, carry, latents[:4], actions[:4])
        _, rest = mdn_rnn.unroll(params, middle, latents[4:], actions[4:])
        chex.assert_trees_all_close(
            rest, jax.tree.map(lambda x: x[4:], whole), atol=2e-5, rtol=2e-5
        )

    def test_a_zeroed_carry_starts_a_new_episode(self):
        params = _params()
        latents, actions = _inputs(steps=5, batch=2)
        fresh = mdn_rnn.initial_carry(CONFIG, (2,))
        carry, _ = mdn_rnn.unroll(params, fresh, latents, actions)
        carry = reset_where(jnp.array([True, False]), carry)  # env 0 ended
        _, after = mdn_rnn.step(params, carry, latents[0], actions[0])
        _, new_episode = mdn_rnn.step(params, fresh, latents[0], actions[0])
        np.testing.assert_allclose(after.means[0], new_episode.means[0], atol=1e-6)
        assert not np.allclose(after.means[1], new_episode.means[1], atol=1e-3)


def _changed_steps(config: MDNRNNConfig, at: int, steps: int = 10) -> np.ndarray:
    """Returns which steps' outputs move when only step ``at``'s latent does."""
    params = _params(config)
    latents, actions = _inputs(steps, batch=1)
    carry = mdn_rnn.initial_carry(config, (1,))
    _, before = mdn_rnn.unroll(params, carry, latents, actions)
    _, after = mdn_rnn.unroll(params, carry, latents.at[at].add(1.0), actions)
    return np.abs(np.asarray(after.means - before.means)).max(axis=(1, 2, 3)) > 0


def test_a_later_input_never_changes_an_earlier_output():
    moved = _changed_steps(CONFIG, at=5)
    assert not moved[:5].any(), moved
    assert moved[5:].all(), moved  # two blocks reach 2 (K - 1) = 4 steps on


def test_one_block_attends_to_the_last_context_length_steps_only():
    one_block = MDNRNNConfig(**{**CONFIG.__dict__, "rnn_layers": 1})
    moved = _changed_steps(one_block, at=2)
    steps = np.arange(10)
    expected = (steps >= 2) & (steps < 2 + one_block.context_length)
    np.testing.assert_array_equal(moved, expected)


# An independent forward pass: loops over envs, steps and heads in float64.


def _dense(p, x):
    return x @ np.asarray(p["kernel"], np.float64) + np.asarray(p["bias"], np.float64)


def _layer_norm(p, x, eps=1e-6):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * np.asarray(p["scale"]) + np.asarray(
        p["bias"]
    )


def _gelu(x):  # flax's default, the tanh approximation
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _numpy_memory(p, config, tokens):
    """Returns h [T, H] of one episode's tokens [T, D]."""
    steps, width = tokens.shape[0], config.hidden_dim
    heads, context = config.attention_heads, config.context_length
    head_dim = width // heads
    bias = np.asarray(p["position_bias"], np.float64)
    x = _dense(p["embed"], tokens)
    for layer in range(config.rnn_layers):
        qkv = _dense(p[f"qkv_{layer}"], _layer_norm(p[f"attention_norm_{layer}"], x))
        q, k, v = qkv[:, :width], qkv[:, width : 2 * width], qkv[:, 2 * width :]
        mixed = np.zeros((steps, width))
        for t in range(steps):
            past = list(range(max(0, t - context + 1), t + 1))
            for h in range(heads):
                cols = slice(h * head_dim, (h + 1) * head_dim)
                logits = np.array(
                    [
                        q[t, cols] @ k[s, cols] / math.sqrt(head_dim) + bias[h, t - s]
                        for s in past
                    ]
                )
                weights = np.exp(logits - logits.max())
                weights /= weights.sum()
                mixed[t, cols] = sum(
                    w * v[s, cols] for w, s in zip(weights, past, strict=True)
                )
        x = x + _dense(p[f"attention_out_{layer}"], mixed)
        hidden = _gelu(
            _dense(p[f"mlp_in_{layer}"], _layer_norm(p[f"mlp_norm_{layer}"], x))
        )
        x = x + _dense(p[f"mlp_out_{layer}"], hidden)
    return _layer_norm(p["output_norm"], x)


def _numpy_loss(params, latents, actions, rewards, dones, mask):
    """Returns M's loss: latent NLL per dimension + reward MSE + done BCE, each
    a mean over the masked-in steps, for batch-major windows."""
    config, p = params.config, jax.tree.map(np.asarray, params.net["params"])
    nll, squared, bce = [], [], []
    for b in range(latents.shape[0]):
        tokens = np.concatenate([latents[b, :-1], actions[b]], axis=-1)
        h = _numpy_memory(p["memory"], config, tokens.astype(np.float64))
        mixture = _dense(p["mixture"], h).reshape(
            h.shape[0], config.latent_dim, config.num_mixtures, 3
        )
        logits, means, raw = mixture[..., 0], mixture[..., 1], mixture[..., 2]
        mid = 0.5 * (config.log_sigma_max + config.log_sigma_min)
        half = 0.5 * (config.log_sigma_max - config.log_sigma_min)
        log_sigmas = mid + half * np.tanh((raw - mid) / half)
        target = latents[b, 1:][..., None]
        log_normal = (
            -0.5 * ((target - means) / np.exp(log_sigmas)) ** 2
            - log_sigmas
            - 0.5 * math.log(2 * math.pi)
        )
        log_weights = logits - logsumexp(logits, axis=-1, keepdims=True)
        log_prob = logsumexp(log_weights + log_normal, axis=-1).sum(-1)
        nll.append(-log_prob / config.latent_dim)
        squared.append((_dense(p["reward"], h)[:, 0] - rewards[b]) ** 2)
        done_logit = _dense(p["done"], h)[:, 0]
        bce.append(
            np.logaddexp(0.0, done_logit) - dones[b] * done_logit  # -log sigmoid
        )
    weights = mask / mask.sum()
    return sum(float((np.stack(x) * weights).sum()) for x in (nll, squared, bce))


def test_loss_matches_an_independent_numpy_forward_pass():
    params = _params(seed=3)
    rng = np.random.default_rng(3)
    batch, steps = 2, 6
    latents = rng.standard_normal((batch, steps + 1, CONFIG.latent_dim))
    actions = rng.standard_normal((batch, steps, CONFIG.action_dim))
    rewards = rng.standard_normal((batch, steps))
    dones = (rng.uniform(size=(batch, steps)) < 0.3).astype(np.float64)
    mask = np.ones((batch, steps))
    mask[1, 4:] = 0.0  # the second window's episode ended at step 4
    windows = Windows(
        *(jnp.asarray(x, jnp.float32) for x in (latents, actions, rewards, dones)),
        jnp.asarray(mask, bool),
    )
    loss, _ = mdn_rnn.loss(params, windows)
    expected = _numpy_loss(params, latents, actions, rewards, dones, mask)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)


TRAIN = [
    sys.executable,
    "-m",
    "janus_jax.cli",
    "train",
    "--preset",
    "tiny",
    "--set",
    "world_model.mdn_rnn.rnn_type=transformer",
    "--set",
    "world_model.mdn_rnn.attention_heads=2",
    "--set",
    "controller.total_timesteps=2048",
    "--no-progress",
]


def _controller_steps(out) -> list[int]:
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    rows = [json.loads(line) for line in lines if line]
    return [r["step"] for r in rows if r.get("phase") == "controller"]


class _StopAt(RunIO):
    """A RunIO whose log stops the run (as a kill would) when the controller
    reaches update ``stop_at``, before that update's checkpoint is written."""

    def __init__(self, stop_at: int | None = None, logged=None, **kwargs):
        super().__init__(**kwargs)
        self.stop_at, self.logged = stop_at, [] if logged is None else logged

    def log(self, phase, step, metrics, **extra):
        if step == self.stop_at:
            raise KeyboardInterrupt(f"stopped at update {step}")
        self.logged.append(step)
        super().log(phase, step, metrics, **extra)


def _controller_phase(run_dir, **io_fields) -> WorldModelAgent:
    """Returns the agent after 4 controller updates on gymnax CartPole with the
    attention memory, M refreshed from the replay and half of C's batch dreamed,
    a checkpoint after every update."""
    agent = WorldModelAgent(
        (4,),
        2,
        vae_config=VAEConfig(observation_size=4, latent_dim=3, hidden_sizes=(8,)),
        mdn_rnn_config=CONFIG,
        controller_config=NetworkConfig(layer_sizes=(8,)),
        seed=0,
    )
    trainer = WorldModelPPOTrainer(
        agent,
        "CartPole-v1",
        PPOConfig(n_epochs=1, minibatch_size=16),
        imagination_ratio=0.5,
        imagination_horizon=4,
        num_envs=2,
        sequence_length=4,
        replay_steps=40,
        updates_per_chunk=1,
        checkpoint_every=1,
        seed=0,
        io=_StopAt(run_dir=run_dir, progress=False, **io_fields),
    )
    trainer.train(total_timesteps=4 * 2 * 16, rollout_length=16)
    return agent


def test_a_controller_phase_stopped_after_a_checkpoint_resumes_bit_exactly(tmp_path):
    whole = _controller_phase(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt, match="update 3"):
        _controller_phase(tmp_path / "stopped", stop_at=3)
    with PhaseCheckpoints(tmp_path / "stopped" / "checkpoints" / "controller") as c:
        assert c.latest_step() == 2
    logged = []
    resumed = _controller_phase(tmp_path / "stopped", resume=True, logged=logged)
    assert logged == [3, 4]  # it went on from update 2's checkpoint
    for x, y in zip(
        jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_a_run_killed_mid_controller_resumes_bit_exactly(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    subprocess.run([*TRAIN, "--out", str(whole)], check=True)
    # the replay (and in it M's key/value caches) is in the checkpoint
    _kill_when(
        [*TRAIN, "--out", str(killed)],
        lambda: any(step >= 12 for step in _controller_steps(killed)),
        "kill",
    )
    assert max(_controller_steps(killed)) < 32
    subprocess.run([*TRAIN, "--out", str(killed), "--resume"], check=True)
    a, b = load_agent(whole), load_agent(killed)
    assert a.mdn_rnn.config.rnn_type == "transformer"
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    summaries = [json.loads((d / "summary.json").read_text()) for d in (whole, killed)]
    assert summaries[0]["eval_return_mean"] == summaries[1]["eval_return_mean"]


def test_heads_that_do_not_divide_the_width_are_refused_by_name():
    with pytest.raises(ValueError, match=r"attention_heads=3.*divide hidden_dim=8"):
        MDNRNNConfig(hidden_dim=8, attention_heads=3, rnn_type="transformer")
    MDNRNNConfig(hidden_dim=8, attention_heads=3)  # unused by an LSTM: no matter
