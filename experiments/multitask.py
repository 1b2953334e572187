"""Shared against separate world models (issue 24): one V and M trained on
several envs' random episodes, against each env's own V and M trained on that
env's part of the same data, compared by ``janus-jax gap``'s open-loop error
of M at horizons 1, 10 and 50 in each env and, with ``--controller-steps N``,
by the return of a C trained for N real steps on each world model.

    python experiments/multitask.py --out runs/multitask --steps 8000
    python experiments/multitask.py --envs Breakout-MinAtar Asterix-MinAtar \
        --image-size 0 --preset breakout --controller-steps 250000 --out runs/mt

The first pair (CartPole-v1 and Pendulum-v1) is seen through 32x32 frames of
each env's render; ``--image-size 0`` keeps the envs' own observations, which
must have one shape (MinAtar games with the same channels).

Both world models have the same sizes (V, M's LSTM and mixtures) and about the
same number of gradient steps (an env's own V and M take more epochs over its
part of the data); only M's action input differs (the shared vector of
``config/tasks.py`` against the env's own). Latents of two Vs are not
comparable, so the table compares V's decoding of M's prediction with the real
frame (frame MSE, pixels in [0, 1]), with the copy-the-last-frame baseline.
The gap drives each env with a fresh C (sampled actions, near uniform), the
same weights in both agents. Each C is scored over 16 episodes, sampling its
actions, on the same episodes' seeds for both world models.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
from options import add_overrides

from janus_jax.config import presets
from janus_jax.config.run import RunConfig, apply_overrides, to_dict
from janus_jax.config.tasks import TaskConfig, env_dir_name
from janus_jax.diagnostics import gap
from janus_jax.diagnostics.evaluate import evaluate_episodes
from janus_jax.envs import spec_of
from janus_jax.run.checkpoint import write_json_atomic
from janus_jax.run.run_dir import evaluation_env, load_agent
from janus_jax.train import pipeline
from janus_jax.train.shared_world_model import resolve_tasks
from janus_jax.train.task_controller import train_task_controller

PIXEL_ENVS = ("CartPole-v1", "Pendulum-v1")


def base_config(args) -> RunConfig:
    """Returns the shared run's config. With ``--image-size N`` (the default
    pair): the cartpole preset's schedule with a small convolutional V and M
    for NxN frames of every env. With ``--image-size 0``: the envs' own
    observations (one shape for all: MinAtar games with the same channels) and
    ``--preset``'s V, M and schedule, sized for the tasks as
    ``train-world-model --env A --env B`` sizes them."""
    size = args.image_size
    schedule = [
        ("world_model.random_steps", args.steps),
        ("world_model.vae_epochs", args.vae_epochs),
        ("world_model.mdn_epochs", args.mdn_epochs),
    ]
    sets = [f"{k}={v}" for k, v in schedule if v is not None]
    if size:
        sets += [
            "world_model.collect_envs=8",
            "world_model.vae=null",
            "world_model.mdn_rnn=null",
            "world_model.sequence_length=32",
        ]
    sets += [
        f"controller.total_timesteps={max(args.controller_steps, 1)}",
        "controller.eval_episodes=16",
        *args.overrides,
    ]
    config = apply_overrides(presets.preset(args.preset), sets)
    env_kwargs = {"family": "gymnasium", "observation": "pixels"}
    config = dataclasses.replace(
        config,
        preset="experiments/multitask",
        seed=args.seed,
        env_kwargs={**env_kwargs, "image_size": [size, size]} if size else {},
        env_id=args.envs[0],
        tasks=tuple(TaskConfig(env_id=e, share=1 / len(args.envs)) for e in args.envs),
    )
    # The V and M the shared run derives (with --image-size, smaller for the CPU).
    config, _ = resolve_tasks(config)
    if not size:
        return config
    wm = config.world_model
    vae = dataclasses.replace(wm.vae, latent_dim=16, hidden_channels=(16, 32, 64))
    mdn = dataclasses.replace(wm.mdn_rnn, latent_dim=16, hidden_dim=64)
    return dataclasses.replace(
        config, world_model=dataclasses.replace(wm, vae=vae, mdn_rnn=mdn)
    )


def own_config(shared: RunConfig, env_id: str, frame_share: float) -> RunConfig:
    """Returns the config of ``env_id``'s own world model: the shared run's
    sizes, M taking that env's actions only, and epochs divided by the env's
    share of the shared run's frames, so both take about as many gradient
    steps (V exactly; M's windows split about as the frames do)."""
    action = spec_of(env_id, **shared.env_kwargs).action
    mdn = dataclasses.replace(shared.world_model.mdn_rnn, action_dim=action.dim)
    wm = shared.world_model
    wm = dataclasses.replace(
        wm,
        mdn_rnn=mdn,
        vae_epochs=wm.vae_epochs / frame_share,
        mdn_epochs=wm.mdn_epochs / frame_share,
    )
    return dataclasses.replace(shared, env_id=env_id, tasks=(), world_model=wm)


def open_loop(agent, config: RunConfig, args) -> dict:
    """Returns gap.measure's open-loop errors of the agent in its env."""
    with evaluation_env(config, 4) as env:
        report = gap.measure(
            jax.random.key(args.seed),
            env,
            agent.params,
            args.gap_steps,
            temperatures=(1.0,),
            policy="sample",
        )
    return report["open_loop"]


def controller_return(agent, config: RunConfig, args) -> float:
    with evaluation_env(config, 8) as env:
        result = evaluate_episodes(
            jax.random.key(args.seed + 1), env, agent.params, 16, deterministic=False
        )
    return float(np.mean(result.returns))


def _made(run_dir: Path) -> bool:
    return (run_dir / "config.json").exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/multitask")
    parser.add_argument("--envs", nargs="+", default=list(PIXEL_ENVS))
    parser.add_argument(
        "--image-size",
        type=int,
        default=32,
        help="frames NxN from each env's render; 0: the envs' own observations",
    )
    parser.add_argument(
        "--preset", default="cartpole", help="V, M and C's recipe (with --image-size 0)"
    )
    parser.add_argument("--steps", type=int, help="random steps, all envs together")
    parser.add_argument("--vae-epochs", type=float)
    parser.add_argument("--mdn-epochs", type=float)
    parser.add_argument("--gap-steps", type=int, default=500)
    parser.add_argument("--controller-steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    add_overrides(
        parser, "change both world models' config (repeatable), e.g. C's settings"
    )
    args = parser.parse_args()
    if args.image_size:  # the pixel pair's schedule, unless given
        for name, value in (("steps", 8000), ("vae_epochs", 10), ("mdn_epochs", 20)):
            if getattr(args, name) is None:
                setattr(args, name, value)
    out = Path(args.out)
    shared = base_config(args)
    shared_dir = out / "shared"
    pipeline.run(shared, shared_dir, stages=("world_model",), resume=_made(shared_dir))
    results = {"config": to_dict(shared), "envs": {}}
    summary = json.loads((shared_dir / "summary.json").read_text())
    for env_id in args.envs:
        own = own_config(shared, env_id, summary["tasks"][env_id]["frame_share"])
        own_dir = out / env_dir_name(env_id)
        data = shared_dir / "data" / env_dir_name(env_id)
        pipeline.run(
            own, own_dir, stages=("world_model",), resume=_made(own_dir), dataset=data
        )
        task = dataclasses.replace(shared, env_id=env_id)
        row = {
            "shared": open_loop(load_agent(shared_dir, env=env_id), task, args),
            "own": open_loop(load_agent(own_dir), own, args),
        }
        if args.controller_steps:
            train_task_controller(task, shared_dir, resume=True, progress=False)
            pipeline.run(own, own_dir, stages=("controller",), resume=True)
            for name, agent in (
                ("shared", load_agent(shared_dir, env=env_id)),
                ("own", load_agent(own_dir)),
            ):
                row[f"{name}_return"] = controller_return(agent, task, args)
        results["envs"][env_id] = row
        print(json.dumps({env_id: row}))
    write_json_atomic(out / "multitask.json", results)
    print(table(results))


def table(results: dict) -> str:
    """Returns the markdown table of frame MSE per env, horizon and model."""
    lines = [
        "| env | horizon | shared M | own M | copy last frame | starts |",
        "|---|---|---|---|---|---|",
    ]
    for env_id, row in results["envs"].items():
        for k, shared in row["shared"].items():
            own = row["own"][k]
            if "frame_mse" not in shared or "frame_mse" not in own:
                lines.append(f"| {env_id} | {k} | no window | no window | | 0 |")
                continue
            lines.append(
                f"| {env_id} | {k} | {shared['frame_mse']:.5f} | "
                f"{own['frame_mse']:.5f} | {shared['frame_mse_copy_last']:.5f} | "
                f"{shared['starts']} / {own['starts']} |"
            )
        if "shared_return" in row:
            lines.append(
                f"| {env_id} | C's return | {row['shared_return']:.1f} | "
                f"{row['own_return']:.1f} | | |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
