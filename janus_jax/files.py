"""Writing a file so that a crash never leaves half of it: a temporary file in
the same directory, fsynced, renamed over the target (atomic on one filesystem),
then the directory fsynced so the rename itself survives a power loss. Datasets,
metrics logs, run configs, summaries and pictures all go through here."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def fsync_directory(directory: Path) -> None:
    """Returns None once the directory entry (a rename) is on disk (POSIX)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, prefix: str | None = None) -> Iterator[Path]:
    """Yields a temporary path beside ``path`` for the caller to fill; when the
    block ends without error it is synced and renamed over ``path``, else deleted.

    The temporary name keeps ``path``'s suffix (libraries that pick a format by
    extension still work) and starts with ``prefix`` (default ``.NAME.``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=prefix or f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    # mkstemp makes the file private (0600); the user's umask should decide, as
    # for any file they create.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[BinaryIO], None],
    prefix: str | None = None,
) -> Path:
    """Returns ``path`` after ``write(file)`` filled it, all or nothing."""
    with atomic_path(path, prefix) as tmp, open(tmp, "wb") as f:
        write(f)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Returns ``path`` after writing ``obj`` there as indented JSON, all or nothing
    (an object JSON cannot hold raises before anything is written)."""
    text = json.dumps(obj, indent=2) + "\n"
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))
