"""Shared fixtures: small configs keep compile times short on a 2-core CPU."""

import atexit
import importlib
import os
import pathlib
import shutil
import sys
import tempfile

import jax
import pytest

from janus_jax.configs import MDNRNNConfig, VAEConfig

# Tests run on CPU with 64-bit off; chex variants need no extra setup.


def _share_compiled_programs() -> None:
    """Gives this session, and every process it starts, one fresh XLA compilation
    cache on disk.

    Compiling dominates the suite: many tests train the same chunks (the tiny
    preset above all) in new trainers or in subprocesses, where JAX's in-memory
    cache cannot help. A cached executable is the program XLA compiled, so the
    results are the same bit for bit; the directory is new for each session, so
    nothing carries over from an earlier run. An exported JAX_COMPILATION_CACHE_DIR
    is used (and kept) instead. Must run before the first compilation: JAX
    decides once whether it uses the cache."""
    if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
        path = tempfile.mkdtemp(prefix="janus-jax-test-xla-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    # Every program, however quick to compile: the subprocesses read them too.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # jax was imported before the variables were set: tell this process too.
    jax.config.update(
        "jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"]
    )
    jax.config.update(
        "jax_persistent_cache_min_compile_time_secs",
        float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]),
    )
    jax.config.update(
        "jax_persistent_cache_min_entry_size_bytes",
        int(os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]),
    )


_share_compiled_programs()


@pytest.fixture
def small_image_vae():
    return VAEConfig(
        input_channels=3,
        input_height=64,
        input_width=64,
        latent_dim=8,
        hidden_channels=(8, 8, 16, 16),
    )


@pytest.fixture
def small_mdn():
    return MDNRNNConfig(latent_dim=3, action_dim=2, hidden_dim=16, num_mixtures=4)


EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"


def import_experiment(name: str):
    """Returns the module experiments/NAME.py (the folder is no package)."""
    sys.path.insert(0, str(EXPERIMENTS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXPERIMENTS))
