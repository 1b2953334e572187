"""``janus-jax``: the command line. Presets and overrides in, run directories out;
the work itself is ``janus_jax.train.pipeline``.

A user's mistake (unknown preset or env, a bad override, a directory holding
another run, a dataset of another env...) ends with one line on stderr and exit
status 2, never a traceback (``JANUS_JAX_DEBUG=1`` shows it, for bug reports);
so does a full disk, with the file, what is intact and what to do.

``parser`` holds the options, ``commands`` what each command does, ``bench`` the
way to a source checkout's benchmarks; ``main`` runs one command.
"""

from __future__ import annotations

import os
import sys

from janus_jax.cli import bench
from janus_jax.cli.commands import _config, _dream, _evaluate, _gap, _train
from janus_jax.cli.parser import (
    EPILOG,
    STAGES,
    build_parser,
    initialize_distributed,
    run_config,
)

__all__ = [
    "EPILOG",
    "STAGES",
    "build_parser",
    "initialize_distributed",
    "main",
    "run_config",
]


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit status (2 for a user's mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        return bench.main(argv[1:])
    try:
        initialize_distributed(argv)
    except ValueError as err:
        print(f"janus-jax {argv[0]}: error: {err}", file=sys.stderr)
        return 2
    from janus_jax.run.checkpoint import CheckpointError
    from janus_jax.run.files import DiskFullError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Looked up here, in this module, so that a test can replace a handler.
    handlers = {"evaluate": _evaluate, "dream": _dream, "gap": _gap, "config": _config}
    handler = handlers.get(args.command, _train)
    try:
        return handler(args)
    except (ValueError, CheckpointError, FileNotFoundError, DiskFullError) as err:
        if os.environ.get("JANUS_JAX_DEBUG"):
            raise
        message = " ".join(str(err).split())
        print(f"janus-jax {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"janus-jax {args.command}: interrupted; continue with --resume",
            file=sys.stderr,
        )
        return 130
