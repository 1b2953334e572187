"""experiments/sample_efficiency.py's bookkeeping against hand-built curves and
independent computations: the return within a budget, steps to a threshold on
the smoothed curve (a lone spike does not count, a sustained crossing does), the
mean and IQM over seeds with their bootstrap intervals, the rows, the table and
the plot."""

import itertools
import json
import math

import numpy as np
import pytest
import scipy.stats
from conftest import import_experiment


@pytest.fixture(scope="module")
def se():
    return import_experiment("sample_efficiency")


@pytest.fixture(scope="module")
def stats():
    return import_experiment("seed_statistics")


STEPS = np.array([1000, 2000, 3000, 4000, 5000])


def test_the_return_at_a_budget_is_the_last_evaluation_within_it(se):
    returns = np.array([10.0, 50.0, 90.0])
    assert se.at_budget(STEPS[:3], returns, 2999) == 50.0
    assert se.at_budget(STEPS[:3], returns, 3000) == 90.0
    assert math.isnan(se.at_budget(STEPS[:3], returns, 999))


def test_the_smoothed_curve_is_the_mean_of_the_last_three(stats):
    got = stats.smoothed([1.0, 2.0, 3.0, 10.0])
    assert math.isnan(got[0]) and math.isnan(got[1])
    np.testing.assert_allclose(got[2:], [2.0, 5.0])  # (1+2+3)/3, (2+3+10)/3
    assert np.isnan(stats.smoothed([1.0, 2.0])).all()  # too few to smooth


def test_a_lone_spike_does_not_cross_the_threshold(se):
    spike = (STEPS, np.array([10.0, 10.0, 100.0, 10.0, 10.0]))
    # the raw curve passes 50 at 3000; every mean of three is 40
    assert math.isinf(se.steps_to([spike], 50.0, "each"))
    assert math.isinf(se.steps_to([spike, spike], 50.0, "mean"))
    # a spike on the last evaluation of a short run: (10 + 10 + 130) / 3 = 50
    late = (STEPS[:3], np.array([10.0, 10.0, 130.0]))
    assert se.steps_to([late], 50.0, "each") == 3000
    assert math.isinf(se.steps_to([late], 50.1, "each"))


def test_a_sustained_crossing_counts_where_the_mean_of_three_reaches_it(se):
    early = (STEPS, np.array([10.0, 60.0, 60.0, 60.0, 60.0]))
    late = (STEPS, np.array([10.0, 10.0, 60.0, 60.0, 60.0]))
    # early: means of three 43.3 at 3000, 60 at 4000; late: 26.7, 43.3, 60
    assert se.steps_to([early], 50.0, "each") == 4000
    assert se.steps_to([late], 50.0, "each") == 5000
    # each seed must cross: the later of the two
    assert se.steps_to([early, late], 50.0, "each") == 5000
    # mean over seeds of the means of three: 35 at 3000, 51.7 at 4000
    assert se.steps_to([early, late], 50.0, "mean") == 4000
    assert se.steps_to([early, late], 52.0, "mean") == 5000


def test_the_mean_rule_waits_for_every_seed_on_its_own_steps(se):
    # seed b evaluates later (its random data came first): at 3000 only a has
    # three evaluations, so the mean waits for b's third, at 3500.
    a = (np.array([1000, 2000, 3000, 4000]), np.array([90.0, 90.0, 90.0, 90.0]))
    b = (np.array([1500, 2500, 3500]), np.array([30.0, 30.0, 30.0]))
    assert se.steps_to([a, b], 60.0, "mean") == 3500  # (90 + 30) / 2
    assert math.isinf(se.steps_to([a, b], 61.0, "mean"))
    with pytest.raises(ValueError, match="rule='median' is invalid"):
        se.steps_to([a], 1.0, "median")


def test_the_iqm_cuts_a_quarter_from_each_end(stats):
    values = [7.0, 1.0, 100.0, 3.0, 5.0, 2.0, 6.0, 4.0]
    # sorted 1..7, 100: cut 1, 2 and 7, 100; the mean of 3, 4, 5, 6
    assert stats.estimate(values, stats.iqm).value == 4.5
    # three seeds: int(3 / 4) = 0 cut, the IQM is the mean
    assert stats.estimate([1.0, 2.0, 9.0], stats.iqm).value == 4.0


def test_the_interval_is_scipys_percentile_bootstrap(stats):
    values = np.array([3.0, 7.0, 8.0, 12.0, 20.0, 21.0])
    for statistic, scipy_statistic in (
        (stats.mean, np.mean),
        (stats.iqm, lambda x, axis: scipy.stats.trim_mean(x, 0.25, axis=axis)),
    ):
        want = scipy.stats.bootstrap(
            (values,),
            scipy_statistic,
            n_resamples=10_000,
            confidence_level=0.95,
            method="percentile",
            random_state=np.random.default_rng(0),
        ).confidence_interval
        got = stats.estimate(values, statistic)
        assert (got.low, got.high) == (want.low, want.high)


def test_the_interval_matches_the_exact_bootstrap_distribution(stats):
    """All 4**4 resamples of four seeds are equally likely: their means'
    2.5th and 97.5th percentiles are the exact interval, which 10,000 draws
    must find to within the distribution's step (0.25)."""
    values = np.array([0.0, 1.0, 3.0, 10.0])
    means = [np.mean(r) for r in itertools.product(values, repeat=4)]
    low, high = np.percentile(means, [2.5, 97.5])
    got = stats.estimate(values)
    assert got.value == 3.5
    assert abs(got.low - low) <= 0.25 and abs(got.high - high) <= 0.25
    assert got.low > values.min()  # four seeds: narrower than their range


def test_three_seeds_give_their_range(stats):
    # each value alone is a resample with probability 1/27 > 2.5%
    got = stats.estimate([480.0, 500.0, 455.0])
    assert (got.low, got.high) == (455.0, 500.0)
    assert got.value == pytest.approx(1435.0 / 3)
    one = stats.estimate([480.0, math.nan])  # a seed without a value is left out
    assert one.value == 480.0 and math.isnan(one.low) and math.isnan(one.high)
    assert math.isnan(stats.estimate([]).value)


def test_rows_are_checked(se):
    with pytest.raises(ValueError, match="eval_policy='greedy' is invalid"):
        se.Row("X", "tiny", "tiny", (10,), 1.0, "each", 10, eval_policy="greedy")
    with pytest.raises(ValueError, match="rule='any' is invalid"):
        se.Row("X", "tiny", "tiny", (10,), 1.0, "any", 10)


def test_space_invaders_runs_the_breakout_presets_moved_there_sampled(se):
    from janus_jax.config import presets
    from janus_jax.config.run import with_env

    row = se.ROWS["spaceinvaders"]
    for name in (row.world_model, row.model_free):
        config = se.config_for(name, 2, 50_000, row)
        want, _ = with_env(presets.preset(name), "SpaceInvaders-MinAtar", [])
        assert config.env_id == "SpaceInvaders-MinAtar" and config.seed == 2
        assert config.world_model.vae == want.world_model.vae  # re-derived V
        assert config.controller.eval_policy == "sample"
        assert config.controller.eval_every == 50_000
    # the breakout row: its own env, sampled too (mode: two trajectories)
    breakout = se.config_for("breakout-ppo", 0, 50_000, se.ROWS["breakout"])
    assert breakout.env_id == "Breakout-MinAtar"
    assert breakout.controller.eval_policy == "sample"
    assert breakout.controller.total_timesteps == 1_000_000


def test_a_curve_reads_distinct_episodes_where_recorded(se, tmp_path):
    rows = [
        {"phase": "controller", "step": 1, "real_env_steps": 100,
         "eval/return_mean": 5.0, "eval/distinct_episodes": 1},
        {"phase": "controller", "step": 2, "real_env_steps": 150},
        {"phase": "controller", "step": 3, "real_env_steps": 200,
         "eval/return_mean": 7.0},
    ]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "random_data_steps": 1000,
        "real_env_steps": 1200,
        "eval_return_mean": 8.0,
        "eval_distinct_episodes": 32,
    }
    steps, returns, distinct = se.curve(tmp_path, summary)
    np.testing.assert_array_equal(steps, [1100, 1200, 1200])
    np.testing.assert_array_equal(returns, [5.0, 7.0, 8.0])
    assert distinct == [1, None, 32]


def _runs(finals, distinct):
    return [
        {
            "seed": s,
            "steps": [5000, 10000, 15000, 20000],
            "returns": [20.0 + s, 470.0, 480.0, final],
            "distinct": distinct,
            "final": final,
            "eval_policy": "mode",
            "real_env_steps": 20000,
            "wall_time_s": 10.0,
            "random_return": 20.0,
        }
        for s, final in enumerate(finals)
    ]


def test_table_and_plot_from_results(se, tmp_path):
    world_model = _runs([480.0, 490.0, 500.0], [32, 32, 32, 32])
    free = _runs([300.0, 400.0], [1, 1, 32, None])
    results = {"cartpole": {"world model": world_model, "model-free PPO": free}}
    summaries = {"cartpole": se.summarize(se.ROWS["cartpole"], results["cartpole"])}
    cells = summaries["cartpole"]["agents"]["world model"]
    # means of three: 323.3 at 15000, 476.7, 480, 483.3 at 20000 (seeds 0..2)
    assert cells["crossings"] == [20000, 20000, 20000]
    assert cells["steps_to_threshold"] == 20000
    at_10k = cells["budgets"][10_000]
    assert at_10k["values"] == [470.0, 470.0, 470.0]
    assert at_10k["mean"] == {"value": 470.0, "low": 470.0, "high": 470.0}
    assert cells["final"]["mean"]["value"] == 490.0
    assert cells["single_trajectory"] == [0, 12]
    text = se.table(summaries)
    assert "evaluated by the mode policy (argmax / mean actions)" in text
    assert "on the mean of 3 evaluations" in text
    # at 10,000 every seed has 470; at 20,000 their finals
    assert "| world model | 470.0 [470.0, 470.0] | 490.0 [480.0, 500.0] |" in text
    assert (
        "| world model | 0, 1, 2 | 480.0, 490.0, 500.0 | 490.0 [480.0, 500.0] "
        "| 490.0 [480.0, 500.0] | 20,000, 20,000, 20,000 | 20,000 |"
    ) in text
    # model-free: (470 + 480 + 300) / 3 < 475, (470 + 480 + 400) / 3 < 475
    assert "| model-free PPO | 0, 1 | 300.0, 400.0 |" in text
    assert "never, never | 20,000 |" in text
    assert "*model-free PPO: 4 of 6 evaluations were one trajectory" in text
    path = se.plot(results, summaries, tmp_path / "p.png")
    assert path.stat().st_size > 1000


def test_a_sampled_row_says_so_in_the_table(se):
    runs = _runs([30.0, 40.0], [32, 32, 32, 32])
    results = {"world model": runs, "model-free PPO": runs}
    text = se.table({"spaceinvaders": se.summarize(se.ROWS["spaceinvaders"], results)})
    assert "**SpaceInvaders-MinAtar**: evaluated by sampled actions" in text
    assert "one trajectory" not in text


def test_any_env_gets_its_recipe_against_the_model_free_twin(se):
    key, row = se.row_for_env("Asterix-MinAtar", 400_000)
    assert key == "Asterix-MinAtar" and row.name == "Asterix-MinAtar"
    assert (row.world_model, row.model_free) == ("breakout", "breakout-ppo")
    assert row.budgets == (40_000, 100_000, 200_000, 400_000)
    assert row.threshold is None and row.rule == "mean"  # model-free's mean at 400k
    assert row.target_steps == 200_000
    assert row.eval_policy == "sample"  # the MinAtar recipe's evaluation
    config = se.config_for(row.world_model, 1, 20_000, row)
    assert config.env_id == "Asterix-MinAtar" and config.seed == 1
    assert config.world_model.vae.likelihood == "bernoulli"
    # its controller stops at the budget, the random data's steps counted
    random = config.world_model.random_steps
    assert config.controller.total_timesteps == 400_000 - random
    free = se.config_for(row.model_free, 1, 20_000, row)
    assert free.controller.total_timesteps == 400_000
    # the default budget is the twin's own: pendulum-ppo's 500k steps
    _, row = se.row_for_env("MountainCarContinuous-v0")
    assert (row.world_model, row.budgets[-1]) == ("pendulum", 500_000)


def test_env_bookkeeping_on_hand_built_curves(se):
    # two seeds per agent on a made-up env's row: the threshold is model-free's
    # mean at the last budget, (40 + 60) / 2 = 50; the world model's seeds both
    # hold >= 50 over 3 evaluations from 300 real steps (means of three: 50, 55).
    _, row = se.row_for_env("Asterix-MinAtar", 1000)

    def run(seed, steps, returns):
        return {
            "seed": seed,
            "steps": steps,
            "returns": returns,
            "distinct": [None] * len(steps),
            "final": returns[-1],
            "eval_policy": "sample",
            "real_env_steps": steps[-1],
            "wall_time_s": 1.0,
            "random_return": 0.0,
        }

    results = {
        "world model": [run(0, [100, 200, 300, 400], [40.0, 50.0, 60.0, 55.0]),
                        run(1, [100, 200, 300, 400], [50.0, 50.0, 50.0, 60.0])],
        "model-free PPO": [run(0, [500, 1000], [10.0, 40.0]),
                           run(1, [500, 1000], [20.0, 60.0])],
    }  # fmt: skip
    cells = se.summarize(row, results)
    assert cells["threshold"] == 50.0
    wm = cells["agents"]["world model"]
    assert wm["crossings"] == [300, 300]
    assert wm["budgets"][250]["values"] == [50.0, 50.0]
    # two evaluations each: too few for a mean of three
    assert cells["agents"]["model-free PPO"]["crossings"] == [math.inf, math.inf]


def test_the_experiment_refuses_what_it_cannot_run(se, capsys):
    with pytest.raises(SystemExit):
        se.main(["--env", "Asterix-MinAtar", "--envs", "cartpole"])
    assert "not both" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        se.main(["--envs", "cartpole", "--budget", "5000"])
    assert "--budget goes with --env" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        se.main(["--env", "Asterix-MinAtar", "--budget", "10"])
    assert "--budget 10 is invalid" in capsys.readouterr().err
