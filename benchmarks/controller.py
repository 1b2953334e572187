"""C's decisions per second on CarRacing: the carracing preset's controller
update (8 async envs x 128 steps acted on by V, M and C, then M's refresh, the
dreams and the PPO epochs), with CarRacing's road drawn as gymnasium draws it
(the path before ``janus_jax.envs.carracing_frames``) and culled to the
polygons in view (what ``GymnasiumEnv`` does now), side by side in one process.

`python -m benchmarks.controller [--quick] [--json F]` builds the preset's
agent (freshly initialised: the speed does not depend on the weights, though a
trained C's longer episodes reset the envs less often), compiles with one
update, then times ``updates`` updates of each way, the ways alternated
``rounds`` times; it reports each way's median decisions a second, the
rollout's and the update's shares, and the ratio. Both ways run the same
rollout and update code: only the drawing differs.
"""

from __future__ import annotations

import statistics
import time
from unittest import mock

import jax

from benchmarks.common import machine, standalone_main

WAYS = ("gymnasium's drawing", "road culled")


def as_drawn(env):
    """The wrapper that leaves CarRacing's drawing as gymnasium's (a module
    function: the async workers receive it pickled by name)."""
    return env


def _timed_updates(culled: bool, updates: int) -> dict:
    """Returns the rollout's and the update's seconds for ``updates`` updates
    after one that compiles."""
    from janus_jax.config.presets import PRESETS
    from janus_jax.envs import gymnasium_setup, make
    from janus_jax.run.run_dir import env_kwargs, new_agent
    from janus_jax.train import control
    from janus_jax.train.ppo_trainer import WorldModelPPOTrainer

    config = PRESETS["carracing"]()
    c = config.controller
    wrapper = gymnasium_setup.cull_offscreen if culled else as_drawn
    with mock.patch.object(gymnasium_setup, "cull_offscreen", wrapper):
        env = make(config.env_id, **env_kwargs(config, c.num_envs))
    agent = new_agent(config, env.spec)
    trainer = WorldModelPPOTrainer(agent, env, config.ppo, training=c, seed=0)
    try:
        setup, _ = trainer._setup(c.total_timesteps, c.rollout_length)
        state = trainer._initial_state(setup)
        learn = jax.jit(control.learn, static_argnums=0)
        rollout_s, learn_s = [], []
        rollout = env.rollout

        def timed_rollout(*args):
            start = time.perf_counter()
            out = jax.block_until_ready(rollout(*args))
            rollout_s.append(time.perf_counter() - start)
            return out

        def timed_learn(*args):
            start = time.perf_counter()
            out = jax.block_until_ready(learn(*args))
            learn_s.append(time.perf_counter() - start)
            return out

        env.rollout = timed_rollout
        for _ in range(updates + 1):  # the first compiles
            state, _ = control.update(env, setup, agent.vae.params, state, timed_learn)
    finally:
        trainer.close()
    decisions = setup.num_envs * setup.rollout_length
    return {
        "decisions": decisions,
        "rollout_s": rollout_s[1:],
        "learn_s": learn_s[1:],
    }


def run(quick: bool) -> dict:
    """Returns one row per way (median decisions a second over its updates) and
    the ratio of the second to the first."""
    updates, rounds = (1, 1) if quick else (3, 2)
    times = {way: {"rollout_s": [], "learn_s": []} for way in WAYS}
    decisions = 0
    for _ in range(rounds):
        for way in WAYS:
            got = _timed_updates(way == "road culled", updates)
            decisions = got["decisions"]
            for k in ("rollout_s", "learn_s"):
                times[way][k].extend(got[k])
    rows = []
    for way in WAYS:
        per_update = [
            r + u
            for r, u in zip(times[way]["rollout_s"], times[way]["learn_s"], strict=True)
        ]
        rows.append(
            {
                "way": way,
                "decisions_per_s": decisions / statistics.median(per_update),
                "rollout_s": statistics.median(times[way]["rollout_s"]),
                "learn_s": statistics.median(times[way]["learn_s"]),
                "updates": len(per_update),
            }
        )
    ratio = rows[1]["decisions_per_s"] / rows[0]["decisions_per_s"]
    for row in rows:
        print(
            f"{row['way']:20s} {row['decisions_per_s']:6.1f} decisions/s "
            f"(an update of {decisions} decisions: rollout {row['rollout_s']:.2f} s, "
            f"learn {row['learn_s']:.2f} s; median of {row['updates']})"
        )
    print(f"ratio {ratio:.2f}x")
    return {"rows": rows, "ratio": ratio, "quick": quick, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    return standalone_main("python -m benchmarks.controller", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
