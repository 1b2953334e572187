"""The default V and M for an observation shape and an action space: the one
place they are derived (the agent, the world-model trainer, a run's config and
``--env`` all ask here)."""

from __future__ import annotations

from janus_jax.config.conv_sizes import min_image_size
from janus_jax.config.models import (
    ActionSpec,
    MDNRNNConfig,
    VAEConfig,
    check_compatible,
)


def default_vae_config(observation_shape: tuple[int, ...]) -> VAEConfig:
    """Returns the default VAEConfig for observations of this shape: an MLP V for
    vectors; for images the paper's convolutions, as many of them as the image
    takes (64x64: all four; MinAtar's 10x10: the first two, (32, 64))."""
    shape = tuple(int(s) for s in observation_shape)
    if len(shape) == 1:
        return VAEConfig(observation_size=shape[0])
    if len(shape) != 3:
        raise ValueError(
            f"observation_shape={shape} is invalid: must be (size,) for vectors or "
            "(height, width, channels) for images"
        )
    height, width, channels = shape
    paper = VAEConfig.hidden_channels
    layers = [
        n for n in range(1, len(paper) + 1) if min_image_size(n) <= min(shape[:2])
    ]
    if not layers:
        raise ValueError(
            f"observation_shape={shape} is too small for V's 4x4 convolutions: "
            f"images need at least {min_image_size(1)} pixels a side"
        )
    return VAEConfig(
        input_height=height,
        input_width=width,
        input_channels=channels,
        hidden_channels=paper[: layers[-1]],
    )


def default_mdn_rnn_config(vae_config: VAEConfig, action_dim: int) -> MDNRNNConfig:
    """Returns the default MDNRNNConfig for V's latents and actions of
    ``action_dim`` (their size, or the number of discrete actions)."""
    return MDNRNNConfig(latent_dim=vae_config.latent_dim, action_dim=int(action_dim))


def default_configs(
    observation_shape: tuple[int, ...],
    action: ActionSpec,
    vae_config: VAEConfig | None = None,
    mdn_rnn_config: MDNRNNConfig | None = None,
) -> tuple[VAEConfig, MDNRNNConfig]:
    """Returns (V's config, M's config): the given ones, or the defaults for
    ``observation_shape`` and ``action`` where None. Raises ValueError when a
    given V takes another shape, or V, M and the actions disagree on sizes."""
    shape = tuple(int(s) for s in observation_shape)
    if vae_config is None:
        vae_config = default_vae_config(shape)
    elif vae_config.observation_shape != shape:
        raise ValueError(
            "vae_config expects observations of shape "
            f"{vae_config.observation_shape}, but observation_shape={shape}"
        )
    if mdn_rnn_config is None:
        mdn_rnn_config = default_mdn_rnn_config(vae_config, action.dim)
    check_compatible(vae_config, mdn_rnn_config, action)
    return vae_config, mdn_rnn_config
