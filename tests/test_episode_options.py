"""GymnasiumEnv's episode options: the wrappers on a probe env whose rewards are
scripted, then on CarRacing-v3 through the adapter (a car that never moves is
truncated after ``no_progress_steps``; its evaluation copy is not)."""

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from janus_jax.envs import make
from janus_jax.envs.factory import remake
from janus_jax.envs.gymnasium_wrappers import (
    ActionRepeat,
    EndWithoutProgress,
    SkipStart,
    episode_steps,
    episode_wrappers,
)


class Scripted(gymnasium.Env):
    """Observes how many steps it took; pays REWARDS[t] at step t; terminates
    after len(REWARDS) steps. Records the actions it got."""

    REWARDS = [1.0, -0.1, -0.1, -0.1, 2.0, -0.1, -0.1, -0.1, -0.1, -0.1]

    def __init__(self):
        self.observation_space = spaces.Box(0, 100, (1,), np.float32)
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.t, self.actions = 0, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.actions.append(np.asarray(action))
        reward = self.REWARDS[self.t]
        self.t += 1
        done = self.t == len(self.REWARDS)
        return np.array([self.t], np.float32), reward, done, False, {}


def _run(env, steps, action=(0.5, 0.5)):
    env.reset(seed=0)
    out = []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(np.array(action, np.float32))
        out.append((float(obs[0]), round(reward, 6), terminated, truncated))
        if terminated or truncated:
            break
    return out


def test_end_without_progress_truncates_after_n_unpaid_steps():
    rows = _run(EndWithoutProgress(Scripted(), 3), 10)
    # steps 1-3 unpaid -> truncated at step 4 (obs 4), before step 5's reward
    assert rows[-1] == (4.0, -0.1, False, True)
    assert len(rows) == 4
    # a paid step resets the count: patience 4 reaches step 5's reward (2.0)
    rows = _run(EndWithoutProgress(Scripted(), 4), 10)
    assert rows[4] == (5.0, 2.0, False, False)
    assert rows[-1] == (9.0, -0.1, False, True)


def test_action_repeat_sums_rewards_and_stops_at_the_end():
    inner = Scripted()
    rows = _run(ActionRepeat(inner, 4), 10)
    assert [r[0] for r in rows] == [4.0, 8.0, 10.0]
    np.testing.assert_allclose([r[1] for r in rows], [0.7, 1.7, -0.2])
    assert rows[-1][2] is True  # the termination inside a repeat ends it
    assert len(inner.actions) == 10
    # the return is the env's own
    assert sum(r[1] for r in rows) == pytest.approx(sum(Scripted.REWARDS))


def test_skip_start_hides_no_op_steps_and_keeps_their_rewards():
    inner = Scripted()
    env = SkipStart(inner, 3)
    obs, _ = env.reset(seed=0)
    assert obs[0] == 3.0  # the agent starts after three steps
    np.testing.assert_array_equal(inner.actions, np.zeros((3, 2)))  # no-ops
    _, reward, *_ = env.step(np.ones(2, np.float32))
    assert reward == pytest.approx(1.0 - 0.1 - 0.1 - 0.1)  # skipped + its own
    _, reward, *_ = env.step(np.ones(2, np.float32))
    assert reward == pytest.approx(2.0)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"skip_start": -1, "action_repeat": 1, "no_progress_steps": None}, "skip"),
        ({"skip_start": 0, "action_repeat": 0, "no_progress_steps": None}, "action"),
        ({"skip_start": 0, "action_repeat": 2.0, "no_progress_steps": None}, "action"),
        ({"skip_start": 0, "action_repeat": 1, "no_progress_steps": 0}, "no_progress"),
    ],
)
def test_bad_option_values_are_refused_by_name(kwargs, field):
    with pytest.raises(ValueError, match=rf"{field}\w*=.* is invalid"):
        episode_wrappers(**kwargs)


def test_episode_steps_follow_the_options():
    assert episode_steps(1000, 50, 4) == 238  # ceil(950 / 4)
    assert episode_steps(1000, 0, 1) == 1000
    assert episode_steps(None, 50, 4) is None


def test_the_options_are_gymnasium_only():
    with pytest.raises(ValueError, match="action_repeat"):
        make("CartPole-v1", action_repeat=2)


def test_a_car_that_never_moves_is_truncated_and_its_evaluation_copy_is_not():
    options = {"skip_start": 50, "action_repeat": 2, "no_progress_steps": 20}
    with make("CarRacing-v3", **options) as env:
        assert env.spec.max_episode_steps == 475
        assert env.made_with["no_progress_steps"] == 20
        with remake(env, 1, evaluation=True) as copy:
            assert "no_progress_steps" not in copy.made_with
            assert copy.made_with["action_repeat"] == 2
            ends = []
            for e in (env, copy):
                e.reset(seed=0)
                steps, step = 0, None
                while steps < 60 and not (step and step.truncated[0]):
                    step = e.step(np.zeros((1, 3), np.float32))
                    steps += 1
                ends.append((steps, bool(step.truncated[0])))
    # The first step pays the skipped start's rewards, the start tile's bonus
    # among them; standing still then pays -0.1 a frame: 20 steps without
    # progress after it, then the cut.
    assert ends[0] == (21, True)
    assert ends[1] == (60, False)


def _car_racing_rows(draw_unseen: bool, limit: int, skip: int, steps: int):
    """(obs, reward, terminated, truncated) of CarRacing-v3 under SkipStart and
    ActionRepeat(4), a time limit of ``limit`` frames, seeded random actions."""
    env = gymnasium.make("CarRacing-v3", max_episode_steps=limit)
    env = ActionRepeat(SkipStart(env, skip, draw_unseen), 4, draw_unseen)
    actions = np.random.default_rng(0).uniform(0, 1, (steps, 3)).astype(np.float32)
    obs, _ = env.reset(seed=3)
    rows = [(obs, 0.0, False, False)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            rows.append((obs, 0.0, False, False))
    env.close()
    return rows


@pytest.mark.parametrize(
    "limit,skip",
    [
        (63, 50),  # 13 frames: the time limit cuts the 4th action's 3rd frame
        (30, 50),  # episodes shorter than the skip: the start spans two
    ],
)
def test_car_racing_sees_the_same_frames_when_unseen_ones_are_not_drawn(limit, skip):
    drawn = _car_racing_rows(True, limit, skip, 6)
    skipped = _car_racing_rows(False, limit, skip, 6)
    assert len(drawn) == len(skipped)
    assert any(row[3] for row in drawn)  # a time limit inside a repeat
    for a, b in zip(drawn, skipped, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:] == b[1:]
    assert drawn[0][0].std() > 0  # frames, not blanks


def test_car_racing_draws_only_the_frames_the_agent_sees(monkeypatch):
    from gymnasium.envs.box2d.car_racing import CarRacing

    drawn = []
    original = CarRacing._render

    def counting(self, mode, *args, **kwargs):
        drawn.append(mode)
        return original(self, mode, *args, **kwargs)

    monkeypatch.setattr(CarRacing, "_render", counting)
    env = ActionRepeat(SkipStart(gymnasium.make("CarRacing-v3"), 10), 4)
    env.reset(seed=0)
    assert drawn.count("state_pixels") == 2  # the reset's frame, the 10th no-op's
    drawn.clear()
    for _ in range(5):
        env.step(np.array([0.0, 1.0, 0.0], np.float32))
    assert drawn.count("state_pixels") == 5  # one of every 4 frames
    env.close()


def _frames(cull: bool, mode: str, steps: int, **make_kwargs):
    """CarRacing-v3's observations (or ``render()`` frames) under seeded random
    actions over two tracks, drawn by gymnasium or with the road culled."""
    from janus_jax.envs.carracing_frames import cull_offscreen

    env = gymnasium.make("CarRacing-v3", render_mode="rgb_array", **make_kwargs)
    if cull:
        env = cull_offscreen(env)
    rng = np.random.default_rng(1)
    frames = []
    for seed in (4, 5):  # a reset starts a new track (and its cache)
        obs, _ = env.reset(seed=seed)
        for _ in range(steps):  # from the zoom-in, turning, off the road
            frames.append(env.render() if mode == "render" else obs)
            action = rng.uniform([-1, 0, 0], [1, 1, 0.2]).astype(np.float32)
            obs, *_ = env.step(action)
    env.close()
    return np.stack(frames)


@pytest.mark.parametrize(
    "mode,make_kwargs",
    [("observation", {}), ("render", {}), ("observation", {"domain_randomize": True})],
)
def test_car_racing_culled_road_draws_gymnasiums_pixels(mode, make_kwargs):
    steps = 12 if mode == "render" else 70
    ours = _frames(True, mode, steps, **make_kwargs)
    theirs = _frames(False, mode, steps, **make_kwargs)
    assert ours.std() > 0
    np.testing.assert_array_equal(ours, theirs)


def test_car_racing_culled_road_hands_gymnasium_only_the_polygons_near_the_screen(
    monkeypatch,
):
    from gymnasium.envs.box2d.car_racing import CarRacing

    from janus_jax.envs.carracing_frames import cull_offscreen

    calls = []
    original = CarRacing._draw_colored_polygon

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CarRacing, "_draw_colored_polygon", counting)
    per_frame = {}
    for cull in (False, True):
        env = gymnasium.make("CarRacing-v3")
        env = cull_offscreen(env) if cull else env
        env.reset(seed=0)
        for _ in range(60):  # past the zoom-in, where every polygon is in view
            env.step(np.array([0.0, 0.5, 0.0], np.float32))
        calls.clear()
        env.step(np.array([0.0, 0.5, 0.0], np.float32))
        per_frame[cull] = len(calls)
        env.close()
    # gymnasium: the field, 400 grass squares and every road and kerb polygon.
    assert per_frame[False] > 700
    assert per_frame[True] < per_frame[False] / 5
    other = Scripted()  # any other env is left as it is
    assert cull_offscreen(other) is other and "_render_road" not in vars(other)
