"""Run logs: a crash-safe metrics.jsonl, optional TensorBoard events, tqdm progress.

The JSON-lines file is the durable record (one flushed line per row, rewound
atomically when a run resumes from a checkpoint); TensorBoard events are a view
for humans, written with tensorboardX so TensorFlow is never needed.

A kill (or a full disk) mid-row leaves a last line without its newline: readers
skip it, and a resumed logger drops it with a warning before appending. A
malformed line anywhere else is corruption and is refused, naming the line.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from janus_jax.run import files

_RESERVED = ("phase", "step", "time_s")
_FIX_LINE = (
    "mend or delete that line by hand (the checkpoints do not depend on the "
    "log), or start the run over (--overwrite)"
)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Returns the rows of a metrics.jsonl file, in order.

    A last line without its newline that does not parse is a write cut short by
    a crash and is ignored; any other malformed line raises ValueError naming the
    file and the 1-based line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics file not found: {path}")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            # Only the final segment can lack its "\n"; that is a torn write.
            if number == len(lines):
                break
            raise ValueError(
                f"{path}: line {number} is not valid JSON: {error}; {_FIX_LINE}"
            ) from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object; {_FIX_LINE}")
        rows.append(row)
    return rows


def _is_row(line: bytes) -> bool:
    """Returns whether ``line`` is one whole row (a JSON object)."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        return False


def _write_atomically(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """Returns None after replacing `path` by `rows`, all or nothing."""
    text = "".join(json.dumps(row, allow_nan=False) + "\n" for row in rows)
    files.atomic_write(path, lambda f: f.write(text.encode("utf-8")))


class MetricsLogger:
    """Appends metric rows to `run_dir/metrics.jsonl` (and TensorBoard, if asked).

    TensorBoard scalars use the row's step as global step, except rows carrying
    a `real_env_steps` extra, which use it instead so that runs (and phases) are
    compared by environment interactions. TensorBoard events are append-only:
    `rewind` rewrites only metrics.jsonl.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        use_tensorboard: bool = False,
        resume: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._path = self.run_dir / "metrics.jsonl"
        self._time_offset = 0.0
        if resume and self._path.exists():
            rows = read_metrics(self._path)
            if rows:
                self._time_offset = float(rows[-1].get("time_s") or 0.0)
            # Appending after a torn last line would bury it mid-file, where
            # read_metrics rightly refuses it: drop it first.
            text = self._path.read_bytes()
            if not text.endswith(b"\n"):
                torn = text.rsplit(b"\n", 1)[-1]
                _write_atomically(self._path, rows)
                if torn.strip() and not _is_row(torn):  # a whole row is kept
                    warnings.warn(
                        f"{self._path}: dropped its last line, {len(torn)} bytes "
                        "without a newline that are not a whole row (a write cut "
                        "short by a kill or a full disk); the rows before it are "
                        "kept, and the resumed run logs that step again",
                        stacklevel=2,
                    )
        self._file = open(self._path, "a" if resume else "w", encoding="utf-8")
        self._start = time.monotonic()
        self._writer = None
        if use_tensorboard:
            from tensorboardX import SummaryWriter  # lazy: only this mode needs it

            self._writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    @property
    def path(self) -> Path:
        """Returns the path of metrics.jsonl."""
        return self._path

    def write(
        self, phase: str, step: int, metrics: Mapping[str, Any], **extra: Any
    ) -> dict:
        """Returns the row just logged: phase, step, time_s, extras, metrics.

        Metrics go through float() (numpy/jax scalars and 0-d arrays welcome);
        non-finite values become null in the file, since JSON has no NaN, but
        are kept as floats in the returned row and in TensorBoard.
        """
        if self._file is None:
            raise ValueError("MetricsLogger is closed")
        clash = [key for key in metrics if key in _RESERVED or key in extra]
        if clash:
            raise ValueError(f"metric names {clash} clash with row fields")
        values = {key: float(value) for key, value in metrics.items()}
        elapsed = self._time_offset + time.monotonic() - self._start
        row = {"phase": phase, "step": int(step), "time_s": elapsed, **extra}
        row.update(values)
        on_disk = {
            key: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for key, v in row.items()
        }
        # tolist() turns numpy/jax scalars or arrays passed as extras into builtins.
        line = json.dumps(on_disk, allow_nan=False, default=lambda v: v.tolist())
        try:
            self._file.write(line + "\n")
            # One flush per row: a SIGKILL then costs at most the row being written.
            self._file.flush()
        except OSError as err:
            reason = files.no_room(err)
            if reason is None:
                raise
            # Closing retries the flush; the file is done with either way.
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            raise files.DiskFullError(
                self._path,
                reason,
                "the rows before this one are intact (a partial last row is "
                "dropped, with a warning, when the run resumes)",
            ) from err
        if self._writer is not None:
            global_step = int(extra.get("real_env_steps", step))
            for key, value in values.items():
                tag = key if "/" in key else f"{phase}/{key}"
                self._writer.add_scalar(tag, value, global_step=global_step)
        return row

    def rewind(self, order: Sequence[str], phase: str, step: int) -> int:
        """Returns how many rows were dropped to match a checkpoint at (phase, step).

        Kept: rows of phases before `phase` in `order`, rows of `phase` with
        step <= `step`, and rows of phases outside `order` that precede the first
        dropped row. The file is replaced atomically, so a crash here leaves
        either the old log or the new one.
        """
        if phase not in order:
            raise ValueError(f"phase {phase!r} is not in order {list(order)}")
        rank = {name: index for index, name in enumerate(order)}
        target = rank[phase]
        if self._file is None:
            raise ValueError("MetricsLogger is closed")
        kept, dropped = [], 0
        for row in read_metrics(self._path):
            row_rank = rank.get(row.get("phase"))
            if row_rank is None:
                keep = dropped == 0
            else:
                keep = row_rank < target or (row_rank == target and row["step"] <= step)
            if keep:
                kept.append(row)
            else:
                dropped += 1
        self._file.close()  # the old inode is replaced; append to the new one
        _write_atomically(self._path, kept)
        self._file = open(self._path, "a", encoding="utf-8")
        return dropped

    def close(self) -> None:
        """Returns None once the file and the TensorBoard writer are closed."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _format_value(value: Any) -> str:
    """Returns a compact string: 4 significant digits, thousands separated."""
    value = float(value)
    if math.isfinite(value) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


class Progress:
    """A tqdm bar on stderr (with ETA) whose postfix shows a few key metrics."""

    def __init__(
        self,
        total: int | None,
        desc: str,
        unit: str,
        *,
        initial: int = 0,
        enabled: bool = True,
    ):
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def update(self, n: int = 1, **metrics: Any) -> None:
        """Returns None after advancing by `n` and showing `metrics` as postfix."""
        if metrics:
            text = " ".join(f"{k}={_format_value(v)}" for k, v in metrics.items())
            # refresh=False: update() below redraws, respecting tqdm's rate limit.
            self._bar.set_postfix_str(text, refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        """Returns None once the bar is closed (final state drawn)."""
        self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
