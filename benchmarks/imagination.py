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
from janus_jax.imagination import WorldModelParams, _imagine_one, imagine
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
    # The same per-step computation as imagine's scan body, compiled alone:
    # a horizon-1 dream from the current state, vmapped over the batch.
    def one_step(key, latent, carry):
        traj = _imagine_one(
            key, params, latent, carry, 1, jnp.float32(TEMPERATURE), None
        )
        return traj.next_latents[0], traj

    @jax.jit
    def step(key, latents, carry):
        keys = jax.random.split(key, latents.shape[0])
        next_latents, traj = jax.vmap(one_step)(keys, latents, carry)
        # Advance the carry by replaying the chosen action (what the scan body does).
        actions = controller.encode_action(params.controller.action, traj.actions[:, 0])
        carry, _ = mdn_rnn.step(params.mdn_rnn, carry, latents, actions)
        return next_latents, carry, traj

    z0 = jax.random.normal(jax.random.key(1), (batch, 32))
    carry0 = mdn_rnn.initial_carry(params.mdn_rnn.config, (batch,))

    def run():
        latents, carry, outs = z0, carry0, []
        for key in jax.random.split(jax.random.key(2), horizon):
            latents, carry, traj = step(key, latents, carry)
            outs.append(traj)
        return outs

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
