"""Envs of the user's own class: a class path (``"my_package.envs:MyEnv"``), a
factory (``env_fn``), and copies of an env instance that no id can make again.

gymnasium's vector envs build each env from a factory; so does janus-jax for
these, handing ``gymnasium.make`` an unregistered ``EnvSpec`` whose entry point
is the class or the factory (the time limit, the env checker and render modes
then work as for a registered id). Async vector envs spawn their workers and
send them the factory pickled (with cloudpickle, as gymnasium does), so a
factory that cannot be pickled is refused before any worker starts.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import re
import sys
from collections.abc import Callable

import cloudpickle
import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from janus_jax.envs import env_factories
from janus_jax.envs.env_factories import (
    EnvCopies,
    EnvFactory,
    Remade,
    name_of,
)

cloudpickle.register_pickle_by_value(env_factories)

CLASS_PATH_HELP = (
    "an env id ('CartPole-v1'), module:EnvId-vN (an id the module registers) or "
    "module:Class (a gymnasium.Env subclass, made with the env's kwargs)"
)


def import_env_module(module: str, what: str):
    """Returns the imported ``module``; one not found among the installed ones is
    looked for in the working directory, as ``python -m`` would (the directory
    stays on the path, for async workers and the module's own imports). ``what``
    names the argument in the error (``env='pkg:MyEnv'``)."""
    for attempt in range(2):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as err:
            # A module that fails on a missing dependency of its own shows that.
            if err.name is None or not (module + ".").startswith(err.name + "."):
                raise
            cwd = os.getcwd()
            if attempt or cwd in sys.path or "" in sys.path:
                raise ValueError(
                    f"{what}: cannot import module {module!r} ({err}); install "
                    "it, or run from the directory that holds it"
                ) from None
            sys.path.append(cwd)
            importlib.invalidate_caches()


def env_class(env_id: str) -> type[gymnasium.Env] | None:
    """Returns the gymnasium.Env subclass a class path names (``"pkg.mod:MyEnv"``,
    ``"pkg.mod:Outer.MyEnv"``), or None for any other id.

    ``module:EnvId-vN`` stays gymnasium's: the module is imported (here, as
    gymnasium would) and an id it registers wins over an attribute of the same
    name. An attribute that is no gymnasium.Env subclass, or a name the module
    neither defines nor registers, raises ValueError naming what is allowed."""
    if not isinstance(env_id, str) or env_id.count(":") != 1:
        return None
    module_name, name = env_id.split(":")
    if not module_name or not name or env_id in gymnasium.registry:
        return None
    module = import_env_module(module_name, f"env={env_id!r}")
    if name in gymnasium.registry:
        return None
    found = module
    for part in name.split("."):
        found = getattr(found, part, None)
    if isinstance(found, type) and issubclass(found, gymnasium.Env):
        return found
    if found is None:
        what = f"module {module_name!r} has no attribute {name!r} and registers no id"
    else:
        kind = "class" if isinstance(found, type) else type(found).__name__
        what = f"{name!r} is a {kind}, not a gymnasium.Env subclass"
    raise ValueError(f"env={env_id!r} is invalid: {what}; pass {CLASS_PATH_HELP}")


def copies_of(env: gymnasium.Env, what: str = "env") -> Callable[[], gymnasium.Env]:
    """Returns a factory of new envs like ``env`` (an instance no id can make
    again): copies of it (``copy.deepcopy``, wrappers included), or, where it
    cannot be copied but records its constructor arguments
    (``gymnasium.utils.RecordConstructorArgs``) and is not wrapped, its class
    made with them. Otherwise ValueError says why and asks for ``env_fn``."""
    try:
        return EnvCopies(copy.deepcopy(env))
    except Exception as err:  # deepcopy fails with whatever an attribute raises
        error = f"{type(err).__name__}: {err}"
    saved = getattr(env, "_saved_kwargs", None)
    if env is env.unwrapped and isinstance(saved, dict):
        return EnvFactory(Remade(type(env), dict(saved)))
    cls = type(env.unwrapped).__name__
    raise ValueError(
        f"{what}={env} (a {name_of(env)}) cannot be copied: janus-jax makes its "
        "vectorised and evaluation envs as copies of the env given (copy.deepcopy), "
        f"and copying it raised {error}; pass env_fn=<a zero-argument callable "
        f"returning a new env>, e.g. env_fn={cls} or env_fn=lambda: {cls}(...)"
    )


def gymnasium_source(
    env_id: str | None, env_fn: Callable | None
) -> tuple[str, str | EnvSpec]:
    """Returns (the env's name, what ``gymnasium.make``/``make_vec`` build it
    from): a registered or ``module:EnvId-vN`` id as it is; an unregistered
    EnvSpec for a class path or a factory (named by ``env_id``, else by the
    factory's ``module:QualName``)."""
    if env_fn is None:
        cls = env_class(env_id)
        if cls is None:
            return env_id, env_id
        return env_id, EnvSpec(id=_spec_id(env_id), entry_point=cls)
    if not isinstance(env_fn, (EnvCopies, EnvFactory)):
        env_fn = EnvFactory(env_fn)
    name = name_of(env_fn) if env_id is None else env_id
    return name, EnvSpec(id=_spec_id(name), entry_point=env_fn)


def _spec_id(name: str) -> str:
    # gymnasium parses a spec's id: a lambda's "<locals>" is no part of one.
    return re.sub(r"[^\w:.-]", "_", name)


def check_picklable(source, env_id: str) -> None:
    """Raises ValueError where the factory in ``source`` (an EnvSpec) cannot be
    sent to an async vector env's spawned workers."""
    if not isinstance(source, EnvSpec):
        return  # a registered id: the workers look it up themselves
    try:
        cloudpickle.dumps(source.entry_point)
    except Exception as err:  # pickling fails with whatever an attribute raises
        raise ValueError(
            f"{env_id}: vectorization_mode='async' spawns one worker process per "
            f"env and sends it the env's factory pickled, but pickling "
            f"{source.entry_point!r} raised {type(err).__name__}: {err}; pass "
            "env_fn=<a picklable callable> (a class or a function of an importable "
            "module, holding no lock or open file), or use vectorization_mode='sync'"
        ) from None


def alike(envs) -> list[gymnasium.Env]:
    """Returns ``envs`` as a list after checking they are gymnasium envs made
    alike (one spec: id and kwargs; made without one, one class); a ValueError
    names the first that differs."""
    envs = list(envs)
    if not envs or not all(isinstance(e, gymnasium.Env) for e in envs):
        raise ValueError(
            f"envs={envs!r} is invalid: pass a non-empty list of gymnasium envs"
        )
    first = envs[0]
    for i, env in enumerate(envs[1:], 1):
        if env.spec != first.spec:
            raise ValueError(
                f"envs[{i}] has spec {env.spec} but envs[0] has {first.spec}: envs "
                "stepped together must be made alike (one id, the same kwargs)"
            )
        if type(env.unwrapped) is not type(first.unwrapped):
            raise ValueError(
                f"envs[{i}] is a {name_of(env)} but envs[0] a {name_of(first)}: "
                "envs stepped together must be made alike (one class)"
            )
    return envs


def rebuildable(env: gymnasium.Env) -> bool:
    """Returns whether ``env`` can be made again from its spec: its id is
    registered, or it was made from a class path (``make_single_env``)."""
    spec = env.spec
    if spec is None:
        return False
    if spec.id in gymnasium.registry:
        return True
    entry = spec.entry_point
    return isinstance(entry, type) and spec.id == name_of(entry)


def recorded_env(
    env_id: str, env_kwargs: dict, strict: bool = True
) -> tuple[str, dict]:
    """Returns (id, kwargs) as JSON data that make the env again in another
    process (what a run's config.json records): an env made by a factory is
    recorded as its class path ``module:Class`` with its constructor
    arguments. Where it cannot be (a function, a wrapped instance, a class
    defined in ``__main__``...), ValueError says why, or with ``strict=False``
    the arguments come back as they are."""
    env_fn = env_kwargs.get("env_fn")
    if env_fn is None:
        return env_id, env_kwargs
    rest = {k: v for k, v in env_kwargs.items() if k != "env_fn"}
    try:
        cls, kwargs = _class_and_kwargs(env_fn)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise ValueError(f"{name_of(cls)} cannot be imported by another process")
        json.dumps(kwargs)
    except (ValueError, TypeError) as err:
        if not strict:
            return env_id, env_kwargs
        raise ValueError(
            f"{env_id} cannot be recorded in config.json, which names the env "
            f"to make it again: {err}; define the env class in a module and pass "
            "an instance of it, or its class path 'module:Class'"
        ) from None
    return name_of(cls), {**rest, **kwargs}


def _class_and_kwargs(env_fn) -> tuple[type, dict]:
    """Returns the env class a factory makes and the arguments it makes it with."""
    if isinstance(env_fn, EnvFactory):
        env_fn = env_fn.env_fn
    if isinstance(env_fn, Remade):
        return env_fn.cls, dict(env_fn.kwargs)
    if isinstance(env_fn, type) and issubclass(env_fn, gymnasium.Env):
        return env_fn, {}
    if not isinstance(env_fn, EnvCopies):
        raise ValueError(f"env_fn={name_of(env_fn)} is no gymnasium.Env class")
    env = env_fn.snapshot
    if env is not env.unwrapped:
        raise ValueError(f"{env} is wrapped ({type(env).__name__})")
    return type(env), constructor_kwargs(env)


def constructor_kwargs(env: gymnasium.Env) -> dict:
    """Returns the arguments ``env``'s class was made with: those it recorded
    (``RecordConstructorArgs``), else each ``__init__`` parameter read from the
    attribute of the same name (scikit-learn's convention), checked by making
    the class with them: the new env must hold what ``env`` holds."""
    saved = getattr(env, "_saved_kwargs", None)
    if isinstance(saved, dict):
        return dict(saved)
    cls, kwargs = type(env), {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if hasattr(env, name):
            kwargs[name] = getattr(env, name)
        elif param.default is param.empty:
            raise ValueError(f"{cls.__name__} keeps no attribute {name!r}")
    try:
        fresh = cls(**kwargs)
    except Exception as err:  # whatever the user's constructor raises
        raise ValueError(f"{cls.__name__}({kwargs}) raised {err!r}") from None
    for name, value in vars(fresh).items():
        if not _same(value, vars(env).get(name)):
            raise ValueError(
                f"{cls.__name__}({kwargs}) holds {name}={value!r}, the env given "
                f"{vars(env).get(name)!r}: its arguments are not known"
            )
    return kwargs


def _same(a, b) -> bool:
    try:
        if isinstance(a, np.ndarray):
            return bool(np.array_equal(a, b))
        return bool(a == b)
    except Exception:  # a comparison that cannot say is no match
        return False
