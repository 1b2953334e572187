"""Imagination throughput of the paper-sized model, three ways side by side:

- **scan**: janus-jax ``imagine``, the whole horizon as one jitted ``lax.scan``,
  vmapped over the start states;
- **loop**: the scan's body (``dream_step``), vmapped and jitted alone, called once
  per step from Python, as a direct port of a PyTorch loop would do;
- **torch**: ``benchmarks.torch_peer``, the same model, weights and sampling in
  PyTorch eager (``nn.LSTMCell``, ``nn.Linear``), a Python loop under ``no_grad``,
  with all cores and with one thread: on a shared machine torch's OpenMP threads
  can stall for milliseconds at every op while another process holds a core, so
  the ratio is taken against the faster of the two.

The model: latent Z=32, LSTM H=256, K=5 mixtures per latent dimension, controller
MLPs 256x256 (tanh) on [z, h], A=3 bounded continuous actions, temperature 1.15.
Each figure is the median of several calls after a first call (which includes
compilation for JAX); the ratios are what matter, absolute times drift on a shared
machine.

FLOPs of one dream step for one example, counted by hand from the layer shapes
(2 per multiply-add of each matrix product; elementwise work and sampling are
left out, under 1%):

    LSTM           2 (Z + A + H) 4H            = 2 * 291 * 1024      =   595,968
    mixture head   2 H (3 Z K)                 = 2 * 256 * 480       =   245,760
    reward, done   2 H * 2                     =                          1,024
    actor MLP      2 (288*256 + 256*256 + 256*3)                     =   280,064
    critic MLP     2 (288*256 + 256*256 + 256*1)                     =   279,040
    total                                                            = 1,401,856

Achieved GFLOP/s = that count x steps/s, set against a 1024x1024 float32 matmul
jitted with JAX, timed just before and after the scan in the same row. Memory is
host RSS (``peak_memory``) during one more call of the largest case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.common import block, machine, write_result
from benchmarks.probes import matmul_gflops, peak_memory, weight_stream
from janus_jax import ActionSpec, MDNRNNConfig, NetworkConfig, VAEConfig
from janus_jax.imagination import (
    DreamState,
    WorldModelParams,
    controller_act,
    dream_step,
    imagine,
)
from janus_jax.models import controller, mdn_rnn, vae

TEMPERATURE = 1.15
TORCH_METHODS = ("torch", "torch_1t")
PROBE_STEPS = 10


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


def step_flops(params: WorldModelParams) -> int:
    """Returns the matmul FLOPs of one dream step for one example (see the module
    docstring): M's LSTM layers and heads, C's actor and critic MLPs."""
    m = params.mdn_rnn.config
    z, h, k = m.latent_dim, m.hidden_dim, m.num_mixtures
    lstm = 2 * (z + m.action_dim + h) * 4 * h + (m.rnn_layers - 1) * 2 * 2 * h * 4 * h
    heads = 2 * h * 3 * z * k + 2 * h * 2
    sizes = (z + h, *params.controller.config.layer_sizes)

    def mlp(out: int) -> int:
        return sum(2 * i * o for i, o in zip(sizes, (*sizes[1:], out), strict=True))

    return lstm + heads + mlp(params.controller.action.dim) + mlp(1)


def _z0(batch: int) -> jax.Array:
    return jax.random.normal(jax.random.key(1), (batch, 32))


def _scan_runner(params, batch, horizon):
    run = jax.jit(imagine, static_argnames=("horizon",))
    z0 = _z0(batch)
    return lambda: run(
        jax.random.key(2), params, z0, None, horizon=horizon, temperature=TEMPERATURE
    )


def _loop_runner(params, batch, horizon):
    # The scan's body, compiled alone (vmapped over the batch) and called once per
    # step from Python: what a direct port of a PyTorch loop does.
    tau = jnp.float32(TEMPERATURE)
    c_params = params.controller

    def policy(key, features):  # imagine's default: C, sampling
        return controller_act(c_params, key, features)

    @jax.jit
    def step(key, state):
        keys = jax.random.split(key, batch)
        return jax.vmap(lambda k, s: dream_step(params, policy, s, k, tau))(keys, state)

    state0 = DreamState(
        carry=mdn_rnn.initial_carry(params.mdn_rnn.config, (batch,)),
        latent=_z0(batch),
        alive=jnp.ones((batch,)),
    )

    def run():
        state, records = state0, []
        for key in jax.random.split(jax.random.key(2), horizon):
            state, record = step(key, state)
            records.append(record)
        return records

    return run


def _torch_runner(peer, model, batch, horizon, threads):
    import torch

    z0 = torch.from_numpy(np.array(_z0(batch)))
    generator = torch.Generator().manual_seed(2)

    def run():
        torch.set_num_threads(threads)
        return peer.imagine_torch(model, z0, horizon, TEMPERATURE, generator)

    return run


def _time(fn, repeats: int, budget_s: float, first_counts: bool):
    """Returns (first call s, median s, number of calls in the median): up to
    ``repeats`` calls after the first, as many as fit in ``budget_s`` (judged by
    the second call); where the first call counts (no compilation) and alone
    passes the budget, it stands in for them."""

    def timed() -> float:
        start = time.perf_counter()
        block(fn())
        return time.perf_counter() - start

    first = timed()
    if first_counts and first >= budget_s:
        return first, first, 1
    times = [timed()]
    while len(times) < repeats and sum(times) + times[0] <= budget_s:
        times.append(timed())
    return first, statistics.median(times), len(times)


def _probe_seconds_per_step(peer, model, batch: int, threads: int) -> float:
    """Returns the median seconds per step of three 10-step torch dreams."""
    probe = _torch_runner(peer, model, batch, PROBE_STEPS, threads)
    probe()  # warm-up: allocator, MKL
    times = []
    for _ in range(3):
        start = time.perf_counter()
        probe()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / PROBE_STEPS


def _row(params, peer, model, batch, horizon, repeats, budget_s, flops):
    row = {"batch": batch, "horizon": horizon, "repeats": {}, "notes": []}
    runners = {
        "scan": _scan_runner(params, batch, horizon),
        "loop": _loop_runner(params, batch, horizon),
    }
    for name in TORCH_METHODS:
        row[f"{name}_steps_per_s"] = row[f"{name}_first_call_s"] = None
    cores = os.cpu_count() or 1
    if peer is not None:
        runners["torch_1t"] = _torch_runner(peer, model, batch, horizon, 1)
        if cores > 1:
            # All cores can stall for milliseconds at every op on a busy machine
            # (OpenMP waits for a core another process holds): a probe says first
            # whether a dream of this length fits the budget at all.
            step_s = _probe_seconds_per_step(peer, model, batch, cores)
            row["torch_probe_s_per_step"] = step_s
            if step_s * horizon < budget_s:
                runners["torch"] = _torch_runner(peer, model, batch, horizon, cores)
            else:
                row["notes"].append(
                    f"torch {cores} threads not run: {1e3 * step_s:.0f} ms a step "
                    "on a 10-step probe"
                )
    # The machine's matmul speed swings with other processes' load (we saw 130 to
    # 290 GFLOP/s in one afternoon): measure it on both sides of the scan's timing.
    matmul = [matmul_gflops()]
    for name, runner in runners.items():
        if name == "loop":
            matmul.append(matmul_gflops())
        first, median, n = _time(runner, repeats, budget_s, name in TORCH_METHODS)
        if n < repeats:
            row["notes"].append(f"{name}: median of {n} (first call {first:.0f}s)")
        row["repeats"][name] = n
        row[f"{name}_steps_per_s"] = batch * horizon / median
        row[f"{name}_first_call_s"] = first
    scan = row["scan_steps_per_s"]
    row["scan_over_loop"] = scan / row["loop_steps_per_s"]
    torch_speeds = [row[f"{name}_steps_per_s"] for name in TORCH_METHODS]
    best = max((s for s in torch_speeds if s), default=None)
    row["best_torch_steps_per_s"] = best
    row["scan_over_torch"] = scan / best if best else None
    row["scan_gflops"] = flops * scan / 1e9
    row["matmul_gflops"] = statistics.mean(matmul)
    row["matmul_gflops_before_after_scan"] = matmul
    row["scan_fraction_of_matmul"] = row["scan_gflops"] / row["matmul_gflops"]
    if "torch_1t" in runners:
        runners["torch"] = runners.pop("torch_1t")  # memory: threads do not matter
    return row, runners


def _fmt(x, spec: str) -> str:
    width = spec[: len(spec) - len(spec.lstrip("0123456789"))]
    return "-".rjust(int(width or 0)) if x is None else format(x, spec)


def _header(cores: int) -> str:
    torch_n = f"torch{cores}t/s"
    return (
        f"{'batch':>5} {'horizon':>7} {'scan/s':>9} {'loop/s':>9} {torch_n:>10} "
        f"{'torch1t/s':>9} {'scan/loop':>9} {'scan/torch':>10} {'GFLOP/s':>7} "
        f"{'matmul':>6} {'%':>4}  first call s (scan/loop/torch{cores}t/torch1t)"
    )


def _print_row(row):
    methods = ("scan", "loop", *TORCH_METHODS)
    firsts = "/".join(_fmt(row[f"{m}_first_call_s"], ".1f") for m in methods)
    fraction = 100 * row["scan_fraction_of_matmul"]
    print(
        f"{row['batch']:5d} {row['horizon']:7d} {row['scan_steps_per_s']:9,.0f} "
        f"{row['loop_steps_per_s']:9,.0f} "
        f"{_fmt(row['torch_steps_per_s'], '10,.0f')} "
        f"{_fmt(row['torch_1t_steps_per_s'], '9,.0f')} "
        f"{row['scan_over_loop']:8.1f}x {_fmt(row['scan_over_torch'], '9.1f')}"
        f"{'x' if row['scan_over_torch'] else ' '} "
        f"{row['scan_gflops']:7.1f} {row['matmul_gflops']:6.0f} {fraction:3.0f}%  "
        f"{firsts}" + "".join(f"  [{note}]" for note in row["notes"]),
        flush=True,
    )


def _target(rows, wanted, key, batch, horizon, scale=1.0, unit="x"):
    row = next(
        (r for r in rows if (r["batch"], r["horizon"]) == (batch, horizon)), None
    )
    value = None if row is None else row[key]
    if value is None:
        why = "not run (quick mode)" if row is None else "torch not installed"
        return {
            "wanted": f">= {wanted:g}{unit}",
            "measured": None,
            "met": False,
            "note": why,
        }
    measured = round(value * scale, 2)
    return {
        "wanted": f">= {wanted:g}{unit}",
        "measured": measured,
        "met": bool(value * scale >= wanted),
    }


def targets(rows: list[dict]) -> dict:
    """Returns the issue's targets, each {"wanted", "measured", "met"} (and "note"
    where it could not be measured); batch-1 scan/loop uses the longest horizon."""
    longest = max(r["horizon"] for r in rows)
    return {
        "scan/torch, batch 1, horizon 1000": _target(
            rows, 10, "scan_over_torch", 1, 1000
        ),
        "scan/torch, batch 1024, horizon 1000": _target(
            rows, 2, "scan_over_torch", 1024, 1000
        ),
        "scan % of matmul GFLOP/s, batch 1024, horizon 1000": _target(
            rows, 50, "scan_fraction_of_matmul", 1024, 1000, 100, "%"
        ),
        f"scan/loop, batch 1, horizon {longest}": _target(
            rows, 5, "scan_over_loop", 1, longest
        ),
    }


def run(quick: bool = False) -> dict:
    """Returns {"rows", "matmul_gflops", "step_flops", "peak_memory", "targets", ...},
    printing the table as it goes. quick: batches 1 and 64, horizon 50, 2 repeats;
    otherwise batches 1, 64, 1024, horizons 50 and 1000, 3 repeats. Repeats drop
    where they would pass a time budget per case and method (5 s quick, 75 s
    otherwise); the row's "repeats" and "notes" say so."""
    if quick:
        batches, horizons, repeats, budget_s = (1, 64), (50,), 2, 5.0
    else:
        batches, horizons, repeats, budget_s = (1, 64, 1024), (50, 1000), 3, 75.0
    try:
        from benchmarks import torch_peer
    except ImportError:
        torch_peer = None
        print("torch is not importable: the torch columns are skipped", flush=True)
    params = paper_params()
    model = torch_peer.from_jax(params) if torch_peer else None
    flops = step_flops(params)
    result = {
        "step_flops": flops,
        "temperature": TEMPERATURE,
        "methods": {
            "scan": "janus_jax.imagine, one jitted lax.scan, vmapped",
            "loop": "dream_step vmapped and jitted, called per step from Python",
            "torch": f"PyTorch eager loop (benchmarks.torch_peer), {os.cpu_count()} "
            "threads; skipped where a 10-step probe says it would pass the budget",
            "torch_1t": "the same with 1 thread",
            "scan_over_torch": "against the faster of torch and torch_1t",
        },
    }
    print(
        f"one dream step: {flops:,} FLOPs per example; repeats: {repeats}; matmul: "
        "GFLOP/s of a jitted 1024x1024 float32 matmul around the scan's timing",
        flush=True,
    )
    print(_header(os.cpu_count() or 1), flush=True)
    rows, largest = [], (max(batches), max(horizons))
    for horizon in horizons:
        for batch in batches:
            row, runners = _row(
                params,
                torch_peer,
                model,
                batch,
                horizon,
                repeats,
                budget_s,
                flops,
            )
            rows.append(row)
            _print_row(row)
            if (batch, horizon) == largest:
                result["peak_memory"] = {"batch": batch, "horizon": horizon} | {
                    name: peak_memory(runner) for name, runner in runners.items()
                }
            del runners
    if torch_peer:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    result["rows"] = rows
    result["matmul_gflops"] = statistics.median(r["matmul_gflops"] for r in rows)
    floor = result["weight_stream"] = weight_stream(params, max(horizons))
    batch1 = [r for r in rows if r["batch"] == 1 and r["horizon"] == max(horizons)]
    print(
        f"batch-1 floor: the step's matrix-vector products alone read "
        f"{floor['weight_mb_per_step']:.2f} MB of weights in "
        f"{floor['matvecs_us_per_step']:.0f} us ({floor['matvecs_gb_per_s']:.0f} "
        f"GB/s; a 64 MB matrix-vector product streams at "
        f"{floor['stream_gb_per_s']:.0f} GB/s);"
        f" the scan's whole step takes {1e6 / batch1[0]['scan_steps_per_s']:.0f} us",
        flush=True,
    )
    result["targets"] = targets(rows)
    for name, m in result["peak_memory"].items():
        if isinstance(m, dict):
            print(
                f"memory, batch {largest[0]} horizon {largest[1]}, {name}: peak RSS "
                f"+{_fmt(m['peak_rss_above_before_mb'], ',.0f')} MB over "
                f"{_fmt(m['rss_before_mb'], ',.0f')} MB during one call; returns "
                f"{m['output_mb']:,.0f} MB",
                flush=True,
            )
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="batches 1 and 64, horizon 50, 2 repeats (a smoke test)",
    )
    parser.add_argument(
        "--json", metavar="FILE", help="also write every figure to FILE"
    )
    args = parser.parse_args(argv)
    result = {"benchmark": "imagination", "machine": machine()} | run(args.quick)
    for name, t in result["targets"].items():
        mark = "met" if t["met"] else t.get("note", "MISSED")
        print(
            f"{name:52s} wanted {t['wanted']:>6} measured {t['measured']!s:>7} {mark}"
        )
    if args.json:
        write_result(args.json, result)


if __name__ == "__main__":
    main()
