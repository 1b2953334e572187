"""experiments/sample_efficiency.py's bookkeeping against hand-built curves: the
return within a budget, steps to a threshold (each seed, or the mean), the
table and the plot."""

import math

import numpy as np
import pytest
from conftest import import_experiment


@pytest.fixture(scope="module")
def se():
    return import_experiment("sample_efficiency")


STEPS = np.array([1000, 2000, 4000])


def test_the_return_at_a_budget_is_the_last_evaluation_within_it(se):
    returns = np.array([10.0, 50.0, 90.0])
    assert se.at_budget(STEPS, returns, 3999) == 50.0
    assert se.at_budget(STEPS, returns, 4000) == 90.0
    assert math.isnan(se.at_budget(STEPS, returns, 999))


def test_steps_to_a_threshold_for_each_seed_and_for_the_mean(se):
    curves = [
        (STEPS, np.array([10.0, 80.0, 90.0])),
        (STEPS, np.array([10.0, 20.0, 90.0])),
    ]
    # each seed: the later of 2000 and 4000
    assert se.steps_to(curves, 75.0, "each") == 4000
    # the mean passes 45 at 2000 (50), not at 1000 (10)
    assert se.steps_to(curves, 45.0, "mean") == 2000
    assert math.isinf(se.steps_to(curves, 95.0, "each"))
    assert math.isinf(se.steps_to(curves, 95.0, "mean"))


def test_table_and_plot_from_results(se, tmp_path):
    runs = [
        {
            "seed": s,
            "steps": [5000, 20000],
            "returns": [20.0 + s, 480.0],
            "final": 480.0,
            "real_env_steps": 20000,
            "wall_time_s": 10.0,
            "random_return": 20.0,
        }
        for s in (0, 1)
    ]
    results = {"cartpole": {"world model": runs, "model-free PPO": runs[:1]}}
    summaries = {"cartpole": se.summarize("cartpole", results["cartpole"])}
    cells = summaries["cartpole"]["agents"]["world model"]
    assert cells["steps_to_threshold"] == 20000
    assert cells["budgets"][10_000] == [20.0, 21.0]
    text = se.table(summaries)
    assert "| world model | 20.5 (20..21) | 480.0 (480..480) |" in text
    assert "| 20,000 |" in text
    path = se.plot(results, summaries, tmp_path / "p.png")
    assert path.stat().st_size > 1000
