"""``janus-jax bench``: the throughput benchmarks of a source checkout.

``benchmarks/`` sits beside ``janus_jax/`` in the repository and is not
installed: a top-level ``benchmarks`` package would collide with any other
project's. So the command finds the checkout that janus_jax was imported from
(``pip install -e .`` leaves it there) and runs that checkout's harness.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import janus_jax

PROG = "janus-jax bench"


def checkout_benchmarks() -> Path | None:
    """Returns the ``benchmarks/`` directory of the source checkout that janus_jax
    was imported from, or None when janus_jax is installed without one."""
    path = Path(janus_jax.__file__).resolve().parents[1] / "benchmarks"
    return path if (path / "harness.py").is_file() else None


def main(argv: list[str]) -> int:
    """Runs the checkout's ``python -m benchmarks ARGV``; returns its exit status,
    2 (one line on stderr) without a checkout."""
    path = checkout_benchmarks()
    if path is None:
        print(
            f"{PROG}: error: `{PROG}` runs the benchmarks of a source checkout, "
            "which this janus-jax was not installed from: git clone the "
            f"repository, then `python -m benchmarks` or `{PROG}` there",
            file=sys.stderr,
        )
        return 2
    # First on the path, so that no other project's `benchmarks` comes first.
    root = str(path.parent)
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    harness = importlib.import_module("benchmarks.harness")
    return harness.main(argv, prog=PROG)
