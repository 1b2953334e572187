"""World Models on gymnax CartPole-v1 through the Python API, step by step as the
PyTorch README our users come from writes it: train V and M, build the agent,
load them, train C by PPO on real and imagined experience, evaluate.

    python experiments/cartpole_world_model.py [--imagination-ratio 0.95]
        [--total-timesteps 15360] [--seed 0] [--out runs/cartpole-api]

``janus-jax train`` runs the same pipeline (the ``cartpole`` preset) with
checkpoints, pictures and resume; this script shows the objects underneath.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jax
import numpy as np

from janus_jax import WorldModelAgent
from janus_jax.config import presets
from janus_jax.diagnostics.evaluate import episode_returns
from janus_jax.envs import make
from janus_jax.train.ppo_trainer import WorldModelPPOTrainer
from janus_jax.train.world_model import WorldModelTrainer


def main(argv: list[str] | None = None) -> dict:
    """Returns the summary (also written to OUT/summary.json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--imagination-ratio",
        type=float,
        default=None,
        help="share of dreamed transitions in each PPO batch (default: the "
        "cartpole preset's, 0.95)",
    )
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=None,
        help="real env steps of the controller phase (default: the cartpole "
        "preset's, 15,360)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the run")
    parser.add_argument("--out", default="runs/cartpole-api", help="run directory")
    args = parser.parse_args(argv)
    preset = presets.cartpole()  # the sizes of the measured default run
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # 1. Pre-train the world model on random experience.
    trainer = WorldModelTrainer(
        "CartPole-v1", preset.world_model, run_dir=out / "world_model", seed=args.seed
    )
    vae, mdn_rnn = trainer.train_world_model()

    # 2. Create the agent and load the trained V and M.
    env = make("CartPole-v1")
    agent = WorldModelAgent(
        observation_shape=env.spec.observation_shape,
        action_dim=env.spec.action.dim,
        continuous_actions=False,
        controller_config=preset.network,
        vae_config=vae.config,
        mdn_rnn_config=mdn_rnn.config,
        seed=args.seed,
    )
    agent.vae.load_state_dict(vae.state_dict())
    agent.mdn_rnn.load_state_dict(mdn_rnn.state_dict())

    # 3. Train the controller by PPO on real and imagined experience.
    c = preset.controller
    # The seed's keywords on top of the preset's controller recipe (its dream
    # updates, M's refresh from the replay, rollout length).
    ppo_trainer = WorldModelPPOTrainer(
        world_model_agent=agent,
        envs=env,
        config=preset.ppo,
        imagination_ratio=args.imagination_ratio,
        imagination_horizon=c.imagination_horizon,
        training=c,
        seed=args.seed,
    )
    ppo_trainer.train(total_timesteps=args.total_timesteps)

    # 4. Evaluate against a uniformly random policy.
    key_agent, key_random = jax.random.split(jax.random.key(args.seed + 1))
    with make("CartPole-v1", num_envs=c.eval_episodes) as eval_env:
        ours = episode_returns(key_agent, eval_env, agent.params, c.eval_episodes)
        rand = episode_returns(key_random, eval_env, None, c.eval_episodes)
    summary = {
        "eval_return_mean": float(np.mean(ours)),
        "eval_return_std": float(np.std(ours)),
        "random_return_mean": float(np.mean(rand)),
        "controller_env_steps": ppo_trainer.real_env_steps,
        "imagined_steps": ppo_trainer.imagined_steps,
        "imagination_ratio": ppo_trainer.training.imagination_ratio,
        "seed": args.seed,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
