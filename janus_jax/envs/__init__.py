"""Environments: pure gymnax envs on device, gymnasium envs behind a thin adapter.

Both describe themselves with an ``EnvSpec`` and implement one rollout
interface (``start``, ``rollout``; see ``janus_jax.envs.rollout``) returning
time-major ``Transition`` records; ``make`` picks the family from the id.
An env of the user's own class comes as a class path (``module:Class``), an
instance (copied: ``copies_of``) or a factory (``env_fn``): ``custom``.
"""

from janus_jax.envs.custom import copies_of
from janus_jax.envs.factory import (
    as_env,
    env_id_of,
    env_source,
    family_of,
    made_with,
    make,
    remake,
    spec_of,
)
from janus_jax.envs.gymnasium_env import GymnasiumEnv, GymStep
from janus_jax.envs.gymnasium_setup import make_single_env
from janus_jax.envs.gymnax_env import GymnaxEnv, StepOut
from janus_jax.envs.preprocess import preprocess_frames
from janus_jax.envs.rollout import (
    ActionFn,
    RandomPolicy,
    RolloutPolicy,
    RolloutState,
    StatelessPolicy,
    compiled,
    reset_where,
)
from janus_jax.envs.spec import EnvSpec, check_observation, random_actions
from janus_jax.records import PolicyStep, Transition

__all__ = [
    "ActionFn",
    "EnvSpec",
    "GymStep",
    "GymnasiumEnv",
    "GymnaxEnv",
    "PolicyStep",
    "RandomPolicy",
    "RolloutPolicy",
    "RolloutState",
    "StatelessPolicy",
    "StepOut",
    "Transition",
    "as_env",
    "check_observation",
    "compiled",
    "copies_of",
    "env_id_of",
    "env_source",
    "family_of",
    "made_with",
    "make",
    "make_single_env",
    "preprocess_frames",
    "random_actions",
    "remake",
    "reset_where",
    "spec_of",
]
