"""Imagination throughput: one ``lax.scan`` (janus-jax ``imagine``) against the same
step jitted alone and called from a Python loop, as a naive port would do.

Both run the paper-sized model (latent 32, LSTM 256, 5 mixtures, controller on
[z, h], temperature 1.15) with 3 bounded continuous actions, side by side in one
process; the figures that matter are the ratios, since absolute times drift on a
shared machine.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

from benchmarks.common import machine, time_call
from janus_jax import ActionSpec, MDNRNNConfig, NetworkConfig, VAEConfig
from janus_jax.imagination import DreamState, WorldModelParams, dream_step, imagine
from janus_jax.models import controller, mdn_rnn, vae

TEMPERATURE = 1.15


def paper_params(seed: int = 0) -> WorldModelParams:
    """Returns freshly initialised V, M, C of the paper's sizes."""
    action = ActionSpec(
        continuous=True, dim=3, low=(-1.0, 0.0, 0.0), high=(1.0, 1.0, 1.0)
    )
    m_config = MDNRNNConfig(latent_dim=32, action_dim=3, hidden_dim=256, num_mixtures=5)
    keys = jax.random.split(jax.random.key(seed), 3)
    return WorldModelParams(
        vae=vae.init(keys[0], VAEConfig()),
        mdn_rnn=mdn_rnn.init(keys[1], m_config),
        controller=controller.init(keys[2], NetworkConfig(), action, 32 + 256),
    )


def _scan_runner(params, batch, horizon):
    run = jax.jit(imagine, static_argnames=("horizon",))
    z0 = jax.random.normal(jax.random.key(1), (batch, 32))
    return lambda: run(
        jax.random.key(2), params, z0, None, horizon=horizon, temperature=TEMPERATURE
    )


def _loop_runner(params, batch, horizon):
    # The scan's body, compiled alone (vmapped over the batch) and called once per
    # step from Python: what a direct port of a PyTorch loop does.
    tau = jnp.float32(TEMPERATURE)

    @jax.jit
    def step(key, state):
        keys = jax.random.split(key, batch)
        return jax.vmap(lambda k, s: dream_step(params, s, k, tau))(keys, state)

    state0 = DreamState(
        carry=mdn_rnn.initial_carry(params.mdn_rnn.config, (batch,)),
        latent=jax.random.normal(jax.random.key(1), (batch, 32)),
        alive=jnp.ones((batch,)),
    )

    def run():
        state, records = state0, []
        for key in jax.random.split(jax.random.key(2), horizon):
            state, record = step(key, state)
            records.append(record)
        return records

    return run


def run(batches, horizons, repeats) -> list[dict]:
    """Returns one row per (batch, horizon) with both methods' steps/s and the ratio."""
    params = paper_params()
    rows = []
    for horizon in horizons:
        for batch in batches:
            row = {"batch": batch, "horizon": horizon}
            for name, make in (("scan", _scan_runner), ("loop", _loop_runner)):
                first, median = time_call(make(params, batch, horizon), repeats)
                row[f"{name}_steps_per_s"] = batch * horizon / median
                row[f"{name}_first_call_s"] = first
            row["scan_over_loop"] = row["scan_steps_per_s"] / row["loop_steps_per_s"]
            rows.append(row)
            print(
                f"batch {batch:5d} horizon {horizon:5d}  "
                f"scan {row['scan_steps_per_s']:12,.0f} steps/s  "
                f"loop {row['loop_steps_per_s']:12,.0f} steps/s  "
                f"ratio {row['scan_over_loop']:6.1f}x  (first call incl. compile: "
                f"scan {row['scan_first_call_s']:.1f}s, "
                f"loop {row['loop_first_call_s']:.1f}s)",
                flush=True,
            )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batches 1 and 64, horizon 50, 3 repeats (a smoke test)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write every figure to FILE"
    )
    args = parser.parse_args(argv)
    if args.quick:
        batches, horizons, repeats = (1, 64), (50,), 3
    else:
        batches, horizons, repeats = (1, 64, 1024), (50, 1000), 5
    result = {
        "benchmark": "imagination",
        "machine": machine(),
        "rows": run(batches, horizons, repeats),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
