"""Shared fixtures: small configs keep compile times short on a 2-core CPU."""

import atexit
import gc
import importlib
import os
import pathlib
import shutil
import sys
import tempfile

import jax
import pytest

from janus_jax.config.models import MDNRNNConfig, VAEConfig

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


# XLA's backend optimisation level for the tests (0: LLVM's cheapest passes).
# The suite compiles far more than it runs: level 0 cut two learning tests (C in
# the dream alone, V from the replay) from 205 s to 124 s, and a tiny run's CPU
# time by a third, with the same returns. The programs, their numerics and what
# they compute are XLA's; only machine-code optimisation is lighter. Speed is
# measured in benchmarks/, which keep XLA's default. An exported XLA_FLAGS
# naming the level wins.
FAST_COMPILE = "--xla_backend_optimization_level=0"


def _compile_fast() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {FAST_COMPILE}".strip()


def subprocess_env(xla_flags: str = "") -> dict:
    """Returns the environment for a test's subprocess: a fresh JAX (no JAX_*
    settings of this process) that shares the session's compilation cache and
    compile level, with ``xla_flags`` added to XLA_FLAGS (forced device counts),
    and this checkout first on the path."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("JAX_") or "CACHE" in k
    }
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip()
    root = str(pathlib.Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


_share_compiled_programs()
_compile_fast()  # before the first computation: XLA reads its flags once


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops JAX's in-memory compiled programs when a test file is done.

    A worker runs file after file, and JAX keeps every program it compiled for
    the life of the process: by the end of the suite a worker held 5.6-7.5 GB
    and was killed for memory on a 24 GB machine with other work on it (three
    files in one process: a peak of 4.05 GB kept, 2.88 GB dropped). What a
    later file compiles again comes back from the on-disk cache above."""
    yield
    jax.clear_caches()
    gc.collect()


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


def tiny_vector_agent(seed: int = 0):
    """Returns a WorldModelAgent for 4-float observations and 2 actions with
    every size shrunk: the trainers' tests on CartPole-shaped envs share it."""
    from janus_jax import WorldModelAgent
    from janus_jax.config.models import MDNRNNConfig, NetworkConfig, VAEConfig

    return WorldModelAgent(
        (4,),
        2,
        vae_config=VAEConfig(observation_size=4, latent_dim=2, hidden_sizes=(8,)),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=2, action_dim=2, hidden_dim=8, num_mixtures=2
        ),
        controller_config=NetworkConfig(layer_sizes=(8,)),
        seed=seed,
    )
