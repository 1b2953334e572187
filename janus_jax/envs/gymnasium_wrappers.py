"""Per-env gymnasium wrappers behind ``GymnasiumEnv``'s episode options, as
CarRacing users train with them. Each keeps the env's true return: a repeated
action's rewards and the skipped start's are summed into the step the agent
sees, so an evaluation still scores the env's own return.

- ``SkipStart(k)``: after each reset the env takes k no-op steps the agent does
  not see (CarRacing's first ~50 frames are a zoom-in animation).
- ``ActionRepeat(k)``: each action is held for k env steps (their rewards
  summed; it stops where the episode ends).
- ``EndWithoutProgress(n)``: an episode is truncated after n steps in a row
  that paid no positive reward. CarRacing pays -0.1 a frame and +1000/N per
  new track tile, so that is n frames off the track or standing still. A
  training option: evaluation envs are made without it.

The frames the agent never sees (the skipped start, all but the last of a
repeated action's) are not drawn where the env allows it (``UnseenFrames``):
drawing CarRacing's 96x96 frame is about 98% of its step (24.8 ms against
0.3 ms for the physics, measured here), and neither its physics nor its
rewards read the frame, so what the agent sees is unchanged.
"""

from __future__ import annotations

import contextlib
import sys

import gymnasium
import numpy as np
from gymnasium import spaces

# Options of GymnasiumEnv that change what an episode is while training only;
# evaluation copies leave them out (see factory.remake).
TRAINING_ONLY = ("no_progress_steps",)
# The options' values that leave an episode as the env makes it.
EPISODE_DEFAULTS = {"skip_start": 0, "action_repeat": 1, "no_progress_steps": None}


def no_op(space: spaces.Space):
    """Returns the action that does nothing: zeros (or the low bound when zero
    is outside a Box), discrete 0."""
    if isinstance(space, spaces.Box):
        return np.clip(np.zeros(space.shape, space.dtype), space.low, space.high)
    if isinstance(space, spaces.Discrete):
        return space.start
    raise ValueError(f"skip_start needs a Box or Discrete action space, not {space}")


class UnseenFrames:
    """Steps of ``env`` whose observation nobody looks at: inside ``skipped()``
    the env does not draw it, where it is known not to need it; ``frame()``
    draws the one the last skipped step would have returned. CarRacing
    (gymnasium's, state pixels) is such an env: its step draws the frame from
    the physics' state and only returns it; after drawing it charges the
    frame's -0.1 to the score its dashboard shows, so ``frame()`` draws with
    the score of that moment. Any other env draws every frame as before.
    tests/test_episode_options.py checks the frames pixel for pixel."""

    def __init__(self, env: gymnasium.Env, enabled: bool = True):
        self._base = env.unwrapped if enabled else None
        module = sys.modules.get("gymnasium.envs.box2d.car_racing")
        if module is None or not isinstance(self._base, module.CarRacing):
            self._base = None  # not an env known to allow it
        self._score = None  # the dashboard's score when a frame was skipped

    @contextlib.contextmanager
    def skipped(self):
        """Within the block the env's steps return a stale observation."""
        base = self._base
        if base is None:
            yield
            return
        draw = type(base)._render

        def stale(mode, *args, **kwargs):
            if mode == "state_pixels":  # the observation; render() draws anew
                self._score = base.reward
                return base.state
            return draw(base, mode, *args, **kwargs)

        base._render = stale
        try:
            yield
        finally:
            del base._render

    def frame(self, obs):
        """Returns the observation the last step would have returned drawn
        (``obs`` itself where nothing was skipped)."""
        base = self._base
        if base is None:
            return obs
        score, base.reward = base.reward, self._score
        try:
            base.state = base._render("state_pixels")
        finally:
            base.reward = score
        return base.state


def _steps(env, action, times: int, frames: UnseenFrames):
    """Takes ``action`` up to ``times`` times (fewer where the episode ends),
    drawing only the last step's frame; returns (obs, summed reward,
    terminated, truncated, info, steps taken)."""
    total = 0.0
    for taken in range(1, times + 1):
        if taken < times:
            with frames.skipped():
                obs, reward, terminated, truncated, info = env.step(action)
        else:
            obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    if taken < times:  # ended on a frame that was not drawn
        obs = frames.frame(obs)
    return obs, total, terminated, truncated, info, taken


class SkipStart(gymnasium.Wrapper):
    """Takes ``steps`` no-op steps after each reset; their rewards are added to
    the first step the agent takes. ``draw_unseen`` draws every skipped frame
    (see ``UnseenFrames``)."""

    def __init__(self, env: gymnasium.Env, steps: int, draw_unseen: bool = False):
        super().__init__(env)
        self._steps, self._pending = steps, 0.0
        self._frames = UnseenFrames(env, enabled=not draw_unseen)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._pending = 0.0
        action, left = no_op(self.env.action_space), self._steps
        while left:
            obs, reward, terminated, truncated, info, taken = _steps(
                self.env, action, left, self._frames
            )
            self._pending += reward
            left -= taken
            if terminated or truncated:  # an episode shorter than the skip
                obs, info = self.env.reset()
                self._pending = 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward, self._pending = float(reward) + self._pending, 0.0
        return obs, reward, terminated, truncated, info


class ActionRepeat(gymnasium.Wrapper):
    """Holds each action for ``repeat`` env steps and sums their rewards.
    ``draw_unseen`` draws every frame, not only the last (see ``UnseenFrames``)."""

    def __init__(self, env: gymnasium.Env, repeat: int, draw_unseen: bool = False):
        super().__init__(env)
        self._repeat = repeat
        self._frames = UnseenFrames(env, enabled=not draw_unseen)

    def step(self, action):
        return _steps(self.env, action, self._repeat, self._frames)[:5]


class EndWithoutProgress(gymnasium.Wrapper):
    """Truncates an episode after ``patience`` steps in a row without a positive
    reward."""

    def __init__(self, env: gymnasium.Env, patience: int):
        super().__init__(env)
        self._patience, self._idle = patience, 0

    def reset(self, **kwargs):
        self._idle = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._idle = 0 if reward > 0 else self._idle + 1
        if self._idle >= self._patience and not terminated:
            truncated = True
            info = {**info, "no_progress": True}
        return obs, reward, terminated, truncated, info


def episode_wrappers(
    skip_start: int, action_repeat: int, no_progress_steps: int | None
) -> list:
    """Returns the wrappers of those options, innermost first (none by default);
    raises ValueError naming a bad one."""
    for name, value, low in (
        ("skip_start", skip_start, 0),
        ("action_repeat", action_repeat, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}")
    if no_progress_steps is not None and (
        isinstance(no_progress_steps, bool)
        or not isinstance(no_progress_steps, int)
        or no_progress_steps < 1
    ):
        raise ValueError(
            f"no_progress_steps={no_progress_steps!r} is invalid: must be an int "
            ">= 1 or None"
        )
    wrappers = []
    if skip_start:
        wrappers.append(lambda env: SkipStart(env, skip_start))
    if action_repeat > 1:
        wrappers.append(lambda env: ActionRepeat(env, action_repeat))
    if no_progress_steps is not None:
        wrappers.append(lambda env: EndWithoutProgress(env, no_progress_steps))
    return wrappers


def episode_steps(max_steps: int | None, skip_start: int, action_repeat: int):
    """Returns the agent's steps per episode at most, from the env's limit."""
    if max_steps is None:
        return None
    return max(1, -(-(max_steps - skip_start) // action_repeat))
