"""A shared (multi-task) world model: one V and one M trained on the random
episodes of several envs, each env's actions in its own slot of M's action
vector (``config/tasks.py``).

Each task's dataset is an ordinary one, in ``DIR/data/ENV``, collected with its
share of the budget; V's frames and M's windows are the union of every task's
shards, drawn uniformly, so a task's share of the rows is its mixing weight.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from janus_jax.config.architecture import default_configs
from janus_jax.config.run import RunConfig
from janus_jax.config.tasks import encoded_action, env_dir_name, task_slots
from janus_jax.data import RolloutDataset, sequences
from janus_jax.data.blocks import Source
from janus_jax.data.collect import collect
from janus_jax.envs import spec_of
from janus_jax.envs.spec import EnvSpec
from janus_jax.models import mdn_rnn
from janus_jax.parallel import DataParallel
from janus_jax.train.loop import RunIO
from janus_jax.train.world_model import WorldModelTrainer, env_configs

PIXELS_ADVICE = (
    """render every env as pixels: --set 'env_kwargs={"observation": "pixels"}' """
    """(gymnasium envs; add "family": "gymnasium" for ids gymnax also has)"""
)


def task_spec(env_id: str, env_kwargs: dict) -> EnvSpec:
    """Returns the task's spec; an env whose observations (frames) cannot be
    made raises a one-line ValueError naming it."""
    try:
        return spec_of(env_id, **env_kwargs)
    except Exception as err:  # gymnasium's render errors are not ValueErrors
        reason = " ".join(str(err).split()) or type(err).__name__
        raise ValueError(
            f"--env {env_id}: its observations cannot be made with env_kwargs "
            f"{env_kwargs} ({reason})"
        ) from None


def resolve_tasks(config: RunConfig) -> tuple[RunConfig, EnvSpec]:
    """Returns (a shared run's config with each task's action space recorded
    and V and M sized for the tasks' one observation shape and M's shared
    action vector; the spec of ``config.env_id``). Tasks observing different
    shapes, or actions that differ from the ones recorded, raise ValueError."""
    specs = [task_spec(t.env_id, config.env_kwargs) for t in config.tasks]
    first = specs[0]
    for spec in specs[1:]:
        mine = (spec.observation_shape, spec.observation_dtype)
        if mine != (first.observation_shape, first.observation_dtype):
            raise ValueError(
                f"--env {spec.env_id} observes {mine[0]} {mine[1]} but --env "
                f"{first.env_id} observes {first.observation_shape} "
                f"{first.observation_dtype}: one V takes one kind of observation; "
                + PIXELS_ADVICE
            )
    tasks = []
    for task, spec in zip(config.tasks, specs, strict=True):
        if task.action is not None and task.action != spec.action:
            raise ValueError(
                f"--env {spec.env_id}'s actions {spec.action} differ from the "
                f"{task.action} this run recorded: use the run's env_kwargs"
            )
        tasks.append(dataclasses.replace(task, action=spec.action))
    config = dataclasses.replace(config, tasks=tuple(tasks))
    wm = config.world_model
    vae_config, _ = env_configs(first, wm.vae, None)
    size = config.task_slot.size
    mdn_config = wm.mdn_rnn and dataclasses.replace(wm.mdn_rnn, action_dim=size)
    _, mdn_config = default_configs(
        first.observation_shape, encoded_action(size), vae_config, mdn_config
    )
    world_model = dataclasses.replace(wm, vae=vae_config, mdn_rnn=mdn_config)
    config = dataclasses.replace(config, world_model=world_model)
    return config, specs[config.task_ids.index(config.env_id)]


class SharedWorldModelTrainer(WorldModelTrainer):
    """Trains one V and one M on the random episodes of every task of a
    resolved shared ``config`` (``resolve_tasks``), in ``io.run_dir``."""

    def __init__(
        self, config: RunConfig, *, io: RunIO, parallel: DataParallel | None = None
    ):
        if not config.tasks or config.task_slot is None:
            raise ValueError("SharedWorldModelTrainer takes a resolved shared config")
        wm = config.world_model
        # The base trainer sizes M for one env's actions: M's are the shared ones.
        super().__init__(
            config.env_id,
            dataclasses.replace(wm, mdn_rnn=None),
            io=io,
            env_kwargs=config.env_kwargs,
            seed=config.seed,
            parallel=parallel,
        )
        self.config, self.mdn_config = wm, wm.mdn_rnn
        self.tasks = config.tasks
        self.slots = task_slots(tuple(t.action for t in config.tasks))
        self.task_paths = tuple(
            self.dataset_path / env_dir_name(t.env_id) for t in self.tasks
        )
        self._datasets: list[RolloutDataset] | None = None

    @property
    def dataset_paths(self) -> tuple:
        return self.task_paths

    def collect(self) -> list[RolloutDataset]:
        """Returns every task's dataset (in task order), first collecting each
        task's share of the budget (continuing a partial one)."""
        if self._datasets is None:
            self.parallel.on_primary(self._collect_tasks, "collect the datasets")
            datasets = [RolloutDataset(p) for p in self.task_paths]
            for dataset, task in zip(datasets, self.tasks, strict=True):
                if dataset.env_id != task.env_id:
                    raise ValueError(
                        f"the dataset at {dataset.path} holds {dataset.env_id!r} "
                        f"episodes, but the run's task is {task.env_id!r}"
                    )
            self._datasets = datasets
        return self._datasets

    def task_budget(self, index: int) -> dict:
        """Returns task ``index``'s collection budget: its share of
        ``random_steps`` env steps, else of ``num_episodes`` (at least 1)."""
        c, share = self.config, self.tasks[index].share
        if c.random_steps:
            return {"num_steps": max(1, round(share * c.random_steps))}
        return {"num_episodes": max(1, round(share * c.num_episodes))}

    def _collect_tasks(self) -> None:
        row, total_steps, per_s = {}, 0, []
        for index, (task, path) in enumerate(
            zip(self.tasks, self.task_paths, strict=True)
        ):
            stats = collect(
                task.env_id,
                path,
                **self.task_budget(index),
                seed=self.seed + index,  # tasks of one seed differ in randomness
                num_envs=self.config.collect_envs,
                resume=True,
                progress=self.io.progress,
                env_kwargs=self.env_kwargs,
            )
            returns = RolloutDataset(path).episode_returns()
            name = env_dir_name(task.env_id)
            row[f"collect/{name}/return_mean"] = float(returns.mean())
            row[f"collect/{name}/episodes"] = stats.total_episodes
            total_steps += stats.steps
            per_s.append(stats.steps_per_s)
        if total_steps or not self.io.logged("collect"):
            self.io.log(
                "collect",
                int(sum(v for k, v in row.items() if k.endswith("/episodes"))),
                row,
                env_steps=total_steps,
                env_steps_per_s=float(np.mean(per_s)),
            )

    def collected_steps(self) -> int:
        """Returns the env steps in all the tasks' datasets (0 before collection)."""
        return sum(
            RolloutDataset(p).num_steps
            for p in self.task_paths
            if (p / "manifest.json").exists()
        )

    def task_rows(self) -> dict[str, dict]:
        """Returns per task: its dataset's episodes and steps, and its share of
        V's frames (what V's batches draw from it)."""
        datasets = self.collect()
        frames = [d.num_steps + d.num_episodes for d in datasets]
        return {
            task.env_id: {
                "episodes": int(d.num_episodes),
                "steps": int(d.num_steps),
                "frame_share": n / sum(frames),
            }
            for task, d, n in zip(self.tasks, datasets, frames, strict=True)
        }

    def frame_sources(self, dataset=None) -> list[Source]:
        """Returns V's sources: every task's frames (vector observations are
        standardised with all the tasks' statistics by ``train_vae``)."""
        return [s for d in self.collect() for s in sequences.frame_sources(d)]

    def window_sources(self) -> list[Source]:
        """Returns M's sources: every task's windows, its actions in its slot
        (the latents of V, which ``train_mdn`` encodes first)."""
        sources = []
        for dataset, task, slot in zip(
            self.collect(), self.tasks, self.slots, strict=True
        ):
            sources += sequences.window_sources(
                dataset,
                self.latents_dir / env_dir_name(task.env_id),
                self.config.sequence_length,
                task.action,
                self.vae_config.latent_dim,
                slot,
            )
        return sources

    def train_mdn(self, dataset=None) -> mdn_rnn.MDNRNNParams:
        """Returns M trained on every task's windows, encoded by V first."""

        def encode():
            for dataset, task in zip(self.collect(), self.tasks, strict=True):
                directory = self.latents_dir / env_dir_name(task.env_id)
                sequences.encode_dataset(self.vae_params, dataset, directory)

        self.parallel.on_primary(encode, "encode the datasets with V")
        c = self.config
        self.mdn_params = self._fit(
            "mdn",
            mdn_rnn.init(self._keys["mdn_init"], self.mdn_config),
            self.window_sources(),
            c.mdn_batch_size,
            c.mdn_epochs,
            c.mdn_learning_rate,
            mdn_rnn.loss,
        )
        return self.mdn_params
