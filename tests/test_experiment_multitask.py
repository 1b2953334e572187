"""experiments/multitask.py's shared run: the envs given, seen through their
own observations (``--image-size 0``) or through NxN frames of their render,
with M's action vector as the docs describe it (a slot per env, then a task
id per env)."""

import argparse

import pytest
from conftest import import_experiment


@pytest.fixture(scope="module")
def experiment():
    return import_experiment("multitask")


def _args(**given):
    args = dict(
        envs=["CartPole-v1", "Pendulum-v1"],
        image_size=32,
        preset="cartpole",
        steps=8000,
        vae_epochs=10,
        mdn_epochs=20,
        controller_steps=0,
        seed=0,
        overrides=[],
    )
    return argparse.Namespace(**{**args, **given})


def test_minatar_games_share_their_own_grids(experiment):
    args = _args(
        envs=["Breakout-MinAtar", "Asterix-MinAtar"],
        image_size=0,
        preset="breakout",
        steps=None,
        vae_epochs=None,
        mdn_epochs=None,
        controller_steps=250_000,
    )
    config = experiment.base_config(args)
    assert config.env_kwargs == {} and config.env_id == "Breakout-MinAtar"
    assert [t.env_id for t in config.tasks] == args.envs
    assert [t.share for t in config.tasks] == [0.5, 0.5]
    # Breakout's 3 one-hot actions, Asterix's 5, then 2 task ids.
    assert config.world_model.mdn_rnn.action_dim == 3 + 5 + 2
    vae = config.world_model.vae
    assert (vae.input_height, vae.input_width, vae.input_channels) == (10, 10, 4)
    # The breakout preset's schedule is kept where none is given.
    assert config.world_model.random_steps == 20_000
    assert config.controller.total_timesteps == 250_000


def test_the_pixel_pair_is_seen_through_small_frames(experiment):
    config = experiment.base_config(_args(overrides=["controller.mdn_updates=0"]))
    assert config.env_kwargs["image_size"] == [32, 32]
    vae = config.world_model.vae
    assert (vae.input_height, vae.input_width, vae.input_channels) == (32, 32, 3)
    assert config.world_model.vae.latent_dim == 16
    # CartPole's 2 one-hot actions, Pendulum's 1 continuous, then 2 task ids.
    assert config.world_model.mdn_rnn.action_dim == 2 + 1 + 2
    assert config.world_model.random_steps == 8000
    assert config.controller.mdn_updates == 0
