"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run
with the same seed ends (CPU, same machine): once mid-controller, and at random
points of every phase (collection, V, M with its encoding, C, the evaluation)
one after the other, with nothing in the run directory left corrupt."""

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

from janus_jax.data import RolloutDataset
from janus_jax.run.checkpoint import PhaseCheckpoints
from janus_jax.run.files import leftover_temps
from janus_jax.run.run_dir import load_agent

TRAIN = [sys.executable, "-m", "janus_jax.cli", "train", "--preset", "tiny"]
# Enough updates that the kill lands mid-phase: 32 updates in chunks of 4.
STEPS = ["--set", "controller.total_timesteps=2048", "--no-progress"]


def _controller_steps(metrics: Path) -> list[int]:
    if not metrics.exists():
        return []
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    return [r["step"] for r in rows if r.get("phase") == "controller"]


def _kill_when(argv: list[str], due, what: str, timeout_s: float = 300) -> None:
    """Runs ``argv`` and SIGKILLs it as soon as ``due()`` is true (polled)."""
    proc = subprocess.Popen(argv)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if due():
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the {what}"


def _kill_mid_controller(out: Path, at_step: int) -> None:
    """Starts a run and SIGKILLs it once the controller logged ``at_step``."""
    metrics = out / "metrics.jsonl"
    _kill_when(
        [*TRAIN, *STEPS, "--out", str(out)],
        lambda: any(s >= at_step for s in _controller_steps(metrics)),
        "kill",
    )


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "whole"
    subprocess.run([*TRAIN, *STEPS, "--out", str(out)], check=True)
    return out


# Controller updates after which the kill comes: early, mid-phase, and two chunks
# before the end (the default run kills at random points of every phase below).
KILL_AT = [
    pytest.param(4, marks=pytest.mark.slow),
    pytest.param(12, marks=pytest.mark.slow),
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


# -- kills at random points of every phase ------------------------------------------

PHASES = ("collect", "vae", "mdn", "controller", "evaluate")


def _rows(metrics: Path) -> list[dict]:
    if not metrics.exists():
        return []
    rows = []
    for line in metrics.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written as we read
            pass
    return rows


def _phase_steps(rows: list[dict]) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    for row in rows:
        steps.setdefault(row["phase"], []).append(row["step"])
    return steps


def _position(out: Path, totals: dict[str, int]) -> tuple[int, float]:
    """Returns where a run is: (index in PHASES, fraction of that phase done);
    collection and evaluation count as 0 done until they end."""
    steps = _phase_steps(_rows(out / "metrics.jsonl"))
    if "collect" not in steps:
        return 0, 0.0
    for index, phase in enumerate(PHASES[1:4], start=1):
        done = max(steps.get(phase, [0]))
        if done < totals[phase]:
            return index, done / totals[phase]
    return (4, 0.0) if not (out / "summary.json").exists() else (5, 0.0)


def _kill_at(out: Path, phase: str, fraction: float, times: dict, resume: bool):
    """Runs (resuming) until ``fraction`` of ``phase`` is done, short of its last
    chunk, and SIGKILLs it at once (so it may land in a checkpoint's save).
    Collection logs nothing until it ends: the kill comes once the dataset's
    directory is there (after its first episode, or at once when resuming).
    Evaluation neither: the kill comes ``fraction`` of its measured duration
    after the controller's last row. Returns the phase the kill landed in."""
    target = PHASES.index(phase)
    totals = times["totals"]
    entered = None  # when the run was first seen in the target phase

    def due() -> bool:
        nonlocal entered
        index, done = _position(out, totals)
        if index == target and entered is None:
            entered = time.monotonic()
        if phase == "collect":
            ready = (out / "data").exists()
        elif phase == "evaluate":
            waited = time.monotonic() - entered if entered else -1.0
            ready = waited >= 0.8 * fraction * times["evaluate"]
        else:
            ready = done >= fraction * times["last_chunk_starts"][phase]
        return index > target or (index == target and ready)

    resumed = ["--resume"] if resume else []
    _kill_when([*TRAIN, *STEPS, "--out", str(out), *resumed], due, f"{phase} kill")
    return PHASES[min(_position(out, totals)[0], 4)]


def _timings(whole: Path) -> dict:
    rows = _rows(whole / "metrics.jsonl")
    steps = _phase_steps(rows)
    last_controller = max(r["time_s"] for r in rows if r["phase"] == "controller")
    return {
        "totals": {p: max(steps[p]) for p in ("vae", "mdn", "controller")},
        # the fraction of each phase done when its last chunk starts
        "last_chunk_starts": {
            p: 1 - (steps[p][-1] - steps[p][-2]) / steps[p][-1]
            for p in ("vae", "mdn", "controller")
        },
        # from the controller's last row to the evaluation's (the summary and
        # the pictures follow it)
        "evaluate": next(r["time_s"] for r in rows if r["phase"] == "eval")
        - last_controller,
    }


def _kill_schedule(kills_per_phase: int, seed: int) -> list[tuple[str, float]]:
    """Returns (phase, fraction of it) of each kill, in run order."""
    rng = np.random.default_rng(seed)
    return [
        (phase, float(fraction))
        for phase in PHASES
        for fraction in np.sort(rng.uniform(0.05, 0.95, kills_per_phase))
    ]


def _killed_and_resumed(whole: Path, out: Path, kills_per_phase: int, seed: int):
    times = _timings(whole)
    landed = []
    for k, kill in enumerate(_kill_schedule(kills_per_phase, seed)):
        landed.append(_kill_at(out, *kill, times, resume=k > 0))
    subprocess.run([*TRAIN, *STEPS, "--out", str(out), "--resume"], check=True)
    return landed


def _assert_same_run_and_nothing_corrupt(whole: Path, out: Path) -> None:
    a, b = load_agent(whole).params, load_agent(out).params
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    summary_a = json.loads((whole / "summary.json").read_text())
    summary_b = json.loads((out / "summary.json").read_text())
    for key in ("eval_return_mean", "random_return_mean", "real_env_steps"):
        assert summary_a[key] == summary_b[key], key
    # each resume removed the temporary files its kill left
    assert leftover_temps(out) == []
    # every logged step once, in order, as the uninterrupted run logged them
    assert _phase_steps(_rows(out / "metrics.jsonl")) == _phase_steps(
        _rows(whole / "metrics.jsonl")
    )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # no torn line left
    RolloutDataset(out / "data").verify()  # hashes and contents
    for phase in ("vae", "mdn", "controller"):
        with PhaseCheckpoints(whole / "checkpoints" / phase) as ckpt_a:
            with PhaseCheckpoints(out / "checkpoints" / phase) as ckpt_b:
                assert ckpt_a.latest_step() == ckpt_b.latest_step()


def test_killed_once_in_every_phase_the_run_ends_as_the_uninterrupted_one(
    whole, tmp_path
):
    out = tmp_path / "killed"
    landed = _killed_and_resumed(whole, out, kills_per_phase=1, seed=0)
    assert landed == list(PHASES), landed
    _assert_same_run_and_nothing_corrupt(whole, out)


@pytest.mark.slow
def test_twenty_kills_at_random_points_end_as_the_uninterrupted_run(whole, tmp_path):
    out = tmp_path / "killed"
    landed = _killed_and_resumed(whole, out, kills_per_phase=4, seed=1)
    print("kills landed in:", landed)
    assert sorted(set(landed)) == sorted(PHASES), landed
    _assert_same_run_and_nothing_corrupt(whole, out)
