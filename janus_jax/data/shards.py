"""One shard: whole episodes concatenated in an ``.npz``, packed and loaded.

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
