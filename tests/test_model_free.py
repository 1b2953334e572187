"""Model-free PPO on raw observations (controller.features="observation"): the
baseline every sample-efficiency comparison uses, run by the same trainer,
evaluation and logs as the world-model agent."""

import json

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import SignBandit

from janus_jax import PPOConfig, WorldModelAgent
from janus_jax.agent import act
from janus_jax.config import presets
from janus_jax.config.models import NetworkConfig
from janus_jax.config.run import apply_overrides
from janus_jax.envs import GymnasiumEnv
from janus_jax.imagination import observation_features
from janus_jax.train import ControllerTrainingConfig, WorldModelPPOTrainer, pipeline


def test_observation_features_flatten_and_scale_pixels():
    pixels = jnp.full((2, 3, 3, 2), 51, jnp.uint8)
    np.testing.assert_allclose(observation_features(pixels), np.full((2, 18), 0.2))
    vectors = jnp.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(observation_features(vectors), vectors)


def test_a_model_free_agent_acts_on_the_observation_and_carries_nothing():
    agent = WorldModelAgent((2,), 2, features="observation", seed=0)
    assert agent.vae is None and agent.mdn_rnn is None
    obs = jnp.array([[1.0, 1.0], [-1.0, 1.0]])
    step = act(agent.params, jax.random.key(0), obs, None, deterministic=True)
    assert step.state is None
    np.testing.assert_array_equal(step.info.latent, obs)
    with pytest.raises(ValueError, match="cannot dream"):
        agent.imagine_trajectory(np.zeros(2, np.float32))


@pytest.fixture
def sign_bandit():
    gymnasium.register("SignBandit-v0", entry_point=SignBandit)
    yield "SignBandit-v0"
    gymnasium.registry.pop("SignBandit-v0")


def _trained_on_sign_bandit(env_id, reward_scale=1.0):
    """Returns (C's parameters, the final evaluation) of model-free PPO trained
    for 2,560 steps on the sign bandit."""
    env = GymnasiumEnv.from_envs([gymnasium.make(env_id) for _ in range(8)])
    agent = WorldModelAgent(
        (2,),
        2,
        features="observation",
        controller_config=NetworkConfig(layer_sizes=(16,)),
        seed=0,
    )
    trainer = WorldModelPPOTrainer(
        agent,
        env,
        PPOConfig(
            learning_rate=3e-3, n_epochs=4, minibatch_size=32, reward_scale=reward_scale
        ),
        training=ControllerTrainingConfig(
            features="observation",
            imagination_ratio=0.0,
            rollout_length=16,
            num_envs=8,
            updates_per_chunk=5,
            eval_episodes=16,
            eval_every=640,
        ),
    )
    trainer.train(total_timesteps=2560)
    final = trainer.evaluate(trainer.state, 2560)
    trainer.close()
    return trainer.state.train.params, final


def test_model_free_ppo_solves_the_sign_bandit(sign_bandit):
    _, final = _trained_on_sign_bandit(sign_bandit)
    assert final["eval/return_mean"] >= 0.95  # random: 0.5


def test_the_critic_learns_the_scaled_return_and_evaluation_the_env_s(sign_bandit):
    """With reward_scale 0.1 the solved bandit's one-step return is 0.1 to C's
    critic, while the evaluation still counts the env's reward of 1."""
    from janus_jax.models import controller

    params, final = _trained_on_sign_bandit(sign_bandit, reward_scale=0.1)
    assert final["eval/return_mean"] >= 0.95
    _, values = controller.apply(params, jnp.array([[1.0, 1.0], [-1.0, 1.0]]))
    np.testing.assert_allclose(values, 0.1, atol=0.03)


def test_features_observation_refuses_dreams():
    with pytest.raises(ValueError, match="dreams nothing: set imagination_ratio=0"):
        apply_overrides(presets.tiny(), ["controller.features=observation"])
    with pytest.raises(ValueError, match="features='pixels' is invalid"):
        ControllerTrainingConfig(features="pixels")


def test_the_tiny_preset_runs_model_free_with_periodic_evaluation(tmp_path):
    config = apply_overrides(
        presets.tiny(),
        [
            "controller.imagination_ratio=0",
            "controller.features=observation",
            "controller.eval_every=256",
        ],
    )
    summary = pipeline.run(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert not (run / "data").exists()  # no random data: nothing to model
    assert summary["random_data_steps"] == 0
    assert summary["real_env_steps"] == summary["controller_env_steps"] == 1024
    assert (run / "plots" / "returns.png").exists()
    assert not (run / "plots" / "dream.gif").exists()
    rows = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().split("\n")
        if line
    ]
    evaluated = [
        r["real_env_steps"]
        for r in rows
        if r["phase"] == "controller" and "eval/return_mean" in r
    ]
    # 2 envs x 32 steps x 4 updates = 256 steps a chunk: an evaluation each
    assert evaluated == [256, 512, 768, 1024]
    assert all("mdn/loss" not in r for r in rows)


def test_dream_updates_take_more_ppo_steps_on_dreams_only():
    """Each real rollout gives one PPO update on real + dreamed transitions,
    then dream_updates more on fresh dreams alone: the optimiser's step count
    says how many minibatches each saw."""
    from janus_jax.config import presets as p

    config = p.tiny()
    agent = WorldModelAgent(
        (4,),
        2,
        vae_config=config.world_model.vae,
        mdn_rnn_config=config.world_model.mdn_rnn,
        controller_config=config.network,
    )
    training = ControllerTrainingConfig(
        rollout_length=32,
        num_envs=2,
        imagination_horizon=8,
        dream_updates=3,
        updates_per_chunk=2,
        mdn_updates=0,
    )
    trainer = WorldModelPPOTrainer(
        agent,
        "CartPole-v1",
        PPOConfig(n_epochs=2, minibatch_size=32),
        training=training,
    )
    trainer.train(total_timesteps=128)
    dreamed = trainer._setup(128, 32)[0].dream_starts * 8
    assert dreamed > 0
    real = 2 * 32
    # per real rollout: 2 epochs over (real + dreamed) / 32 minibatches, then
    # 3 dream updates of 2 epochs over dreamed / 32 minibatches; 2 rollouts
    want = 2 * (2 * (real + dreamed) // 32 + 3 * 2 * dreamed // 32)
    assert int(trainer.state.train.step) == want
    with pytest.raises(ValueError, match="dream_updates=2 needs dreams"):
        WorldModelPPOTrainer(
            agent,
            "CartPole-v1",
            training=ControllerTrainingConfig(imagination_ratio=0.0, dream_updates=2),
        ).train(total_timesteps=64)
