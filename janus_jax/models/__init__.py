"""V, M and C as pure functions over explicit parameter pytrees."""

from janus_jax.models import controller, mdn_rnn, vae

__all__ = ["controller", "mdn_rnn", "vae"]
