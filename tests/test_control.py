"""The rollout's bookkeeping (envs.rollout.record) and the one Transition -> PPO
batch function against hand-written arrays, the dream count of ppo_trainer and
loop.whole_chunks (the replay M's refresh draws from: test_replay.py)."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import batches
from janus_jax.config.models import ActionSpec, NetworkConfig
from janus_jax.config.sizes import dream_starts
from janus_jax.envs.rollout import record
from janus_jax.imagination import ActInfo
from janus_jax.models import controller
from janus_jax.records import PolicyStep, Transition
from janus_jax.train.loop import whole_chunks

T, E = 6, 2
SPEC = ActionSpec(continuous=False, dim=3)


def _rollout() -> Transition:
    """T=6 steps of E=2 envs in latents: env 0 terminates at t=2, env 1 is
    truncated at t=3.

    latent = 10 t + e, next latent = 100 + 10 t + e (a true final observation
    where an episode ended, so it differs from the next step's latent),
    reward = 1 + t + 10 e, action = (t + e) % 3."""
    t = np.arange(T)[:, None]
    e = np.arange(E)[None, :]
    code = (10 * t + e).astype(np.float32)  # [T, E]
    terminated = np.zeros((T, E), bool)
    terminated[2, 0] = True
    truncated = np.zeros((T, E), bool)
    truncated[3, 1] = True
    zeros = jnp.zeros((T, E))
    latent = jnp.asarray(code[..., None])
    info = ActInfo(
        latent=latent,
        carry=(jnp.zeros((T, E, 4)), jnp.zeros((T, E, 4))),
        raw_action=jnp.asarray((t + e) % 3 + 0 * code),
        log_prob=zeros,
        value=zeros,
        next_hidden=jnp.zeros((T, E, 4)),
        hidden=jnp.zeros((T, E, 4)),
    )
    return Transition(
        obs=latent,
        action=jnp.asarray((t + e) % 3 + 0 * code, jnp.int32),
        reward=jnp.asarray(1.0 + t + 10 * e + 0 * code),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_obs=jnp.asarray(100.0 + code[..., None]),
        info=info,
        episode_return=zeros,
    )


class _EnvStep(NamedTuple):
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array


def test_record_resets_carry_and_return_where_an_episode_ended():
    # 3 envs: running on, terminated, truncated
    terminated = jnp.array([False, True, False])
    truncated = jnp.array([False, False, True])
    new_carry = (jnp.full((3, 2), 5.0), jnp.full((3, 2), 7.0))
    info = {"log_prob": jnp.array([-0.1, -0.2, -0.3])}
    step = PolicyStep(action=jnp.array([0, 1, 2]), state=new_carry, info=info)
    out = _EnvStep(
        reward=jnp.array([1.0, 2.0, 3.0]),
        terminated=terminated,
        truncated=truncated,
        final_obs=jnp.array([[7.0], [8.0], [9.0]]),
    )
    obs = jnp.arange(3.0)[:, None]
    running = jnp.array([10.0, 20.0, 30.0])
    tr, carry, ret = record(obs, step, out, running)
    np.testing.assert_array_equal(tr.episode_return, [0.0, 22.0, 33.0])
    np.testing.assert_array_equal(ret, [11.0, 0.0, 0.0])
    # the policy state goes on where the episode did, and is zeroed elsewhere
    np.testing.assert_array_equal(carry[0], [[5, 5], [0, 0], [0, 0]])
    np.testing.assert_array_equal(carry[1], [[7, 7], [0, 0], [0, 0]])
    # the record keeps the step's observation, the true next one and the info
    np.testing.assert_array_equal(tr.obs, obs)
    np.testing.assert_array_equal(tr.next_obs, [[7], [8], [9]])
    np.testing.assert_array_equal(tr.reward, out.reward)
    np.testing.assert_array_equal(tr.info["log_prob"], info["log_prob"])
    np.testing.assert_array_equal(tr.terminated, terminated)
    np.testing.assert_array_equal(tr.truncated, truncated)


def _numpy_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    advantages = np.zeros_like(rewards)
    after = np.zeros(rewards.shape[1])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        ended = np.maximum(terminated[t], truncated[t])
        after = delta + gamma * lam * (1 - ended) * after
        advantages[t] = after
    return advantages


@pytest.mark.parametrize("reward_scale", [1.0, 0.01])
def test_one_ppo_batch_for_real_and_dreamed_transitions(reward_scale):
    """to_ppo_batch bootstraps from V([next latent, next hidden]), stops at a
    termination and keeps masked dream steps out: checked against GAE written
    out in NumPy with C's values computed separately (on the scaled rewards)."""
    action = ActionSpec(continuous=False, dim=3)
    c_params = controller.init(
        jax.random.key(0), NetworkConfig(layer_sizes=(8,)), action, 5
    )
    real = _rollout()
    hidden = jax.random.normal(jax.random.key(1), (T, E, 4))
    values = jax.random.normal(jax.random.key(2), (T, E))
    real = real._replace(
        info=real.info._replace(next_hidden=hidden, value=values),
        mask=jnp.asarray(np.tri(T, E, 2, dtype=np.float32)),
    )
    batch = batches.to_ppo_batch(c_params, real, 0.9, 0.8, reward_scale)
    feats = jnp.concatenate([real.next_obs, hidden], -1)
    next_values = np.asarray(controller.apply(c_params, feats)[1])
    want = _numpy_gae(
        np.asarray(real.reward) * reward_scale,
        np.asarray(values),
        next_values,
        np.asarray(real.terminated, np.float32),
        np.asarray(real.truncated, np.float32),
        0.9,
        0.8,
    )
    np.testing.assert_allclose(batch.advantages, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(batch.returns, want + np.asarray(values), rtol=1e-5)
    np.testing.assert_array_equal(batch.mask, real.mask)
    # C saw [z_t, h_t]: the latent and the hidden of the carry the step began with
    np.testing.assert_array_equal(batch.features[..., 0], real.obs[..., 0])
    np.testing.assert_array_equal(batch.features[..., 1:], 0.0)


# -- dream_starts / whole_chunks ------------------------------------------------------


def test_no_dreams_at_ratio_zero():
    assert dream_starts(512, 0.0, 16, 256) == 0


@pytest.mark.parametrize(
    "real,ratio,horizon,batch,want",
    [
        (512, 0.5, 16, 256, 32),  # cartpole: 512 dreamed + 512 real
        (8192, 0.5, 16, 2048, 512),  # breakout
        (64, 0.5, 8, 32, 8),  # tiny
        (512, 0.75, 16, 256, 96),  # 3x the real rollout dreamed
        (64, 0.25, 8, 32, 4),  # 64/3 = 21.3 dreamed -> 32 (one granule of 4 x 8)
    ],
)
def test_dream_starts_by_hand(real, ratio, horizon, batch, want):
    assert dream_starts(real, ratio, horizon, batch) == want


@pytest.mark.parametrize("real", [64, 200, 512, 1024])
@pytest.mark.parametrize("ratio", [0.1, 0.25, 0.5, 0.75, 0.9])
@pytest.mark.parametrize("horizon,batch", [(16, 256), (8, 32), (12, 64), (5, 7)])
def test_dream_share_is_near_the_ratio(real, ratio, horizon, batch):
    starts = dream_starts(real, ratio, horizon, batch)
    dreamed = starts * horizon
    assert starts >= 1
    assert dreamed % batch == 0
    # dreams come in granules of lcm(horizon, batch) transitions; the count is
    # the nearest whole number of granules to ratio / (1 - ratio) * real (>= 1)
    granule = math.lcm(horizon, batch)
    wanted = ratio / (1 - ratio) * real
    if wanted >= granule / 2:
        assert abs(dreamed - wanted) <= granule / 2 + 1e-9
        share = dreamed / (dreamed + real)
        worst = max(
            abs(d / (d + real) - ratio)
            for d in (wanted - granule / 2, wanted + granule / 2)
        )
        assert abs(share - ratio) <= worst + 1e-9
    else:
        assert dreamed == granule


def test_the_dream_share_is_continuous_near_one():
    # 0.9 dreams 9x the rollout, 0.99 99x: one meaning all the way to 1
    shares = [dream_starts(512, r, 16, 256) * 16 / 512 for r in (0.5, 0.9, 0.99)]
    assert shares == [1.0, 9.0, 99.0]


@pytest.mark.parametrize(
    "total,chunk,want",
    [
        (10, 3, (3, 12)),
        (9, 3, (3, 9)),
        (10, 20, (10, 10)),
        (5, 0, (1, 5)),
        (1, 1, (1, 1)),
    ],
)
def test_whole_chunks(total, chunk, want):
    assert whole_chunks(total, chunk) == want
