"""V's convolutions as matrix products, against NumPy loops and flax's own layers."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.models import conv


def _numpy_conv(x, kernel, stride):
    """Direct loops: y[b, i, j, o] = sum x[b, s*i + u, s*j + v, c] K[u, v, c, o]."""
    k = kernel.shape[0]
    b, h, w, _ = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    y = np.zeros((b, oh, ow, kernel.shape[-1]))
    for i in range(oh):
        for j in range(ow):
            window = x[:, stride * i : stride * i + k, stride * j : stride * j + k, :]
            y[:, i, j] = np.einsum("buvc,uvco->bo", window, kernel)
    return y


def _numpy_conv_transpose(x, kernel, stride):
    """Scatter form of flax's VALID transposed convolution (kernel not flipped):
    input pixel p reaches output s*p + (k - 1 - u) through kernel tap u."""
    k = kernel.shape[0]
    b, h, w, _ = x.shape
    y = np.zeros((b, (h - 1) * stride + k, (w - 1) * stride + k, kernel.shape[-1]))
    for p in range(h):
        for q in range(w):
            for u in range(k):
                for v in range(k):
                    y[:, stride * p + k - 1 - u, stride * q + k - 1 - v] += (
                        x[:, p, q] @ kernel[u, v]
                    )
    return y


CASES = [  # (height, width, kernel, stride)
    (9, 9, 4, 2),
    (11, 8, 4, 2),  # odd size: the encoder's floor division drops a row
    (7, 10, 3, 1),
    (12, 13, 6, 3),
]


@pytest.mark.parametrize("height,width,k,stride", CASES)
def test_conv_matmul_matches_direct_loops(height, width, k, stride):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, height, width, 3)).astype(np.float32)
    kernel = rng.normal(size=(k, k, 3, 5)).astype(np.float32)
    got = conv.conv_matmul(jnp.asarray(x), jnp.asarray(kernel), stride)
    np.testing.assert_allclose(
        got, _numpy_conv(x, kernel, stride), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("height,width,k,stride", CASES)
def test_conv_transpose_matmul_matches_direct_scatter(height, width, k, stride):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, height // 2, width // 2, 4)).astype(np.float32)
    kernel = rng.normal(size=(k, k, 4, 3)).astype(np.float32)
    got = conv.conv_transpose_matmul(jnp.asarray(x), jnp.asarray(kernel), stride)
    want = _numpy_conv_transpose(x, kernel, stride)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("transposed", [False, True])
def test_strided_conv_is_flax_layer_with_same_parameters(transposed):
    # Same parameter names, shapes and initial values as nn.Conv / nn.ConvTranspose,
    # and the same outputs and gradients in both lowerings.
    x = jax.random.normal(jax.random.key(0), (3, 13, 12, 6))
    flax_cls = nn.ConvTranspose if transposed else nn.Conv
    reference = flax_cls(8, (4, 4), (2, 2), padding="VALID")
    ref_params = reference.init(jax.random.key(1), x)
    layers = {
        lowering: conv.StridedConv(8, 4, 2, transposed=transposed, lowering=lowering)
        for lowering in ("matmul", "xla")
    }
    params = layers["matmul"].init(jax.random.key(1), x)
    chex.assert_trees_all_equal(params, ref_params)
    want = reference.apply(ref_params, x)

    def loss(layer, p):
        return jnp.sum(jnp.sin(layer.apply(p, x)))

    want_grad = jax.grad(lambda p: jnp.sum(jnp.sin(reference.apply(p, x))))(params)
    for layer in layers.values():
        np.testing.assert_allclose(layer.apply(params, x), want, rtol=1e-5, atol=1e-5)
        grad = jax.grad(lambda p, layer=layer: loss(layer, p))(params)
        jax.tree.map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4),
            grad,
            want_grad,
        )


@pytest.mark.parametrize("lowering", ["matmul", "xla"])
def test_strided_conv_takes_any_leading_axes(lowering):
    layer = conv.StridedConv(4, 4, 2, lowering=lowering)
    x = jax.random.normal(jax.random.key(0), (2, 3, 10, 10, 2))
    params = layer.init(jax.random.key(1), x)
    batched = layer.apply(params, x)
    assert batched.shape == (2, 3, 4, 4, 4)
    np.testing.assert_allclose(layer.apply(params, x[1, 2]), batched[1, 2], atol=1e-5)


def test_bad_lowering_and_kernel_are_named():
    x = jnp.zeros((1, 8, 8, 1))
    with pytest.raises(ValueError, match="lowering='cudnn' is invalid"):
        conv.StridedConv(2, 4, 2, lowering="cudnn").init(jax.random.key(0), x)
    with pytest.raises(
        ValueError, match="kernel size 3 must be a multiple of the stride 2"
    ):
        conv.conv_transpose_matmul(x, jnp.zeros((3, 3, 1, 1)), 2)
