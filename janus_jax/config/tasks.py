"""A shared (multi-task) world model's tasks, and the one action encoding M
takes from every one of them.

One V and one M learn from several envs. M's action input is one vector of
``size = sum(slot widths) + num_tasks``: a slot per task in task order (a
discrete env's one-hot of its actions, a continuous env's action values), then
a one-hot of the task (the task embedding). An env's action fills its own slot
and its task id; every other slot is zero, so discrete and continuous envs mix
and the dreams of one env only ever see that env's actions.

    CartPole-v1 (2 actions), Pendulum-v1 (1 value in [-2, 2]):
    CartPole action 1  -> [0, 1 | 0    | 1, 0]
    Pendulum action .5 -> [0, 0 | 0.5  | 0, 1]

``TaskSlot`` is one env's place in that vector; ``task_slots`` the one place
the slots are computed from the tasks' action spaces (``controller.
encode_action`` writes an action into its slot).
"""

from __future__ import annotations

import dataclasses
import re

from janus_jax.config.checks import fail, is_number
from janus_jax.config.models import ActionSpec


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """One env of a shared world model."""

    env_id: str
    """The env (a gymnax or gymnasium id); the run's env_kwargs apply to it."""
    share: float
    """Its share of the collection budget (world_model.random_steps, else
    num_episodes); V's and M's batches draw uniformly from all the rows, so the
    share is also the env's mixing weight in training."""
    action: ActionSpec | None = None
    """The env's action space (filled in when the run starts): its slot in M's
    action vector."""

    def __post_init__(self):
        if not isinstance(self.env_id, str) or not self.env_id:
            fail("TaskConfig", "env_id", self.env_id, "must be an env id")
        if not is_number(self.share) or not 0 < self.share <= 1:
            fail("TaskConfig", "share", self.share, "must lie in (0, 1]")
        if isinstance(self.action, dict):  # read back from config.json
            object.__setattr__(self, "action", ActionSpec(**self.action))
        if self.action is not None and not isinstance(self.action, ActionSpec):
            fail("TaskConfig", "action", self.action, "must be an ActionSpec or None")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskSlot:
    """One task's place in M's shared action vector (static: hashable)."""

    task: int
    """The task's index: which task one-hot is set."""
    num_tasks: int
    """How many tasks share M (the one-hot's width, at the vector's end)."""
    offset: int
    """Where the task's action slot starts."""
    size: int
    """The whole vector's size: every slot plus the task one-hot."""

    def __post_init__(self):
        if not 0 <= self.task < self.num_tasks:
            fail("TaskSlot", "task", self.task, f"must lie in [0, {self.num_tasks})")
        if not 0 <= self.offset <= self.size - self.num_tasks:
            fail("TaskSlot", "offset", self.offset, f"must lie in [0, {self.size})")

    @property
    def task_index(self) -> int:
        """Returns the position of this task's one-hot entry in the vector."""
        return self.size - self.num_tasks + self.task


def task_slots(actions: tuple[ActionSpec, ...]) -> tuple[TaskSlot, ...]:
    """Returns each task's TaskSlot for tasks with these action spaces, in order
    (a slot is ``action.dim`` wide: n one-hot entries, or the box's values)."""
    if not actions:
        raise ValueError("task_slots: a shared world model needs at least one task")
    size = sum(a.dim for a in actions) + len(actions)
    offsets = [sum(a.dim for a in actions[:i]) for i in range(len(actions))]
    return tuple(
        TaskSlot(task=i, num_tasks=len(actions), offset=offset, size=size)
        for i, offset in enumerate(offsets)
    )


def encoded_action(size: int) -> ActionSpec:
    """Returns the action space M sees in a shared run: vectors of ``size``."""
    return ActionSpec(continuous=True, dim=size)


def check_tasks(tasks) -> tuple[TaskConfig, ...]:
    """Returns ``tasks`` as a tuple of TaskConfig (dicts of config.json read as
    them); raises ValueError for tasks a shared run cannot train: not a sequence
    of tasks, fewer than two, an env named twice, or shares not adding to 1."""
    if isinstance(tasks, str | bytes | dict) or not isinstance(tasks, tuple | list):
        fail("RunConfig", "tasks", tasks, "must be a tuple of TaskConfig")
    tasks = tuple(TaskConfig(**t) if isinstance(t, dict) else t for t in tasks)
    if not tasks:
        return tasks
    if not all(isinstance(t, TaskConfig) for t in tasks):
        fail("RunConfig", "tasks", tasks, "must be a tuple of TaskConfig")
    names = [t.env_id for t in tasks]
    if len(tasks) < 2:
        fail(
            "RunConfig",
            "tasks",
            names,
            "a shared world model takes at least two envs (one env is an "
            "ordinary run: leave tasks empty)",
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        fail("RunConfig", "tasks", names, f"{twice[0]} is named twice")
    shares = [t.share for t in tasks]
    if abs(sum(shares) - 1.0) > 1e-6:
        fail("RunConfig", "tasks", names, f"their shares {shares} must add up to 1")
    return tasks


def env_dir_name(env_id: str) -> str:
    """Returns ``env_id`` as a folder name (``module:Class`` -> ``module-Class``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", env_id)
