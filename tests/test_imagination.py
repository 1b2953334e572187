"""imagine: one compiled scan, deterministic for a key, masked after a predicted done,
and consistent with replaying its own actions through the MDN-RNN."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    Transition,
    VAEConfig,
    batches,
    imagination,
)
from janus_jax.imagination import (
    ActInfo,
    DreamState,
    PolicyOut,
    WorldModelParams,
    dream_step,
    imagine,
)
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
    actions = controller.encode_action(params.controller.action, traj.action)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, traj.obs.shape[1:2])
    return mdn_rnn.unroll(params.mdn_rnn, carry, traj.obs, actions)[1]


def _last_value(params, traj):
    """Returns V([z, h]) [B] of the state after the horizon (the bootstrap)."""
    info = traj.info
    feats = jnp.concatenate([traj.next_obs[-1], info.next_hidden[-1]], axis=-1)
    return controller.apply(params.controller, feats)[1]


class TestImagine(chex.TestCase):
    def test_shapes_and_finiteness(self):
        for continuous in (False, True):
            params = _params(continuous)
            traj = imagine(jax.random.key(0), params, _z0(), None, 7, 1.0)
            info = traj.info
            assert isinstance(info, ActInfo)
            chex.assert_shape([traj.obs, traj.next_obs, info.latent], (7, 4, Z))
            # a dream keeps h_t, not M's whole carry: h_{t+1} is the next h_t
            assert info.carry is None
            hiddens = info.hidden
            chex.assert_shape([hiddens, info.next_hidden], (7, 4, H))
            np.testing.assert_array_equal(hiddens[1:], info.next_hidden[:-1])
            np.testing.assert_array_equal(hiddens[0], 0.0)
            chex.assert_shape(
                [
                    info.log_prob,
                    info.value,
                    traj.reward,
                    traj.terminated,
                    traj.truncated,
                    traj.mask,
                ],
                (7, 4),
            )
            raw_shape = (7, 4, 2) if continuous else (7, 4)
            chex.assert_shape([info.raw_action, traj.action], raw_shape)
            chex.assert_shape(_last_value(params, traj), (4,))
            chex.assert_tree_all_finite(traj)
            # The dream is a chain: each step starts where the last one ended.
            np.testing.assert_array_equal(traj.obs[1:], traj.next_obs[:-1])
            np.testing.assert_array_equal(traj.obs[0], _z0())
            np.testing.assert_array_equal(info.latent, traj.obs)
            np.testing.assert_array_equal(hiddens[1:], info.next_hidden[:-1])
            np.testing.assert_array_equal(hiddens[0], np.zeros((4, H)))
            # Truncated only where the horizon cuts the dream.
            np.testing.assert_array_equal(
                traj.truncated, np.eye(7)[-1][:, None] * np.ones(4)
            )

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
        assert not np.allclose(a.next_obs, c.next_obs)
        # Changing start state 0 leaves the dreams of the other start states untouched.
        z0 = _z0().at[0].set(10.0)
        d = imagine(jax.random.key(5), params, z0, None, 8)
        assert not np.allclose(a.next_obs[:, 0], d.next_obs[:, 0])
        chex.assert_trees_all_equal(
            jax.tree.map(lambda x: x[:, 1:], a), jax.tree.map(lambda x: x[:, 1:], d)
        )

    def test_actions_and_latents_replay_through_the_mdn_rnn(self):
        # At tau = 0 each next latent is the mean of the most likely component that
        # the MDN-RNN predicts after the recorded action: replay them with unroll.
        params = _params(continuous=True)
        traj = imagine(jax.random.key(1), params, _z0(), None, 6, 0.0)
        out = _replay(params, traj)
        best = np.argmax(np.asarray(out.mixture_logits), -1)[..., None]
        expected = np.take_along_axis(np.asarray(out.means), best, -1)[..., 0]
        np.testing.assert_allclose(traj.next_obs, expected, rtol=1e-5, atol=1e-5)
        lo, hi = np.array([-1.0, 0.0]), np.array([1.0, 2.0])
        assert ((np.asarray(traj.action) >= lo) & (np.asarray(traj.action) <= hi)).all()

    def test_fixed_actions_drive_an_open_loop_dream(self):
        # The pictures' dream: M fed a given action sequence. At tau = 0 each next
        # latent is the mean of the most likely component after that action.
        params = _params(done_bias=30.0, done_scale=0.0)  # M foresees a done at once
        actions = jax.random.randint(jax.random.key(3), (5, 4), 0, 3)
        traj = imagine(
            jax.random.key(1), params, _z0(), None, None, 0.0, actions=actions
        )
        chex.assert_shape(traj.next_obs, (5, 4, Z))  # the horizon is the sequence's
        np.testing.assert_array_equal(traj.action, actions)
        np.testing.assert_array_equal(traj.info.raw_action, actions)
        np.testing.assert_array_equal(traj.info.log_prob, np.zeros((5, 4)))
        np.testing.assert_array_equal(traj.info.value, np.zeros((5, 4)))
        out = _replay(params, traj)
        best = np.argmax(np.asarray(out.mixture_logits), -1)[..., None]
        expected = np.take_along_axis(np.asarray(out.means), best, -1)[..., 0]
        np.testing.assert_allclose(traj.next_obs, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(traj.obs[1:], traj.next_obs[:-1])
        # The latents go on after the done; the mask says what counts.
        np.testing.assert_array_equal(traj.mask[:, 0], [1, 0, 0, 0, 0])

    def test_a_given_policy_acts_on_the_latent_and_hidden_state(self):
        def policy(key, feats):  # one start state: feats [Z + H]
            chex.assert_shape(feats, (Z + H,))
            action = jnp.argmax(feats[:Z]).astype(jnp.int32)
            return PolicyOut(action, action, jnp.sum(feats), feats[0])

        params = _params()
        traj = imagine(jax.random.key(0), params, _z0(), None, 6, 1.0, policy=policy)
        obs, info = np.asarray(traj.obs), traj.info
        feats = np.concatenate([obs, np.asarray(info.hidden)], -1)
        np.testing.assert_array_equal(traj.action, np.argmax(obs, axis=-1))
        np.testing.assert_allclose(info.log_prob, feats.sum(-1), rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(info.value, obs[..., 0])
        # M advanced by the policy's actions: replay them from the zero state.
        action_vectors = controller.encode_action(params.controller.action, traj.action)
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (4,))
        carry, out = mdn_rnn.unroll(params.mdn_rnn, carry, traj.obs, action_vectors)
        np.testing.assert_allclose(
            info.next_hidden[-1], mdn_rnn.hidden(carry), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            traj.reward, np.asarray(out.reward) * traj.mask, rtol=1e-5, atol=1e-6
        )

    def test_dream_step_is_imagines_step(self):
        # imagine's start state i, step t uses split(split(key, B)[i], T)[t].
        params = _params(continuous=True)
        key, z0 = jax.random.key(9), _z0(1)
        traj = imagine(key, params, z0, None, 1, 1.0)
        state = DreamState(
            carry=mdn_rnn.initial_carry(params.mdn_rnn.config),
            latent=z0[0],
            alive=jnp.ones(()),
        )
        step_key = jax.random.split(jax.random.split(key, 1)[0], 1)[0]
        c_params = params.controller
        policy = lambda k, f: imagination.controller_act(c_params, k, f)  # noqa: E731
        next_state, step = dream_step(params, policy, state, step_key, jnp.float32(1.0))
        chex.assert_trees_all_close(
            step._replace(truncated=jnp.ones(())),
            jax.tree.map(lambda x: x[0, 0], traj),
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(next_state.latent, traj.next_obs[0, 0], rtol=1e-5)

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
        np.testing.assert_array_equal(always.terminated[:, 0], [1, 0, 0, 0, 0])
        np.testing.assert_array_equal(always.reward[:, 0], [1, 0, 0, 0, 0])
        never = imagine(
            jax.random.key(0),
            _params(done_bias=-30.0, done_scale=0.0),
            _z0(),
            None,
            5,
            1.0,
            reward_fn=one,
        )
        np.testing.assert_array_equal(never.reward, np.ones((5, 4)))
        np.testing.assert_array_equal(never.terminated, np.zeros((5, 4)))

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
        np.testing.assert_array_equal(traj.terminated, raw_done * alive)
        np.testing.assert_allclose(
            traj.reward, np.asarray(out.reward) * alive, rtol=1e-6
        )
        assert (
            0 < raw_done[0].mean() < 1
            and (np.asarray(traj.terminated).sum(0) <= 1).all()
        )
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
        dones = np.asarray(traj.terminated)
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
        expected = np.asarray(traj.next_obs).sum(-1) + 10.0 * (
            np.asarray(traj.action) == 2
        )
        np.testing.assert_allclose(traj.reward, expected, rtol=1e-5)

    def test_bad_arguments(self):
        params = _params()
        with pytest.raises(ValueError, match="horizon=0"):
            imagine(jax.random.key(0), params, _z0(), None, 0)
        with pytest.raises(ValueError, match=r"z0 has shape \(3,\)"):
            imagine(jax.random.key(0), params, jnp.zeros(3), None, 5)
        with pytest.raises(ValueError, match="predict_reward=False"):
            imagine(jax.random.key(0), _params(predict_reward=False), _z0(), None, 5)
        actions = jnp.zeros((4, _z0().shape[0]), jnp.int32)
        with pytest.raises(ValueError, match="not both"):
            imagine(
                jax.random.key(0), params, _z0(), actions=actions, policy=lambda k, f: 0
            )
        with pytest.raises(ValueError, match="horizon=5 differs from the 4 steps"):
            imagine(jax.random.key(0), params, _z0(), None, 5, actions=actions)


def _value_is_first_feature(latent_dim=1, hidden_dim=1):
    """Returns controller params whose critic is V([z, h]) = z[0], exactly."""
    action = ActionSpec(continuous=False, dim=2)
    feature_dim = latent_dim + hidden_dim
    c_params = controller.init(
        jax.random.key(0), NetworkConfig(layer_sizes=()), action, feature_dim
    )
    kernel = jnp.zeros((feature_dim, 1)).at[0, 0].set(1.0)
    critic = {"Dense_0": {"kernel": kernel, "bias": jnp.zeros((1,))}}
    net = {"params": {**c_params.net["params"], "critic": critic}}
    return c_params.replace(net=net)


def test_ppo_batch_bootstraps_at_the_horizon_and_not_after_a_done():
    # Two steps, two dreams: one reaches the horizon (bootstrap from V = 10 at
    # z_2), one is predicted to end at step 0 (its second step is masked out).
    # V([z, h]) = z[0], so next_obs sets every V(s_{t+1}).
    c_params = _value_is_first_feature()
    values = jnp.array([[1.0, 1.0], [2.0, 5.0]])
    latent = jnp.arange(4.0).reshape(2, 2, 1)
    hidden = 10.0 + jnp.arange(4.0).reshape(2, 2, 1)
    transition = Transition(
        obs=latent,
        action=jnp.zeros((2, 2), jnp.int32),
        reward=jnp.array([[1.0, 1.0], [1.0, 0.0]]),
        terminated=jnp.array([[0.0, 1.0], [0.0, 0.0]]),
        truncated=jnp.array([[0.0, 0.0], [1.0, 1.0]]),
        next_obs=jnp.array([[2.0, 5.0], [10.0, 7.0]])[..., None],
        info=ActInfo(
            latent=latent,
            carry=None,  # a dream keeps h_t only
            raw_action=jnp.array([[0, 1], [1, 0]], jnp.int32),
            log_prob=jnp.full((2, 2), -0.5),
            value=values,
            next_hidden=jnp.zeros((2, 2, 1)),
            hidden=hidden,
        ),
        mask=jnp.array([[1.0, 1.0], [1.0, 0.0]]),
    )
    batch = batches.to_ppo_batch(c_params, transition, gamma=0.5, gae_lambda=1.0)
    # Dream 0: A1 = 1 + .5*10 - 2 = 4; A0 = 1 + .5*2 - 1 + .5*4 = 3.
    # Dream 1: A0 = 1 - 1 = 0 (terminated: no bootstrap from V = 5).
    np.testing.assert_allclose(batch.advantages[:, 0], [3.0, 4.0])
    np.testing.assert_allclose(batch.advantages[0, 1], 0.0)
    np.testing.assert_allclose(batch.returns[:, 0], [4.0, 6.0])
    np.testing.assert_array_equal(batch.mask, transition.mask)
    np.testing.assert_array_equal(batch.values, values)
    np.testing.assert_array_equal(batch.raw_actions, transition.info.raw_action)
    np.testing.assert_array_equal(batch.log_probs, transition.info.log_prob)
    # C learns on what it saw: [z_t, h_t], h_t from the carry before the step.
    np.testing.assert_array_equal(
        batch.features, np.concatenate([latent, hidden], axis=-1)
    )


def test_ppo_batch_of_a_dream_bootstraps_from_v_after_the_horizon():
    # GAE in NumPy on a real dream: next values are V of the recorded next state,
    # and the horizon's step bootstraps from V([z_H, h_H]).
    params = _params(done_bias=0.0, done_scale=30.0, seed=3)
    traj = imagine(jax.random.key(2), params, _z0(16), None, 6, 1.0)
    gamma, lam = 0.9, 0.8
    batch = batches.to_ppo_batch(params.controller, traj, gamma, lam)
    info = traj.info
    values = np.asarray(info.value)
    next_values = np.concatenate([values[1:], _last_value(params, traj)[None]])
    rewards, dones = np.asarray(traj.reward), np.asarray(traj.terminated)
    assert 0 < dones.sum() < 16
    advantages, following = np.zeros_like(values), np.zeros(16)
    for t in reversed(range(6)):
        delta = rewards[t] + gamma * (1 - dones[t]) * next_values[t] - values[t]
        following = delta + gamma * lam * (1 - dones[t]) * following
        advantages[t] = following
    # After a done, the dream's steps are masked: compare the steps that count.
    mask = np.asarray(traj.mask, bool)
    np.testing.assert_allclose(
        np.asarray(batch.advantages)[mask], advantages[mask], rtol=1e-4, atol=1e-5
    )
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
    one_hot = jax.nn.one_hot(traj.action, 3)
    expected = model.apply(reward_params, traj.obs, one_hot, traj.next_obs)
    np.testing.assert_allclose(traj.reward, expected, rtol=1e-5, atol=1e-6)

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


def _rollout_with_ends(ends):
    """A real rollout [T=6, E=3] of 4-float observations whose C saw z = V(obs)
    and whose episodes end at the (t, e) in ``ends`` (the true last observation
    in next_obs, the next episode's first in obs[t + 1])."""
    config = VAEConfig(observation_size=4, latent_dim=2, hidden_sizes=(8,))
    params = vae.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    steps, envs = 6, 3
    stream = rng.standard_normal((steps + 1, envs, 4)).astype(np.float32)
    obs, next_obs = stream[:-1].copy(), stream[1:].copy()
    terminated = np.zeros((steps, envs), bool)
    for t, e in ends:
        terminated[t, e] = True
        next_obs[t, e] = rng.standard_normal(4)  # the final observation
    latent = np.asarray(vae.get_latent(params, jnp.asarray(obs)))
    zeros = jnp.zeros((steps, envs))
    info = ActInfo(jnp.asarray(latent), None, zeros, zeros, zeros, None, None)
    real = Transition(
        jnp.asarray(obs),
        jnp.zeros((steps, envs), jnp.int32),
        zeros,
        jnp.asarray(terminated),
        jnp.zeros((steps, envs), bool),
        jnp.asarray(next_obs),
        info,
        zeros,
    )
    return params, real


@pytest.mark.parametrize(
    "ends",
    [[], [(1, 0), (4, 2)], [(t, e) for t in range(5) for e in range(3)]],
    ids=["no end", "two ends", "more ends than the budget"],
)
def test_reused_latents_are_v_of_every_next_observation(ends):
    params, real = _rollout_with_ends(ends)
    expected = np.asarray(vae.get_latent(params, real.next_obs))  # every one
    for reuse in (False, True):
        got = jax.jit(batches.to_latents, static_argnums=2)(params, real, reuse)
        np.testing.assert_allclose(got.next_obs, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.obs, real.info.latent)
