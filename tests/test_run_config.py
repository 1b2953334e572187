"""RunConfig, presets and overrides: JSON round trips, typed ``section.field=value``
overrides and their errors, and the field listing behind ``--help``."""

import json
import typing

import pytest

from janus_jax.config import presets
from janus_jax.config.models import MDNRNNConfig, NetworkConfig, PPOConfig, VAEConfig
from janus_jax.config.run import (
    MOVED,
    RunConfig,
    apply_overrides,
    describe,
    field_docs,
    from_dict,
    to_dict,
)
from janus_jax.config.training import ControllerTrainingConfig, WorldModelTrainingConfig

CONFIG_CLASSES = (
    RunConfig,
    WorldModelTrainingConfig,
    ControllerTrainingConfig,
    PPOConfig,
    NetworkConfig,
    VAEConfig,
    MDNRNNConfig,
)


@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_builds_and_survives_json(name):
    config = presets.preset(name)
    assert isinstance(config, RunConfig)
    assert config.preset == name
    text = json.dumps(to_dict(config))
    back = from_dict(RunConfig, json.loads(text))
    assert back == config
    # tuples come back as tuples (hashable, equal to the preset's)
    assert isinstance(back.network.layer_sizes, tuple)


def test_round_trip_keeps_unset_sections_and_env_kwargs():
    config = RunConfig(env_id="CarRacing-v3", env_kwargs={"image_size": 64}, seed=3)
    data = json.loads(json.dumps(to_dict(config)))
    assert data["world_model"]["vae"] is None
    assert data["env_kwargs"] == {"image_size": 64}
    assert from_dict(RunConfig, data) == config


def test_to_dict_is_plain_json_data():
    data = to_dict(presets.tiny())
    assert data["world_model"]["vae"]["hidden_sizes"] == [16]
    assert data["ppo"]["minibatch_size"] == 32 and "batch_size" not in data["ppo"]
    assert data["controller"]["learn_from_real"] is True
    assert "device" not in data["world_model"]
    for section in ("world_model", "controller"):
        assert "seed" not in data[section] and "temperature" not in data[section]
    assert data["env_id"] == "CartPole-v1"


@pytest.mark.parametrize(
    "data,where",
    [
        ({"env_id": "CartPole-v1", "colour": 1}, "colour"),
        ({"env_id": "CartPole-v1", "world_model": {"epochs": 3}}, "epochs"),
        ({"env_id": "CartPole-v1", "controller": {"seed": 0}}, "seed"),
        ({"env_id": "CartPole-v1", "ppo": {"batch_size": 64}}, "batch_size"),
    ],
)
def test_from_dict_refuses_unknown_keys(data, where):
    with pytest.raises(ValueError, match=f"unknown fields .*{where}"):
        from_dict(RunConfig, data)


def test_default_preset_is_listed():
    assert presets.DEFAULT in presets.PRESETS


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match="'nope'") as info:
        presets.preset("nope")
    for name in ("tiny", "cartpole", "breakout", "carracing"):
        assert name in str(info.value)


# -- overrides -----------------------------------------------------------------------


def test_overrides_set_typed_values():
    base = presets.tiny()
    config = apply_overrides(
        base,
        [
            "world_model.vae.hidden_sizes=[8,8]",
            "world_model.mdn_rnn.temperature=1.15",
            "ppo.anneal_lr=true",
            "ppo.minibatch_size=16",
            "controller.imagination_ratio=0",
            "seed=5",
            "ppo.clip_range_vf=0.1",
            "network.layer_sizes=[]",
            'env_kwargs={"image_size": 32}',
            "preset=mine",
        ],
    )
    assert config.world_model.vae.hidden_sizes == (8, 8)
    assert config.world_model.mdn_rnn.temperature == 1.15
    assert config.ppo.anneal_lr is True
    assert config.ppo.minibatch_size == 16
    ratio = config.controller.imagination_ratio
    assert ratio == 0.0 and type(ratio) is float
    assert config.seed == 5 and type(config.seed) is int
    assert config.ppo.clip_range_vf == 0.1
    assert config.network.layer_sizes == ()
    assert config.env_kwargs == {"image_size": 32}
    assert config.preset == "mine"
    # everything else unchanged, and the base config untouched
    assert config.world_model.vae.latent_dim == base.world_model.vae.latent_dim
    assert config.ppo.learning_rate == base.ppo.learning_rate
    assert base.world_model.vae.hidden_sizes == (16,)
    assert base.ppo.anneal_lr is False


def test_override_sets_a_float_then_none_in_an_optional_field():
    config = apply_overrides(presets.tiny(), ["ppo.clip_range_vf=2"])
    assert config.ppo.clip_range_vf == 2.0
    assert type(config.ppo.clip_range_vf) is float
    config = apply_overrides(config, ["ppo.clip_range_vf=null"])
    assert config.ppo.clip_range_vf is None


def test_learning_only_in_the_dream_is_one_override():
    config = apply_overrides(presets.tiny(), ["controller.learn_from_real=false"])
    assert config.controller.learn_from_real is False
    assert config.controller.imagination_ratio == 0.5


def test_later_overrides_win():
    config = apply_overrides(presets.tiny(), ["seed=1", "seed=2"])
    assert config.seed == 2


@pytest.mark.parametrize(
    "override,key",
    [
        ("controller.num_envs=abc", "controller.num_envs"),
        ("controller.num_envs=1.5", "controller.num_envs"),
        ("controller.num_envs=true", "controller.num_envs"),
        ("controller.num_envs=null", "controller.num_envs"),
        ("ppo.anneal_lr=1", "ppo.anneal_lr"),
        ("ppo.learning_rate=fast", "ppo.learning_rate"),
        ("ppo.learning_rate=true", "ppo.learning_rate"),
        ("world_model.vae.hidden_sizes=[8, 1.5]", "world_model.vae.hidden_sizes"),
        ("world_model.vae.hidden_sizes=8", "world_model.vae.hidden_sizes"),
        ("env_id=5", "env_id"),
        ("world_model=3", "world_model"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_key(override, key):
    with pytest.raises(ValueError, match=f"{key}=.* is invalid: expected"):
        apply_overrides(presets.tiny(), [override])


def test_an_unknown_field_with_nothing_near_lists_the_fields():
    with pytest.raises(ValueError, match="controller.xyzzy") as info:
        apply_overrides(presets.tiny(), ["controller.xyzzy=3"])
    message = str(info.value)
    assert "ControllerTrainingConfig has no field 'xyzzy'" in message
    assert "did you mean" not in message
    for field in ("rollout_length", "num_envs", "imagination_ratio"):
        assert field in message


def test_an_unknown_top_level_key_with_nothing_near_lists_the_sections():
    with pytest.raises(ValueError, match="RunConfig has no field 'xyzzy'") as info:
        apply_overrides(presets.tiny(), ["xyzzy=3"])
    assert "controller" in str(info.value) and "world_model" in str(info.value)


# Each unknown key with the keys a user most likely meant, by hand: the same
# field in its section(s), a renamed field's new key, a close spelling.
MEANT = [
    ("imagination_ratio=0.5", ["controller.imagination_ratio"]),
    ("num_episodes=4", ["world_model.num_episodes"]),
    ("latent_dim=8", ["world_model.vae.latent_dim", "world_model.mdn_rnn.latent_dim"]),
    (
        "sequence_length=8",
        ["world_model.sequence_length", "controller.sequence_length"],
    ),
    ("ppo.imagination_ratio=0.5", ["controller.imagination_ratio"]),
    ("controller.rollout_len=3", ["controller.rollout_length"]),
    ("contoller.num_envs=3", ["controller.num_envs"]),
    ("controller.total_timestep=3", ["controller.total_timesteps"]),
    ("world_model_updates=3", ["controller.mdn_updates"]),
    ("world_model_batch_size=3", ["controller.mdn_batch_size"]),
]


@pytest.mark.parametrize("override,meant", MEANT)
def test_an_unknown_key_names_the_keys_meant(override, meant):
    with pytest.raises(ValueError) as info:
        apply_overrides(presets.tiny(), [override])
    listed = ", ".join(meant[:-1]) + (" or " if len(meant) > 1 else "") + meant[-1]
    assert str(info.value).endswith(f"; did you mean {listed}?")
    # and each key meant sets the value given
    value = override.partition("=")[2]
    for key in meant:
        config = apply_overrides(presets.tiny(), [f"{key}={value}"])
        section, field = key.rsplit(".", 1)
        for name in section.split("."):
            config = getattr(config, name)
        assert getattr(config, field) == json.loads(value)


@pytest.mark.parametrize("override", ["seed", "controller.num_envs", "=3", ""])
def test_an_override_without_key_or_equals_is_refused(override):
    with pytest.raises(ValueError, match="section.field=value"):
        apply_overrides(presets.tiny(), [override])


def test_a_field_of_a_leaf_is_refused():
    with pytest.raises(ValueError, match="'seed' has no fields"):
        apply_overrides(presets.tiny(), ["seed.x=1"])


def test_a_field_inside_an_unset_section_is_refused():
    config = RunConfig(env_id="CartPole-v1")
    assert config.world_model.vae is None
    with pytest.raises(ValueError, match="world_model.vae.latent_dim.*vae is unset"):
        apply_overrides(config, ["world_model.vae.latent_dim=8"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("controller.imagination_ratio=2", "imagination_ratio=2.0 is invalid"),
        ("controller.imagination_ratio=1", r"1.0 is invalid.*learn_from_real=False"),
        ("controller.mdn_updates=-1", "mdn_updates=-1 is invalid"),
        (
            "controller.imagination_ratio=0 controller.learn_from_real=false",
            "learn_from_real=False is invalid",
        ),
        ("controller.num_envs=0", "num_envs=0 is invalid"),
        ("seed=-1", "seed=-1 is invalid"),
        ("ppo.learning_rate=0", "learning_rate=0.0 is invalid"),
        ("network.activation=swish", "activation='swish' is invalid"),
        ("world_model.mdn_rnn.temperature=-1", "temperature=-1.0 is invalid"),
    ],
)
def test_a_value_of_the_right_type_still_meets_the_configs_checks(override, message):
    with pytest.raises(ValueError, match=message):
        apply_overrides(presets.tiny(), override.split())


@pytest.mark.parametrize(
    "override,instead",
    [
        ("ppo.batch_size=64", "ppo.minibatch_size"),
        ("controller.seed=3", "seed=N (or --seed N)"),
        ("world_model.seed=3", "seed=N (or --seed N)"),
        ("controller.temperature=1.15", "world_model.mdn_rnn.temperature"),
        ("world_model.device=cuda", "jax[cuda12]"),
    ],
)
def test_a_moved_key_says_what_to_write(override, instead):
    assert override.partition("=")[0] in MOVED
    with pytest.raises(ValueError, match="is not a field") as info:
        apply_overrides(presets.tiny(), [override])
    assert instead in str(info.value)


def test_a_literal_field_takes_one_of_its_values():
    config = apply_overrides(presets.tiny(), ["world_model.mdn_rnn.rnn_type=gru"])
    assert config.world_model.mdn_rnn.rnn_type == "gru"


def test_a_literal_field_refuses_a_value_outside_it():
    with pytest.raises(ValueError, match="rnn_type"):
        apply_overrides(presets.tiny(), ["world_model.mdn_rnn.rnn_type=attention"])


# -- docs -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_a_doc(cls):
    docs = field_docs(cls)
    assert set(docs) == set(typing.get_type_hints(cls))  # fields and InitVars
    assert all(docs.values())
    assert all("\n" not in doc and "  " not in doc for doc in docs.values())


def test_field_docs_read_the_string_under_the_field():
    doc = field_docs(ControllerTrainingConfig)["imagination_ratio"]
    assert doc == (
        "Imagined share of each PPO batch, in [0, 1): the real part is the whole real "
        "rollout, so each update dreams ratio / (1 - ratio) x the rollout's "
        "transitions (0: plain PPO on [z, h]; 0.5: as many dreamed as real)."
    )
    assert field_docs(RunConfig)["seed"].startswith("Seed of the whole run")


def _leaves(data: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in data.items():
        if isinstance(value, dict) and name != "env_kwargs":
            out.update(_leaves(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


@pytest.mark.parametrize("config", [presets.cartpole(), RunConfig(env_id="x")])
def test_describe_gives_one_line_per_leaf_with_its_doc(config):
    lines = describe(config)
    leaves = _leaves(to_dict(config))
    keys = [line.split(" = ", 1)[0] for line in lines]
    assert keys == list(leaves)
    for line in lines:
        key, rest = line.split(" = ", 1)
        shown, doc = rest.split("  # ", 1)
        value = leaves[key]
        assert shown == (value if isinstance(value, str) else json.dumps(value))
        assert doc  # every leaf is documented


def test_describe_lines_read_as_written_by_hand():
    lines = describe(presets.cartpole())
    assert (
        lines[0]
        == "env_id = CartPole-v1  # The env to train on (a gymnax or gymnasium id)."
    )
    assert "world_model.vae.hidden_sizes = [64, 64]  # Hidden layer sizes of the " in (
        "\n".join(lines)
    )
    text = "\n".join(lines)
    assert "controller.imagination_ratio = 0.95  # Imagined share of each" in text
    assert "controller.learn_from_real = true  # Put the real rollout in" in text
    assert "ppo.minibatch_size = 128  # Rows (transitions) per PPO gradient" in text
    # constructor-only arguments are not settings; moved ones are gone
    keys = {line.split(" = ", 1)[0] for line in lines}
    assert not keys & {"ppo.batch_size", "world_model.device", *MOVED}
    # the sections themselves are not lines of their own
    assert not any(line.startswith("world_model = ") for line in lines)


# -- numbers and renamed fields -------------------------------------------------------


@pytest.mark.parametrize(
    "override,expected",
    [
        ("controller.total_timesteps=1e5", 100_000),
        ("controller.total_timesteps=100000.0", 100_000),
        ("controller.num_envs=2e0", 2),
    ],
)
def test_a_whole_float_sets_an_int_field_as_an_int(override, expected):
    config = apply_overrides(presets.tiny(), [override])
    key = override.partition("=")[0].split(".")[1]
    value = getattr(config.controller, key)
    assert value == expected and type(value) is int


def test_whole_floats_set_the_ints_of_a_tuple():
    config = apply_overrides(
        presets.tiny(), ["world_model.vae.hidden_sizes=[8.0, 1e1]"]
    )
    assert config.world_model.vae.hidden_sizes == (8, 10)
    assert all(type(size) is int for size in config.world_model.vae.hidden_sizes)


@pytest.mark.parametrize(
    "override,instead",
    [
        (
            "controller.total_timesteps=1.5",
            "expected int: write a whole number (1 or 2)",
        ),
        ("controller.num_envs=2.7", "expected int: write a whole number (2 or 3)"),
        (
            "world_model.vae.observation_size=63.5",
            "expected int | None: write a whole number (63 or 64)",
        ),
    ],
)
def test_a_fraction_for_an_int_field_says_what_to_write(override, instead):
    with pytest.raises(ValueError) as info:
        apply_overrides(presets.tiny(), [override])
    assert str(info.value) == f"{override} is invalid: {instead}"


def test_an_infinite_value_for_an_int_field_is_refused_without_advice():
    with pytest.raises(ValueError) as info:
        apply_overrides(presets.tiny(), ["controller.total_timesteps=Infinity"])
    assert str(info.value) == "controller.total_timesteps=inf is invalid: expected int"


RENAMED = {
    "world_model_updates": "mdn_updates",
    "world_model_batch_size": "mdn_batch_size",
}


@pytest.mark.parametrize("old,new", RENAMED.items())
def test_an_old_key_sets_the_new_field_with_a_deprecation_warning(old, new):
    with pytest.warns(DeprecationWarning) as caught:
        config = apply_overrides(presets.tiny(), [f"controller.{old}=7"])
    assert [str(w.message) for w in caught] == [
        f"controller.{old} is deprecated: write controller.{new} "
        "(same meaning, same value)"
    ]
    assert getattr(config.controller, new) == 7
    assert config == apply_overrides(presets.tiny(), [f"controller.{new}=7"])


def _with_old_names(data: dict) -> dict:
    """Returns ``to_dict`` output as a run of before the rename wrote it."""
    controller = dict(data["controller"])
    for old, new in RENAMED.items():
        controller[old] = controller.pop(new)
    return {**data, "controller": controller}


def test_an_old_config_json_reads_its_old_names_as_the_new_fields():
    config = apply_overrides(
        presets.tiny(), ["controller.mdn_updates=3", "controller.mdn_batch_size=5"]
    )
    old = json.loads(json.dumps(_with_old_names(to_dict(config))))
    assert "mdn_updates" not in old["controller"]
    with pytest.warns(DeprecationWarning) as caught:
        assert from_dict(RunConfig, old) == config
    assert sorted(str(w.message).split(" is ")[0] for w in caught) == [
        "controller.world_model_batch_size",
        "controller.world_model_updates",
    ]


def test_an_old_name_beside_its_new_one_is_refused():
    data = to_dict(presets.tiny())
    data["controller"]["world_model_updates"] = 2
    with pytest.raises(ValueError, match="both given") as info:
        from_dict(RunConfig, data)
    message = str(info.value)
    assert "controller.world_model_updates" in message
    assert "controller.mdn_updates" in message


def test_an_old_run_dir_resumes_under_the_new_names(tmp_path):
    from janus_jax.run.run_dir import RunDirError, prepare_run_dir

    config = presets.tiny()
    (tmp_path / "config.json").write_text(json.dumps(_with_old_names(to_dict(config))))
    with pytest.warns(DeprecationWarning):
        resumed = prepare_run_dir(
            tmp_path, config, resume=True, overwrite=False, fresh=True
        )
    assert resumed is True
    # ...and a changed value under the old name is still a different run.
    other = apply_overrides(config, ["controller.mdn_updates=9"])
    with pytest.warns(DeprecationWarning), pytest.raises(RunDirError) as info:
        prepare_run_dir(tmp_path, other, resume=True, overwrite=False, fresh=True)
    assert "controller.mdn_updates" in str(info.value)
