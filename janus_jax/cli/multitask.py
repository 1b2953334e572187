"""``janus-jax``'s shared (multi-task) world model: ``train-world-model --env A
--env B`` trains one V and M on both envs' episodes, and ``train-controller
--env A --out DIR`` trains A's controller on it (``docs/guides/multitask.md``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from janus_jax.cli.options import pipeline_options, renames_on_stderr
from janus_jax.cli.parser import env_dir_name, run_config


def train(args, envs: list[str]) -> int | None:
    """Returns the exit status of a shared-world-model command, or None when
    the command is an ordinary run of one env."""
    if len(envs) > 1:
        if args.command != "train-world-model":
            raise ValueError(
                f"janus-jax {args.command} takes one --env (got {', '.join(envs)}); "
                "a world model shared by several: janus-jax train-world-model "
                "--env A --env B --out DIR, then train-controller --env A --out DIR"
            )
        return _train_world_model(args, envs)
    if args.command == "train-controller" and args.out and _is_shared(args.out):
        return _train_controller(args)
    return None


def shared_models(config) -> str:
    """Returns the line naming a shared run's V and M and M's action vector."""
    from janus_jax.config.run import models_line

    m = config.world_model.mdn_rnn
    kind = {True: "continuous", False: "one-hot"}
    slots = ", ".join(
        f"{t.env_id}: {t.action.dim} {kind[t.action.continuous]}" for t in config.tasks
    )
    vector = (
        f"a {m.action_dim}-dim action vector ({slots}, then {len(config.tasks)} "
        "task ids)"
    )
    return models_line(config.world_model.vae, m, vector)


def _is_shared(out: str) -> bool:
    from janus_jax.run.run_dir import load_config

    return (Path(out) / "config.json").exists() and bool(load_config(out).tasks)


def _train_world_model(args, envs: list[str]) -> int:
    from janus_jax.cli.parser import _check_env
    from janus_jax.config.tasks import TaskConfig
    from janus_jax.run.run_dir import load_config
    from janus_jax.train import pipeline

    twice = sorted({e for e in envs if envs.count(e) > 1})
    if twice:
        raise ValueError(f"--env {twice[0]} is given twice: give each env once")
    for env in envs[1:]:
        _check_env(env)
    _pixels_where_kinds_differ(args, envs)
    options = pipeline_options(args)
    # the preset (or the first env's recipe), --set; V and M are sized for the
    # tasks when the run starts, so the first env's sizes are not announced
    config = run_config(args, say_rederived=False)
    tasks = tuple(TaskConfig(env_id=e, share=1 / len(envs)) for e in envs)
    config = dataclasses.replace(config, tasks=tasks)
    out = Path(args.out or "runs/" + "+".join(env_dir_name(e) for e in envs))
    summary = pipeline.run(config, out, **options)
    rows = ", ".join(
        f"{env} {row['episodes']} episodes" for env, row in summary["tasks"].items()
    )
    print(f"train-world-model: one V and M shared by {rows} -> {out}")
    print(f"train-world-model: {shared_models(load_config(out))}")
    return 0


# Every env observed through its render (64x64 frames: GymnasiumEnv's default).
PIXELS = {"observation": "pixels", "family": "gymnasium"}


def _pixels_where_kinds_differ(args, envs: list[str]) -> None:
    """Where the envs observe different things (shapes or dtypes) and neither
    --preset nor --set env_kwargs says how to observe them, sets every env to be
    observed through its render, so one V takes them all (the pixels recipe),
    and says so; an env gymnasium cannot render raises a one-line ValueError."""
    import json

    from janus_jax.cli.parser import env_kwargs_overrides
    from janus_jax.train.shared_world_model import task_spec

    if args.preset is not None or env_kwargs_overrides(args.overrides):
        return
    kinds = {}
    for env in envs:
        spec = task_spec(env, {})
        kinds[env] = f"{spec.observation_shape} {spec.observation_dtype}"
    if len(set(kinds.values())) == 1:
        return
    observed = ", ".join(f"{env} {kind}" for env, kind in kinds.items())
    for env in envs:
        try:
            task_spec(env, PIXELS)
        except ValueError as err:
            raise ValueError(
                f"the envs observe different things ({observed}), so each would be "
                f"observed through its render, but {err}: give envs whose "
                "observations are alike, or envs gymnasium renders"
            ) from None
    args.overrides = [*args.overrides, f"env_kwargs={json.dumps(PIXELS)}"]
    print(
        f"train-world-model: the envs observe different things ({observed}): each "
        "is observed through its render, 64x64 frames (--set env_kwargs=... to "
        "choose otherwise)"
    )


def _train_controller(args) -> int:
    from janus_jax.config.overrides import apply_overrides
    from janus_jax.run.run_dir import task_dir
    from janus_jax.train.task_controller import task_config, train_task_controller

    if args.preset is not None:
        raise ValueError(
            f"--preset {args.preset} is invalid here: {args.out} holds a shared "
            "world model, whose config the controller takes (change C with --set)"
        )
    options = pipeline_options(args)
    config = task_config(args.out, args.env)
    with renames_on_stderr(f"janus-jax {args.command}"):
        config = apply_overrides(config, args.overrides)
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.tensorboard:
        controller = dataclasses.replace(config.controller, use_tensorboard=True)
        config = dataclasses.replace(config, controller=controller)
    train_task_controller(
        config,
        args.out,
        resume=options["resume"],
        overwrite=options["overwrite"],
        progress=options["progress"],
    )
    own = task_dir(args.out, config.env_id)
    print(f"train-controller: {config.env_id} on the shared world model -> {own}")
    return 0
