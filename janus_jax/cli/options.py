"""What the commands share: the training commands' stages and the run options
they hand the pipeline, and old spellings that still work, each with one
warning line on stderr (an option's deprecated name, ``--checkpoint`` for
``--run``, and the renamed config fields given to --set)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings

# The pipeline's stages each training command runs.
STAGES = {
    "train": ("collect", "world_model", "controller", "evaluate"),
    "collect": ("collect",),
    "train-world-model": ("world_model",),
    "train-controller": ("controller",),
}


def pipeline_options(args) -> dict:
    """Returns ``pipeline.run``'s keyword arguments from a training command's
    options (stages, resume, overwrite, progress, dataset); --resume with
    --overwrite is refused."""
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other: pick one")
    return {
        "stages": STAGES[args.command],
        "resume": args.resume,
        "overwrite": args.overwrite,
        "progress": not args.no_progress,
        "dataset": getattr(args, "dataset", None),
    }


class _Deprecated(argparse.Action):
    """An old spelling of an option: sets the new option's value and says on
    stderr what to write instead (it still works, so old scripts run)."""

    def __init__(self, option_strings, dest, *, instead: str, **kwargs):
        self.instead = instead
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: warning: {option_string} is deprecated here: write "
            f"{self.instead}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def path_option(parser, new: str, old: str, metavar: str, help: str) -> None:
    """Adds the required option ``new`` and its deprecated spelling ``old``."""
    group = parser.add_mutually_exclusive_group(required=True)
    dest = new.removeprefix("--")
    group.add_argument(new, dest=dest, metavar=metavar, help=help)
    group.add_argument(
        old,
        dest=dest,
        metavar=metavar,
        action=_Deprecated,
        instead=f"{new} {metavar}",
        help=argparse.SUPPRESS,
    )


def run_dir_option(parser) -> None:
    """Adds the required --run DIR and its deprecated spelling --checkpoint."""
    path_option(
        parser,
        "--run",
        "--checkpoint",
        "DIR",
        "a run directory (what `janus-jax train --out DIR` wrote)",
    )


@contextlib.contextmanager
def renames_on_stderr(prog: str):
    """Prints the old field names used in --set as one warning line each on
    stderr (Python hides DeprecationWarnings outside __main__); other warnings
    are shown as they would have been."""
    from janus_jax.config.renamed import RenamedFieldWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenamedFieldWarning)
        yield
    for w in caught:
        if issubclass(w.category, RenamedFieldWarning):
            print(f"{prog}: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def policy_option(parser) -> None:
    """Adds --policy: how C picks its actions (evaluate, gap)."""
    from janus_jax.config.training import EVAL_POLICIES

    parser.add_argument(
        "--policy",
        choices=EVAL_POLICIES,
        default=None,
        help="C's most likely action, its expected action (mean) or a sampled "
        "one (default: the run's controller.eval_policy)",
    )
