"""Timing helpers and the machine description every benchmark reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import jax


def block(tree) -> None:
    """Waits until every array in ``tree`` is computed."""
    jax.tree.map(
        lambda x: x.block_until_ready() if hasattr(x, "block_until_ready") else x, tree
    )


def time_call(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Returns (first call seconds, median seconds of ``repeats`` calls after it)."""
    start = time.perf_counter()
    block(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn())
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def machine() -> dict:
    """Returns the CPU model, cores, JAX devices, library versions and git commit."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip() for line in f if "model name" in line
            )
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import flax
    import optax

    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "devices": [str(d) for d in jax.devices()],
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch_version,
        "commit": commit,
    }


def write_result(path: str, result: dict) -> None:
    """Writes a benchmark's figures to ``path`` as JSON (--json FILE; numpy
    scalars as floats) and says so."""
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=float)
    print(f"wrote {path}")


def standalone_main(
    prog: str, run: Callable[[bool], dict], argv: list[str] | None = None
) -> int:
    """The command line of a benchmark run on its own (``python -m PROG
    [--quick] [--json FILE]``): ``run(quick)`` returns the figures."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        write_result(args.json, result)
    return 0
