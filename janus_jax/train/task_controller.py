"""One env's controller on a shared world model: ``janus-jax train-controller
--env A --out DIR`` where DIR holds a world model of several envs.

The controller gets a run directory of its own, ``DIR/tasks/A`` (``run_dir.
task_dir``): its config.json is the shared run's acting in A (C's settings as
the command gives them), its agent checkpoint starts as the shared V and M
with a fresh C for A's actions, and the ordinary controller stage trains it
there, so ``janus-jax evaluate --run DIR/tasks/A`` and ``load_agent(DIR,
env="A")`` find it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from janus_jax.config.run import RunConfig, for_task
from janus_jax.parallel import DataParallel
from janus_jax.run.run_dir import (
    RunDirError,
    load_agent,
    load_config,
    task_dir,
    write_run,
)
from janus_jax.train import pipeline


def task_config(run_dir: str | Path, env_id: str | None) -> RunConfig:
    """Returns the shared run's config in ``run_dir`` acting in ``env_id``;
    raises ValueError naming the run's envs for a missing or unknown one."""
    shared = load_config(run_dir)
    if env_id is None:
        raise ValueError(
            f"{run_dir} holds a world model shared by {', '.join(shared.task_ids)}: "
            "pass --env, one of them"
        )
    return for_task(shared, env_id)


def train_task_controller(
    config: RunConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    parallel: DataParallel | None = None,
) -> dict:
    """Returns the summary of training ``config.env_id``'s controller on the
    shared world model in ``run_dir`` (``config``: ``task_config``'s, with C's
    settings changed as wanted), in ``task_dir(run_dir, config.env_id)``.

    resume continues it there; overwrite starts it anew from the shared world
    model; without either, a directory that holds one is continued only with
    the same config (as every stage command)."""
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints" / "agent").is_dir():
        raise RunDirError(
            f"{run_dir} has no trained world model: run `janus-jax "
            f"train-world-model --env ... --env ... --out {run_dir}` first"
        )
    shared = load_config(run_dir)
    if config.env_id not in shared.task_ids:
        for_task(shared, config.env_id)  # raises, naming the run's envs
    if (config.world_model, config.tasks) != (shared.world_model, shared.tasks):
        raise ValueError(
            "the controller's config must keep the shared run's world_model and "
            "tasks: change only the controller's settings"
        )
    own = task_dir(run_dir, config.env_id)
    if overwrite and own.exists():
        shutil.rmtree(own)
    if not (own / "config.json").exists():
        agent = load_agent(run_dir, env=config.env_id)  # shared V and M, fresh C
        write_run(own, agent, config, "world_model", parallel)
    return pipeline.run(
        config,
        own,
        stages=("controller",),
        resume=resume,
        progress=progress,
        parallel=parallel,
    )
