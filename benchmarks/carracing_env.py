"""CarRacing-v3's decisions per second drawn three ways, side by side in one
process on one core: every frame drawn as gymnasium draws it; only the frames
the agent sees (``janus_jax.envs.gymnasium_wrappers.UnseenFrames``); and those
with the road drawn from the polygons in view
(``janus_jax.envs.carracing_frames``, what ``GymnasiumEnv`` does). The agent's
frames are the same pixels all three ways (tests/test_episode_options.py).

`python -m benchmarks.carracing_env [--quick] [--json F]` steps one env under
the carracing preset's options (50 skipped start frames, each action held for
4 frames) with seeded random actions, alternating the ways ``rounds`` times,
and reports each way's median rate and its ratio to the first. A reset (and
its skipped start) is counted in the time, as in training.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from benchmarks.common import standalone_main

SKIP, REPEAT = 50, 4  # the carracing preset's skip_start and action_repeat


# (name, every frame drawn, road culled)
WAYS = (
    ("every frame", True, False),
    ("only the agent's", False, False),
    ("the agent's, culled", False, True),
)


def decisions_per_s(draw_unseen: bool, cull: bool, decisions: int, seed: int) -> float:
    """Returns the rate of ``decisions`` steps of one wrapped env, reset included."""
    import gymnasium

    from janus_jax.envs.carracing_frames import cull_offscreen
    from janus_jax.envs.gymnasium_wrappers import ActionRepeat, SkipStart

    env = gymnasium.make("CarRacing-v3")
    env = cull_offscreen(env) if cull else env
    env = ActionRepeat(SkipStart(env, SKIP, draw_unseen), REPEAT, draw_unseen)
    rng = np.random.default_rng(seed)
    actions = rng.uniform(0, 1, (decisions, 3)).astype(np.float32)
    start = time.perf_counter()
    env.reset(seed=seed)
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    rate = decisions / (time.perf_counter() - start)
    env.close()
    return rate


def run(quick: bool) -> dict:
    """Returns the rows (one per way, each with its speed-up over the first)."""
    decisions, rounds = (40, 1) if quick else (200, 3)
    rates = {name: [] for name, _, _ in WAYS}
    for r in range(rounds):
        for name, draw, cull in WAYS:
            rates[name].append(decisions_per_s(draw, cull, decisions, seed=r))
    first = statistics.median(rates[WAYS[0][0]])
    rows = []
    for name, _, _ in WAYS:
        rate = statistics.median(rates[name])
        rows.append(
            {
                "frames drawn": name,
                "decisions_per_s": rate,
                "frames_per_s": rate * REPEAT,
                "speedup": rate / first,
                "rounds": rates[name],
            }
        )
        print(
            f"{name:20s} {rate:7.1f} decisions/s ({rate * REPEAT:.0f} frames/s), "
            f"{rate / first:.2f}x"
        )
    print(f"({decisions} decisions x {rounds} rounds each, medians)")
    return {"rows": rows, "quick": quick}


def main(argv: list[str] | None = None) -> int:
    return standalone_main("python -m benchmarks.carracing_env", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
