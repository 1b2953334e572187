"""M's LSTM against its attention memory on the same data: one V per seed, then
each memory's M trained on the same windows with the same budget, measured on
episodes neither saw.

    python experiments/memory_compare.py --preset breakout --seeds 0 1 2

Per seed: the preset's random-policy collection and V, then two Ms trained on
that dataset encoded by that V: one with ``rnn_type="lstm"`` and one with
``rnn_type="transformer"`` (the config's attention fields as they are, or as
``--set`` changes them), each from its own fresh start. Measured for each, on
a held-out random-policy dataset of another seed: M's loss (latent NLL per
dimension, reward squared error, done cross-entropy, over every window); and
the open-loop latent error of ``janus-jax gap`` at horizons 1, 10 and 50 on
fresh episodes where C (freshly initialised, sampling: about uniform) acts,
against copying the last latent (each memory's C meets its own episodes: the
copy-last column says how alike they were). The table gives each memory's
mean over the seeds and M's training time; every figure is in
OUT/PRESET/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from options import add_overrides

from janus_jax.config import presets
from janus_jax.config.run import RunConfig, apply_overrides, to_dict
from janus_jax.data import RolloutDataset, sequences
from janus_jax.diagnostics import gap
from janus_jax.envs import spec_of
from janus_jax.models import mdn_rnn
from janus_jax.run import run_dir
from janus_jax.run.checkpoint import write_json_atomic
from janus_jax.train import pipeline
from janus_jax.train.world_model import WorldModelTrainer

MEMORIES = ("lstm", "transformer")
HORIZONS = (1, 10, 50)
HELDOUT_SEED = 1000  # the held-out data's seed is this plus the run's


def heldout_loss(agent, config, dataset: RolloutDataset) -> dict:
    """Returns M's mean loss terms over every window of ``dataset`` (encoded by
    the agent's V), each step weighted alike."""
    spec = spec_of(config.env_id, **config.env_kwargs)
    loss = jax.jit(mdn_rnn.loss)
    totals, steps = {}, 0.0
    with tempfile.TemporaryDirectory() as latents:
        sequences.encode_dataset(agent.vae.params, dataset, Path(latents))
        for source in sequences.window_sources(
            dataset,
            Path(latents),
            config.world_model.sequence_length,
            spec.action,
            config.world_model.vae.latent_dim,
        ):
            windows = source.load()
            for start in range(0, source.items, 256):
                batch = jax.tree.map(lambda x, s=start: x[s : s + 256], windows)
                _, metrics = loss(agent.mdn_rnn.params, batch)
                weight = float(np.sum(batch.mask))
                for name, value in metrics.items():
                    totals[name] = totals.get(name, 0.0) + float(value) * weight
                steps += weight
    return {name: value / steps for name, value in totals.items()}


def open_loop(agent, config, seed: int) -> dict:
    """Returns ``gap``'s open-loop report on 4 fresh envs of 1000 steps each."""
    with run_dir.evaluation_env(config, 4) as env:
        report = gap.measure(
            jax.random.key(seed), env, agent.params, 1000, HORIZONS, policy="sample"
        )
    return report["open_loop"]


def train_m(config, world_model: Path, out: Path) -> float:
    """Returns M's training seconds once ``out`` is a world-model run of
    ``config`` with ``world_model``'s V and data and an M of its own."""
    write_json_atomic(out / "config.json", to_dict(config))
    trainer = WorldModelTrainer(
        config.env_id,
        config.world_model,
        run_dir=out,
        dataset=world_model / "data",
        env_kwargs=config.env_kwargs,
        seed=config.seed,
    )
    trainer.vae_params = run_dir.load_agent(world_model).vae.params
    tic = time.perf_counter()
    trainer.train_mdn()
    return time.perf_counter() - tic


def arms(preset: str, seed: int, extra: list[str]) -> tuple[RunConfig, dict]:
    """Returns (the preset at ``seed``, whose data and V both arms share; each
    memory's config): every arm names its memory, as a preset may hold either,
    and ``extra`` KEY=VALUE changes the transformer's only."""
    base = apply_overrides(presets.preset(preset), [f"seed={seed}"])
    configs = {
        "lstm": apply_overrides(base, ["world_model.mdn_rnn.rnn_type=lstm"]),
        "transformer": apply_overrides(
            base, ["world_model.mdn_rnn.rnn_type=transformer", *extra]
        ),
    }
    return base, configs


def run_seed(preset: str, seed: int, extra: list[str], out: Path) -> dict:
    """Returns both memories' figures for ``seed``, training what is missing."""
    result_path = out / "result.json"
    if result_path.exists():
        return json.loads(result_path.read_text())
    base, configs = arms(preset, seed, extra)
    world_model = out / "world-model"  # the data and V both memories share
    pipeline.run(base, world_model, stages=("collect", "world_model"), progress=False)
    seconds = {m: train_m(c, world_model, out / m) for m, c in configs.items()}
    heldout = dataclasses.replace(base, seed=HELDOUT_SEED + seed)
    pipeline.run(heldout, out / "heldout", stages=("collect",), progress=False)
    dataset = RolloutDataset(out / "heldout" / "data")
    result = {"seed": seed, "memories": {}}
    for memory, config in configs.items():
        agent = run_dir.load_agent(out / memory)
        result["memories"][memory] = {
            "train_s": seconds[memory],
            "heldout": heldout_loss(agent, config, dataset),
            "open_loop": open_loop(agent, config, HELDOUT_SEED + seed),
        }
        print(f"seed {seed} {memory}: {json.dumps(result['memories'][memory])}")
    write_json_atomic(result_path, result)
    return result


def table(results: list[dict]) -> str:
    """Returns the markdown table of each memory's means over the seeds."""
    head = "| memory | M's training, s | latent NLL | reward MSE | done BCE | "
    head += " | ".join(f"open-loop MSE h={h} (copy-last)" for h in HORIZONS)
    lines = [head + " |", "|---" * (5 + len(HORIZONS)) + "|"]
    for memory in MEMORIES:
        rows = [r["memories"][memory] for r in results]
        held = [
            np.mean([r["heldout"][f"mdn/{k}"] for r in rows])
            for k in ("latent_nll", "reward_mse", "done_bce")
        ]
        cells = [f"{np.mean([r['train_s'] for r in rows]):.0f}"]
        cells += [f"{x:.4f}" for x in held]
        for h in HORIZONS:
            got = [g for r in rows if "latent_mse" in (g := r["open_loop"][str(h)])]
            if not got:  # no episode of that env lasted h + 1 steps
                cells.append("no window")
                continue
            mse = np.mean([g["latent_mse"] for g in got])
            copy = np.mean([g["latent_mse_copy_last"] for g in got])
            starts = sum(g["starts"] for g in got)
            cells.append(f"{mse:.4f} ({copy:.4f}), {starts} starts")
        lines.append(f"| {memory} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="breakout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    add_overrides(parser, "change the transformer arm's config (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("runs/memory_compare"))
    args = parser.parse_args(argv)
    results = [
        run_seed(args.preset, s, args.overrides, args.out / args.preset / f"seed-{s}")
        for s in args.seeds
    ]
    text = table(results)
    write_json_atomic(args.out / args.preset / "results.json", results)
    (args.out / args.preset / "results.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
