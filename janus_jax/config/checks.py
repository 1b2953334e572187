"""The checks every config runs in ``__post_init__``: each raises ``ValueError``
naming the class, the field, the value and what is allowed."""

from __future__ import annotations

import math


def fail(cls: str, field: str, value, allowed: str) -> None:
    raise ValueError(f"{cls}.{field}={value!r} is invalid: {allowed}")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for a finite int or float; bools are refused (True is not 1.0 here)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def finite_float(value) -> float | None:
    """Returns ``value`` as a float if it is a finite number (numpy's included),
    else None; text and bools are not numbers here."""
    if isinstance(value, str | bytes | bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def positive_int(obj, field: str) -> None:
    value = getattr(obj, field)
    if not is_int(value) or value < 1:
        fail(type(obj).__name__, field, value, "must be an integer >= 1")


def non_negative_int(obj, field: str) -> None:
    value = getattr(obj, field)
    if not is_int(value) or value < 0:
        fail(type(obj).__name__, field, value, "must be an integer >= 0")


def non_negative(obj, field: str) -> None:
    value = getattr(obj, field)
    if not is_number(value) or value < 0:
        fail(type(obj).__name__, field, value, "must be a finite number >= 0")


def in_range(obj, field: str, low: float, high: float) -> None:
    value = getattr(obj, field)
    if not is_number(value) or not low <= value <= high:
        fail(type(obj).__name__, field, value, f"must lie in [{low}, {high}]")


def check_bool(obj, field: str) -> None:
    value = getattr(obj, field)
    if not isinstance(value, bool):
        fail(type(obj).__name__, field, value, "must be True or False")


def positive_tuple(obj, field: str, allow_empty: bool = False) -> None:
    value = getattr(obj, field)
    if isinstance(value, list):  # the seed writes lists; store the hashable form
        value = tuple(value)
        object.__setattr__(obj, field, value)
    ok = isinstance(value, tuple) and (allow_empty or len(value) > 0)
    ok = ok and all(is_int(v) and v > 0 for v in value)
    if not ok:
        what = "a tuple" if allow_empty else "a non-empty tuple"
        fail(type(obj).__name__, field, value, f"must be {what} of integers >= 1")
