"""``python -m benchmarks {imagination,ppo,world-model,memories,all} [--quick]
[--json FILE]`` (also ``janus-jax bench``): runs the benchmarks, prints their
tables and a summary of the targets, and writes every figure with the machine,
library versions and git commit to FILE."""

from __future__ import annotations

import argparse
import importlib
import time

from benchmarks.common import machine, write_result

# Each module has run(quick: bool) -> {"rows": [...], "targets": {...}, ...}.
MODULES = {
    "imagination": "benchmarks.imagination",
    "ppo": "benchmarks.ppo",
    "world-model": "benchmarks.world_model",
    "memories": "benchmarks.memories",
}


def build_parser(prog: str = "python -m benchmarks") -> argparse.ArgumentParser:
    """Returns the harness's parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Throughput benchmarks of janus-jax, side by side with peers.",
    )
    parser.add_argument(
        "which",
        choices=[*MODULES, "all"],
        help="imagination: imagined steps/s (scan, per-step loop, PyTorch eager); "
        "ppo: real env steps/s of controller training; world-model: V and M "
        "training throughput (and PyTorch's VAE); memories: imagined steps/s of M's "
        "LSTM and attention memory side by side; all: the four",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, a smoke test (CI runs it); the figures mean little",
    )
    parser.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    return parser


def run(which: str, quick: bool, json_path: str | None = None) -> dict:
    """Returns the results of the chosen benchmarks (and writes them to json_path)."""
    names = list(MODULES) if which == "all" else [which]
    start = time.perf_counter()
    result = {"machine": machine(), "quick": quick, "benchmarks": {}}
    for name in names:
        print(f"\n== {name}{' (quick)' if quick else ''} ==", flush=True)
        module = importlib.import_module(MODULES[name])
        result["benchmarks"][name] = module.run(quick)
    result["wall_time_s"] = time.perf_counter() - start
    print("\n== targets ==")
    for name, bench in result["benchmarks"].items():
        for target, t in bench.get("targets", {}).items():
            mark = "met" if t.get("met") else t.get("note", "MISSED")
            print(
                f"{name:12s} {target:48s} wanted {t['wanted']!s:>10} "
                f"measured {t['measured']!s:>10}  {mark}"
            )
    if json_path:
        write_result(json_path, result)
    return result


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Runs the command line; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    run(args.which, args.quick, args.json)
    return 0
