"""CarRacing-v3's decisions per second with the frames the agent never sees
drawn or not (``janus_jax.envs.gymnasium_wrappers.UnseenFrames``), side by side
in one process on one core.

`python -m benchmarks.carracing_env [--quick] [--json F]` steps one env under
the carracing preset's options (50 skipped start frames, each action held for
4 frames) with seeded random actions, alternating the two ways ``rounds``
times, and reports each way's median rate and their ratio. A reset (and its
skipped start) is counted in the time, as in training.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

SKIP, REPEAT = 50, 4  # the carracing preset's skip_start and action_repeat


def decisions_per_s(draw_unseen: bool, decisions: int, seed: int) -> float:
    """Returns the rate of ``decisions`` steps of one wrapped env, reset included."""
    import gymnasium

    from janus_jax.envs.gymnasium_wrappers import ActionRepeat, SkipStart

    env = gymnasium.make("CarRacing-v3")
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
    """Returns the rows (one per way) and the ratio of their medians."""
    decisions, rounds = (40, 1) if quick else (200, 3)
    rates = {True: [], False: []}
    for r in range(rounds):
        for draw in (True, False):
            rates[draw].append(decisions_per_s(draw, decisions, seed=r))
    rows = [
        {
            "frames drawn": "every frame" if draw else "only the agent's",
            "decisions_per_s": statistics.median(rates[draw]),
            "frames_per_s": statistics.median(rates[draw]) * REPEAT,
            "rounds": rates[draw],
        }
        for draw in (True, False)
    ]
    ratio = rows[1]["decisions_per_s"] / rows[0]["decisions_per_s"]
    for row in rows:
        print(
            f"{row['frames drawn']:18s} {row['decisions_per_s']:7.1f} decisions/s "
            f"({row['frames_per_s']:.0f} frames/s)"
        )
    print(f"speed-up {ratio:.2f}x ({decisions} decisions x {rounds} rounds each)")
    return {"rows": rows, "speedup": ratio, "quick": quick}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.carracing_env")
    parser.add_argument("--quick", action="store_true", help="a smoke test")
    parser.add_argument("--json", metavar="FILE", help="write the figures to FILE")
    args = parser.parse_args(argv)
    result = run(args.quick)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
