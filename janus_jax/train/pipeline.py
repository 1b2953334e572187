"""The whole run behind ``janus-jax train``: collect -> V and M -> C -> evaluation,
in one run directory:

    DIR/config.json            the RunConfig (load_agent rebuilds from it)
    DIR/data/                  the random-policy dataset
    DIR/checkpoints/{vae,mdn,controller}/   each phase's full training state
    DIR/checkpoints/agent/     the agent's parameters after each stage
    DIR/metrics.jsonl, DIR/tensorboard/, DIR/plots/, DIR/summary.json
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from janus_jax import pictures
from janus_jax.config.run import RunConfig
from janus_jax.config.sizes import check_run_sizes, fit_to_devices
from janus_jax.config.training import acting_as
from janus_jax.data import RolloutDataset
from janus_jax.diagnostics.evaluate import (
    MAX_EVAL_ENVS,
    episode_returns,
    evaluate_episodes,
    single_trajectory_notice,
)
from janus_jax.envs import EnvSpec, make, spec_of
from janus_jax.parallel import DataParallel
from janus_jax.run.checkpoint import read_json, write_json_atomic
from janus_jax.run.lock import RunDirLock
from janus_jax.run.metrics_log import MetricsLogger, read_metrics
from janus_jax.run.run_dir import (
    RunDirError,
    env_kwargs,
    evaluation_env,
    load_agent,
    new_agent,
    prepare_run_dir,
    save_agent,
)
from janus_jax.train.loop import PHASES, RunIO
from janus_jax.train.ppo_trainer import WorldModelPPOTrainer, check_multi_process_env
from janus_jax.train.shared_world_model import SharedWorldModelTrainer, resolve_tasks
from janus_jax.train.world_model import WorldModelTrainer, env_configs

STAGES = ("collect", "world_model", "controller", "evaluate")


def run(
    config: RunConfig,
    out: str | Path,
    *,
    stages: tuple[str, ...] = STAGES,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    dataset: str | Path | None = None,
    parallel: DataParallel | None = None,
) -> dict:
    """Returns the run's summary after running ``stages`` in ``out``.

    parallel: the devices to train on (default: all, of every process). In a
    multi-process run every process calls this with the same arguments and an
    ``out`` they all see; process 0 alone writes the config, logs, summary and
    pictures (all take part in the checkpoints)."""
    start = time.perf_counter()
    out = Path(out)
    par = parallel or DataParallel.create()
    config, spec = _resolved(config)
    config, rounded = fit_to_devices(config, par.size)
    if par.is_primary:
        for change in rounded:
            print(f"janus-jax: {change.line()}")
    fresh = stages[0] == "collect" or stages == STAGES
    if config.controller.features == "observation":
        # Model-free PPO: nothing to collect, no world model to train.
        stages = tuple(s for s in stages if s in ("controller", "evaluate"))
    _check_inputs(config, out, stages, dataset)
    _check_layout(config, spec, stages, par)
    existed = (out / "config.json").exists()
    par.barrier("janus-jax run dir checked")
    # One lock per run directory, held by process 0 for the whole run.
    lock = RunDirLock(out)
    par.on_primary(lock.acquire, "lock the run directory")
    logger = None
    try:
        continuing = par.on_primary(
            lambda: prepare_run_dir(
                out, config, resume=resume, overwrite=overwrite, fresh=fresh
            ),
            "prepare the run directory",
        )
        if not par.is_primary:
            continuing = existed and not overwrite  # what process 0 decided
        c = config.controller
        if par.is_primary:
            logger = MetricsLogger(
                out, use_tensorboard=c.use_tensorboard, resume=continuing
            )
        io = RunIO(
            run_dir=out,
            logger=logger,
            progress=progress and par.is_primary,
            resume=continuing,
        )
        rounding = {"devices": par.size, "changed": [r._asdict() for r in rounded]}
        return _run_stages(config, out, stages, io, dataset, start, par, rounding)
    finally:
        if logger is not None:
            logger.close()
        lock.release()


def _resolved(config: RunConfig) -> tuple[RunConfig, EnvSpec]:
    """Returns (the config with V's and M's architectures sized from the env where
    they are unset, so config.json is complete; the env's spec); an unknown env
    id or an observation V cannot take raises here, before anything is written."""
    if config.tasks:  # a shared world model: sized for every task
        return resolve_tasks(config)
    spec = spec_of(config.env_id, **config.env_kwargs)
    wm = config.world_model
    vae_config, mdn_config = env_configs(spec, wm.vae, wm.mdn_rnn)
    world_model = dataclasses.replace(wm, vae=vae_config, mdn_rnn=mdn_config)
    return dataclasses.replace(config, world_model=world_model), spec


def _check_layout(config: RunConfig, spec: EnvSpec, stages, par: DataParallel) -> None:
    """Raises ValueError (before anything is written) unless the run's global
    batches split evenly over the devices, and its env can be stepped by them."""
    if "controller" in stages:
        check_multi_process_env(config.env_id, spec.on_device)
    check_run_sizes(
        config,
        par.size,
        world_model="world_model" in stages,
        controller="controller" in stages,
    )


def _check_inputs(config: RunConfig, out: Path, stages, dataset) -> None:
    """Raises the errors a run would otherwise meet after creating ``out``."""
    if config.tasks and (dataset is not None or "evaluate" in stages):
        raise ValueError(
            f"a shared world model of {', '.join(config.task_ids)} collects each "
            "env's own dataset and is evaluated env by env (janus-jax evaluate "
            "--run DIR/tasks/ENV): no --dataset, no evaluate stage"
        )
    if dataset is not None:
        found = RolloutDataset(dataset).env_id
        if found != config.env_id:
            raise ValueError(
                f"the dataset at {dataset} holds {found!r} episodes, but this run "
                f"trains on {config.env_id!r}"
            )
    needs_world_model = config.controller.features == "world_model" and (
        "world_model" not in stages and ("controller" in stages or "evaluate" in stages)
    )
    if needs_world_model and not (out / "checkpoints" / "agent").is_dir():
        raise RunDirError(
            f"{out} has no trained world model: run `janus-jax train-world-model "
            f"--out {out}` first"
        )


def _run_stages(config, out, stages, io, dataset, start, par, rounding) -> dict:
    if config.tasks:
        wm = SharedWorldModelTrainer(config, io=io, parallel=par)
    else:
        wm = WorldModelTrainer(
            config.env_id,
            config.world_model,
            io=io,
            dataset=dataset,
            env_kwargs=config.env_kwargs,
            seed=config.seed,
            parallel=par,
        )
    summary_path = out / "summary.json"
    summary = read_json(summary_path, "summary") if summary_path.exists() else {}
    summary["device_rounding"] = rounding  # what fit_to_devices changed
    agent = new_agent(config, wm.spec)
    if "collect" in stages:
        wm.collect()
    if "world_model" in stages:
        wm.train_vae()
        wm.train_mdn()
        agent.vae.params, agent.mdn_rnn.params = wm.vae_params, wm.mdn_params
        save_agent(out, agent, "world_model", par)
        summary["final_losses"] = wm.metrics
        # the most bytes of dataset arrays held at once (max_resident_bytes caps it)
        summary["data_peak_bytes"] = wm.data_peak_bytes
        if config.tasks:  # each env's episodes, steps and share of V's frames
            summary["tasks"] = wm.task_rows()
    model_free = config.controller.features == "observation"
    fresh_controller = model_free and "controller" in stages  # nothing to load
    if ("controller" in stages or "evaluate" in stages) and not fresh_controller:
        agent = load_agent(out, par)
    if "controller" in stages:
        summary.update(_train_controller(config, agent, io, par))
        save_agent(out, agent, "controller", par)
    # Every process opens the dataset (collect() syncs them); only process 0
    # evaluates and writes, and the others wait for it to succeed or fail.
    data = wm.collect() if "evaluate" in stages and not model_free else None
    finished = par.on_primary(
        lambda: _finish(config, out, stages, io, start, wm, agent, summary, data),
        "evaluate the run and write its summary",
    )
    return summary if finished is None else finished


def _finish(config, out, stages, io, start, wm, agent, summary, data) -> dict:
    """Returns the summary after the evaluation, written with the pictures."""
    summary_path = out / "summary.json"
    if "evaluate" in stages:
        steps = summary.get("controller_env_steps", 0)
        summary.update(evaluate_run(config, agent, io, steps))
    summary.update(
        env_id=config.env_id,
        preset=config.preset,
        seed=config.seed,
        wall_time_s=summary.get("wall_time_s", 0.0) + time.perf_counter() - start,
    )
    random_steps = wm.collected_steps()
    summary["random_data_steps"] = random_steps
    summary["real_env_steps"] = random_steps + summary.get("controller_env_steps", 0)
    write_json_atomic(summary_path, summary)
    # Pictures come after the summary: a failure drawing them loses no numbers.
    if "evaluate" in stages:
        write_pictures(config, agent, data, out)
    return summary


def _train_controller(config: RunConfig, agent, io: RunIO, par) -> dict:
    c = config.controller
    if c.algorithm == "cmaes":
        from janus_jax.train import evolution  # evosax: imported only when used

        return evolution.train_controller(config, agent, io)
    env = make(config.env_id, **env_kwargs(config, c.num_envs))
    trainer = WorldModelPPOTrainer(
        agent, env, config.ppo, training=c, seed=config.seed, io=io, parallel=par
    )
    try:
        metrics = trainer.train()
    finally:
        trainer.close()
    return {
        "controller_env_steps": trainer.real_env_steps,
        "imagined_steps": trainer.imagined_steps,
        "imagination_ratio": c.imagination_ratio,
        "learn_from_real": c.learn_from_real,
        "controller_final_metrics": metrics,
    }


def evaluate_run(config: RunConfig, agent, io: RunIO, real_env_steps: int) -> dict:
    """Returns the evaluation fields of the summary: the controller's return
    (acting as ``eval_policy`` says) and how many of its episodes differ, and a
    random policy's return, over the same number of episodes. Episodes that were
    all one trajectory print a notice, unless the run printed it already."""
    c = config.controller
    key_agent, key_random = jax.random.split(jax.random.key(config.seed + 1))
    deterministic = acting_as(c.eval_policy)
    with evaluation_env(config, min(c.eval_episodes, MAX_EVAL_ENVS)) as env:
        evaluation = evaluate_episodes(
            key_agent,
            env,
            agent.params,
            c.eval_episodes,
            deterministic=deterministic,
            progress=io.progress,
        )
        rand = episode_returns(
            key_random, env, None, c.eval_episodes, progress=io.progress
        )
    io.notice("single_trajectory", single_trajectory_notice(evaluation, deterministic))
    ours = evaluation.returns
    result = {
        "eval_return_mean": float(np.mean(ours)),
        "eval_return_std": float(np.std(ours)),
        "eval_distinct_episodes": evaluation.distinct,
        "eval_episodes": int(c.eval_episodes),
        "eval_policy": c.eval_policy,
        "random_return_mean": float(np.mean(rand)),
        "random_return_std": float(np.std(rand)),
    }
    if io.logger is not None:  # an evaluation killed after its rows: drop them
        io.logger.rewind(PHASES, "eval", 0)
    logged = {
        "eval": ("return_mean", "return_std", "distinct_episodes"),
        "random": ("return_mean", "return_std"),
    }
    for who, names in logged.items():
        row = {f"{who}/{k}": result[f"{who}_{k}"] for k in names}
        io.log(who, c.eval_episodes, row, real_env_steps=real_env_steps)
    return result


def write_pictures(
    config: RunConfig, agent, dataset: RolloutDataset, out: Path, frames: int = 8
) -> list:
    """Returns the plot files written to ``out/plots``: reconstructions of
    ``frames`` random dataset frames (streamed, not the whole dataset loaded), a
    dream GIF and the learning curves."""
    plots = out / "plots"
    metrics = out / "metrics.jsonl"
    curves = pictures.learning_curves(read_metrics(metrics), plots, str(metrics))
    if agent.vae is None:  # model-free: no V to reconstruct with, no M to dream
        return curves
    real = next(dataset.frames(frames, config.seed))
    recon = np.asarray(pictures.reconstruct(agent.vae.params, real))
    if real.ndim == 4:
        k = _upscale(real)
        real, recon = (np.repeat(np.repeat(x, k, 1), k, 2) for x in (real, recon))
    written = [pictures.reconstruction_grid(real, recon, plots / "reconstructions.png")]
    written.append(dream_gif(config, agent, plots / "dream.gif"))
    return written + curves


def dream_gif(config: RunConfig, agent, path, *, temperature=None, steps=100):
    """Returns the path of a GIF: a real episode of C, V's reconstruction and M's
    open-loop dream of it, side by side."""
    key_episode, key_dream = jax.random.split(jax.random.key(config.seed + 2))
    with evaluation_env(config, 1) as env:
        frames, actions = pictures.record_episode(key_episode, env, agent.params, steps)
    tau = agent.mdn_rnn.config.temperature if temperature is None else temperature
    dreamed = pictures.open_loop_dream(
        key_dream, agent.params, frames[0], actions, np.float32(tau)
    )
    recon = pictures.reconstruct(agent.vae.params, frames)
    return pictures.dream_gif(
        frames,
        np.asarray(recon),
        np.asarray(dreamed),
        path,
        scale=max(2, _upscale(frames)),
    )


def _upscale(frames: np.ndarray) -> int:
    """Returns the factor that shows small images (MinAtar's 10x10) at ~64 px."""
    return 1 if frames.ndim != 4 else max(1, -(-64 // frames.shape[1]))
