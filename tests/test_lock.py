"""The run-directory lock: a second holder is refused with host and PID, a lock
left by a dead process is taken over, one held by another process (a real one)
or another host is refused, and every exit releases it."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from janus_jax.cli import main
from janus_jax.config import presets
from janus_jax.run import lock as lock_module
from janus_jax.run.lock import LOCK_NAME, RunDirLock, RunDirLocked
from janus_jax.train import pipeline

HOST = socket.gethostname()

HOLDER = textwrap.dedent(
    """
    import sys
    from janus_jax.run.lock import RunDirLock
    lock = RunDirLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()  # hold it until the test closes stdin (or kills us)
    lock.release()
    """
)


@pytest.fixture
def holder(tmp_path):
    """A second process holding tmp_path/run's lock; yields its Popen."""
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    yield process
    if process.poll() is None:
        process.stdin.close()
        process.wait(timeout=30)


def _dead_pid() -> int:
    """Returns the PID of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _leave_record(out, **holder):
    out.mkdir(parents=True, exist_ok=True)
    record = {"host": HOST, "pid": 1, "started": "then", "command": "janus-jax train"}
    (out / LOCK_NAME).write_text(json.dumps({**record, **holder}))


def test_second_acquire_in_one_process_names_the_holder(tmp_path):
    with RunDirLock(tmp_path) as first:
        assert first.held and (tmp_path / LOCK_NAME).is_file()
        with pytest.raises(RunDirLocked) as refused:
            RunDirLock(tmp_path).acquire()
    message = str(refused.value)
    assert f"PID {os.getpid()}" in message and f"host {HOST}" in message
    assert "\n" not in message
    assert not (tmp_path / LOCK_NAME).exists()  # released on leaving the block


def test_release_on_exception_frees_the_directory(tmp_path):
    with pytest.raises(RuntimeError), RunDirLock(tmp_path):
        raise RuntimeError("the run failed")
    assert not (tmp_path / LOCK_NAME).exists()
    with RunDirLock(tmp_path):  # free again
        pass


def test_lock_of_a_dead_process_is_taken_over(tmp_path):
    pid = _dead_pid()
    _leave_record(tmp_path, pid=pid)
    with pytest.warns(UserWarning, match=f"taking over .* PID {pid}"):
        lock = RunDirLock(tmp_path)
        lock.acquire()
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert (record["host"], record["pid"]) == (HOST, os.getpid())
    lock.release()


def test_another_process_holding_the_lock_refuses(holder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunDirLocked, match=f"PID {holder.pid} on host {HOST}"):
        RunDirLock(out).acquire()
    holder.stdin.close()
    holder.wait(timeout=30)
    assert not (out / LOCK_NAME).exists()  # its release removed the file
    with RunDirLock(out):
        pass


def test_a_killed_holder_leaves_a_lock_that_is_taken_over(holder, tmp_path):
    out = tmp_path / "run"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert (out / LOCK_NAME).exists()  # no release ran; the kernel dropped the flock
    with pytest.warns(UserWarning, match=f"PID {holder.pid}"), RunDirLock(out):
        pass


def test_a_record_of_another_host_is_refused_with_the_way_out(tmp_path):
    _leave_record(tmp_path, host="elsewhere", pid=4242)
    with pytest.raises(RunDirLocked) as refused:
        RunDirLock(tmp_path).acquire()
    message = str(refused.value)
    assert "PID 4242 on host elsewhere" in message
    assert f"remove {tmp_path / LOCK_NAME}" in message
    assert (tmp_path / LOCK_NAME).exists()  # left for the user to judge


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(lock_module.fcntl, "flock", no_flock)
    _leave_record(tmp_path, pid=os.getpid())  # a live holder on this host
    with (
        pytest.warns(UserWarning, match="no file locks"),
        pytest.raises(RunDirLocked, match=f"PID {os.getpid()}"),
    ):
        RunDirLock(tmp_path).acquire()
    _leave_record(tmp_path, pid=_dead_pid())
    with pytest.warns(UserWarning) as caught, RunDirLock(tmp_path):
        pass
    messages = [str(w.message) for w in caught]
    assert any("no file locks" in m for m in messages)
    assert any("taking over" in m for m in messages)


def test_a_directory_the_lock_made_goes_if_nothing_was_written(tmp_path):
    new = tmp_path / "run"
    with RunDirLock(new):
        assert new.is_dir()
    assert not new.exists()  # a failed command leaves no empty --out behind
    with RunDirLock(new):
        (new / "config.json").write_text("{}")
    assert sorted(p.name for p in new.iterdir()) == ["config.json"]


def test_pipeline_run_is_refused_while_another_holds_the_directory(tmp_path, capsys):
    out = tmp_path / "run"
    with RunDirLock(out):
        with pytest.raises(RunDirLocked, match=f"PID {os.getpid()}"):
            pipeline.run(presets.tiny(), out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
        status = main(["collect", "--preset", "tiny", "--out", str(out)])
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("janus-jax collect: error: ") and "\n" not in err
    assert f"is in use by PID {os.getpid()} on host {HOST}" in err
