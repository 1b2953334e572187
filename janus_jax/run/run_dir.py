"""A run directory: its config.json, the run-identity checks that guard it, and
the agent checkpoint that ``load_agent`` rebuilds an agent from."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import jax

from janus_jax.agent import WorldModelAgent
from janus_jax.config.architecture import default_configs
from janus_jax.config.run import RunConfig, for_task, from_dict, to_dict
from janus_jax.config.tasks import env_dir_name
from janus_jax.envs import env_source, make, spec_of
from janus_jax.envs.custom import recorded_env
from janus_jax.envs.factory import evaluation_kwargs
from janus_jax.envs.preprocess import as_crop
from janus_jax.parallel import DataParallel
from janus_jax.run.checkpoint import PhaseCheckpoints, read_json, write_json_atomic
from janus_jax.run.files import leftover_temps

# What a run writes; --overwrite removes exactly these, nothing else in DIR.
RUN_FILES = (
    "config.json",
    "data",
    "checkpoints",
    "metrics.jsonl",
    "tensorboard",
    "plots",
    "summary.json",
)


class RunDirError(ValueError):
    """The output directory holds another run, or not the run a stage needs."""


def prepare_run_dir(
    out: Path, config: RunConfig, *, resume: bool, overwrite: bool, fresh: bool
) -> bool:
    """Returns whether the run continues an existing one in ``out``.

    fresh: the command starts a run (``train``, ``collect``), so a directory
    holding a run is refused unless ``resume`` (same config) or ``overwrite``.
    Stage commands (fresh=False) continue the run in ``out`` with its config."""
    config_path = out / "config.json"
    if config_path.exists() and overwrite:
        for name in RUN_FILES:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    if not config_path.exists():
        if not fresh and resume:
            raise RunDirError(f"--resume: {out} holds no run to resume")
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config_path, to_dict(config))
        return False
    if fresh and not resume:
        raise RunDirError(
            f"{out} already holds a run: pass --resume to continue it, "
            "--overwrite to replace it, or another --out"
        )
    # Read through RunConfig, so a field added since the run was made counts at
    # its default (a run of an older version resumes if it ran as this one would).
    saved = to_dict(from_dict(RunConfig, read_json(config_path, "run config")))
    # Adding or dropping TensorBoard files does not change what the run computes.
    saved.get("controller", {}).pop("use_tensorboard", None)
    current = to_dict(config)
    current["controller"].pop("use_tensorboard", None)
    differences = _differences(saved, current)
    if differences:
        raise RunDirError(
            f"{out} holds a run with another config ({'; '.join(differences[:3])}): "
            "use another --out, or --overwrite"
        )
    # The run continues and the lock is held: a temporary file is what a killed
    # writer left. (A refused run is left as it was.)
    for leftover in leftover_temps(out):
        leftover.unlink(missing_ok=True)
    return True


def _differences(a, b, prefix="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} there, {b!r} here"]


def load_config(run_dir: str | Path) -> RunConfig:
    """Returns the RunConfig saved in ``run_dir/config.json``."""
    return from_dict(RunConfig, read_json(Path(run_dir) / "config.json", "run config"))


def new_agent(config: RunConfig, env_spec) -> WorldModelAgent:
    """Returns a freshly initialised agent for the run's configs and env (the
    env's spec may be None in a shared run, whose config records its actions)."""
    wm = config.world_model
    if env_spec is None:
        action = config.tasks[config.task_ids.index(config.env_id)].action
    else:
        action = env_spec.action
    return WorldModelAgent(
        wm.vae.observation_shape,
        action.dim,
        action.continuous,
        controller_config=config.network,
        vae_config=wm.vae,
        mdn_rnn_config=wm.mdn_rnn,
        action_low=action.low,
        action_high=action.high,
        seed=config.seed,
        features=config.controller.features,
        task=config.task_slot,
    )


def save_agent(
    run_dir: Path, agent: WorldModelAgent, stage: str, parallel: DataParallel
) -> None:
    """Returns None once the agent's params are the run's newest agent checkpoint
    (every process of a multi-process run calls it; orbax writes once)."""
    with PhaseCheckpoints(run_dir / "checkpoints" / "agent") as checkpoints:
        step = (checkpoints.latest_step() or 0) + 1
        checkpoints.save(step, parallel.replicate(agent.params), {"stage": stage})


def task_dir(run_dir: str | Path, env_id: str) -> Path:
    """Returns where a shared run keeps ``env_id``'s controller: a run directory
    of its own (config.json acting in that env, C's checkpoints)."""
    return Path(run_dir) / "tasks" / env_dir_name(env_id)


def load_agent(
    path: str | Path, parallel: DataParallel | None = None, env: str | None = None
) -> WorldModelAgent:
    """Returns the trained agent of a run directory, rebuilt from its config.json
    and its latest agent checkpoint (after the world model, or after C).

    parallel: the layout every process of a multi-process run reads it into
    (default: this process's first device; a no-op in a single-process run).
    env: in a shared (multi-task) run, the env to act in (default: the run's
    env_id): its trained controller where ``train-controller --env`` made one,
    else the shared V and M with a fresh C; a run of one env takes only its env.
    """
    parallel = parallel or DataParallel.create(jax.local_devices()[:1])
    run_dir = Path(path)
    config = load_config(run_dir)
    if config.tasks:
        config = for_task(config, env or config.env_id)
        own = task_dir(run_dir, config.env_id)
        if (own / "config.json").exists():
            return load_agent(own, parallel)
    elif env is not None and env != config.env_id:
        for_task(config, env)  # raises, naming the run's env
    agent = new_agent(config, spec_of(config.env_id, **env_kwargs(config)))
    # The checkpoint's C acts in the run's own env: restore into that shape.
    saved = load_config(run_dir)
    target = agent if saved.env_id == config.env_id else new_agent(saved, None)
    with PhaseCheckpoints(run_dir / "checkpoints" / "agent") as checkpoints:
        params, _ = checkpoints.restore(parallel.replicate(target.params))
    params = parallel.local(params)
    if agent.vae is not None:  # a model-free run has neither V nor M
        agent.vae.params, agent.mdn_rnn.params = params.vae, params.mdn_rnn
    if target is agent:
        agent.controller.params = params.controller
    agent.run_config = config
    agent.crop = as_crop(config.env_kwargs.get("crop"))
    return agent


def agent_config(
    agent: WorldModelAgent,
    env_id: str,
    env_kwargs: dict,
    *,
    seed: int,
    base: RunConfig | None = None,
    **sections,
) -> RunConfig:
    """Returns the RunConfig ``load_agent`` rebuilds ``agent`` from: ``base``'s
    sections (default: RunConfig's), the given ``sections`` (world_model, ppo,
    controller), the env and seed, and the agent's own architectures (V's and
    M's sizes, C's network and features)."""
    base = base or RunConfig(env_id=env_id)
    world_model = sections.pop("world_model", base.world_model)
    controller = sections.pop("controller", base.controller)
    if agent.vae is None:  # V's and M's sizes as a model-free run records them
        vae_config, mdn_config = default_configs(
            agent.observation_shape, agent.action_spec, None, None
        )
    else:
        vae_config, mdn_config = agent.vae.config, agent.mdn_rnn.config
    return dataclasses.replace(
        base,
        env_id=env_id,
        env_kwargs=dict(env_kwargs),
        seed=seed,
        network=agent.controller_config,
        world_model=dataclasses.replace(
            world_model, vae=vae_config, mdn_rnn=mdn_config
        ),
        controller=dataclasses.replace(controller, **_features(agent, controller)),
        **sections,
    )


def _features(agent: WorldModelAgent, controller) -> dict:
    """Returns the controller fields that record the agent's features (a
    model-free one dreams nothing, as its config must say)."""
    if agent.features == "observation":
        return dict(features="observation", imagination_ratio=0.0, learn_from_real=True)
    return dict(features=agent.features)


def write_run(
    run_dir: str | Path,
    agent: WorldModelAgent,
    config: RunConfig,
    stage: str,
    parallel: DataParallel | None = None,
) -> Path:
    """Returns ``run_dir`` once it holds ``config`` as config.json (the form
    ``janus-jax train`` writes) and ``agent``'s params as its newest agent
    checkpoint; raises ValueError if the config's env would rebuild another
    agent (another observation shape or action space)."""
    run_dir = Path(run_dir)
    parallel = parallel or DataParallel.create(jax.local_devices()[:1])
    try:
        as_json = to_dict(config)
    except TypeError as err:
        raise ValueError(
            f"env_kwargs={config.env_kwargs!r} is invalid for config.json: "
            f"every value must be JSON data ({err})"
        ) from None
    check_rebuilds(config.env_id, config.env_kwargs, agent)
    agent.run_config = config

    def write_config():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_dir / "config.json", as_json)

    parallel.on_primary(write_config, "write config.json")
    parallel.barrier("janus-jax config.json written")
    save_agent(run_dir, agent, stage, parallel)
    return run_dir


def check_rebuilds(env_id: str, env_kwargs: dict, agent: WorldModelAgent) -> None:
    """Raises ValueError unless ``make(env_id, **env_kwargs)`` gives an env the
    agent acts in (its observation shape and action space): what ``load_agent``
    rebuilds the agent for."""
    spec = spec_of(env_id, **env_kwargs)
    if spec.observation_shape != agent.observation_shape:
        raise ValueError(
            f"{env_id} observes shape {spec.observation_shape}; the agent "
            f"takes {agent.observation_shape}: pass the env it acts in"
        )
    if spec.action != agent.action_spec:
        raise ValueError(
            f"{env_id}'s actions {spec.action} differ from the agent's "
            f"{agent.action_spec}: make the agent with the env's action space"
        )


def save_run(path: str | Path, agent: WorldModelAgent, env=None) -> Path:
    """Returns ``path`` once ``agent.save`` has written it (see there); a
    directory holding another run's config.json is refused, naming a field
    that differs."""
    if env is None and agent.run_config is None:
        raise ValueError(
            "env=None: the agent was neither loaded nor trained, so the env it "
            "acts in is unknown; pass env= (an id or the env)"
        )
    config = agent.run_config
    if env is not None:
        # An unregistered env instance is recorded by its class path and the
        # arguments it was made with, not by its class path alone.
        env_id, kwargs = recorded_env(*env_source(env))
        if config is None or (config.env_id, config.env_kwargs) != (env_id, kwargs):
            config = agent_config(agent, env_id, kwargs, seed=agent.seed, base=config)
    config_path = Path(path) / "config.json"
    if config_path.exists():
        found = to_dict(load_config(path))
        differences = _differences(found, to_dict(config))
        if differences:
            raise RunDirError(
                f"{path} holds another run ({'; '.join(differences[:3])}): save "
                "the agent to another directory"
            )
    return write_run(path, agent, config, "save")


def env_kwargs(
    config: RunConfig, num_envs: int | None = None, evaluation: bool = False
) -> dict:
    """Returns make's kwargs for the run's env, with ``num_envs`` envs;
    ``evaluation`` leaves out the training-only episode options."""
    kwargs = dict(config.env_kwargs)
    if evaluation:
        kwargs = evaluation_kwargs(kwargs)
    if num_envs is not None:
        kwargs["num_envs"] = num_envs
    return kwargs


def evaluation_env(config: RunConfig, num_envs: int):
    """Returns ``num_envs`` of the run's env as evaluations see them (no
    training-only episode options); close it, or use it in a ``with``."""
    return make(config.env_id, **env_kwargs(config, num_envs, evaluation=True))
