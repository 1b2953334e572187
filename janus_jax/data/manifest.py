"""On-disk layout of a rollout dataset: the manifest, shard names, atomic writes.

A dataset is one directory::

    DIR/manifest.json      the index (JSON, human-readable), replaced last
    DIR/shard-00000.npz    whole episodes concatenated (see ``shards.py``)
    DIR/shard-00001.npz    ...

Every file is written under a temporary ``.tmp-*`` name in DIR, fsynced, then
renamed over its final name, and the manifest is replaced only after the shards
it lists are durable. A crash at any moment therefore leaves the previous
manifest valid and every shard it lists intact. Files the manifest does not list
(an orphan shard whose manifest update never happened, a ``.tmp-*`` file) are
never read, and a writer never reuses their names.

The manifest::

    {"format_version": 1, "env_id": "CartPole-v1",
     "observation_shape": [4], "observation_dtype": "float32",
     "action_shape": [], "action_dtype": "int32",
     "metadata": {...what the first writer was given: config, seed...},
     "resumes": [{"first_shard": "shard-00007.npz", "metadata": {...}}],
     "totals": {"episodes": 120, "steps": 20934, "shards": 3},
     "shards": [{"file": "shard-00000.npz", "episodes": 52, "steps": 10012,
                 "bytes": 171234, "array_bytes": 170420, "sha256": "..."}, ...]}

``bytes`` is the file's size; ``array_bytes`` is what its arrays take in memory
(the reader's memory cap counts that). ``resumes`` lists the metadata of later
writers that appended with different metadata (absent when there were none).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from janus_jax.run import files

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
TEMP_PREFIX = ".tmp-"
_SHARD_RE = re.compile(r"^shard-(\d{5,})\.npz$")
_SHARD_KEYS = ("file", "episodes", "steps", "bytes", "array_bytes", "sha256")
_TOP_KEYS = (
    "format_version",
    "env_id",
    "observation_shape",
    "observation_dtype",
    "action_shape",
    "action_dtype",
    "metadata",
    "totals",
    "shards",
)


class DatasetCorruptError(ValueError):
    """A manifest or shard on disk is not what the manifest promises; the message
    names the file, what is wrong with it and what to do."""

    def __str__(self) -> str:
        return (
            f"{super().__str__()}. Restore it from a copy of the dataset, or "
            "collect the dataset again into a new directory (janus-jax collect "
            "--out NEW_DIR)"
        )


def shard_name(index: int) -> str:
    """Returns the file name of shard number ``index``."""
    return f"shard-{index:05d}.npz"


def shard_indices_on_disk(directory: Path) -> set[int]:
    """Returns the indices of every ``shard-*.npz`` file in ``directory``."""
    found = set()
    for name in os.listdir(directory):
        match = _SHARD_RE.match(name)
        if match:
            found.add(int(match.group(1)))
    return found


def listed_shard_indices(manifest: dict) -> set[int]:
    """Returns the indices of the shards the manifest lists."""
    return {int(_SHARD_RE.match(s["file"]).group(1)) for s in manifest["shards"]}


def sha256_file(path: Path, chunk_bytes: int = 1 << 22) -> str:
    """Returns the hex sha256 of a file, read in chunks to bound memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(
    directory: Path, name: str, write: Callable[[BinaryIO], None]
) -> tuple[int, str]:
    """Returns (size in bytes, sha256) of ``directory/name`` after ``write`` filled
    it through a synced temporary file renamed into place (``files.atomic_write``;
    a crash leaves a ``.tmp-`` file that readers and writers skip)."""
    path = files.atomic_write(directory / name, write, prefix=TEMP_PREFIX)
    return path.stat().st_size, sha256_file(path)


def _json_default(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json_value(value, what: str):
    """Returns ``value`` as plain JSON types (config dataclasses, numpy scalars and
    paths converted; tuples become lists), or raises ValueError naming ``what``."""
    try:
        return json.loads(json.dumps(value, default=_json_default, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}={value!r} is invalid: {err}") from None


def write_manifest(directory: Path, manifest: dict) -> None:
    """Replaces ``directory/manifest.json`` atomically."""
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(directory, MANIFEST_NAME, lambda f: f.write(text.encode()))


def read_manifest(directory: Path) -> dict:
    """Returns the validated manifest of the dataset in ``directory``."""
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise FileNotFoundError(f"no rollout dataset at {directory}: no such directory")
    if not path.is_file():
        raise FileNotFoundError(
            f"no rollout dataset at {directory}: {path} is missing (a dataset is a "
            "directory holding manifest.json and shard-*.npz files)"
        )
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetCorruptError(f"{path} is not valid JSON: {err}") from None
    _check_manifest(manifest, path)
    return manifest


def _check_manifest(manifest, path: Path) -> None:
    def bad(why: str):
        raise DatasetCorruptError(f"{path} is corrupt: {why}")

    if not isinstance(manifest, dict):
        bad("the top level is not an object")
    missing = [k for k in _TOP_KEYS if k not in manifest]
    if missing:
        bad(f"missing keys {missing}")
    version = manifest["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version={version!r}; this janus-jax reads "
            f"format_version <= {FORMAT_VERSION} (upgrade janus-jax)"
        )
    totals = {"episodes": 0, "steps": 0, "shards": 0}
    for entry in manifest["shards"]:
        if not isinstance(entry, dict) or any(k not in entry for k in _SHARD_KEYS):
            bad(f"shard entry {entry!r} lacks one of {_SHARD_KEYS}")
        counts = [entry[k] for k in ("episodes", "steps", "bytes", "array_bytes")]
        if not all(isinstance(c, int) and c >= 1 for c in counts):
            bad(f"shard entry {entry!r} has counts that are not integers >= 1")
        if not isinstance(entry["file"], str) or not _SHARD_RE.match(entry["file"]):
            bad(f"shard entry {entry!r} has a bad file name")
        totals["episodes"] += entry["episodes"]
        totals["steps"] += entry["steps"]
        totals["shards"] += 1
    if manifest["totals"] != totals:
        bad(f"totals {manifest['totals']} disagree with its shards' sum {totals}")
