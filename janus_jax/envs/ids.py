"""Environment ids: which family knows an id, and what to say when none does."""

from __future__ import annotations

import difflib
import re

import gymnasium
import gymnax
from gymnasium.envs.registration import parse_env_id

# PureJaxRL-era names put the suite first ("MinAtar-Breakout"); gymnax 1.x puts
# it last ("Breakout-MinAtar").
_OLD_MINATAR = re.compile(r"MinAtar-(\w+?)(-v\d+)?", re.IGNORECASE)


def gymnax_ids() -> list[str]:
    """Returns gymnax's registered ids (read each call: users may register)."""
    return list(gymnax.registered_envs)


def gymnasium_ids() -> list[str]:
    """Returns gymnasium's registered ids."""
    return list(gymnasium.registry)


def is_gymnasium_id(env_id: str) -> bool:
    """Returns True for registered ids and ``module:Env-vN`` ids gymnasium imports."""
    return env_id in gymnasium.registry or ":" in env_id


def _renamed_minatar(env_id: str) -> str | None:
    match = _OLD_MINATAR.fullmatch(env_id)
    if match is None:
        return None
    game = match.group(1).lower()
    for known in gymnax_ids():
        if known.lower() == f"{game}-minatar":
            return known
    return None


def _newer_gymnasium_version(env_id: str) -> str | None:
    try:
        namespace, name, version = parse_env_id(env_id)
    except gymnasium.error.Error:
        return None
    versions = [
        spec
        for spec in gymnasium.registry.values()
        if spec.namespace == namespace
        and spec.name == name
        and spec.version is not None
        and spec.version != version
    ]
    if not versions:
        return None
    return max(versions, key=lambda spec: spec.version).id


def renamed(env_id: str) -> str | None:
    """Returns the current id of an old one ("CarRacing-v2" -> "CarRacing-v3")."""
    return _renamed_minatar(env_id) or _newer_gymnasium_version(env_id)


def nearest_ids(env_id: str, family: str | None = None, n: int = 5) -> list[str]:
    """Returns the ``n`` known ids closest to ``env_id`` (case-insensitive)."""
    pool = []
    if family in (None, "gymnax"):
        pool += gymnax_ids()
    if family in (None, "gymnasium"):
        pool += gymnasium_ids()
    by_lower = {known.lower(): known for known in pool}
    near = difflib.get_close_matches(env_id.lower(), by_lower, n=n, cutoff=0.0)
    return [by_lower[known] for known in near]


def unknown_id_message(
    env_id: str, family: str | None = None, *, option: str | None = None
) -> str:
    """Returns why ``env_id`` cannot be made and which id to use instead.

    option: the command-line option that gave the id ("--env"): the advice is
    then that option with the new id; None phrases it for Python (``make``)."""
    where = family or "gymnax or gymnasium"
    new_id = renamed(env_id)
    if new_id is not None:
        versions = (
            "gymnax" if new_id in gymnax_ids() else f"gymnasium {gymnasium.__version__}"
        )
        use = f"{option} {new_id}" if option else f"make({new_id!r})"
        return (
            f"{env_id!r} is not registered in {where}; {versions} calls it "
            f"{new_id!r}: use {use}"
        )
    other = None
    if family == "gymnax" and is_gymnasium_id(env_id):
        other = "gymnasium knows it: use GymnasiumEnv or make(..., family=None)"
    elif family == "gymnasium" and env_id in gymnax_ids():
        other = "gymnax knows it: use GymnaxEnv or make(..., family=None)"
    if other is not None:
        return f"{env_id!r} is not registered in {family}; {other}"
    return (
        f"{env_id!r} is not registered in {where}; the nearest known ids are "
        f"{nearest_ids(env_id, family)}"
    )
