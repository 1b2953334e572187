"""DatasetWriter: buffers whole episodes and writes them as crash-safe shards."""

from __future__ import annotations

import contextlib
import fcntl
import os
import warnings
from pathlib import Path

import numpy as np

from janus_jax.data.episode_checks import (
    checked_episode,
    normalize_dtype,
    normalize_shape,
)
from janus_jax.data.manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    TEMP_PREFIX,
    atomic_write,
    listed_shard_indices,
    read_manifest,
    shard_indices_on_disk,
    shard_name,
    to_json_value,
    write_manifest,
)
from janus_jax.data.shards import array_bytes, pack_episodes
from janus_jax.run.files import DiskFullError

LOCK_NAME = ".lock"


def existing_dataset(path: Path, resume: bool) -> bool:
    """Returns True when ``path`` holds a dataset to resume, False when it holds
    none; raises FileExistsError when it holds one and ``resume`` is False."""
    if not (Path(path) / MANIFEST_NAME).exists():
        return False
    if not resume:
        raise FileExistsError(
            f"{path} already holds a dataset ({MANIFEST_NAME}); pass "
            "resume=True to append to it, or choose another path"
        )
    return True


class DatasetWriter:
    """Writes whole episodes to the dataset directory ``path``.

    Episodes are buffered in memory and written as one shard once at least
    ``shard_steps`` steps are buffered (and on ``flush``/``close``); the manifest
    is replaced after each shard, so a crash loses only the buffered episodes.
    ``resume=True`` appends to an existing dataset after checking that env_id,
    shapes and dtypes match (it creates the dataset when none exists);
    ``resume=False`` refuses a directory that already holds a manifest. One
    writer per directory at a time (an ``flock`` on ``DIR/.lock``). Use it as a
    context manager: leaving the block flushes, also on an exception, so every
    completed episode is kept. ``compress=True`` writes zlib-compressed shards.
    A full disk raises ``DiskFullError``: the shard is not added, the manifest
    and the episodes it lists stay as they were, the episodes stay buffered.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        env_id: str,
        observation_shape: tuple[int, ...],
        observation_dtype: str,
        action_shape: tuple[int, ...],
        action_dtype: str,
        metadata: dict | None = None,
        shard_steps: int = 10_000,
        resume: bool = False,
        compress: bool = False,
    ):
        if not isinstance(env_id, str) or not env_id:
            raise ValueError(f"env_id={env_id!r} is invalid: must be a non-empty str")
        if isinstance(shard_steps, bool) or not isinstance(shard_steps, int):
            raise ValueError(f"shard_steps={shard_steps!r} is invalid: must be an int")
        if shard_steps < 1:
            raise ValueError(f"shard_steps={shard_steps!r} is invalid: must be >= 1")
        obs_shape = normalize_shape(observation_shape, "observation_shape")
        obs_dtype = normalize_dtype(observation_dtype, "observation_dtype")
        spec = {
            "env_id": env_id,
            "observation_shape": list(obs_shape),
            "observation_dtype": obs_dtype,
            "action_shape": list(normalize_shape(action_shape, "action_shape")),
            "action_dtype": normalize_dtype(action_dtype, "action_dtype"),
        }
        metadata = to_json_value({} if metadata is None else metadata, "metadata")
        self.path = Path(path)
        self._shard_steps = shard_steps
        self._savez = np.savez_compressed if compress else np.savez
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.path)
        try:
            self._manifest, self._pending_resume = self._open(spec, metadata, resume)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._buffer: list[tuple[np.ndarray, ...]] = []
        self._buffered_steps = 0
        self._closed = False

    def _open(self, spec: dict, metadata, resume: bool):
        """Returns (manifest, resume record or None) and sets the next shard index."""
        if existing_dataset(self.path, resume):
            manifest = read_manifest(self.path)
            for key, value in spec.items():
                if manifest[key] != value:
                    raise ValueError(
                        f"cannot resume {self.path}: its {key} is {manifest[key]!r} "
                        f"but this writer was given {value!r}"
                    )
            pending = None if metadata in ({}, manifest["metadata"]) else metadata
            created = False
        else:
            manifest = {"format_version": FORMAT_VERSION, **spec, "metadata": metadata}
            manifest["totals"] = {"episodes": 0, "steps": 0, "shards": 0}
            manifest["shards"] = []
            pending, created = None, True
        # The lock is held, so .tmp-* files are leftovers of a crashed writer.
        for name in os.listdir(self.path):
            if name.startswith(TEMP_PREFIX):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path / name)
        on_disk = shard_indices_on_disk(self.path)
        listed = listed_shard_indices(manifest)
        orphans = sorted(on_disk - listed)
        if orphans:
            warnings.warn(
                f"{self.path}: ignoring {[shard_name(i) for i in orphans]}, not in "
                f"the manifest (left by an interrupted writer); they are kept and "
                f"never overwritten",
                stacklevel=3,
            )
        self._next_index = max(on_disk | listed, default=-1) + 1
        if created:  # marks the directory as a dataset from the start
            write_manifest(self.path, manifest)
        return manifest, pending

    @property
    def num_episodes(self) -> int:
        """Episodes on disk (earlier runs included) plus those buffered."""
        return self._manifest["totals"]["episodes"] + len(self._buffer)

    @property
    def num_steps(self) -> int:
        """Steps on disk (earlier runs included) plus those buffered."""
        return self._manifest["totals"]["steps"] + self._buffered_steps

    def add_episode(self, obs, actions, rewards, terminated, truncated) -> None:
        """Buffers one whole episode of T steps, writing a shard when enough are
        buffered.

        obs [T + 1, *observation_shape] (o_0..o_T, o_T the final observation),
        actions [T, *action_shape], rewards [T], terminated [T], truncated [T];
        only the last step may be terminated or truncated. Raises ValueError on
        any shape, dtype or value problem, buffering nothing.
        """
        if self._closed:
            raise ValueError(f"DatasetWriter for {self.path} is closed")
        episode = checked_episode(
            self._manifest, obs, actions, rewards, terminated, truncated
        )
        self._buffer.append(episode)
        self._buffered_steps += len(episode[2])
        if self._buffered_steps >= self._shard_steps:
            self.flush()

    def flush(self) -> None:
        """Writes the buffered episodes as a new shard, then the manifest."""
        if self._closed:
            raise ValueError(f"DatasetWriter for {self.path} is closed")
        if not self._buffer:
            return
        packed = pack_episodes(self._buffer)
        name = shard_name(self._next_index)
        if (self.path / name).exists():  # only another process could have made it
            raise FileExistsError(f"{self.path / name} appeared; not replacing it")
        try:
            size, digest = atomic_write(
                self.path, name, lambda f: self._savez(f, **packed)
            )
        except DiskFullError as err:
            raise self._not_written(err) from err
        finally:
            # Once the file is in place its index is taken, even if a later step
            # (directory sync, manifest) fails: a retry must not collide with it.
            if (self.path / name).exists():
                self._next_index += 1
        entry = {
            "file": name,
            "episodes": len(self._buffer),
            "steps": self._buffered_steps,
            "bytes": size,
            "array_bytes": array_bytes(packed),
            "sha256": digest,
        }
        manifest = {**self._manifest, "shards": [*self._manifest["shards"], entry]}
        totals = self._manifest["totals"]
        manifest["totals"] = {
            "episodes": totals["episodes"] + entry["episodes"],
            "steps": totals["steps"] + entry["steps"],
            "shards": totals["shards"] + 1,
        }
        if self._pending_resume is not None:
            record = {"first_shard": name, "metadata": self._pending_resume}
            manifest["resumes"] = [*manifest.get("resumes", []), record]
        try:
            write_manifest(self.path, manifest)
        except DiskFullError as err:
            # Unlisted, the new shard is only taking the room back; its index
            # stays taken all the same.
            (self.path / name).unlink(missing_ok=True)
            raise self._not_written(err) from err
        self._manifest, self._pending_resume = manifest, None
        self._buffer, self._buffered_steps = [], 0

    def _not_written(self, err: DiskFullError) -> DiskFullError:
        """Returns ``err`` saying what a full disk left of the dataset."""
        totals = self._manifest["totals"]
        return DiskFullError(
            err.filename,
            err.reason,
            f"the dataset's {totals['episodes']} episodes listed in "
            f"{self.path / MANIFEST_NAME} are intact and loadable; the "
            f"{len(self._buffer)} buffered episodes were not written",
        )

    def close(self) -> None:
        """Flushes and releases the directory; later calls do nothing."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            os.close(self._lock_fd)  # closing the descriptor drops the flock

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"DatasetWriter({str(self.path)!r}, env_id={self._manifest['env_id']!r}, "
            f"episodes={self.num_episodes}, steps={self.num_steps})"
        )


def _lock(directory: Path) -> int:
    """Returns an open descriptor holding an exclusive flock on DIR/.lock."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RuntimeError(
            f"another DatasetWriter is writing to {directory} (it holds "
            f"{directory / LOCK_NAME}); two writers would race on the manifest"
        ) from None
    return fd
