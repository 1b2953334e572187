"""Data parallelism over every device of every process, with JAX's own runtime.

A ``DataParallel`` holds a one-axis ``jax.sharding.Mesh`` named ``data`` over all
devices (``jax.devices()``: after ``initialize`` that is every device of every
process). Trainers replicate parameters, optimiser states and keys over it and
shard batches, env states and imagination start states along it; the compiled
chunks stay the same programs, and XLA's partitioner turns the batch means of
the losses into all-reduced gradients. Batch sizes are global: the results do
not depend on the device count beyond float reassociation.

Host data enters through ``jax.make_array_from_callback``, so each process reads
only the rows its own devices hold. On one device in one process every method
returns its input unchanged: the default costs nothing.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# The one home of the rule is config.sizes; named here for DataParallel's users.
from janus_jax.config.sizes import check_divisible

AXIS = "data"
_ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Returns whether ``jax.distributed`` was initialised for a multi-process run.

    Either all three arguments are given (``coordinator`` as ``HOST:PORT``, the
    address of process 0), or none and JAX's ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are read (or, with none of them
    set either, the run is single-process and nothing happens). Must run before
    any other JAX call of the process.
    """
    given = {
        "coordinator": coordinator,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    if all(v is None for v in given.values()):
        if not any(os.environ.get(v) for v in _ENV_VARS):
            return False
        jax.distributed.initialize()
        return True
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise ValueError(
            f"{', '.join(missing)} missing: a multi-process run needs coordinator, "
            "num_processes and process_id together"
        )
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(
            f"coordinator={coordinator!r} is invalid: must be HOST:PORT, "
            "the address of process 0"
        )
    if num_processes < 1:
        raise ValueError(f"num_processes={num_processes} is invalid: must be >= 1")
    if not 0 <= process_id < num_processes:
        raise ValueError(
            f"process_id={process_id} is invalid: must be in [0, {num_processes})"
        )
    jax.distributed.initialize(coordinator, num_processes, process_id)
    return True


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """Places pytrees on the ``data`` mesh: replicated, or sharded along an axis."""

    mesh: Mesh

    @classmethod
    def create(cls, devices: list | None = None) -> DataParallel:
        """Returns the data-parallel layout over ``devices`` (default: all)."""
        devices = jax.devices() if devices is None else list(devices)
        if not devices:
            raise ValueError("devices is empty: data parallelism needs a device")
        return cls(Mesh(np.array(devices), (AXIS,)))

    @property
    def size(self) -> int:
        """The number of devices along ``data``."""
        return self.mesh.devices.size

    @property
    def trivial(self) -> bool:
        """Whether this is one device in one process (every placement a no-op)."""
        return self.size == 1 and jax.process_count() == 1

    @property
    def is_primary(self) -> bool:
        """Whether this process writes logs, configs and pictures (process 0)."""
        return jax.process_index() == 0

    def sharding(self, axis: int | None, ndim: int) -> NamedSharding:
        """Returns the sharding of an ndim array split along ``axis`` (None:
        replicated)."""
        spec = [None] * ndim
        if axis is not None:
            spec[axis] = AXIS
        return NamedSharding(self.mesh, PartitionSpec(*spec))

    def check_divisible(self, name: str, size: int) -> None:
        """Raises ValueError unless the global batch ``size`` splits evenly."""
        check_divisible(name, size, self.size)

    def replicate(self, tree: Any) -> Any:
        """Returns ``tree`` with every array leaf on every device (same value)."""
        if self.trivial:
            return self._commit(tree)
        return jax.tree.map(lambda x: self._put(x, None), tree)

    def shard(self, tree: Any, axis: int = 0) -> Any:
        """Returns ``tree``'s array leaves split along ``axis`` over the devices;
        each process copies only the slices its devices hold."""
        if self.trivial:
            return self._commit(tree)
        return jax.tree.map(lambda x: self._put(x, axis), tree)

    def gather_rows(self, data: Any, rows: np.ndarray) -> Any:
        """Returns ``data``'s leaves (host arrays [N, ...]) at ``rows`` [K, B] as
        arrays [K, B, ...] sharded along B; a process reads only its devices' rows."""
        if self.trivial:
            return jax.tree.map(lambda x: x[rows], data)

        def gather(x):
            shape = rows.shape + x.shape[1:]

            def rows_of(index):
                return x[rows[index[:2]]][(slice(None),) * 2 + index[2:]]

            return jax.make_array_from_callback(
                shape, self.sharding(1, len(shape)), rows_of
            )

        return jax.tree.map(gather, data)

    def local(self, tree: Any) -> Any:
        """Returns replicated arrays as this process's own (single-device) arrays,
        for host-side work such as evaluation, encoding or pictures."""
        if self.trivial:
            return tree
        return jax.tree.map(
            lambda x: (
                jax.numpy.asarray(np.asarray(x)) if isinstance(x, jax.Array) else x
            ),
            tree,
        )

    def barrier(self, name: str) -> None:
        """Returns once every process has reached the barrier ``name``."""
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(name)

    def on_primary(self, fn: Callable[[], Any], what: str) -> Any:
        """Returns fn() on process 0 (None elsewhere) once every process knows it
        succeeded; if it raised, every process raises (process 0 its own error),
        so none is left waiting for the others at a later barrier."""
        if jax.process_count() == 1:
            return fn()
        result, error = None, None
        if self.is_primary:
            try:
                result = fn()
            except Exception as err:  # re-raised below, after telling the others
                error = err
        ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
        if error is not None:
            raise error
        if not int(ok):
            raise ValueError(f"process 0 could not {what}; its own error says why")
        return result

    def _commit(self, tree: Any) -> Any:
        # Committed to the one device, as every jitted output is: a compiled
        # chunk first called with uncommitted arrays and then with its own
        # outputs would compile twice.
        device = self.mesh.devices.flat[0]
        return jax.tree.map(
            lambda x: jax.device_put(x, device) if isinstance(x, jax.Array) else x,
            tree,
        )

    def _put(self, x: Any, axis: int | None) -> Any:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key
        ):
            return jax.random.wrap_key_data(
                self._put(jax.random.key_data(x), axis), impl=jax.random.key_impl(x)
            )
        x = np.asarray(x)
        if axis is not None and x.ndim <= axis:
            raise ValueError(
                f"cannot split an array of shape {x.shape} along axis {axis} over "
                "the devices"
            )
        sharding = self.sharding(axis, x.ndim)
        return jax.make_array_from_callback(x.shape, sharding, lambda i: x[i])
