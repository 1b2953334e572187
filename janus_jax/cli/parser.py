"""``janus-jax``'s arguments: every subcommand's options and help, the start of
a multi-process run, and the RunConfig that a run's options describe."""

from __future__ import annotations

import argparse
import dataclasses
import re

from janus_jax import parallel
from janus_jax.cli.options import STAGES as STAGES
from janus_jax.cli.options import (
    path_option,
    policy_option,
    renames_on_stderr,
    run_dir_option,
)
from janus_jax.config.tasks import env_dir_name as env_dir_name

# The rest of janus-jax is imported inside the functions: gymnax computes on
# import, and a multi-process run must call jax.distributed.initialize first.

EPILOG = """overrides: --set SECTION.FIELD=VALUE (repeatable), values as JSON
(3, 0.5, 1e5, true, null, [64,64]) or text. Sections: world_model (collection, V and
M; world_model.vae and world_model.mdn_rnn are the architectures), network (C's
MLPs), ppo, controller (steps, envs, imagination_ratio, learn_from_real,
imagination_horizon, evaluation); seed is the run's one seed (--seed N).
`janus-jax config --preset NAME` lists every field with its value and meaning.

devices: every phase runs data-parallel over all visible devices (of all
processes). Batch sizes (world_model.vae_batch_size, world_model.mdn_batch_size,
controller.num_envs) are GLOBAL: the whole batch per step, split evenly over the
devices; one that does not split is rounded up to the next multiple of the
device count (the run prints each change and records it in summary.json), and
otherwise results do not depend on the device count. Several hosts: start the
same command on each with --coordinator HOST0:PORT --num-processes N
--process-id I (or JAX's JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID) and an --out on a filesystem all hosts share; process 0 writes
logs, pictures and the summary."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block above them)."""

    def error(self, message: str):
        # A required option with a hidden old spelling is a group of one to
        # argparse ("one of the arguments --run is required").
        one = re.fullmatch(r"one of the arguments (\S+) is required", message)
        if one:
            message = f"the following arguments are required: {one.group(1)}"
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _run_options(parser: argparse.ArgumentParser, *, dataset: bool = False) -> None:
    from janus_jax.config import presets

    add = parser.add_argument
    add(
        "--preset",
        metavar="NAME",
        help=f"one of {', '.join(presets.PRESETS)} (default: {presets.DEFAULT}; "
        "with --env, the recipe for the env's observations and actions)",
    )
    add(
        "--env",
        metavar="ID",
        action="append",
        help="train on this env instead of the preset's (V and M are sized from "
        "its observations): a gymnax or gymnasium id, module:EnvId-vN (gymnasium "
        "imports the module first), or module:Class, a gymnasium.Env subclass "
        "made with --set 'env_kwargs={...}' (the module is imported from the "
        "installed packages, else from the working directory); repeated with "
        "train-world-model, one V and M shared by the envs (docs: Multi-task)",
    )
    add(
        "--env-module",
        metavar="MODULE",
        help="import MODULE (which registers gymnasium ids) before --env ID is "
        "looked up; the run records --env as MODULE:ID",
    )
    add(
        "--out",
        metavar="DIR",
        help="run directory (default: runs/PRESET; with --env and no --preset, "
        "runs/ENV)",
    )
    add("--seed", type=int, metavar="N", help="the run's seed (= --set seed=N)")
    add(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoints",
    )
    add(
        "--overwrite",
        action="store_true",
        help="replace the run in --out (only the files a run writes)",
    )
    add(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override one config field, e.g. --set controller.total_timesteps=100000 "
        "(see below)",
    )
    add(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to DIR/tensorboard",
    )
    add("--no-progress", action="store_true", help="no progress bars")
    _distributed_options(parser, help=True)
    if dataset:
        add(
            "--dataset",
            metavar="PATH",
            help="train on this existing dataset instead of collecting one",
        )


_DISTRIBUTED = (  # flag, metavar, type, help
    ("--coordinator", "HOST:PORT", str, "HOST:PORT of process 0 (see below)"),
    ("--num-processes", "N", int, "number of processes of a multi-process run"),
    ("--process-id", "I", int, "this process's index, 0 .. N-1 (0 writes the logs)"),
)


def _distributed_options(parser: argparse.ArgumentParser, *, help: bool) -> None:
    for flag, meta, kind, text in _DISTRIBUTED:
        parser.add_argument(flag, metavar=meta, type=kind, help=text if help else None)


def initialize_distributed(argv: list[str]) -> bool:
    """Returns whether this is a multi-process run, after starting JAX's
    distributed runtime from argv's --coordinator, --num-processes and
    --process-id (or JAX's environment variables) before anything touches JAX."""
    if not argv or argv[0] not in STAGES:
        return False
    pre = argparse.ArgumentParser(add_help=False)
    _distributed_options(pre, help=False)
    known, _ = pre.parse_known_args(argv[1:])
    return parallel.initialize(known.coordinator, known.num_processes, known.process_id)


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of every subcommand; each option says what it does."""
    from janus_jax.config import presets

    parser = _Parser(
        prog="janus-jax",
        description="World Models (V: VAE, M: MDN-RNN, C: PPO on [z, h]) in JAX.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter
    commands = {
        "train": "the whole pipeline: collect, world model, controller, evaluation",
        "collect": "collect the random-policy dataset into DIR/data",
        "train-world-model": "train V and M (collecting first if DIR has no data)",
        "train-controller": "train C by PPO on real and dreamed experience",
    }
    for name, text in commands.items():
        p = sub.add_parser(
            name, help=text, description=text, epilog=EPILOG, formatter_class=fmt
        )
        _run_options(p, dataset=name == "train-world-model")
    p = sub.add_parser("evaluate", help="return of a trained agent in the real env")
    run_dir_option(p)
    p.add_argument(
        "--episodes",
        type=int,
        default=32,
        metavar="N",
        help="episodes to average (default 32)",
    )
    policy_option(p)
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed")
    p = sub.add_parser(
        "dream",
        help="GIF of a real episode, V's reconstruction and M's open-loop dream",
    )
    run_dir_option(p)
    path_option(p, "--gif", "--out", "FILE.gif", "the GIF to write")
    p.add_argument(
        "--temperature",
        type=float,
        metavar="T",
        help="M's sampling temperature (default: the config's)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=100,
        metavar="N",
        help="length of the episode (default 100)",
    )
    p = sub.add_parser(
        "gap",
        help="the dream-vs-real gap of a trained agent, written to DIR/gap.json",
    )
    run_dir_option(p)
    p.add_argument(
        "--steps",
        type=int,
        default=1000,
        metavar="N",
        help="real steps per env to measure on (default 1000)",
    )
    p.add_argument(
        "--envs", type=int, default=4, metavar="N", help="real envs (default 4)"
    )
    policy_option(p)
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed")
    sub.add_parser(
        "bench",
        help="throughput benchmarks (python -m benchmarks); see `janus-jax bench -h`",
        add_help=False,
    )
    p = sub.add_parser("config", help="print every field of a preset, with --set keys")
    p.add_argument(
        "--preset",
        default=presets.DEFAULT,
        metavar="NAME",
        help=f"one of {', '.join(presets.PRESETS)}",
    )
    return parser


def shared_envs(args) -> list[str]:
    """Returns every --env given, leaving ``args.env`` the first (the one the
    preset's recipe and V's observations are taken from) or None."""
    envs = getattr(args, "env", None) or []
    envs = [envs] if isinstance(envs, str) else list(envs)
    args.env = envs[0] if envs else None
    return envs


def run_config(args, say_rederived: bool = True):
    """Returns the RunConfig of the preset with --env, --set and --seed applied
    (--seed and --set seed with different values are refused); the line saying
    which V and M the env got is printed when ``say_rederived``."""
    import jax

    from janus_jax.config import presets
    from janus_jax.config.run import apply_overrides, with_env

    envs = shared_envs(args)
    if len(envs) > 1:
        raise ValueError(
            f"--env was given {len(envs)} times ({', '.join(envs)}): one env for "
            f"janus-jax {args.command}; several only for train-world-model"
        )
    env = _env_in_module(args.env, getattr(args, "env_module", None))
    if env:
        _check_env(env)
    overrides = getattr(args, "overrides", [])
    if args.preset is None:
        args.picked_for = env  # the run directory is named after the env
        args.preset = _recipe_preset(env, overrides) if env else presets.DEFAULT
    config = presets.preset(args.preset)
    if getattr(args, "tensorboard", False):
        controller = dataclasses.replace(config.controller, use_tensorboard=True)
        config = dataclasses.replace(config, controller=controller)
    with renames_on_stderr(f"janus-jax {args.command}"):
        if env and env != config.env_id:
            config, rederived = with_env(config, env, overrides)
            if say_rederived and jax.process_index() == 0:
                print(rederived)
        else:
            config = apply_overrides(config, overrides)
    seed = getattr(args, "seed", None)
    if seed is not None:
        set_seed = any(item.partition("=")[0].strip() == "seed" for item in overrides)
        if set_seed and config.seed != seed:
            raise ValueError(
                f"--seed {seed} and --set seed={config.seed} disagree: give one"
            )
        config = dataclasses.replace(config, seed=seed)
    return config


def default_out(args) -> str:
    """Returns the run directory of a command without --out: runs/PRESET, or
    runs/ENV for an --env whose recipe was picked."""
    env = getattr(args, "picked_for", None)
    return f"runs/{env_dir_name(env)}" if env else f"runs/{args.preset}"


def env_kwargs_overrides(overrides: list[str]) -> list[str]:
    """Returns the --set items that set ``env_kwargs`` or one of its keys."""
    return [
        o for o in overrides if o.partition("=")[0].strip().startswith("env_kwargs")
    ]


def _recipe_preset(env_id: str, overrides: list[str]) -> str:
    """Returns the preset of the recipe for ``env_id``'s spaces, printing which
    (the env is made with the overrides' ``env_kwargs``)."""
    import jax

    from janus_jax.config import presets
    from janus_jax.config.overrides import apply_overrides
    from janus_jax.config.recipes import picked_line, recipe_for
    from janus_jax.envs import spec_of

    own = env_kwargs_overrides(overrides)
    kwargs = apply_overrides(presets.preset(presets.DEFAULT), own).env_kwargs
    spec = spec_of(env_id, **kwargs)
    recipe = recipe_for(spec)
    if jax.process_index() == 0:
        print(picked_line(recipe, spec))
    return recipe.preset


def _check_env(env_id: str) -> None:
    """Raises ValueError for an --env that names no env, advising the --env to
    write (an old id's new one) rather than the Python call."""
    from janus_jax.envs import family_of, ids

    try:
        family_of(env_id)
    except ValueError:
        raise ValueError(ids.unknown_id_message(env_id, option="--env")) from None


def _env_in_module(env_id: str | None, module: str | None) -> str | None:
    """Returns the --env to run: ``MODULE:ID`` where ``--env-module MODULE``
    registers the gymnasium id ID (config.json records it, so every later
    command imports the module first, as gymnasium does for such ids); the
    --env as given otherwise."""
    if module is None:
        return env_id
    from janus_jax.envs import custom, family_of, ids

    if not env_id:
        raise ValueError(
            f"--env-module {module} is given without --env: add --env ID, the "
            "id the module registers"
        )
    custom.import_env_module(module, f"--env-module {module}")
    if ":" in env_id:  # module:EnvId-vN or module:Class names its own module
        return env_id
    try:
        family = family_of(env_id)
    except ValueError:
        unknown = ids.unknown_id_message(env_id, option="--env")
        raise ValueError(f"after importing --env-module {module}: {unknown}") from None
    return f"{module}:{env_id}" if family == "gymnasium" else env_id
