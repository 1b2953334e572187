"""The VAE encoder's convolution arithmetic: which image sizes its convs accept
and what they leave (the configs' checks, the architecture picker and the VAE
module share it)."""

from __future__ import annotations

# The VAE encoder is the paper's: 4x4 convolutions with stride 2 and no padding.
CONV_KERNEL = 4
CONV_STRIDE = 2


def min_image_size(num_layers: int) -> int:
    """Returns the smallest image side that ``num_layers`` encoder convs accept."""
    size = 1
    for _ in range(num_layers):
        size = (size - 1) * CONV_STRIDE + CONV_KERNEL
    return size
