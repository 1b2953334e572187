"""A run killed with SIGKILL mid-training and resumed ends exactly where an
uninterrupted run with the same seed ends (CPU, same machine)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from janus_jax.train.checkpoint import PhaseCheckpoints
from janus_jax.train.run_dir import load_agent

TRAIN = [sys.executable, "-m", "janus_jax.cli", "train", "--preset", "tiny"]
# Enough updates that the kill lands mid-phase: 32 updates in chunks of 4.
STEPS = ["--set", "controller.total_timesteps=2048", "--no-progress"]


def _controller_steps(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    return [r["step"] for r in rows if r.get("phase") == "controller"]


def _kill_mid_controller(out: Path, at_step: int, timeout_s: float = 300) -> None:
    """Starts a run and SIGKILLs it once the controller logged ``at_step``."""
    proc = subprocess.Popen([*TRAIN, *STEPS, "--out", str(out)])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(s >= at_step for s in _controller_steps(out / "metrics.jsonl")):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    subprocess.run([*TRAIN, *STEPS, "--out", str(out)], check=True)
    return out


# Controller updates after which the kill comes: early, mid-phase, and two chunks
# before the end; one by default, all with -m slow.
KILL_AT = [
    pytest.param(4, marks=pytest.mark.slow),
    12,
    pytest.param(24, marks=pytest.mark.slow),
]


@pytest.fixture(scope="module", params=KILL_AT, ids=lambda step: f"kill_at_{step}")
def runs(request, whole, tmp_path_factory):
    killed = tmp_path_factory.mktemp("resume") / "killed"
    _kill_mid_controller(killed, at_step=request.param)
    steps_before = _controller_steps(killed / "metrics.jsonl")
    with PhaseCheckpoints(killed / "checkpoints" / "controller") as checkpoints:
        saved = checkpoints.latest_step()
    subprocess.run([*TRAIN, *STEPS, "--out", str(killed), "--resume"], check=True)
    return whole, killed, steps_before, saved


def test_resumed_run_ends_with_the_same_parameters(runs):
    whole, killed, steps_before, _ = runs
    assert max(steps_before) < 32, "the kill came after the controller finished"
    a, b = load_agent(whole).params, load_agent(killed).params
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    summary_a = json.loads((whole / "summary.json").read_text())
    summary_b = json.loads((killed / "summary.json").read_text())
    for key in (
        "eval_return_mean",
        "random_return_mean",
        "real_env_steps",
        "imagined_steps",
    ):
        assert summary_a[key] == summary_b[key], key


def test_resumed_metrics_have_no_repeated_steps(runs):
    whole, killed, _, _ = runs
    steps = _controller_steps(killed / "metrics.jsonl")
    assert steps == sorted(set(steps))
    assert steps == _controller_steps(whole / "metrics.jsonl")


def test_the_kill_lost_at_most_one_checkpoint_interval(runs):
    _, _, steps_before, saved = runs
    # The tiny preset saves after every chunk of 4 updates: when killed, the
    # newest checkpoint is the last chunk logged, or the one before it (the kill
    # may land between the log line and the save).
    assert saved is not None
    assert max(steps_before) - 4 <= saved <= max(steps_before)
