"""V, M and their integration: the test classes the seed README names.

pytest tests/test_world_model.py::TestVAE -v
pytest tests/test_world_model.py::TestMDNRNN -v
pytest tests/test_world_model.py::TestIntegration -v
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from janus_jax import MDNRNNConfig, VAEConfig, WorldModelAgent
from janus_jax.models import mdn_rnn, vae
from janus_jax.records import Windows


class TestVAE(chex.TestCase):
    def setUp(self):
        super().setUp()
        self.config = VAEConfig(latent_dim=8, hidden_channels=(8, 8, 16, 16))
        self.params = vae.init(jax.random.key(0), self.config)

    @chex.variants(with_jit=True, without_jit=True)
    def test_image_shapes_and_finiteness(self):
        obs = jax.random.randint(jax.random.key(1), (5, 64, 64, 3), 0, 256).astype(
            jnp.uint8
        )
        mean, log_var = self.variant(vae.encode)(self.params, obs)
        chex.assert_shape([mean, log_var], (5, 8))
        recon = self.variant(vae.decode)(self.params, mean)
        chex.assert_shape(recon, (5, 64, 64, 3))
        chex.assert_tree_all_finite((mean, log_var, recon))
        assert float(recon.min()) >= 0.0 and float(recon.max()) <= 1.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_vector_shapes_and_finiteness(self):
        config = VAEConfig(observation_size=4, latent_dim=3, hidden_sizes=(16,))
        params = vae.init(jax.random.key(0), config)
        obs = jax.random.normal(jax.random.key(1), (7, 4))
        mean, log_var = self.variant(vae.encode)(params, obs)
        chex.assert_shape([mean, log_var], (7, 3))
        recon = self.variant(vae.decode)(params, mean)
        chex.assert_shape(recon, (7, 4))
        loss, metrics = self.variant(vae.loss)(params, obs, jax.random.key(2))
        chex.assert_tree_all_finite((recon, loss, metrics))

    def _round_trip(self, h, w, c):
        config = VAEConfig(
            input_height=h,
            input_width=w,
            input_channels=c,
            latent_dim=4,
            hidden_channels=(4, 4, 4, 4),
        )

        @jax.jit  # one program: op by op, every layer's ops compile for this size
        def round_trip(key):
            params = vae.init(key, config)
            recon = vae.decode(params, jnp.zeros((2, 4)))
            return recon, vae.encode(params, jnp.zeros((2, h, w, c), jnp.uint8))[0]

        recon, mean = round_trip(jax.random.key(0))
        chex.assert_shape(recon, (2, h, w, c))
        chex.assert_shape(mean, (2, 4))

    def test_any_image_size_and_channel_count_round_trips(self):
        self._round_trip(50, 70, 1)  # neither square, nor 64, nor 3 channels

    @pytest.mark.slow
    def test_a_larger_square_image_round_trips(self):
        self._round_trip(96, 96, 3)

    def test_uint8_is_scaled_to_unit_interval(self):
        obs = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
        from_uint8 = vae.encode(self.params, jnp.asarray(obs))
        from_float = vae.encode(self.params, jnp.asarray(obs, jnp.float32) / 255.0)
        np.testing.assert_allclose(from_uint8[0], from_float[0], rtol=1e-5, atol=1e-5)

    def test_wrong_observation_shape_is_rejected(self):
        with pytest.raises(
            ValueError, match=r"expects \[..., 64, 64, 3\].*channels-last"
        ):
            vae.encode(self.params, jnp.zeros((1, 3, 64, 64)))

    def test_loss_matches_numpy_formula(self):
        config = VAEConfig(observation_size=5, latent_dim=3, kl_tolerance=0.0, beta=2.5)
        params = vae.init(jax.random.key(3), config)
        obs = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
        key = jax.random.key(4)
        loss, metrics = vae.loss(params, jnp.asarray(obs), key)
        mean, log_var = map(np.asarray, vae.encode(params, obs))
        eps = np.asarray(jax.random.normal(key, mean.shape))
        recon = np.asarray(vae.decode(params, mean + np.exp(0.5 * log_var) * eps))
        rec = ((recon - obs) ** 2).sum(axis=1)
        kl = 0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var).sum(axis=1)
        np.testing.assert_allclose(float(loss), np.mean(rec + 2.5 * kl), rtol=1e-5)
        np.testing.assert_allclose(float(metrics["vae/kl"]), kl.mean(), rtol=1e-5)

    def test_kl_closed_form_and_free_bits(self):
        # KL(N(1, e^0) || N(0, 1)) = 0.5 per dimension;
        # KL(N(0, e^-1) || N(0, 1)) = 0.5 * (e^-1 + 1 - 1).
        kl = vae.kl_divergence(jnp.array([[1.0, 1.0]]), jnp.zeros((1, 2)))
        np.testing.assert_allclose(kl, [1.0], rtol=1e-6)
        kl = vae.kl_divergence(jnp.zeros((1, 1)), -jnp.ones((1, 1)))
        np.testing.assert_allclose(kl, [0.5 * np.exp(-1.0)], rtol=1e-6)
        # With a large tolerance the KL term is the constant floor: it adds no gradient.
        config = VAEConfig(observation_size=2, latent_dim=2, kl_tolerance=100.0)
        params = vae.init(jax.random.key(0), config)
        obs = jnp.ones((3, 2))
        loss, metrics = vae.loss(params, obs, jax.random.key(1))
        np.testing.assert_allclose(
            float(loss), float(metrics["vae/reconstruction"]) + 200.0, rtol=1e-5
        )

    def test_get_latent_is_the_mean_and_samples_with_a_key(self):
        obs = jnp.zeros((2, 64, 64, 3))
        mean, log_var = vae.encode(self.params, obs)
        np.testing.assert_array_equal(vae.get_latent(self.params, obs), mean)
        z = vae.get_latent(self.params, obs, jax.random.key(5))
        eps = jax.random.normal(jax.random.key(5), mean.shape)
        np.testing.assert_allclose(z, mean + jnp.exp(0.5 * log_var) * eps, rtol=1e-6)

    def test_gradients_are_finite(self):
        obs = jnp.full((2, 64, 64, 3), 128, jnp.uint8)

        def loss(params):
            return vae.loss(params, obs, jax.random.key(0))[0]

        # Compiled: op by op, the backward pass takes four times as long.
        chex.assert_tree_all_finite(jax.jit(jax.grad(loss))(self.params))


def _mixture(rng, shape):
    return mdn_rnn.MDNOutput(
        mixture_logits=jnp.asarray(rng.normal(size=shape), jnp.float32),
        means=jnp.asarray(rng.normal(size=shape) * 2, jnp.float32),
        log_sigmas=jnp.asarray(rng.uniform(-1.5, 0.5, size=shape), jnp.float32),
        reward=jnp.zeros(shape[:-2]),
        done_logit=jnp.zeros(shape[:-2]),
    )


def _tempered_moments(out, tau):
    """Mean and variance of each dimension's mixture sampled at temperature tau."""
    logits = np.asarray(out.mixture_logits, np.float64) / tau
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    mu, var_k = np.asarray(out.means), np.exp(2 * np.asarray(out.log_sigmas)) * tau
    mean = (w * mu).sum(-1)
    return mean, (w * (var_k + mu**2)).sum(-1) - mean**2


def _adam_fit(loss_fn, params, learning_rate, steps, seed=1):
    """Returns (params, stacked metrics) after ``steps`` jitted Adam steps on
    loss_fn(params, key) -> (loss, metrics), each step with a fresh key."""
    optimizer = optax.adam(learning_rate)

    def train_step(state, key):
        params, opt_state = state
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, key)
        updates, opt_state = optimizer.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), metrics

    state = (params, optimizer.init(params))
    (params, _), metrics = jax.jit(lambda s, k: jax.lax.scan(train_step, s, k))(
        state, jax.random.split(jax.random.key(seed), steps)
    )
    return params, metrics


class TestMDNRNN(chex.TestCase):
    def setUp(self):
        super().setUp()
        self.config = MDNRNNConfig(
            latent_dim=3, action_dim=2, hidden_dim=16, num_mixtures=4
        )
        self.params = mdn_rnn.init(jax.random.key(0), self.config)

    @chex.variants(with_jit=True, without_jit=True)
    def test_step_shapes_one_mixture_per_latent_dimension(self):
        carry = mdn_rnn.initial_carry(self.config, (5,))
        carry, out = self.variant(mdn_rnn.step)(
            self.params, carry, jnp.ones((5, 3)), jnp.ones((5, 2))
        )
        chex.assert_shape([out.mixture_logits, out.means, out.log_sigmas], (5, 3, 4))
        chex.assert_shape([out.reward, out.done_logit], (5,))
        chex.assert_shape(mdn_rnn.hidden(carry), (5, 16))
        # Each latent dimension has its own mixture weights (not one shared set).
        assert not np.allclose(out.mixture_logits[:, 0], out.mixture_logits[:, 1])
        chex.assert_tree_all_finite(out)

    def test_log_sigma_is_bounded(self):
        config = MDNRNNConfig(latent_dim=2, action_dim=1, hidden_dim=8, num_mixtures=2)
        params = mdn_rnn.init(jax.random.key(1), config)
        big = jax.tree.map(lambda x: x * 1e4, params)
        _, out = mdn_rnn.step(
            big,
            mdn_rnn.initial_carry(config, (4,)),
            jnp.full((4, 2), 5.0),
            jnp.ones((4, 1)),
        )
        assert float(out.log_sigmas.min()) >= config.log_sigma_min
        assert float(out.log_sigmas.max()) <= config.log_sigma_max

    def test_nll_matches_scipy_mixture_density(self):
        rng = np.random.default_rng(0)
        out = _mixture(rng, (6, 3, 4))
        target = rng.normal(size=(6, 3)).astype(np.float32)
        logits = np.asarray(out.mixture_logits, np.float64)
        weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        dens = stats.norm.pdf(
            target[..., None], np.asarray(out.means), np.exp(np.asarray(out.log_sigmas))
        )
        expected = np.log((weights * dens).sum(-1)).sum(-1)
        np.testing.assert_allclose(
            mdn_rnn.mixture_log_prob(out, target), expected, rtol=1e-5
        )

    def test_nll_is_finite_far_from_every_component(self):
        out = _mixture(np.random.default_rng(1), (2, 3, 4))
        log_prob = mdn_rnn.mixture_log_prob(out, jnp.full((2, 3), 1e3))
        chex.assert_tree_all_finite(log_prob)
        grads = jax.grad(
            lambda o: mdn_rnn.mixture_log_prob(o, jnp.full((2, 3), 1e3)).sum()
        )(out)
        chex.assert_tree_all_finite(grads)

    def test_zero_temperature_gives_mean_of_most_likely_component(self):
        out = _mixture(np.random.default_rng(2), (3, 4))
        best = np.argmax(np.asarray(out.mixture_logits), axis=-1)
        expected = np.take_along_axis(np.asarray(out.means), best[:, None], -1)[:, 0]
        for seed in range(3):
            z = mdn_rnn.sample(jax.random.key(seed), out, 0.0)
            np.testing.assert_allclose(z, expected, rtol=1e-6)
        # tau -> 0 approaches it continuously.
        keys = jax.random.split(jax.random.key(9), 200)
        z = jax.vmap(lambda k: mdn_rnn.sample(k, out, 1e-4))(keys)
        np.testing.assert_allclose(z.mean(0), expected, atol=0.05)

    def test_sample_moments_match_the_tempered_mixture(self):
        out = _mixture(np.random.default_rng(3), (3, 4))
        keys = jax.random.split(jax.random.key(0), 40_000)
        spreads = []
        for tau in (0.5, 1.0, 2.0):
            z = np.asarray(jax.vmap(lambda k, t=tau: mdn_rnn.sample(k, out, t))(keys))
            mean, var = _tempered_moments(out, tau)
            np.testing.assert_allclose(
                z.mean(0), mean, atol=0.05 + 0.03 * np.sqrt(var).max()
            )
            np.testing.assert_allclose(z.var(0), var, rtol=0.06, atol=0.01)
            spreads.append(z.std(0).mean())
        assert spreads[0] < spreads[1] < spreads[2]

    def test_inverse_cdf_picks_by_hand_and_never_a_zero_probability(self):
        # softmax([0, log 3]) = [0.25, 0.75]: u below 0.25 picks 0, above picks 1.
        two = jnp.array([0.0, np.log(3.0)])
        got = mdn_rnn.inverse_cdf(jnp.stack([two] * 4), jnp.array([0.0, 0.2, 0.3, 0.9]))
        np.testing.assert_array_equal(got, [0, 0, 1, 1])
        # Probability-0 components (logit -1e30) first and last, at both ends of
        # [0, 1): u = 0 and the largest float32 below 1.
        edge = jnp.array([-1e30, 0.0, 0.3, -1e30])
        top = np.nextafter(np.float32(1.0), np.float32(0.0))
        got = mdn_rnn.inverse_cdf(jnp.stack([edge] * 2), jnp.array([0.0, top]))
        np.testing.assert_array_equal(got, [1, 2])
        # A row whose float cumsum ends below the largest u, last component 0.
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(20_000, 5)).astype(np.float32)
        rows[:, -1] = -1e30
        cdf = np.asarray(jnp.cumsum(jax.nn.softmax(jnp.asarray(rows), -1), -1))
        short = rows[cdf[:, -2] < top]
        assert len(short) > 0  # the float case the scaling exists for
        got = mdn_rnn.inverse_cdf(jnp.asarray(short), jnp.full(len(short), top))
        assert int(jnp.max(got)) <= 3

    def test_scan_unroll_equals_python_loop(self):
        for rnn_type in ("lstm", "gru"):
            config = MDNRNNConfig(
                latent_dim=3,
                action_dim=2,
                hidden_dim=8,
                num_mixtures=2,
                rnn_type=rnn_type,
                rnn_layers=2,
            )
            params = mdn_rnn.init(jax.random.key(1), config)
            latents = jax.random.normal(jax.random.key(2), (6, 4, 3))
            actions = jax.random.normal(jax.random.key(3), (6, 4, 2))
            carry0 = mdn_rnn.initial_carry(config, (4,))
            final, outs = jax.jit(mdn_rnn.unroll)(params, carry0, latents, actions)
            carry, looped = carry0, []
            for t in range(6):
                carry, out = mdn_rnn.step(params, carry, latents[t], actions[t])
                looped.append(out)
            looped = jax.tree.map(lambda *xs: jnp.stack(xs), *looped)
            chex.assert_trees_all_close(outs, looped, rtol=1e-5, atol=1e-5)
            chex.assert_trees_all_close(final, carry, rtol=1e-5, atol=1e-5)

    def test_loss_heads_match_numpy_and_ignore_padding(self):
        rng = np.random.default_rng(4)
        latents = jnp.asarray(rng.normal(size=(2, 6, 3)), jnp.float32)
        actions = jnp.asarray(rng.normal(size=(2, 5, 2)), jnp.float32)
        rewards = jnp.asarray(rng.normal(size=(2, 5)), jnp.float32)
        dones = jnp.asarray(rng.integers(0, 2, (2, 5)), jnp.float32)
        mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], jnp.float32)
        total, metrics = mdn_rnn.loss(
            self.params, Windows(latents, actions, rewards, dones, mask)
        )
        _, out = mdn_rnn.unroll(
            self.params,
            mdn_rnn.initial_carry(self.config, (2,)),
            jnp.swapaxes(latents[:, :-1], 0, 1),
            jnp.swapaxes(actions, 0, 1),
        )
        m = np.asarray(mask).T
        reward_pred, logit = np.asarray(out.reward), np.asarray(out.done_logit)
        mse = ((reward_pred - np.asarray(rewards).T) ** 2 * m).sum() / m.sum()
        p = 1 / (1 + np.exp(-logit.astype(np.float64)))
        y = np.asarray(dones).T
        bce = (-(y * np.log(p) + (1 - y) * np.log(1 - p)) * m).sum() / m.sum()
        np.testing.assert_allclose(float(metrics["mdn/reward_mse"]), mse, rtol=1e-5)
        np.testing.assert_allclose(float(metrics["mdn/done_bce"]), bce, rtol=1e-5)
        # A given initial carry is the state before step 0 (unroll from it).
        carry = jax.tree.map(
            lambda x: jnp.full_like(x, 0.3), mdn_rnn.initial_carry(self.config, (2,))
        )
        _, with_carry = mdn_rnn.loss(
            self.params, Windows(latents, actions, rewards, dones, mask, carry)
        )
        _, out = mdn_rnn.unroll(
            self.params,
            carry,
            jnp.swapaxes(latents[:, :-1], 0, 1),
            jnp.swapaxes(actions, 0, 1),
        )
        mse = (
            (np.asarray(out.reward) - np.asarray(rewards).T) ** 2 * m
        ).sum() / m.sum()
        np.testing.assert_allclose(float(with_carry["mdn/reward_mse"]), mse, rtol=1e-5)
        # Padded steps (mask 0) do not change the loss, whatever they hold.
        noisy = latents.at[1, 5].set(99.0)
        total2, _ = mdn_rnn.loss(
            self.params,
            Windows(noisy, actions, rewards.at[1, 4].set(50.0), dones, mask),
        )
        np.testing.assert_allclose(float(total), float(total2), rtol=1e-6)

    def test_learns_a_bimodal_transition(self):
        # z_{t+1} = +1 or -1 (+ N(0, 0.1^2) noise) with equal odds, whatever came
        # before: the best achievable per-dimension NLL is that mixture's entropy.
        config = MDNRNNConfig(
            latent_dim=2,
            action_dim=1,
            hidden_dim=16,
            num_mixtures=3,
            predict_reward=False,
            predict_done=False,
        )
        params = mdn_rnn.init(jax.random.key(0), config)

        def loss_fn(params, key):
            sign_key, noise_key = jax.random.split(key)
            signs = jax.random.choice(sign_key, jnp.array([-1.0, 1.0]), (32, 9, 2))
            latents = signs + 0.1 * jax.random.normal(noise_key, (32, 9, 2))
            zeros = jnp.zeros((32, 8))
            windows = Windows(
                latents, jnp.zeros((32, 8, 1)), zeros, zeros, jnp.ones((32, 8))
            )
            return mdn_rnn.loss(params, windows)

        _, metrics = _adam_fit(loss_fn, params, 1e-2, 600)
        nlls = metrics["mdn/latent_nll"]
        xs = np.linspace(-2, 2, 20001)
        density = 0.5 * stats.norm.pdf(xs, -1, 0.1) + 0.5 * stats.norm.pdf(xs, 1, 0.1)
        entropy = -np.trapezoid(density * np.log(density + 1e-300), xs)
        final = float(np.mean(nlls[-50:]))
        assert float(nlls[0]) > entropy + 1.0
        assert final < entropy + 0.1, (final, entropy)


class TestIntegration(chex.TestCase):
    def test_imagine_trajectory_from_an_image(self):
        agent = WorldModelAgent(
            (64, 64, 3),
            3,
            continuous_actions=True,
            vae_config=VAEConfig(latent_dim=8, hidden_channels=(8, 8, 16, 16)),
            mdn_rnn_config=MDNRNNConfig(latent_dim=8, action_dim=3, hidden_dim=32),
            action_low=(-1.0, 0.0, 0.0),
            action_high=(1.0, 1.0, 1.0),
        )
        obs = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        traj = agent.imagine_trajectory(initial_obs=obs, horizon=12, temperature=1.0)
        chex.assert_shape(traj["latents"], (12, 8))
        chex.assert_shape(traj["actions"], (12, 3))
        chex.assert_shape(traj["hiddens"], (12, 32))
        actions = np.asarray(traj["actions"])
        assert (actions[:, 0] >= -1).all() and (actions[:, 1:] >= 0).all()
        assert (actions <= 1).all()
        # Successive calls draw fresh keys; an explicit key repeats exactly.
        again = agent.imagine_trajectory(obs, horizon=12)
        assert not np.allclose(traj["latents"][1:], again["latents"][1:])
        k = jax.random.key(7)
        chex.assert_trees_all_equal(
            agent.imagine_trajectory(obs, 12, key=k),
            agent.imagine_trajectory(obs, 12, key=k),
        )

    def test_imagine_trajectory_from_vectors_batch_and_seed(self):
        def make():
            return WorldModelAgent(
                (4,),
                2,
                mdn_rnn_config=MDNRNNConfig(latent_dim=32, action_dim=2, hidden_dim=16),
                seed=3,
            )

        obs = np.zeros((5, 4), np.float32)
        a, b = make().imagine_trajectory(obs, 9), make().imagine_trajectory(obs, 9)
        chex.assert_shape(a["latents"], (9, 5, 32))
        chex.assert_shape(a["actions"], (9, 5))
        chex.assert_trees_all_equal(a, b)  # same seed, same dream
        with pytest.raises(ValueError, match=r"initial_obs has shape \(5, 3\)"):
            make().imagine_trajectory(np.zeros((5, 3)), 9)

    def test_load_state_dict_moves_trained_components_and_checks_shapes(self):
        config = VAEConfig(observation_size=4, latent_dim=32)
        agent = WorldModelAgent((4,), 2, vae_config=config, seed=0)
        other = WorldModelAgent((4,), 2, vae_config=config, seed=1)
        agent.vae.load_state_dict(other.vae.state_dict())
        agent.mdn_rnn.load_state_dict(other.mdn_rnn.state_dict())
        obs = jnp.ones((1, 4))
        np.testing.assert_array_equal(
            agent.vae.get_latent(obs), other.vae.get_latent(obs)
        )
        small = WorldModelAgent(
            (4,), 2, vae_config=VAEConfig(observation_size=4, latent_dim=8)
        )
        with pytest.raises(ValueError, match="cannot load VAEParams"):
            agent.vae.load_state_dict(small.vae.state_dict())

    def test_vae_learns_to_tell_a_small_image_set_apart(self):
        # Eight 16x16 frames, a bright square in a different place in each.
        frames = np.zeros((8, 16, 16, 1), np.uint8)
        for i in range(8):
            r, c = 8 * (i // 4) + 1, 3 * (i % 4) + 1
            frames[i, r : r + 4, c : c + 4] = 255
        config = VAEConfig(
            input_height=16,
            input_width=16,
            input_channels=1,
            latent_dim=4,
            hidden_channels=(16, 32),
        )
        params = vae.init(jax.random.key(0), config)
        obs = jnp.asarray(frames)
        params, _ = _adam_fit(lambda p, k: vae.loss(p, obs, k), params, 3e-3, 400)
        target = frames / 255.0
        recon = np.asarray(vae.decode(params, vae.get_latent(params, obs)))
        error = ((recon - target) ** 2).sum(axis=(1, 2, 3)).mean()
        mean_frame_error = ((target - target.mean(0)) ** 2).sum(axis=(1, 2, 3)).mean()
        assert error < 0.1 * mean_frame_error, (error, mean_frame_error)
        # Each reconstruction is closest to its own frame: the latent tells them apart.
        distances = ((recon[:, None] - target[None]) ** 2).sum(axis=(2, 3, 4))
        np.testing.assert_array_equal(distances.argmin(axis=1), np.arange(8))


def test_init_gives_the_weights_an_eager_flax_init_gives():
    """V's, M's and C's init compile the network's initialisation as one program;
    the weights are those of the flax modules' own init called eagerly (each
    operation dispatched on its own), bit for bit."""
    from janus_jax import ActionSpec, NetworkConfig
    from janus_jax.models import controller

    key = jax.random.key(3)
    v_config = VAEConfig(observation_size=4, latent_dim=3, hidden_sizes=(8,))
    m_config = MDNRNNConfig(latent_dim=3, action_dim=2, hidden_dim=8, num_mixtures=2)
    c_config, action = (
        NetworkConfig(layer_sizes=(8,)),
        ActionSpec(continuous=True, dim=2),
    )
    eager = (
        vae._module(v_config).init(key, jnp.zeros((1, 4)), jnp.zeros((1, 3))),
        mdn_rnn._module(m_config).init(
            key,
            mdn_rnn.initial_carry(m_config, (1,)),
            jnp.zeros((1, 3)),
            jnp.zeros((1, 2)),
        ),
        controller._ActorCritic(c_config, action).init(key, jnp.zeros((1, 5))),
    )
    compiled = (
        vae.init(key, v_config).net,
        mdn_rnn.init(key, m_config).net,
        controller.init(key, c_config, action, 5).net,
    )
    for want, got in zip(eager, compiled, strict=True):
        chex.assert_trees_all_equal(want, got)
