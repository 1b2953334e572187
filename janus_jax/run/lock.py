"""``RunDirLock``: one process at a time writes into a run directory.

Two ``janus-jax train`` processes on one ``--out`` would interleave their
checkpoints; the second is refused at once, with a line naming the holder.

How it works, and why this way: the lock is ``DIR/.janus-jax.lock``, held with
``fcntl.flock`` and holding a JSON record of its holder (host, PID, start time,
command). The kernel drops a flock when its process dies, however it dies
(SIGKILL included), so a crashed run never leaves a lock that stays taken on
its own host, and a PID reused by an unrelated process cannot fool it (an
``O_CREAT | O_EXCL`` file alone would have to guess from the PID). The record
is what the refusal prints, and what is checked when the flock was free:

- no record, or one this host's dead process left: taken (a warning names the
  dead holder);
- a record of another host: refused, because flock on a shared filesystem may be
  local to each host (NFS forwards it, some filesystems do not), so a live run
  there could hold it unseen. The message says to remove the file if that run
  is known to be gone.

Release (also on an exception) removes the file while still holding the flock.
A process that opened the file just before it was removed would then hold a
flock on a file no longer in the directory, so ``acquire`` checks that the file
it locked is still the one at the path, and starts again if not. A filesystem
without flock (ENOLCK, EOPNOTSUPP) falls back to the record alone, with a
warning: then two processes starting in the same instant could both pass.

Multi-process runs share one lock: process 0 takes it (``pipeline.run`` does
that through ``DataParallel.on_primary``, so the others hear of a refusal).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

LOCK_NAME = ".janus-jax.lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)


class RunDirLocked(ValueError):
    """Another process holds the run directory's lock."""


def _pid_alive(pid: int) -> bool:
    """Returns whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its record is not written yet)"
    return (
        f"PID {holder.get('pid')} on host {holder.get('host')} since "
        f"{holder.get('started')} ({holder.get('command', '?')})"
    )


class RunDirLock:
    """The lock of run directory ``out``: ``acquire``/``release``, or ``with``."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.path = self.out / LOCK_NAME
        self._fd: int | None = None
        self._made_dir = False

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Returns None once this process holds the lock (creating ``out`` if
        needed); raises RunDirLocked, naming the holder, if another one does."""
        if self.held:
            raise RunDirLocked(f"{self.out} is already locked by this lock object")
        if not self.out.exists():
            self.out.mkdir(parents=True, exist_ok=True)
            self._made_dir = True
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                flocked = self._flock(fd)
                if not self._still_at_path(fd):
                    os.close(fd)  # released and removed meanwhile: try again
                    continue
                self._check_record(_read(fd), flocked)
            except BaseException:
                os.close(fd)
                self._undo_dir()
                raise
            _write(fd, self._record())
            self._fd = fd
            return
        self._undo_dir()
        raise RunDirLocked(f"{self.path} keeps changing: another run is starting")

    def release(self) -> None:
        """Returns None once the lock file is gone and its flock dropped (no-op
        when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            with contextlib.suppress(FileNotFoundError):
                if self._still_at_path(fd):
                    self.path.unlink()
        finally:
            os.close(fd)  # drops the flock
            self._undo_dir()

    def _flock(self, fd: int) -> bool:
        """Returns whether the flock was taken (False: unsupported here); raises
        RunDirLocked if another process holds it."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirLocked(self._refusal(_read(fd), live=True)) from None
        except OSError as err:
            if err.errno not in _NO_FLOCK:
                raise
            warnings.warn(
                f"{self.path.parent}'s filesystem has no file locks ({err}); the run "
                "directory is guarded by its lock file's record alone",
                stacklevel=3,
            )
            return False
        return True

    def _still_at_path(self, fd: int) -> bool:
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    def _check_record(self, holder: dict | None, flocked: bool) -> None:
        """Returns None when the record left in the file allows taking the lock."""
        if not holder:
            return
        if holder.get("host") != socket.gethostname():
            raise RunDirLocked(self._refusal(holder, live=False))
        pid = holder.get("pid")
        if not flocked and isinstance(pid, int) and _pid_alive(pid):
            raise RunDirLocked(self._refusal(holder, live=True))
        # Our flock proves the holder gone (or, without flock, its PID is).
        warnings.warn(
            f"taking over {self.path}, left by {_describe(holder)}, which is no "
            "longer running",
            stacklevel=3,
        )

    def _refusal(self, holder: dict | None, *, live: bool) -> str:
        text = f"{self.out} is in use by {_describe(holder)}"
        if live:
            return f"{text}: wait for it to finish, or use another --out"
        return (
            f"{text}, which this host cannot check: if no run is active there, "
            f"remove {self.path} and try again"
        )

    @staticmethod
    def _record() -> dict:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200],
        }

    def _undo_dir(self) -> None:
        """Removes ``out`` if acquire made it and nothing was written in it."""
        if self._made_dir:
            self._made_dir = False
            with contextlib.suppress(OSError):
                self.out.rmdir()


def _read(fd: int) -> dict | None:
    """Returns the holder record in the lock file (None: empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, 4096)
    try:
        holder = json.loads(data) if data.strip() else None
    except json.JSONDecodeError:
        return None
    return holder if isinstance(holder, dict) else None


def _write(fd: int, holder: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)
    os.fsync(fd)
