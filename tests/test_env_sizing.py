"""``--env`` with every preset: V and M are derived anew from the env's
observations (vectors, MinAtar's 10x10xC frames, 64x64 pixels) unless the user
set them, and the resolved V and M take a real observation of the env."""

from __future__ import annotations

import functools
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.cli import build_parser, run_config
from janus_jax.config import presets
from janus_jax.config.architecture import default_configs, default_vae_config
from janus_jax.config.models import ActionSpec, MDNRNNConfig, VAEConfig
from janus_jax.envs import make
from janus_jax.models import mdn_rnn, vae
from janus_jax.train import pipeline

ENVS = ["CartPole-v1", "Pendulum-v1", "Breakout-MinAtar"]
if importlib.util.find_spec("Box2D") is not None:  # gymnasium[box2d]
    ENVS.append("CarRacing-v3")


def _config(*argv):
    return run_config(build_parser().parse_args(["train", *argv]))


@functools.cache
def _observation(env_id: str) -> np.ndarray:
    """Returns one real first observation of ``env_id`` [1, ...]."""
    with make(env_id, num_envs=1) as env:
        return np.asarray(env.start(jax.random.key(0)).obs)


def _encode_and_step(obs, vae_config, mdn_config, action_dim):
    """Returns (V's reconstruction, M's hidden state) after V, freshly initialised,
    encodes ``obs`` [1, ...] and M takes one step from the latent."""
    v = vae.init(jax.random.key(1), vae_config)
    m = mdn_rnn.init(jax.random.key(2), mdn_config)
    latent = vae.get_latent(v, obs)
    carry, _ = mdn_rnn.step(
        m,
        mdn_rnn.initial_carry(mdn_config, (1,)),
        latent,
        jnp.zeros((1, action_dim), jnp.float32),
    )
    return vae.decode(v, latent), mdn_rnn.hidden(carry)


@pytest.mark.parametrize("env_id", ENVS)
@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_runs_on_every_observation_kind(capsys, name, env_id):
    config = _config("--preset", name, "--env", env_id)
    printed = capsys.readouterr().out
    if env_id == presets.preset(name).env_id:
        assert printed == ""  # the preset's own env: its V and M stay
        assert config == presets.preset(name)
    else:
        assert printed.count("\n") == 1 and f"--env {env_id}: V and M" in printed
    resolved, spec = pipeline._resolved(config)
    wm = resolved.world_model
    assert wm.vae.observation_shape == spec.observation_shape
    assert _observation(env_id).shape[1:] == spec.observation_shape
    # Traced, not run (running 32 fresh V's op by op takes minutes on 2 cores):
    # a shape or dtype V or M cannot take raises here as it would in training.
    recon, hidden = jax.eval_shape(
        functools.partial(
            _encode_and_step,
            vae_config=wm.vae,
            mdn_config=wm.mdn_rnn,
            action_dim=spec.action.dim,
        ),
        _observation(env_id),
    )
    assert recon.shape == (1, *spec.observation_shape)
    assert hidden.shape == (1, wm.mdn_rnn.hidden_dim)


def test_small_frames_get_the_breakout_presets_two_convolutions():
    breakout = presets.breakout().world_model.vae
    derived = default_vae_config((10, 10, 4))
    assert derived.hidden_channels == breakout.hidden_channels == (32, 64)
    assert derived.observation_shape == (10, 10, 4)
    # 4x4 stride-2 convolutions need 4, 10, 22, 46 pixels for 1, 2, 3, 4 layers.
    assert default_vae_config((64, 64, 3)).hidden_channels == (32, 64, 128, 256)
    assert default_vae_config((30, 21, 1)).hidden_channels == (32, 64)
    assert default_vae_config((22, 22, 1)).hidden_channels == (32, 64, 128)
    assert default_vae_config((4, 4, 1)).hidden_channels == (32,)
    assert default_vae_config((6,)).observation_size == 6
    with pytest.raises(ValueError, match=r"observation_shape=\(3, 3, 1\) is too small"):
        default_vae_config((3, 3, 1))


def test_default_configs_fill_what_is_unset_and_check_what_is_given():
    box = ActionSpec(continuous=True, dim=3, low=(-1, 0, 0), high=(1, 1, 1))
    v, m = default_configs((64, 64, 3), box)
    assert v == VAEConfig(input_height=64, input_width=64, input_channels=3)
    assert m == MDNRNNConfig(latent_dim=v.latent_dim, action_dim=3)
    two = ActionSpec(continuous=False, dim=2)
    small = VAEConfig(observation_size=4, latent_dim=2)
    v, m = default_configs((4,), two, small)
    assert v is small and m == MDNRNNConfig(latent_dim=2, action_dim=2)
    wide = MDNRNNConfig(latent_dim=2, action_dim=5, hidden_dim=8)
    with pytest.raises(ValueError, match=r"shape \(4,\), but observation_shape=\(6,\)"):
        default_configs((6,), two, small)
    with pytest.raises(ValueError, match=r"MDNRNNConfig.action_dim=5 is invalid"):
        default_configs((4,), two, small, wide)


def test_the_users_architecture_overrides_survive_the_new_env(capsys):
    config = _config(
        *("--preset", "tiny", "--env", "Breakout-MinAtar"),
        *("--set", "world_model.vae.latent_dim=8"),
        *("--set", "world_model.vae.hidden_channels=[16]"),
        *("--set", "world_model.mdn_rnn.hidden_dim=24"),
        *("--set", "world_model.vae_batch_size=16"),
    )
    line = capsys.readouterr().out.strip()
    assert "(10, 10, 4)" in line and "CartPole-v1" in line and "latent 8" in line
    wm = config.world_model
    assert wm.vae.observation_shape == (10, 10, 4)
    assert (wm.vae.latent_dim, wm.vae.hidden_channels) == (8, (16,))
    # M follows V's latent and the env's 3 actions; the user's hidden size stays.
    assert (wm.mdn_rnn.latent_dim, wm.mdn_rnn.action_dim) == (8, 3)
    assert wm.mdn_rnn.hidden_dim == 24
    assert wm.vae_batch_size == 16  # not an architecture: set as given
    assert config.preset == "tiny on Breakout-MinAtar"
    pipeline._resolved(config)  # V and M agree with each other and the env
