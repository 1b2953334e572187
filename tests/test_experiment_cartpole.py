"""The Python-API CartPole experiment learns: the world-model pipeline gives a
controller far above a random policy (about 22 on CartPole).

The learning run is slow (``-m slow``); by default the same script runs once with
the tiny preset's sizes, so every step of the walkthrough still runs."""

import json

import pytest
from conftest import import_experiment

from janus_jax.config import presets


@pytest.fixture(scope="module")
def experiment():
    return import_experiment("cartpole_world_model")


def test_the_api_walkthrough_runs_at_the_tiny_sizes(experiment, tmp_path, monkeypatch):
    # The script takes its sizes from presets.cartpole(); one chunk of updates.
    monkeypatch.setattr(experiment.presets, "cartpole", presets.tiny)
    c = presets.tiny().controller
    steps = c.num_envs * c.rollout_length * c.updates_per_chunk
    summary = experiment.main(["--total-timesteps", str(steps), "--out", str(tmp_path)])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["controller_env_steps"] == steps
    assert summary["imagined_steps"] > 0 and summary["imagination_ratio"] == 0.5
    # CartPole pays 1 per step and caps episodes at 500.
    for key in ("eval_return_mean", "random_return_mean"):
        assert 1 <= summary[key] <= 500, (key, summary[key])
    assert (tmp_path / "world_model").is_dir()


@pytest.mark.slow
def test_the_api_walkthrough_learns_cartpole(experiment, tmp_path):
    summary = experiment.main(["--total-timesteps", "150000", "--out", str(tmp_path)])
    assert summary["random_return_mean"] < 40
    assert summary["eval_return_mean"] > 150, summary["eval_return_mean"]
    assert summary["imagined_steps"] > 0
    assert summary["controller_env_steps"] >= 150_000
