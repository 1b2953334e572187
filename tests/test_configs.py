"""Every invalid config value raises ValueError naming the field, value and rule."""

import dataclasses
import math
import re
import typing
import warnings

import jax
import pytest

from janus_jax import WorldModelAgent
from janus_jax.config.conv_sizes import min_image_size
from janus_jax.config.models import (
    ActionSpec,
    MDNRNNConfig,
    NetworkConfig,
    PPOConfig,
    VAEConfig,
    check_compatible,
)
from janus_jax.config.run import RunConfig, from_dict, to_dict
from janus_jax.config.training import (
    ControllerTrainingConfig,
    WorldModelTrainingConfig,
    check_device,
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
        (lambda: MDNRNNConfig(rnn_type="mamba"), r"rnn_type='mamba'.*'lstm', 'gru'"),
        (
            lambda: MDNRNNConfig(rnn_type="transformer", attention_heads=3),
            r"attention_heads=3 .*divide hidden_dim=256",
        ),
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
        (lambda: PPOConfig(minibatch_size=2.5), r"PPOConfig.minibatch_size=2.5"),
        (lambda: PPOConfig(learning_rate=True), r"learning_rate=True .*number"),
        (lambda: VAEConfig(beta=math.nan), r"VAEConfig.beta=nan .*finite"),
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


def test_agent_turns_channels_first_round_and_rejects_bad_shapes():
    with pytest.warns(UserWarning, match=r"channels-first.*\(64, 64, 3\)"):
        agent = WorldModelAgent((3, 64, 64), 3, True)
    assert agent.vae.config.observation_shape == (64, 64, 3)
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
    assert (ppo.learning_rate, ppo.n_epochs, ppo.minibatch_size) == (3e-4, 10, 64)


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


# -- integer and boolean fields -------------------------------------------------------

CLASSES = (
    VAEConfig,
    MDNRNNConfig,
    NetworkConfig,
    ActionSpec,
    PPOConfig,
    WorldModelTrainingConfig,
    ControllerTrainingConfig,
    RunConfig,
)
# The int fields that may be 0; every other one must be >= 1.
MAY_BE_ZERO = {
    ("WorldModelTrainingConfig", "random_steps"),
    ("ControllerTrainingConfig", "mdn_updates"),
    ("ControllerTrainingConfig", "dream_updates"),
    ("ControllerTrainingConfig", "vae_updates"),
    ("ControllerTrainingConfig", "eval_every"),
    ("RunConfig", "seed"),
}


def _valid(cls):
    if cls is ActionSpec:
        return ActionSpec(continuous=False, dim=2)
    if cls is RunConfig:
        return RunConfig(env_id="CartPole-v1")
    return cls()


def _fields_of(kind) -> list[tuple[type, str]]:
    """Returns (class, field) of every field annotated ``kind`` or ``kind | None``."""
    return [
        (cls, f.name)
        for cls in CLASSES
        for f in dataclasses.fields(cls)
        if typing.get_type_hints(cls)[f.name] in (kind, kind | None)
    ]


INT_FIELDS = _fields_of(int)
BOOL_FIELDS = _fields_of(bool)


def test_the_audit_sees_every_int_and_bool_field():
    # One field of each class that has some, so a broken audit cannot pass empty.
    assert {(cls.__name__, name) for cls, name in INT_FIELDS} >= {
        ("VAEConfig", "observation_size"),  # int | None
        ("MDNRNNConfig", "rnn_layers"),
        ("ActionSpec", "dim"),
        ("PPOConfig", "minibatch_size"),
        ("WorldModelTrainingConfig", "gradient_accumulation_steps"),
        ("ControllerTrainingConfig", "mdn_updates"),
        ("RunConfig", "seed"),
    }
    assert {(cls.__name__, name) for cls, name in BOOL_FIELDS} >= {
        ("MDNRNNConfig", "predict_done"),
        ("NetworkConfig", "use_layer_norm"),
        ("ActionSpec", "continuous"),
        ("PPOConfig", "anneal_lr"),
        ("ControllerTrainingConfig", "learn_from_real"),
    }


@pytest.mark.parametrize("value", [2.5, 3.0, True, "3"], ids=repr)
@pytest.mark.parametrize(
    "cls,field", INT_FIELDS, ids=lambda x: getattr(x, "__name__", x)
)
def test_int_fields_refuse_floats_bools_and_text(cls, field, value):
    minimum = 0 if (cls.__name__, field) in MAY_BE_ZERO else 1
    message = (
        f"{cls.__name__}.{field}={value!r} is invalid: must be an integer >= {minimum}"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dataclasses.replace(_valid(cls), **{field: value})


@pytest.mark.parametrize(
    "cls,field", INT_FIELDS, ids=lambda x: getattr(x, "__name__", x)
)
def test_int_fields_have_their_minimum(cls, field):
    minimum = 0 if (cls.__name__, field) in MAY_BE_ZERO else 1
    with pytest.raises(ValueError, match=f"integer >= {minimum}$"):
        dataclasses.replace(_valid(cls), **{field: minimum - 1})
    if minimum == 0:
        assert getattr(dataclasses.replace(_valid(cls), **{field: 0}), field) == 0


@pytest.mark.parametrize("value", [1, 0, None, "yes"], ids=repr)
@pytest.mark.parametrize(
    "cls,field", BOOL_FIELDS, ids=lambda x: getattr(x, "__name__", x)
)
def test_bool_fields_refuse_other_values(cls, field, value):
    message = f"{cls.__name__}.{field}={value!r} is invalid: must be True or False"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        dataclasses.replace(_valid(cls), **{field: value})


# -- PPOConfig.minibatch_size and the seed's batch_size -------------------------------


def test_the_seed_readme_ppo_config_still_builds():
    config = PPOConfig(learning_rate=3e-4, n_epochs=10, batch_size=64)
    assert config == PPOConfig(learning_rate=3e-4, n_epochs=10, minibatch_size=64)
    assert PPOConfig(batch_size=32).minibatch_size == 32
    assert PPOConfig(batch_size=32, minibatch_size=32).minibatch_size == 32


def test_batch_size_and_minibatch_size_must_agree():
    with pytest.raises(ValueError, match=r"batch_size=32 and minibatch_size=16"):
        PPOConfig(batch_size=32, minibatch_size=16)
    # replace fills in minibatch_size from the config, so the alias cannot change it
    with pytest.raises(ValueError, match=r"give minibatch_size only"):
        dataclasses.replace(PPOConfig(minibatch_size=32), batch_size=16)
    with pytest.raises(ValueError, match=r"PPOConfig.minibatch_size=2.5"):
        PPOConfig(batch_size=2.5)


def test_the_alias_is_not_stored():
    config = PPOConfig(batch_size=32)
    assert dataclasses.replace(config, learning_rate=1e-3).minibatch_size == 32
    assert dataclasses.replace(config, minibatch_size=16).minibatch_size == 16
    data = dataclasses.asdict(config)
    assert data["minibatch_size"] == 32 and "batch_size" not in data
    run = RunConfig(env_id="CartPole-v1", ppo=config)
    assert from_dict(RunConfig, to_dict(run)) == run


# -- WorldModelTrainingConfig's device ------------------------------------------------

# A kind that is not JAX's backend here: "cuda" on a CPU-only machine.
ELSEWHERE = "cuda" if jax.default_backend() != "gpu" else "cpu"


def test_the_seed_readme_device_warns_and_the_config_works():
    with pytest.warns(UserWarning, match=r"not JAX's backend.*jax\[cuda12\]") as record:
        config = WorldModelTrainingConfig(
            num_episodes=1000, vae_epochs=30, mdn_epochs=50, device=ELSEWHERE
        )
    assert f"WorldModelTrainingConfig.device={ELSEWHERE!r}" in str(record[0].message)
    assert record[0].filename == __file__  # points at the user's line
    assert config == WorldModelTrainingConfig(
        num_episodes=1000, vae_epochs=30, mdn_epochs=50
    )
    assert "device" not in to_dict(config)
    assert dataclasses.replace(config, num_episodes=3).num_episodes == 3


@pytest.mark.parametrize(
    "device",
    ["auto", {"gpu": "cuda"}.get(jax.default_backend(), jax.default_backend())],
)
def test_a_device_jax_runs_on_does_not_warn(device):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WorldModelTrainingConfig(device=device)
        check_device(device)


@pytest.mark.parametrize("device", ["bogus", "CUDA", 0])
def test_an_unknown_device_is_refused(device):
    with pytest.raises(
        ValueError, match=rf"WorldModelTrainingConfig.device={device!r} .*auto"
    ):
        WorldModelTrainingConfig(device=device)
    with pytest.raises(ValueError, match=rf"^device={device!r} is invalid"):
        check_device(device)


def test_check_device_warns_at_its_callers_caller():
    def agent_init():  # stands for WorldModelAgent.__init__(device=...)
        check_device(ELSEWHERE)

    with pytest.warns(UserWarning, match=rf"^device={ELSEWHERE!r} is not") as record:
        agent_init()
    assert record[0].filename == __file__


# -- ControllerTrainingConfig ---------------------------------------------------------


@pytest.mark.parametrize("ratio", [1, 1.0, 1.5, -0.1, math.nan, True, "0.5"], ids=repr)
def test_imagination_ratio_lies_in_zero_to_one(ratio):
    with pytest.raises(
        ValueError, match=rf"imagination_ratio={ratio!r} .*\[0, 1\)"
    ) as info:
        ControllerTrainingConfig(imagination_ratio=ratio)
    assert "learn_from_real=False with a ratio below 1 (e.g. 0.5" in str(info.value)


@pytest.mark.parametrize("ratio", [0, 0.0, 0.5, 0.99])
def test_ratios_below_one_are_accepted(ratio):
    assert ControllerTrainingConfig(imagination_ratio=ratio).imagination_ratio == ratio


def test_learning_only_in_the_dream_needs_a_ratio_above_zero():
    config = ControllerTrainingConfig(imagination_ratio=0.5, learn_from_real=False)
    assert not config.learn_from_real
    with pytest.raises(ValueError, match=r"learn_from_real=False .*no data.*0.5"):
        ControllerTrainingConfig(imagination_ratio=0.0, learn_from_real=False)


@pytest.mark.parametrize(
    "cls,field",
    [
        (WorldModelTrainingConfig, "seed"),
        (ControllerTrainingConfig, "seed"),
        (ControllerTrainingConfig, "temperature"),
    ],
)
def test_the_run_seed_and_m_temperature_live_in_one_place(cls, field):
    assert field not in {f.name for f in dataclasses.fields(cls)}
    with pytest.raises(TypeError, match=field):
        cls(**{field: 0})


def test_dream_from_names_its_choices():
    with pytest.raises(ValueError, match="dream_from='disk' is invalid.*'replay'"):
        ControllerTrainingConfig(dream_from="disk")


def test_eval_policy_names_its_choices():
    with pytest.raises(ValueError, match="eval_policy='greedy' is invalid.*'sample'"):
        ControllerTrainingConfig(eval_policy="greedy")


# M's refresh fields were world_model_*; mdn_* as in the world_model section.
RENAMED = [
    ("world_model_updates", "mdn_updates"),
    ("world_model_batch_size", "mdn_batch_size"),
]


@pytest.mark.parametrize("old,new", RENAMED)
def test_an_old_keyword_builds_the_new_field_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning) as caught:
        config = ControllerTrainingConfig(**{old: 7})
    assert [str(w.message) for w in caught] == [
        f"ControllerTrainingConfig.{old} is deprecated: write "
        f"ControllerTrainingConfig.{new} (same meaning, same value)"
    ]
    assert caught[0].filename == __file__  # points at the caller's line
    assert config == ControllerTrainingConfig(**{new: 7})
    assert getattr(config, new) == 7


@pytest.mark.parametrize("old,new", RENAMED)
def test_an_old_attribute_reads_the_new_field_with_a_deprecation_warning(old, new):
    config = ControllerTrainingConfig(**{new: 9})
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated: write .*{new}"):
        assert getattr(config, old) == 9
    # not a field of its own: replace, equality and the JSON form ignore it
    assert old not in {f.name for f in dataclasses.fields(config)}
    assert getattr(dataclasses.replace(config, **{new: 2}), new) == 2
    assert old not in to_dict(config) and to_dict(config)[new] == 9


@pytest.mark.parametrize("old,new", RENAMED)
def test_an_old_keyword_beside_its_new_one_is_refused(old, new):
    with pytest.raises(ValueError, match=f"{old} and .*{new} are both given"):
        ControllerTrainingConfig(**{old: 1, new: 2})


def test_the_new_names_are_checked_like_the_old_ones_were():
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(
            ValueError, match=r"ControllerTrainingConfig.mdn_updates=-1 is invalid"
        ),
    ):
        ControllerTrainingConfig(world_model_updates=-1)
    with pytest.raises(ValueError, match=r"mdn_batch_size=0 is invalid: .*>= 1"):
        ControllerTrainingConfig(mdn_batch_size=0)


def test_the_trainers_keyword_form_takes_the_old_names_too():
    from janus_jax.train.ppo_setup import training_config

    with pytest.warns(DeprecationWarning, match="world_model_updates .*mdn_updates"):
        training = training_config(None, {"world_model_updates": 0})
    assert training == ControllerTrainingConfig(mdn_updates=0)
