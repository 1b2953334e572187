"""``make``: one entry point for gymnax and gymnasium ids."""

from __future__ import annotations

from janus_jax.envs import ids
from janus_jax.envs.gymnasium_env import GymnasiumEnv
from janus_jax.envs.gymnax_env import GymnaxEnv

FAMILIES = (None, "gymnax", "gymnasium")
# Options only the gymnasium adapter understands.
GYMNASIUM_ONLY = {"num_envs", "observation", "image_size", "crop", "vectorization_mode"}


def make(
    env_id: str, *, family: str | None = None, **kwargs
) -> GymnaxEnv | GymnasiumEnv:
    """Returns a GymnaxEnv for gymnax ids, else a GymnasiumEnv for gymnasium ids.

    family: None prefers gymnax where both know the id (CartPole-v1,
        Pendulum-v1...): it runs on device; "gymnasium" forces the CPU env.
    kwargs: passed to ``GymnaxEnv`` (``env_params``, constructor kwargs) or
        ``GymnasiumEnv`` (``num_envs``, ``observation``, ``image_size``...).
    Old ids ("CarRacing-v2", "MinAtar-Breakout") and unknown ones raise
    ValueError naming the id to use.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"env_id={env_id!r} is invalid: must be a string id")
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is invalid: must be one of {FAMILIES}")
    if family != "gymnasium" and env_id in ids.gymnax_ids():
        cpu_only = sorted(set(kwargs) & GYMNASIUM_ONLY)
        if cpu_only:
            raise ValueError(
                f"{env_id!r} resolves to the gymnax env, which takes no {cpu_only}; "
                f"pass family='gymnasium' for the CPU env that does"
            )
        return GymnaxEnv(env_id, **kwargs)
    if family != "gymnax" and ids.is_gymnasium_id(env_id):
        return GymnasiumEnv(env_id, **kwargs)
    raise ValueError(ids.unknown_id_message(env_id, family))
