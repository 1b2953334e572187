"""GAE against hand-computed values, the clipped loss on constructed ratios, and
PPO learning on probe problems whose best policy is known."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import ActionSpec, NetworkConfig, PPOConfig, optim, ppo
from janus_jax.models import controller


class TestGAE(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_hand_computed_termination_and_truncation(self):
        # Column 0 terminates at t=1 (its next value must be ignored) and is cut by
        # the rollout's end at t=2 (bootstrapped). Column 1 hits a time limit at t=0
        # (bootstrapped from its final observation's value 4.0) and terminates at t=2.
        rewards = jnp.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
        values = jnp.array([[0.5, 0.2], [1.0, 0.3], [1.5, 0.4]])
        next_values = jnp.array([[1.0, 4.0], [9.0, 0.4], [2.0, 7.0]])
        terminated = jnp.array([[0, 0], [1, 0], [0, 1]])
        truncated = jnp.array([[0, 1], [0, 0], [0, 0]])
        advantages, returns = self.variant(ppo.gae, static_argnames=())(
            rewards, values, next_values, terminated, truncated, 0.9, 0.5
        )
        # By hand, gamma = 0.9 and lambda = 0.5:
        # col 0: A2 = 3 + .9*2 - 1.5 = 3.3; A1 = 2 - 1 = 1.0;
        #        A0 = 1 + .9*1 - .5 + .45*1 = 1.85
        # col 1: A2 = 1 - .4 = .6; A1 = 1 + .9*.4 - .3 + .45*.6 = 1.33;
        #        A0 = 1 + .9*4 - .2 = 4.4
        expected = np.array([[1.85, 4.4], [1.0, 1.33], [3.3, 0.6]])
        np.testing.assert_allclose(advantages, expected, rtol=1e-6)
        np.testing.assert_allclose(returns, expected + np.asarray(values), rtol=1e-6)

    def test_matches_a_numpy_loop_on_random_data(self):
        rng = np.random.default_rng(0)
        shape = (50, 4)
        r, v, nv = (rng.normal(size=shape) for _ in range(3))
        term = rng.random(shape) < 0.1
        trunc = (rng.random(shape) < 0.1) & ~term
        adv, _ = ppo.gae(
            jnp.asarray(r),
            jnp.asarray(v),
            jnp.asarray(nv),
            jnp.asarray(term),
            jnp.asarray(trunc),
            0.97,
            0.9,
        )
        expected = np.zeros(shape)
        last = np.zeros(4)
        for t in reversed(range(50)):
            delta = r[t] + 0.97 * nv[t] * (1 - term[t]) - v[t]
            last = delta + 0.97 * 0.9 * (1 - (term[t] | trunc[t])) * last
            expected[t] = last
        np.testing.assert_allclose(adv, expected, rtol=1e-4, atol=1e-5)


def _discrete_setup(n=5, feature_dim=3):
    action = ActionSpec(continuous=False, dim=2)
    params = controller.init(
        jax.random.key(0), NetworkConfig(layer_sizes=(8,)), action, feature_dim
    )
    features = jax.random.normal(jax.random.key(1), (n, feature_dim))
    actions = jnp.array([0, 1, 0, 1, 1][:n], jnp.int32)
    policy, values = controller.apply(params, features)
    return (
        params,
        features,
        actions,
        controller.log_prob(params, policy, actions),
        values,
    )


def _batch_with_ratios(ratios, advantages):
    params, features, actions, new_log_probs, values = _discrete_setup(len(ratios))
    batch = ppo.Batch(
        features=features,
        raw_actions=actions,
        log_probs=new_log_probs - jnp.log(jnp.asarray(ratios)),
        values=values,
        advantages=jnp.asarray(advantages, jnp.float32),
        returns=values,  # zero value error
        mask=jnp.ones(len(ratios)),
    )
    return params, batch


class TestPPOLoss(chex.TestCase):
    config = PPOConfig(
        clip_range=0.2, value_coef=0.0, entropy_coef=0.0, normalize_advantages=False
    )

    def test_clip_acts_as_specified_on_constructed_ratios(self):
        ratios = [0.5, 0.9, 1.5, 0.5, 1.5]
        advantages = [1.0, -1.0, 1.0, -1.0, -1.0]
        params, batch = _batch_with_ratios(ratios, advantages)
        loss, metrics = ppo.loss(params, batch, jax.random.key(0), self.config)
        # min(r A, clip(r, .8, 1.2) A): .5, -.9, 1.2 (clipped), -.8 (clipped), -1.5
        np.testing.assert_allclose(
            float(metrics["ppo/policy_loss"]),
            -np.mean([0.5, -0.9, 1.2, -0.8, -1.5]),
            rtol=1e-5,
        )
        np.testing.assert_allclose(
            float(loss), float(metrics["ppo/policy_loss"]), rtol=1e-6
        )
        np.testing.assert_allclose(
            float(metrics["ppo/clip_fraction"]), 4 / 5, rtol=1e-6
        )
        r = np.array(ratios)
        np.testing.assert_allclose(
            float(metrics["ppo/approx_kl"]), np.mean(r - 1 - np.log(r)), rtol=1e-4
        )

    def test_clipped_samples_give_no_gradient_and_others_do(self):
        params, clipped = _batch_with_ratios([1.5, 0.5], [1.0, -1.0])
        grads = jax.grad(
            lambda p: ppo.loss(p, clipped, jax.random.key(0), self.config)[0]
        )(params)
        actor = grads.net["params"]["actor"]
        assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(actor))
        params, free = _batch_with_ratios([0.5, 1.5], [1.0, -1.0])
        grads = jax.grad(
            lambda p: ppo.loss(p, free, jax.random.key(0), self.config)[0]
        )(params)
        chex.assert_tree_all_finite(grads)
        assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 0

    def test_full_loss_gradients_are_finite(self):
        params, batch = _batch_with_ratios(
            [0.7, 1.0, 1.3, 2.0, 0.1], [3.0, -2.0, 0.5, 1.0, -1.0]
        )
        config = PPOConfig(clip_range_vf=0.2, entropy_coef=0.01)
        batch = batch._replace(returns=batch.values + 1.0)
        grads = jax.grad(lambda p: ppo.loss(p, batch, jax.random.key(0), config)[0])(
            params
        )
        chex.assert_tree_all_finite(grads)

    def test_masked_transitions_do_not_count(self):
        params, batch = _batch_with_ratios(
            [0.5, 0.9, 1.5, 0.5, 1.5], [1.0, -1.0, 1.0, -1.0, -1.0]
        )
        masked = batch._replace(mask=jnp.array([1.0, 1.0, 0.0, 0.0, 0.0]))
        _, metrics = ppo.loss(params, masked, jax.random.key(0), self.config)
        np.testing.assert_allclose(
            float(metrics["ppo/policy_loss"]), -np.mean([0.5, -0.9]), rtol=1e-5
        )

    def test_explained_variance_matches_numpy(self):
        rng = np.random.default_rng(0)
        targets = rng.normal(size=100)
        predictions = targets + 0.5 * rng.normal(size=100)
        expected = 1 - np.var(targets - predictions) / np.var(targets)
        got = ppo.explained_variance(
            jnp.asarray(predictions), jnp.asarray(targets), jnp.ones(100)
        )
        np.testing.assert_allclose(float(got), expected, rtol=1e-4)


def _train_bandit(params, reward_fn, feature_fn, updates=40, n=256, seed=0):
    """Runs PPO on one-step episodes; returns the trained controller params."""
    config = PPOConfig(
        learning_rate=3e-3, n_epochs=4, minibatch_size=64, entropy_coef=0.0
    )
    optimizer = ppo.optimizer(config)
    state = optim.init_train_state(params, optimizer)

    @jax.jit
    def one_update(state, key):
        feature_key, action_key, update_key = jax.random.split(key, 3)
        features = feature_fn(feature_key, n)
        policy, values = controller.apply(state.params, features)
        raw = controller.sample(action_key, state.params, policy)
        rewards = reward_fn(features, controller.env_action(state.params, raw))
        ones = jnp.ones((1, n))
        advantages, returns = ppo.gae(
            rewards[None],
            values[None],
            jnp.zeros((1, n)),
            ones,
            jnp.zeros((1, n)),
            0.99,
            0.95,
        )
        batch = ppo.Batch(
            features,
            raw,
            controller.log_prob(state.params, policy, raw),
            values,
            advantages[0],
            returns[0],
            jnp.ones(n),
        )
        return ppo.update(state, batch, update_key, config, optimizer)

    for key in jax.random.split(jax.random.key(seed), updates):
        state, _ = one_update(state, key)
    return state.params


class TestPPOLearning(chex.TestCase):
    def test_learns_a_contextual_bandit(self):
        # Context c in {0, 1} (one-hot); action c earns 1, the other 0.
        def features(key, n):
            return jax.nn.one_hot(jax.random.randint(key, (n,), 0, 2), 2)

        def reward(feats, actions):
            return (actions == jnp.argmax(feats, -1)).astype(jnp.float32)

        action = ActionSpec(continuous=False, dim=2)
        params = controller.init(
            jax.random.key(3), NetworkConfig(layer_sizes=(16,)), action, 2
        )
        params = _train_bandit(params, reward, features)
        policy, values = controller.apply(params, jnp.eye(2))
        probs = jax.nn.softmax(policy.loc)
        assert float(probs[0, 0]) > 0.95 and float(probs[1, 1]) > 0.95, probs
        np.testing.assert_allclose(values, [1.0, 1.0], atol=0.15)  # V = E[r] = ~1

    def test_learns_a_bounded_continuous_target(self):
        # Reward -(a - 0.5)^2 in the box [-1, 1]: the best action is 0.5.
        action = ActionSpec(continuous=True, dim=1, low=(-1.0,), high=(1.0,))
        params = controller.init(
            jax.random.key(4), NetworkConfig(layer_sizes=(16,)), action, 1
        )
        params = _train_bandit(
            params,
            lambda f, a: -((a[:, 0] - 0.5) ** 2),
            lambda k, n: jnp.ones((n, 1)),
            updates=60,
        )
        policy, _ = controller.apply(params, jnp.ones((1, 1)))
        mean_action = controller.env_action(params, controller.mode(params, policy))
        np.testing.assert_allclose(float(mean_action[0, 0]), 0.5, atol=0.1)


def test_update_rejects_a_minibatch_size_that_does_not_divide_the_batch():
    params, batch = _batch_with_ratios([1.0] * 5, [0.0] * 5)
    config = PPOConfig(minibatch_size=2)
    optimizer = ppo.optimizer(config)
    with pytest.raises(ValueError, match=r"PPOConfig.minibatch_size=2 .*batch of 5"):
        ppo.update(
            optim.init_train_state(params, optimizer),
            batch,
            jax.random.key(0),
            config,
            optimizer,
        )


def test_annealing_needs_the_number_of_steps_and_reaches_zero():
    with pytest.raises(ValueError, match="total_gradient_steps"):
        ppo.optimizer(PPOConfig(anneal_lr=True))
    params, batch = _batch_with_ratios([1.0] * 4, [1.0, -1.0, 1.0, -1.0])
    config = PPOConfig(
        anneal_lr=True, minibatch_size=4, n_epochs=2, normalize_advantages=False
    )
    optimizer = ppo.optimizer(config, total_gradient_steps=2)
    state, _ = ppo.update(
        optim.init_train_state(params, optimizer),
        batch,
        jax.random.key(0),
        config,
        optimizer,
    )
    # After the schedule's end the step size is 0: a further update changes nothing.
    after, _ = ppo.update(state, batch, jax.random.key(1), config, optimizer)
    chex.assert_trees_all_close(after.params, state.params)
    assert int(after.step) == 4
