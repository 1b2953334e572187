"""The one place a size is derived from a config and checked: the dreams per
update, the controller's batches (``controller_sizes``), and a run's global
batch sizes fitted to its device count (``fit_to_devices``).

Batch sizes are global (the whole batch of a step, split evenly over the
devices), so a preset written for one device would be refused on 4 or 8. A run
instead rounds each size that does not split up to the next multiple of the
device count, before anything is written: config.json holds the sizes actually
used, and the run prints and records (summary.json, ``device_rounding``) what it
changed. Rounding up keeps every example of the preset's batch and adds a few;
the alternative, per-device batch sizes, would make the same config compute
something else on every machine. The trainers still refuse sizes that do not
split (``check_divisible``, through ``controller_sizes`` and ``check_run_sizes``):
code calling them directly says what it wants.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from janus_jax.config.models import PPOConfig
from janus_jax.config.run import RunConfig
from janus_jax.config.training import ControllerTrainingConfig

# The dreams are derived, not a field: their name says what sets them.
DREAMS = (
    "the dreams per update (set by controller.num_envs, rollout_length, "
    "imagination_ratio, imagination_horizon and ppo.minibatch_size)"
)


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


def check_divisible(name: str, size: int, devices: int) -> None:
    """Raises ValueError naming ``name`` unless ``size`` splits over ``devices``."""
    if size % devices:
        raise ValueError(
            f"{name}={size} does not divide over {devices} devices: batch sizes "
            "are global and must be a multiple of the device count"
        )


class ControllerSizes(NamedTuple):
    """The sizes of one controller update."""

    real: int  # real transitions per update: num_envs x rollout_length
    dream_starts: int  # dreams per update (0: no imagination)
    minibatches: int  # PPO gradient steps per epoch (dream updates included)


def controller_sizes(
    c: ControllerTrainingConfig,
    ppo: PPOConfig,
    devices: int = 1,
    *,
    world_model: bool = True,
    num_envs: int | None = None,
    rollout_length: int | None = None,
) -> ControllerSizes:
    """Returns the sizes of one update of ``c`` (with ``num_envs`` and
    ``rollout_length`` in place of its own where given) on ``devices``.

    Raises ValueError, before anything runs, where they do not fit: dreams
    without a ``world_model``, a real rollout in the PPO batch that is not whole
    minibatches, envs or dreams that do not split over the devices, or
    dream_updates without dreams."""
    num_envs = c.num_envs if num_envs is None else num_envs
    rollout_length = c.rollout_length if rollout_length is None else rollout_length
    if not world_model and c.imagination_ratio:
        raise ValueError(
            f"imagination_ratio={c.imagination_ratio}: an agent without a world "
            "model (features='observation') cannot dream; use 0"
        )
    check_divisible("controller.num_envs", num_envs, devices)
    real = num_envs * rollout_length
    minibatch = ppo.minibatch_size
    if c.learn_from_real and real % minibatch:
        raise ValueError(
            f"PPOConfig.minibatch_size={minibatch} must divide num_envs x "
            f"rollout_length = {num_envs} x {rollout_length} = {real}"
        )
    horizon = c.imagination_horizon
    starts = dream_starts(real, c.imagination_ratio, horizon, minibatch, devices)
    if starts:
        check_divisible(DREAMS, starts, devices)
    if c.dream_updates and not starts:
        raise ValueError(
            f"dream_updates={c.dream_updates} needs dreams: set "
            "imagination_ratio above 0"
        )
    # Each dream is a multiple of whole minibatches (dream_starts' step).
    batch = real * c.learn_from_real + (1 + c.dream_updates) * starts * horizon
    return ControllerSizes(real, starts, batch // minibatch)


def check_run_sizes(
    config: RunConfig, devices: int, *, world_model: bool, controller: bool
) -> None:
    """Raises ValueError unless the sizes of the phases a run trains (V and M
    when ``world_model``, C when ``controller``) fit ``devices``."""
    if world_model:
        wm = config.world_model
        for field in ("vae_batch_size", "mdn_batch_size"):
            check_divisible(f"world_model.{field}", getattr(wm, field), devices)
    if controller:
        c = config.controller
        controller_sizes(
            c, config.ppo, devices, world_model=c.features == "world_model"
        )


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
