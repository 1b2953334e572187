"""Pixel preprocessing shared by every image environment: crop, resize, uint8."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


def as_size(size) -> tuple[int, int]:
    """Returns ``size`` as a hashable (height, width); raises ValueError if bad."""
    ok = isinstance(size, (tuple, list)) and len(size) == 2
    ok = ok and all(isinstance(s, (int, np.integer)) and s >= 1 for s in size)
    if not ok:
        raise ValueError(
            f"size={size!r} is invalid: must be (height, width), integers >= 1"
        )
    return tuple(int(s) for s in size)


def as_crop(crop) -> tuple[int, int, int, int] | None:
    """Returns ``crop`` as a hashable (top, bottom, left, right) or None."""
    if crop is None:
        return None
    ok = isinstance(crop, (tuple, list)) and len(crop) == 4
    ok = ok and all(isinstance(c, (int, np.integer)) and c >= 0 for c in crop)
    if not ok:
        raise ValueError(
            f"crop={crop!r} is invalid: must be (top, bottom, left, right) pixel "
            "counts >= 0"
        )
    return tuple(int(c) for c in crop)


def cropped_shape(
    frame_shape: tuple[int, ...], crop: tuple[int, int, int, int] | None
) -> tuple[int, int]:
    """Returns (h, w) left of an (H, W, C) frame after ``crop``; checks it is > 0."""
    height, width = frame_shape[-3], frame_shape[-2]
    if crop is None:
        return height, width
    top, bottom, left, right = crop
    h, w = height - top - bottom, width - left - right
    if h < 1 or w < 1:
        raise ValueError(
            f"crop={crop} (top, bottom, left, right) leaves no pixels of a "
            f"{height}x{width} frame"
        )
    return h, w


@partial(jax.jit, static_argnames=("size", "crop"))
def _preprocess(frames: jax.Array, size, crop) -> jax.Array:
    h, w = cropped_shape(frames.shape, crop)
    if crop is not None:
        top, _, left, _ = crop
        frames = frames[..., top : top + h, left : left + w, :]
    if (h, w) == size:
        return frames  # nothing to interpolate: keep the pixels bit for bit
    resized = jax.image.resize(
        frames.astype(jnp.float32),
        frames.shape[:-3] + size + frames.shape[-1:],
        method="linear",
        # Anti-aliasing averages every source pixel when shrinking, as PIL does;
        # without it thin features (the track's edge, a lander leg) flicker.
        antialias=True,
    )
    # Round, not truncate: a constant 200 must stay 200, not become 199.
    return jnp.clip(jnp.round(resized), 0, 255).astype(jnp.uint8)


def preprocess_frames(
    frames: jax.Array,
    size: tuple[int, int] = (64, 64),
    crop: tuple[int, int, int, int] | None = None,
) -> jax.Array:
    """Returns frames cropped then resized: uint8 ``[..., h, w, C]``.

    frames: uint8 ``[..., H, W, C]``, any leading batch shape.
    size: the output (h, w); bilinear with anti-aliasing, rounded to nearest.
    crop: (top, bottom, left, right) pixels removed before resizing, e.g.
        CarRacing's dashboard is ``(0, 12, 0, 0)``.

    Pure and compiled once per input shape, size and crop.
    """
    if frames.ndim < 3 or np.dtype(frames.dtype) != np.uint8:
        raise ValueError(
            f"frames of shape {frames.shape} and dtype {frames.dtype} are invalid: "
            "must be uint8 [..., height, width, channels]"
        )
    crop = as_crop(crop)
    cropped_shape(frames.shape, crop)  # fail here, not inside the trace
    return _preprocess(frames, as_size(size), crop)
