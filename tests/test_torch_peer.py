"""The benchmark's PyTorch peer computes the same function as janus-jax from the same
weights: M's step, C's heads, the action squashing, and the dream's sampling laws."""

import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.torch_peer import from_jax, imagine_torch  # noqa: E402
from janus_jax import ActionSpec, MDNRNNConfig, NetworkConfig  # noqa: E402
from janus_jax.imagination import WorldModelParams, imagine  # noqa: E402
from janus_jax.models import controller, mdn_rnn  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-5}
ACTION = ActionSpec(continuous=True, dim=3, low=(-1.0, 0.0, 0.0), high=(1.0, 1.0, 2.0))


# Compiled once for the module: op-by-op (eager) initialisation of the paper-sized
# M takes seconds of dispatch.
_init_controller = jax.jit(controller.init, static_argnums=(1, 2, 3))
_init_mdn_rnn = jax.jit(mdn_rnn.init, static_argnums=1)
_mdn_rnn_step = jax.jit(mdn_rnn.step)


def _params(m_config: MDNRNNConfig, layer_sizes=(32, 32), log_std=None, seed=0):
    # V plays no part in imagination.
    m_key, c_key = jax.random.split(jax.random.key(seed))
    z, h = m_config.latent_dim, m_config.hidden_dim
    c_params = _init_controller(
        c_key, NetworkConfig(layer_sizes=layer_sizes), ACTION, z + h
    )
    if log_std is not None:
        net = {"params": {**c_params.net["params"], "log_std": jnp.full((3,), log_std)}}
        c_params = c_params.replace(net=net)
    return WorldModelParams(
        vae=None,
        mdn_rnn=_init_mdn_rnn(m_key, m_config),
        controller=c_params,
    )


def _randn(key, shape, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), shape)


def _t(x):
    return torch.from_numpy(np.array(x))


def _close(torch_value, jax_value):
    np.testing.assert_allclose(torch_value.numpy(), np.asarray(jax_value), **TOL)


@pytest.mark.parametrize(
    "m_config",
    [
        MDNRNNConfig(latent_dim=32, action_dim=3, hidden_dim=256, num_mixtures=5),
        MDNRNNConfig(
            latent_dim=4,
            action_dim=3,
            hidden_dim=16,
            num_mixtures=3,
            rnn_layers=2,
            log_sigma_min=-3.0,
            log_sigma_max=0.5,
        ),
    ],
    ids=["paper", "two_layers"],
)
def test_mdn_rnn_step_matches(m_config):
    params = _params(m_config)
    # A scaled-up mixture head drives raw log-sigmas to both ends of the bound.
    net = params.mdn_rnn.net["params"]
    mixture = {**net["mixture"], "kernel": net["mixture"]["kernel"] * 30.0}
    m_params = params.mdn_rnn.replace(net={"params": {**net, "mixture": mixture}})
    params = params.replace(mdn_rnn=m_params)
    model = from_jax(params)
    batch, hid = 8, m_config.hidden_dim
    carry = tuple(
        (_randn(10 + i, (batch, hid)), _randn(20 + i, (batch, hid), 0.5))
        for i in range(m_config.rnn_layers)
    )
    latent = _randn(1, (batch, m_config.latent_dim))
    action = _randn(2, (batch, 3))
    new_carry, out = _mdn_rnn_step(params.mdn_rnn, carry, latent, action)
    with torch.no_grad():
        t_carry = jax.tree.map(_t, carry)
        t_new_carry, t_out = model.mdn_rnn(t_carry, _t(latent), _t(action))
    for name in out._fields:
        _close(getattr(t_out, name), getattr(out, name))
    jax.tree.map(_close, t_new_carry, new_carry)
    assert float(jnp.min(out.log_sigmas)) < m_config.log_sigma_min + 0.5
    assert float(jnp.max(out.log_sigmas)) > m_config.log_sigma_max - 0.5
    assert out.mixture_logits.shape == (
        batch,
        m_config.latent_dim,
        m_config.num_mixtures,
    )


@jax.jit
def _jax_controller(c_params, features, raw):
    """Returns janus-jax's (policy, value, env action, log-prob) for raw actions."""
    policy, value = controller.apply(c_params, features)
    action = controller.env_action(c_params, raw)
    return policy, value, action, controller.log_prob(c_params, policy, raw)


def test_controller_and_squash_match():
    m_config = MDNRNNConfig(latent_dim=4, action_dim=3, hidden_dim=16, num_mixtures=2)
    params = _params(m_config, layer_sizes=(32, 24), log_std=-0.3)
    model = from_jax(params)
    features = _randn(3, (16, 20))
    raw = _randn(4, (16, 3), 3.0)  # far enough out that tanh saturates
    policy, value, action, log_prob = _jax_controller(params.controller, features, raw)
    with torch.no_grad():
        loc, log_std, t_value = model.controller(_t(features))
        t_action = model.controller.env_action(_t(raw))
        t_log_prob = model.controller.log_prob(loc, log_std, _t(raw))
    _close(loc, policy.loc)
    _close(log_std, policy.log_std)
    _close(t_value, value)
    _close(t_action, action)
    _close(t_log_prob, log_prob)


def _mixture_moments(out, tau):
    """Returns the mean and variance [B, Z] of the tempered mixture, by NumPy."""
    logits = np.asarray(out.mixture_logits, np.float64) / tau
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    mu = np.asarray(out.means, np.float64)
    var = np.exp(2.0 * np.asarray(out.log_sigmas, np.float64)) * tau
    mean = (w * mu).sum(-1)
    return mean, (w * (var + mu**2)).sum(-1) - mean**2


def test_dream_step_has_the_same_law():
    """One dream step from one start state copied 4000 times: with a near-fixed
    policy, M's output is fixed, so the next latents' mean and variance and the done
    rate must match the tempered mixture's (computed in NumPy) for both programs."""
    m_config = MDNRNNConfig(latent_dim=4, action_dim=3, hidden_dim=16, num_mixtures=3)
    params = _params(m_config, log_std=-30.0)
    n, tau = 4000, 1.3
    z0 = np.repeat(np.asarray(_randn(5, (1, 4))), n, axis=0)
    dream = jax.jit(imagine, static_argnames="horizon")
    jax_traj = dream(jax.random.key(0), params, jnp.asarray(z0), None, 1, tau)
    model = from_jax(params)
    torch_traj = imagine_torch(model, _t(z0), 1, tau, torch.Generator().manual_seed(0))
    # Every copy took the same action, so M saw the same inputs.
    action = np.asarray(jax_traj.action[0, :1])
    _close(torch_traj["actions"][0, :1], action)
    _, out = _mdn_rnn_step(
        params.mdn_rnn,
        mdn_rnn.initial_carry(m_config, (1,)),
        jnp.asarray(z0[:1]),
        jnp.asarray(action),
    )
    mean, var = _mixture_moments(out, tau)
    p_done = float(jax.nn.sigmoid(out.done_logit[0]))
    for name, next_latents, dones in (
        ("jax", np.asarray(jax_traj.next_obs[0]), np.asarray(jax_traj.terminated[0])),
        (
            "torch",
            torch_traj["next_latents"][0].numpy(),
            torch_traj["dones"][0].numpy(),
        ),
    ):
        error = np.abs(next_latents.mean(0) - mean[0])
        assert np.all(error < 5 * np.sqrt(var[0] / n)), (name, error)
        sample_var = next_latents.var(0)
        np.testing.assert_allclose(sample_var, var[0], rtol=0.15, err_msg=name)
        assert abs(dones.mean() - p_done) < 5 * np.sqrt(p_done * (1 - p_done) / n), name


def test_imagine_torch_records_and_masking():
    m_config = MDNRNNConfig(latent_dim=4, action_dim=3, hidden_dim=16, num_mixtures=3)
    params = _params(m_config)
    # A done bias of 0 ends about half the dreams at each step.
    net = params.mdn_rnn.net["params"]
    done = {"kernel": net["done"]["kernel"] * 0.0, "bias": jnp.zeros((1,))}
    m_params = params.mdn_rnn.replace(net={"params": {**net, "done": done}})
    params = params.replace(mdn_rnn=m_params)
    model = from_jax(params)
    z0 = _t(_randn(6, (64, 4)))
    traj = imagine_torch(model, z0, 6, 1.0, torch.Generator().manual_seed(1))
    assert traj["hiddens"].shape == traj["next_hiddens"].shape == (6, 64, 16)
    assert traj["raw_actions"].shape == (6, 64, 3)
    np.testing.assert_array_equal(traj["latents"][0], z0)
    np.testing.assert_array_equal(traj["latents"][1:], traj["next_latents"][:-1])
    np.testing.assert_array_equal(traj["hiddens"][0], np.zeros((64, 16)))
    np.testing.assert_array_equal(traj["hiddens"][1:], traj["next_hiddens"][:-1])
    mask, dones = traj["mask"].numpy(), traj["dones"].numpy()
    np.testing.assert_array_equal(mask[1:], mask[:-1] - dones[:-1])
    assert 0 < mask[-1].sum() < 64
    assert np.all(traj["rewards"].numpy()[mask == 0] == 0)
    # Log-probs and actions recorded are those of the raw actions taken.
    features = np.concatenate([traj["latents"], traj["hiddens"]], -1)
    _, value, action, log_prob = _jax_controller(
        params.controller, features, traj["raw_actions"].numpy()
    )
    _close(traj["values"], value)
    _close(traj["actions"], action)
    _close(traj["log_probs"], log_prob)
