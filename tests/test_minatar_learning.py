"""The MinAtar recipe learns Breakout from its frames: the breakout preset, cut to
20k random steps and about 80k of the controller's real steps, must lift C well
above the random policy that gathered V's and M's data.

A uniformly random policy scores about 0.4 per episode on Breakout-MinAtar (the
collect rows of the preset's runs: 0.41, 0.44 and 0.40 over ~2,000 episodes, seeds
0-2). After 10 controller updates (~82k real steps) the full-length runs of
seeds 0, 1 and 2 evaluated at 4.9, 3.4 and 3.4 (sampled actions, 32 episodes;
docs/results/sample-efficiency.md). If V's Bernoulli likelihood, M's prediction
of its latents, the dreams or the [z, h] features broke, C would stay near the
random policy's return.
"""

import dataclasses

import pytest

from janus_jax.config import presets
from janus_jax.train import pipeline

RANDOM_POLICY = 0.4
BAR = 2.0  # five times the random policy, half of what seeds 1-2 reached


def short_breakout(seed: int):
    config = presets.breakout()
    steps_per_update = config.controller.num_envs * config.controller.rollout_length
    controller = dataclasses.replace(
        config.controller, total_timesteps=10 * steps_per_update, eval_episodes=32
    )
    return dataclasses.replace(config, seed=seed, controller=controller)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_minatar_recipe_learns_breakout_from_frames(tmp_path, seed):
    summary = pipeline.run(short_breakout(seed), tmp_path, progress=False)
    assert summary["random_return_mean"] < 2 * RANDOM_POLICY + 0.5
    assert summary["eval_return_mean"] >= BAR, summary["eval_return_mean"]
