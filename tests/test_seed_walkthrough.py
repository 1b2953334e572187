"""The PyTorch World Model README's Python snippets (shared/seed), run in order as
a user would paste them, shrunk in size only.

What differs from the seed, and why: ``CarRacing-v3`` for the retired v2 (with
a short time limit), numpy for torch, fewer episodes/epochs/steps. The custom
env of "Using with Your Environments" is an instance of an unregistered class,
as there. Everything else is as written there,
including ``device='cuda'`` on this CPU machine (a warning, not an error) and
the channels-first ``observation_shape=(3, 64, 64)``.
"""

import warnings

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import VAEConfig, VariationalAutoencoder, WorldModelAgent
from janus_jax.config.models import MDNRNNConfig, NetworkConfig, PPOConfig
from janus_jax.train import (
    WorldModelPPOTrainer,
    WorldModelTrainer,
    WorldModelTrainingConfig,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class _Probe(gym.Env):
    """A stand-in for the seed's SymbolicRegressionEnv: 4-vector observations,
    two actions, 10-step episodes."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 4).astype(np.float32), {}

    def step(self, action):
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 4).astype(np.float32)
        return obs, float(action), self.t >= 10, False, {}


def test_the_seed_walkthrough_runs_as_pasted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # 1. Pre-train the world model components
    env = gym.make("CarRacing-v3", max_episode_steps=40)  # Works with visual envs
    with pytest.warns(UserWarning, match="cuda"):
        config = WorldModelTrainingConfig(
            num_episodes=2,
            vae_epochs=2,
            mdn_epochs=2,
            mdn_batch_size=2,
            sequence_length=8,
            device="cuda",
        )
    trainer = WorldModelTrainer(env, config)
    vae, mdn_rnn = trainer.train_world_model()

    # 2. Create a world model agent
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        agent = WorldModelAgent(
            observation_shape=(3, 64, 64),  # CarRacing observation shape
            action_dim=env.action_space.shape[0],
            continuous_actions=True,
            device="cuda",
        )
    said = " ".join(str(w.message) for w in caught)
    assert "channels-first" in said and "cuda" in said
    assert agent.observation_shape == (64, 64, 3)
    agent.vae.load_state_dict(vae.state_dict())
    agent.mdn_rnn.load_state_dict(mdn_rnn.state_dict())

    # 3. Train the controller with PPO
    ppo_config = PPOConfig(learning_rate=3e-4, n_epochs=10, batch_size=64)
    assert ppo_config.minibatch_size == 64
    trainer = WorldModelPPOTrainer(
        world_model_agent=agent,
        envs=[env],  # Can use multiple environments
        config=ppo_config,
        imagination_ratio=0.5,  # 50% imagined data
        imagination_horizon=50,  # Look 50 steps into the future
        use_tensorboard=True,
        updates_per_chunk=1,  # shrunk: the default rounds up to 10 updates
    )
    before = jax.tree.leaves(agent.controller.params)
    trainer.train(total_timesteps=64, rollout_length=64)  # shrunk: one update
    trainer.close()
    assert trainer.real_env_steps == 64 and trainer.imagined_steps > 0
    after = jax.tree.leaves(agent.controller.params)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    # the agent took CarRacing's action box: gas and brake in [0, 1]
    assert agent.action_spec.low == (-1.0, 0.0, 0.0)

    # Modular design: the VAE alone
    v = VariationalAutoencoder(VAEConfig(input_channels=3, latent_dim=32))
    observation = np.zeros((64, 64, 3), np.uint8)
    latent = v.get_latent(observation)
    assert latent.shape == (32,)

    # Imagination-based planning
    current_observation = np.full((64, 64, 3), 128, np.uint8)
    trajectory = agent.imagine_trajectory(
        initial_obs=current_observation, horizon=50, temperature=1.0
    )
    assert trajectory["latents"].shape == (50, 32)
    assert trajectory["actions"].shape == (50, 3)

    # Flexible training: more or less imagination
    for ratio in (0.8, 0.2):
        t = WorldModelPPOTrainer(
            imagination_ratio=ratio, world_model_agent=agent, envs=[env]
        )
        assert t.training.imagination_ratio == ratio
        t.close()

    # Several gymnasium envs of one spec are stepped together
    envs = [gym.make("CarRacing-v3", max_episode_steps=40) for _ in range(2)]
    t = WorldModelPPOTrainer(world_model_agent=agent, envs=envs, config=ppo_config)
    assert t.num_envs == 2
    t.close()
    with pytest.raises(ValueError, match="made alike"):
        WorldModelPPOTrainer(
            world_model_agent=agent,
            envs=[gym.make("CarRacing-v3"), gym.make("CarRacing-v3", continuous=False)],
        )

    # Using with your PPOAgent's network config
    controller_config = NetworkConfig(
        layer_sizes=[256, 256], activation="tanh", use_layer_norm=True
    )
    other = WorldModelAgent(
        controller_config=controller_config,
        observation_shape=(64, 64, 3),
        action_dim=3,
        continuous_actions=True,
    )
    assert other.controller_config.layer_sizes == (256, 256)

    # Using with your environments: an instance of the user's own class, as
    # written (no id registered; collection makes copies of it)
    env = _Probe()
    small = WorldModelTrainingConfig(
        num_episodes=4, vae_epochs=1, mdn_epochs=1, mdn_batch_size=2
    )
    trainer = WorldModelTrainer(env, small)
    trainer.train_world_model()
    assert trainer.collect().num_episodes == 4

    # Configuration options
    VAEConfig(
        input_channels=3,
        input_height=64,
        input_width=64,
        latent_dim=32,
        hidden_channels=[32, 64, 128, 256],
        beta=1.0,
    )
    MDNRNNConfig(
        latent_dim=32,
        action_dim=4,
        hidden_dim=256,
        num_mixtures=5,
        rnn_type="lstm",
        rnn_layers=1,
        temperature=1.0,
    )

    # Custom reward models, in flax
    class LearnedRewardModel(nn.Module):
        @nn.compact
        def __call__(self, z_t, a_t, z_next):
            x = jnp.concatenate([z_t, a_t, z_next], axis=-1)
            return nn.Dense(1)(nn.relu(nn.Dense(128)(x)))[..., 0]

    model = LearnedRewardModel()
    reward_params = model.init(
        jax.random.key(0), jnp.zeros(32), jnp.zeros(3), jnp.zeros(32)
    )
    dreamed = agent.imagine_trajectory(
        current_observation,
        horizon=10,
        reward_fn=lambda *x: model.apply(reward_params, *x),
    )
    assert dreamed["rewards"].shape == (10,)

    # Dreaming for data augmentation (3 dreams instead of 1000, 50 steps instead
    # of 100, the planning dream's length: a 64x64 frame space)
    space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    synthetic_data = []
    for _ in range(3):
        start_obs = space.sample()
        trajectory = agent.imagine_trajectory(start_obs, horizon=50)
        synthetic_data.append(trajectory)
    assert all(t["latents"].shape == (50, 32) for t in synthetic_data)
