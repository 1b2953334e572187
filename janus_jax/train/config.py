"""Training configs: the world model's phases and the controller's, validated like
the model configs (a bad value raises ValueError naming the field)."""

from __future__ import annotations

import dataclasses

import jax

from janus_jax.configs import (
    MDNRNNConfig,
    VAEConfig,
    _fail,
    _in_range,
    _non_negative,
    _positive_int,
)

DEVICES = ("auto", "cpu", "cuda", "gpu", "tpu")


def check_device(device: str) -> None:
    """Raises ValueError unless ``device`` is "auto" or JAX's backend is that kind.

    JAX places arrays on its default backend; install ``jax[cuda12]`` for a GPU
    (``device="cuda"`` only checks that one is there, as the seed's trainer did)."""
    wanted = {"cuda": "gpu"}.get(device, device)
    if device != "auto" and jax.default_backend() != wanted:
        raise ValueError(
            f"device={device!r} is unavailable: JAX runs on "
            f"{jax.default_backend()!r} here (install jax[cuda12] for a GPU, or "
            "pass device='auto')"
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorldModelTrainingConfig:
    """Random-policy collection, then V, then M (see ``WorldModelTrainer``)."""

    num_episodes: int = 1000
    """Episodes of a uniformly random policy to collect."""
    vae_epochs: float = 30
    """Passes of V over every frame of the dataset (fractions allowed)."""
    mdn_epochs: float = 50
    """Passes of M over every window of the dataset (fractions allowed)."""
    vae_batch_size: int = 32
    """Frames per V gradient step (per micro-batch with accumulation)."""
    mdn_batch_size: int = 16
    """Windows per M gradient step (per micro-batch with accumulation)."""
    vae_learning_rate: float = 1e-3
    """Adam step size of V."""
    mdn_learning_rate: float = 1e-3
    """Adam step size of M."""
    sequence_length: int = 32
    """Steps per M training window (episodes are cut, never mixed)."""
    max_grad_norm: float = 1.0
    """Global-norm gradient clipping of V and M (0 disables it)."""
    gradient_accumulation_steps: int = 1
    """Micro-batches averaged per optimiser step (optax.MultiSteps)."""
    collect_envs: int = 8
    """Parallel envs during collection."""
    chunk_steps: int = 200
    """Gradient steps per compiled chunk (a log line and progress update each)."""
    checkpoint_every: int = 5
    """Chunks between checkpoints (a phase also saves when it ends)."""
    vae: VAEConfig | None = None
    """V's architecture; None derives one from the env's observation shape."""
    mdn_rnn: MDNRNNConfig | None = None
    """M's architecture; None derives one from V's latent and the env's actions."""
    seed: int = 0
    """Seed of collection, initialisation and batch order."""
    device: str = "auto"
    """Accepted for the PyTorch README's configs: JAX uses its default backend."""

    def __post_init__(self):
        for field in (
            "num_episodes",
            "vae_batch_size",
            "mdn_batch_size",
            "sequence_length",
            "gradient_accumulation_steps",
            "collect_envs",
            "chunk_steps",
            "checkpoint_every",
        ):
            _positive_int(self, field)
        for field in ("vae_epochs", "mdn_epochs", "max_grad_norm", "seed"):
            _non_negative(self, field)
        for field in ("vae_learning_rate", "mdn_learning_rate"):
            _in_range(self, field, 1e-12, 10.0)
        if self.device not in DEVICES:
            _fail(
                type(self).__name__, "device", self.device, f"must be one of {DEVICES}"
            )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ControllerTrainingConfig:
    """C's PPO phase on real and dreamed experience (see ``WorldModelPPOTrainer``)."""

    total_timesteps: int = 500_000
    """Real env steps of the phase (rounded up to whole chunks)."""
    rollout_length: int = 128
    """Steps per env per update."""
    num_envs: int = 4
    """Parallel real envs."""
    imagination_ratio: float = 0.5
    """Share of dreamed transitions in each PPO batch (0: plain PPO on [z, h]; 1:
    C learns only inside the dream, real rollouts giving dream starts and M data)."""
    imagination_horizon: int = 16
    """Steps per dream."""
    temperature: float | None = None
    """M's sampling temperature in dreams (None: the MDN-RNN config's)."""
    world_model_updates: int = 4
    """M gradient steps on each fresh real rollout (0 freezes the world model)."""
    sequence_length: int = 32
    """Steps per window of M's refresh."""
    updates_per_chunk: int = 10
    """PPO updates per compiled chunk."""
    checkpoint_every: int = 5
    """Chunks between checkpoints."""
    eval_episodes: int = 32
    """Episodes of the final evaluation (and of the random baseline)."""
    use_tensorboard: bool = False
    """Also write TensorBoard event files (run_dir/tensorboard)."""
    seed: int = 0
    """Seed of the phase."""

    def __post_init__(self):
        for field in (
            "total_timesteps",
            "rollout_length",
            "num_envs",
            "imagination_horizon",
            "sequence_length",
            "updates_per_chunk",
            "checkpoint_every",
            "eval_episodes",
        ):
            _positive_int(self, field)
        _in_range(self, "imagination_ratio", 0.0, 1.0)
        _non_negative(self, "world_model_updates")
        _non_negative(self, "seed")
        if self.temperature is not None:
            _non_negative(self, "temperature")
