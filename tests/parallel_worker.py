"""Runs the tiny preset in a process of its own, for tests/test_parallel.py.

    python tests/parallel_worker.py devices OUT          # 4 forced CPU devices vs 1
    python tests/parallel_worker.py gymnasium_one OUT    # its gymnasium part on 1
    python tests/parallel_worker.py process OUT ID PORT  # one of two processes
    python tests/parallel_worker.py refused OUT ID PORT  # the same run refused
    python tests/parallel_worker.py together OUT ID PORT # refused, then C trains

The device count and the distributed runtime must be set before JAX starts, so
these cannot run inside pytest's process.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

# The tiny preset with a global batch every device count here divides: four
# updates (one chunk) on devices, one update on two processes (an update over
# two processes takes seconds of cross-process collectives on CPU).
OVERRIDES = ["controller.num_envs=4", "controller.total_timesteps=512"]
PROCESS_OVERRIDES = [
    "controller.num_envs=4",
    "controller.total_timesteps=128",
    "controller.updates_per_chunk=1",
]


def _config(overrides=OVERRIDES):
    from janus_jax.config import presets
    from janus_jax.config.run import apply_overrides

    return apply_overrides(presets.preset("tiny"), overrides)


def _more_controller(run: Path, par, env="CartPole-v1", overrides=OVERRIDES):
    """Returns the WorldModelPPOTrainer after C trained once more on ``par``: on
    the gymnax env as the run's controller phase did (one chunk of updates, the
    program compiled for the run: the compilation cache has it), on a gymnasium
    env (host rollouts) for one update."""
    from janus_jax.run.run_dir import load_agent
    from janus_jax.train.ppo_trainer import WorldModelPPOTrainer

    config = _config(overrides)
    c = config.controller
    if not isinstance(env, str):
        one_update = c.num_envs * c.rollout_length
        c = dataclasses.replace(c, total_timesteps=one_update, updates_per_chunk=1)
    trainer = WorldModelPPOTrainer(
        load_agent(run, par), env, config.ppo, training=c, parallel=par
    )
    trainer.metrics = trainer.train()
    return trainer


def devices(out: Path) -> None:
    """Trains on 4 devices and on 1 (a one-device mesh in the same process);
    writes what the placements looked like to out/placement.json."""
    import jax
    import numpy as np

    from janus_jax.parallel import DataParallel
    from janus_jax.train import pipeline

    assert jax.device_count() == 4, jax.devices()
    four = DataParallel.create()
    rows = np.array([[5, 0, 3, 1], [2, 2, 4, 0]])
    batch = four.gather_rows({"x": np.arange(12.0).reshape(6, 2)}, rows)["x"]
    state = four.replicate({"w": np.ones(3)})["w"]
    key = jax.random.key(7)
    placed = four.replicate(key)
    key_kept = bool(
        jax.dtypes.issubdtype(placed.dtype, jax.dtypes.prng_key)
        and np.array_equal(jax.random.key_data(placed), jax.random.key_data(key))
        and placed.sharding.is_fully_replicated
    )
    placement = {
        "batch_shards": [
            [s.device.id, np.asarray(s.data).tolist()] for s in batch.addressable_shards
        ],
        "batch_spec": str(batch.sharding.spec),
        "replicated": bool(state.sharding.is_fully_replicated),
        "key_kept": key_kept,
    }
    for name, par in (("four", four), ("one", DataParallel.create(jax.devices()[:1]))):
        pipeline.run(_config(), out / name, progress=False, parallel=par)
    # The controller's state after a short run on 4 devices: envs split, C whole.
    trainer = _more_controller(out / "four", four)
    placement["env_obs_spec"] = str(trainer.state.rollout.obs.sharding.spec)
    placement["env_obs_devices"] = len(trainer.state.rollout.obs.sharding.device_set)
    placement["controller_replicated"] = all(
        x.sharding.is_fully_replicated for x in jax.tree.leaves(trainer.state.train)
    )
    (out / "placement.json").write_text(json.dumps(placement))
    _gymnasium(out, "four", four)


def _gymnasium(out: Path, name: str, par) -> None:
    """Trains C of OUT/four once on 4 gymnasium envs (stepped on the host, the
    rollout sharded for learning) on ``par``; writes its metrics to
    OUT/gymnasium_NAME.json."""
    from janus_jax.envs import make

    env = make("CartPole-v1", family="gymnasium", num_envs=4)
    trainer = _more_controller(out / "four", par, env)
    env.close()
    metrics = {k: float(v) for k, v in trainer.metrics.items()}
    (out / f"gymnasium_{name}.json").write_text(json.dumps(metrics))


def gymnasium_one(out: Path) -> None:
    """The gymnasium update of ``devices`` on one of the 4 devices (after it)."""
    import jax

    from janus_jax.parallel import DataParallel

    assert jax.device_count() == 4, jax.devices()
    _gymnasium(out, "one", DataParallel.create(jax.devices()[:1]))


def _argv(out: Path, process_id: int, port: str) -> list[str]:
    return [
        "train",
        "--preset",
        "tiny",
        "--out",
        str(out / "run"),
        "--no-progress",
        "--coordinator",
        f"127.0.0.1:{port}",
        "--num-processes",
        "2",
        "--process-id",
        str(process_id),
        *(arg for o in PROCESS_OVERRIDES for arg in ("--set", o)),
    ]


def _train_on_both(out: Path, name: str, status: int) -> None:
    """Trains C a little more from OUT/run, both processes together, and writes
    this process's own copy of the result to OUT/NAME.json: replicas that drifted
    apart would differ there."""
    import jax
    import numpy as np

    from janus_jax.parallel import DataParallel
    from janus_jax.run.run_dir import load_agent

    def flat(params):
        return [
            np.asarray(x, np.float64).ravel().tolist() for x in jax.tree.leaves(params)
        ]

    par = DataParallel.create()
    before = flat(load_agent(out / "run", par).controller.params)
    trainer = _more_controller(out / "run", par, overrides=PROCESS_OVERRIDES)
    result = {
        "status": status,
        "devices": jax.device_count(),
        "params": flat(trainer.agent.controller.params),
        "before": before,
    }
    (out / f"{name}.json").write_text(json.dumps(result))


def process(out: Path, process_id: int, port: str) -> None:
    """Joins a two-process run of the tiny preset through the CLI's own path."""
    from janus_jax import cli

    status = cli.main(_argv(out, process_id, port))
    _train_on_both(out, f"process{process_id}", status)


def together(out: Path, process_id: int, port: str) -> None:
    """The CLI joins the two processes and both refuse OUT/run, which holds a run
    already; then C trains from that run on both together."""
    from janus_jax import cli

    status = cli.main(_argv(out, process_id, port))
    _train_on_both(out, f"together{process_id}", status)


def refused(out: Path, process_id: int, port: str) -> None:
    """Starts the same two-process run again without --resume: process 0 refuses
    the directory, and both processes must exit with status 2 (none waiting)."""
    from janus_jax import cli

    status = cli.main(_argv(out, process_id, port))
    (out / f"refused{process_id}.json").write_text(json.dumps({"status": status}))


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "devices":
        devices(out)
    elif mode == "gymnasium_one":
        gymnasium_one(out)
    else:
        {"process": process, "refused": refused, "together": together}[mode](
            out, int(sys.argv[3]), sys.argv[4]
        )
