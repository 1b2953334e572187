"""The sample-efficiency results as a reader sees them: the Markdown tables and
the plot, from ``sample_efficiency.summarize``'s cells (each env's cells carry
its row's name, budgets, rule and evaluation policy) and the runs' curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from seed_statistics import SMOOTHING, at_budget, bootstrap_interval, mean

EVAL_POLICIES = {
    "mode": "the mode policy (argmax / mean actions)",
    "sample": "sampled actions",
}


def _interval(e: dict) -> str:
    if math.isnan(e["value"]):
        return "-"
    if math.isnan(e["low"]):
        return f"{e['value']:.1f}"
    return f"{e['value']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"


def _steps(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:,.0f}"


def table(summaries: dict) -> str:
    """Returns the results as Markdown, two tables per env: the mean over seeds
    at each budget, then the final evaluation per seed, mean and IQM."""
    lines = []
    for cells in summaries.values():
        rule = "each seed" if cells["rule"] == "each" else "mean over seeds"
        budgets = cells["budgets"]
        lines += [
            f"**{cells['name']}**: evaluated by "
            f"{EVAL_POLICIES[cells['eval_policy']]}; threshold "
            f"{cells['threshold']:.1f} ({rule}, on the mean of {SMOOTHING} "
            f"evaluations); world-model target <= {cells['target_steps']:,} real "
            "steps; mean over seeds [95% bootstrap CI]",
            "",
            "| agent | "
            + " | ".join(f"return at {b:,}" for b in budgets)
            + " | steps to threshold | wall s |",
            "|---" * (len(budgets) + 3) + "|",
        ]
        for agent, a in cells["agents"].items():
            at = " | ".join(_interval(a["budgets"][b]["mean"]) for b in budgets)
            wall = f"{np.mean(a['wall_time_s']):.0f}"
            lines.append(
                f"| {agent} | {at} | {_steps(a['steps_to_threshold'])} | {wall} |"
            )
        lines += [
            "",
            "| agent | seeds | final return per seed | mean [95% CI] | IQM [95% CI] "
            "| crossing per seed | real steps |",
            "|---" * 7 + "|",
        ]
        notes = []
        for agent, a in cells["agents"].items():
            final = a["final"]
            lines.append(
                f"| {agent} | {', '.join(map(str, a['seeds']))} | "
                + ", ".join(f"{v:.1f}" for v in final["values"])
                + f" | {_interval(final['mean'])} | {_interval(final['iqm'])} | "
                + ", ".join(map(_steps, a["crossings"]))
                + f" | {max(a['real_env_steps']):,} |"
            )
            single, recorded = a["single_trajectory"]
            if single:
                notes.append(
                    f"*{agent}: {single} of {recorded} evaluations were one "
                    "trajectory (every episode alike)*"
                )
        lines += ["", *notes, ""] if notes else [""]
    return "\n".join(lines)


def plot(results: dict, summaries: dict, path: Path) -> Path:
    """Returns the PNG: one panel per env, evaluation return against real env
    steps (log scale), the mean over seeds for both agents with its 95%
    bootstrap interval shaded where every seed has evaluated."""
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
                [[at_budget(r["steps"], r["returns"], x) for x in grid] for r in runs]
            )
            (line,) = ax.plot(
                grid, np.nanmean(values, axis=0), label=f"{agent} ({len(runs)} seeds)"
            )
            every = ~np.isnan(values).any(axis=0)
            if len(runs) > 1 and every.any():
                low, high = bootstrap_interval(values[:, every].T, mean)
                ax.fill_between(
                    grid[every], low, high, color=line.get_color(), alpha=0.2
                )
        cells = summaries[key]
        if cells["threshold"] is not None:
            ax.axhline(cells["threshold"], color="gray", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only
        ax.set_title(cells["name"])
        ax.set_xlabel("real env steps (random data included)")
        policy = "sampled" if cells["eval_policy"] == "sample" else "mode"
        ax.set_ylabel(f"evaluation return ({policy} actions)")
        ax.legend(
            loc="best", fontsize=8, title="shaded: 95% CI of the mean", title_fontsize=8
        )
    figure.savefig(path, dpi=100)
    return path
