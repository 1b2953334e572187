"""fit.py: ``fit_chunk`` against Adam written out by hand in NumPy on least
squares (the epoch schedule is tested in test_blocks.py)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from janus_jax import optim
from janus_jax.train import fit

LR = 0.05
B1, B2, EPS = 0.9, 0.999, 1e-8


# -- fit_chunk on least squares -----------------------------------------------------


def _ls_loss(params, batch, key):
    del key
    x, y = batch
    residual = x @ params["w"] + params["b"] - y
    loss = jnp.mean(residual**2)
    return loss, {"loss": loss}


def _ls_grads(params, x, y):
    """Hand-derived gradient of mean((x w + b - y)^2), in float64."""
    residual = x @ params["w"] + params["b"] - y
    return {
        "w": 2.0 * x.T @ residual / len(y),
        "b": np.asarray(2.0 * residual.mean()),
    }, float(np.mean(residual**2))


def _norm(tree):
    return float(np.sqrt(sum(np.sum(np.square(v)) for v in tree.values())))


def _numpy_adam(params, batches, lr, clip=None):
    """Adam (optax's defaults, eps_root 0) written out; returns (params, mean loss,
    mean unclipped grad norm) after one step per batch."""
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    losses, norms = [], []
    xs, ys = batches
    for t, (x, y) in enumerate(zip(xs, ys, strict=True), start=1):
        grads, loss = _ls_grads(params, x.astype(np.float64), y.astype(np.float64))
        losses.append(loss)
        norm = _norm(grads)
        norms.append(norm)
        if clip is not None and norm > clip:
            grads = {k: g * clip / norm for k, g in grads.items()}
        for k in params:
            m[k] = B1 * m[k] + (1 - B1) * grads[k]
            v[k] = B2 * v[k] + (1 - B2) * grads[k] ** 2
            m_hat = m[k] / (1 - B1**t)
            v_hat = v[k] / (1 - B2**t)
            params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + EPS)
    return params, np.mean(losses), np.mean(norms)


def _problem(steps, batch_size=8, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, batch_size, dim)).astype(np.float32)
    w_true = np.array([1.5, -2.0, 0.5], np.float32)[:dim]
    y = (x @ w_true + 0.3 + 0.1 * rng.normal(size=(steps, batch_size))).astype(
        np.float32
    )
    params = {"w": np.array([0.2, 0.1, -0.3], np.float32)[:dim], "b": np.float32(0.0)}
    return params, (x, y)


def _state(params, optimizer, seed=0):
    params = jax.tree.map(jnp.asarray, params)
    return optim.init_train_state(params, optimizer, jax.random.key(seed))


class FitChunkTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_k_steps_equal_adam_written_out(self):
        params0, batches = _problem(steps=5)
        optimizer = optim.make_optimizer(LR, None)
        chunk = self.variant(
            lambda s, b: fit.fit_chunk(s, b, loss_fn=_ls_loss, optimizer=optimizer)
        )
        state, metrics = chunk(_state(params0, optimizer), batches)
        want, want_loss, want_norm = _numpy_adam(params0, batches, LR)
        for k in want:
            np.testing.assert_allclose(state.params[k], want[k], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(metrics["loss"], want_loss, rtol=1e-5)
        np.testing.assert_allclose(metrics["grad_norm"], want_norm, rtol=1e-5)
        assert int(state.step) == 5
        # the fit moved the params (a chunk that did nothing would fail here)
        assert np.abs(np.asarray(state.params["w"]) - params0["w"]).max() > 0.1

    @chex.variants(with_jit=True, without_jit=True)
    def test_clipping_reports_the_unclipped_norm_and_updates_on_clipped_grads(self):
        clip = 1e-3
        params0, batches = _problem(steps=3, seed=1)
        optimizer = optim.make_optimizer(LR, clip)
        chunk = self.variant(
            lambda s, b: fit.fit_chunk(s, b, loss_fn=_ls_loss, optimizer=optimizer)
        )
        first = jax.tree.map(lambda x: x[:1], batches)
        state1, metrics1 = chunk(_state(params0, optimizer), first)
        grads, _ = _ls_grads(
            {k: np.float64(v) for k, v in params0.items()},
            batches[0][0].astype(np.float64),
            batches[1][0].astype(np.float64),
        )
        norm = _norm(grads)
        assert norm > 100 * clip  # the clip is active
        np.testing.assert_allclose(metrics1["grad_norm"], norm, rtol=1e-5)
        # Adam's first step moves each coordinate by at most the learning rate
        delta = np.concatenate(
            [np.ravel(state1.params[k] - params0[k]) for k in ("w", "b")]
        )
        assert np.all(np.abs(delta) <= LR * (1 + 1e-5))

        state, metrics = chunk(_state(params0, optimizer), batches)
        clipped, _, want_norm = _numpy_adam(params0, batches, LR, clip=clip)
        unclipped, _, _ = _numpy_adam(params0, batches, LR)
        for k in clipped:
            np.testing.assert_allclose(
                state.params[k], clipped[k], rtol=1e-5, atol=1e-5
            )
        np.testing.assert_allclose(metrics["grad_norm"], want_norm, rtol=1e-5)
        # the two references differ enough that the check above can tell them apart
        assert np.abs(clipped["w"] - unclipped["w"]).max() > 1e-3


def test_zero_max_grad_norm_disables_clipping():
    # WorldModelTrainingConfig documents max_grad_norm=0 as "disabled"
    params0, batches = _problem(steps=3)
    optimizer = optim.make_optimizer(LR, 0.0)
    state, _ = fit.fit_chunk(
        _state(params0, optimizer), batches, loss_fn=_ls_loss, optimizer=optimizer
    )
    want, _, _ = _numpy_adam(params0, batches, LR)
    for k in want:
        np.testing.assert_allclose(state.params[k], want[k], rtol=1e-5, atol=1e-5)


def test_accumulation_is_one_adam_step_on_the_mean_gradient():
    params0, batches = _problem(steps=2, seed=2)
    optimizer = optim.make_optimizer(LR, None, accumulation_steps=2)
    state0 = _state(params0, optimizer)

    def run(state, k):
        part = jax.tree.map(lambda x: x[k : k + 1], batches)
        return fit.fit_chunk(state, part, loss_fn=_ls_loss, optimizer=optimizer)[0]

    state1 = run(state0, 0)
    # the first micro-batch only accumulates
    for k in params0:
        np.testing.assert_array_equal(state1.params[k], params0[k])
    state2 = run(state1, 1)
    assert int(state2.step) == 2

    # reference: both gradients at the initial params, averaged, one optax.adam step
    p64 = {k: np.float64(v) for k, v in params0.items()}
    g = [_ls_grads(p64, batches[0][i], batches[1][i])[0] for i in range(2)]
    mean = {k: np.float32((g[0][k] + g[1][k]) / 2) for k in p64}
    adam = optax.adam(LR)
    params = jax.tree.map(jnp.asarray, params0)
    updates, _ = adam.update(mean, adam.init(params), params)
    want = optax.apply_updates(params, updates)
    for k in want:
        np.testing.assert_allclose(state2.params[k], want[k], rtol=1e-5, atol=1e-7)
    # and it is not two plain Adam steps
    two_steps, _, _ = _numpy_adam(params0, batches, LR)
    assert np.abs(two_steps["w"] - np.asarray(want["w"])).max() > 1e-3


def _noise_loss(params, batch, key):
    del batch
    noise = jax.random.normal(key, params.shape)
    loss = jnp.sum(params * noise)
    return loss, {"loss": loss}


def test_step_keys_are_fold_in_of_the_step_and_chunks_resume():
    # With SGD at rate 1 on loss <w, noise(key)>, the params record each step's
    # noise, so they show which key every step used.
    sgd = optax.sgd(1.0)
    key = jax.random.key(42)
    state0 = optim.init_train_state(jnp.zeros(4), sgd, key)
    batches = jnp.zeros((5, 1))
    state, _ = fit.fit_chunk(state0, batches, loss_fn=_noise_loss, optimizer=sgd)
    want = -sum(
        np.asarray(jax.random.normal(jax.random.fold_in(key, k), (4,)))
        for k in range(5)
    )
    np.testing.assert_allclose(state.params, want, rtol=1e-5, atol=1e-5)

    # two chunks of 2 and 3 steps = one chunk of 5 (the state alone decides)
    half, _ = fit.fit_chunk(state0, batches[:2], loss_fn=_noise_loss, optimizer=sgd)
    rest, _ = fit.fit_chunk(half, batches[2:], loss_fn=_noise_loss, optimizer=sgd)
    np.testing.assert_allclose(rest.params, state.params, rtol=1e-6, atol=1e-6)
    assert int(rest.step) == 5


def test_a_jitted_chunk_compiles_once_for_same_shapes():
    params0, batches = _problem(steps=4)
    optimizer = optim.make_optimizer(LR, 1.0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def chunk(state, batches):
        return fit.fit_chunk(state, batches, loss_fn=_ls_loss, optimizer=optimizer)

    state = _state(params0, optimizer)
    state, _ = chunk(state, batches)
    state, _ = chunk(state, jax.tree.map(lambda x: x + 1, batches))
    assert int(state.step) == 8
    # a new shape retraces, so the counter above does count
    with pytest.raises(AssertionError):
        chunk(state, jax.tree.map(lambda x: x[:2], batches))
