"""control.py's rollout windows and bookkeeping against hand-written arrays, the
dream count of ppo_trainer and loop.whole_chunks."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.agent import Step
from janus_jax.configs import ActionSpec
from janus_jax.train import control
from janus_jax.train.loop import whole_chunks
from janus_jax.train.ppo_trainer import dream_starts

T, E = 6, 2
SPEC = ActionSpec(continuous=False, dim=3)


def _rollout() -> control.RealStep:
    """T=6 steps of E=2 envs: env 0 terminates at t=2, env 1 is truncated at t=3.

    latent = 10 t + e, next_latent = 100 + 10 t + e (a true final observation
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
    return control.RealStep(
        latent=jnp.asarray(code[..., None]),
        carry=(jnp.zeros((T, E, 4)), jnp.zeros((T, E, 4))),
        raw_action=jnp.asarray((t + e) % 3 + 0 * code),
        action=jnp.asarray((t + e) % 3 + 0 * code, jnp.int32),
        log_prob=zeros,
        value=zeros,
        reward=jnp.asarray(1.0 + t + 10 * e + 0 * code),
        terminated=jnp.asarray(terminated),
        truncated=jnp.asarray(truncated),
        next_latent=jnp.asarray(100.0 + code[..., None]),
        next_value=zeros,
        finished_return=zeros,
    )


# Windows of 2 steps, env-major. Episode positions: env 0: 0 1 2 | 0 1 2;
# env 1: 0 1 2 3 | 0 1. A window starts at every even position.
WINDOWS = [(0, 0), (0, 2), (0, 3), (0, 5), (1, 0), (1, 2), (1, 4)]  # (env, t0)
MASK = [[1, 1], [1, 0], [1, 1], [1, 0], [1, 1], [1, 1], [1, 1]]
DONES = [[0, 0], [1, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]


# one compile per (length, num_windows), shared by the tests below
_windows = jax.jit(control.rollout_windows, static_argnums=(1, 2, 3))


def _latent(e, t):
    return 10 * t + e


def _next(e, t):
    return 100 + 10 * t + e


class RolloutWindowsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_windows_of_two_steps(self):
        fn = self.variant(lambda real: control.rollout_windows(real, SPEC, 2, 7))
        latents, actions, rewards, dones, mask = fn(_rollout())
        chex.assert_shape(latents, (7, 3, 1))
        chex.assert_shape(actions, (7, 2, 3))
        chex.assert_shape((rewards, dones, mask), (7, 2))
        np.testing.assert_array_equal(mask, np.array(MASK, np.float32))
        np.testing.assert_array_equal(dones, np.array(DONES, np.float32))
        want_rewards = [[1 + t + 10 * e for t in (t0, t0 + 1)] for e, t0 in WINDOWS]
        np.testing.assert_array_equal(rewards, np.array(want_rewards) * np.array(MASK))
        # z_t0, then z_{t+1} of each step (the true final obs at an episode end)
        want_latents = [
            [_latent(e, t0), _next(e, t0), _next(e, t0 + 1)] for e, t0 in WINDOWS
        ]
        valid = np.concatenate([np.ones((7, 1)), MASK], 1) == 1
        np.testing.assert_array_equal(
            np.asarray(latents)[..., 0][valid], np.array(want_latents)[valid]
        )
        # the window that ends env 0's episode carries its final obs, not t=3's z
        np.testing.assert_array_equal(latents[1, :2, 0], [20, 120])
        want_actions = [[(t + e) % 3 for t in (t0, t0 + 1)] for e, t0 in WINDOWS]
        one_hot = np.eye(3)[want_actions]
        step_valid = np.array(MASK) == 1
        np.testing.assert_array_equal(
            np.asarray(actions)[step_valid], one_hot[step_valid]
        )

    def test_missing_windows_are_masked_and_extra_ones_dropped(self):
        full = _windows(_rollout(), SPEC, 2, 7)
        more = _windows(_rollout(), SPEC, 2, 9)
        fewer = _windows(_rollout(), SPEC, 2, 4)
        more, full, fewer = (tuple(map(np.asarray, x)) for x in (more, full, fewer))
        _, _, rewards, dones, mask = more
        np.testing.assert_array_equal(mask[7:], np.zeros((2, 2)))
        np.testing.assert_array_equal(rewards[7:], np.zeros((2, 2)))
        np.testing.assert_array_equal(dones[7:], np.zeros((2, 2)))
        for got, want in zip(more[1:], full[1:], strict=True):
            np.testing.assert_array_equal(got[:7], want)
        np.testing.assert_array_equal(more[0][:7], full[0])
        # the first 4 windows in env-major order are kept
        for got, want in zip(fewer, full, strict=True):
            np.testing.assert_array_equal(got, want[:4])

    def test_windows_of_three_steps(self):
        # env 0 positions 0 1 2 | 0 1 2 -> starts t=0, 3; env 1: 0 1 2 3 | 0 1 ->
        # starts t=0, 3 (position 3, truncated there) and t=4.
        latents, _, rewards, dones, mask = _windows(_rollout(), SPEC, 3, 4)
        np.testing.assert_array_equal(
            mask, [[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 0]]
        )
        np.testing.assert_array_equal(
            dones, [[0, 0, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]
        )
        np.testing.assert_array_equal(latents[:, 0, 0], [0, 30, 1, 31])
        np.testing.assert_array_equal(latents[0, :, 0], [0, 100, 110, 120])
        np.testing.assert_array_equal(latents[2, :, 0], [1, 101, 111, 121])
        np.testing.assert_array_equal(rewards[3], [14, 0, 0])

    def test_a_window_never_runs_into_the_next_episode(self):
        real = _rollout()
        for length in (1, 2, 3, 4, 5):
            out = _windows(real, SPEC, length, 12)
            latents, mask = np.asarray(out[0]), np.asarray(out[4])
            ended = np.asarray(real.terminated | real.truncated)
            for w in range(12):
                if mask[w, 0] == 0:
                    continue
                e, t0 = int(latents[w, 0, 0]) % 10, int(latents[w, 0, 0]) // 10
                steps = int(mask[w].sum())
                # valid steps are contiguous from the start
                np.testing.assert_array_equal(mask[w, :steps], 1)
                # none but the last valid step may end the episode
                assert not ended[t0 : t0 + steps - 1, e].any()
            # every step of the rollout is in exactly one window
            assert mask.sum() == T * E


def test_record_resets_carry_and_return_where_an_episode_ended():
    # 3 envs: running on, terminated, truncated
    terminated = jnp.array([False, True, False])
    truncated = jnp.array([False, False, True])
    new_carry = (jnp.full((3, 2), 5.0), jnp.full((3, 2), 7.0))
    old_carry = (jnp.full((3, 2), 1.0), jnp.full((3, 2), 2.0))
    step = Step(
        carry=new_carry,
        latent=jnp.arange(3.0)[:, None],
        hidden=jnp.zeros((3, 2)),
        raw_action=jnp.array([0.0, 1.0, 2.0]),
        action=jnp.array([0, 1, 2]),
        log_prob=jnp.array([-0.1, -0.2, -0.3]),
        value=jnp.array([0.5, 0.6, 0.7]),
    )
    reward = jnp.array([1.0, 2.0, 3.0])
    running = jnp.array([10.0, 20.0, 30.0])
    nxt = (jnp.array([[7.0], [8.0], [9.0]]), jnp.array([0.5, 0.25, 0.75]))
    real, carry, ret = control.record(
        step, old_carry, reward, terminated, truncated, nxt, running
    )
    np.testing.assert_array_equal(real.finished_return, [0.0, 22.0, 33.0])
    np.testing.assert_array_equal(ret, [11.0, 0.0, 0.0])
    np.testing.assert_array_equal(carry[0], [[5, 5], [0, 0], [0, 0]])
    np.testing.assert_array_equal(carry[1], [[7, 7], [0, 0], [0, 0]])
    # the record keeps the carry the step started from, and the step's values
    np.testing.assert_array_equal(real.carry[0], old_carry[0])
    np.testing.assert_array_equal(real.carry[1], old_carry[1])
    np.testing.assert_array_equal(real.next_latent, [[7], [8], [9]])
    np.testing.assert_array_equal(real.next_value, [0.5, 0.25, 0.75])
    np.testing.assert_array_equal(real.reward, reward)
    np.testing.assert_array_equal(real.log_prob, step.log_prob)
    np.testing.assert_array_equal(real.terminated, terminated)
    np.testing.assert_array_equal(real.truncated, truncated)


# -- dream_starts / whole_chunks ------------------------------------------------------


def test_no_dreams_at_ratio_zero():
    assert dream_starts(512, 0.0, 16, 256) == 0


@pytest.mark.parametrize(
    "real,ratio,horizon,batch,want",
    [
        (512, 0.5, 16, 256, 32),  # cartpole: 512 dreamed + 512 real
        (8192, 0.5, 16, 2048, 512),  # breakout
        (64, 0.5, 8, 32, 8),  # tiny
        (512, 1.0, 16, 256, 32),  # ratio 1: as many as the real rollout
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


@pytest.mark.parametrize("real,horizon,batch", [(512, 16, 256), (4096, 32, 256)])
def test_ratio_one_dreams_about_the_real_count(real, horizon, batch):
    dreamed = dream_starts(real, 1.0, horizon, batch) * horizon
    assert abs(dreamed - real) <= math.lcm(horizon, batch) / 2


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
