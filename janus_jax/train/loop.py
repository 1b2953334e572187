"""The plain Python loop around a phase's compiled chunks: resume, logs, progress
and checkpoints happen here, between chunks, never inside them."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from janus_jax.run.checkpoint import CheckpointError, PhaseCheckpoints
from janus_jax.run.metrics_log import MetricsLogger, Progress, read_metrics

# Phases in run order: a resumed run rewinds the metrics log to its checkpoint.
PHASES = ("collect", "vae", "mdn", "controller", "eval")

# ChunkFn(state, done, count) -> (state, metrics, extra counters for the log).
ChunkFn = Callable[[Any, int, int], tuple[Any, dict, dict]]


@dataclasses.dataclass
class RunIO:
    """Where a trainer writes: its run directory, metrics log and progress bars.

    run_dir None keeps nothing on disk (no checkpoints, no resume); the metrics
    still go to the returned values and the progress bars."""

    run_dir: Path | None = None
    logger: MetricsLogger | None = None
    progress: bool = True
    resume: bool = False
    # The notices printed so far: a run says each one once, not at every eval.
    notices: set = dataclasses.field(default_factory=set)

    def checkpoints(self, phase: str) -> PhaseCheckpoints | None:
        """Returns the phase's checkpoint directory (None without a run dir)."""
        if self.run_dir is None:
            return None
        return PhaseCheckpoints(self.run_dir / "checkpoints" / phase)

    def log(self, phase: str, step: int, metrics: dict, **extra) -> None:
        if self.logger is not None:
            self.logger.write(phase, step, metrics, **extra)

    def logged(self, phase: str) -> bool:
        """Returns whether the metrics log holds a row of ``phase`` (False
        without a log)."""
        if self.logger is None or not self.logger.path.exists():
            return False
        return any(row["phase"] == phase for row in read_metrics(self.logger.path))

    def notice(self, kind: str, line: str) -> None:
        """Prints ``line`` unless a notice of this ``kind`` was printed already
        (above any progress bar, which tqdm redraws)."""
        if line and kind not in self.notices:
            self.notices.add(kind)
            tqdm.write(line)


def whole_chunks(total: int, chunk: int) -> tuple[int, int]:
    """Returns (chunk size, total rounded up to whole chunks): every chunk has
    one shape, so it compiles once."""
    chunk = max(1, min(chunk, total))
    return chunk, math.ceil(total / chunk) * chunk


def restore(io: RunIO, phase: str, state: Any) -> tuple[Any, dict]:
    """Returns (state, progress) from the phase's latest checkpoint when resuming,
    else (state, {}) unchanged; rewinds the metrics log to that checkpoint.

    Raises CheckpointError when the phase is unfinished on disk but a later phase
    has checkpoints: the later one was made from this phase finished, so this
    phase's checkpoints were deleted, and training it again would leave the
    later phase built on another model."""
    checkpoints = io.checkpoints(phase)
    if checkpoints is None or not io.resume:
        return state, {}
    with checkpoints:
        latest = checkpoints.latest_step()
        progress = {} if latest is None else checkpoints.progress()
        if not progress.get("complete"):
            _check_no_later_phase(io, phase, checkpoints.directory, latest)
        if latest is None:
            # Killed before its first checkpoint: the phase starts over, so the
            # rows it logged (and any of later phases) are dropped, not repeated.
            if io.logger is not None:
                io.logger.rewind(PHASES, phase, 0)
            return state, {}
        state, progress = checkpoints.restore(state)
    # An unfinished phase drops the rows logged after its checkpoint; rows of a
    # finished one (and of the phases after it) are all still true.
    if io.logger is not None and not progress.get("complete"):
        io.logger.rewind(PHASES, phase, int(progress["step"]))
    return state, progress


def _check_no_later_phase(io: RunIO, phase: str, directory, latest) -> None:
    """Raises CheckpointError if a phase after ``phase`` has checkpoints."""
    for later in PHASES[PHASES.index(phase) + 1 :]:
        with io.checkpoints(later) as checkpoints:
            if not checkpoints.all_steps():
                continue
            found = "no checkpoint" if latest is None else f"only step {latest}"
            raise CheckpointError(
                f"cannot resume phase {phase}: {directory} holds {found}, not its "
                f"finished checkpoint, yet the later phase {later} has checkpoints "
                f"in {checkpoints.directory} (deleted or moved?). Put {phase}'s "
                f"checkpoints back; or delete those of {later} and the phases "
                f"after it as well, to train again from {phase}; or start the run "
                "over (--overwrite)"
            )


def run_chunks(
    io: RunIO,
    phase: str,
    state: Any,
    *,
    total: int,
    chunk: int,
    run_chunk: ChunkFn,
    checkpoint_every: int,
    unit: str,
    shown: tuple[str, ...] = (),
    on_resume: Callable[[Any], Any] | None = None,
) -> tuple[Any, dict]:
    """Returns (state, last chunk's metrics) after running the phase to ``total``
    steps in chunks of ``chunk``, resuming from its checkpoint when asked.

    Saves every ``checkpoint_every`` chunks and at the end; the progress JSON
    holds the step, the extra counters and whether the phase is complete.
    ``on_resume(state)`` adjusts a state restored from an unfinished phase's
    checkpoint before its next chunk (what a checkpoint cannot hold: a host
    env's own state)."""
    state, progress = restore(io, phase, state)
    if progress and not progress.get("complete") and on_resume is not None:
        state = on_resume(state)
    done = int(progress.get("step", 0))
    reserved = ("phase", "step", "complete", "metrics")
    extra = {k: v for k, v in progress.items() if k not in reserved}
    metrics: dict = progress.get("metrics", {})
    checkpoints = io.checkpoints(phase)
    bar = Progress(total, desc=phase, unit=unit, initial=done, enabled=io.progress)
    try:
        chunks = 0
        while done < total:
            tic = time.perf_counter()
            state, raw, extra = run_chunk(state, done, chunk)
            metrics = {k: float(v) for k, v in raw.items()}
            done += chunk
            rate = chunk / max(time.perf_counter() - tic, 1e-9)
            io.log(phase, done, metrics, **extra, **{f"{unit}_per_s": rate})
            bar.update(
                chunk,
                **{k.split("/")[-1]: metrics[k] for k in shown if k in metrics},
                **{f"{unit}/s": rate},
            )
            chunks += 1
            if checkpoints is not None and (
                chunks % checkpoint_every == 0 or done >= total
            ):
                checkpoints.save(
                    done,
                    state,
                    {
                        "phase": phase,
                        "step": done,
                        "complete": done >= total,
                        "metrics": metrics,
                        **extra,
                    },
                )
    finally:
        bar.close()
        if checkpoints is not None:
            checkpoints.close()
    return state, metrics
