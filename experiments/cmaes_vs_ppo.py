"""C by CMA-ES (the paper's controller) against C by PPO, on one world model per
seed: the preset's collection, V and M are trained once, then copied, and each
arm trains its C from the same V and M and is evaluated the same way.

    python experiments/cmaes_vs_ppo.py --preset cartpole --seeds 0 1 2

Arms: ``ppo`` (the preset's controller phase), ``cmaes-dream`` (a linear C on
[z, h] searched inside M's dreams, no real step), ``cmaes-both`` (the same
search, the mean after every 10 generations scored on 8 real episodes and the
best of those kept: dream to search, real to select) and ``cmaes-real`` (the
search scored on real episodes). The table gives each arm's evaluation, the
controller phase's wall time and its real env steps, per seed and as a mean;
the arms' budgets are set so that their controller phases take about the same
wall time on a 2-core CPU (the table says how long each took).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from options import add_overrides

from janus_jax.config import presets
from janus_jax.config.run import apply_overrides, to_dict
from janus_jax.envs import spec_of
from janus_jax.parallel import DataParallel
from janus_jax.run import run_dir
from janus_jax.run.checkpoint import write_json_atomic
from janus_jax.train import pipeline
from janus_jax.train.loop import PHASES

# The phases of a run that make its world model (its data, V and M): those
# before C's.
WORLD_MODEL_PHASES = PHASES[: PHASES.index("controller")]
# What a finished run holds beyond its world model: C's checkpoints, the
# evaluation's summary, the pictures and TensorBoard's copy of the log.
BEYOND_WORLD_MODEL = ("controller", "summary.json", "plots", "tensorboard")

LINEAR_C = ["network.layer_sizes=[]", "controller.algorithm=cmaes"]
ARMS = {
    "ppo": [],
    "cmaes-dream": LINEAR_C
    + [
        "controller.cmaes.fitness=dream",
        "controller.cmaes.population=16",
        "controller.cmaes.rollouts=32",
        "controller.cmaes.horizon=500",
        "controller.cmaes.generations=150",
        "controller.cmaes.generations_per_chunk=10",
    ],
    "cmaes-both": LINEAR_C
    + [
        "controller.cmaes.fitness=both",
        "controller.cmaes.population=16",
        "controller.cmaes.rollouts=32",
        "controller.cmaes.horizon=500",
        "controller.cmaes.generations=150",
        "controller.cmaes.generations_per_chunk=10",
        "controller.cmaes.select_episodes=8",
    ],
    "cmaes-real": LINEAR_C
    + [
        "controller.cmaes.fitness=real",
        "controller.cmaes.population=16",
        "controller.cmaes.rollouts=8",
        "controller.cmaes.generations=25",
        "controller.cmaes.generations_per_chunk=5",
    ],
}


def with_fresh_controller(out: Path, config) -> None:
    """Returns None once ``out`` (a copy of a world-model run) is a run of
    ``config``: its config.json rewritten (the world-model sections are the
    same; the controller's and C's network are the arm's) and its agent
    checkpoint holding the trained V and M with C freshly initialised for the
    arm's network (the copied C was never trained)."""
    trained = run_dir.load_agent(out)
    agent = run_dir.new_agent(config, spec_of(config.env_id, **config.env_kwargs))
    agent.vae.params, agent.mdn_rnn.params = trained.vae.params, trained.mdn_rnn.params
    shutil.rmtree(out / "checkpoints" / "agent")
    write_json_atomic(out / "config.json", to_dict(config))
    run_dir.save_agent(out, agent, "world_model", DataParallel.create())


def copy_world_model(run: Path, out: Path, preset: str, seed: int) -> None:
    """Copies the world model of a finished (or world-model-only) run ``run``
    into ``out``: its data, V and M with their checkpoints and log rows, and not
    its C, summary or pictures, so each arm starts from the same V and M.
    Raises ValueError naming what differs where ``run`` is not a run of
    ``preset`` and ``seed``, or has no trained world model."""
    config = json.loads((run / "config.json").read_text())
    for name, want in (("preset", preset), ("seed", seed)):
        if config.get(name) != want:
            raise ValueError(
                f"--world-model {run}: its {name} is {config.get(name)!r}, not "
                f"{want!r} (--preset, --seeds)"
            )
    if not (run / "checkpoints" / "agent").is_dir():
        raise ValueError(f"--world-model {run}: it holds no trained world model yet")
    shutil.copytree(run, out, ignore=shutil.ignore_patterns(*BEYOND_WORLD_MODEL))
    log = out / "metrics.jsonl"
    rows = [line for line in log.read_text().splitlines(keepends=True) if line]
    kept = [r for r in rows if json.loads(r)["phase"] in WORLD_MODEL_PHASES]
    log.write_text("".join(kept))


def run_arm(
    preset: str,
    seed: int,
    arm: str,
    world_model: Path,
    out: Path,
    extra: tuple[str, ...] = (),
) -> dict:
    """Returns the arm's result, training it unless ``out`` holds it; ``extra``
    overrides (KEY=VALUE) apply after the arm's own."""
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(world_model, out)
    overrides = [f"seed={seed}", *ARMS[arm], *extra]
    config = apply_overrides(presets.preset(preset), overrides)
    with_fresh_controller(out, config)
    tic = time.perf_counter()
    summary = pipeline.run(
        config, out, stages=("controller", "evaluate"), resume=True, progress=False
    )
    seconds = time.perf_counter() - tic
    result = {
        "arm": arm,
        "seed": seed,
        "eval_return_mean": summary["eval_return_mean"],
        "eval_policy": config.controller.eval_policy,
        "controller_and_eval_s": seconds,
        "controller_env_steps": summary["controller_env_steps"],
        "imagined_steps": summary["imagined_steps"],
    }
    result_path.write_text(json.dumps(result, indent=1))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cartpole")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("runs/cmaes_vs_ppo"))
    parser.add_argument(
        "--world-model",
        type=Path,
        metavar="RUN",
        help="start every arm from this run's V and M (a `janus-jax train` run "
        "of --preset with the one seed in --seeds) instead of training them",
    )
    add_overrides(
        parser,
        "a config override for every arm, after the arm's own (e.g. "
        "controller.cmaes.horizon=250 for CarRacing's 250-decision episodes)",
    )
    args = parser.parse_args(argv)
    if args.world_model is not None and len(args.seeds) != 1:
        parser.error(f"--world-model takes one seed; --seeds has {args.seeds}")
    results = []
    for seed in args.seeds:
        world_model = args.out / args.preset / f"seed-{seed}" / "world-model"
        if args.world_model is not None and not world_model.exists():
            copy_world_model(args.world_model, world_model, args.preset, seed)
        if not (world_model / "checkpoints" / "agent").is_dir():
            config = apply_overrides(presets.preset(args.preset), [f"seed={seed}"])
            pipeline.run(
                config,
                world_model,
                stages=("collect", "world_model"),
                resume=world_model.exists(),
                progress=False,
            )
        for arm in args.arms:
            out = args.out / args.preset / f"seed-{seed}" / arm
            result = run_arm(
                args.preset, seed, arm, world_model, out, tuple(args.overrides)
            )
            results.append(result)
            print(
                f"seed {seed} {arm}: {result['eval_return_mean']:.1f} in "
                f"{result['controller_and_eval_s']:.0f} s, "
                f"{result['controller_env_steps']:,} real steps",
                flush=True,
            )
    lines = [
        "| arm | per seed | mean | controller + eval, s (mean) | real steps (mean) |",
        "|---|---|---|---|---|",
    ]
    for arm in args.arms:
        mine = [r for r in results if r["arm"] == arm]
        returns = [r["eval_return_mean"] for r in mine]
        lines.append(
            f"| {arm} | {', '.join(f'{x:.1f}' for x in returns)} | "
            f"{np.mean(returns):.1f} | "
            f"{np.mean([r['controller_and_eval_s'] for r in mine]):.0f} | "
            f"{np.mean([r['controller_env_steps'] for r in mine]):,.0f} |"
        )
    table = "\n".join(lines)
    (args.out / args.preset / "results.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
