"""gap.py: the window rules, errors and returns by hand, and the whole report of
an M that predicts nothing (zero weights: every predicted latent and reward is
0) against NumPy on the same real episodes of Pendulum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import MDNRNNConfig, NetworkConfig, VAEConfig, WorldModelAgent, agent
from janus_jax.config.training import EVAL_POLICIES
from janus_jax.diagnostics import gap
from janus_jax.envs import compiled, make
from janus_jax.models import mdn_rnn


def test_windows_hold_no_episode_end_before_their_last_step():
    ended = np.array([0, 0, 1, 0, 0, 0], bool)
    # length 3 = steps s, s+1 and the frame after: s=1 and s=2 see step 2 end
    np.testing.assert_array_equal(gap.window_starts(ended, 3), [0, 3])
    np.testing.assert_array_equal(gap.window_starts(ended, 3, stride=3), [0, 3])
    np.testing.assert_array_equal(gap.window_starts(ended, 2), [0, 1, 3, 4])
    assert gap.window_starts(ended, 7).size == 0


def test_prediction_errors_against_the_copy_of_the_first_frame():
    first = np.array([[0.0], [1.0]])  # S=2, one dimension
    real = np.array([[[1.0], [3.0]], [[1.0], [1.0]]])  # [S, K=2, 1]
    predicted = np.array([[[1.0], [2.0]], [[0.0], [1.0]]])
    errors = gap.prediction_errors(predicted, real, first, (1, 2))
    # k=1: model (0 + 1) / 2, copy (1 + 0) / 2; k=2: model (1 + 0) / 2, copy (9 + 0) / 2
    assert errors == {1: (0.5, 0.5), 2: (0.5, 4.5)}


def test_window_returns_stop_after_a_termination():
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    terminated = np.array([0, 1, 0, 0, 0], bool)
    got = gap.window_returns(rewards, terminated, np.array([0, 1, 2]), 3)
    np.testing.assert_array_equal(got, [1 + 2, 2, 3 + 4 + 5])


@pytest.fixture(scope="module")
def blind_m():
    """A Pendulum agent whose M has zero weights, and the gymnax env (200-step
    episodes without terminations: long windows)."""
    agent_ = WorldModelAgent(
        (3,),
        1,
        True,
        vae_config=VAEConfig(observation_size=3, latent_dim=3),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=3, action_dim=1, hidden_dim=8, num_mixtures=2
        ),
        action_low=(-2.0,),
        action_high=(2.0,),
        controller_config=NetworkConfig(layer_sizes=(8,)),
    )
    params = agent_.params
    zero = jax.tree.map(jnp.zeros_like, params.mdn_rnn)
    return params.replace(mdn_rnn=zero), make("Pendulum-v1", num_envs=2)


def test_a_blind_m_scores_the_real_latents_own_size(blind_m):
    params, env = blind_m
    key, steps_t = jax.random.key(3), 260  # one episode end per env, at 200
    report = gap.measure(
        key,
        env,
        params,
        num_steps=steps_t,
        horizons=(1, 10),
        return_horizon=20,
        stride=5,
        temperatures=(1.0,),
        dreams_per_start=2,
    )
    # The same episode, rolled out here as measure rolls it out.
    run_key, _ = jax.random.split(key)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (2,))
    state = env.start(jax.random.fold_in(run_key, 1), carry)
    _, steps = compiled(env, agent.act_greedy, steps_t)(params, state, run_key)
    z = np.asarray(steps.info.latent, np.float64)  # [T, E, Z]
    ended = np.asarray(steps.terminated | steps.truncated)
    for k in (1, 10):
        model, copy = [], []
        for e in range(2):
            for s in range(0, steps_t - k, 5):
                if ended[s : s + k, e].any():
                    continue
                model.append(np.mean(z[s + k, e] ** 2))  # M predicts 0
                copy.append(np.mean((z[s, e] - z[s + k, e]) ** 2))
        row = report["open_loop"][str(k)]
        assert row["starts"] == len(model) > 0
        np.testing.assert_allclose(row["latent_mse"], np.mean(model), rtol=1e-5)
        np.testing.assert_allclose(
            row["latent_mse_copy_last"], np.mean(copy), rtol=1e-5
        )
        assert row["frame_mse"] > 0 and row["frame_mse_copy_last"] >= 0
    # Pendulum pays at most 0 a step; a blind M's reward head says 0 everywhere.
    returns = report["returns"]
    rewards = np.asarray(steps.reward, np.float64)
    real = [
        rewards[s : s + 20, e].sum()
        for e in range(2)
        for s in range(0, steps_t - 19, 5)
        if not np.asarray(steps.truncated)[s : s + 19, e].any()
    ]
    assert returns["starts"] == len(real)
    np.testing.assert_allclose(returns["real_mean"], np.mean(real), rtol=1e-5)
    dream = returns["dream"]["1.0"]
    assert dream["mean"] == 0.0
    np.testing.assert_allclose(dream["mean_abs_gap"], -np.mean(real), rtol=1e-5)
    assert dream["correlation"] is None


def _real_window_mean(steps, horizon, stride, steps_t):
    rewards = np.asarray(steps.reward, np.float64)
    truncated = np.asarray(steps.truncated)
    return np.mean(
        [
            rewards[s : s + horizon, e].sum()
            for e in range(rewards.shape[1])
            for s in range(0, steps_t - horizon + 1, stride)
            if not truncated[s : s + horizon - 1, e].any()
        ]
    )


def test_the_gap_of_the_sampled_policy_is_measured_on_its_own_episodes(blind_m):
    params, env = blind_m
    key, steps_t = jax.random.key(5), 60
    kwargs = dict(
        num_steps=steps_t,
        horizons=(1,),
        return_horizon=20,
        stride=5,
        temperatures=(1.0,),
        dreams_per_start=1,
    )
    reports = {
        p: gap.measure(key, env, params, policy=p, **kwargs) for p in EVAL_POLICIES
    }
    run_key, _ = jax.random.split(key)
    for policy, deterministic in (("mode", True), ("sample", False)):
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (2,))
        state = env.start(jax.random.fold_in(run_key, 1), carry)

        def act(p, k, o, c, deterministic=deterministic):
            return agent.act(p, k, o, c, deterministic)

        _, steps = compiled(env, act, steps_t)(params, state, run_key)
        assert reports[policy]["policy"] == policy
        np.testing.assert_allclose(
            reports[policy]["returns"]["real_mean"],
            _real_window_mean(steps, 20, 5, steps_t),
            rtol=1e-5,
        )
    # An untrained C's sampled torques are not its mean torques.
    assert reports["mode"]["returns"]["real_mean"] != pytest.approx(
        reports["sample"]["returns"]["real_mean"], rel=1e-3
    )


def test_an_unknown_policy_is_refused(blind_m):
    params, env = blind_m
    with pytest.raises(ValueError, match="policy='greedy' is invalid"):
        gap.measure(jax.random.key(0), env, params, num_steps=30, policy="greedy")
