"""Environments: pure gymnax envs on device, gymnasium envs behind a thin adapter.

Both describe themselves with an ``EnvSpec`` and collect time-major
``Transition`` records; ``make`` picks the family from the id.
"""

from janus_jax.envs.factory import make
from janus_jax.envs.gymnasium_env import (
    GymnasiumEnv,
    GymStep,
    collect,
    collect_from,
    make_single_env,
)
from janus_jax.envs.gymnax_env import GymnaxEnv, StepOut, rollout, rollout_from
from janus_jax.envs.preprocess import preprocess_frames
from janus_jax.envs.spec import EnvSpec, Transition, check_observation, random_actions

__all__ = [
    "EnvSpec",
    "GymStep",
    "GymnasiumEnv",
    "GymnaxEnv",
    "StepOut",
    "Transition",
    "check_observation",
    "collect",
    "collect_from",
    "make",
    "make_single_env",
    "preprocess_frames",
    "random_actions",
    "rollout",
    "rollout_from",
]
