"""Sample efficiency: the world-model agent against model-free PPO on raw
observations, evaluation return against real env steps, over seeds.

    python experiments/sample_efficiency.py                 # every env, seeds 0 1 2
    python experiments/sample_efficiency.py --envs cartpole --seeds 0 1 2
    python experiments/sample_efficiency.py --report-only   # table + plot from runs
    python experiments/sample_efficiency.py --env Asterix-MinAtar --budget 500000

``--env ID`` answers "does the world model help on my env?": it runs the recipe
``janus-jax train --env ID`` picks (``janus_jax/config/recipes.py``) against its
model-free twin on that env, with the same evaluation, to ``--budget`` real env
steps (default: the twin preset's own), and reads the table at a tenth, a
quarter, half and all of it; the threshold is model-free PPO's mean at the end.

Each (env, agent, seed) is one ``janus-jax train`` run (``janus_jax.train.pipeline``)
in ``OUT/ENV/AGENT/seed-N``, evaluated during training every ``eval_every`` real
env steps with the same 32-episode evaluation for both agents: the mode policy
(argmax / mean actions), or sampled actions on a row whose env resets to one
state (there every mode evaluation is one trajectory played 32 times). Random
data counts as real env steps: a world-model agent's curve starts after its
dataset. A finished run is not run again (delete its folder to rerun it).

The table gives, per env and agent, the mean over seeds at each budget with its
95% bootstrap interval, and the final evaluation per seed with the mean and the
interquartile mean over seeds and their intervals; steps to a threshold count a
crossing of the mean of 3 consecutive evaluations (``seed_statistics`` holds
the rules). Writes ``OUT/results.json``, ``OUT/results.md`` (the table) and
``OUT/sample_efficiency.png`` (the mean over seeds, its interval shaded).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
from options import add_overrides
from sample_efficiency_report import EVAL_POLICIES, plot, table
from seed_statistics import (
    RULES,
    at_budget,
    estimate,
    first_crossing,
    iqm,
    mean,
    steps_to,
)

from janus_jax.cli.parser import env_dir_name
from janus_jax.config import presets
from janus_jax.config.run import RunConfig, apply_overrides, with_env
from janus_jax.run.metrics_log import read_metrics
from janus_jax.train import pipeline


@dataclasses.dataclass(frozen=True)
class Row:
    """One env of the table: its two presets, budgets and threshold."""

    name: str
    world_model: str  # preset of the world-model agent
    model_free: str  # preset of model-free PPO on raw observations
    budgets: tuple[int, ...]  # real env steps at which the table reads returns
    threshold: float | None  # None: model-free PPO's mean at its last budget
    rule: str  # "each": every seed must pass; "mean": the mean over seeds
    target_steps: int  # the world-model agent's target, in real env steps
    eval_every: int = 0  # real env steps between evaluations (0: budgets[0] / 2)
    env_id: str | None = None  # None: the presets' env; else moved as --env does
    eval_policy: str = "mode"  # "sample" where mode evaluations are one trajectory

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r} is invalid: must be one of {RULES}")
        if self.eval_policy not in EVAL_POLICIES:
            raise ValueError(
                f"eval_policy={self.eval_policy!r} is invalid: must be one of "
                f"{tuple(EVAL_POLICIES)}"
            )


MINATAR_BUDGETS = (100_000, 250_000, 500_000, 1_000_000)
ROWS = {
    "cartpole": Row(
        "CartPole-v1",
        "cartpole",
        "cartpole-ppo",
        (10_000, 20_000, 50_000, 100_000, 500_000),
        475.0,
        "each",
        20_000,
        eval_every=2048,  # the world model's whole run is about 20k steps
    ),
    "pendulum": Row(
        "Pendulum-v1",
        "pendulum",
        "pendulum-ppo",
        (25_000, 50_000, 100_000, 500_000),
        -250.0,
        "mean",
        100_000,
    ),
    "breakout": Row(
        "Breakout-MinAtar",
        "breakout",
        "breakout-ppo",
        MINATAR_BUDGETS,
        None,
        "mean",
        500_000,
        eval_policy="sample",  # mode evaluations hold two trajectories
    ),
    # gymnax's SpaceInvaders resets to one state and steps without chance: the
    # mode policy plays one trajectory 32 times (issue 26), so actions are sampled.
    "spaceinvaders": Row(
        "SpaceInvaders-MinAtar",
        "breakout",
        "breakout-ppo",
        MINATAR_BUDGETS,
        None,
        "mean",
        500_000,
        env_id="SpaceInvaders-MinAtar",
        eval_policy="sample",
    ),
}
AGENTS = ("world model", "model-free PPO")


def run_one(config: RunConfig, out: Path) -> dict:
    """Returns the run's summary, running it unless ``out`` holds a finished one."""
    summary = out / "summary.json"
    if summary.exists():
        return json.loads(summary.read_text())
    tic = time.perf_counter()
    result = pipeline.run(config, out, overwrite=True, progress=False)
    print(
        f"  {out}: {result['eval_return_mean']:.1f} after "
        f"{result['real_env_steps']:,} real steps in {time.perf_counter() - tic:.0f} s",
        flush=True,
    )
    return result


def curve(out: Path, summary: dict) -> tuple[np.ndarray, np.ndarray, list]:
    """Returns (real env steps, evaluation return, distinct episodes or None
    where not recorded) of a run's evaluations during training, random data
    included, ending with its final evaluation."""
    offset = summary.get("random_data_steps", 0)
    steps, returns, distinct = [], [], []
    for row in read_metrics(out / "metrics.jsonl"):
        if row["phase"] == "controller" and "eval/return_mean" in row:
            steps.append(offset + row["real_env_steps"])
            returns.append(row["eval/return_mean"])
            distinct.append(row.get("eval/distinct_episodes"))
    steps.append(summary["real_env_steps"])
    returns.append(summary["eval_return_mean"])
    distinct.append(summary.get("eval_distinct_episodes"))
    return np.asarray(steps), np.asarray(returns), distinct


def config_for(
    preset_name: str, seed: int, eval_every: int, row: Row, overrides=()
) -> RunConfig:
    """Returns the preset at ``seed`` (on the row's env, re-derived as ``janus-jax
    train --env`` does, then ``overrides`` KEY=VALUE applied as --set does),
    evaluated every ``eval_every`` real steps as the row says, its controller
    stopped at the row's last budget (random data included) when the preset
    runs longer."""
    config = dataclasses.replace(presets.preset(preset_name), seed=seed)
    if row.env_id is not None and row.env_id != config.env_id:
        config, _ = with_env(config, row.env_id, [])
    config = apply_overrides(config, list(overrides))
    c = config.controller
    last = row.budgets[-1]
    steps = min(c.total_timesteps, max(last - random_steps(config), eval_every))
    controller = dataclasses.replace(
        c, eval_every=eval_every, total_timesteps=steps, eval_policy=row.eval_policy
    )
    return dataclasses.replace(config, controller=controller)


def random_steps(config: RunConfig) -> int:
    """Returns a rough count of the random data's env steps (0 model-free): the
    cap above needs it before the data exists; the table uses the real count."""
    if config.controller.features == "observation":
        return 0
    if config.world_model.random_steps:
        return config.world_model.random_steps
    # SpaceInvaders: a random policy's mean length over 64 episodes, 57.6.
    typical = {
        "CartPole-v1": 22,
        "Pendulum-v1": 200,
        "Breakout-MinAtar": 10,
        "SpaceInvaders-MinAtar": 58,
    }
    return config.world_model.num_episodes * typical.get(config.env_id, 100)


def row_for_env(env_id: str, budget: int | None = None) -> tuple[str, Row]:
    """Returns (key, row) of an env no row names: the recipe ``janus-jax train
    --env`` picks against its model-free twin, to ``budget`` real env steps
    (None: the twin's own total), read at 1/10, 1/4, 1/2 and all of it. Raises
    ValueError for an env whose recipe has no model-free twin."""
    from janus_jax.config.recipes import recipe_for
    from janus_jax.envs import spec_of

    recipe = recipe_for(spec_of(env_id))
    if recipe.model_free is None:
        raise ValueError(
            f"--env {env_id}: its recipe, {recipe.name} (preset {recipe.preset}), "
            "has no model-free twin to compare against"
        )
    if budget is None:
        budget = presets.preset(recipe.model_free).controller.total_timesteps
    if not isinstance(budget, int) or budget < 1000:
        raise ValueError(
            f"--budget {budget} is invalid: must be >= 1000 real env steps"
        )
    budgets = tuple(sorted({budget // 10, budget // 4, budget // 2, budget}))
    wm = presets.preset(recipe.preset)
    row = Row(
        env_id,
        recipe.preset,
        recipe.model_free,
        budgets,
        None,
        "mean",
        budget // 2,
        env_id=env_id,
        eval_policy=wm.controller.eval_policy,
    )
    return env_dir_name(env_id), row


def run_row(
    key: str, row: Row, seeds, out: Path, report_only: bool, overrides=()
) -> dict:
    """Returns the row's results: per agent, the curves, wall times, budgets;
    ``overrides`` (KEY=VALUE) change the world-model agent only."""
    results = {}
    for agent, preset_name in zip(
        AGENTS, (row.world_model, row.model_free), strict=True
    ):
        runs = []
        for seed in seeds:
            run_dir = out / key / preset_name / f"seed-{seed}"
            if report_only and not (run_dir / "summary.json").exists():
                continue
            eval_every = row.eval_every or max(row.budgets[0] // 2, 1)
            mine = overrides if preset_name == row.world_model else ()
            config = config_for(preset_name, seed, eval_every, row, mine)
            summary = run_one(config, run_dir)
            steps, returns, distinct = curve(run_dir, summary)
            runs.append(
                {
                    "seed": seed,
                    "steps": steps.tolist(),
                    "returns": returns.tolist(),
                    "distinct": distinct,
                    "final": summary["eval_return_mean"],
                    "eval_policy": summary.get("eval_policy", "mode"),
                    "eval_episodes": summary.get("eval_episodes"),
                    "real_env_steps": summary["real_env_steps"],
                    "wall_time_s": summary["wall_time_s"],
                    "random_return": summary["random_return_mean"],
                }
            )
        results[agent] = runs
    return results


def over_seeds(values) -> dict:
    """Returns the per-seed values with their mean and IQM, each a dict of its
    value and 95% bootstrap interval."""
    return {
        "values": list(values),
        "mean": estimate(values, mean)._asdict(),
        "iqm": estimate(values, iqm)._asdict(),
    }


def summarize(row: Row, results: dict) -> dict:
    """Returns the table cells of one env: per agent, returns at the budgets and
    at the end over seeds, steps to the threshold, single-trajectory
    evaluations, wall time."""
    threshold = row.threshold
    free = results["model-free PPO"]
    if threshold is None and free:
        last = row.budgets[-1]
        threshold = float(
            np.mean([at_budget(r["steps"], r["returns"], last) for r in free])
        )
    cells = {
        "name": row.name,
        "budgets": row.budgets,
        "threshold": threshold,
        "rule": row.rule,
        "eval_policy": row.eval_policy,
        "target_steps": row.target_steps,
        "agents": {},
    }
    for agent, runs in results.items():
        if not runs:
            continue
        curves = [(np.array(r["steps"]), np.array(r["returns"])) for r in runs]
        recorded = [d for r in runs for d in r.get("distinct", []) if d is not None]
        cells["agents"][agent] = {
            "seeds": [r["seed"] for r in runs],
            "eval_policy": sorted({r.get("eval_policy", "mode") for r in runs}),
            "budgets": {
                b: over_seeds([at_budget(s, r, b) for s, r in curves])
                for b in row.budgets
            },
            "final": over_seeds([r["final"] for r in runs]),
            "steps_to_threshold": steps_to(curves, threshold, row.rule),
            "crossings": [first_crossing(s, r, threshold) for s, r in curves],
            "single_trajectory": [sum(d == 1 for d in recorded), len(recorded)],
            "real_env_steps": [r["real_env_steps"] for r in runs],
            "wall_time_s": [r["wall_time_s"] for r in runs],
        }
    return cells


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", choices=list(ROWS), help="named rows")
    parser.add_argument(
        "--env",
        metavar="ID",
        help="any env: its recipe against model-free PPO (instead of --envs)",
    )
    parser.add_argument(
        "--budget", type=int, metavar="STEPS", help="real env steps (with --env)"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    add_overrides(
        parser,
        "change the world-model agent's config (repeatable; use another --out: "
        "finished runs are reused)",
        dest="set",
    )
    parser.add_argument("--out", default="runs/sample_efficiency")
    parser.add_argument(
        "--report-only", action="store_true", help="table and plot of finished runs"
    )
    args = parser.parse_args(argv)
    if args.env and args.envs:
        parser.error("give --env ID or --envs NAME..., not both")
    if args.budget is not None and not args.env:
        parser.error("--budget goes with --env (the named rows have their own)")
    if args.env:
        try:
            rows = dict([row_for_env(args.env, args.budget)])
        except ValueError as err:
            parser.error(str(err))
    else:
        rows = {key: ROWS[key] for key in args.envs or ROWS}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, summaries = {}, {}
    for key, row in rows.items():
        print(f"{row.name}:", flush=True)
        results[key] = run_row(
            key, row, args.seeds, out, args.report_only, tuple(args.set)
        )
        summaries[key] = summarize(row, results[key])
    (out / "results.json").write_text(
        json.dumps({"runs": results, "table": summaries}, indent=1, default=str)
    )
    text = table(summaries)
    (out / "results.md").write_text(text)
    print(text)
    print(f"plot: {plot(results, summaries, out / 'sample_efficiency.png')}")
    return summaries


if __name__ == "__main__":
    sys.exit(main() and 0)
