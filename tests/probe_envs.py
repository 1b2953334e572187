"""Probe envs whose best policy is known, shared by the tests of the learners."""

import gymnasium
import numpy as np


class SignBandit(gymnasium.Env):
    """One-step episodes: observe s in {-1, +1} (and a constant 1), reward 1 for
    action (s > 0), else 0. The optimal policy earns 1 per episode, random 0.5."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.sign = float(self.np_random.choice([-1.0, 1.0]))
        return np.array([self.sign, 1.0], np.float32), {}

    def step(self, action):
        reward = float(int(action) == int(self.sign > 0))
        return self.reset()[0], reward, True, False, {}


class ActionPays(gymnasium.Env):
    """One-step episodes: observe a constant 1, reward the action taken (a value
    in [0, 1]). A policy's expected return is its expected action."""

    observation_space = gymnasium.spaces.Box(1.0, 1.0, (1,), np.float32)
    action_space = gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), float(action[0]), True, False, {}
