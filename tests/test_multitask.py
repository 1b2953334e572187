"""A world model shared by several envs (issue 24): M's one action encoding,
checked against hand-written vectors; a shared run of CartPole-v1 and
Pendulum-v1 from 16x16 pixels through the CLI (about a minute, built once):
its bookkeeping, each env's agent, and the one-line errors."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax.cli import main
from janus_jax.config.models import ActionSpec
from janus_jax.config.run import RunConfig, from_dict, to_dict
from janus_jax.config.tasks import TaskConfig, TaskSlot, task_slots
from janus_jax.data import RolloutDataset
from janus_jax.envs import make
from janus_jax.models import controller
from janus_jax.run.checkpoint import PhaseCheckpoints
from janus_jax.run.run_dir import load_agent, load_config
from janus_jax.train.loop import RunIO
from janus_jax.train.shared_world_model import SharedWorldModelTrainer, resolve_tasks

CARTPOLE = ActionSpec(continuous=False, dim=2)
PENDULUM = ActionSpec(continuous=True, dim=1, low=(-2.0,), high=(2.0,))
THREE = ActionSpec(continuous=False, dim=3)
PIXELS = {"family": "gymnasium", "observation": "pixels", "image_size": [16, 16]}
ENVS = ("Pendulum-v1", "CartPole-v1")


def test_slots_follow_the_tasks_action_spaces():
    slots = task_slots((CARTPOLE, PENDULUM, THREE))
    # 2 one-hot + 1 value + 3 one-hot, then 3 task entries
    assert [(s.task, s.offset, s.size, s.num_tasks) for s in slots] == [
        (0, 0, 9, 3),
        (1, 2, 9, 3),
        (2, 3, 9, 3),
    ]
    assert [s.task_index for s in slots] == [6, 7, 8]


def test_each_space_is_encoded_into_its_slot_and_task():
    slots = task_slots((CARTPOLE, PENDULUM, THREE))
    cases = [
        (CARTPOLE, slots[0], jnp.array([1, 0]), [[0, 1, 0, 0, 0, 0, 1, 0, 0],
                                               [1, 0, 0, 0, 0, 0, 1, 0, 0]]),
        (PENDULUM, slots[1], jnp.array([[0.5], [-2.0]]),
         [[0, 0, 0.5, 0, 0, 0, 0, 1, 0], [0, 0, -2.0, 0, 0, 0, 0, 1, 0]]),
        (THREE, slots[2], jnp.array([2, 0]), [[0, 0, 0, 0, 0, 1, 0, 0, 1],
                                             [0, 0, 0, 1, 0, 0, 0, 0, 1]]),
    ]  # fmt: skip
    for action, slot, env_act, expected in cases:
        got = controller.encode_action(action, env_act, slot)
        np.testing.assert_array_equal(np.asarray(got), np.array(expected, np.float32))
    # leading axes are kept: [T, B] indices -> [T, B, 9]
    batch = controller.encode_action(THREE, jnp.zeros((4, 5), jnp.int32), slots[2])
    assert batch.shape == (4, 5, 9)


def test_one_env_keeps_its_own_encoding():
    np.testing.assert_array_equal(
        controller.encode_action(CARTPOLE, jnp.array([1])), [[0.0, 1.0]]
    )
    np.testing.assert_array_equal(
        controller.encode_action(PENDULUM, jnp.array([[1.5]])), [[1.5]]
    )


def test_a_slot_outside_the_vector_is_refused():
    with pytest.raises(ValueError, match=r"TaskSlot\.task=2 is invalid"):
        TaskSlot(task=2, num_tasks=2, offset=0, size=5)


def _tasks(*envs):
    return tuple(TaskConfig(env_id=e, share=1 / len(envs)) for e in envs)


def test_a_run_of_one_env_writes_the_config_it_always_did():
    data = to_dict(RunConfig(env_id="CartPole-v1"))
    assert "tasks" not in data
    assert from_dict(RunConfig, data) == RunConfig(env_id="CartPole-v1")
    shared = RunConfig(env_id="CartPole-v1", tasks=_tasks(*ENVS))
    assert from_dict(RunConfig, to_dict(shared)) == shared


@pytest.mark.parametrize(
    "tasks,message",
    [
        (_tasks("CartPole-v1"), "at least two envs"),
        ((TaskConfig(env_id="CartPole-v1", share=0.5),) * 2, "CartPole-v1 is named"),
        (
            (
                TaskConfig(env_id="CartPole-v1", share=0.5),
                TaskConfig(env_id="Pendulum-v1", share=0.2),
            ),
            r"shares \[0.5, 0.2\] must add up to 1",
        ),
        ("CartPole-v1", "must be a tuple of TaskConfig"),
    ],
)
def test_bad_tasks_are_refused_naming_the_field(tasks, message):
    with pytest.raises(ValueError, match=r"^RunConfig\.tasks=.*" + message):
        RunConfig(env_id="CartPole-v1", tasks=tasks)


def test_envs_observing_different_shapes_need_pixels():
    config = RunConfig(env_id="CartPole-v1", tasks=_tasks("CartPole-v1", "Pendulum-v1"))
    with pytest.raises(ValueError) as info:
        resolve_tasks(config)
    message = str(info.value)
    assert "Pendulum-v1 observes (3,)" in message and "CartPole-v1 observes (4,)"
    assert """env_kwargs={"observation": "pixels"}""" in message
    assert "\n" not in message


def test_an_env_whose_frames_cannot_be_made_is_named():
    # gymnax's CartPole has no render: pixels need the gymnasium env
    config = RunConfig(
        env_id="CartPole-v1",
        tasks=_tasks("CartPole-v1", "Pendulum-v1"),
        env_kwargs={"observation": "pixels"},
    )
    with pytest.raises(ValueError, match=r"^--env CartPole-v1: its observations"):
        resolve_tasks(config)


# -- a shared run through the CLI ---------------------------------------------

TINY_SETS = [
    f"env_kwargs={json.dumps(PIXELS)}",
    "world_model.random_steps=200",
    "world_model.collect_envs=2",
    "world_model.vae.hidden_channels=[8,16]",
    "world_model.vae.latent_dim=4",
    "world_model.mdn_rnn.latent_dim=4",
    "world_model.mdn_rnn.hidden_dim=16",
    "world_model.mdn_rnn.num_mixtures=2",
]


def _sets(items):
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """A world model shared by Pendulum-v1 and CartPole-v1 (16x16 pixels), and
    CartPole's controller on it; read only."""
    out = tmp_path_factory.mktemp("multitask") / "run"
    envs = [arg for env in ENVS for arg in ("--env", env)]
    argv = ["train-world-model", "--preset", "tiny", *envs, "--out", str(out)]
    assert main([*argv, *_sets(TINY_SETS), "--no-progress"]) == 0
    argv = ["train-controller", "--env", "CartPole-v1", "--out", str(out)]
    sets = _sets(["controller.total_timesteps=128"])
    assert main([*argv, *sets, "--no-progress"]) == 0
    return out


def test_config_json_records_the_tasks_and_the_encoding(shared_run):
    config = json.loads((shared_run / "config.json").read_text())
    assert [t["env_id"] for t in config["tasks"]] == list(ENVS)
    assert [t["share"] for t in config["tasks"]] == [0.5, 0.5]
    assert config["tasks"][0]["action"] == {
        "continuous": True,
        "dim": 1,
        "low": [-2.0],
        "high": [2.0],
    }
    assert config["tasks"][1]["action"]["dim"] == 2
    # M's action vector: Pendulum's value, CartPole's 2 one-hot, 2 task entries
    assert config["world_model"]["mdn_rnn"]["action_dim"] == 1 + 2 + 2


def test_each_env_has_its_dataset_and_summary_row(shared_run):
    summary = json.loads((shared_run / "summary.json").read_text())
    total = 0
    for env in ENVS:
        dataset = RolloutDataset(shared_run / "data" / env)
        assert dataset.env_id == env
        assert dataset.num_steps >= 100  # its half of 200 steps, whole episodes
        assert summary["tasks"][env]["episodes"] == dataset.num_episodes
        assert summary["tasks"][env]["steps"] == dataset.num_steps
        total += dataset.num_steps
    assert summary["random_data_steps"] == total
    shares = [summary["tasks"][env]["frame_share"] for env in ENVS]
    assert sum(shares) == pytest.approx(1.0)


def test_m_sees_each_env_in_its_own_slot_and_task(shared_run):
    config = load_config(shared_run)
    trainer = SharedWorldModelTrainer(config, io=RunIO(run_dir=shared_run))
    sources = trainer.window_sources()
    per_task = [len(d.manifest["shards"]) for d in trainer.collect()]
    assert len(sources) == sum(per_task)
    seen = set()
    for index, source in enumerate(sources):
        task = 0 if index < per_task[0] else 1
        windows = source.load()
        valid = windows.mask > 0
        actions = windows.actions[valid]  # [N, 5]: pend | cart, cart | task
        np.testing.assert_array_equal(actions[:, 3 + task], 1.0)
        np.testing.assert_array_equal(actions[:, 4 - task], 0.0)
        if task == 0:  # Pendulum: a value in its box; CartPole's slot zero
            assert np.all(np.abs(actions[:, 0]) <= 2.0)
            np.testing.assert_array_equal(actions[:, 1:3], 0.0)
        else:  # CartPole: one-hot of 2; Pendulum's slot zero
            np.testing.assert_array_equal(actions[:, 1:3].sum(-1), 1.0)
            np.testing.assert_array_equal(actions[:, 0], 0.0)
        seen.add(task)
    assert seen == {0, 1}


@pytest.mark.parametrize("env,shape", [("CartPole-v1", (2,)), ("Pendulum-v1", (2, 1))])
def test_load_agent_acts_in_each_env_of_the_run(shared_run, env, shape):
    agent = load_agent(shared_run, env=env)
    assert agent.run_config.env_id == env
    with make(env, **PIXELS, num_envs=2) as real:
        obs = real.reset(seed=0)
        actions, _ = agent.act(obs, agent.reset(2))
        real.step(actions)  # the env takes them
    assert np.asarray(actions).shape == shape
    slot = agent.controller.params.task
    assert (slot.task, slot.size) == (ENVS.index(env), 5)
    assert agent.mdn_rnn.config.action_dim == 5


def test_the_trained_controller_is_the_one_loaded(shared_run):
    own = load_agent(shared_run / "tasks" / "CartPole-v1")
    loaded = load_agent(shared_run, env="CartPole-v1")
    for a, b in zip(jax_leaves(own.params), jax_leaves(loaded.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # The controller's run started from the shared V and M (its checkpoint 1);
    # Pendulum, with no controller yet, gets them as they are.
    fresh = load_agent(shared_run, env="Pendulum-v1")
    with PhaseCheckpoints(
        shared_run / "tasks" / "CartPole-v1" / "checkpoints" / "agent"
    ) as c:
        start, progress = c.restore(own.params, step=1)
    assert progress["stage"] == "world_model"
    shared = (start.vae, start.mdn_rnn)
    for a, b in zip(
        jax_leaves(shared),
        jax_leaves((fresh.vae.params, fresh.mdn_rnn.params)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def jax_leaves(tree):
    import jax

    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_an_env_not_in_the_run_is_refused(shared_run, capsys):
    with pytest.raises(ValueError, match="'LunarLander-v3' is not in this run: its"):
        load_agent(shared_run, env="LunarLander-v3")
    capsys.readouterr()
    status = main(["train-controller", "--env", "Acrobot-v1", "--out", str(shared_run)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "Acrobot-v1" in err and "Pendulum-v1, CartPole-v1" in err


def test_several_envs_are_refused_by_the_one_env_commands(tmp_path, capsys):
    argv = ["train", "--env", "CartPole-v1", "--env", "Pendulum-v1"]
    status = main([*argv, "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "train-world-model --env A --env B" in err
    assert not (tmp_path / "x").exists()


def test_the_shared_models_line_names_m_s_whole_action_vector(shared_run):
    from janus_jax.cli.multitask import shared_models

    line = shared_models(load_config(shared_run))
    assert line.endswith(
        "a 5-dim action vector (Pendulum-v1: 1 continuous, CartPole-v1: 2 one-hot, "
        "then 2 task ids)"
    )
    assert line.startswith("V: convolutions")


# -- envs that observe different things: each through its render ---------------


def _cli_args(envs, preset=None, overrides=()):
    import argparse

    return argparse.Namespace(preset=preset, overrides=list(overrides), env=envs)


def test_envs_observing_different_shapes_are_rendered_and_told(capsys):
    from janus_jax.cli.multitask import _pixels_where_kinds_differ

    args = _cli_args(["CartPole-v1", "Pendulum-v1"])
    _pixels_where_kinds_differ(args, args.env)
    assert args.overrides == [
        'env_kwargs={"observation": "pixels", "family": "gymnasium"}'
    ]
    out = capsys.readouterr().out
    assert "CartPole-v1 (4,) float32, Pendulum-v1 (3,) float32" in out
    assert out.count("\n") == 1
    # the overrides' env_kwargs make frames V can take from both envs
    sets = {"env_kwargs": {"observation": "pixels", "family": "gymnasium"}}
    config = RunConfig(env_id="CartPole-v1", tasks=_tasks(*args.env), **sets)
    vae = resolve_tasks(config)[0].world_model.vae
    assert (vae.input_height, vae.input_width, vae.input_channels) == (64, 64, 3)


@pytest.mark.parametrize(
    "envs, preset, overrides",
    [
        (["Breakout-MinAtar", "Asterix-MinAtar"], None, []),  # alike: (10, 10, 4)
        (["CartPole-v1", "Pendulum-v1"], "tiny", []),  # the preset says how
        (["CartPole-v1", "Pendulum-v1"], None, [f"env_kwargs={json.dumps(PIXELS)}"]),
    ],
)
def test_observations_are_left_as_given(envs, preset, overrides, capsys):
    from janus_jax.cli.multitask import _pixels_where_kinds_differ

    args = _cli_args(envs, preset, overrides)
    _pixels_where_kinds_differ(args, envs)
    assert args.overrides == overrides and capsys.readouterr().out == ""


def test_an_env_that_cannot_be_rendered_is_named_in_one_line(tmp_path, capsys):
    argv = ["train-world-model", "--env", "CartPole-v1", "--env", "Breakout-MinAtar"]
    status = main([*argv, "--out", str(tmp_path / "x"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert "CartPole-v1 (4,) float32, Breakout-MinAtar (10, 10, 4) float32" in err
    assert "--env Breakout-MinAtar: its observations cannot be made" in err
    assert not (tmp_path / "x").exists()
