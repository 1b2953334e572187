"""A rollout dataset in memory, ready for V and M: frames, and the episodes cut
into M's training windows, encoded to latents by V.

Frames stay in their stored dtype (uint8 pixels take a quarter of float32) on
the host; the fitting loop gathers each chunk's rows and sends only those to the
device. Windows are index arrays into the frames, so the sequences share the
frames' memory until they are encoded.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.configs import ActionSpec
from janus_jax.data import RolloutDataset
from janus_jax.models import controller, vae


class EpisodeWindows(NamedTuple):
    """Fixed-length slices of single episodes, batch-major, as row indices."""

    obs_rows: np.ndarray  # [W, L+1] rows of the frames array (clipped at the end)
    actions: np.ndarray  # [W, L, ...] as stored
    rewards: np.ndarray  # [W, L] float32
    dones: np.ndarray  # [W, L] float32: terminated after the step (not truncated)
    mask: np.ndarray  # [W, L] float32: 1 on the episode's own steps


class Sequences(NamedTuple):
    """M's training input, batch-major (see ``mdn_rnn.loss``)."""

    latents: np.ndarray  # [W, L+1, Z]
    actions: np.ndarray  # [W, L, A] float32 (one-hot for discrete actions)
    rewards: np.ndarray  # [W, L]
    dones: np.ndarray  # [W, L]
    mask: np.ndarray  # [W, L]


class InMemoryData(NamedTuple):
    """A dataset's frames and its episodes' windows."""

    frames: np.ndarray  # [N, *obs_shape] every observation, episode after episode
    windows: EpisodeWindows


def load(dataset: RolloutDataset, length: int) -> InMemoryData:
    """Returns every frame of ``dataset`` and its episodes cut into windows of
    ``length`` steps: a window starts at steps 0, L, 2L... of each episode and the
    last one of an episode is padded (mask 0), so no window mixes two episodes."""
    frames, rows, actions, rewards, dones, mask = [], [], [], [], [], []
    offset = 0
    for obs, act, rew, terminated, _ in dataset.iter_episodes():
        steps = len(rew)
        for start in range(0, steps, length):
            t = np.arange(start, start + length)
            valid = t < steps
            clipped = np.minimum(t, steps - 1)
            rows.append(
                offset + np.minimum(np.arange(start, start + length + 1), steps)
            )
            actions.append(act[clipped])
            rewards.append(np.where(valid, rew[clipped], 0.0))
            dones.append(np.where(valid, terminated[clipped], False))
            mask.append(valid)
        frames.append(obs)
        offset += len(obs)
    if not frames:
        raise ValueError(f"the dataset at {dataset.path} holds no episodes")
    f32 = lambda parts: np.stack(parts).astype(np.float32)  # noqa: E731
    windows = EpisodeWindows(
        obs_rows=np.stack(rows),
        actions=np.stack(actions),
        rewards=f32(rewards),
        dones=f32(dones),
        mask=f32(mask),
    )
    return InMemoryData(np.concatenate(frames), windows)


def frame_stats(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns the per-dimension mean and std [O] of vector frames [N, O]."""
    data = frames.astype(np.float64)
    return data.mean(axis=0).astype(np.float32), data.std(axis=0).astype(np.float32)


_encode_batch = jax.jit(lambda params, obs: vae.get_latent(params, obs))


def encode_frames(
    params: vae.VAEParams, frames: np.ndarray, batch_size: int = 1024
) -> np.ndarray:
    """Returns V's posterior means [N, Z] of every frame, in device batches of
    ``batch_size`` (the last batch padded, so one shape compiles)."""
    out = []
    for start in range(0, len(frames), batch_size):
        batch = frames[start : start + batch_size]
        pad = batch_size - len(batch)
        if pad:
            batch = np.concatenate([batch, np.repeat(batch[-1:], pad, axis=0)])
        latents = np.asarray(_encode_batch(params, jnp.asarray(batch)))
        out.append(latents[: batch_size - pad])
    return np.concatenate(out)


def to_sequences(
    latents: np.ndarray, windows: EpisodeWindows, action: ActionSpec
) -> Sequences:
    """Returns the windows with latents [W, L+1, Z] looked up from per-frame
    latents [N, Z] and actions as M's float vectors."""
    actions = controller.encode_action(action, jnp.asarray(windows.actions))
    return Sequences(
        latents=latents[windows.obs_rows],
        actions=np.asarray(actions),
        rewards=windows.rewards,
        dones=windows.dones,
        mask=windows.mask,
    )
