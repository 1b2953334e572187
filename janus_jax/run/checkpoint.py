"""Checkpoints of one training phase on disk (orbax), plus atomic JSON helpers.

Layout: ``run/checkpoints/<phase>/<step>/{state,progress}``. Orbax writes a step
into ``<step>.orbax-checkpoint-tmp-*`` and renames it when complete, so a crash
mid-save leaves the previous step intact and the half-written one invisible.
``latest.json`` then records the step as saved, so a newest step that later goes
missing (deleted by hand) is refused with what to do, never silently replaced by
an older one. A save that finds the disk full raises ``files.DiskFullError`` and
removes its half-written step, leaving the earlier ones as they were.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from janus_jax.run import files

_MAX_LISTED_MISMATCHES = 3
# Beside the step directories (orbax lists only names that are step numbers).
POINTER_NAME = "latest.json"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or incompatible; the message names the path."""


def _one_line(err: BaseException, limit: int = 300) -> str:
    """Returns ``Type: first line of the message``, short enough for one log line."""
    lines = str(err).strip().splitlines()
    # Tensorstore appends its whole JSON spec, which buries the actual problem.
    text = lines[0].split(" [tensorstore_spec=")[0] if lines else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _unreadable(step_dir: Path, err: Exception) -> CheckpointError:
    """Returns the error for checkpoint files that exist but cannot be read."""
    pointer = step_dir.parent / POINTER_NAME
    return CheckpointError(
        f"checkpoint {step_dir} is unreadable: {_one_line(err)}. Restore it from a "
        f"copy; or delete it and {pointer} to resume from the step before it; or "
        "start the run over (--overwrite)"
    )


def _is_array_like(leaf: Any) -> bool:
    return hasattr(leaf, "shape") and hasattr(leaf, "dtype")


def _flatten(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Returns ``{path: leaf}`` of nested dicts/lists in tree order, with empties."""
    # Not ocp.tree.to_flat_dict: it sorts paths, which would report opt_state
    # leaves before the params a user changed.
    if isinstance(tree, dict) and tree:
        items = tree.items()
    elif isinstance(tree, list | tuple) and tree:
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, child in items:
        flat.update(_flatten(child, (*prefix, str(key))))
    return flat


def _mismatches(saved_tree: Any, abstract_state: Any) -> list[str]:
    """Returns one phrase per leaf whose path, shape or dtype differs, in tree order."""
    # The abstract side goes through orbax's own serialisation so both trees are
    # nested dicts/lists (NamedTuples and dataclasses become dicts); empty nodes
    # are kept because optax states contain them (EmptyState, skip_state=()).
    saved = _flatten(saved_tree)
    wanted = _flatten(ocp.tree.serialize_tree(abstract_state, keep_empty_nodes=True))
    problems = []
    for path, want in wanted.items():
        name, have = "/".join(path), saved.get(path)
        if path not in saved:
            problems.append(f"leaf {name} is missing from the checkpoint")
        elif _is_array_like(want) != _is_array_like(have):
            where = "this run" if _is_array_like(want) else "the checkpoint"
            problems.append(f"leaf {name} is an array only in {where}")
        elif not _is_array_like(want):
            continue
        elif tuple(have.shape) != tuple(want.shape):
            problems.append(
                f"leaf {name} has shape {tuple(have.shape)}, "
                f"this run expects {tuple(want.shape)}"
            )
        elif np.dtype(have.dtype) != np.dtype(want.dtype):
            problems.append(
                f"leaf {name} has dtype {np.dtype(have.dtype)}, "
                f"this run expects {np.dtype(want.dtype)}"
            )
    extra = [path for path in saved if path not in wanted]
    problems += [
        f"leaf {'/'.join(p)} is in the checkpoint but not in this run" for p in extra
    ]
    return problems


class PhaseCheckpoints:
    """The checkpoints of one training phase, all in one directory.

    ``state`` is any pytree of jax/numpy arrays: flax struct dataclasses, optax
    states, NamedTuples, dicts. Store PRNG keys as ``jax.random.key_data(key)``
    (uint32) and rebuild them with ``jax.random.wrap_key_data``; typed key arrays
    are not supported here. Saves are synchronous: when ``save`` returns, the step
    is on disk.
    """

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        # Absolute so every message names a path the user can paste.
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            # "saved" must mean "on disk": the caller may exit right after save().
            enable_async_checkpointing=False,
            # Creating the directory on open would turn a mistyped resume path
            # into an empty run; save() creates it instead.
            create=False,
        )
        # Registering handlers up front lets a fresh process read metadata and
        # progress of steps it did not save (otherwise orbax returns None and warns).
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "progress": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        """Returns the newest complete step on disk, or None when there is none.

        Raises CheckpointError when ``latest.json`` records a newer step as saved:
        that step was deleted or moved, and resuming from an older one (or from
        nothing) without saying so would train part of the run twice."""
        latest = self._manager.latest_step()
        recorded = self._recorded_step()
        if recorded is not None and (latest is None or recorded > latest):
            # Orbax lists the steps once, when opened: another instance may have
            # saved since. Only a step missing from the disk itself is an error.
            self._manager.reload()
            latest = self._manager.latest_step()
        if recorded is not None and (latest is None or recorded > latest):
            pointer = self.directory / POINTER_NAME
            if latest is None:
                there, instead = "no step is there", "to start this phase over"
            else:
                there = f"the newest step there is {latest}"
                instead = f"to resume from step {latest}"
            raise CheckpointError(
                f"checkpoint step {recorded} is missing from {self.directory} "
                f"(deleted or moved?): {pointer} records it as saved, but {there}. "
                f"Put {self.directory / str(recorded)} back; or delete {pointer} "
                f"{instead}; or start the run over (--overwrite)"
            )
        return latest

    def _recorded_step(self) -> int | None:
        """Returns the step ``latest.json`` records as saved, None without one."""
        pointer = self.directory / POINTER_NAME
        try:
            step = json.loads(pointer.read_text(encoding="utf-8"))["step"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(
                f"{pointer} is unreadable ({_one_line(err)}): delete it to resume "
                f"from the newest step in {self.directory}"
            ) from None
        return int(step)

    def all_steps(self) -> list[int]:
        """Returns the complete steps on disk, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, progress: dict) -> None:
        """Returns None once ``state`` and ``progress`` of ``step`` are on disk.

        Raises CheckpointError when ``step`` is not after the latest saved step:
        orbax would silently skip such a save, losing the caller's state.
        """
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        latest = self.latest_step()
        if latest is not None and step <= latest:
            raise CheckpointError(
                f"cannot save step {step} in {self.directory}: "
                f"it is not after the latest checkpoint, step {latest}"
            )
        try:
            json.dumps(progress)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"progress for step {step} is not JSON-serialisable: {err}"
            ) from err
        self.directory.mkdir(parents=True, exist_ok=True)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(progress),
        )
        try:
            saved = self._manager.save(step, args=args)
            self._manager.wait_until_finished()
        except Exception as err:
            reason = files.no_room(err)
            if reason is None:
                raise
            # The half-written step holds what room was left: give it back.
            for partial in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
                shutil.rmtree(partial, ignore_errors=True)
            intact = (
                "this phase has no earlier checkpoint"
                if latest is None
                else f"the latest good checkpoint, step {latest}, is intact"
            )
            raise files.DiskFullError(
                self.directory / str(step), reason, intact
            ) from err
        assert saved, f"orbax skipped step {step} although it is after {latest}"
        if jax.process_index() == 0:
            files.write_json(self.directory / POINTER_NAME, {"step": step})

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Returns ``(state, progress)`` of ``step`` (default: latest).

        ``state`` has the pytree types of ``abstract_state`` (arrays or
        ``jax.ShapeDtypeStruct``); without it orbax would return optax states as
        plain dicts. Paths, shapes and dtypes are checked against the saved
        metadata first, so a config change gives a readable CheckpointError.
        """
        step = self._existing_step(step)
        step_dir = self.directory / str(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            metadata = self._manager.item_metadata(step)["state"]
        except Exception as err:  # tensorstore/orbax raise many unrelated types
            raise _unreadable(step_dir, err) from err
        if metadata is None:
            raise CheckpointError(f"checkpoint {step_dir} has no readable state")
        problems = _mismatches(metadata.tree, abstract)
        if problems:
            shown = "; ".join(problems[:_MAX_LISTED_MISMATCHES])
            more = len(problems) - _MAX_LISTED_MISMATCHES
            if more > 0:
                shown += f"; and {more} more"
            raise CheckpointError(
                f"checkpoint {step_dir} does not match this run's config: {shown}"
            )
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            progress=ocp.args.JsonRestore(),
        )
        try:
            restored = self._manager.restore(step, args=args)
        except Exception as err:
            raise _unreadable(step_dir, err) from err
        return restored.state, dict(restored.progress)

    def progress(self, step: int | None = None) -> dict:
        """Returns the progress JSON of ``step`` (default: latest); reads no arrays."""
        step = self._existing_step(step)
        args = ocp.args.Composite(progress=ocp.args.JsonRestore())
        try:
            progress = self._manager.restore(step, args=args).progress
        except Exception as err:
            raise _unreadable(self.directory / str(step), err) from err
        return dict(progress)

    def close(self) -> None:
        """Returns None after orbax's background threads are shut down."""
        self._manager.close()

    def __enter__(self) -> PhaseCheckpoints:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _existing_step(self, step: int | None) -> int:
        """Returns ``step``, or the latest one, after checking it is on disk."""
        if step is None:
            latest = self.latest_step()
            if latest is None:
                raise CheckpointError(f"no checkpoint in {self.directory}")
            return latest
        steps = self.all_steps()
        if step not in steps:
            raise CheckpointError(
                f"no checkpoint for step {step} in {self.directory} "
                f"(steps on disk: {steps})"
            )
        return step


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Returns None once ``obj`` is in ``path`` as indented JSON, never half-written."""
    files.write_json(path, obj)


def read_json(path: str | os.PathLike, what: str) -> dict:
    """Returns the JSON object in ``path``; ``what`` names it in error messages."""
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise CheckpointError(f"no {what} at {path}") from err
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{what} at {path} is not valid JSON: line {err.lineno} "
            f"column {err.colno}: {err.msg}"
        ) from err
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{what} at {path} is not a JSON object (found {type(obj).__name__})"
        )
    return obj
