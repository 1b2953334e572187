"""The controller's distributions against NumPy/SciPy densities."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, stats

from janus_jax import ActionSpec, NetworkConfig
from janus_jax.models import controller


def _params(action, layer_sizes=(8,), feature_dim=5, seed=0):
    config = NetworkConfig(
        layer_sizes=layer_sizes, activation="relu", use_layer_norm=True
    )
    return controller.init(jax.random.key(seed), config, action, feature_dim)


class TestDiscrete(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_log_prob_and_entropy_match_numpy(self):
        params = _params(ActionSpec(continuous=False, dim=4))
        policy = controller.ActionDistribution(
            jnp.array([[1.0, 2.0, 0.5, -1.0], [0.0, 0.0, 0.0, 0.0]])
        )
        p = np.exp(policy.loc) / np.exp(policy.loc).sum(-1, keepdims=True)
        actions = jnp.array([1, 3], jnp.int32)
        log_prob = self.variant(lambda p_, a: controller.log_prob(params, p_, a))(
            policy, actions
        )
        np.testing.assert_allclose(log_prob, np.log(p[[0, 1], [1, 3]]), rtol=1e-6)
        ent = controller.entropy(params, policy, jax.random.key(0))
        np.testing.assert_allclose(ent, stats.entropy(p, axis=-1), rtol=1e-5)

    def test_apply_shapes_and_sample_frequencies(self):
        params = _params(ActionSpec(continuous=False, dim=3))
        policy, value = controller.apply(params, jnp.ones((2, 7, 5)))
        chex.assert_shape(policy.loc, (2, 7, 3))
        chex.assert_shape(value, (2, 7))
        logits = controller.ActionDistribution(jnp.log(jnp.array([0.2, 0.5, 0.3])))
        keys = jax.random.split(jax.random.key(1), 20_000)
        draws = jax.vmap(lambda k: controller.sample(k, params, logits))(keys)
        np.testing.assert_allclose(
            np.bincount(draws, minlength=3) / 20_000, [0.2, 0.5, 0.3], atol=0.015
        )
        assert controller.mode(params, logits) == 1


class TestBoundedGaussian(chex.TestCase):
    def setUp(self):
        super().setUp()
        self.action = ActionSpec(continuous=True, dim=1, low=(-2.0,), high=(1.0,))
        self.params = _params(self.action)
        self.policy = controller.ActionDistribution(
            jnp.array([0.4]), jnp.array([np.log(0.7)])
        )

    def _density(self, a):
        """Returns p(a) by change of variables: a = low + (tanh(u) + 1) / 2 * range."""
        y = (a + 2.0) / 3.0 * 2.0 - 1.0
        u = np.arctanh(y)
        return stats.norm.pdf(u, 0.4, 0.7) / (1.5 * (1 - y**2))

    def test_the_mean_action_is_the_squashed_actions_expectation(self):
        """Its env action against the integral of a p(a) over the box (SciPy), for
        a std near 0, the CarRacing runs' ~0.95, and 2."""
        for loc, std in [(0.4, 0.7), (1.5, 0.95), (-2.0, 2.0), (0.3, 0.05)]:

            def density(a, loc=loc, std=std):
                y = (a + 2.0) / 3.0 * 2.0 - 1.0
                return stats.norm.pdf(np.arctanh(y), loc, std) / (1.5 * (1 - y**2))

            exact, _ = integrate.quad(
                lambda a, d=density: a * d(a), -2.0 + 1e-12, 1.0 - 1e-12, limit=400
            )
            policy = controller.ActionDistribution(
                jnp.array([loc]), jnp.array([np.log(std)])
            )
            raw = controller.mean_action(self.params, policy)
            got = float(controller.env_action(self.params, raw)[0])
            np.testing.assert_allclose(got, exact, atol=2e-5)
            mode = float(controller.env_action(self.params, policy.loc)[0])
            if std > 0.5:  # the mode ignores the std, the mean does not
                assert abs(mode - exact) > 0.05
        discrete = _params(ActionSpec(continuous=False, dim=3))
        logits = controller.ActionDistribution(jnp.array([[0.1, 2.0, -1.0]]))
        assert controller.mean_action(discrete, logits).tolist() == [1]

    def test_log_std_init_sets_the_starting_spread_of_the_samples(self):
        config = NetworkConfig(layer_sizes=(8,), log_std_init=-1.0)
        params = controller.init(jax.random.key(0), config, self.action, 5)
        policy, _ = controller.apply(params, jnp.zeros((1, 5)))
        np.testing.assert_allclose(policy.log_std, [[-1.0]])
        keys = jax.random.split(jax.random.key(1), 20_000)
        raw = jax.vmap(lambda k: controller.sample(k, params, policy))(keys)
        # the raw actions' spread is exp(-1) about the near-zero initial loc
        np.testing.assert_allclose(np.std(raw), np.exp(-1.0), rtol=0.02)

    def test_actions_stay_inside_bounds(self):
        policy = controller.ActionDistribution(
            jnp.full((1000, 1), 5.0), jnp.full((1000, 1), 2.0)
        )
        raw = controller.sample(jax.random.key(0), self.params, policy)
        actions = controller.env_action(self.params, raw)
        assert float(actions.min()) >= -2.0 and float(actions.max()) <= 1.0

    def test_log_prob_matches_change_of_variables_and_integrates_to_one(self):
        raw = jnp.array([[-1.3], [0.0], [0.9], [2.5]])
        actions = np.asarray(controller.env_action(self.params, raw))[:, 0]
        log_prob = controller.log_prob(self.params, self.policy, raw)
        np.testing.assert_allclose(log_prob, np.log(self._density(actions)), rtol=1e-4)
        total, _ = integrate.quad(self._density, -2.0, 1.0, limit=200)
        np.testing.assert_allclose(total, 1.0, rtol=1e-6)

    def test_entropy_estimate_matches_numerical_integral(self):
        exact, _ = integrate.quad(
            lambda a: -self._density(a) * np.log(self._density(a)),
            -2.0 + 1e-12,
            1.0 - 1e-12,
            limit=200,
        )
        keys = jax.random.split(jax.random.key(2), 50_000)
        estimates = jax.vmap(lambda k: controller.entropy(self.params, self.policy, k))(
            keys
        )
        np.testing.assert_allclose(float(estimates.mean()), exact, atol=0.01)

    def test_gradients_are_finite_at_extreme_raw_actions(self):
        raw = jnp.array([[-30.0], [30.0]])
        grads = jax.grad(lambda p: controller.log_prob(self.params, p, raw).sum())(
            self.policy
        )
        chex.assert_tree_all_finite(grads)
        chex.assert_tree_all_finite(controller.log_prob(self.params, self.policy, raw))
