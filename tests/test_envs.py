"""Tests of janus_jax.envs: specs, auto-reset semantics, preprocessing, errors."""

import dataclasses
import subprocess
import sys

import chex
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import subprocess_env
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from janus_jax.config.models import VAEConfig
from janus_jax.envs import (
    EnvSpec,
    GymnasiumEnv,
    GymnaxEnv,
    PolicyStep,
    RandomPolicy,
    RolloutState,
    StatelessPolicy,
    as_env,
    check_observation,
    compiled,
    make,
    make_single_env,
    preprocess_frames,
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


ENV_FIELDS = ("obs", "action", "reward", "terminated", "truncated", "next_obs")


@dataclasses.dataclass(frozen=True)
class CountingPolicy:
    """Takes the action ``params`` in every env; its state counts the steps of
    each env's episode so far, and it records the count it acted on."""

    def __call__(self, params, key, obs, state):
        action = jnp.full(obs.shape[:1], params, jnp.int32)
        return PolicyStep(action, state + 1, info=state)


def _cartpole(family: str, num_envs: int, max_steps: int = SHORT):
    if family == "gymnax":
        limit = {"max_steps_in_episode": max_steps}
        return make("CartPole-v1", num_envs=num_envs, env_params=limit)
    return make(
        "CartPole-v1",
        family="gymnasium",
        num_envs=num_envs,
        max_episode_steps=max_steps,
    )


def _episode_bookkeeping(rewards, ended):
    """Returns (steps of its episode before each step [T, E], the return of the
    episode ending at each step, else 0 [T, E], the running returns after the last
    step [E]), by a NumPy loop over the steps."""
    count = np.zeros(ended.shape[1], int)
    running = np.zeros(ended.shape[1])
    counts, finished = [], []
    for reward, end in zip(np.asarray(rewards), np.asarray(ended), strict=True):
        counts.append(count)
        running = running + reward
        finished.append(np.where(end, running, 0.0))
        running = np.where(end, 0.0, running)
        count = np.where(end, 0, count + 1)
    return np.stack(counts), np.stack(finished), running


# --- gymnax -------------------------------------------------------------------


class GymnaxRolloutTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_rollout_equals_stepping_by_hand(self):
        num_envs, num_steps = 3, 12
        env = _cartpole("gymnax", num_envs)
        policy = RandomPolicy(env.spec.action)
        key_start, key_run = jax.random.split(jax.random.key(7))

        @self.variant
        def run(key_start, key_run):
            state = env.start(key_start)
            return env.rollout(policy, None, state, key_run, num_steps)

        state, got = run(key_start, key_run)

        # The documented key schedule, replayed with a Python loop.
        obs, env_state = jax.vmap(env.reset)(jax.random.split(key_start, num_envs))
        want = {f: [] for f in ENV_FIELDS}
        for key_t in jax.random.split(key_run, num_steps):
            key_act, key_env = jax.random.split(key_t)
            action = jax.random.randint(key_act, (num_envs,), 0, 2)
            keys = jax.random.split(key_env, num_envs)
            out = jax.vmap(env.step)(keys, env_state, action)
            for field, value in zip(
                ENV_FIELDS,
                (obs, action, out.reward, out.terminated, out.truncated, out.final_obs),
                strict=True,
            ):
                want[field].append(value)
            obs, env_state = out.obs, out.state
        want = {f: np.stack(v) for f, v in want.items()}
        for field in ENV_FIELDS:
            chex.assert_trees_all_close(getattr(got, field), want[field], atol=1e-6)
        assert got.info is None and got.mask is None
        ended = want["terminated"] | want["truncated"]
        assert ended.any()
        _, finished, running = _episode_bookkeeping(want["reward"], ended)
        np.testing.assert_allclose(got.episode_return, finished)
        # The state is where the last step left the envs: the next rollout goes on.
        assert isinstance(state, RolloutState) and state.policy_state is None
        chex.assert_trees_all_close((state.obs, state.env_state), (obs, env_state))
        np.testing.assert_allclose(state.episode_return, running)

    def test_final_obs_continues_and_next_obs_restarts(self):
        env = _cartpole("gymnax", 2)
        run = compiled(env, RandomPolicy(env.spec.action), 16)
        key_start, key_run = jax.random.split(jax.random.key(0))
        _, tr = run(None, env.start(key_start), key_run)
        chex.assert_shape(tr.obs, (16, 2, 4))
        chex.assert_shape(tr.next_obs, (16, 2, 4))
        # Random play cannot topple the pole in 5 steps: every end is a time limit.
        done = np.asarray(tr.truncated)
        assert not np.asarray(tr.terminated).any()
        assert done[SHORT - 1 :: SHORT].all() and done.sum() == 3 * 2
        # A reward of 1 a step: an episode's return, at its last step, is SHORT.
        np.testing.assert_array_equal(tr.episode_return, np.where(done, SHORT, 0))
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
    assert make("CartPole-v1").num_envs == 1
    with pytest.raises(ValueError, match="num_envs=0"):
        make("CartPole-v1", num_envs=0)
    pendulum = make("Pendulum-v1", num_envs=4)
    assert isinstance(pendulum, GymnaxEnv) and pendulum.spec.on_device
    assert pendulum.num_envs == 4 and pendulum.spec.action.continuous
    assert (pendulum.spec.action.low, pendulum.spec.action.high) == ((-2.0,), (2.0,))
    run = compiled(pendulum, RandomPolicy(pendulum.spec.action), 6)
    _, tr = run(None, pendulum.start(jax.random.key(1)), jax.random.key(2))
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


# --- both families ---------------------------------------------------------------


@pytest.mark.parametrize("family", ["gymnax", "gymnasium"])
def test_rollout_rejects_a_policy_of_the_wrong_shape(family):
    with _cartpole(family, 3) as env:
        policy = StatelessPolicy(lambda key, obs: jnp.zeros((3, 2)))
        with pytest.raises(ValueError, match=r"expected \(3,\)"):
            env.rollout(
                policy, None, env.start(jax.random.key(0)), jax.random.key(1), 2
            )


@pytest.mark.parametrize("family", ["gymnax", "gymnasium"])
def test_rollout_carries_the_policy_state_and_zeroes_it_where_an_episode_ends(
    family,
):
    # Pushing right every step topples the pole in about ten steps, before the
    # time limit of 12 on some starts: episodes end terminated and truncated.
    num_envs = 4
    with _cartpole(family, num_envs, max_steps=12) as env:
        start = env.start(jax.random.key(3), jnp.zeros(num_envs, jnp.int32))
        run = compiled(env, CountingPolicy(), 15)
        middle, first = run(1, start, jax.random.key(4))
        final, second = run(1, middle, jax.random.key(5))
    tr = jax.tree.map(lambda a, b: np.concatenate([a, b]), first, second)
    np.testing.assert_array_equal(tr.action, 1)  # the params reach the policy
    ended = np.asarray(tr.terminated | tr.truncated)
    assert np.asarray(tr.terminated).any() and ended.sum() >= 2 * num_envs
    counts, finished, running = _episode_bookkeeping(tr.reward, ended)
    # The count goes on across the two rollouts and restarts at 0 with each episode.
    np.testing.assert_array_equal(tr.info, counts)
    np.testing.assert_allclose(tr.episode_return, finished)
    np.testing.assert_array_equal(
        final.policy_state, np.where(ended[-1], 0, counts[-1] + 1)
    )
    np.testing.assert_allclose(final.episode_return, running)


# --- gymnasium ----------------------------------------------------------------


def test_gymnasium_rollout_equals_stepping_by_hand():
    num_envs, num_steps = 2, 12
    key_start, key_run = jax.random.split(jax.random.key(11))
    with _cartpole("gymnasium", num_envs) as env:
        policy = RandomPolicy(env.spec.action)
        state, got = env.rollout(policy, None, env.start(key_start), key_run, num_steps)
    # The documented schedule: envs seeded from the start key, step t acting with
    # split(split(key, T)[t])[0], replayed on fresh envs.
    with _cartpole("gymnasium", num_envs) as env:
        obs = env.reset(seed=int(jax.random.randint(key_start, (), 0, 2**31 - 1)))
        want = {f: [] for f in ENV_FIELDS}
        for key_t in jax.random.split(key_run, num_steps):
            key_act = jax.random.split(key_t)[0]
            action = np.asarray(jax.random.randint(key_act, (num_envs,), 0, 2))
            out = env.step(action)
            for field, value in zip(
                ENV_FIELDS,
                (obs, action, out.reward, out.terminated, out.truncated, out.final_obs),
                strict=True,
            ):
                want[field].append(value)
            obs = out.obs
    want = {f: np.stack(v) for f, v in want.items()}
    for field in ENV_FIELDS:
        np.testing.assert_allclose(getattr(got, field), want[field], atol=1e-6)
    ended = want["terminated"] | want["truncated"]
    assert ended.any()
    _, finished, running = _episode_bookkeeping(want["reward"], ended)
    np.testing.assert_allclose(got.episode_return, finished)
    assert state.env_state is None and state.policy_state is None
    np.testing.assert_array_equal(state.obs, obs)
    np.testing.assert_allclose(state.episode_return, running)


def test_from_envs_steps_the_given_envs_and_refuses_mixed_specs():
    made = [gymnasium.make("CartPole-v1", max_episode_steps=SHORT) for _ in range(2)]
    with GymnasiumEnv.from_envs(made) as env:
        assert env.num_envs == 2 and env.spec.max_episode_steps == SHORT
        assert env.spec.env_id == "CartPole-v1" and not env.spec.on_device
        state = env.start(jax.random.key(0))
        _, tr = env.rollout(
            RandomPolicy(env.spec.action), None, state, jax.random.key(1), 2 * SHORT
        )
    # The given envs' own time limit ends every episode (random play cannot
    # topple the pole in 5 steps).
    done = np.asarray(tr.truncated)
    assert done[SHORT - 1 :: SHORT].all() and done.sum() == 2 * 2
    mixed = [
        gymnasium.make("CartPole-v1"),
        gymnasium.make("CartPole-v1", max_episode_steps=3),
    ]
    with pytest.raises(ValueError, match=r"envs\[1\] has spec"):
        GymnasiumEnv.from_envs(mixed)
    for env in mixed:
        env.close()


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


def test_carracing_rolls_out_64x64_frames_and_bounded_actions():
    with make("CarRacing-v3", num_envs=2) as env:
        spec = env.spec
        assert (
            spec.observation_shape == (64, 64, 3) and spec.observation_dtype == "uint8"
        )
        check_observation(spec, VAEConfig())
        state = env.start(jax.random.key(0))
        _, tr = env.rollout(
            RandomPolicy(spec.action), None, state, jax.random.key(1), 3
        )
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


def test_rendering_on_a_headless_machine_prints_nothing():
    """pygame's SDL, rendering Pendulum to an array in a fresh process without a
    display, prints ALSA's and XDG_RUNTIME_DIR's complaints unless told there
    is no audio or video device; an exported setting wins."""
    script = (
        "import os\n"
        "from janus_jax.envs import GymnasiumEnv\n"
        "with GymnasiumEnv('Pendulum-v1', observation='pixels') as env:\n"
        "    assert env.reset(seed=0).std() > 0\n"
        "print(os.environ['SDL_AUDIODRIVER'], os.environ['SDL_VIDEODRIVER'])\n"
    )
    env = subprocess_env()
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_AUDIODRIVER", "SDL_VIDEODRIVER"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["dummy", "dummy"]
    assert "ALSA" not in done.stderr and "XDG_RUNTIME_DIR" not in done.stderr
    env["SDL_AUDIODRIVER"] = "pulse"  # the user's choice is kept
    script = script.replace("std() > 0", "std() > 0 or True")
    kept = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True
    )
    assert kept.stdout.split() == ["pulse", "dummy"]


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


def test_as_env_keeps_a_gymnasium_env_in_its_family():
    made = gymnasium.make("CartPole-v1", max_episode_steps=SHORT)
    try:
        with as_env(made, 2) as env:
            assert env.spec.family == "gymnasium" and env.num_envs == 2
            assert env.spec.max_episode_steps == SHORT
    finally:
        made.close()


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


def test_a_gymnasium_rollout_of_no_steps_is_refused():
    with make("CartPole-v1", family="gymnasium", num_envs=2) as env:
        state = env.start(jax.random.key(0))
        with pytest.raises(ValueError, match="num_steps=0"):
            env.rollout(
                RandomPolicy(env.spec.action), None, state, jax.random.key(1), 0
            )
