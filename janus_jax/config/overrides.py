"""``section.field=value`` overrides (``--set``): each value checked against its
field's type, keys that moved or were renamed, and for an unknown key the keys
that were probably meant."""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from typing import Any

from janus_jax.config.renamed import renames_of, warn


def field_hints(cls) -> dict[str, Any]:
    """Returns the type hint of each field (constructor-only InitVars left out)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def dataclass_in(hint) -> type | None:
    """Returns the dataclass type of a field's hint (``X`` or ``X | None``)."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    found = [t for t in options if dataclasses.is_dataclass(t)]
    return found[0] if found else None


def _is_union(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def settable_keys(cls, prefix: str = "") -> list[str]:
    """Returns every ``section.field`` key of ``cls`` that an override can set,
    sections that are unset by default (V's, M's architecture) included."""
    keys = []
    for name, hint in field_hints(cls).items():
        inner = dataclass_in(hint)
        if inner is None:
            keys.append(f"{prefix}{name}")
        else:
            keys += settable_keys(inner, f"{prefix}{name}.")
    return keys


def renamed_keys(cls, prefix: str = "") -> dict[str, str]:
    """Returns each old ``section.field`` key of ``cls`` with its new one."""
    out = {f"{prefix}{old}": f"{prefix}{new}" for old, new in renames_of(cls).items()}
    for name, hint in field_hints(cls).items():
        inner = dataclass_in(hint)
        if inner is not None:
            out.update(renamed_keys(inner, f"{prefix}{name}."))
    return out


def _whole_number(value) -> str:
    """Returns what to write instead of a fractional number for an int field."""
    if isinstance(value, float) and math.isfinite(value):
        return f": write a whole number ({math.floor(value)} or {math.ceil(value)})"
    return ""


def _check_type(key: str, hint, value) -> Any:
    """Returns ``value`` if it fits the field's type hint, else raises ValueError.

    A whole float fits an int field (``1e5`` -> 100000: JSON reads 1e5 as a
    float, and that is how large step counts are written)."""
    if _is_union(hint):
        for option in typing.get_args(hint):
            try:
                return _check_type(key, option, value)
            except ValueError:
                continue
        extra = _whole_number(value) if int in typing.get_args(hint) else ""
        raise ValueError(f"{key}={value!r} is invalid: expected {_name(hint)}{extra}")
    if typing.get_origin(hint) is typing.Literal:
        if value in typing.get_args(hint):
            return value
        raise ValueError(
            f"{key}={value!r} is invalid: expected one of {typing.get_args(hint)}"
        )
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is type(None):
        if value is None:
            return None
    elif hint is float and is_number:
        return float(value)
    elif hint is int and is_number:
        if isinstance(value, int):
            return value
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ValueError(
            f"{key}={value!r} is invalid: expected int{_whole_number(value)}"
        )
    elif hint in (bool, str, dict) and isinstance(value, hint):
        return value
    elif typing.get_origin(hint) is tuple and isinstance(value, list):
        (item, *_) = typing.get_args(hint)
        return tuple(_check_type(key, item, v) for v in value)
    raise ValueError(f"{key}={value!r} is invalid: expected {_name(hint)}")


def _name(hint) -> str:
    return getattr(hint, "__name__", str(hint).replace("typing.", ""))


def _parse(text: str) -> Any:
    """Returns JSON for numbers, lists, true/false/null; anything else as text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


_ONE_SEED = "a run has one seed: write seed=N (or --seed N)"
# Keys that are fields no more, with what to write instead.
MOVED = {
    "ppo.batch_size": "write ppo.minibatch_size (rows per PPO gradient step)",
    "world_model.seed": _ONE_SEED,
    "controller.seed": _ONE_SEED,
    "controller.temperature": "dreams sample at M's own temperature: write "
    "world_model.mdn_rnn.temperature",
    "world_model.device": "JAX runs on its default backend (pip install "
    "'jax[cuda12]' for a GPU)",
}


def apply_overrides(config, overrides: list[str]):
    """Returns ``config`` (a RunConfig) with ``section.field=value`` (or
    ``field=value``) set.

    Values are JSON (3, 0.5, 1e5, true, null, [64, 64]) or plain text; each must
    fit the field's type, then the config's own checks run. A renamed key
    (controller.world_model_updates) sets its new field with a
    DeprecationWarning."""
    renamed = renamed_keys(type(config))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"override {item!r} is invalid: write section.field=value")
        if key in MOVED:
            raise ValueError(f"override {item!r}: {key} is not a field: {MOVED[key]}")
        if key in renamed:
            warn(key, renamed[key], stacklevel=2)
            key = renamed[key]
        config = _set(config, key.split("."), _parse(text.strip()), key, config)
    return config


def suggestions(key: str, root) -> list[str]:
    """Returns the keys of ``root``'s config that an unknown ``key`` probably
    meant: the same field in another section, a renamed field's new key, or
    close spellings (difflib), at most three."""
    keys = settable_keys(type(root))
    leaf = key.rpartition(".")[2]
    by_leaf: dict[str, list[str]] = {}
    for known in keys:
        by_leaf.setdefault(known.rpartition(".")[2], []).append(known)
    for old, new in renamed_keys(type(root)).items():
        by_leaf.setdefault(old.rpartition(".")[2], []).append(new)
    same = [k for k in by_leaf.get(leaf, []) if k != key]
    if same:
        return same[:3]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.8)
    if close:
        return close
    near = difflib.get_close_matches(leaf, list(by_leaf), n=3, cutoff=0.75)
    return [k for name in near for k in by_leaf[name]][:3]


def _did_you_mean(keys: list[str]) -> str:
    listed = ", ".join(keys[:-1]) + (" or " if len(keys) > 1 else "") + keys[-1]
    return f"did you mean {listed}?"


def _set(config, path: list[str], value, key: str, root):
    hints = field_hints(type(config))
    name = path[0]
    if name not in hints:
        near = suggestions(key, root)
        help = _did_you_mean(near) if near else f"fields: {', '.join(hints)}"
        raise ValueError(
            f"override {key!r}: {type(config).__name__} has no field {name!r}; {help}"
        )
    if len(path) == 1:
        return dataclasses.replace(
            config, **{name: _check_type(key, hints[name], value)}
        )
    inner_cls = dataclass_in(hints[name])
    if inner_cls is None:
        raise ValueError(f"override {key!r}: {name!r} has no fields")
    inner = getattr(config, name)
    if inner is None:
        raise ValueError(
            f"override {key!r}: {name} is unset (derived from the env); set the "
            f"whole section in a config file instead"
        )
    return dataclasses.replace(
        config, **{name: _set(inner, path[1:], value, key, root)}
    )
