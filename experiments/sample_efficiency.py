"""Sample efficiency: the world-model agent against model-free PPO on raw
observations, evaluation return against real env steps, over seeds.

    python experiments/sample_efficiency.py                 # every env, seeds 0 1 2
    python experiments/sample_efficiency.py --envs cartpole --seeds 0 1 2
    python experiments/sample_efficiency.py --report-only   # table + plot from runs

Each (env, agent, seed) is one ``janus-jax train`` run (``janus_jax.train.pipeline``)
in ``OUT/ENV/AGENT/seed-N``, evaluated during training every ``eval_every`` real
env steps with the same 32-episode evaluation for both agents (argmax / mean
actions). Random data counts as real env steps: a world-model agent's curve
starts after its dataset. A finished run is not run again (delete its folder
to rerun it). Writes ``OUT/results.json``, ``OUT/results.md`` (the table) and
``OUT/sample_efficiency.png`` (mean and min-max band over seeds).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from janus_jax.config import presets
from janus_jax.config.run import RunConfig
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
        (100_000, 250_000, 500_000, 1_000_000),
        None,
        "mean",
        500_000,
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


def curve(out: Path, summary: dict) -> tuple[np.ndarray, np.ndarray]:
    """Returns (real env steps, evaluation return) of a run's evaluations during
    training, random data included, ending with its final evaluation."""
    offset = summary.get("random_data_steps", 0)
    steps, returns = [], []
    for row in read_metrics(out / "metrics.jsonl"):
        if row["phase"] == "controller" and "eval/return_mean" in row:
            steps.append(offset + row["real_env_steps"])
            returns.append(row["eval/return_mean"])
    steps.append(summary["real_env_steps"])
    returns.append(summary["eval_return_mean"])
    return np.asarray(steps), np.asarray(returns)


def at_budget(steps, returns, budget: int) -> float:
    """Returns the last evaluation within ``budget`` real steps (nan if none)."""
    within = steps <= budget
    return float(returns[within][-1]) if within.any() else math.nan


def steps_to(curves, threshold: float, rule: str) -> float:
    """Returns the first evaluation's real steps at which the seeds pass
    ``threshold`` (each seed, or their mean), or inf if they never do."""
    if rule == "each":
        firsts = []
        for steps, returns in curves:
            hit = np.flatnonzero(returns >= threshold)
            firsts.append(steps[hit[0]] if hit.size else math.inf)
        return float(max(firsts))
    grid = np.unique(np.concatenate([s for s, _ in curves]))
    for x in grid:
        values = [at_budget(s, r, int(x)) for s, r in curves]
        if not any(math.isnan(v) for v in values) and np.mean(values) >= threshold:
            return float(x)
    return math.inf


def config_for(preset_name: str, seed: int, eval_every: int, last: int) -> RunConfig:
    """Returns the preset at ``seed``, evaluated every ``eval_every`` real steps,
    its controller stopped at the table's last budget ``last`` (random data
    included) when the preset runs longer."""
    config = dataclasses.replace(presets.preset(preset_name), seed=seed)
    c = config.controller
    steps = min(c.total_timesteps, max(last - random_steps(config), eval_every))
    controller = dataclasses.replace(c, eval_every=eval_every, total_timesteps=steps)
    return dataclasses.replace(config, controller=controller)


def random_steps(config: RunConfig) -> int:
    """Returns a rough count of the random data's env steps (0 model-free): the
    cap above needs it before the data exists; the table uses the real count."""
    if config.controller.features == "observation":
        return 0
    typical = {"CartPole-v1": 22, "Pendulum-v1": 200, "Breakout-MinAtar": 60}
    return config.world_model.num_episodes * typical.get(config.env_id, 100)


def run_row(key: str, seeds, out: Path, report_only: bool) -> dict:
    """Returns the row's results: per agent, the curves, wall times, budgets."""
    row = ROWS[key]
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
            config = config_for(preset_name, seed, eval_every, row.budgets[-1])
            summary = run_one(config, run_dir)
            steps, returns = curve(run_dir, summary)
            runs.append(
                {
                    "seed": seed,
                    "steps": steps.tolist(),
                    "returns": returns.tolist(),
                    "final": summary["eval_return_mean"],
                    "real_env_steps": summary["real_env_steps"],
                    "wall_time_s": summary["wall_time_s"],
                    "random_return": summary["random_return_mean"],
                }
            )
        results[agent] = runs
    return results


def summarize(key: str, results: dict) -> dict:
    """Returns the table cells of one env: returns at budgets, steps to the
    threshold, wall time, for both agents."""
    row = ROWS[key]
    threshold = row.threshold
    free = results["model-free PPO"]
    if threshold is None and free:
        last = row.budgets[-1]
        threshold = float(
            np.mean(
                [
                    at_budget(np.array(r["steps"]), np.array(r["returns"]), last)
                    for r in free
                ]
            )
        )
    cells = {"threshold": threshold, "rule": row.rule, "agents": {}}
    for agent, runs in results.items():
        if not runs:
            continue
        curves = [(np.array(r["steps"]), np.array(r["returns"])) for r in runs]
        budgets = {b: [at_budget(s, r, b) for s, r in curves] for b in row.budgets}
        cells["agents"][agent] = {
            "seeds": [r["seed"] for r in runs],
            "budgets": budgets,
            "steps_to_threshold": steps_to(curves, threshold, row.rule),
            "final": [r["final"] for r in runs],
            "real_env_steps": [r["real_env_steps"] for r in runs],
            "wall_time_s": [r["wall_time_s"] for r in runs],
        }
    return cells


def _mean_range(values) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "-"
    return f"{np.mean(values):.1f} ({min(values):.0f}..{max(values):.0f})"


def _steps(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:,.0f}"


def table(summaries: dict) -> str:
    """Returns the results as a Markdown table, one block per env."""
    lines = []
    for key, cells in summaries.items():
        row = ROWS[key]
        rule = "each seed" if row.rule == "each" else "mean over seeds"
        lines += [
            f"**{row.name}**: threshold {cells['threshold']:.1f} ({rule}); "
            f"world-model target <= {row.target_steps:,} real steps",
            "",
            "| agent | "
            + " | ".join(f"return at {b:,}" for b in row.budgets)
            + " | steps to threshold | final (steps) | wall s |",
            "|---" * (len(row.budgets) + 4) + "|",
        ]
        for agent, a in cells["agents"].items():
            budgets = " | ".join(_mean_range(a["budgets"][b]) for b in row.budgets)
            final = f"{_mean_range(a['final'])} ({max(a['real_env_steps']):,})"
            wall = f"{np.mean(a['wall_time_s']):.0f}"
            lines.append(
                f"| {agent} | {budgets} | {_steps(a['steps_to_threshold'])} | "
                f"{final} | {wall} |"
            )
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, summaries: dict, path: Path) -> Path:
    """Returns the PNG: one panel per env, evaluation return against real env
    steps (log scale), mean and min-max band over seeds for both agents."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    figure = Figure(figsize=(5 * len(results), 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for ax, (key, by_agent) in zip(axes, results.items(), strict=True):
        for agent, runs in by_agent.items():
            if not runs:
                continue
            grid = np.unique(np.concatenate([r["steps"] for r in runs]))
            values = np.array(
                [
                    [
                        at_budget(np.array(r["steps"]), np.array(r["returns"]), x)
                        for x in grid
                    ]
                    for r in runs
                ]
            )
            mean = np.nanmean(values, axis=0)
            (line,) = ax.plot(grid, mean, label=f"{agent} ({len(runs)} seeds)")
            ax.fill_between(
                grid,
                np.nanmin(values, 0),
                np.nanmax(values, 0),
                color=line.get_color(),
                alpha=0.2,
            )
        threshold = summaries[key]["threshold"]
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.set_title(ROWS[key].name)
        ax.set_xlabel("real env steps (random data included)")
        ax.set_ylabel("evaluation return (32 episodes)")
        ax.legend(loc="best", fontsize=8)
    figure.savefig(path, dpi=100)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default="runs/sample_efficiency")
    parser.add_argument(
        "--report-only", action="store_true", help="table and plot of finished runs"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results, summaries = {}, {}
    for key in args.envs:
        print(f"{ROWS[key].name}:", flush=True)
        results[key] = run_row(key, args.seeds, out, args.report_only)
        summaries[key] = summarize(key, results[key])
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
