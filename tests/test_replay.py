"""The controller's replay (train/replay.py) against a NumPy reference written
from its contract: which steps it keeps, where windows start, what they mask and
which carry they start from."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_vector_agent

from janus_jax.config.models import ActionSpec
from janus_jax.envs.spec import EnvSpec
from janus_jax.imagination import ActInfo
from janus_jax.records import Transition
from janus_jax.train import replay

E, H = 2, 3
SPEC = EnvSpec(
    env_id="probe",
    family="gymnax",
    observation_shape=(1,),
    observation_dtype="float32",
    action=ActionSpec(continuous=False, dim=3),
    on_device=True,
    max_episode_steps=None,
)


def _ended(g: int, e: int) -> tuple[bool, bool]:
    """(terminated, truncated) of env e's global step g: env 0 terminates at
    every step 2 mod 5, env 1 is truncated at every step 3 mod 4."""
    return (e == 0 and g % 5 == 2), (e == 1 and g % 4 == 3)


def _rollout(first: int, steps: int) -> Transition:
    """Global steps first .. first + steps - 1 of E envs: obs = 10 g + e, next
    obs = 1000 + 10 g + e (a value no obs takes), reward = g + 100 e, action =
    (g + e) % 3, carry leaves = obs (and -obs) in every unit."""
    g = np.arange(first, first + steps)[:, None] + 0 * np.arange(E)[None, :]
    e = 0 * g + np.arange(E)[None, :]
    code = (10 * g + e).astype(np.float32)
    ends = np.vectorize(_ended)(g, e)
    carry = (
        jnp.asarray(np.repeat(code[..., None], H, -1)),
        jnp.asarray(-np.repeat(code[..., None], H, -1)),
    )
    zeros = jnp.zeros(g.shape)
    info = ActInfo(code[..., None], carry, zeros, zeros, zeros, carry[0], carry[1])
    return Transition(
        obs=jnp.asarray(code[..., None]),
        action=jnp.asarray((g + e) % 3, jnp.int32),
        reward=jnp.asarray(g + 100.0 * e, jnp.float32),
        terminated=jnp.asarray(ends[0]),
        truncated=jnp.asarray(ends[1]),
        next_obs=jnp.asarray(1000.0 + code[..., None]),
        info=info,
    )


def _filled(capacity: int, rollouts: list[tuple[int, int]]) -> replay.Replay:
    carry = (jnp.zeros((E, H)), jnp.zeros((E, H)))
    memory = replay.init(capacity, SPEC, carry)
    for first, steps in rollouts:
        memory = replay.add(memory, _rollout(first, steps))
    return memory


def _reference(g0: int, e: int, length: int, newest: int):
    """Returns (obs [L+1], rewards, dones, mask) of env e's window from global
    step g0, as the contract says: in order, up to and including the episode's
    end, never past step ``newest``."""
    obs, rewards, dones, mask = [10 * g0 + e], [], [], []
    alive = True
    for g in range(g0, g0 + length):
        valid = alive and g <= newest
        terminated, truncated = _ended(g, e)
        obs.append(1000 + 10 * g + e)
        rewards.append(g + 100 * e if valid else 0)
        dones.append(float(terminated and valid))
        mask.append(float(valid))
        alive = valid and not (terminated or truncated)
    return np.array(obs), np.array(rewards), np.array(dones), np.array(mask)


_draw = jax.jit(replay.windows, static_argnums=(2, 3))


@pytest.mark.parametrize(
    "capacity, rollouts, length",
    [
        (8, [(0, 6)], 4),  # not yet full
        (8, [(0, 6), (6, 6)], 4),  # wrapped: rows 0..3 overwritten
        (6, [(0, 6), (6, 6), (12, 6)], 5),  # exactly full, thrice
        (12, [(0, 4), (4, 4), (8, 4), (12, 4)], 3),
    ],
)
def test_windows_match_the_reference(capacity, rollouts, length):
    memory = _filled(capacity, rollouts)
    newest = sum(steps for _, steps in rollouts) - 1
    oldest = max(0, newest + 1 - capacity)
    w = _draw(memory, jax.random.key(0), 400, length)
    chex.assert_shape(w.obs, (400, length + 1, 1))
    chex.assert_shape((w.rewards, w.dones, w.mask), (400, length))
    starts = set()
    for i in range(400):
        code = int(w.obs[i, 0, 0])
        g0, e = code // 10, code % 10
        starts.add((g0, e))
        obs, rewards, dones, mask = _reference(g0, e, length, newest)
        np.testing.assert_array_equal(w.mask[i], mask)
        np.testing.assert_array_equal(w.rewards[i], rewards)
        np.testing.assert_array_equal(w.dones[i], dones)
        valid = np.concatenate([[1.0], mask]) == 1
        np.testing.assert_array_equal(np.asarray(w.obs[i, :, 0])[valid], obs[valid])
        np.testing.assert_array_equal(
            np.asarray(w.actions[i])[mask == 1],
            ((np.arange(g0, g0 + length) + e) % 3)[mask == 1],
        )
        # the carry M had when C acted at the window's first step
        np.testing.assert_array_equal(w.carry[0][i], np.full(H, code))
        np.testing.assert_array_equal(w.carry[1][i], np.full(H, -code))
    # windows start at every kept step of every env, and only there
    kept = {(g, e) for g in range(oldest, newest + 1) for e in range(E)}
    assert starts == kept


def test_bookkeeping_of_head_and_filled():
    memory = _filled(8, [(0, 6)])
    assert (int(memory.head), int(memory.filled)) == (6, 6)
    memory = replay.add(memory, _rollout(6, 6))
    assert (int(memory.head), int(memory.filled)) == (4, 8)
    # rows 0..3 hold the second rollout's last 4 steps, 4..7 steps 4..7
    np.testing.assert_array_equal(
        memory.obs[:, 0, 0], [80, 90, 100, 110, 40, 50, 60, 70]
    )


def test_capacity_for_keeps_at_least_one_rollout():
    assert replay.capacity_for(50_000, 4, 128) == 12_500
    assert replay.capacity_for(100, 4, 128) == 128
    assert replay.capacity_for(10, 3, 2) == 4  # rounded up


def test_a_rollout_longer_than_the_replay_is_refused():
    memory = _filled(4, [])
    with pytest.raises(ValueError, match="6 steps does not fit a replay of 4 rows"):
        replay.add(memory, _rollout(0, 6))


def test_replay_bytes_counts_every_array():
    memory = _filled(8, [])
    # obs + next_obs: 8 x 2 x 1 float32; action int32; reward float32; two
    # bools; two carry leaves 8 x 2 x 3 float32; head and filled int32
    want = 2 * 64 + 64 + 64 + 2 * 16 + 2 * 192 + 8
    assert replay.replay_bytes(memory) == want


def _trained(**fields):
    from janus_jax import PPOConfig
    from janus_jax.train import WorldModelPPOTrainer

    agent = tiny_vector_agent()
    before = agent.params
    trainer = WorldModelPPOTrainer(
        agent,
        "CartPole-v1",
        PPOConfig(n_epochs=1, minibatch_size=16),
        imagination_ratio=0.5,
        imagination_horizon=4,
        num_envs=2,
        sequence_length=4,
        updates_per_chunk=3,
        replay_steps=40,
        **fields,
    )
    trainer.train(total_timesteps=96, rollout_length=16)
    return trainer, before, agent


def test_the_trainer_keeps_the_newest_steps_with_the_carries_c_acted_with():
    from janus_jax.models import mdn_rnn, vae

    # M frozen, so every stored carry came from the agent's own M.
    trainer, before, agent = _trained(mdn_updates=0)
    memory = trainer.state.replay
    # 3 updates x 16 steps into 20 rows per env: rows 8.. are the oldest
    assert (int(memory.head), int(memory.filled)) == (8, 20)
    order = (8 + np.arange(20)) % 20
    obs, next_obs = np.asarray(memory.obs)[order], np.asarray(memory.next_obs)[order]
    ended = np.asarray(memory.terminated | memory.truncated)[order]
    carry = jax.tree.map(lambda c: np.asarray(c)[order], memory.carry)
    at = lambda t, e: jax.tree.map(lambda c: c[t, e], carry)  # noqa: E731
    action = np.asarray(memory.action)[order]
    params = agent.params
    for e in range(2):
        for t in range(19):
            if ended[t, e]:  # the next episode starts from M's zero carry
                for leaf in jax.tree.leaves(at(t + 1, e)):
                    np.testing.assert_array_equal(leaf, 0.0)
                continue
            np.testing.assert_allclose(next_obs[t, e], obs[t + 1, e], rtol=1e-6)
            latent = vae.get_latent(params.vae, obs[t, e])
            want, _ = mdn_rnn.step(
                params.mdn_rnn, at(t, e), latent, jax.nn.one_hot(action[t, e], 2)
            )
            for got, leaf in zip(
                jax.tree.leaves(at(t + 1, e)), jax.tree.leaves(want), strict=True
            ):
                np.testing.assert_allclose(got, leaf, atol=1e-5)
    assert ended.any()  # CartPole's random-ish policy ends episodes in 40 steps


def test_v_learns_from_the_replay_only_when_asked():
    changed = lambda a, b: any(  # noqa: E731
        not np.array_equal(x, y)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    _, before, agent = _trained(vae_updates=2)
    assert changed(before.vae.net, agent.params.vae.net)
    np.testing.assert_array_equal(before.vae.obs_mean, agent.params.vae.obs_mean)
    _, before, agent = _trained(vae_updates=0)
    assert not changed(before.vae, agent.params.vae)
    assert changed(before.mdn_rnn, agent.params.mdn_rnn)  # M's refresh did run


def test_a_cut_ends_every_env_s_newest_episode():
    memory = replay.cut(_filled(16, [(0, 6)]))
    np.testing.assert_array_equal(memory.truncated[5], [True, True])
    memory = replay.add(memory, _rollout(6, 6))  # new episodes from step 6 on
    w = _draw(memory, jax.random.key(1), 300, 4)
    for i in range(300):
        code = int(w.obs[i, 0, 0])
        g0, e = code // 10, code % 10
        _, _, _, mask = _reference(g0, e, 4, 11)
        if g0 <= 5:  # never past step 5 into the episode that began at 6
            mask = mask * (np.arange(g0, g0 + 4) <= 5)
        np.testing.assert_array_equal(w.mask[i], mask)


def test_cutting_an_empty_replay_marks_nothing():
    memory = replay.cut(_filled(4, []))
    assert not np.asarray(memory.truncated).any()
