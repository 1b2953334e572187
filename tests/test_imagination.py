"""imagine: one compiled scan, deterministic for a key, masked after a predicted done,
and consistent with replaying its own actions through the MDN-RNN."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import ActionSpec, MDNRNNConfig, NetworkConfig, VAEConfig, imagination
from janus_jax.imagination import Trajectory, WorldModelParams, imagine
from janus_jax.models import controller, mdn_rnn, vae

Z, H = 3, 16


def _params(
    continuous=False, done_bias=None, done_scale=1.0, predict_reward=True, seed=0
):
    keys = jax.random.split(jax.random.key(seed), 3)
    action = (
        ActionSpec(continuous=True, dim=2, low=(-1.0, 0.0), high=(1.0, 2.0))
        if continuous
        else ActionSpec(continuous=False, dim=3)
    )
    m_config = MDNRNNConfig(
        latent_dim=Z,
        action_dim=action.dim,
        hidden_dim=H,
        num_mixtures=2,
        predict_reward=predict_reward,
    )
    m_params = mdn_rnn.init(keys[1], m_config)
    if done_bias is not None:
        done = m_params.net["params"]["done"]
        done = {
            "bias": jnp.full_like(done["bias"], done_bias),
            "kernel": done["kernel"] * done_scale,
        }
        net = {"params": {**m_params.net["params"], "done": done}}
        m_params = m_params.replace(net=net)
    return WorldModelParams(
        vae=vae.init(keys[0], VAEConfig(observation_size=4, latent_dim=Z)),
        mdn_rnn=m_params,
        controller=controller.init(
            keys[2], NetworkConfig(layer_sizes=(8,)), action, Z + H
        ),
    )


def _z0(batch=4, seed=1):
    return jax.random.normal(jax.random.key(seed), (batch, Z))


def _replay(params, traj):
    """Returns the MDN-RNN's outputs [T, B, ...] for a dream's recorded latents and
    actions, unrolled from the zero state: an independent re-run of the dynamics."""
    actions = controller.encode_action(params.controller.action, traj.actions)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, traj.latents.shape[1:2])
    return mdn_rnn.unroll(params.mdn_rnn, carry, traj.latents, actions)[1]


class TestImagine(chex.TestCase):
    def test_shapes_and_finiteness(self):
        for continuous in (False, True):
            traj = imagine(jax.random.key(0), _params(continuous), _z0(), None, 7, 1.0)
            chex.assert_shape([traj.latents, traj.next_latents], (7, 4, Z))
            chex.assert_shape(traj.hiddens, (7, 4, H))
            chex.assert_shape(
                [traj.log_probs, traj.values, traj.rewards, traj.dones, traj.mask],
                (7, 4),
            )
            chex.assert_shape(traj.raw_actions, (7, 4, 2) if continuous else (7, 4))
            chex.assert_shape(traj.last_value, (4,))
            chex.assert_tree_all_finite(traj)
            # The dream is a chain: each step starts where the last one ended.
            np.testing.assert_array_equal(traj.latents[1:], traj.next_latents[:-1])
            np.testing.assert_array_equal(traj.latents[0], _z0())

    def test_compiles_once_for_a_shape(self):
        params = _params()

        @jax.jit
        @chex.assert_max_traces(n=1)
        def run(key, params, z0, temperature):
            return imagine(key, params, z0, None, 10, temperature)

        for seed, tau in [(0, 1.0), (1, 0.5), (2, 1.15)]:
            run(jax.random.key(seed), params, _z0(seed=seed), jnp.float32(tau))
        chex.clear_trace_counter()

    def test_deterministic_for_a_key_and_independent_across_the_batch(self):
        params = _params(continuous=True)
        a = imagine(jax.random.key(5), params, _z0(), None, 8)
        b = imagine(jax.random.key(5), params, _z0(), None, 8)
        chex.assert_trees_all_equal(a, b)
        c = imagine(jax.random.key(6), params, _z0(), None, 8)
        assert not np.allclose(a.next_latents, c.next_latents)
        # Changing start state 0 leaves the dreams of the other start states untouched.
        z0 = _z0().at[0].set(10.0)
        d = imagine(jax.random.key(5), params, z0, None, 8)
        chex.assert_trees_all_equal(
            jax.tree.map(lambda x: x[:, 1:], a._replace(last_value=a.last_value[None])),
            jax.tree.map(lambda x: x[:, 1:], d._replace(last_value=d.last_value[None])),
        )

    def test_actions_and_latents_replay_through_the_mdn_rnn(self):
        # At tau = 0 each next latent is the mean of the most likely component that
        # the MDN-RNN predicts after the recorded action: replay them with unroll.
        params = _params(continuous=True)
        traj = imagine(jax.random.key(1), params, _z0(), None, 6, 0.0)
        out = _replay(params, traj)
        best = np.argmax(np.asarray(out.mixture_logits), -1)[..., None]
        expected = np.take_along_axis(np.asarray(out.means), best, -1)[..., 0]
        np.testing.assert_allclose(traj.next_latents, expected, rtol=1e-5, atol=1e-5)
        lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
        assert (
            (np.asarray(traj.actions) >= lo) & (np.asarray(traj.actions) <= hi)
        ).all()

    def test_rewards_stop_after_a_predicted_done(self):
        one = lambda z, a, zn: 1.0  # noqa: E731
        always = imagine(
            jax.random.key(0),
            _params(done_bias=30.0, done_scale=0.0),
            _z0(),
            None,
            5,
            1.0,
            reward_fn=one,
        )
        np.testing.assert_array_equal(always.mask[:, 0], [1, 0, 0, 0, 0])
        np.testing.assert_array_equal(always.dones[:, 0], [1, 0, 0, 0, 0])
        np.testing.assert_array_equal(always.rewards[:, 0], [1, 0, 0, 0, 0])
        never = imagine(
            jax.random.key(0),
            _params(done_bias=-30.0, done_scale=0.0),
            _z0(),
            None,
            5,
            1.0,
            reward_fn=one,
        )
        np.testing.assert_array_equal(never.rewards, np.ones((5, 4)))
        np.testing.assert_array_equal(never.dones, np.zeros((5, 4)))

    def test_mask_equals_replayed_done_predictions(self):
        # A done head that fires at random steps: recompute every raw done by replay,
        # then the mask and rewards in NumPy, independently of imagine's bookkeeping.
        params = _params(done_bias=0.0, done_scale=30.0, seed=3)
        traj = imagine(
            jax.random.key(2), params, _z0(64), None, 12, 1.0, done_mode="threshold"
        )
        out = _replay(params, traj)
        raw_done = np.asarray(out.done_logit) > 0
        alive = np.cumprod(np.vstack([np.ones((1, 64)), 1 - raw_done[:-1]]), axis=0)
        np.testing.assert_array_equal(traj.mask, alive)
        np.testing.assert_array_equal(traj.dones, raw_done * alive)
        np.testing.assert_allclose(
            traj.rewards, np.asarray(out.reward) * alive, rtol=1e-6
        )
        assert 0 < raw_done[0].mean() < 1 and (np.asarray(traj.dones).sum(0) <= 1).all()
        assert (alive[-1] == 0).any() and (alive[-1] == 1).any()

    def test_sampled_dones_end_dreams_at_a_geometric_time(self):
        # A constant p(done) = sigmoid(b) = 0.2: the dream's length (steps with mask
        # 1) is min(Geometric(0.2), T); E = (1 - 0.8^T) / 0.2.
        p, horizon = 0.2, 10
        params = _params(done_bias=float(np.log(p / (1 - p))), done_scale=0.0)
        traj = imagine(jax.random.key(4), params, _z0(4000), None, horizon, 1.0)
        lengths = np.asarray(traj.mask).sum(axis=0)
        expected = (1 - (1 - p) ** horizon) / p
        np.testing.assert_allclose(lengths.mean(), expected, rtol=0.03)
        np.testing.assert_allclose((lengths == 1).mean(), p, atol=0.02)
        # Every dream has at most one done, and nothing counts after it.
        dones = np.asarray(traj.dones)
        assert (dones.sum(axis=0) <= 1).all()
        assert (dones.sum(axis=0)[lengths < horizon] == 1).all()  # cut short by a done
        with pytest.raises(ValueError, match="done_mode='always'"):
            imagine(jax.random.key(0), params, _z0(), None, 5, done_mode="always")

    def test_custom_reward_fn(self):
        def reward_fn(z_t, a_t, z_next):  # the seed's LearnedRewardModel signature
            chex.assert_shape([z_t, z_next], (Z,))
            chex.assert_shape(a_t, (3,))  # the one-hot action vector
            return jnp.sum(z_next) + 10.0 * a_t[2]

        params = _params(done_bias=-30.0, done_scale=0.0)
        traj = imagine(jax.random.key(0), params, _z0(), None, 6, reward_fn=reward_fn)
        expected = np.asarray(traj.next_latents).sum(-1) + 10.0 * (
            np.asarray(traj.actions) == 2
        )
        np.testing.assert_allclose(traj.rewards, expected, rtol=1e-5)

    def test_bad_arguments(self):
        params = _params()
        with pytest.raises(ValueError, match="horizon=0"):
            imagine(jax.random.key(0), params, _z0(), None, 0)
        with pytest.raises(ValueError, match=r"z0 has shape \(3,\)"):
            imagine(jax.random.key(0), params, jnp.zeros(3), None, 5)
        with pytest.raises(ValueError, match="predict_reward=False"):
            imagine(jax.random.key(0), _params(predict_reward=False), _z0(), None, 5)


def test_ppo_batch_bootstraps_at_the_horizon_and_not_after_a_done():
    # Two steps, two dreams: one reaches the horizon (bootstrap from last_value = 10),
    # one is predicted to end at step 0 (its second step is masked out).
    traj = Trajectory(
        latents=jnp.zeros((2, 2, 1)),
        hiddens=jnp.zeros((2, 2, 1)),
        raw_actions=jnp.zeros((2, 2), jnp.int32),
        actions=jnp.zeros((2, 2), jnp.int32),
        log_probs=jnp.zeros((2, 2)),
        values=jnp.array([[1.0, 1.0], [2.0, 5.0]]),
        rewards=jnp.array([[1.0, 1.0], [1.0, 0.0]]),
        dones=jnp.array([[0.0, 1.0], [0.0, 0.0]]),
        mask=jnp.array([[1.0, 1.0], [1.0, 0.0]]),
        next_latents=jnp.zeros((2, 2, 1)),
        last_value=jnp.array([10.0, 7.0]),
    )
    batch = imagination.to_ppo_batch(traj, gamma=0.5, gae_lambda=1.0)
    # Dream 0: A1 = 1 + .5*10 - 2 = 4; A0 = 1 + .5*2 - 1 + .5*4 = 3.
    # Dream 1: A0 = 1 - 1 = 0.
    np.testing.assert_allclose(batch.advantages[:, 0], [3.0, 4.0])
    np.testing.assert_allclose(batch.advantages[0, 1], 0.0)
    np.testing.assert_array_equal(batch.mask, traj.mask)


def test_a_flax_reward_model_plugs_into_imagine_and_the_agent():
    # The README's LearnedRewardModel example, through the jitted agent path too.
    import functools

    import flax.linen as nn

    from janus_jax import WorldModelAgent

    class LearnedRewardModel(nn.Module):
        @nn.compact
        def __call__(self, z_t, a_t, z_next):
            x = jnp.concatenate([z_t, a_t, z_next], axis=-1)
            return nn.Dense(1)(nn.relu(nn.Dense(8)(x)))[..., 0]

    model = LearnedRewardModel()
    reward_params = model.init(
        jax.random.key(0), jnp.zeros(Z), jnp.zeros(3), jnp.zeros(Z)
    )
    reward_fn = functools.partial(model.apply, reward_params)
    params = _params(done_bias=-30.0, done_scale=0.0)
    traj = imagine(jax.random.key(1), params, _z0(), None, 5, reward_fn=reward_fn)
    one_hot = jax.nn.one_hot(traj.actions, 3)
    expected = model.apply(reward_params, traj.latents, one_hot, traj.next_latents)
    np.testing.assert_allclose(traj.rewards, expected, rtol=1e-5, atol=1e-6)

    agent = WorldModelAgent(
        (4,),
        3,
        mdn_rnn_config=MDNRNNConfig(latent_dim=32, action_dim=3),
        vae_config=VAEConfig(observation_size=4, latent_dim=32),
    )
    model32 = LearnedRewardModel()
    p32 = model32.init(jax.random.key(0), jnp.zeros(32), jnp.zeros(3), jnp.zeros(32))
    dream = agent.imagine_trajectory(
        np.zeros(4), 6, reward_fn=functools.partial(model32.apply, p32)
    )
    one_hot = jax.nn.one_hot(dream["actions"], 3)
    expected = model32.apply(p32, dream["latents"], one_hot, dream["next_latents"])
    np.testing.assert_allclose(
        dream["rewards"], expected * dream["mask"], rtol=1e-5, atol=1e-6
    )
