"""A rollout dataset ready for V and M, one shard at a time: its frames, and its
episodes cut into M's training ``Windows`` of latents encoded by V.

Each shard is one ``blocks.Source``: V's source loads its frames in the stored
dtype (uint8 pixels take a quarter of float32); M's loads the shard's latents,
which ``encode_dataset`` wrote beside the run (V's posterior means, 128 bytes a
frame at Z=32 against 12 kB for 64x64x3 pixels), and cuts them into windows.
``BlockStream`` decides how many shards are in memory at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax.config.models import ActionSpec
from janus_jax.config.tasks import TaskSlot
from janus_jax.data import RolloutDataset
from janus_jax.data.blocks import Source
from janus_jax.models import controller, vae
from janus_jax.records import Windows
from janus_jax.run.files import atomic_write


def shard_windows(
    frames: np.ndarray,
    lengths: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminated: np.ndarray,
    length: int,
) -> Windows:
    """Returns one shard's episodes cut into Windows of ``length`` steps.

    frames: one row per stored observation [sum(T_e + 1), ...], the observations
    or V's latents of them; lengths: ``episode_lengths`` [E]; actions, rewards,
    terminated: the step arrays [sum T_e]. A window starts at steps 0, L, 2L...
    of each episode and the last one of an episode is padded (mask 0, rows
    clipped to the episode's end), so no window mixes two episodes. Actions stay
    as stored; dones are terminations (not truncations)."""
    rows, acts, rews, dones, mask = [], [], [], [], []
    step0 = obs0 = 0
    for steps in np.asarray(lengths).tolist():
        for start in range(0, steps, length):
            t = np.arange(start, start + length)
            valid = t < steps
            clipped = step0 + np.minimum(t, steps - 1)
            rows.append(obs0 + np.minimum(np.arange(start, start + length + 1), steps))
            acts.append(actions[clipped])
            rews.append(np.where(valid, rewards[clipped], 0.0))
            dones.append(np.where(valid, terminated[clipped], False))
            mask.append(valid)
        step0 += steps
        obs0 += steps + 1
    f32 = lambda parts: np.stack(parts).astype(np.float32)  # noqa: E731
    return Windows(
        obs=frames[np.stack(rows)],
        actions=np.stack(acts),
        rewards=f32(rews),
        dones=f32(dones),
        mask=f32(mask),
    )


def num_windows(lengths: np.ndarray, length: int) -> int:
    """Returns how many windows ``shard_windows`` cuts episodes [E] into."""
    return int(sum(-(-int(t) // length) for t in np.asarray(lengths)))


def frame_stats(parts: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Returns the per-dimension mean and std [O] of vector frames given in parts
    [N_i, O] (one shard at a time), merged exactly as one pass would compute them
    (Chan et al.'s pairwise update, in float64)."""
    count, mean, m2 = 0, np.zeros(()), np.zeros(())
    for part in parts:
        x = np.asarray(part, np.float64)
        if len(x) == 0:
            continue
        n, part_mean = len(x), x.mean(axis=0)
        delta, total = part_mean - mean, count + len(x)
        m2 = m2 + ((x - part_mean) ** 2).sum(axis=0) + delta**2 * count * n / total
        mean, count = mean + delta * n / total, total
    if count == 0:
        raise ValueError("frame_stats: no frames were given")
    return mean.astype(np.float32), np.sqrt(m2 / count).astype(np.float32)


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


def encode_actions(
    windows: Windows, action: ActionSpec, task: TaskSlot | None = None
) -> Windows:
    """Returns the windows with their actions as M's float vectors [W, L, A]
    (one-hot for discrete actions; in ``task``'s slot of a shared M's vector)."""
    actions = controller.encode_action(action, jnp.asarray(windows.actions), task)
    return windows._replace(actions=np.asarray(actions))


def frame_sources(dataset: RolloutDataset) -> list[Source]:
    """Returns one source per shard of ``dataset``: its observations [N_i, ...]
    (final ones included) in the stored dtype, for V."""
    if dataset.num_steps == 0:
        raise ValueError(f"the dataset at {dataset.path} holds no episodes")
    frame_bytes = math.prod(dataset.observation_shape)
    frame_bytes *= dataset.observation_dtype.itemsize
    sources = []
    for index, entry in enumerate(dataset.manifest["shards"]):
        frames = entry["steps"] + entry["episodes"]
        load = functools.partial(dataset.column, index, "obs")
        sources.append(Source(frames, frames * frame_bytes, load))
    return sources


def latent_file(directory: Path, entry: dict) -> Path:
    """Returns where ``encode_dataset`` keeps the latents of shard ``entry``."""
    return Path(directory) / (Path(entry["file"]).stem + ".latents.npz")


def encode_dataset(
    params: vae.VAEParams, dataset: RolloutDataset, directory: Path
) -> None:
    """Writes V's latents of every shard's frames, [N_i, Z] float32 with the
    shard's episode lengths, to ``latent_file(directory, shard)`` (each file all
    or nothing), holding one shard's frames in memory at a time."""
    for index, entry in enumerate(dataset.manifest["shards"]):
        latents = encode_frames(params, dataset.column(index, "obs"))
        lengths = dataset.column(index, "episode_lengths")
        atomic_write(
            latent_file(directory, entry),
            lambda f, z=latents, n=lengths: np.savez(f, latents=z, episode_lengths=n),
        )


def window_sources(
    dataset: RolloutDataset,
    directory: Path,
    length: int,
    action: ActionSpec,
    latent_dim: int,
    task: TaskSlot | None = None,
) -> list[Source]:
    """Returns one source per shard: its Windows of ``length`` steps for M
    (latents and action vectors, in ``task``'s slot of a shared M's), from the
    latents ``encode_dataset`` wrote in ``directory``."""
    width = action.dim if task is None else task.size
    per_window = (length + 1) * latent_dim + length * (width + 3)
    sources = []
    for index, entry in enumerate(dataset.manifest["shards"]):
        file = latent_file(directory, entry)
        with np.load(file, allow_pickle=False) as npz:  # reads only the lengths
            windows = num_windows(npz["episode_lengths"], length)
        load = functools.partial(
            _load_windows, dataset, index, file, length, action, task
        )
        sources.append(Source(windows, windows * per_window * 4, load))
    return sources


def _load_windows(
    dataset: RolloutDataset,
    index: int,
    file: Path,
    length: int,
    action: ActionSpec,
    task: TaskSlot | None,
) -> Windows:
    with np.load(file, allow_pickle=False) as npz:
        latents, lengths = npz["latents"], npz["episode_lengths"]
    columns = (dataset.column(index, n) for n in ("actions", "rewards", "terminated"))
    windows = shard_windows(latents, lengths, *columns, length)
    return encode_actions(windows, action, task)
