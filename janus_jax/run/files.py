"""Writing a file so that a crash never leaves half of it: a temporary file in
the same directory, fsynced, renamed over the target (atomic on one filesystem),
then the directory fsynced so the rename itself survives a power loss. Datasets,
metrics logs, run configs, summaries and pictures all go through here.

A write that fails for want of room (a full disk, a quota, a file size limit)
raises ``DiskFullError``: an ``OSError`` (errno ENOSPC) whose one-line message
names the file, says what is left intact and what to do."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

# The errors that mean "no room to write", and how the message puts each.
_NO_ROOM = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EFBIG: "the file is larger than this filesystem or process allows",
}
# tensorstore (orbax's array writer) reports OS errors as text, not OSError.
_OS_ERROR_CODE = re.compile(r"os_error_code='?(\d+)")


class DiskFullError(OSError):
    """A write failed for want of room. The message names the file, what ran
    out (``reason``, from ``no_room``), what the failure left intact (``intact``)
    and what to do; ``errno`` is ENOSPC and ``filename`` the file."""

    def __init__(self, path: str | os.PathLike, reason: str, intact: str):
        path = Path(path).absolute()
        self.reason, self.intact = reason, intact
        message = (
            f"cannot write {path}: {reason}, {_free_space(path.parent)}; {intact}. "
            "Free some space on that disk (or move the directory to a larger "
            "one), then run the same command again (with --resume for a run or "
            "a collection)"
        )
        super().__init__(errno.ENOSPC, message, os.fspath(path))

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # OSError pickles its args, which differ from ours
        return type(self), (self.filename, self.reason, self.intact)


def no_room(err: BaseException) -> str | None:
    """Returns what ran out ("the disk is full") when ``err`` is a write failing for
    want of room, else None. Looks through ``__cause__`` (orbax re-raises)."""
    while err is not None:
        code = err.errno if isinstance(err, OSError) else None
        if code is None:
            match = _OS_ERROR_CODE.search(str(err))
            code = int(match.group(1)) if match else None
        if code in _NO_ROOM:
            return f"{_NO_ROOM[code]} ({os.strerror(code)})"
        err = err.__cause__
    return None


def _free_space(path: Path) -> str:
    """Returns the free space on ``path``'s filesystem: "12.3 MB free there"."""
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            free = shutil.disk_usage(folder).free
            for unit in ("bytes", "kB", "MB", "GB"):
                if free < 1000 or unit == "GB":
                    number = f"{free}" if unit == "bytes" else f"{free:.1f}"
                    return f"{number} {unit} free there"
                free /= 1000
    return "free space unknown"


def fsync_directory(directory: Path) -> None:
    """Returns None once the directory entry (a rename) is on disk (POSIX)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# atomic_path's temporary names: ".NAME." + mkstemp's 8 characters + ".tmp" +
# the target's suffix (a custom prefix replaces ".NAME.").
_TEMP_NAME = re.compile(r"^\..*[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def leftover_temps(directory: str | os.PathLike) -> list[Path]:
    """Returns the temporary files of ``atomic_path`` under ``directory`` (all
    depths): what a writer killed before its rename leaves. Only a caller that
    knows no writer is running (the run directory's lock) may delete them."""
    return sorted(
        path
        for path in Path(directory).rglob(".*")
        if path.is_file() and not path.is_symlink() and _TEMP_NAME.match(path.name)
    )


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
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)  # also gives the room back
        reason = no_room(err)
        if reason is None or isinstance(err, DiskFullError):
            raise
        kept = "it was left as it was" if path.exists() else "nothing was written"
        raise DiskFullError(path, reason, kept) from err
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
