"""One shard: whole episodes concatenated in an ``.npz``, and sampling from it.

A shard of E episodes with lengths T_1..T_E (steps) holds::

    obs              [sum(T_e + 1), *observation_shape]  o_0..o_T of each episode
    actions          [sum(T_e), *action_shape]
    rewards          [sum(T_e)] float32
    terminated       [sum(T_e)] bool
    truncated        [sum(T_e)] bool
    episode_lengths  [E] int64

Episode e's steps start at ``cumsum(T)[e-1]`` and its observations at
``cumsum(T + 1)[e-1]``, so the per-episode lengths are all that is needed to
rebuild the boundaries.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from janus_jax.data.manifest import DatasetCorruptError

REWARD_DTYPE = np.dtype(np.float32)
SHARD_ARRAYS = (
    "obs",
    "actions",
    "rewards",
    "terminated",
    "truncated",
    "episode_lengths",
)


class Windows(NamedTuple):
    """A batch of fixed-length windows of consecutive steps of single episodes.

    Rows past an episode's end are zero (False for the flags) with ``mask`` 0; a
    window holds L steps and the L + 1 observations around them.
    """

    obs: np.ndarray
    """[B, L + 1, *observation_shape] o_t..o_{t+L}, in the stored dtype."""
    actions: np.ndarray
    """[B, L, *action_shape] a_t..a_{t+L-1}, in the stored dtype."""
    rewards: np.ndarray
    """[B, L] float32 r_t..r_{t+L-1}."""
    terminated: np.ndarray
    """[B, L] bool."""
    truncated: np.ndarray
    """[B, L] bool."""
    mask: np.ndarray
    """[B, L] float32: 1 on the episode's steps, 0 on the padding after its end."""
    source: np.ndarray
    """[B] int32: which dataset of a MixedDataset each row came from (0 for one)."""


def pack_episodes(episodes: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
    """Returns the shard arrays of ``episodes``, each (obs, actions, rewards,
    terminated, truncated) already validated."""
    columns = list(zip(*episodes, strict=True))
    packed = {
        name: np.concatenate(col)
        for name, col in zip(SHARD_ARRAYS[:5], columns, strict=True)
    }
    packed["episode_lengths"] = np.array([len(e[2]) for e in episodes], np.int64)
    return packed


@dataclasses.dataclass(frozen=True, eq=False)
class Shard:
    """A shard's arrays in memory with its episode boundaries."""

    name: str
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    lengths: np.ndarray
    step_starts: np.ndarray  # [E + 1]: episode e's steps are [starts[e], starts[e+1])
    obs_starts: np.ndarray  # [E + 1]: the same for its T_e + 1 observations

    @property
    def nbytes(self) -> int:
        """The shard arrays' bytes, as ``array_bytes`` counts them in the manifest
        (the O(E) boundary indices are left out)."""
        arrays = (self.obs, self.actions, self.rewards, self.terminated)
        return sum(a.nbytes for a in (*arrays, self.truncated, self.lengths))

    @property
    def num_steps(self) -> int:
        return len(self.rewards)

    @property
    def num_obs(self) -> int:
        return len(self.obs)


def array_bytes(packed: dict[str, np.ndarray]) -> int:
    """Returns the bytes the shard's arrays take in memory once loaded."""
    return sum(a.nbytes for a in packed.values())


def load_shard(path: Path, entry: dict, spec: dict) -> Shard:
    """Returns the shard at ``path`` after checking it against its manifest entry
    and the dataset's shapes and dtypes; raises DatasetCorruptError naming it."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in SHARD_ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetCorruptError(f"shard {path} cannot be read: {err}") from None
    lengths = arrays["episode_lengths"]
    steps = int(lengths.sum()) if lengths.ndim == 1 else -1
    expected = {
        "obs": ((steps + len(lengths), *spec["observation_shape"]), spec["obs_dtype"]),
        "actions": ((steps, *spec["action_shape"]), spec["action_dtype"]),
        "rewards": ((steps,), REWARD_DTYPE),
        "terminated": ((steps,), np.dtype(bool)),
        "truncated": ((steps,), np.dtype(bool)),
    }
    problems = [
        f"{name} is {arrays[name].dtype}{list(arrays[name].shape)}, "
        f"expected {dtype}{list(shape)}"
        for name, (shape, dtype) in expected.items()
        if arrays[name].shape != shape or arrays[name].dtype != dtype
    ]
    if len(lengths) != entry["episodes"] or steps != entry["steps"]:
        problems.append(
            f"it holds {len(lengths)} episodes and {steps} steps, the manifest "
            f"says {entry['episodes']} and {entry['steps']}"
        )
    if lengths.ndim != 1 or (lengths < 1).any():
        problems.append(f"episode_lengths {lengths} are not all >= 1")
    if problems:
        raise DatasetCorruptError(f"shard {path} is corrupt: " + "; ".join(problems))
    step_starts = np.concatenate([[0], np.cumsum(lengths)])
    return Shard(
        name=path.name,
        obs=arrays["obs"],
        actions=arrays["actions"],
        rewards=arrays["rewards"],
        terminated=arrays["terminated"],
        truncated=arrays["truncated"],
        lengths=lengths,
        step_starts=step_starts,
        obs_starts=step_starts + np.arange(len(lengths) + 1),
    )


def empty_windows(batch_size: int, length: int, spec: dict) -> Windows:
    """Returns an all-padding Windows of [batch_size, length] to be filled."""
    b, n = batch_size, length
    return Windows(
        obs=np.zeros((b, n + 1, *spec["observation_shape"]), spec["obs_dtype"]),
        actions=np.zeros((b, n, *spec["action_shape"]), spec["action_dtype"]),
        rewards=np.zeros((b, n), REWARD_DTYPE),
        terminated=np.zeros((b, n), bool),
        truncated=np.zeros((b, n), bool),
        mask=np.zeros((b, n), np.float32),
        source=np.zeros((b,), np.int32),
    )


def fill_frames(shard: Shard, obs_rows: np.ndarray, out: np.ndarray, rows) -> None:
    """Writes into ``out[rows]`` the shard's observations number ``obs_rows``."""
    out[rows] = shard.obs[obs_rows]


def fill_windows(shard: Shard, steps: np.ndarray, out: Windows, rows) -> None:
    """Writes into ``out[rows]`` the windows starting at the shard's global step
    indices ``steps`` [n], zero past each one's episode end."""
    length = out.actions.shape[1]
    episode = np.searchsorted(shard.step_starts, steps, side="right") - 1
    t = steps - shard.step_starts[episode]
    remaining = (shard.lengths[episode] - t)[:, None]  # >= 1 steps left
    offsets = np.arange(length + 1)
    # Clamp indices inside the episode so the gather never reads a neighbour;
    # the clamped rows are then zeroed by the masks.
    last_step = (shard.step_starts[episode + 1] - 1)[:, None]
    step_idx = np.minimum(steps[:, None] + offsets[:-1], last_step)
    obs_first = (shard.obs_starts[episode] + t)[:, None]
    obs_last = (shard.obs_starts[episode + 1] - 1)[:, None]
    obs_idx = np.minimum(obs_first + offsets, obs_last)
    step_valid = offsets[:-1] < remaining  # [n, L]
    obs_valid = offsets <= remaining  # [n, L + 1]: o_{t+k} exists for k <= T - t
    for name, idx, valid in (
        ("obs", obs_idx, obs_valid),
        ("actions", step_idx, step_valid),
        ("rewards", step_idx, step_valid),
        ("terminated", step_idx, step_valid),
        ("truncated", step_idx, step_valid),
    ):
        values = getattr(shard, name)[idx]
        values[~valid] = 0
        getattr(out, name)[rows] = values
    out.mask[rows] = step_valid
