"""Command-line options the experiments share."""

from __future__ import annotations

import argparse


def add_overrides(
    parser: argparse.ArgumentParser, help: str, dest: str = "overrides"
) -> None:
    """Adds ``--set KEY=VALUE`` (repeatable; the list in ``args.<dest>``): config
    overrides as ``janus-jax --set`` takes them."""
    parser.add_argument(
        "--set", dest=dest, action="append", default=[], metavar="KEY=VALUE", help=help
    )
