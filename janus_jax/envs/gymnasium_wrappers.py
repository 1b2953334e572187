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
"""

from __future__ import annotations

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


class SkipStart(gymnasium.Wrapper):
    """Takes ``steps`` no-op steps after each reset; their rewards are added to
    the first step the agent takes."""

    def __init__(self, env: gymnasium.Env, steps: int):
        super().__init__(env)
        self._steps, self._pending = steps, 0.0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._pending = 0.0
        action = no_op(self.env.action_space)
        for _ in range(self._steps):
            obs, reward, terminated, truncated, info = self.env.step(action)
            self._pending += float(reward)
            if terminated or truncated:  # an episode shorter than the skip
                obs, info = self.env.reset()
                self._pending = 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward, self._pending = float(reward) + self._pending, 0.0
        return obs, reward, terminated, truncated, info


class ActionRepeat(gymnasium.Wrapper):
    """Holds each action for ``repeat`` env steps and sums their rewards."""

    def __init__(self, env: gymnasium.Env, repeat: int):
        super().__init__(env)
        self._repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self._repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


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
