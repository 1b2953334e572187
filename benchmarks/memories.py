"""Imagination throughput of M's two memories side by side: the paper's LSTM
and the attention memory (``rnn_type="transformer"``), at the paper's sizes.

`python -m benchmarks memories [--quick] [--json F]`. Both dream with
janus-jax ``imagine`` (the whole horizon one jitted ``lax.scan``, vmapped over
the start states) with the same V, C and sizes: latent Z=32, width H=256, K=5
mixtures per latent dimension, controller MLPs 256x256 on [z, h], A=3. The
transformer is one block of 4 heads over the last 16 steps (the config's
defaults). For each batch and horizon the two run one after the other, each
the median of several calls after a first (compiling) one, so their ratio is
what the row says; absolute times drift on a shared machine.

The carry one env holds is reported too: it is what the replay keeps per real
step (the LSTM's (c, h); the transformer's keys and values of K steps).
"""

from __future__ import annotations

import argparse
import dataclasses

import jax

from benchmarks.common import machine, time_call, write_result
from benchmarks.imagination import TEMPERATURE, paper_params
from janus_jax.imagination import imagine
from janus_jax.models import mdn_rnn

MEMORIES = ("lstm", "transformer")


def params_with(memory: str, seed: int = 0):
    """Returns the paper-sized V, M, C with M's memory ``memory``."""
    params = paper_params(seed)
    config = dataclasses.replace(params.mdn_rnn.config, rnn_type=memory)
    m = mdn_rnn.init(jax.random.key(seed + 10), config)
    return params.replace(mdn_rnn=m)


def carry_bytes(config) -> int:
    """Returns the bytes of M's carry for one env."""
    leaves = jax.tree.leaves(mdn_rnn.initial_carry(config, (1,)))
    return sum(x.size * x.dtype.itemsize for x in leaves)


def _runner(params, batch: int, horizon: int):
    run = jax.jit(imagine, static_argnames=("horizon",))
    z0 = jax.random.normal(jax.random.key(1), (batch, params.mdn_rnn.config.latent_dim))
    return lambda: run(
        jax.random.key(2), params, z0, None, horizon=horizon, temperature=TEMPERATURE
    )


def run(quick: bool) -> dict:
    """Returns the rows {batch, horizon, <memory>_steps_per_s, ratio} and the
    carry each memory keeps per env."""
    batches = (1, 64) if quick else (1, 64, 1024)
    horizons = (50,) if quick else (50, 1000)
    repeats = 2 if quick else 5
    params = {memory: params_with(memory) for memory in MEMORIES}
    carries = {m: carry_bytes(p.mdn_rnn.config) for m, p in params.items()}
    print(
        "carry per env: "
        + ", ".join(f"{m} {b / 1024:.1f} KiB" for m, b in carries.items()),
        flush=True,
    )
    print(
        f"{'horizon':>8} {'batch':>6} {'lstm st/s':>12} {'attn st/s':>12} {'ratio':>6}"
    )
    rows = []
    for horizon in horizons:
        for batch in batches:
            row = {"batch": batch, "horizon": horizon}
            for memory in MEMORIES:
                first, median = time_call(
                    _runner(params[memory], batch, horizon), repeats
                )
                row[f"{memory}_steps_per_s"] = batch * horizon / median
                row[f"{memory}_first_call_s"] = first
            row["transformer_over_lstm"] = (
                row["transformer_steps_per_s"] / row["lstm_steps_per_s"]
            )
            rows.append(row)
            print(
                f"{horizon:8d} {batch:6d} {row['lstm_steps_per_s']:12,.0f} "
                f"{row['transformer_steps_per_s']:12,.0f} "
                f"{row['transformer_over_lstm']:6.2f}",
                flush=True,
            )
    return {"rows": rows, "carry_bytes_per_env": carries, "targets": {}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--json", metavar="FILE", help="also write every figure")
    args = parser.parse_args(argv)
    result = {"benchmark": "memories", "machine": machine()} | run(args.quick)
    if args.json:
        write_result(args.json, result)


if __name__ == "__main__":
    main()
