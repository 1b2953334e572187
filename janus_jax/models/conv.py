"""V's strided "VALID" convolutions, written as matrix products where that is faster.

XLA's CPU backend runs convolutions, and above all their weight gradients and
transposed convolutions, at a few GFLOP/s, and slower still inside a ``lax.scan``
(see benchmarks/README.md). The same layers written as one matrix product each
(im2col for the convolution, the sub-pixel form for the transposed one) run at
matmul speed, forward and backward, inside a scan or not. On GPU and TPU the
backend's own convolutions are the fast path, so ``lowering="auto"`` picks the
matmul form on CPU only. Both forms compute the same function of the same
parameters (``nn.Conv`` / ``nn.ConvTranspose`` with ``padding="VALID"``), so a
checkpoint trained on one backend loads and runs on another.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

LOWERINGS = ("auto", "matmul", "xla")
_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _use_matmul(lowering: str) -> bool:
    if lowering not in LOWERINGS:
        raise ValueError(
            f"lowering={lowering!r} is invalid: must be one of {LOWERINGS}"
        )
    return lowering == "matmul" or (
        lowering == "auto" and jax.default_backend() == "cpu"
    )


def conv_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Returns the VALID convolution [..., Ho, Wo, O] of x [..., H, W, C] by kernel
    [k, k, C, O] with ``stride``, as one matmul over im2col patches."""
    k = kernel.shape[0]
    height, width = x.shape[-3:-1]
    out_h, out_w = (height - k) // stride + 1, (width - k) // stride + 1
    span_h, span_w = stride * (out_h - 1) + 1, stride * (out_w - 1) + 1
    # Patch features in (row tap, column tap, channel) order, the kernel's HWI order.
    patches = jnp.concatenate(
        [
            x[..., i : i + span_h : stride, j : j + span_w : stride, :]
            for i in range(k)
            for j in range(k)
        ],
        axis=-1,
    )
    return patches @ kernel.reshape(-1, kernel.shape[-1])


def conv_transpose_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Returns flax's VALID transposed convolution [..., (H-1)s+k, (W-1)s+k, O] of
    x [..., H, W, C] by kernel [k, k, C, O] (k a multiple of the stride s), as one
    matmul in sub-pixel form.

    Output row s*m + r (0 <= r < s) collects x rows m + d - (n - 1) through kernel
    rows s*d + s - 1 - r for d < n = k / s: every output phase (r, r') is a small
    stride-1 convolution over x padded by n - 1, all phases from one matmul whose
    result is interleaved back into the image (depth-to-space).
    """
    k, s = kernel.shape[0], stride
    if k % s:
        raise ValueError(f"kernel size {k} must be a multiple of the stride {s}")
    n = k // s
    batch = x.shape[:-3]
    height, width, channels = x.shape[-3:]
    out_channels = kernel.shape[-1]
    pad = [(0, 0)] * len(batch) + [(n - 1, n - 1), (n - 1, n - 1), (0, 0)]
    padded = jnp.pad(x, pad)
    rows, cols = height + n - 1, width + n - 1
    patches = jnp.concatenate(
        [
            padded[..., d : d + rows, e : e + cols, :]
            for d in range(n)
            for e in range(n)
        ],
        axis=-1,
    )
    # taps[d, r] = s*d + s - 1 - r: the kernel row that output phase r takes from tap d.
    taps = s * jnp.arange(n)[:, None] + s - 1 - jnp.arange(s)[None, :]
    phased = kernel[taps[:, None, :, None], taps[None, :, None, :]]  # [n,n,s,s,C,O]
    weights = jnp.transpose(phased, (0, 1, 4, 2, 3, 5)).reshape(
        n * n * channels, s * s * out_channels
    )
    y = (patches @ weights).reshape(batch + (rows, cols, s, s, out_channels))
    y = jnp.moveaxis(y, -3, -4)  # [..., rows, s, cols, s, O]
    return y.reshape(batch + (rows * s, cols * s, out_channels))


class StridedConv(nn.Module):
    """A VALID strided convolution, or transposed convolution, with the parameters
    of ``nn.Conv`` (or ``nn.ConvTranspose``): kernel [k, k, C, O] and bias [O]."""

    features: int
    kernel_size: int
    stride: int
    transposed: bool = False
    lowering: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """Returns the layer's output [..., H', W', O] for x [..., H, W, C]."""
        k = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if _use_matmul(self.lowering):
            matmul = conv_transpose_matmul if self.transposed else conv_matmul
            return matmul(x, kernel, self.stride) + bias
        xla = lax.conv_transpose if self.transposed else lax.conv_general_dilated
        # XLA's convolutions take exactly one batch axis.
        flat = x.reshape((-1,) + x.shape[-3:])
        y = xla(
            flat, kernel, (self.stride,) * 2, "VALID", dimension_numbers=_DIMENSIONS
        )
        return y.reshape(x.shape[:-3] + y.shape[1:]) + bias
