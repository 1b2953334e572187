"""The factories gymnasium's vector envs call to make each env of the user's own
class: ``env_fn`` as given (``EnvFactory``), copies of an instance
(``EnvCopies``), or its class made again from its recorded arguments
(``Remade``).

An async vector env sends them to its spawned workers pickled. cloudpickle
pickles this module's classes by value (``custom`` registers it), so a worker
unpickles them without importing janus-jax (and JAX, seconds per worker): this
module imports nothing of janus-jax.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import gymnasium


def name_of(obj) -> str:
    """Returns ``module:QualName`` of a class or function (of the class of an env
    or another object), the name a class path would give it."""
    if isinstance(obj, EnvCopies):
        obj = obj.snapshot
    if isinstance(obj, EnvFactory):
        obj = obj.env_fn
    if isinstance(obj, gymnasium.Env):
        obj = type(obj.unwrapped)
    if not hasattr(obj, "__qualname__"):
        obj = type(obj)
    return f"{obj.__module__}:{obj.__qualname__}"


def check_env_fn(env_fn) -> None:
    """Raises ValueError unless ``env_fn`` is callable."""
    if not callable(env_fn):
        raise ValueError(
            f"env_fn={env_fn!r} is invalid: pass a callable that returns a new "
            "gymnasium env each call (a class such as env_fn=MyEnv, or a function)"
        )


class EnvFactory:
    """A zero-argument factory gymnasium calls once per env: ``env_fn`` as it is.

    It deep-copies as itself (gymnasium copies the spec it is part of; the
    factory, not the env, is what is shared) and has a repr without addresses
    (it is recorded in a dataset's metadata)."""

    def __init__(self, env_fn: Callable[..., gymnasium.Env]):
        check_env_fn(env_fn)
        self.env_fn = env_fn

    def __call__(self, **kwargs) -> gymnasium.Env:
        return self.env_fn(**kwargs)

    def __deepcopy__(self, memo) -> EnvFactory:
        return self

    def __repr__(self) -> str:
        return name_of(self.env_fn)


class EnvCopies:
    """A factory of copies of one env instance: each call deep-copies the snapshot
    taken when the factory was made (so stepping the instance later changes
    nothing). Used for instances of unregistered classes; see ``copies_of``."""

    def __init__(self, snapshot: gymnasium.Env):
        self.snapshot = snapshot

    def __call__(self, **kwargs) -> gymnasium.Env:
        render_mode = kwargs.pop("render_mode", self.snapshot.render_mode)
        if kwargs or render_mode != self.snapshot.render_mode:
            given = {**kwargs, "render_mode": render_mode}
            raise ValueError(
                f"copies of {name_of(self.snapshot)} are made as the instance was "
                f"(render_mode={self.snapshot.render_mode!r}), not with {given}: make "
                "the instance with them, or pass env_fn=<a function making the env "
                "with them>"
            )
        return copy.deepcopy(self.snapshot)

    def __deepcopy__(self, memo) -> EnvCopies:
        return self

    def __repr__(self) -> str:
        return f"copies of {name_of(self.snapshot)}"


class Remade:
    """``cls(**kwargs)``: an env made again from its recorded constructor args."""

    def __init__(self, cls: type, kwargs: dict):
        self.cls, self.kwargs = cls, kwargs
        self.__qualname__ = cls.__qualname__
        self.__module__ = cls.__module__

    def __call__(self) -> gymnasium.Env:
        return self.cls(**self.kwargs)
