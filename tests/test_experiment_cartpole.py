"""The Python-API CartPole experiment learns: the world-model pipeline gives a
controller far above a random policy (about 22 on CartPole)."""

import pytest
from conftest import import_experiment


@pytest.fixture(scope="module")
def experiment():
    return import_experiment("cartpole_world_model")


def test_the_api_walkthrough_learns_cartpole(experiment, tmp_path):
    summary = experiment.main(["--total-timesteps", "150000", "--out", str(tmp_path)])
    assert summary["random_return_mean"] < 40
    assert summary["eval_return_mean"] > 150, summary["eval_return_mean"]
    assert summary["imagined_steps"] > 0
    assert summary["controller_env_steps"] >= 150_000
