"""``make``: one entry point for gymnax and gymnasium ids, and ``as_env`` for
everything the seed's API accepts as an env (an id, a janus-jax env, one or
several ``gymnasium.make`` envs)."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium

from janus_jax.envs import custom, ids
from janus_jax.envs.env_factories import check_env_fn
from janus_jax.envs.gymnasium_env import GymnasiumEnv
from janus_jax.envs.gymnasium_setup import made_with
from janus_jax.envs.gymnasium_wrappers import TRAINING_ONLY
from janus_jax.envs.gymnax_env import GymnaxEnv

FAMILIES = (None, "gymnax", "gymnasium")
# Options only the gymnasium adapter understands.
GYMNASIUM_ONLY = {
    "observation",
    "image_size",
    "crop",
    "vectorization_mode",
    "skip_start",
    "action_repeat",
    "no_progress_steps",
}
Env = GymnaxEnv | GymnasiumEnv


def family_of(env_id: str, family: str | None = None) -> str:
    """Returns "gymnax" or "gymnasium": the family ``make`` builds ``env_id`` from.

    family: None prefers gymnax where both know the id (it runs on device);
    a family name forces it. Unknown ids raise ValueError naming the id to use.
    """
    if not isinstance(env_id, str):
        raise ValueError(f"env_id={env_id!r} is invalid: must be a string id")
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is invalid: must be one of {FAMILIES}")
    if family != "gymnasium" and env_id in ids.gymnax_ids():
        return "gymnax"
    if family != "gymnax" and ids.is_gymnasium_id(env_id):
        return "gymnasium"
    raise ValueError(ids.unknown_id_message(env_id, family))


def make(
    env_id=None,
    *,
    family: str | None = None,
    env_fn: Callable[..., gymnasium.Env] | None = None,
    **kwargs,
) -> Env:
    """Returns a GymnaxEnv for gymnax ids, else a GymnasiumEnv for gymnasium ids.

    env_id: an id, gymnasium's ``module:EnvId-vN``, a class path ``module:Class``
    (a gymnasium.Env subclass, made with the gymnasium kwargs), or a gymnasium
    env instance (made anew from its id, or else copied: ``copies_of``).
    env_fn: instead, a callable returning a new gymnasium env (for envs that
    cannot be copied); env_id, if given, then only names it.
    kwargs: ``num_envs`` (both families: how many envs a rollout steps), then
    ``GymnaxEnv``'s (``env_params``, constructor kwargs) or ``GymnasiumEnv``'s
    (``observation``, ``image_size``, ``crop``, ``vectorization_mode``, and
    ``gymnasium.make`` kwargs). Old ids ("CarRacing-v2", "MinAtar-Breakout")
    and unknown ones raise ValueError naming the id to use.
    """
    if isinstance(env_id, gymnasium.Env):
        env_id, made = env_source(env_id, env_fn)
        return make(env_id, family="gymnasium", **{**made, **kwargs})
    if env_fn is not None:
        if family == "gymnax":
            raise ValueError(
                "family='gymnax' is invalid with env_fn: a factory makes gymnasium "
                "envs; leave family unset"
            )
        return GymnasiumEnv(env_id, env_fn=env_fn, **kwargs)
    if family_of(env_id, family) == "gymnax":
        cpu_only = sorted(set(kwargs) & GYMNASIUM_ONLY)
        if cpu_only:
            raise ValueError(
                f"{env_id!r} resolves to the gymnax env, which takes no {cpu_only}; "
                f"pass family='gymnasium' for the CPU env that does"
            )
        return GymnaxEnv(env_id, **kwargs)
    return GymnasiumEnv(env_id, **kwargs)


def remake(env: Env, num_envs: int, evaluation: bool = False) -> Env:
    """Returns a new env of ``num_envs`` envs made as ``env`` was (a fresh copy:
    stepping it leaves ``env``'s episodes alone); ``evaluation`` leaves out the
    training-only episode options (``no_progress_steps``). Envs of an
    unregistered class are made by the factory (``env_fn``) they were made by."""
    kwargs = evaluation_kwargs(env.made_with) if evaluation else env.made_with
    return make(env.spec.env_id, family=env.spec.family, num_envs=num_envs, **kwargs)


def evaluation_kwargs(kwargs: dict) -> dict:
    """Returns make's ``kwargs`` without the training-only episode options."""
    return {k: v for k, v in kwargs.items() if k not in TRAINING_ONLY}


def spec_of(env_id: str, **kwargs):
    """Returns the EnvSpec of ``make(env_id, **kwargs)`` (the env is closed)."""
    with make(env_id, **kwargs) as env:
        return env.spec


def env_id_of(env) -> str:
    """Returns the id of an env given as an id, a janus-jax env, or a (list of)
    gymnasium env: the id it was made from (``gymnasium.make`` records it), else
    its class's ``module:Class``."""
    if isinstance(env, (list, tuple)) and env:
        env = env[0]
    if isinstance(env, str):
        return env
    if isinstance(env, Env):
        return env.spec.env_id
    if isinstance(env, gymnasium.Env):
        return env.spec.id if custom.rebuildable(env) else custom.name_of(env)
    raise ValueError(
        f"env={env!r} is invalid: pass an env id ('CartPole-v1'), module:Class, "
        "a gymnasium env, or janus_jax.envs.make(...)"
    )


def env_source(env, env_fn=None, what: str = "env") -> tuple[str, dict]:
    """Returns (id, make's kwargs) that make more envs like ``env`` (an id, a
    janus-jax env, or a gymnasium env: by its id, or else as copies of it), or
    by ``env_fn`` where one is given (``env``, if any, then names them).
    ``what`` names the argument in the error for no env at all."""
    if env_fn is not None:
        check_env_fn(env_fn)
        name = custom.name_of(env_fn) if env is None else env_id_of(env)
        return name, {"env_fn": env_fn}
    if env is None:
        raise ValueError(
            f"{what}=None is invalid: pass an env (an id, module:Class, a gymnasium "
            "env, janus_jax.envs.make(...)) or env_fn=<a callable returning a new "
            "gymnasium env>"
        )
    if isinstance(env, Env):
        return env.spec.env_id, dict(env.made_with)
    if isinstance(env, gymnasium.Env) and not custom.rebuildable(env):
        return custom.name_of(env), {"env_fn": custom.copies_of(env)}
    return env_id_of(env), made_with(env)


def as_env(envs, num_envs: int | None, *, env_fn=None, **kwargs) -> Env:
    """Returns one janus-jax env of ``num_envs`` envs from what the seed's API
    allows for ``envs``: an id; a janus-jax env (as it is when ``num_envs`` is
    None or its own; a gymnax one is widened, a gymnasium one refused
    otherwise); or a list of gymnasium envs of one spec or class, stepped
    together as given (a list of one, or a single gymnasium env, is made anew
    as ``num_envs`` copies, default 1). ``env_fn``: a callable returning a new
    gymnasium env, to make them (``envs`` None) or the copies a gymnasium env
    cannot give (``copies_of``)."""
    if isinstance(envs, Env):
        if num_envs is None or envs.num_envs == num_envs:
            return envs
        if envs.spec.on_device:  # a gymnax env is a description: make it wider
            return remake(envs, num_envs)
        raise ValueError(
            f"envs holds {envs.num_envs} envs but num_envs={num_envs}: make the "
            f"gymnasium env with num_envs={num_envs}, or leave num_envs unset"
        )
    if isinstance(envs, gymnasium.Env):
        envs = [envs]
    if isinstance(envs, (list, tuple)) and len(envs) > 1:
        cpu = {k: v for k, v in kwargs.items() if k in ("image_size", "crop")}
        return GymnasiumEnv.from_envs(envs, env_fn=env_fn, **cpu)
    if isinstance(envs, (list, tuple)) and envs:
        envs = envs[0]
    env_id, made = env_source(envs, env_fn, "envs")
    if made or env_fn is not None or isinstance(envs, gymnasium.Env):
        # made anew as it was made: the gymnasium env, with its kwargs
        kwargs = {"family": "gymnasium", **made, **kwargs}
    return make(env_id, num_envs=num_envs or 1, **kwargs)
