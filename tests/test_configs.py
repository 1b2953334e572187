"""Every invalid config value raises ValueError naming the field, value and rule."""

import dataclasses

import pytest

from janus_jax import WorldModelAgent
from janus_jax.configs import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
    check_compatible,
    min_image_size,
)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: VAEConfig(latent_dim=0), r"VAEConfig.latent_dim=0 .*>= 1"),
        (lambda: VAEConfig(beta=-0.1), r"VAEConfig.beta=-0.1 .*>= 0"),
        (lambda: VAEConfig(kl_tolerance=-1), r"VAEConfig.kl_tolerance=-1"),
        (
            lambda: VAEConfig(input_height=32),
            r"input_height=32 .*too small.*at least 46",
        ),
        (lambda: VAEConfig(input_width=20), r"input_width=20 .*too small"),
        (lambda: VAEConfig(hidden_channels=()), r"hidden_channels=\(\)"),
        (lambda: VAEConfig(hidden_channels=(32, -1)), r"hidden_channels"),
        (lambda: VAEConfig(observation_size=0), r"observation_size=0"),
        (lambda: MDNRNNConfig(latent_dim=0), r"MDNRNNConfig.latent_dim=0"),
        (lambda: MDNRNNConfig(rnn_type="transformer"), r"rnn_type='transformer'.*lstm"),
        (lambda: MDNRNNConfig(temperature=-1.0), r"temperature=-1.0 .*>= 0"),
        (lambda: MDNRNNConfig(num_mixtures=0), r"num_mixtures=0"),
        (lambda: MDNRNNConfig(rnn_layers=0), r"rnn_layers=0"),
        (lambda: MDNRNNConfig(log_sigma_min=3.0), r"log_sigma_min=3.0 .*below"),
        (lambda: NetworkConfig(activation="swishy"), r"activation='swishy'.*tanh"),
        (lambda: NetworkConfig(layer_sizes=(0,)), r"layer_sizes"),
        (lambda: PPOConfig(learning_rate=0.0), r"learning_rate=0.0 .*> 0"),
        (lambda: PPOConfig(gamma=1.5), r"gamma=1.5 .*\[0.0, 1.0\]"),
        (lambda: PPOConfig(gae_lambda=-0.1), r"gae_lambda"),
        (lambda: PPOConfig(n_epochs=0), r"n_epochs=0"),
        (lambda: PPOConfig(batch_size=2.5), r"batch_size=2.5"),
        (lambda: PPOConfig(entropy_coef=-0.01), r"entropy_coef"),
        (
            lambda: ActionSpec(continuous=True, dim=2, low=(0, 0), high=(1, 0)),
            r"below high",
        ),
        (lambda: ActionSpec(continuous=True, dim=2, low=(0,)), r"must be 2 finite"),
        (
            lambda: ActionSpec(continuous=False, dim=2, low=(0, 0)),
            r"continuous actions only",
        ),
    ],
)
def test_invalid_values_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_latent_sizes_must_agree():
    with pytest.raises(ValueError, match=r"latent_dim=16 .*VAEConfig.latent_dim=32"):
        check_compatible(
            VAEConfig(),
            MDNRNNConfig(latent_dim=16, action_dim=3),
            ActionSpec(continuous=True, dim=3),
        )
    with pytest.raises(ValueError, match=r"latent_dim=16"):
        WorldModelAgent(
            (4,), 2, mdn_rnn_config=MDNRNNConfig(latent_dim=16, action_dim=2)
        )


def test_action_sizes_must_agree():
    with pytest.raises(ValueError, match=r"action_dim=4 .*size 2"):
        check_compatible(
            VAEConfig(), MDNRNNConfig(action_dim=4), ActionSpec(continuous=False, dim=2)
        )


def test_agent_rejects_channels_first_and_bad_shapes():
    with pytest.raises(ValueError, match=r"channels-first.*\(64, 64, 3\)"):
        WorldModelAgent((3, 64, 64), 3, True)
    with pytest.raises(ValueError, match=r"observation_shape=\(4, 4\)"):
        WorldModelAgent((4, 4), 2)


def test_defaults_are_the_seed_and_paper_values():
    vae = VAEConfig()
    assert (vae.input_channels, vae.input_height, vae.input_width) == (3, 64, 64)
    assert vae.latent_dim == 32 and vae.hidden_channels == (32, 64, 128, 256)
    assert vae.beta == 1.0 and vae.kl_tolerance == 0.5
    mdn = MDNRNNConfig()
    assert (mdn.hidden_dim, mdn.num_mixtures, mdn.rnn_type, mdn.rnn_layers) == (
        256,
        5,
        "lstm",
        1,
    )
    assert NetworkConfig().layer_sizes == (256, 256)
    ppo = PPOConfig()
    assert (ppo.learning_rate, ppo.n_epochs, ppo.batch_size) == (3e-4, 10, 64)


def test_configs_are_frozen_keyword_only_and_accept_seed_lists():
    config = VAEConfig(hidden_channels=[32, 64, 128, 256])  # the seed writes a list
    assert config.hidden_channels == (32, 64, 128, 256)
    hash(config)  # static under jit: must be hashable
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.latent_dim = 3
    with pytest.raises(TypeError):
        VAEConfig(3)  # keyword-only
    assert dataclasses.replace(config, latent_dim=8).latent_dim == 8


def test_min_image_size_matches_the_conv_arithmetic():
    # 46 -> 22 -> 10 -> 4 -> 1 with 4x4 stride-2 valid convolutions; 45 leaves nothing.
    assert min_image_size(4) == 46
    VAEConfig(input_height=46, input_width=46)
    with pytest.raises(ValueError):
        VAEConfig(input_height=45)
