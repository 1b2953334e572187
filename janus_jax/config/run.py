"""``RunConfig``: everything one ``janus-jax train`` run needs, as nested frozen
configs; JSON round trip (the ``config.json`` beside the checkpoints, an old
run's renamed fields read as the new ones) and moving a run to another env. The
``section.field=value`` overrides are ``config/overrides.py``'s."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
from typing import Any

from janus_jax.config.architecture import default_mdn_rnn_config, default_vae_config
from janus_jax.config.checks import fail, non_negative_int
from janus_jax.config.models import NetworkConfig, PPOConfig
from janus_jax.config.overrides import (
    MOVED,
    apply_overrides,
    dataclass_in,
    field_hints,
)
from janus_jax.config.recipes import PRESET_RECIPES
from janus_jax.config.renamed import new_names
from janus_jax.config.tasks import TaskConfig, TaskSlot, check_tasks, task_slots
from janus_jax.config.training import ControllerTrainingConfig, WorldModelTrainingConfig

# The overrides live in config/overrides.py; imported from here as before.
__all__ = [
    "MOVED",
    "RunConfig",
    "apply_overrides",
    "describe",
    "field_docs",
    "for_task",
    "from_dict",
    "to_dict",
    "with_env",
]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunConfig:
    """A whole run: env, the world model's training, the controller's."""

    env_id: str
    """The env to train on (a gymnax or gymnasium id)."""
    preset: str = "custom"
    """The preset these values came from (recorded in the summary)."""
    seed: int = 0
    """Seed of the whole run, its only one (collection, initialisation, batches, env
    resets, dreams); --seed N on the command line."""
    world_model: WorldModelTrainingConfig = WorldModelTrainingConfig()
    """Collection, V and M (with their architectures in .vae and .mdn_rnn)."""
    network: NetworkConfig = NetworkConfig()
    """C's actor and critic MLPs."""
    ppo: PPOConfig = PPOConfig()
    """C's PPO hyperparameters (minibatch_size rows per gradient step)."""
    controller: ControllerTrainingConfig = ControllerTrainingConfig()
    """C's training: steps, envs, imagination ratio and horizon, evaluation."""
    env_kwargs: dict = dataclasses.field(default_factory=dict)
    """Options for janus_jax.envs.make (e.g. {"image_size": 64} for gymnasium)."""
    tasks: tuple[TaskConfig, ...] = ()
    """A shared world model's envs (empty: one env, env_id); env_id is then the
    one of them this config acts in (see config/tasks.py)."""

    def __post_init__(self):
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"RunConfig.env_id={self.env_id!r} is invalid: an env id")
        if not isinstance(self.preset, str):
            fail("RunConfig", "preset", self.preset, "must be a str")
        non_negative_int(self, "seed")
        # A section of another type would fail far from here, mid-run.
        for field, kind in _SECTIONS.items():
            if not isinstance(getattr(self, field), kind):
                fail(
                    "RunConfig",
                    field,
                    getattr(self, field),
                    f"must be a {kind.__name__}",
                )
        if not isinstance(self.env_kwargs, dict) or not all(
            isinstance(key, str) for key in self.env_kwargs
        ):
            fail(
                "RunConfig",
                "env_kwargs",
                self.env_kwargs,
                "must be a dict of keyword arguments (str keys)",
            )
        tasks = check_tasks(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if tasks:
            if self.env_id not in self.task_ids:
                fail(
                    "RunConfig",
                    "env_id",
                    self.env_id,
                    f"must be one of {self.task_ids}",
                )

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Returns the shared world model's env ids (empty for one env)."""
        return tuple(t.env_id for t in self.tasks)

    @property
    def task_slot(self) -> TaskSlot | None:
        """Returns env_id's slot in a shared M's action vector (None for one env,
        or before the run has recorded its tasks' action spaces)."""
        if not self.tasks or any(t.action is None for t in self.tasks):
            return None
        slots = task_slots(tuple(t.action for t in self.tasks))
        return slots[self.task_ids.index(self.env_id)]


_SECTIONS = {
    "world_model": WorldModelTrainingConfig,
    "network": NetworkConfig,
    "ppo": PPOConfig,
    "controller": ControllerTrainingConfig,
}


def to_dict(config: Any) -> dict:
    """Returns a config as plain JSON-able data (tuples become lists); a run of
    one env has no ``tasks`` key, so its config.json is as it always was."""
    data = json.loads(json.dumps(dataclasses.asdict(config)))
    if isinstance(config, RunConfig) and not config.tasks:
        del data["tasks"]
    return data


def for_task(config: RunConfig, env_id: str) -> RunConfig:
    """Returns a shared run's config acting in ``env_id``, one of its tasks;
    raises ValueError naming the tasks otherwise."""
    if env_id not in config.task_ids:
        allowed = ", ".join(config.task_ids) or config.env_id
        raise ValueError(
            f"env {env_id!r} is not in this run: its world model was trained on "
            f"{allowed}"
        )
    return dataclasses.replace(config, env_id=env_id)


def from_dict(cls, data: dict, where: str = ""):
    """Returns ``cls`` built from ``to_dict`` output; unknown keys raise ValueError.

    An old run's renamed fields (controller.world_model_updates) are read as
    their new ones, with a DeprecationWarning, so the run still loads and
    resumes."""
    name = where.rstrip(".") or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be a JSON object, got {data!r}")
    data = new_names(cls, data, where or f"{cls.__name__}.")
    hints = field_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ValueError(f"{name} has unknown fields {unknown}")
    kwargs = {}
    for name, value in data.items():
        inner = dataclass_in(hints[name])
        if inner is not None and isinstance(value, dict):
            value = from_dict(inner, value, f"{where}{name}.")
        kwargs[name] = value
    return cls(**kwargs)


_ARCHITECTURES = ("world_model.vae", "world_model.mdn_rnn")


def with_env(
    config: RunConfig, env_id: str, overrides: list[str]
) -> tuple[RunConfig, str]:
    """Returns (``config`` moved to ``env_id`` with ``overrides`` applied, one line
    saying what was re-derived).

    V's and M's architectures came from the preset and were sized for its env, so
    they are derived anew from ``env_id``'s observations and actions: by the
    preset's recipe where it serves the env (``config/recipes.py``: the MinAtar
    recipe keeps its Bernoulli V on another game's channels), else as
    ``vae=None`` would be; and then the user's ``world_model.vae.*`` and
    ``world_model.mdn_rnn.*`` overrides apply to them; M's latent size follows
    V's as it ends up. The preset's ``env_kwargs`` were its env's options
    (CarRacing's action repeat...) and are dropped; ``--set env_kwargs...``
    sets the new env's."""
    # Imported here: gymnax computes on import, after the CLI's distributed setup.
    from janus_jax.envs import spec_of

    old_env, recipe = config.env_id, PRESET_RECIPES.get(config.preset)
    wm = dataclasses.replace(config.world_model, vae=None, mdn_rnn=None)
    config = dataclasses.replace(
        config,
        env_id=env_id,
        preset=f"{config.preset} on {env_id}",
        world_model=wm,
        env_kwargs={},
    )
    rest = [o for o in overrides if _section(o) is None]
    config = apply_overrides(config, rest)
    spec = spec_of(config.env_id, **config.env_kwargs)
    if recipe is not None and recipe.serves(spec):  # the recipe's own V and M
        vae_config, mdn_config = recipe.architecture(spec)
    else:
        vae_config = default_vae_config(spec.observation_shape)
        mdn_config = default_mdn_rnn_config(vae_config, spec.action.dim)
    config = _with_architecture(config, "vae", vae_config, overrides)
    vae_config = config.world_model.vae  # with the user's overrides
    # M follows V's latent as the user's overrides left it.
    mdn_config = vae_config and dataclasses.replace(
        mdn_config, latent_dim=vae_config.latent_dim
    )
    config = _with_architecture(config, "mdn_rnn", mdn_config, overrides)
    return config, _rederived(config, spec, old_env)


def _section(item: str) -> str | None:
    """Returns the architecture (world_model.vae or .mdn_rnn) an override sets."""
    key = item.partition("=")[0].strip()
    return next(
        (a for a in _ARCHITECTURES if key == a or key.startswith(a + ".")), None
    )


def _with_architecture(config: RunConfig, name: str, derived, overrides) -> RunConfig:
    """Returns ``config`` with world_model.NAME = ``derived``, then the overrides
    of that section applied to it."""
    wm = dataclasses.replace(config.world_model, **{name: derived})
    config = dataclasses.replace(config, world_model=wm)
    mine = [o for o in overrides if _section(o) == f"world_model.{name}"]
    return apply_overrides(config, mine)


def models_line(v, m, actions: str = "") -> str:
    """Returns "V: <net>, latent Z, <likelihood> likelihood; M: <memory> H, K
    mixtures, <actions>" for V's and M's configs (M's part without M), where
    ``actions`` names M's actions (default: "<action_dim>-dim actions")."""
    net = f"convolutions {v.hidden_channels}" if v.is_image else f"MLP {v.hidden_sizes}"
    line = f"V: {net}, latent {v.latent_dim}, {v.likelihood} likelihood"
    if m is None:
        return line
    return line + (
        f"; M: {m.rnn_type.upper()} {m.hidden_dim}, {m.num_mixtures} mixtures, "
        f"{actions or f'{m.action_dim}-dim actions'}"
    )


def _rederived(config: RunConfig, spec, old_env: str) -> str:
    """Returns the line saying which V and M ``with_env`` gave the run."""
    v, m = config.world_model.vae, config.world_model.mdn_rnn
    if v is None:
        arch = "V and M derived from the env when the run starts"
    else:
        arch = models_line(v, m)
    return (
        f"--env {config.env_id}: V and M re-derived for observations "
        f"{spec.observation_shape} (the preset's were sized for {old_env}): {arch}"
    )


@functools.cache
def field_docs(cls) -> dict[str, str]:
    """Returns each field's docstring (the string literal under it in the source)."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def describe(config: Any, prefix: str = "") -> list[str]:
    """Returns one line per settable field: ``key = value  # doc``."""
    lines = []
    docs = field_docs(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if isinstance(config, RunConfig) and field.name == "tasks":
            if value:  # a shared run's envs, as config.json holds them
                shown = json.dumps(to_dict(config)["tasks"])
                lines.append(f"{key} = {shown}  # {docs.get(field.name, '')}")
            continue  # a run of one env has none, as its config.json
        if dataclasses.is_dataclass(value):
            lines.extend(describe(value, key + "."))
        else:
            shown = json.dumps(value) if not isinstance(value, str) else value
            lines.append(f"{key} = {shown}  # {docs.get(field.name, '')}")
    return lines
