"""Tests of janus_jax.envs: specs, auto-reset semantics, preprocessing, errors."""

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from janus_jax.configs import VAEConfig
from janus_jax.envs import (
    EnvSpec,
    GymnasiumEnv,
    GymnaxEnv,
    check_observation,
    collect,
    make,
    make_single_env,
    preprocess_frames,
    rollout,
)
from janus_jax.envs.gymnasium_env import GymStep

# CartPole integrates x_{t+1} = x_t + tau * x_dot_t in both gymnax and gymnasium:
# an independent check that an observation truly follows the one before it.
CARTPOLE_TAU = 0.02
SHORT = 5  # episode length used to force several auto-resets in a few steps


class ProbeEnv(gymnasium.Env):
    """A one-step env whose spaces the test chooses; it records its last action."""

    def __init__(self, observation_space=None, action_space=None):
        self.observation_space = observation_space or spaces.Box(-1, 1, (2,))
        self.action_space = action_space or spaces.Discrete(3)
        self.last_action = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        self.last_action = action
        return self.observation_space.sample(), 0.0, False, False, {}


PROBE_ID = "JanusProbe-v0"
if PROBE_ID not in gymnasium.registry:
    gymnasium.register(id=PROBE_ID, entry_point=ProbeEnv)


# --- gymnax -------------------------------------------------------------------


def _short_cartpole() -> GymnaxEnv:
    return make("CartPole-v1", env_params={"max_steps_in_episode": SHORT})


class GymnaxRolloutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_rollout_equals_stepping_by_hand(self):
        env, num_envs, num_steps = _short_cartpole(), 3, 12
        key = jax.random.key(7)
        run = self.variant(rollout, static_argnums=(0, 2, 3))
        got = run(env, key, num_envs, num_steps)

        # The documented key schedule, replayed with a Python loop.
        key_reset, key_scan = jax.random.split(key)
        keys = jax.random.split(key_reset, num_envs)
        obs, state = jax.vmap(env.reset)(keys)
        want = {f: [] for f in got._fields}
        for key_t in jax.random.split(key_scan, num_steps):
            key_act, key_env = jax.random.split(key_t)
            action = jax.random.randint(key_act, (num_envs,), 0, 2)
            out = jax.vmap(env.step)(jax.random.split(key_env, num_envs), state, action)
            for field, value in zip(
                got._fields,
                (obs, action, out.reward, out.terminated, out.truncated, out.final_obs),
                strict=True,
            ):
                want[field].append(value)
            obs, state = out.obs, out.state
        for field in got._fields:
            chex.assert_trees_all_close(
                getattr(got, field), jnp.stack(want[field]), atol=1e-6
            )

    def test_final_obs_continues_and_next_obs_restarts(self):
        env = _short_cartpole()
        tr = jax.jit(rollout, static_argnums=(0, 2, 3))(env, jax.random.key(0), 2, 16)
        chex.assert_shape(tr.obs, (16, 2, 4))
        chex.assert_shape(tr.next_obs, (16, 2, 4))
        # Random play cannot topple the pole in 5 steps: every end is a time limit.
        done = np.asarray(tr.truncated)
        assert not np.asarray(tr.terminated).any()
        assert done[SHORT - 1 :: SHORT].all() and done.sum() == 3 * 2
        obs, next_obs = np.asarray(tr.obs), np.asarray(tr.next_obs)
        # next_obs always follows obs by the dynamics, reset or not.
        np.testing.assert_allclose(
            next_obs[..., 0], obs[..., 0] + CARTPOLE_TAU * obs[..., 1], atol=1e-6
        )
        inside = ~done[:-1]
        np.testing.assert_array_equal(obs[1:][inside], next_obs[:-1][inside])
        # After an end, obs[t + 1] is a fresh reset state, uniform in +-0.05.
        restarts = obs[1:][done[:-1]]
        assert np.abs(restarts).max() <= 0.05
        assert not np.allclose(restarts, next_obs[:-1][done[:-1]])


def test_gymnax_specs_and_random_actions():
    pendulum = make("Pendulum-v1")
    assert isinstance(pendulum, GymnaxEnv) and pendulum.spec.on_device
    assert pendulum.spec.action.continuous
    assert (pendulum.spec.action.low, pendulum.spec.action.high) == ((-2.0,), (2.0,))
    tr = jax.jit(rollout, static_argnums=(0, 2, 3))(pendulum, jax.random.key(1), 4, 6)
    chex.assert_shape(tr.action, (6, 4, 1))
    assert np.all(np.abs(np.asarray(tr.action)) <= 2.0)
    chex.assert_tree_all_finite(tr)

    breakout = make("Breakout-MinAtar")
    spec = breakout.spec
    assert spec.observation_shape == (10, 10, 4) and spec.is_image
    assert spec.observation_dtype == "float32" and spec.action.dim == 3
    vae = VAEConfig(
        input_height=10, input_width=10, input_channels=4, hidden_channels=(8, 8)
    )
    check_observation(spec, vae)
    assert make("Catch-bsuite").spec.observation_shape == (50,)  # flattened


def test_rollout_rejects_a_policy_of_the_wrong_shape():
    env = make("CartPole-v1")
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        rollout(env, jax.random.key(0), 3, 2, lambda key, obs: jnp.zeros((3, 2)))


# --- gymnasium ----------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, kwargs",
    [("CartPole-v1", {}), ("LunarLander-v3", {"observation": "pixels"})],
)
def test_sub_envs_pass_gymnasium_check_env(env_id, kwargs):
    # check_env needs a gymnasium.Env: the vector adapter is not one, so it is
    # checked on the sub-env it vectorises and by the semantic tests below.
    env = make_single_env(env_id, **kwargs)
    check_env(env, skip_render_check=True)
    env.close()


def test_gymnasium_same_step_autoreset_reports_final_obs():
    env = make("CartPole-v1", family="gymnasium", num_envs=2, max_episode_steps=SHORT)
    assert isinstance(env, GymnasiumEnv) and env.spec.max_episode_steps == SHORT
    with env:
        obs = env.reset(seed=0)
        chex.assert_shape(obs, (2, 4))
        for t in range(2 * SHORT):
            out = env.step(np.array([t % 2, (t + 1) % 2]))
            assert isinstance(out, GymStep) and out.reward.dtype == np.float32
            np.testing.assert_allclose(
                out.final_obs[:, 0], obs[:, 0] + CARTPOLE_TAU * obs[:, 1], atol=1e-6
            )
            ended = out.terminated | out.truncated
            assert ended.all() == ((t + 1) % SHORT == 0)
            if ended.all():
                assert np.abs(out.obs).max() <= 0.05
                assert not np.allclose(out.obs, out.final_obs)
            else:
                np.testing.assert_array_equal(out.obs, out.final_obs)
            obs = out.obs


def test_carracing_collects_64x64_frames_and_bounded_actions():
    with make("CarRacing-v3", num_envs=2) as env:
        spec = env.spec
        assert (
            spec.observation_shape == (64, 64, 3) and spec.observation_dtype == "uint8"
        )
        check_observation(spec, VAEConfig())
        tr = collect(env, jax.random.key(0), 3)
    chex.assert_shape([tr.obs, tr.next_obs], (3, 2, 64, 64, 3))
    assert tr.obs.dtype == tr.next_obs.dtype == np.uint8
    chex.assert_shape(tr.action, (3, 2, 3))
    assert tr.action.dtype == np.float32
    assert np.all(tr.action >= np.array(spec.action.low))
    assert np.all(tr.action <= np.array(spec.action.high))
    assert tr.obs.std() > 0  # real frames, not a blank buffer


def test_lunarlander_pixels_are_64x64_frames():
    with GymnasiumEnv("LunarLander-v3", observation="pixels") as env:
        assert env.spec.observation_shape == (64, 64, 3)
        assert not env.spec.action.continuous and env.spec.action.dim == 4
        obs = env.reset(seed=0)
        out = env.step(np.array([0]))
    for frames in (obs, out.obs, out.final_obs):
        chex.assert_shape(frames, (1, 64, 64, 3))
        assert frames.dtype == np.uint8 and frames.std() > 0


def test_discrete_start_is_added_and_actions_are_validated():
    with GymnasiumEnv(PROBE_ID, action_space=spaces.Discrete(3, start=-1)) as env:
        assert env.spec.action.dim == 3
        env.reset(seed=0)
        env.step(np.array([0]))
        assert env._vec.envs[0].unwrapped.last_action == -1
        with pytest.raises(ValueError, match=r"shape \(\) are invalid.*\(1,\)"):
            env.step(np.int64(0))
        with pytest.raises(ValueError, match=r"\[0, 3\)"):
            env.step(np.array([3]))
        with pytest.raises(ValueError, match="integers"):
            env.step(np.array([0.5]))


# --- preprocessing --------------------------------------------------------------


def test_preprocess_rounds_a_constant_frame_exactly():
    frames = np.full((2, 3, 96, 96, 3), 201, np.uint8)
    out = preprocess_frames(frames, size=(64, 64))
    chex.assert_shape(out, (2, 3, 64, 64, 3))
    assert out.dtype == jnp.uint8 and np.all(np.asarray(out) == 201)


def test_preprocess_matches_pil_bilinear():
    image = pytest.importorskip("PIL.Image")  # Pillow: an independent resizer
    rows, cols = np.mgrid[:96, :96]
    pattern = (np.sin(rows / 7.0) + np.cos(cols / 5.0) + 2.0) * 60.0
    frame = np.stack([pattern, pattern[::-1], 255 - pattern], -1).astype(np.uint8)
    want = np.asarray(image.fromarray(frame).resize((48, 64), image.BILINEAR))
    got = np.asarray(preprocess_frames(frame, size=(64, 48)))
    # PIL works in 8-bit fixed point: its results differ by at most one level,
    # without bias (truncating instead of rounding would shift them by -0.5).
    diff = got.astype(int) - want
    assert np.abs(diff).max() <= 1 and abs(diff.mean()) < 0.2


def test_preprocess_crops_top_bottom_left_right():
    frame = np.arange(8 * 10 * 1, dtype=np.uint8).reshape(8, 10, 1)
    out = preprocess_frames(frame, size=(5, 6), crop=(1, 2, 3, 1))
    np.testing.assert_array_equal(np.asarray(out), frame[1:6, 3:9])
    with pytest.raises(ValueError, match="leaves no pixels"):
        preprocess_frames(frame, crop=(4, 4, 0, 0))
    with pytest.raises(ValueError, match="uint8"):
        preprocess_frames(frame.astype(np.float32))


# --- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "old, new",
    [
        ("CarRacing-v2", "CarRacing-v3"),
        ("LunarLander-v2", "LunarLander-v3"),
        ("BipedalWalker-v2", "BipedalWalker-v3"),
        ("MinAtar-Breakout", "Breakout-MinAtar"),
        ("MinAtar-Asterix", "Asterix-MinAtar"),
        ("MinAtar-Freeway", "Freeway-MinAtar"),
        ("MinAtar-SpaceInvaders", "SpaceInvaders-MinAtar"),
        ("MinAtar-Seaquest", "Seaquest-MinAtar"),
    ],
)
def test_old_ids_name_the_current_one(old, new):
    with pytest.raises(ValueError, match=f"'{new}'"):
        make(old)


def test_unknown_id_lists_nearest_ids():
    with pytest.raises(ValueError, match=r"nearest known ids are \['CartPole-v1'"):
        make("CartPoel-v1")
    with pytest.raises(ValueError, match="Breakout-MinAtar"):
        make("Breakout-Minatr", family="gymnax")
    with pytest.raises(ValueError, match="gymnasium knows it"):
        make("CarRacing-v3", family="gymnax")


@pytest.mark.parametrize(
    "kwargs, what",
    [
        ({"observation_space": spaces.Dict({"a": spaces.Discrete(2)})}, "Dict"),
        ({"observation_space": spaces.Discrete(4)}, "Discrete"),
        ({"action_space": spaces.MultiDiscrete([2, 3])}, "MultiDiscrete"),
        ({"action_space": spaces.Tuple((spaces.Discrete(2),))}, "Tuple"),
    ],
)
def test_unsupported_spaces_name_the_space_and_env(kwargs, what):
    with pytest.raises(ValueError, match=f"{PROBE_ID}.*{what}"):
        make(PROBE_ID, **kwargs)


def test_observation_shape_mismatch_names_both_shapes():
    spec = make("CartPole-v1").spec
    with pytest.raises(ValueError, match=r"\(4,\).*\(64, 64, 3\)"):
        check_observation(spec, VAEConfig())
    check_observation(spec, VAEConfig(observation_size=4))
    carracing_like = EnvSpec(
        env_id="x",
        family="gymnasium",
        observation_shape=(96, 96, 3),
        observation_dtype="uint8",
        action=spec.action,
        on_device=False,
        max_episode_steps=None,
    )
    with pytest.raises(ValueError, match=r"\(96, 96, 3\).*\(64, 64, 3\)"):
        check_observation(carracing_like, VAEConfig())
