"""Runs the tiny preset in a process of its own, for tests/test_parallel.py.

    python tests/parallel_worker.py devices OUT     # 4 forced CPU devices vs 1
    python tests/parallel_worker.py process OUT ID  # one of two processes

The device count and the distributed runtime must be set before JAX starts, so
these cannot run inside pytest's process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# The tiny preset with a global batch every device count here divides.
OVERRIDES = ["controller.num_envs=4", "controller.total_timesteps=512"]


def _config():
    from janus_jax.train import presets
    from janus_jax.train.run_config import apply_overrides

    return apply_overrides(presets.preset("tiny"), OVERRIDES)


def _more_controller(run: Path, par, env="CartPole-v1"):
    """Returns the WorldModelPPOTrainer after one more update of C on ``par``."""
    from janus_jax.train.ppo_trainer import WorldModelPPOTrainer
    from janus_jax.train.run_dir import load_agent

    trainer = WorldModelPPOTrainer(
        load_agent(run, par),
        env,
        num_envs=4,
        imagination_horizon=8,
        updates_per_chunk=1,
        parallel=par,
    )
    trainer.metrics = trainer.train(total_timesteps=4 * 32, rollout_length=32)
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
    # gymnasium envs are stepped on the host; the rollout is sharded for learning.
    from janus_jax.envs import make

    gymnasium_metrics = {}
    for name, par in (("four", four), ("one", DataParallel.create(jax.devices()[:1]))):
        env = make("CartPole-v1", family="gymnasium", num_envs=4)
        trainer = _more_controller(out / "four", par, env)
        env.close()
        gymnasium_metrics[name] = {k: float(v) for k, v in trainer.metrics.items()}
    (out / "gymnasium.json").write_text(json.dumps(gymnasium_metrics))


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
        *(arg for o in OVERRIDES for arg in ("--set", o)),
    ]


def process(out: Path, process_id: int, port: str) -> None:
    """Joins a two-process run of the tiny preset through the CLI's own path."""
    from janus_jax import cli

    status = cli.main(_argv(out, process_id, port))
    import jax
    import numpy as np

    from janus_jax.parallel import DataParallel

    # Train C a little more, both processes together, and report this process's
    # own copy of the result: replicas that drifted apart would differ here.
    trainer = _more_controller(out / "run", DataParallel.create())
    leaves = jax.tree.leaves(trainer.agent.controller.params)
    (out / f"process{process_id}.json").write_text(
        json.dumps(
            {
                "status": status,
                "devices": jax.device_count(),
                "params": [np.asarray(x, np.float64).ravel().tolist() for x in leaves],
            }
        )
    )


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
    else:
        {"process": process, "refused": refused}[mode](
            out, int(sys.argv[3]), sys.argv[4]
        )
