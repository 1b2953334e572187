"""Controller training throughput: real env steps per second of PPO on gymnax
envs, and the return each run reaches.

Two paths per env, with PureJaxRL's published PPO values:

- **model-free**: ``WorldModelPPOTrainer`` at imagination_ratio 0, so plain PPO
  on [z, h] from V and M freshly initialised and frozen (mdn_updates 0):
  every real step still goes through V's encoder and M's LSTM;
- **world model**: the preset's whole run (``pipeline.run``: collect, V, M, then
  C on half real, half dreamed transitions while M keeps learning), timed from
  its metrics.jsonl; the world-model phases are reported apart.

The first chunk of each controller phase includes compilation: steps/s are
measured over the chunks after it, and the compile time is the first chunk's
excess over a steady chunk. Every trained controller and a random policy are
scored on the same 32 episodes (same key), argmax actions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from janus_jax import WorldModelAgent
from janus_jax.config import presets
from janus_jax.config.models import PPOConfig
from janus_jax.config.run import RunConfig
from janus_jax.diagnostics.evaluate import episode_returns
from janus_jax.envs import make
from janus_jax.run.metrics_log import read_metrics
from janus_jax.run.run_dir import load_agent
from janus_jax.train.loop import RunIO
from janus_jax.train.pipeline import run as run_pipeline
from janus_jax.train.ppo_trainer import WorldModelPPOTrainer

EVAL_EPISODES = 32
AGENT_KEY, RANDOM_KEY = jax.random.key(101), jax.random.key(202)


@dataclasses.dataclass(frozen=True)
class Case:
    """One env with PureJaxRL's PPO values and the steps of each mode."""

    env_id: str
    preset: Callable[[], RunConfig]
    num_envs: int
    rollout_length: int
    minibatches: int
    updates_per_chunk: int
    steps: int  # real env steps, full mode
    note: str = ""


CARTPOLE = Case(
    env_id="CartPole-v1",
    preset=presets.cartpole,
    num_envs=4,
    rollout_length=128,
    minibatches=4,
    updates_per_chunk=10,
    steps=500_000,
)
BREAKOUT = Case(
    env_id="Breakout-MinAtar",
    preset=presets.breakout,
    num_envs=64,
    rollout_length=128,
    minibatches=8,
    updates_per_chunk=5,
    steps=1_000_000,
    note="1M steps (PureJaxRL trains MinAtar for 10M)",
)
QUICK_STEPS = 16_384
QUICK_UPDATES_PER_CHUNK = 4
QUICK_TINY_STEPS = 4096  # tiny's 2 envs x 32 steps: 64 updates in 16 chunks


class _Rows:
    """A stand-in for MetricsLogger: keeps the rows ``run_chunks`` logs."""

    def __init__(self):
        self.rows: list[dict] = []

    def write(self, phase, step, metrics, **extra):
        self.rows.append({"phase": phase, "step": step, **extra, **metrics})


def controller_timing(rows: list[dict]) -> dict:
    """Returns steps, wall seconds, steps/s after the first chunk and compile
    seconds, from the controller phase's rows (one per chunk, with the chunk's
    ``updates_per_s`` and the cumulative ``real_env_steps``)."""
    rows = [r for r in rows if r["phase"] == "controller"]
    updates = [
        r["step"] - (rows[i - 1]["step"] if i else 0) for i, r in enumerate(rows)
    ]
    seconds = [u / r["updates_per_s"] for u, r in zip(updates, rows, strict=True)]
    steps = rows[-1]["real_env_steps"]
    if len(rows) < 2:
        return {"steps": steps, "wall_s": seconds[0], "steps_per_s": None}
    steady_steps = steps - rows[0]["real_env_steps"]
    steady_s = sum(seconds[1:])
    chunk_s = steady_s / (len(rows) - 1)
    return {
        "steps": steps,
        "wall_s": sum(seconds),
        "steps_per_s": steady_steps / steady_s,
        "compile_s": max(seconds[0] - chunk_s, 0.0),
    }


def _ppo_config(case: Case, config: RunConfig) -> PPOConfig:
    """Returns the preset's PPO values with PureJaxRL's real-only minibatch."""
    batch = case.num_envs * case.rollout_length // case.minibatches
    return dataclasses.replace(config.ppo, minibatch_size=batch)


def model_free(case: Case, steps: int, updates_per_chunk: int) -> dict:
    """Returns the model-free row: PPO on [z, h] of a frozen, untrained V and M."""
    config = case.preset()
    env = make(case.env_id, num_envs=case.num_envs)
    wm = config.world_model
    agent = WorldModelAgent(
        wm.vae.observation_shape,
        env.spec.action.dim,
        env.spec.action.continuous,
        controller_config=config.network,
        vae_config=wm.vae,
        mdn_rnn_config=wm.mdn_rnn,
        action_low=env.spec.action.low,
        action_high=env.spec.action.high,
        seed=config.seed,
    )
    log = _Rows()
    trainer = WorldModelPPOTrainer(
        agent,
        env,
        _ppo_config(case, config),
        imagination_ratio=0.0,
        num_envs=case.num_envs,
        mdn_updates=0,
        updates_per_chunk=updates_per_chunk,
        seed=config.seed,
        io=RunIO(run_dir=None, logger=log, progress=False),
    )
    trainer.train(steps, case.rollout_length)
    returns = _evaluate(case.env_id, agent.params)
    return {
        "path": "model-free",
        **controller_timing(log.rows),
        **_stats(returns),
        "num_envs": case.num_envs,
        "rollout_length": case.rollout_length,
        "ppo_batch_size": trainer.config.minibatch_size,
    }


def world_model(config: RunConfig, steps: int) -> dict:
    """Returns the world-model row: the preset's run, C at imagination_ratio 0.5."""
    c = dataclasses.replace(
        config.controller, total_timesteps=steps, imagination_ratio=0.5
    )
    config = dataclasses.replace(config, controller=c)
    with tempfile.TemporaryDirectory() as out:
        stages = ("collect", "world_model", "controller")
        summary = run_pipeline(config, out, stages=stages, progress=False)
        rows = read_metrics(Path(out) / "metrics.jsonl")
        agent = load_agent(out)
    returns = _evaluate(config.env_id, agent.params)
    # Each phase ends at its last row's time_s (seconds since the run started).
    ends = {row["phase"]: row["time_s"] for row in rows}
    phases, previous = {}, 0.0
    for phase in ("collect", "vae", "mdn"):
        phases[f"{phase}_s"] = ends[phase] - previous
        previous = ends[phase]
    return {
        "path": "world model",
        **controller_timing(rows),
        **_stats(returns),
        "num_envs": c.num_envs,
        "rollout_length": c.rollout_length,
        "ppo_batch_size": config.ppo.minibatch_size,
        "imagined_steps": summary["imagined_steps"],
        "random_data_steps": summary["random_data_steps"],
        "world_model_s": previous,
        **phases,
        "run_wall_s": summary["wall_time_s"],
    }


def _evaluate(env_id: str, params, key=AGENT_KEY) -> np.ndarray:
    """Returns EVAL_EPISODES returns of ``params`` (None: random), all at once."""
    return episode_returns(
        key, make(env_id, num_envs=EVAL_EPISODES), params, EVAL_EPISODES
    )


def _stats(returns: np.ndarray) -> dict:
    return {
        "return_mean": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }


HEADER = (
    f"{'env':17s} {'path':11s} {'real steps':>10s} {'C wall s':>8s} "
    f"{'steps/s':>8s} {'compile s':>9s} {'return':>13s} {'random':>11s} "
    f"{'V+M s':>6s}  note"
)


def _format(row: dict) -> str:
    rate = row.get("steps_per_s")
    wm = row.get("world_model_s")
    return (
        f"{row['env']:17s} {row['path']:11s} {row['steps']:>10,d} "
        f"{row['wall_s']:>8.1f} {'-' if rate is None else f'{rate:,.0f}':>8s} "
        f"{row.get('compile_s', float('nan')):>9.1f} "
        f"{row['return_mean']:>6.1f} ± {row['return_std']:<5.1f}"
        f"{row['random_mean']:>6.1f} ± {row['random_std']:<3.1f} "
        f"{'-' if wm is None else f'{wm:.0f}':>6s}  {row['note']}"
    )


def _run_path(case: Case, path: str, quick: bool) -> dict:
    """Returns the row of one path on one env, with its note."""
    if path == "model-free":
        steps = QUICK_STEPS if quick else case.steps
        chunk = QUICK_UPDATES_PER_CHUNK if quick else case.updates_per_chunk
        row = model_free(case, steps, chunk)
        return {**row, "note": "quick: too short to learn" if quick else case.note}
    if quick:
        tiny = presets.tiny()
        row = world_model(tiny, QUICK_TINY_STEPS)
        return {**row, "note": "quick: presets.tiny()"}
    return {**world_model(case.preset(), case.steps), "note": case.note}


def run(quick: bool) -> dict:
    """Returns {"rows", "targets"} and prints one table row per run as it ends."""
    cases = (CARTPOLE,) if quick else (CARTPOLE, BREAKOUT)
    load_before = os.getloadavg()[0]
    print(f"1-min load average before: {load_before:.2f}", flush=True)
    print(HEADER, flush=True)
    rows, targets = [], {}
    for case in cases:
        random = _evaluate(case.env_id, None, RANDOM_KEY)
        base = {
            "env": case.env_id,
            "random_mean": float(np.mean(random)),
            "random_std": float(np.std(random)),
        }
        for path in ("model-free", "world model"):
            start = time.perf_counter()
            row = {**base, **_run_path(case, path, quick)}
            row["total_s"] = time.perf_counter() - start
            rows.append(row)
            print(_format(row), flush=True)
            if not quick:
                targets[f"{case.env_id} {row['path']} beats random"] = {
                    "wanted": f"> {row['random_mean']:.1f}",
                    "measured": round(row["return_mean"], 1),
                    "met": row["return_mean"] > row["random_mean"],
                }
    load = {"before": load_before, "after": os.getloadavg()[0]}
    print(f"1-min load average after: {load['after']:.2f}", flush=True)
    return {"rows": rows, "targets": targets, "load_avg_1min": load}


if __name__ == "__main__":
    print(json.dumps(run(quick=True), indent=2, default=float))
