"""``check_device``: the ``device=`` of the seed's PyTorch API, checked and warned
about. JAX places arrays on its default backend whatever is asked, so a pasted
``device="cuda"`` still runs on a CPU-only machine; it warns instead of failing.

Below the configs and the agent (both call it); it imports only JAX, and asks JAX
for its backend only when a device other than "auto" is named."""

from __future__ import annotations

import warnings

import jax

DEVICES = ("auto", "cpu", "cuda", "gpu", "tpu")


def check_device(device: str, *, where: str = "device", stacklevel: int = 3) -> None:
    """Returns None; raises ValueError unless ``device`` is one of DEVICES, and warns
    when it names a kind that is not JAX's backend here. ``where`` names the field
    in the messages; ``stacklevel`` 3 points the warning at the line that called
    the function that called this one (the user's constructor call)."""
    if not isinstance(device, str) or device not in DEVICES:
        raise ValueError(f"{where}={device!r} is invalid: must be one of {DEVICES}")
    if device == "auto":
        return
    backend = jax.default_backend()
    if backend != {"cuda": "gpu"}.get(device, device):
        warnings.warn(
            f"{where}={device!r} is not JAX's backend here: JAX will run on its "
            f"default backend, {backend!r}. For an NVIDIA GPU, pip install "
            "'jax[cuda12]'; device='auto' silences this warning",
            stacklevel=stacklevel,
        )
