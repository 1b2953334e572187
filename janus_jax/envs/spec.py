"""What every environment tells the world model: shapes, dtypes, actions.

``EnvSpec`` is shared by the on-device gymnax envs and the gymnasium adapter, so
the code above ``envs/`` never asks which family it is talking to.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from janus_jax.config.models import ActionSpec, VAEConfig

FAMILIES = ("gymnax", "gymnasium")
OBSERVATION_DTYPES = ("uint8", "float32")


@dataclasses.dataclass(frozen=True, kw_only=True)
class EnvSpec:
    """An environment's observations (after preprocessing) and actions."""

    env_id: str
    """The registered id, e.g. "CarRacing-v3" or "Breakout-MinAtar"."""
    family: str
    """"gymnax" (pure JAX, on device) or "gymnasium" (CPU, stateful)."""
    observation_shape: tuple[int, ...]
    """One observation's shape: (size,) for vectors, (H, W, C) for images."""
    observation_dtype: str
    """"uint8" for pixels in [0, 255], "float32" for everything else."""
    action: ActionSpec
    """Discrete actions are integers in [0, action.dim)."""
    on_device: bool
    """True when reset/step are pure JAX functions (jit/vmap/scan-able)."""
    max_episode_steps: int | None
    """The time limit after which episodes are truncated (None: none known)."""

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(
                f"EnvSpec.family={self.family!r} is invalid: must be one of {FAMILIES}"
            )
        if self.observation_dtype not in OBSERVATION_DTYPES:
            raise ValueError(
                f"EnvSpec.observation_dtype={self.observation_dtype!r} is invalid: "
                f"must be one of {OBSERVATION_DTYPES}"
            )
        shape = tuple(int(s) for s in self.observation_shape)
        if len(shape) not in (1, 3) or min(shape) < 1:
            raise ValueError(
                f"EnvSpec.observation_shape={self.observation_shape!r} is invalid: "
                "must be (size,) or (height, width, channels) with sizes >= 1"
            )
        object.__setattr__(self, "observation_shape", shape)

    @property
    def is_image(self) -> bool:
        """Returns True for channels-last (H, W, C) observations."""
        return len(self.observation_shape) == 3


def check_observation(spec: EnvSpec, vae_config: VAEConfig) -> None:
    """Returns None when V accepts the env's observations; raises ValueError if not.

    Call it before training: a mismatch otherwise surfaces as an opaque shape
    error deep inside a compiled VAE update.
    """
    want, have = vae_config.observation_shape, spec.observation_shape
    if want == have:
        return
    if spec.is_image:
        h, w, c = have
        fix = f"VAEConfig(input_height={h}, input_width={w}, input_channels={c})"
    else:
        fix = f"VAEConfig(observation_size={have[0]})"
    kind = "images" if vae_config.is_image else "vectors"
    raise ValueError(
        f"{spec.env_id} observes shape {have} ({spec.observation_dtype}), but the "
        f"VAEConfig expects {kind} of shape {want}: use {fix}"
        + (", or change the env's image_size" if spec.is_image else "")
    )


def action_shape(action: ActionSpec, num_envs: int) -> tuple[int, ...]:
    """Returns the shape of a batch of actions: [E] discrete, [E, A] continuous."""
    return (num_envs, action.dim) if action.continuous else (num_envs,)


def random_actions(key: jax.Array, action: ActionSpec, num_envs: int) -> jax.Array:
    """Returns uniform random actions: [E] int32 or [E, A] float32 within bounds."""
    if action.continuous:
        return jax.random.uniform(
            key,
            action_shape(action, num_envs),
            minval=jnp.asarray(action.low, jnp.float32),
            maxval=jnp.asarray(action.high, jnp.float32),
        )
    return jax.random.randint(key, (num_envs,), 0, action.dim, dtype=jnp.int32)
