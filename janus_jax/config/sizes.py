"""A run's global batch sizes fitted to its device count.

Batch sizes are global (the whole batch of a step, split evenly over the
devices), so a preset written for one device would be refused on 4 or 8. A run
instead rounds each size that does not split up to the next multiple of the
device count, before anything is written: config.json holds the sizes actually
used, and the run prints and records (summary.json, ``device_rounding``) what it
changed. Rounding up keeps every example of the preset's batch and adds a few;
the alternative, per-device batch sizes, would make the same config compute
something else on every machine. The trainers still refuse sizes that do not
split (``DataParallel.check_divisible``): code calling them directly says what
it wants.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from janus_jax.config.run import RunConfig


class Rounded(NamedTuple):
    """One value a run changed to fit its devices."""

    name: str  # the config key (or, for a derived value, what it is)
    before: int
    after: int
    why: str

    def line(self) -> str:
        return f"{self.name}: {self.before} -> {self.after} ({self.why})"


def round_up(size: int, multiple: int) -> int:
    """Returns the smallest multiple of ``multiple`` that is >= ``size``."""
    return -(-size // multiple) * multiple


def dream_starts(
    real: int, ratio: float, horizon: int, minibatch_size: int, devices: int = 1
) -> int:
    """Returns the dreams per update that make dreamed / (dreamed + real)
    transitions about ``ratio`` (in [0, 1)), in multiples that keep the PPO
    batch divisible into minibatches of ``minibatch_size``, rounded up to split
    over ``devices`` (the dreams are sharded; devices=1 rounds nothing)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"imagination_ratio={ratio!r} is invalid: must lie in [0, 1)")
    if ratio == 0:
        return 0
    wanted = ratio / (1 - ratio) * real
    step = minibatch_size // math.gcd(horizon, minibatch_size)
    starts = step * max(1, round(wanted / (horizon * step)))
    unit = math.lcm(step, devices)
    return -(-starts // unit) * unit


def fit_to_devices(config: RunConfig, devices: int) -> tuple[RunConfig, list[Rounded]]:
    """Returns (``config`` with every global batch a multiple of ``devices``, the
    values changed). Rounds world_model.vae_batch_size, world_model.mdn_batch_size
    and controller.num_envs up (num_envs further where that keeps the PPO batch,
    num_envs x rollout_length, whole minibatches of ppo.minibatch_size), and
    names the dreams per update that ``dream_starts`` rounds up for ``devices``
    (derived, so not a field: the trainer derives the same)."""
    wm, c = config.world_model, config.controller
    split = f"a multiple of {devices} devices"
    changed: list[Rounded] = []

    def fit(prefix: str, section, field: str, size: int, why: str = split):
        before = getattr(section, field)
        if size != before:
            changed.append(Rounded(f"{prefix}.{field}", before, size, why))
        return dataclasses.replace(section, **{field: size})

    if c.features == "world_model":  # model-free runs train no V or M
        for field in ("vae_batch_size", "mdn_batch_size"):
            wm = fit("world_model", wm, field, round_up(getattr(wm, field), devices))
    c = fit("controller", c, "num_envs", *_num_envs(c, config.ppo, devices))
    if c.features == "world_model":
        real = c.num_envs * c.rollout_length
        args = (real, c.imagination_ratio, c.imagination_horizon)
        wanted = dream_starts(*args, config.ppo.minibatch_size)
        starts = dream_starts(*args, config.ppo.minibatch_size, devices)
        if starts != wanted:
            why = f"{split}; imagination_ratio={c.imagination_ratio} of {real} steps"
            changed.append(Rounded("the dreams per update", wanted, starts, why))
    return dataclasses.replace(config, world_model=wm, controller=c), changed


def _num_envs(c, ppo, devices: int) -> tuple[int, str]:
    """Returns (controller.num_envs rounded up for ``devices``, why)."""
    rollout, minibatch = c.rollout_length, ppo.minibatch_size
    num_envs = round_up(c.num_envs, devices)
    why = f"a multiple of {devices} devices"
    whole_before = c.num_envs * rollout % minibatch == 0
    if c.learn_from_real and whole_before and num_envs * rollout % minibatch:
        # The real rollout must stay whole minibatches: num_envs a multiple of
        # the envs one minibatch takes as well.
        per_minibatch = minibatch // math.gcd(minibatch, rollout)
        num_envs = round_up(c.num_envs, math.lcm(devices, per_minibatch))
        why += (
            f" that keeps num_envs x rollout_length ({num_envs} x {rollout}) "
            f"divisible by ppo.minibatch_size={minibatch}"
        )
    return num_envs, why
