"""A small env of your own: guess the sign of the first observation.

Each step observes four numbers in [-1, 1]; action 1 says the first is positive,
action 0 that it is not, and a right guess pays 1. An episode lasts ``length``
steps. It is not registered anywhere: janus-jax trains on an instance of it, or
on its class path ``custom_env:SignEnv``.
"""

import gymnasium
import numpy as np


class SignEnv(gymnasium.Env):
    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self, length: int = 20):
        self.length = length

    def _observe(self):
        self.obs = self.np_random.uniform(-1, 1, 4).astype(np.float32)
        return self.obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observe(), {}

    def step(self, action):
        reward = float(int(action) == int(self.obs[0] > 0))
        self.t += 1
        return self._observe(), reward, self.t >= self.length, False, {}
