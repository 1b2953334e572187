"""The checks of what a DatasetWriter is given: its spec's shapes and dtypes, and
each episode's arrays against that spec. Each raises ValueError naming the
field, what it got and what is allowed."""

from __future__ import annotations

import numpy as np

from janus_jax.data.shards import REWARD_DTYPE


def normalize_dtype(value, field: str) -> str:
    """Returns the dtype's name (``"uint8"``) for a bool, integer or float dtype."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise ValueError(f"{field}={value!r} is invalid: not a numpy dtype") from None
    if dtype.kind not in "biuf":
        raise ValueError(f"{field}={value!r} is invalid: must be bool, int or float")
    return dtype.name


def normalize_shape(value, field: str) -> tuple[int, ...]:
    """Returns ``value`` as a tuple of integers >= 1 (empty for scalars)."""
    shape = tuple(value) if isinstance(value, (tuple, list)) else None
    if shape is None or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
        for d in shape
    ):
        raise ValueError(f"{field}={value!r} is invalid: must be a tuple of ints >= 1")
    return tuple(int(d) for d in shape)


def _cast(array: np.ndarray, dtype: str, name: str) -> np.ndarray:
    # Accept what converts without changing kind (float64 -> float32, int64 ->
    # int32 when the values fit); refuse float -> int and the like, which would
    # silently round or wrap the data.
    target = np.dtype(dtype)
    if array.dtype == target:
        return np.array(array, copy=True)
    integers = array.dtype.kind in "iu" and target.kind in "iu"
    if not integers and not np.can_cast(array.dtype, target, casting="same_kind"):
        raise ValueError(
            f"{name} has dtype {array.dtype}; the dataset stores {target} and "
            f"{array.dtype} does not convert to it without changing kind"
        )
    cast = array.astype(target)
    if integers and not np.array_equal(cast, array):
        raise ValueError(f"{name} has values that do not fit in {target}")
    return cast


def _flags(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype != bool and not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be bool (or 0/1); got values {np.unique(array)}")
    return array.astype(bool)


def checked_episode(
    spec: dict, obs, actions, rewards, terminated, truncated
) -> tuple[np.ndarray, ...]:
    """Returns (obs, actions, rewards, terminated, truncated) as fresh arrays of the
    dataset's dtypes (rewards REWARD_DTYPE, the flags bool) after checking them
    against ``spec`` (a manifest: observation_shape, observation_dtype,
    action_shape, action_dtype); see DatasetWriter.add_episode for the forms."""
    obs, actions = np.asarray(obs), np.asarray(actions)
    rewards = np.asarray(rewards)
    terminated, truncated = np.asarray(terminated), np.asarray(truncated)
    if rewards.ndim != 1 or len(rewards) < 1:
        raise ValueError(
            f"rewards has shape {rewards.shape}; expected [T] with T >= 1 steps"
        )
    steps = len(rewards)
    obs_shape = (steps + 1, *spec["observation_shape"])
    expected = {
        "obs": (obs, obs_shape, "[T + 1, *observation_shape]"),
        "actions": (actions, (steps, *spec["action_shape"]), "[T, *action_shape]"),
        "terminated": (terminated, (steps,), "[T]"),
        "truncated": (truncated, (steps,), "[T]"),
    }
    for name, (array, shape, form) in expected.items():
        if array.shape != shape:
            raise ValueError(
                f"{name} has shape {array.shape}; expected {form} = {shape} "
                f"for an episode of T={steps} steps (the length of rewards)"
            )
    obs = _cast(obs, spec["observation_dtype"], "obs")
    actions = _cast(actions, spec["action_dtype"], "actions")
    if rewards.dtype.kind not in "biuf":
        raise ValueError(f"rewards has dtype {rewards.dtype}; expected numbers")
    rewards = rewards.astype(REWARD_DTYPE)
    flags = _flags(terminated, "terminated"), _flags(truncated, "truncated")
    for name, array in zip(("rewards", "obs"), (rewards, obs), strict=True):
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int(np.argwhere(~np.isfinite(array))[0][0])
            raise ValueError(f"{name} is not finite at index {bad}")
    for name, flag in zip(("terminated", "truncated"), flags, strict=True):
        if flag[:-1].any():
            step = int(np.argmax(flag[:-1]))
            raise ValueError(
                f"{name}[{step}] is True before the episode's last step "
                f"{steps - 1}: pass one episode per call, split at the flags"
            )
    return obs, actions, rewards, *flags
