"""Diagnose a trained world model before changing it: what V keeps of each
frame channel and what M's reward and done heads catch on real steps
(``janus_jax.diagnostics.world_model_scores``).

    python experiments/diagnose_world_model.py --run runs/breakout [--steps 2000]

The run directory is any ``janus-jax train`` (or ``train-world-model``) run: its
agent acts in copies of its env (C sampling; an untrained C after the world
model phase acts about uniformly at random), and the report goes to
``DIR/diagnosis.json`` and the console.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

from janus_jax.diagnostics import world_model_scores
from janus_jax.run import run_dir
from janus_jax.run.files import write_json


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def lines(report: dict) -> list[str]:
    """Returns the report as a few readable lines."""
    out = [f"{report['env_id']}: {report['real_steps']:,} real steps"]
    for name, cell in report.get("vae_channels", {}).items():
        out.append(
            f"  V {name:>8}: recall {_fmt(cell['recall'])}, precision "
            f"{_fmt(cell['precision'])} ({cell['positives']:,} set cells)"
        )
    out.append(f"  V frame MSE {report['vae_frame_mse']:.4f}")
    for head, what in (("reward_head", "paying steps"), ("done_head", "endings")):
        cell = report[head]
        out.append(
            f"  M {head.split('_')[0]:>6}: recall {_fmt(cell['recall'])}, precision "
            f"{_fmt(cell['precision'])} on {cell['events']:,} {what}; mean "
            f"{_fmt(cell['mean_on_events'])} there, {_fmt(cell['mean_elsewhere'])} "
            "elsewhere"
        )
    for row in report["done_head"]["calibration"]:
        if row["steps"]:
            out.append(
                f"    done p in [{row['low']}, {row['high']}): {row['steps']:,} "
                f"steps, mean p {row['mean_probability']:.3f}, observed "
                f"{row['observed_rate']:.3f}"
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run directory")
    parser.add_argument("--steps", type=int, default=2000, help="steps per env")
    parser.add_argument("--envs", type=int, default=16, help="envs stepped at once")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("steps", "envs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}={getattr(args, name)} is invalid: must be >= 1")
    agent = run_dir.load_agent(args.run)
    if agent.mdn_rnn is None:
        parser.error(f"--run {args.run} is a model-free run: it has no V or M")
    config = run_dir.load_config(args.run)
    with run_dir.evaluation_env(config, args.envs) as env:
        report = world_model_scores.measure(
            jax.random.key(args.seed), env, agent.params, args.steps
        )
    path = write_json(Path(args.run) / "diagnosis.json", report)
    print("\n".join(lines(report)))
    print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
