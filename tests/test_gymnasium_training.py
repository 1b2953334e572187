"""The controller's host path: WorldModelPPOTrainer and evaluation on a
gymnasium vector env (gymnasium's own CartPole, no Box2D, so it is quick)."""

import warnings

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_vector_agent

from janus_jax import (
    PPOConfig,
    act,
)
from janus_jax.config.training import ControllerTrainingConfig
from janus_jax.diagnostics.evaluate import episode_returns
from janus_jax.envs import make
from janus_jax.train.ppo_trainer import WorldModelPPOTrainer


@pytest.fixture
def env():
    with make("CartPole-v1", family="gymnasium", num_envs=2) as env:
        yield env


def test_trainer_learns_from_host_rollouts_and_dreams(env):
    agent = tiny_vector_agent()
    before = agent.params
    trainer = WorldModelPPOTrainer(
        agent,
        env,
        PPOConfig(n_epochs=1, batch_size=16),
        imagination_ratio=0.5,
        imagination_horizon=4,
        num_envs=2,
        mdn_updates=1,
        sequence_length=8,
        updates_per_chunk=2,
    )
    metrics = trainer.train(total_timesteps=64, rollout_length=16)
    # 64 steps = 2 updates of 2 envs x 16 steps = one chunk of 2 updates.
    assert trainer.real_env_steps == 64
    dreams_per_update = trainer._setup(64, 16)[0].dream_starts
    assert 0 < trainer.imagined_steps <= 2 * dreams_per_update * 4
    assert np.isfinite(metrics["ppo/loss"]) and np.isfinite(metrics["mdn/loss"])
    changed = lambda a, b: any(  # noqa: E731
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    assert changed(before.controller, agent.params.controller)
    assert changed(before.mdn_rnn, agent.params.mdn_rnn)
    assert not changed(before.vae, agent.params.vae)  # V is not trained here


def test_evaluation_matches_a_hand_written_episode_loop(env):
    agent = tiny_vector_agent(seed=3)
    key = jax.random.key(0)
    got = episode_returns(key, env, agent.params, 2)
    # The same episodes by hand, from the reset seed evaluation's first round
    # draws (round r starts with split(fold_in(key, r))[0]); argmax actions need
    # no key.
    start_key = jax.random.split(jax.random.fold_in(key, 0))[0]
    obs = env.reset(seed=int(jax.random.randint(start_key, (), 0, 2**31 - 1)))
    carry = agent.mdn_rnn.initial_carry((2,))
    alive, total = np.ones(2, bool), np.zeros(2)
    while alive.any():
        step = act(agent.params, jax.random.key(0), jnp.asarray(obs), carry, True)
        out = env.step(np.asarray(step.action))
        total += out.reward * alive
        alive &= ~(out.terminated | out.truncated)
        carry, obs = step.state, out.obs
    np.testing.assert_allclose(got, total)


def test_a_resumed_run_starts_the_host_envs_episodes_afresh(env):
    trainer = WorldModelPPOTrainer(
        tiny_vector_agent(),
        env,
        PPOConfig(n_epochs=1, batch_size=16),
        imagination_ratio=0.5,
        imagination_horizon=4,
        num_envs=2,
        mdn_updates=1,
        sequence_length=8,
        updates_per_chunk=2,
    )
    trainer.train(total_timesteps=64, rollout_length=16)
    state = trainer.state  # as a checkpoint holds it: mid-episode
    assert np.asarray(state.rollout.episode_return).any()
    restarted = trainer._restarted(state)
    # the envs were reset: no stale return, M's carry from zero, observations
    # of fresh CartPole episodes (every state variable starts in [-0.05, 0.05])
    np.testing.assert_array_equal(restarted.rollout.episode_return, [0.0, 0.0])
    for leaf in jax.tree.leaves(restarted.rollout.policy_state):
        np.testing.assert_array_equal(leaf, 0.0)
    assert np.all(np.abs(np.asarray(restarted.rollout.obs)) <= 0.05)
    # the replay's stored episodes end at the checkpoint
    newest = (int(state.replay.head) - 1) % state.replay.reward.shape[0]
    assert np.asarray(restarted.replay.truncated[newest]).all()
    # everything else is the checkpoint's
    for a, b in zip(
        jax.tree.leaves(state.train), jax.tree.leaves(restarted.train), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_envs_holding_another_count_set_num_envs_and_say_so(env):
    default = ControllerTrainingConfig().num_envs
    assert default != 2
    # Two gymnasium envs and no count asked for: the trainer takes theirs.
    with pytest.warns(UserWarning, match=rf"training.num_envs={default} -> 2: "):
        trainer = WorldModelPPOTrainer(tiny_vector_agent(), env)
    assert trainer.training.num_envs == trainer.num_envs == 2
    # A list of gymnasium envs is stepped as given, whatever count was asked.
    envs = [gymnasium.make("CartPole-v1") for _ in range(3)]
    with pytest.warns(UserWarning, match=r"num_envs=8 -> 3: the envs given hold 3"):
        trainer = WorldModelPPOTrainer(tiny_vector_agent(), envs, num_envs=8)
    assert trainer.training.num_envs == trainer.env.num_envs == 3
    trainer.close()
    # An id is made with the count asked for: nothing changes, nothing is said.
    agent = tiny_vector_agent()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer = WorldModelPPOTrainer(agent, "CartPole-v1", num_envs=2)
    assert trainer.training.num_envs == trainer.env.num_envs == 2
    trainer.close()
