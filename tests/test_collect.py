"""Collection into a dataset: whole episodes only, stitched correctly across the
compiled chunks, resumable, and the same for gymnax and gymnasium envs."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import EnvState

from janus_jax.data import RolloutDataset
from janus_jax.data.collect import collect


def _episodes(dataset):
    """Returns every stored episode: (obs, actions, rewards, terminated, truncated)."""
    return list(dataset.iter_episodes())


def _cartpole_next_obs(obs, action):
    """Returns gymnax CartPole's next observation, by its own physics, for each row."""
    env, params = gymnax.make("CartPole-v1")

    def step(o, a):
        state = EnvState(time=0, x=o[0], x_dot=o[1], theta=o[2], theta_dot=o[3])
        next_obs, *_ = env.step_env(jax.random.key(0), state, a, params)
        return next_obs

    # jitted: one compilation a call (unjitted, every op of the physics was
    # compiled again for each episode's length: 20 s for 20 episodes)
    return np.asarray(jax.jit(jax.vmap(step))(jnp.asarray(obs), jnp.asarray(action)))


def test_gymnax_episodes_are_whole_and_follow_the_physics(tmp_path):
    # Chunks of 16 steps: most episodes span several chunks and must be stitched.
    stats = collect(
        "CartPole-v1", tmp_path, 20, num_envs=4, chunk_steps=16, progress=False, seed=1
    )
    dataset = RolloutDataset(tmp_path)
    assert stats.episodes == 20 and dataset.num_episodes == 20
    episodes = _episodes(dataset)
    lengths = []
    for obs, actions, rewards, terminated, truncated in episodes:
        assert np.abs(obs[0]).max() <= 0.05  # a fresh reset: U(-0.05, 0.05)
        ended = np.logical_or(terminated, truncated)
        assert ended[-1] and not ended[:-1].any()  # one episode, ended at its end
        np.testing.assert_array_equal(rewards, np.ones(len(rewards)))
        # Every stored transition obeys the dynamics: nothing from another episode.
        np.testing.assert_allclose(
            _cartpole_next_obs(obs[:-1], actions), obs[1:], rtol=1e-5, atol=1e-6
        )
        lengths.append(len(rewards))
    assert stats.steps == sum(lengths) == dataset.num_steps
    np.testing.assert_allclose(stats.return_mean, np.mean(lengths))
    assert stats.return_max == max(lengths)


@pytest.mark.parametrize("family", ["gymnax", "gymnasium"])
def test_a_given_policy_acts_and_episodes_follow_the_physics(tmp_path, family):
    # Push the cart towards the side the pole leans to: the stored actions must
    # be the policy's, each transition CartPole's own, in both env families.
    def lean_policy(key, obs):
        return (obs[:, 2] > 0).astype(jnp.int32)

    if family == "gymnax":
        env_kwargs = {"env_params": {"max_steps_in_episode": 30}}
    else:
        env_kwargs = {"family": "gymnasium", "max_episode_steps": 30}
    stats = collect(
        "CartPole-v1",
        tmp_path,
        4,
        num_envs=2,
        chunk_steps=8,
        progress=False,
        policy=lean_policy,
        env_kwargs=env_kwargs,
    )
    assert stats.episodes == 4
    for obs, actions, rewards, terminated, truncated in _episodes(
        RolloutDataset(tmp_path)
    ):
        np.testing.assert_array_equal(actions, obs[:-1, 2] > 0)
        np.testing.assert_allclose(
            _cartpole_next_obs(obs[:-1], actions), obs[1:], rtol=1e-5, atol=1e-6
        )
        assert np.logical_or(terminated, truncated)[-1] and len(rewards) <= 30


def test_same_seed_same_dataset(tmp_path):
    a = collect("CartPole-v1", tmp_path / "a", 6, num_envs=2, progress=False)
    b = collect("CartPole-v1", tmp_path / "b", 6, num_envs=2, progress=False)
    assert a.return_mean == b.return_mean
    for x, y in zip(
        _episodes(RolloutDataset(tmp_path / "a")),
        _episodes(RolloutDataset(tmp_path / "b")),
        strict=True,
    ):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


def test_resume_appends_and_a_second_run_without_it_is_refused(tmp_path):
    collect("CartPole-v1", tmp_path, 5, num_envs=2, progress=False, shard_steps=50)
    first = [e[0] for e in _episodes(RolloutDataset(tmp_path))]
    with pytest.raises(FileExistsError, match="resume=True"):
        collect("CartPole-v1", tmp_path, 5, num_envs=2, progress=False)
    stats = collect(
        "CartPole-v1", tmp_path, 12, num_envs=2, progress=False, resume=True
    )
    assert stats.episodes == 7 and stats.total_episodes == 12
    after = _episodes(RolloutDataset(tmp_path))
    assert len(after) == 12
    for old, new in zip(first, after, strict=False):  # the old episodes are untouched
        np.testing.assert_array_equal(old, new[0])


def test_carracing_collects_64x64_uint8_frames(tmp_path):
    stats = collect(
        "CarRacing-v3",
        tmp_path,
        3,
        num_envs=2,
        progress=False,
        env_kwargs={"max_episode_steps": 12},
    )
    dataset = RolloutDataset(tmp_path)
    assert stats.episodes == 3 and dataset.env_id == "CarRacing-v3"
    for obs, actions, _, _, truncated in _episodes(dataset):
        assert obs.dtype == np.uint8 and obs.shape == (13, 64, 64, 3)
        assert actions.shape == (12, 3) and actions.dtype == np.float32
        assert (actions[:, 0] >= -1).all() and (actions[:, 1:] >= 0).all()
        assert (actions <= 1).all() and truncated[-1]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_episodes=0"):
        collect("CartPole-v1", tmp_path, 0)
    with pytest.raises(ValueError, match="CarRacing-v3"):
        collect("CarRacing-v2", tmp_path, 1)


def test_multi_task_frames_share_one_64x64x3_shape(tmp_path):
    # The seed's multi-task example: CarRacing, LunarLander and BipedalWalker, the
    # last two observed from their renders, so one VAE can take all their frames.
    short = {"max_episode_steps": 6}
    for env_id, kwargs in [
        ("CarRacing-v3", short),
        ("LunarLander-v3", {**short, "observation": "pixels"}),
        ("BipedalWalker-v3", {**short, "observation": "pixels"}),
    ]:
        collect(
            env_id, tmp_path / env_id, 2, num_envs=2, progress=False, env_kwargs=kwargs
        )
    datasets = [
        RolloutDataset(tmp_path / name)
        for name in ("CarRacing-v3", "LunarLander-v3", "BipedalWalker-v3")
    ]
    assert [d.action_shape for d in datasets] == [(3,), (), (4,)]
    for dataset in datasets:
        frames = next(dataset.frames(16, seed=0))
        assert frames.shape == (16, 64, 64, 3) and frames.dtype == np.uint8
        # The frames really come from the dataset's own episodes.
        stored = np.concatenate([e[0] for e in dataset.iter_episodes()])
        for frame in frames:
            assert (stored == frame).all(axis=(1, 2, 3)).any()


def test_many_envs_do_not_bias_towards_short_episodes(tmp_path):
    # Keeping the first episodes to *finish* would favour short ones when many
    # envs run at once: the kept episodes must be the first to *start*, whose
    # lengths are the env's own distribution whatever the number of envs.
    lengths = {}
    for num_envs in (1, 64):
        collect(
            "CartPole-v1",
            tmp_path / str(num_envs),
            64,
            num_envs=num_envs,
            progress=False,
            seed=0,
        )
        lengths[num_envs] = RolloutDataset(tmp_path / str(num_envs)).episode_lengths()
    # 64 envs: exactly the 64 first episodes, one per env, never a short subset.
    assert abs(lengths[64].mean() - lengths[1].mean()) < 4.0, lengths
    assert lengths[64].mean() > 17  # random CartPole episodes average about 22


def test_resumed_runs_draw_new_episodes(tmp_path):
    collect(
        "CarRacing-v3",
        tmp_path,
        2,
        num_envs=2,
        progress=False,
        env_kwargs={"max_episode_steps": 4},
    )
    collect(
        "CarRacing-v3",
        tmp_path,
        4,
        num_envs=2,
        progress=False,
        resume=True,
        env_kwargs={"max_episode_steps": 4},
    )
    firsts = [e[0][0] for e in RolloutDataset(tmp_path).iter_episodes()]
    assert len(firsts) == 4
    # Each episode starts on its own track: no start frame repeats.
    assert len({f.tobytes() for f in firsts}) == 4


def test_bad_arguments_fail_before_any_file_is_written(tmp_path):
    for kwargs, match in [
        ({"chunk_steps": 0}, "chunk_steps=0"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": 1.5}, "seed=1.5"),
        ({"env_kwargs": {"num_envs": 4}}, "num_envs"),
        ({"env_kwargs": {"observation": "pixels"}}, "family='gymnasium'"),
    ]:
        with pytest.raises(ValueError, match=match):
            collect("CartPole-v1", tmp_path / "d", 2, progress=False, **kwargs)

    def broken_policy(key, obs):
        raise RuntimeError("policy bug")

    with pytest.raises(RuntimeError, match="policy bug"):
        collect("CartPole-v1", tmp_path / "d", 2, progress=False, policy=broken_policy)
    assert not (tmp_path / "d").exists()  # nothing in the way of the rerun
    collect("CartPole-v1", tmp_path / "d", 2, progress=False)
