"""What ``WorldModelPPOTrainer`` runs under: its ControllerTrainingConfig from
the seed's keyword form, the check that a gymnasium env runs in one process,
and the ``ControlSetup`` (sizes, optimisers, dream reward) of one ``train``."""

from __future__ import annotations

import dataclasses
import math

import jax

from janus_jax import ppo
from janus_jax.config.models import PPOConfig
from janus_jax.config.renamed import new_names
from janus_jax.config.sizes import controller_sizes
from janus_jax.config.training import ControllerTrainingConfig
from janus_jax.optim import make_optimizer
from janus_jax.parallel import DataParallel
from janus_jax.train import control, rewards
from janus_jax.train.loop import whole_chunks


def check_multi_process_env(env_id: str, on_device: bool) -> None:
    """Raises ValueError for a gymnasium env (not ``on_device``) in a multi-process
    run: one host steps all of its envs."""
    if not on_device and jax.process_count() > 1:
        raise ValueError(
            f"{env_id} is a gymnasium env, stepped on one host: a multi-process "
            "run needs a gymnax env (several devices of one process are fine)"
        )


def training_config(training, fields: dict) -> ControllerTrainingConfig:
    """Returns ``training`` (default: ControllerTrainingConfig()) with the
    keyword form's ``fields`` set (a None value leaves a field as it is); an
    unknown keyword raises ValueError."""
    training = training or ControllerTrainingConfig()
    # Old field names (world_model_updates...) still work, with a warning.
    fields = new_names(type(training), fields, "WorldModelPPOTrainer: ", 3)
    names = {f.name for f in dataclasses.fields(training)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValueError(
            f"WorldModelPPOTrainer got unknown keywords {unknown}: the keyword form "
            f"takes ControllerTrainingConfig's fields ({', '.join(sorted(names))})"
        )
    given = {k: v for k, v in fields.items() if v is not None}
    return dataclasses.replace(training, **given) if given else training


def control_setup(
    t: ControllerTrainingConfig,
    config: PPOConfig,
    parallel: DataParallel,
    mdn_rnn_config,
    total_timesteps: int,
    rollout_length: int,
    dream_reward,
) -> tuple[control.ControlSetup, int]:
    """Returns (ControlSetup, number of updates rounded up to whole chunks) for
    ``total_timesteps`` real steps of ``rollout_length`` steps per env per
    update; ``mdn_rnn_config`` None: a model-free agent (no M, no dreams)."""
    model_free = mdn_rnn_config is None
    sizes = controller_sizes(
        t,
        config,
        parallel.size,
        world_model=not model_free,
        rollout_length=rollout_length,
    )
    _, updates = whole_chunks(
        math.ceil(total_timesteps / sizes.real), t.updates_per_chunk
    )
    grad_steps = updates * config.n_epochs * sizes.minibatches
    setup = control.ControlSetup(
        num_envs=t.num_envs,
        rollout_length=rollout_length,
        dream_starts=sizes.dream_starts,
        dream_from_replay=t.dream_from == "replay" and not model_free,
        imagination_horizon=t.imagination_horizon,
        temperature=1.0 if model_free else mdn_rnn_config.temperature,
        learn_from_real=t.learn_from_real,
        sequence_length=t.sequence_length,
        mdn_batch_size=t.mdn_batch_size,
        mdn_updates=0 if model_free else t.mdn_updates,
        vae_updates=0 if model_free else t.vae_updates,
        vae_batch_size=t.vae_batch_size,
        dream_updates=t.dream_updates,
        # V and M refresh with the same settings, each with its own optimiser.
        vae_optimizer=make_optimizer(t.world_model_learning_rate, 1.0),
        mdn_optimizer=make_optimizer(t.world_model_learning_rate, 1.0),
        ppo=config,
        controller_optimizer=ppo.optimizer(config, grad_steps),
        start_sharding=None if parallel.trivial else parallel.sharding(0, 1),
        dream_reward=dream_reward,
        reward_optimizer=rewards.optimizer(dream_reward, t),
    )
    rewards.check(setup, t)
    return setup, updates
