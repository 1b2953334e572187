"""What the machine itself can do, beside which the benchmarks' rates are read:
a jitted float32 matmul's GFLOP/s, the batch-1 dream step's weight-streaming
floor, and a call's host memory (peak resident set size, sampled by a thread).
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import sys
import threading

import jax
import jax.numpy as jnp

from benchmarks.common import block, time_call
from janus_jax.imagination import WorldModelParams

MB = 2**20

_matmul = jax.jit(jnp.matmul)


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Returns the median GFLOP/s of a jitted n x n @ n x n float32 matmul."""
    a, b = jax.random.normal(jax.random.key(0), (2, n, n), jnp.float32)
    _, median = time_call(lambda: _matmul(a, b), repeats)
    return 2 * n**3 / median / 1e9


def weight_stream(
    params: WorldModelParams, steps: int = 1000, repeats: int = 5
) -> dict:
    """Returns the batch-1 floor: the median time per step of a jitted scan that
    does nothing but the dream step's matrix-vector products (every 2-D kernel of
    M and C, chained so none is hoisted out of the loop), the weight bytes one step
    reads, and the GB/s that makes; next to it, the GB/s of one matrix-vector
    product over a 64 MB matrix (main-memory streaming)."""
    kernels = [
        x
        for x in jax.tree.leaves((params.mdn_rnn.net, params.controller.net))
        if x.ndim == 2
    ]
    nbytes = sum(k.size * k.dtype.itemsize for k in kernels)
    width = max(k.shape[0] for k in kernels)

    @jax.jit
    def matvecs(kernels):
        def body(x, _):
            total = sum(jnp.sum(jnp.tanh(x[: k.shape[0]] @ k)) for k in kernels)
            return x + 1e-6 * total, None

        return jax.lax.scan(body, jnp.ones((width,)), None, length=steps)[0]

    _, median = time_call(lambda: matvecs(kernels), repeats)
    big = jax.random.normal(jax.random.key(0), (4096, 4096), jnp.float32)
    vector = jnp.ones((4096,), jnp.float32)
    _, stream = time_call(lambda: _matmul(big, vector), repeats)
    return {
        "weight_mb_per_step": nbytes / MB,
        "matvecs_us_per_step": median / steps * 1e6,
        "matvecs_gb_per_s": nbytes / (median / steps) / 1e9,
        "stream_gb_per_s": big.size * 4 / stream / 1e9,
    }


def rss_bytes() -> int | None:
    """Returns this process's resident set size in bytes (None without /proc)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None


def _maxrss_bytes() -> int:
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


def _release_free_heap() -> None:
    # glibc keeps freed small blocks (a Python loop's per-step arrays) mapped; give
    # them back so that the next call's growth shows in the RSS.
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn) -> dict:
    """Returns the memory of one more call of ``fn`` (after its warm-up), in MB:
    the process's resident set size (RSS) just before it, the peak RSS above that
    during the call (read from /proc/self/statm every 2 ms by a thread; None where
    there is no /proc), the bytes of what it returns, and the process's lifetime
    max RSS (getrusage) before and after, which only moves if this call sets a new
    high. Counts host memory only: on CPU, JAX's and torch's buffers live there."""
    gc.collect()
    _release_free_heap()
    before, maxrss_before = rss_bytes(), _maxrss_bytes()
    peak, stop = [before or 0], threading.Event()

    def sample():
        while not stop.wait(0.002):
            peak[0] = max(peak[0], rss_bytes() or 0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        out = fn()
        block(out)
        peak[0] = max(peak[0], rss_bytes() or 0)
        output = sum(x.nbytes for x in jax.tree.leaves(out))
    finally:
        stop.set()
        thread.join()
    del out
    return {
        "rss_before_mb": before / MB if before else None,
        "peak_rss_above_before_mb": (peak[0] - before) / MB if before else None,
        "output_mb": output / MB,
        "maxrss_before_mb": maxrss_before / MB,
        "maxrss_after_mb": _maxrss_bytes() / MB,
    }
