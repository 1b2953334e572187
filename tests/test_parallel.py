"""Data parallelism: DataParallel's placements, 4 forced CPU devices against 1, and
two processes training together over JAX's distributed runtime (gloo on CPU).

The multi-device and multi-process runs need a fresh JAX (device count and
distributed runtime are fixed when it starts): they run tests/parallel_worker.py
in subprocesses. By default the two processes train C from the 1-device run, and
gymnasium envs train on 4 devices; the whole pipeline on two processes, and the
gymnasium update on 4 devices against 1, are slow (``-m slow``)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import subprocess_env

from janus_jax import cli, parallel
from janus_jax.parallel import DataParallel

WORKER = Path(__file__).with_name("parallel_worker.py")


def _metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- one device, in this process ------------------------------------------------------


def test_one_device_only_commits_arrays_to_it():
    par = DataParallel.create(jax.devices()[:1])
    host = np.ones(3)
    tree = {"w": host, "j": jax.numpy.arange(3.0)}
    assert not tree["j"].committed
    assert par.trivial and par.is_primary and par.size == 1
    for placed in (par.replicate(tree), par.shard(tree)):
        assert placed["w"] is host  # host arrays stay where they are
        # committed, as a compiled chunk's outputs are: its next call then
        # matches its first and does not compile again
        assert placed["j"].committed and placed["j"].devices() == {jax.devices()[0]}
        np.testing.assert_array_equal(placed["j"], [0.0, 1.0, 2.0])
    rows = np.array([[5, 0], [2, 2]])
    data = {"x": np.arange(12).reshape(6, 2), "y": np.arange(6) * 10.0}
    out = par.gather_rows(data, rows)
    np.testing.assert_array_equal(out["x"], [[[10, 11], [0, 1]], [[4, 5], [4, 5]]])
    np.testing.assert_array_equal(out["y"], [[50.0, 0.0], [20.0, 20.0]])


def test_batches_that_do_not_split_are_named():
    parallel.check_divisible("controller.num_envs", 3, 1)  # one device takes all
    parallel.check_divisible("controller.num_envs", 8, 4)
    with pytest.raises(
        ValueError, match=r"controller.num_envs=6 does not divide over 4"
    ):
        parallel.check_divisible("controller.num_envs", 6, 4)
    with pytest.raises(ValueError, match="devices is empty"):
        DataParallel.create([])


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"coordinator": "127.0.0.1:1234"}, "num_processes, process_id missing"),
        (
            {"coordinator": "nohost", "num_processes": 2, "process_id": 0},
            "coordinator='nohost' is invalid: must be HOST:PORT",
        ),
        (
            {"coordinator": "h:1", "num_processes": 2, "process_id": 2},
            r"process_id=2 is invalid: must be in \[0, 2\)",
        ),
        (
            {"coordinator": "h:1", "num_processes": 0, "process_id": 0},
            "num_processes=0 is invalid",
        ),
    ],
)
def test_initialize_names_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        parallel.initialize(**kwargs)


def test_initialize_without_arguments_is_single_process(monkeypatch):
    for var in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        monkeypatch.delenv(var, raising=False)
    assert parallel.initialize() is False


def test_cli_rejects_a_partial_multi_process_command(capsys):
    status = cli.main(["train", "--coordinator", "127.0.0.1:1", "--out", "unused"])
    assert status == 2
    err = capsys.readouterr().err
    assert "num_processes, process_id missing" in err


def test_multi_process_world_model_needs_a_shared_run_dir(monkeypatch):
    from janus_jax.train.world_model import WorldModelTrainer

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    with pytest.raises(ValueError, match="pass a run_dir all processes share"):
        WorldModelTrainer("CartPole-v1", parallel=DataParallel.create())


# -- four forced CPU devices against one ----------------------------------------------


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices")
    flags = "--xla_force_host_platform_device_count=4"
    subprocess.run(
        [sys.executable, str(WORKER), "devices", str(out)],
        env=subprocess_env(flags),
        check=True,
        timeout=900,
    )
    return out


def test_four_devices_really_shard(four_devices):
    placement = json.loads((four_devices / "placement.json").read_text())
    # rows [[5, 0, 3, 1], [2, 2, 4, 0]] of x = arange(12).reshape(6, 2): device d
    # holds column d of the row table, for both steps.
    x = np.arange(12.0).reshape(6, 2)
    rows = np.array([[5, 0, 3, 1], [2, 2, 4, 0]])
    for device, data in placement["batch_shards"]:
        np.testing.assert_array_equal(data, x[rows[:, device : device + 1]])
    assert placement["batch_spec"] == "P(None, 'data', None)"
    assert placement["replicated"] and placement["controller_replicated"]
    assert placement["key_kept"]  # typed PRNG keys are placed as keys
    assert placement["env_obs_spec"].startswith("P('data'")
    assert placement["env_obs_devices"] == 4


def test_four_devices_give_the_one_device_losses(four_devices):
    four = _metrics(four_devices / "four" / "metrics.jsonl")
    one = _metrics(four_devices / "one" / "metrics.jsonl")
    assert [(r["phase"], r["step"]) for r in four] == [
        (r["phase"], r["step"]) for r in one
    ]
    assert {r["phase"] for r in four} >= {"vae", "mdn", "controller", "eval"}
    compared = 0
    for a, b in zip(four, one, strict=True):
        for key, value in a.items():
            if "/" in key and isinstance(value, float):
                np.testing.assert_allclose(value, b[key], rtol=1e-4, atol=1e-5)
                compared += 1
    assert compared > 20


def test_gymnasium_envs_train_on_four_devices(four_devices):
    metrics = json.loads((four_devices / "gymnasium_four.json").read_text())
    assert {"ppo/loss", "mdn/loss", "real/episode_return"} <= set(metrics)
    assert np.isfinite(list(metrics.values())).all(), metrics


@pytest.mark.slow
def test_gymnasium_envs_train_on_four_devices_as_on_one(four_devices):
    flags = "--xla_force_host_platform_device_count=4"
    subprocess.run(
        [sys.executable, str(WORKER), "gymnasium_one", str(four_devices)],
        env=subprocess_env(flags),
        check=True,
        timeout=900,
    )
    four = json.loads((four_devices / "gymnasium_four.json").read_text())
    one = json.loads((four_devices / "gymnasium_one.json").read_text())
    assert set(four) == set(one)
    for key, value in four.items():
        np.testing.assert_allclose(value, one[key], rtol=1e-4, atol=1e-5)


# -- two processes --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(mode: str, out: Path, timeout: int) -> list[str]:
    """Returns both processes' output after running the worker's ``mode``."""
    port = str(_free_port())
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), mode, str(out), str(i), port],
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    for i, p in enumerate(procs):
        assert p.returncode == 0, f"process {i} failed:\n{logs[i][-3000:]}"
    return logs


def _same_params_trained(results: list[dict]) -> None:
    """Both processes hold the same controller, and not the one they started from."""
    assert [r["devices"] for r in results] == [2, 2]
    for a, b in zip(results[0]["params"], results[1]["params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(results[0]["params"], results[0]["before"], strict=True)
    ]
    assert any(moved), "C did not train"


def test_two_processes_train_together(four_devices, tmp_path):
    """CI-sized: the CLI joins the two processes, which both refuse a directory
    holding a run, then C trains on the two together from that run (the whole
    pipeline on two processes is the slow test below)."""
    shutil.copytree(four_devices / "one", tmp_path / "run")
    logs = _two_processes("together", tmp_path, 600)
    results = [json.loads((tmp_path / f"together{i}.json").read_text()) for i in (0, 1)]
    assert [r["status"] for r in results] == [2, 2]
    assert "already holds a run" in logs[0]
    assert "process 0 could not prepare the run directory" in logs[1]
    _same_params_trained(results)


@pytest.mark.slow
def test_two_processes_run_the_pipeline_together(tmp_path):
    _two_processes("process", tmp_path, 900)
    results = [json.loads((tmp_path / f"process{i}.json").read_text()) for i in (0, 1)]
    assert [r["status"] for r in results] == [0, 0]
    _same_params_trained(results)
    run = tmp_path / "run"
    rows = _metrics(run / "metrics.jsonl")
    # One writer: every (phase, step) is logged once, in order.
    keys = [(r["phase"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)) and ("controller", 1) in keys
    summary = json.loads((run / "summary.json").read_text())
    assert summary["controller_env_steps"] == 128
    assert (run / "plots" / "returns.png").is_file()
    # The same command again without --resume: process 0 refuses the directory
    # and the other process hears of it instead of waiting at a barrier.
    logs = _two_processes("refused", tmp_path, 300)
    statuses = [
        json.loads((tmp_path / f"refused{i}.json").read_text())["status"]
        for i in (0, 1)
    ]
    assert statuses == [2, 2]
    assert "already holds a run" in logs[0]
    assert "process 0 could not prepare the run directory" in logs[1]
