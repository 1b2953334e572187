"""``janus-jax``'s commands: each takes the parsed arguments, does its work
through the library, prints its result and returns the exit status. A user's
mistake raises ValueError (or FileNotFoundError, CheckpointError,
DiskFullError), which ``janus_jax.cli.main`` turns into one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from janus_jax.cli.options import pipeline_options
from janus_jax.cli.parser import default_out, run_config, shared_envs

# The rest of janus-jax is imported inside the functions, after main has
# started a multi-process run's distributed runtime.


def _train(args) -> int:
    from janus_jax.cli import multitask
    from janus_jax.train import pipeline

    shared = multitask.train(args, shared_envs(args))
    if shared is not None:  # a world model shared by several envs
        return shared
    options = pipeline_options(args)
    config = run_config(args)
    out = Path(args.out or default_out(args))
    summary = pipeline.run(config, out, **options)
    if "eval_return_mean" in summary and args.command == "train":
        print(
            f"{config.env_id}: controller {summary['eval_return_mean']:.1f} +- "
            f"{summary['eval_return_std']:.1f} over {summary['eval_episodes']} "
            f"episodes, random policy {summary['random_return_mean']:.1f}; "
            f"{summary['real_env_steps']:,} real and {summary['imagined_steps']:,} "
            f"imagined steps in {summary['wall_time_s']:.0f} s -> {out}"
        )
    else:
        print(f"{args.command}: done -> {out}")
    return 0


def _evaluate(args) -> int:
    import jax

    from janus_jax.config.training import acting_as
    from janus_jax.diagnostics.evaluate import (
        MAX_EVAL_ENVS,
        evaluate_episodes,
        single_trajectory_notice,
    )
    from janus_jax.run import run_dir

    if args.episodes < 1:
        raise ValueError(f"--episodes={args.episodes} is invalid: must be >= 1")
    agent = run_dir.load_agent(args.run)
    config = run_dir.load_config(args.run)
    num_envs = min(args.episodes, MAX_EVAL_ENVS)
    policy = args.policy or config.controller.eval_policy
    with run_dir.evaluation_env(config, num_envs) as env:
        evaluation = evaluate_episodes(
            jax.random.key(args.seed),
            env,
            agent.params,
            args.episodes,
            deterministic=acting_as(policy),
        )
    result = {
        "env_id": config.env_id,
        "episodes": args.episodes,
        "policy": policy,
        "return_mean": float(np.mean(evaluation.returns)),
        "return_std": float(np.std(evaluation.returns)),
        "distinct_episodes": evaluation.distinct,
    }
    # stdout stays one JSON line for scripts; the notice is for the reader.
    notice = single_trajectory_notice(evaluation, policy != "sample")
    if notice:
        print(notice, file=sys.stderr)
    print(json.dumps(result))
    return 0


def _dream(args) -> int:
    from janus_jax.run import run_dir
    from janus_jax.train import pipeline

    if not args.gif.endswith(".gif"):
        raise ValueError(f"--gif={args.gif} is invalid: must name a .gif file")
    if args.temperature is not None and args.temperature < 0:
        raise ValueError(f"--temperature={args.temperature} is invalid: must be >= 0")
    if args.steps < 1:
        raise ValueError(f"--steps={args.steps} is invalid: must be >= 1")
    agent = run_dir.load_agent(args.run)
    if agent.mdn_rnn is None:
        raise ValueError(f"{args.run} is a model-free run: it has no dream")
    config = run_dir.load_config(args.run)
    path = pipeline.dream_gif(
        config, agent, args.gif, temperature=args.temperature, steps=args.steps
    )
    print(f"dream: wrote {path}")
    return 0


def _gap(args) -> int:
    import jax

    from janus_jax.diagnostics import gap
    from janus_jax.run import run_dir
    from janus_jax.run.files import write_json

    for name in ("steps", "envs"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name}={getattr(args, name)} is invalid: must be >= 1")
    agent = run_dir.load_agent(args.run)
    if agent.mdn_rnn is None:
        raise ValueError(f"{args.run} is a model-free run: it has no dream")
    config = run_dir.load_config(args.run)
    with run_dir.evaluation_env(config, args.envs) as env:
        report = gap.measure(
            jax.random.key(args.seed),
            env,
            agent.params,
            args.steps,
            policy=args.policy or config.controller.eval_policy,
        )
    path = write_json(Path(args.run) / "gap.json", report)
    print(json.dumps(report))
    print(f"gap: wrote {path}", file=sys.stderr)
    return 0


def _config(args) -> int:
    from janus_jax.config import presets
    from janus_jax.config.run import describe

    print("\n".join(describe(presets.preset(args.preset))))
    return 0
