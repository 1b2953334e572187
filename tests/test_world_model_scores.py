"""The world-model diagnosis's scores against hand counts, and its report on a
tiny trained CartPole run (vector frames: no channel table)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from janus_jax.diagnostics import world_model_scores as scores


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from janus_jax.config import presets
    from janus_jax.train import pipeline

    out = tmp_path_factory.mktemp("tiny")
    pipeline.run(presets.tiny(), out, overwrite=True, progress=False)
    return out


def test_binary_scores_count_cells_per_channel_by_hand():
    truth = np.zeros((2, 3, 2), bool)  # 2 frames of 3 cells, 2 channels
    truth[0, 0, 0] = truth[1, 2, 0] = True  # channel 0: two set cells
    predicted = np.zeros((2, 3, 2))
    predicted[0, 0, 0] = 0.9  # hit
    predicted[0, 1, 0] = 0.5  # false alarm (>= 0.5 counts as set)
    predicted[1, 2, 0] = 0.49  # miss
    predicted[1, 1, 1] = 0.7  # channel 1 has no set cell: a false alarm
    ch0, ch1 = scores.binary_scores(truth, predicted)
    assert ch0 == {"positives": 2, "predicted": 2, "precision": 0.5, "recall": 0.5}
    assert ch1 == {"positives": 0, "predicted": 1, "precision": 0.0, "recall": None}


def test_binary_scores_refuse_other_shapes():
    with pytest.raises(ValueError, match="must match"):
        scores.binary_scores(np.zeros((2, 3)), np.zeros((3, 2)))


def test_event_scores_by_hand():
    events = np.array([1, 0, 1, 0, 0], bool)
    predicted = np.array([0.8, 0.6, 0.1, 0.0, 0.2])
    cell = scores.event_scores(events, predicted, 0.5)
    assert cell["events"] == 2 and cell["predicted"] == 2
    assert cell["recall"] == 0.5 and cell["precision"] == 0.5
    assert math.isclose(cell["mean_on_events"], 0.45)
    assert math.isclose(cell["mean_elsewhere"], 0.8 / 3)


def test_calibration_bins_against_numpy():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    p[:3] = (0.0, 0.5, 1.0)  # edges: 0 and 0.5 open their bins, 1 closes the last
    y = rng.uniform(size=500) < p
    rows = scores.calibration(p, y, edges=(0.0, 0.5, 1.0))
    low = p < 0.5
    assert [r["steps"] for r in rows] == [low.sum(), (~low).sum()]
    assert math.isclose(rows[0]["mean_probability"], p[low].mean())
    assert math.isclose(rows[1]["observed_rate"], y[~low].mean())


def test_calibration_leaves_empty_bins_empty():
    rows = scores.calibration(np.array([0.05]), np.array([True]), (0.0, 0.1, 1.0))
    assert rows[1] == {
        "low": 0.1,
        "high": 1.0,
        "steps": 0,
        "mean_probability": None,
        "observed_rate": None,
    }


def test_measure_on_a_tiny_run(tiny_run):
    import jax

    from janus_jax.envs import make
    from janus_jax.run import run_dir

    agent = run_dir.load_agent(tiny_run)
    with make("CartPole-v1", num_envs=2) as env:
        report = scores.measure(jax.random.key(0), env, agent.params, 64)
    assert report["real_steps"] == 128
    assert "vae_channels" not in report  # vector frames
    done = report["done_head"]
    assert sum(row["steps"] for row in done["calibration"]) == 128
    assert done["events"] >= 1  # 64 steps of a poor policy end CartPole episodes
    assert 0 <= done["brier"] <= 1
