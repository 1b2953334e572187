"""The CartPole World Models experiment end to end, at toy sizes."""

import json
import math
import pathlib
import sys

import jax.numpy as jnp
import numpy as np
import pytest

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
TINY = [
    "--collect-envs", "4", "--collect-steps", "64", "--window", "8",
    "--chunk-steps", "5", "--vae-steps", "10", "--mdn-steps", "10",
    "--hidden-dim", "8", "--mdn-batch", "8", "--ppo-steps", "256",
    "--num-envs", "2", "--rollout-steps", "16", "--updates-per-chunk", "2",
    "--minibatches", "2", "--epochs", "1", "--horizon", "4", "--eval-episodes", "4",
]  # fmt: skip


@pytest.fixture(scope="module")
def experiment():
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        import cartpole_world_model

        yield cartpole_world_model
    finally:
        sys.path.remove(str(EXPERIMENTS))


def test_tiny_run_writes_finite_summary_and_metrics(experiment, tmp_path):
    summary = experiment.main(TINY + ["--out", str(tmp_path), "--seed", "3"])
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["eval_return_mean"] == summary["eval_return_mean"]
    for field in (
        "eval_return_mean", "eval_return_std", "random_return_mean", "wall_time_s",
    ):  # fmt: skip
        assert math.isfinite(written[field]), field
    assert written["env_id"] == "CartPole-v1" and written["seed"] == 3
    assert written["eval_episodes"] == 4
    # 4 x 64 random steps, then 256 controller steps (8 updates of 2 x 16).
    assert written["real_env_steps"] == 4 * 64 + 256
    assert written["imagined_steps"] > 0  # the default ratio 0.5 dreams
    for phase in ("vae", "mdn", "ppo"):
        losses = written["final_losses"][phase]
        assert losses and all(math.isfinite(v) for v in losses.values()), phase
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert {row["phase"] for row in rows} == {"collect", "vae", "mdn", "ppo", "eval"}
    # CartPole gives 1 per step: no episode is shorter than a handful of steps.
    assert 1 <= written["random_return_mean"] <= 500


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--imagination-ratio", "1.5", "must be >= 0.0 and <= 1.0"),
        ("--horizon", "0", "must be >= 1"),
        ("--minibatches", "3", "must divide"),
    ],
)
def test_bad_values_are_rejected_in_one_line(experiment, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_info:
        experiment.main([flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_windows_never_mix_episodes(experiment):
    parts = sys.modules["cartpole_data"]
    steps = 10
    # One env: terminated after step 3, time limit after step 7.
    terminated = np.zeros((steps, 1), bool)
    terminated[3] = True
    truncated = np.zeros((steps, 1), bool)
    truncated[7] = True
    obs = np.arange(steps, dtype=np.float32)[:, None, None].repeat(4, axis=2)
    traj = parts.Transition(
        obs=jnp.asarray(obs),
        action=jnp.arange(steps)[:, None],
        reward=jnp.ones((steps, 1)),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=jnp.asarray(obs + 100.0),  # o_{t+1} as the env reported it
    )
    assert int(parts.count_windows(traj, 4)) == 3
    windows = parts.make_windows(traj, 4, 4)
    np.testing.assert_array_equal(
        windows.mask, [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]]
    )
    np.testing.assert_array_equal(windows.actions[:3, 0], [0, 4, 8])
    np.testing.assert_array_equal(windows.terminated[0], [0, 0, 0, 1])
    assert not windows.terminated[1].any()  # truncation is not a termination
    # o_0 then the reported next observations, the final one before the reset.
    np.testing.assert_array_equal(windows.obs[1, :, 0], [4, 104, 105, 106, 107])
    np.testing.assert_array_equal(windows.rewards[2], [1, 1, 0, 0])


def test_the_quick_start_run_learns_cartpole(experiment, tmp_path):
    # The Quick start's first line at its default sizes, with a shorter controller
    # phase: the world-model pipeline must give a controller far above random.
    summary = experiment.main(["--ppo-steps", "150000", "--out", str(tmp_path)])
    assert summary["random_return_mean"] < 40
    assert summary["eval_return_mean"] > 150, summary["eval_return_mean"]
    assert summary["imagined_steps"] > 0
