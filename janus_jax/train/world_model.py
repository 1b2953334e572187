"""``WorldModelTrainer``: random-policy collection -> V -> latents -> M.

Each phase is compiled chunks of ``fit_chunk`` inside ``run_chunks``, which logs,
shows progress and checkpoints between them; a run directory given with
``resume=True`` continues from the last checkpoint of the phase it stopped in.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import gymnasium
import jax

from janus_jax.agent import MDNRNN, VariationalAutoencoder
from janus_jax.config.architecture import default_configs
from janus_jax.config.models import MDNRNNConfig, VAEConfig
from janus_jax.config.run import RunConfig
from janus_jax.config.training import WorldModelTrainingConfig
from janus_jax.data import RolloutDataset, sequences
from janus_jax.data.blocks import BlockStream, Source
from janus_jax.data.collect import collect
from janus_jax.envs import check_observation, env_source, spec_of
from janus_jax.envs.custom import recorded_env
from janus_jax.envs.spec import EnvSpec
from janus_jax.models import mdn_rnn, vae
from janus_jax.optim import init_train_state, make_optimizer
from janus_jax.parallel import DataParallel
from janus_jax.run.run_dir import load_config, new_agent, write_run
from janus_jax.train.fit import fit_chunk
from janus_jax.train.loop import RunIO, run_chunks, whole_chunks


def env_configs(
    spec: EnvSpec, vae_config: VAEConfig | None, mdn_config: MDNRNNConfig | None
) -> tuple[VAEConfig, MDNRNNConfig]:
    """Returns V's and M's configs for the env: the given ones checked against
    it, or the defaults (``config.architecture``) for its observations and
    actions."""
    if vae_config is not None:  # the env's error names the VAEConfig to use
        check_observation(spec, vae_config)
    return default_configs(spec.observation_shape, spec.action, vae_config, mdn_config)


def _vae_loss(params, frames, key):
    return vae.loss(params, frames, key)


class WorldModelTrainer:
    """Trains V and M of World Models on a random policy's experience of ``env``.

    env: an env id (or ``module:Class``), a ``janus_jax.envs`` env, or a
    gymnasium env: collection makes its own vectorised envs from its id, or as
    copies of an instance of an unregistered class. env_fn: a callable returning
    a new env, for envs that cannot be copied (``env`` may then be left out).
    run_dir: where the dataset (run_dir/data) and checkpoints
    (run_dir/checkpoints/{vae,mdn}) go; None uses a temporary directory and
    keeps no checkpoints. dataset: use this existing dataset instead of
    collecting (its env must be ``env``'s).
    """

    def __init__(
        self,
        env=None,
        config: WorldModelTrainingConfig | None = None,
        *,
        env_fn: Callable[..., gymnasium.Env] | None = None,
        run_dir: str | Path | None = None,
        dataset: str | Path | None = None,
        io: RunIO | None = None,
        env_kwargs: dict | None = None,
        seed: int = 0,
        parallel: DataParallel | None = None,
    ):
        self.config = config or WorldModelTrainingConfig()
        self.seed = seed
        self.parallel = parallel or DataParallel.create()
        self.env_id, made = env_source(env, env_fn)
        self.env_kwargs = {**made, **(env_kwargs or {})}
        self.spec = getattr(env, "spec", None)  # a janus-jax env's EnvSpec
        if not hasattr(self.spec, "observation_shape"):
            self.spec = spec_of(self.env_id, **self.env_kwargs)
        self.vae_config, self.mdn_config = env_configs(
            self.spec, self.config.vae, self.config.mdn_rnn
        )
        self.io = io or RunIO(
            run_dir=None if run_dir is None else Path(run_dir),
            progress=self.parallel.is_primary,
        )
        # Given a run_dir (not a pipeline's io, which writes its own config),
        # the trainer leaves a run that load_agent and the CLI can open.
        self._writes_run = run_dir is not None and io is None
        if self._writes_run:  # config.json names the env: refused before training
            self._recorded_env = recorded_env(self.env_id, self.env_kwargs)
        if self.io.run_dir is None and dataset is None and jax.process_count() > 1:
            raise ValueError(
                "run_dir=None: a multi-process run collects into run_dir on process "
                "0 and the others read it there; pass a run_dir all processes share"
            )
        if self.io.run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="janus-jax-")
            work_dir = Path(self._tmp.name)
        else:
            work_dir = self.io.run_dir
        data_dir = work_dir / "data"
        self.latents_dir = work_dir / "latents"
        self.dataset_path = Path(dataset) if dataset is not None else data_dir
        self._collect_needed = dataset is None
        keys = jax.random.split(jax.random.key(seed), 4)
        self._keys = dict(
            zip(("vae_init", "vae", "mdn_init", "mdn"), keys, strict=True)
        )
        self.vae_params: vae.VAEParams | None = None
        self.mdn_params: mdn_rnn.MDNRNNParams | None = None
        self.metrics: dict[str, dict] = {}
        self.data_peak_bytes: dict[str, int] = {}
        """Per phase: most bytes of dataset arrays held in memory at once."""
        self._dataset: RolloutDataset | None = None

    def collect(self) -> RolloutDataset:
        """Returns the dataset, first collecting random episodes into it (at
        least ``random_steps`` env steps of them if set, else ``num_episodes``),
        continuing a partial one, so an interrupted run keeps its data.
        Later calls return the same dataset without collecting or opening it again."""
        if self._dataset is not None:
            return self._dataset
        # One process collects into the (shared) run directory; the rest wait and
        # read it, each taking only its own rows of every batch.
        if self._collect_needed:
            self.parallel.on_primary(self._collect_random, "collect the dataset")
        dataset = RolloutDataset(self.dataset_path)
        if dataset.env_id != self.spec.env_id:
            raise ValueError(
                f"the dataset at {self.dataset_path} holds {dataset.env_id!r} "
                f"episodes, but this run trains on {self.spec.env_id!r}"
            )
        if dataset.observation_shape != self.spec.observation_shape:
            raise ValueError(
                f"the dataset at {self.dataset_path} holds observations of shape "
                f"{dataset.observation_shape}; the env gives "
                f"{self.spec.observation_shape} (another image size?)"
            )
        self._dataset = dataset
        return dataset

    @property
    def dataset_paths(self) -> tuple[Path, ...]:
        """Returns the run's dataset directories (one; a shared run's, one a task)."""
        return (self.dataset_path,)

    def collected_steps(self) -> int:
        """Returns the env steps in the run's dataset (0 before collection)."""
        manifest = self.dataset_path / "manifest.json"
        return RolloutDataset(self.dataset_path).num_steps if manifest.exists() else 0

    def _collect_random(self) -> None:
        """Returns None once the random policy's episodes are in the dataset."""
        c = self.config
        # random_steps > 0 is the budget in real env steps; else num_episodes.
        budget = (
            {"num_steps": c.random_steps}
            if c.random_steps
            else {"num_episodes": c.num_episodes}
        )
        stats = collect(
            self.env_id,
            self.dataset_path,
            **budget,
            seed=self.seed,
            num_envs=c.collect_envs,
            resume=True,
            progress=self.io.progress,
            env_kwargs=self.env_kwargs,
        )
        # A kill after the last episode is written but before this row leaves
        # the dataset whole and the row missing: the resumed call writes no
        # episode, and logs the row then. The returns are the whole dataset's,
        # so a collection resumed midway logs what an uninterrupted one does.
        if stats.episodes or not self.io.logged("collect"):
            returns = RolloutDataset(self.dataset_path).episode_returns()
            self.io.log(
                "collect",
                stats.total_episodes,
                {
                    "collect/return_mean": float(returns.mean()),
                    "collect/return_std": float(returns.std()),
                },
                env_steps=stats.steps,
                env_steps_per_s=stats.steps_per_s,
            )

    def _fit(
        self,
        phase: str,
        params,
        sources: list[Source],
        batch_size: int,
        epochs: float,
        lr: float,
        loss_fn,
    ):
        """Returns the params after ``epochs`` passes of ``phase`` over the
        shards' ``sources``, streamed within ``max_resident_bytes``."""
        c = self.config
        self.parallel.check_divisible(f"{phase}_batch_size", batch_size)
        stream = BlockStream(
            sources, batch_size, self.seed, c.max_resident_bytes, f"{phase} phase"
        )
        per_epoch = stream.steps_per_epoch
        chunk, total = whole_chunks(
            max(1, math.ceil(epochs * per_epoch)), c.chunk_steps
        )
        optimizer = make_optimizer(
            lr,
            c.max_grad_norm or None,
            accumulation_steps=c.gradient_accumulation_steps,
        )
        state = init_train_state(params, optimizer, self._keys[phase])
        state = self.parallel.replicate(state)
        kwargs = {"loss_fn": loss_fn, "optimizer": optimizer}
        compiled = jax.jit(functools.partial(fit_chunk, **kwargs), donate_argnums=0)

        def run_chunk(state, done, count):
            batches = stream.batches(done, count, self.parallel.gather_rows)
            state, metrics = compiled(state, batches)
            return state, metrics, {"epoch": (done + count) / per_epoch}

        if epochs == 0:
            stream.close()
            return params
        try:
            state, self.metrics[phase] = run_chunks(
                self.io,
                phase,
                state,
                total=total,
                chunk=chunk,
                run_chunk=run_chunk,
                checkpoint_every=c.checkpoint_every,
                unit="steps",
                shown=(f"{phase}/loss",),
            )
        finally:
            self.data_peak_bytes[phase] = stream.peak_resident_bytes
            stream.close()
        return self.parallel.local(state.params)

    def frame_sources(self, dataset: RolloutDataset | None = None) -> list[Source]:
        """Returns V's sources: every frame of ``dataset`` (default: the run's)."""
        return sequences.frame_sources(dataset or self.collect())

    def train_vae(self, dataset: RolloutDataset | None = None) -> vae.VAEParams:
        """Returns V trained on every frame of ``dataset`` (default: the run's;
        vector observations are standardised with the dataset's statistics,
        stored in V's params)."""
        c = self.config
        sources = self.frame_sources(dataset)
        params = vae.init(self._keys["vae_init"], self.vae_config)
        if not self.vae_config.is_image:
            stats = sequences.frame_stats(s.load() for s in sources)
            params = vae.with_obs_stats(params, *stats)
        self.vae_params = self._fit(
            "vae",
            params,
            sources,
            c.vae_batch_size,
            c.vae_epochs,
            c.vae_learning_rate,
            _vae_loss,
        )
        return self.vae_params

    def train_mdn(self, dataset: RolloutDataset | None = None) -> mdn_rnn.MDNRNNParams:
        """Returns M trained on the dataset's windows (default: the run's),
        encoded by the trained V into ``latents_dir`` first."""
        c = self.config
        dataset = dataset or self.collect()
        self.parallel.on_primary(
            lambda: sequences.encode_dataset(
                self.vae_params, dataset, self.latents_dir
            ),
            "encode the dataset with V",
        )
        sources = sequences.window_sources(
            dataset,
            self.latents_dir,
            c.sequence_length,
            self.spec.action,
            self.vae_config.latent_dim,
        )
        params = mdn_rnn.init(self._keys["mdn_init"], self.mdn_config)
        self.mdn_params = self._fit(
            "mdn",
            params,
            sources,
            c.mdn_batch_size,
            c.mdn_epochs,
            c.mdn_learning_rate,
            mdn_rnn.loss,
        )
        if self._writes_run:
            self._write_run()
        return self.mdn_params

    def _write_run(self) -> None:
        """Returns None once run_dir holds config.json (this trainer's world
        model section over any config already there) and the agent checkpoint
        of V and M with a fresh C, as ``janus-jax train-world-model`` leaves."""
        run_dir = self.io.run_dir
        base = load_config(run_dir) if (run_dir / "config.json").exists() else None
        env_id, env_kwargs = self._recorded_env
        base = base or RunConfig(env_id=env_id)
        world_model = dataclasses.replace(
            self.config, vae=self.vae_config, mdn_rnn=self.mdn_config
        )
        config = dataclasses.replace(
            base,
            env_id=env_id,
            env_kwargs=env_kwargs,
            seed=self.seed,
            world_model=world_model,
        )
        agent = new_agent(config, self.spec)
        agent.vae.params, agent.mdn_rnn.params = self.vae_params, self.mdn_params
        write_run(run_dir, agent, config, "world_model", self.parallel)

    def train_world_model(self) -> tuple[VariationalAutoencoder, MDNRNN]:
        """Returns (V, M) trained in order: collect, V, encode, M."""
        self.train_vae()
        self.train_mdn()
        return (
            VariationalAutoencoder(self.vae_config, params=self.vae_params),
            MDNRNN(self.mdn_config, params=self.mdn_params),
        )
