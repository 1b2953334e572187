"""One recipe per observation kind: ``recipe_for`` on each kind (and a clear
error for one no recipe serves), and ``janus-jax train --env ID`` without
``--preset`` running the recipe it picks, sized from the env itself."""

from __future__ import annotations

import dataclasses

import gymnax
import pytest

from janus_jax.cli import build_parser, run_config
from janus_jax.cli.parser import default_out
from janus_jax.config import presets
from janus_jax.config.models import ActionSpec
from janus_jax.config.recipes import RECIPES, recipe_for
from janus_jax.envs.spec import EnvSpec


def _spec(shape, dtype="float32", continuous=False, dim=3) -> EnvSpec:
    return EnvSpec(
        env_id="Probe-v0",
        family="gymnax",
        observation_shape=shape,
        observation_dtype=dtype,
        action=ActionSpec(continuous=continuous, dim=dim),
        on_device=True,
        max_episode_steps=None,
    )


@pytest.mark.parametrize(
    ("spec", "name"),
    [
        (_spec((4,)), "vector-discrete"),
        (_spec((17,), continuous=True, dim=6), "vector-continuous"),
        (_spec((10, 10, 6)), "minatar"),
        (_spec((21, 21, 2)), "minatar"),
        (_spec((64, 64, 3), "uint8", continuous=True), "pixels"),
        (_spec((96, 96, 1), "uint8"), "pixels"),
    ],
)
def test_each_observation_kind_gets_its_recipe(spec, name):
    assert recipe_for(spec).name == name
    # exactly one recipe serves each kind
    assert [r.name for r in RECIPES if r.serves(spec)] == [name]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (_spec((64, 64, 3)), "float32 (64, 64, 3)"),  # float images: no recipe
        (_spec((10, 10, 4), continuous=True, dim=2), "2 continuous actions"),
    ],
)
def test_a_kind_no_recipe_serves_is_refused_naming_its_spaces(spec, words):
    with pytest.raises(ValueError, match="no recipe serves Probe-v0") as err:
        recipe_for(spec)
    assert words in str(err.value) and "--preset" in str(err.value)


def _config(*argv):
    args = build_parser().parse_args(["train", *argv])
    return run_config(args), args


def test_a_minatar_game_runs_the_minatar_recipe_sized_from_the_game(capsys):
    config, args = _config("--env", "SpaceInvaders-MinAtar")
    printed = capsys.readouterr().out
    assert "the minatar recipe (preset breakout" in printed
    # The game's own sizes, read from gymnax independently of janus-jax.
    env, params = gymnax.make("SpaceInvaders-MinAtar")
    shape = env.observation_space(params).shape
    actions = env.action_space(params).n
    v, m = config.world_model.vae, config.world_model.mdn_rnn
    assert v.observation_shape == tuple(shape) == (10, 10, 6)
    assert m.action_dim == actions
    # Breakout's V and M otherwise, and every other value the same.
    breakout = presets.breakout()
    bv, bm = breakout.world_model.vae, breakout.world_model.mdn_rnn
    assert dataclasses.replace(v, input_channels=4) == bv
    assert dataclasses.replace(m, action_dim=bm.action_dim) == bm
    assert v.likelihood == "bernoulli"
    same = dataclasses.replace(
        config,
        env_id=breakout.env_id,
        preset=breakout.preset,
        world_model=dataclasses.replace(config.world_model, vae=bv, mdn_rnn=bm),
    )
    assert same == breakout
    assert default_out(args) == "runs/SpaceInvaders-MinAtar"


def test_a_vector_env_runs_the_vector_recipe_for_its_actions(capsys):
    config, args = _config("--env", "Acrobot-v1")
    assert "the vector-discrete recipe (preset cartpole" in capsys.readouterr().out
    assert config.preset == "cartpole on Acrobot-v1"
    assert config.world_model.vae.observation_shape == (6,)
    assert config.world_model.mdn_rnn.action_dim == 3
    # each recipe's memory, as docs/results/memory.md measured it
    assert config.world_model.mdn_rnn.rnn_type == "transformer"
    config, _ = _config("--env", "MountainCarContinuous-v0")
    assert "the vector-continuous recipe (preset pendulum" in capsys.readouterr().out
    assert config.ppo == presets.pendulum().ppo
    assert config.world_model.mdn_rnn.rnn_type == "lstm"


def test_several_envs_are_refused_where_a_command_takes_one():
    argv = ["train", "--env", "CartPole-v1", "--env", "Acrobot-v1"]
    with pytest.raises(ValueError, match=r"--env was given 2 times.*one env for"):
        run_config(build_parser().parse_args(argv))


def test_an_explicit_preset_is_kept_and_moved_by_its_recipe(capsys):
    config, args = _config("--preset", "breakout", "--env", "Asterix-MinAtar")
    printed = capsys.readouterr().out
    assert "recipe" not in printed and "bernoulli likelihood" in printed
    assert config.world_model.vae.likelihood == "bernoulli"
    assert default_out(args) == "runs/breakout"
    # A preset whose recipe does not serve the env: V and M are the defaults.
    config, _ = _config("--preset", "breakout", "--env", "CartPole-v1")
    assert config.world_model.vae.likelihood == "gaussian"
    assert config.world_model.vae.observation_shape == (4,)


def test_no_env_and_no_preset_is_the_default_preset(capsys):
    config, args = _config()
    assert config == presets.preset(presets.DEFAULT)
    assert capsys.readouterr().out == ""
    assert default_out(args) == f"runs/{presets.DEFAULT}"
