"""Custom reward models in the controller's training (the seed's "Custom Reward
Models"): a pure function and a learned flax module score the dreams, checked
against NumPy computations of the same function on the dreamed latents and
actions; the learned one fits real rewards (a linear probe), rides in the
checkpoints and resumes exactly."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import PPOConfig, WorldModelAgent
from janus_jax.config.models import MDNRNNConfig, NetworkConfig, VAEConfig
from janus_jax.imagination import ActInfo
from janus_jax.models import mdn_rnn, reward
from janus_jax.optim import init_train_state, make_optimizer
from janus_jax.records import Transition, Windows
from janus_jax.run.checkpoint import PhaseCheckpoints
from janus_jax.train import WorldModelPPOTrainer, control
from janus_jax.train.fit import fit_chunk
from janus_jax.train.loop import RunIO

Z, A = 2, 2  # CartPole: 2 discrete actions


class LinearReward(nn.Module):
    """The seed's LearnedRewardModel with one linear layer: w.[z, a, z'] + b."""

    @nn.compact
    def __call__(self, z_t, a_t, z_next):
        x = jnp.concatenate([z_t, a_t, z_next], axis=-1)
        return nn.Dense(1)(x)[..., 0]


def _numpy_linear(variables, z_t, a_t, z_next):
    dense = variables["params"]["Dense_0"]
    x = np.concatenate([z_t, a_t, z_next], axis=-1)
    return x @ np.asarray(dense["kernel"])[:, 0] + np.asarray(dense["bias"])[0]


def quarter(z_t, a_t, z_next):
    """A reward M's head never predicts for CartPole (whose rewards are 1)."""
    return 0.25 + 0.0 * jnp.sum(z_t)


def _agent() -> WorldModelAgent:
    return WorldModelAgent(
        (4,),
        A,
        vae_config=VAEConfig(observation_size=4, latent_dim=Z, hidden_sizes=(8,)),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=Z, action_dim=A, hidden_dim=8, num_mixtures=2
        ),
        controller_config=NetworkConfig(layer_sizes=(8,)),
        seed=0,
    )


def _trainer(reward_model, run_dir=None, io=None, **fields) -> WorldModelPPOTrainer:
    settings = dict(
        imagination_ratio=0.5,
        imagination_horizon=4,
        num_envs=2,
        sequence_length=4,
        updates_per_chunk=2,
        checkpoint_every=1,
        replay_steps=64,
        total_timesteps=128,
        rollout_length=16,
    )
    settings.update(fields)
    return WorldModelPPOTrainer(
        _agent(),
        "CartPole-v1",
        PPOConfig(n_epochs=1, minibatch_size=16),
        run_dir=run_dir,
        io=io,
        reward_model=reward_model,
        **settings,
    )


def _windows(key, rewards_of=None, num=6, length=5) -> Windows:
    """Random windows in M's terms (latents, one-hot actions), the last two steps
    of every other window masked out; rewards ``rewards_of(z_t)`` or random."""
    z_key, a_key, r_key = jax.random.split(key, 3)
    latents = jax.random.normal(z_key, (num, length + 1, Z))
    actions = jax.nn.one_hot(jax.random.randint(a_key, (num, length), 0, A), A)
    mask = np.ones((num, length), np.float32)
    mask[::2, -2:] = 0.0
    if rewards_of is None:
        rewards = jax.random.normal(r_key, (num, length))
    else:
        rewards = rewards_of(latents[:, :-1])
    rewards = rewards * mask  # padding has reward 0, as the replay's does
    return Windows(latents, actions, rewards, jnp.zeros_like(rewards), mask)


def test_the_reward_loss_is_the_masked_squared_error_numpy_computes():
    model = reward.RewardModel(module=LinearReward())
    variables = reward.init(jax.random.key(0), model, Z, A)
    windows = _windows(jax.random.key(1))
    got, metrics = reward.loss(model, variables, windows)
    obs = np.asarray(windows.obs)
    predicted = _numpy_linear(variables, obs[:, :-1], windows.actions, obs[:, 1:])
    mask = np.asarray(windows.mask)
    want = np.sum((predicted - windows.rewards) ** 2 * mask) / np.sum(mask)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert metrics["reward/mse"] == got


def test_a_learned_reward_model_fits_rewards_linear_in_z():
    model = reward.RewardModel(module=LinearReward())
    weights = jnp.array([1.5, -0.5])
    batches = jax.vmap(lambda k: _windows(k, lambda z: z @ weights + 0.3))(
        jax.random.split(jax.random.key(2), 300)
    )
    state = init_train_state(
        reward.init(jax.random.key(3), model, Z, A),
        make_optimizer(0.05, 1.0),
        jax.random.key(4),
    )
    probe = jax.tree.map(lambda x: x[0], batches)
    loss = lambda s: reward.loss(model, s.params, probe)[0]  # noqa: E731
    before = float(loss(state))
    state, _ = fit_chunk(
        state,
        batches,
        loss_fn=lambda v, w, k: reward.loss(model, v, w, k),
        optimizer=make_optimizer(0.05, 1.0),
    )
    after = float(loss(state))
    assert after < 1e-3 < 0.1 * before
    kernel = np.asarray(state.params["params"]["Dense_0"]["kernel"])[:, 0]
    np.testing.assert_allclose(kernel[:Z], weights, atol=0.05)
    np.testing.assert_allclose(kernel[Z + A :], 0.0, atol=0.05)  # z_next's
    # One-hot actions sum to 1: only their weights plus the bias are determined.
    bias = float(state.params["params"]["Dense_0"]["bias"][0])
    np.testing.assert_allclose(kernel[Z : Z + A] + bias, 0.3, atol=0.05)


class Wide(nn.Module):
    @nn.compact
    def __call__(self, z_t, a_t, z_next):
        return nn.Dense(1)(z_t)  # [..., 1]: not squeezed


def test_reward_model_arguments_are_checked():
    model = reward.RewardModel(module=LinearReward())
    assert reward.as_dream_reward(None) is None
    assert reward.as_dream_reward(quarter) is quarter
    assert reward.as_dream_reward(model) is model
    assert reward.as_dream_reward(LinearReward()) == model
    with pytest.raises(ValueError, match="reward_model=3 is invalid"):
        reward.as_dream_reward(3)
    with pytest.raises(ValueError, match="RewardModel.module="):
        reward.RewardModel(module=quarter)
    with pytest.raises(ValueError, match="RewardModel.learning_rate=0"):
        reward.RewardModel(module=LinearReward(), learning_rate=0)
    with pytest.raises(ValueError, match="RewardModel.max_grad_norm=-1"):
        reward.RewardModel(module=LinearReward(), max_grad_norm=-1)
    with pytest.raises(ValueError, match=r"returns shape \(2, 1\)"):
        reward.init(jax.random.key(0), reward.RewardModel(module=Wide()), Z, A)


def _rollout(key, steps=5, envs=3) -> Transition:
    """A real rollout in latents, as the dreams start from it."""
    latent = jax.random.normal(key, (steps, envs, Z))
    carry = mdn_rnn.initial_carry(_agent().mdn_rnn.config, (steps, envs))
    zeros = jnp.zeros((steps, envs))
    hidden = mdn_rnn.hidden(carry)
    info = ActInfo(latent, carry, zeros, zeros, zeros, jnp.zeros_like(hidden), hidden)
    return Transition(latent, zeros, zeros, zeros, zeros, latent, info)


@pytest.mark.parametrize("learned", [False, True])
def test_the_dreams_score_with_the_reward_model_as_numpy_says(learned):
    trainer = _trainer(None)
    setup, _ = trainer._setup(128, 16)
    setup = dataclasses.replace(setup, dream_from_replay=False, dream_starts=7)
    params = trainer.agent.params
    real, key = _rollout(jax.random.key(5)), jax.random.key(6)
    heads = control.dream(setup, params, real, key)
    if learned:
        model = reward.RewardModel(module=LinearReward())
        variables = reward.init(jax.random.key(7), model, Z, A)
        setup = dataclasses.replace(setup, dream_reward=model)
        dreamed = control.dream(setup, params, real, key, None, variables)
        score = lambda *x: _numpy_linear(variables, *x)  # noqa: E731
    else:
        setup = dataclasses.replace(setup, dream_reward=quarter)
        dreamed = control.dream(setup, params, real, key)
        score = lambda z, a, zn: np.full(z.shape[:-1], 0.25)  # noqa: E731
    np.testing.assert_array_equal(dreamed.next_obs, heads.next_obs)
    one_hot = np.eye(A, dtype=np.float32)[np.asarray(dreamed.action)]
    want = score(np.asarray(dreamed.obs), one_hot, np.asarray(dreamed.next_obs))
    np.testing.assert_allclose(
        dreamed.reward, want * dreamed.mask, rtol=1e-5, atol=1e-6
    )
    assert not np.allclose(dreamed.reward, heads.reward)


def test_the_ppo_batch_of_a_run_with_a_reward_function_sees_its_rewards():
    trainer = _trainer(quarter)
    metrics = trainer.train()
    setup, _ = trainer._setup(128, 16)
    # The last chunk: dream/reward is the mean over its updates of each
    # update's summed reward per dream, dream/steps the chunk's dreamed steps.
    per_step = metrics["dream/reward"] * setup.dream_starts * 2 / metrics["dream/steps"]
    np.testing.assert_allclose(per_step, 0.25, rtol=1e-5)
    assert trainer.reward_fn is quarter


class _Interrupted(Exception):
    pass


def test_a_learned_reward_model_trains_is_checkpointed_and_resumes_exactly(
    tmp_path,
):
    model = reward.RewardModel(module=LinearReward(), learning_rate=0.05)
    whole = _trainer(model)
    metrics = whole.train()
    final = whole.state.reward.params
    assert "reward/mse" in metrics
    # CartPole pays 1 a step: the bias moved from Dense's initial 0 towards 1.
    assert 0.3 < float(final["params"]["Dense_0"]["bias"][0]) <= 1.2
    # The trained reward_fn is the model with those variables.
    z, a = np.array([0.3, -0.2], np.float32), np.array([0.0, 1.0], np.float32)
    np.testing.assert_allclose(
        whole.reward_fn(z, a, z), _numpy_linear(final, z, a, z), rtol=1e-5
    )

    # Stopped after the first of two chunks (checkpointed), then resumed.
    run_dir = tmp_path / "run"
    stopped = _trainer(model, run_dir=run_dir)
    run_chunk = stopped._chunk_fn

    def stop_at_second(setup):
        inner = run_chunk(setup)

        def chunk(state, done, count):
            if done:  # the first chunk was checkpointed
                raise _Interrupted
            return inner(state, done, count)

        return chunk

    stopped._chunk_fn = stop_at_second
    with pytest.raises(_Interrupted):
        stopped.train()
    with PhaseCheckpoints(run_dir / "checkpoints" / "controller") as checkpoints:
        assert checkpoints.all_steps() == [2]
    resumed = _trainer(model, io=RunIO(run_dir=run_dir, resume=True, progress=False))
    resumed.train()
    jax.tree.map(
        np.testing.assert_array_equal, resumed.state.reward, whole.state.reward
    )
    # The final checkpoint holds the learned model's variables.
    with PhaseCheckpoints(run_dir / "checkpoints" / "controller") as checkpoints:
        saved, _ = checkpoints.restore(resumed.state)
    jax.tree.map(np.testing.assert_array_equal, saved.reward.params, final)


def test_a_reward_model_that_would_never_be_used_or_taught_is_refused():
    model = reward.RewardModel(module=LinearReward())
    with pytest.raises(ValueError, match="mdn_updates=0"):
        _trainer(model, mdn_updates=0).train()
    with pytest.raises(ValueError, match="imagination_ratio=0"):
        _trainer(quarter, imagination_ratio=0.0).train()
    free = WorldModelAgent((4,), A, features="observation")
    with pytest.raises(ValueError, match="no world model"):
        WorldModelPPOTrainer(free, "CartPole-v1", reward_model=quarter)
    with pytest.raises(ValueError, match="reward_model=.* is invalid"):
        _trainer("reward")
