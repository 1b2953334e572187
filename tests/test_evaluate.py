"""Evaluation episodes: their lengths against hand counts, and evaluations whose
episodes are all one trajectory (an env that resets to one state, played by the
mode policy) noticed in the metrics, the summary and the console, once per run."""

import json

import jax
import numpy as np
import pytest

from janus_jax import WorldModelAgent
from janus_jax.cli import main
from janus_jax.diagnostics import evaluate
from janus_jax.diagnostics.evaluate import (
    Evaluation,
    distinct_episodes,
    evaluate_episodes,
    single_trajectory_notice,
)
from janus_jax.envs import make
from janus_jax.train.loop import RunIO

# gymnax's SpaceInvaders-MinAtar resets to one state (the aliens' block, the
# cannon at column 5) and steps without randomness: a deterministic policy
# replays one episode. CartPole's reset draws its state uniformly.
DETERMINISTIC_ENV = "SpaceInvaders-MinAtar"


def _observation_agent(env_id: str, seed: int = 0) -> WorldModelAgent:
    env = make(env_id, num_envs=1)
    return WorldModelAgent(
        env.spec.observation_shape,
        env.spec.action.dim,
        features="observation",
        seed=seed,
    )


def test_distinct_episodes_counts_return_and_length_pairs():
    # (1, 3) twice, (2, 3), (2, 4): three different episodes
    assert distinct_episodes([1.0, 1.0, 2.0, 2.0], [3, 3, 3, 4]) == 3
    # one return, two lengths: two episodes, though their returns agree
    assert distinct_episodes([5.0, 5.0], [7, 8]) == 2
    assert distinct_episodes([5.0, 5.0, 5.0], [7, 7, 7]) == 1
    with pytest.raises(ValueError, match=r"returns \(2,\) and lengths \(3,\)"):
        distinct_episodes([1.0, 2.0], [1, 2, 3])


def test_a_single_trajectory_needs_two_episodes_alike():
    alike = Evaluation(np.array([4.0, 4.0]), np.array([9, 9]))
    assert alike.single_trajectory
    assert "all 2 episodes were one trajectory" in single_trajectory_notice(
        alike, deterministic=True
    )
    assert "eval_policy=sample" in single_trajectory_notice(alike, True)
    assert "although actions were sampled" in single_trajectory_notice(alike, False)
    one = Evaluation(np.array([4.0]), np.array([9]))
    assert not one.single_trajectory  # one episode is no evidence of anything
    assert single_trajectory_notice(one, True) == ""


def test_a_mode_evaluation_of_few_trajectories_is_noticed():
    # Breakout's two ball directions: 32 mode episodes, two trajectories
    two = Evaluation(np.repeat([3.0, 7.0], 16), np.repeat([40, 90], 16))
    line = single_trajectory_notice(two, deterministic=True)
    assert "the 32 episodes were only 2 distinct trajectories" in line
    assert "eval_policy=sample" in line
    # sampled actions that happen to repeat: not the mode policy's trap
    assert single_trajectory_notice(two, deterministic=False) == ""
    # 4 of 32 is one in 8: noticed; 5 of 32 is not
    four = Evaluation(np.repeat([1.0, 2.0, 3.0, 4.0], 8), np.repeat([5, 5, 5, 5], 8))
    assert "only 4 distinct" in single_trajectory_notice(four, True)
    five = Evaluation(
        np.concatenate([np.repeat([1.0, 2.0, 3.0, 4.0], 7), [5.0] * 4]),
        np.full(32, 5),
    )
    assert five.distinct == 5 and single_trajectory_notice(five, True) == ""


def test_cartpole_lengths_are_its_returns_across_chunks(monkeypatch):
    """CartPole pays 1 for every step, the last included: each episode's length
    is its return. Chunks of 8 steps make most episodes end in a later chunk
    than the first, so the count must carry across chunks."""
    monkeypatch.setattr(evaluate, "CHUNK_STEPS", 8)
    env = make("CartPole-v1", num_envs=6)
    got = evaluate_episodes(jax.random.key(3), env, None, 9)
    assert got.returns.shape == got.lengths.shape == (9,)
    assert got.lengths.dtype == np.int64
    np.testing.assert_array_equal(got.lengths, got.returns.astype(np.int64))
    assert got.lengths.max() > 8  # some episode did span chunks
    # a random policy on random resets: no two runs of episodes alike
    assert got.distinct > 1 and not got.single_trajectory


def test_episodes_cut_at_max_steps_count_the_steps_they_ran():
    # CartPole cannot fall within 5 steps of a reset (|angle| <= 0.05 rad, the
    # limit is 0.21): every episode is cut, 5 steps and a return of 5.
    env = make("CartPole-v1", num_envs=3)
    got = evaluate_episodes(jax.random.key(0), env, None, 3, max_steps=5)
    np.testing.assert_array_equal(got.lengths, [5, 5, 5])
    np.testing.assert_array_equal(got.returns, [5.0, 5.0, 5.0])


def test_episode_returns_are_the_evaluations_returns():
    env = make("CartPole-v1", num_envs=4)
    agent = _observation_agent("CartPole-v1")
    key = jax.random.key(1)
    returns = evaluate.episode_returns(key, env, agent.params, 4)
    got = evaluate_episodes(key, env, agent.params, 4)
    np.testing.assert_array_equal(returns, got.returns)


def test_the_mode_policy_on_a_deterministic_env_is_one_trajectory():
    env = make(DETERMINISTIC_ENV, num_envs=4)
    params = _observation_agent(DETERMINISTIC_ENV).params
    mode = evaluate_episodes(jax.random.key(0), env, params, 6, max_steps=2000)
    assert mode.distinct == 1 and mode.single_trajectory
    assert np.all(mode.returns == mode.returns[0])
    assert np.all(mode.lengths == mode.lengths[0])
    assert "mode policy is deterministic" in single_trajectory_notice(mode, True)
    sampled = evaluate_episodes(
        jax.random.key(0), env, params, 6, deterministic=False, max_steps=2000
    )
    assert sampled.distinct > 1 and single_trajectory_notice(sampled, False) == ""


def test_the_mode_policy_on_random_resets_is_not_one_trajectory():
    env = make("CartPole-v1", num_envs=8)
    params = _observation_agent("CartPole-v1").params
    got = evaluate_episodes(jax.random.key(0), env, params, 8)
    assert got.distinct > 1
    assert single_trajectory_notice(got, True) == ""


def test_a_run_prints_each_notice_once(capsys):
    io = RunIO(progress=False)
    io.notice("single_trajectory", "evaluation: one trajectory")
    io.notice("single_trajectory", "evaluation: one trajectory")
    io.notice("single_trajectory", "")  # no notice to give: nothing printed
    io.notice("other", "")
    assert capsys.readouterr().out == "evaluation: one trajectory\n"


def _console(argv) -> str:
    """Returns the stdout of ``janus-jax ARGV`` run in-process (exit status 0)."""
    import contextlib
    import io

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(argv) == 0
    return stdout.getvalue()


@pytest.fixture(scope="module")
def single_trajectory_run(tmp_path_factory):
    """A model-free run of the tiny preset on SpaceInvaders-MinAtar, evaluated
    by the mode policy twice while C trains (train-controller), then resumed
    for the final evaluation (train --resume): (run dir, the two stdouts)."""
    out = tmp_path_factory.mktemp("space") / "run"
    options = [
        "--preset", "tiny", "--env", DETERMINISTIC_ENV, "--out", str(out),
        "--no-progress",
        "--set", "controller.imagination_ratio=0",
        "--set", "controller.features=observation",
        "--set", "controller.total_timesteps=512",
        "--set", "controller.eval_every=256",
        "--set", "controller.eval_episodes=4",
        "--set", "controller.eval_policy=mode",
    ]  # fmt: skip
    training = _console(["train-controller", *options])
    final = _console(["train", "--resume", *options])
    return out, training, final


def test_a_single_trajectory_run_says_so_once(single_trajectory_run):
    out, training, final = single_trajectory_run
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    evals = [r for r in rows if r["phase"] == "controller" and "eval/return_std" in r]
    assert [r["real_env_steps"] for r in evals] == [256, 512]
    assert all(r["eval/distinct_episodes"] == 1 for r in evals)
    assert all(r["eval/return_std"] == 0.0 for r in evals)
    # two evaluations while C trained: the notice once, not twice
    assert training.count("episodes were one trajectory") == 1, training
    assert "--set controller.eval_policy=sample" in training
    # the final evaluation (a run of its own here) says it too
    assert final.count("all 4 episodes were one trajectory") == 1, final
    assert [r["eval/distinct_episodes"] for r in rows if r["phase"] == "eval"] == [1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_distinct_episodes"] == 1
    assert summary["eval_return_std"] == 0.0


@pytest.mark.parametrize("policy", ["mode", "sample"])
def test_janus_jax_evaluate_reports_distinct_episodes(
    capsys, single_trajectory_run, policy
):
    out = single_trajectory_run[0]
    capsys.readouterr()
    argv = ["evaluate", "--run", str(out), "--episodes", "4"]
    assert main([*argv, "--policy", policy]) == 0
    stdout, stderr = capsys.readouterr()
    result = json.loads(stdout)  # stdout stays one JSON line
    if policy == "mode":
        assert result["distinct_episodes"] == 1
        assert "janus-jax evaluate --policy sample" in stderr
    else:
        assert result["distinct_episodes"] > 1
        assert "one trajectory" not in stderr


def test_host_envs_stop_stepping_when_the_last_first_episode_ends():
    """gymnasium's CartPole in chunks of 256: the round stops on the step the
    longest first episode ends (each length is its return, so the count is
    known), and its episodes are those of the chunks run whole."""
    with make("CartPole-v1", num_envs=5, family="gymnasium") as env:
        steps = []
        step = env.step
        env.step = lambda actions: steps.append(1) or step(actions)
        stopped = evaluate_episodes(jax.random.key(4), env, None, 5)
        assert len(steps) == stopped.lengths.max() < evaluate.CHUNK_STEPS
        np.testing.assert_array_equal(stopped.lengths, stopped.returns)
        rollout = env.rollout  # the same evaluation, every chunk run whole
        env.rollout = lambda *args, until_ended=None, **kw: rollout(*args, **kw)
        whole = evaluate_episodes(jax.random.key(4), env, None, 5)
        assert len(steps) == stopped.lengths.max() + evaluate.CHUNK_STEPS
    np.testing.assert_array_equal(stopped.returns, whole.returns)
    np.testing.assert_array_equal(stopped.lengths, whole.lengths)


def test_the_mean_policy_earns_what_the_samples_earn_on_average():
    """A one-step env paying the action in [0, 1]: C's loc pushed to 1.2 with
    std 1, so its mode tanh(1.2) pays 0.92 while its samples pay less on
    average. The mean policy earns the samples' average (4,096 episodes)."""
    from probe_envs import ActionPays

    from janus_jax.envs import GymnasiumEnv

    agent = WorldModelAgent(
        (1,),
        1,
        features="observation",
        continuous_actions=True,
        action_low=(0.0,),
        action_high=(1.0,),
    )
    net = agent.controller.params.net
    actor = net["params"]["actor"]
    last = sorted(actor)[-1]
    actor[last]["bias"] = actor[last]["bias"] + 1.2
    agent.controller.params = agent.controller.params.replace(net=net)
    env = GymnasiumEnv.from_envs([ActionPays() for _ in range(64)])
    key = jax.random.key(5)
    mean = evaluate_episodes(key, env, agent.params, 64, deterministic="mean")
    mode = evaluate_episodes(key, env, agent.params, 64, deterministic=True)
    sampled = evaluate_episodes(key, env, agent.params, 4096, deterministic=False)
    assert mean.distinct == 1 and mode.distinct == 1  # both deterministic
    np.testing.assert_allclose(mean.returns[0], sampled.returns.mean(), atol=0.015)
    assert mode.returns[0] - sampled.returns.mean() > 0.05
    # the agent's own step acts the same in a plain loop, and names bad choices
    state = agent.reset(1)
    one = np.ones(1, np.float32)
    action, _ = agent.act(one, state, jax.random.key(0), deterministic="mean")
    np.testing.assert_allclose(action[0], mean.returns[0], rtol=1e-5)
    with pytest.raises(ValueError, match="deterministic='median' is invalid"):
        agent.act(one, state, deterministic="median")
