"""WorldModelAgent as its users drive it: ``reset`` and ``act`` in a plain
gymnasium loop, ``save`` and ``load_agent`` (also in a fresh process), and the
run directories the Python trainers leave.

The references are computed apart from ``agent.act``: the pure rollout step
``janus_jax.act`` with M's carry threaded by hand, frames resized by
``preprocess_frames`` (the gymnasium adapter's function), and NumPy."""

import json
import subprocess
import sys

import gymnasium as gym
import jax
import numpy as np
import pytest

import janus_jax
from janus_jax import (
    ControllerTrainingConfig,
    PPOConfig,
    RunConfig,
    WorldModelAgent,
    WorldModelPPOTrainer,
    WorldModelTrainer,
    WorldModelTrainingConfig,
    load_agent,
    load_config,
)
from janus_jax.cli import main
from janus_jax.envs import preprocess_frames
from janus_jax.models import mdn_rnn

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _hand_loop(agent, obs_seq, keys, deterministic, size=None):
    """Returns the actions of the pure ``janus_jax.act`` over ``obs_seq``
    [T, E, ...] with M's carry threaded by hand."""
    carry = None
    if agent.mdn_rnn is not None:
        carry = mdn_rnn.initial_carry(agent.mdn_rnn.config, (obs_seq.shape[1],))
    actions = []
    for obs, key in zip(obs_seq, keys, strict=True):
        if size is not None:
            obs = preprocess_frames(obs, size)
        step = janus_jax.act(agent.params, key, obs, carry, deterministic)
        carry = step.state
        actions.append(np.asarray(step.action))
    return np.stack(actions), carry


@pytest.mark.parametrize("features", ["world_model", "observation"])
@pytest.mark.parametrize("deterministic", [True, False])
def test_act_matches_the_pure_step_with_the_carry_threaded(features, deterministic):
    agent = WorldModelAgent((4,), 3, features=features, seed=1)
    obs_seq = np.random.default_rng(0).normal(size=(6, 2, 4)).astype(np.float32)
    keys = jax.random.split(jax.random.key(5), 6)
    want, want_carry = _hand_loop(agent, obs_seq, keys, deterministic)
    state = agent.reset(2)
    got = []
    for obs, key in zip(obs_seq, keys, strict=True):
        action, state = agent.act(obs, state, key, deterministic=deterministic)
        assert action.dtype == np.int64 and action.shape == (2,)
        got.append(action)
    np.testing.assert_array_equal(np.stack(got), want)
    if features == "world_model":
        for a, b in zip(
            jax.tree.leaves(state.carry), jax.tree.leaves(want_carry), strict=True
        ):
            # jitted vs op by op: float32 rounding apart, no more
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    else:
        assert state.carry is None
    assert agent.act_traces == 1  # sampled and greedy steps share one program


def test_act_compiles_once_and_returns_bounded_float_actions():
    low, high = (-2.0, 0.0), (2.0, 0.5)
    agent = WorldModelAgent(
        (3,), 2, continuous_actions=True, action_low=low, action_high=high
    )
    state = agent.reset(4)
    rng = np.random.default_rng(1)
    for t in range(8):
        obs = rng.normal(size=(4, 3)) * 100  # float64, as numpy gives it
        action, state = agent.act(obs, state, deterministic=t % 2 == 0)
        assert action.dtype == np.float32 and action.shape == (4, 2)
        assert np.all(action >= np.array(low)) and np.all(action <= np.array(high))
    assert agent.act_traces == 1
    # A second agent has its own program: its first call compiles again.
    other = WorldModelAgent((3,), 2, continuous_actions=True)
    other.act(np.zeros((4, 3)), other.reset(4))
    assert (agent.act_traces, other.act_traces) == (1, 1)


def test_act_resizes_frames_as_the_gymnasium_adapter_does():
    agent = WorldModelAgent((16, 16, 3), 2, seed=2)
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, size=(3, 2, 40, 40, 3), dtype=np.uint8)
    keys = jax.random.split(jax.random.key(0), 3)
    want, _ = _hand_loop(agent, frames, keys, False, size=(16, 16))
    state = agent.reset(2)
    for t in range(3):
        action, state = agent.act(frames[t], state, keys[t])
        np.testing.assert_array_equal(action, want[t])
    with pytest.raises(ValueError, match=r"shape \(40, 40, 1\).*\(16, 16, 3\)"):
        agent.act(frames[0, ..., :1], state)


def test_reset_where_zeroes_only_the_finished_envs():
    agent = WorldModelAgent((4,), 2)
    state = agent.reset(3)
    for _ in range(3):
        _, state = agent.act(np.ones((3, 4), np.float32), state)
    before = [np.asarray(x) for x in jax.tree.leaves(state.carry)]
    after = [
        np.asarray(x)
        for x in jax.tree.leaves(state.reset_where([False, True, False]).carry)
    ]
    for b, a in zip(before, after, strict=True):
        assert np.all(b[1] != 0)  # there was something to zero
        np.testing.assert_array_equal(a[1], 0)
        np.testing.assert_array_equal(a[[0, 2]], b[[0, 2]])


def test_act_refuses_what_it_cannot_take():
    agent = WorldModelAgent((4,), 2)
    with pytest.raises(ValueError, match="num_envs=0"):
        agent.reset(0)
    with pytest.raises(ValueError, match=r"obs holds 2 .* 3 envs"):
        agent.act(np.zeros((2, 4)), agent.reset(3))
    with pytest.raises(ValueError, match=r"shape \(5,\).*takes \(4,\)"):
        agent.act(np.zeros((2, 5)), agent.reset(2))
    with pytest.raises(ValueError, match="agent.reset"):
        agent.act(np.zeros((2, 4)), None)
    with pytest.raises(ValueError, match=r"done of shape \(2,\)"):
        agent.reset(3).reset_where([True, False])


def test_act_drives_gymnasium_envs_single_and_vectorised():
    agent = WorldModelAgent((4,), 2, seed=0)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=0)
    state, episodes = agent.reset(1), 0
    for _ in range(60):
        action, state = agent.act(obs, state)  # one observation, one action
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
            state, episodes = agent.reset(1), episodes + 1
    assert episodes >= 1
    envs = gym.make_vec(
        "CartPole-v1",
        3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    obs, _ = envs.reset(seed=0)
    state = agent.reset(3)
    for _ in range(30):
        actions, state = agent.act(obs, state)
        obs, _, terminated, truncated, _ = envs.step(actions)
        state = state.reset_where(terminated | truncated)
    envs.close()
    assert agent.act_traces == 2  # one program for E=1, one for E=3


_ACT_AFTER_LOADING = """
import json, sys
import jax, numpy as np
from janus_jax import load_agent
agent = load_agent(sys.argv[1])
obs = np.asarray(json.loads(sys.argv[2]), np.float32)
state, out = agent.reset(obs.shape[1]), []
for t, o in enumerate(obs):
    action, state = agent.act(o, state, jax.random.key(t), deterministic=t % 2 == 1)
    out.append(action.tolist())
print(json.dumps(out))
"""


def _actions_here(agent, obs):
    state, out = agent.reset(obs.shape[1]), []
    for t, o in enumerate(obs):
        action, state = agent.act(o, state, jax.random.key(t), deterministic=t % 2)
        out.append(action.tolist())
    return out


def _actions_in_a_fresh_process(path, obs):
    done = subprocess.run(
        [sys.executable, "-c", _ACT_AFTER_LOADING, str(path), json.dumps(obs.tolist())],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A world model and a controller trained from Python into run dirs."""
    root = tmp_path_factory.mktemp("runs")
    small = WorldModelTrainingConfig(
        num_episodes=4, vae_epochs=1, mdn_epochs=1, mdn_batch_size=2, sequence_length=8
    )
    wm = WorldModelTrainer("CartPole-v1", small, run_dir=root / "wm", seed=3)
    vae, mdn = wm.train_world_model()
    agent = WorldModelAgent(
        (4,), 2, vae_config=vae.config, mdn_rnn_config=mdn.config, seed=3
    )
    agent.vae.load_state_dict(vae.state_dict())
    agent.mdn_rnn.load_state_dict(mdn.state_dict())
    training = ControllerTrainingConfig(
        num_envs=2, rollout_length=16, total_timesteps=32, updates_per_chunk=1,
        imagination_horizon=4, eval_every=0,
    )  # fmt: skip
    trainer = WorldModelPPOTrainer(
        agent,
        "CartPole-v1",
        PPOConfig(minibatch_size=16),
        training=training,
        run_dir=root / "controller",
        seed=4,
    )
    trainer.train()
    trainer.close()
    return root, wm, agent, training


def test_the_world_model_trainer_leaves_a_run_load_agent_opens(trained):
    root, wm, _, _ = trained
    config = load_config(root / "wm")
    assert (config.env_id, config.seed) == ("CartPole-v1", 3)
    assert config.world_model.num_episodes == 4
    assert config.world_model.vae == wm.vae_config
    loaded = load_agent(root / "wm")
    for a, b in zip(
        jax.tree.leaves(loaded.vae.params), jax.tree.leaves(wm.vae_params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        jax.tree.leaves(loaded.mdn_rnn.params),
        jax.tree.leaves(wm.mdn_params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_the_ppo_trainer_leaves_a_run_that_acts_the_same_elsewhere(trained):
    root, _, agent, training = trained
    config = load_config(root / "controller")
    assert config.controller.num_envs == training.num_envs
    assert config.ppo.minibatch_size == 16 and config.seed == 4
    obs = np.random.default_rng(3).normal(size=(6, 2, 4)).astype(np.float32)
    want = _actions_here(agent, obs)
    assert _actions_in_a_fresh_process(root / "controller", obs) == want
    # The agent remembers the run it was trained under: save needs no env.
    agent.save(root / "copy")
    assert load_config(root / "copy") == config
    assert _actions_in_a_fresh_process(root / "copy", obs) == want


def test_a_model_free_agent_saves_loads_and_evaluates(tmp_path, capsys):
    agent = WorldModelAgent((4,), 2, features="observation", seed=9)
    agent.save(tmp_path / "free", env="CartPole-v1")
    config = load_config(tmp_path / "free")
    assert config.controller.features == "observation"
    loaded = load_agent(tmp_path / "free")
    assert loaded.vae is None and loaded.mdn_rnn is None
    obs = np.random.default_rng(4).normal(size=(5, 3, 4)).astype(np.float32)
    want = _actions_here(agent, obs)
    assert _actions_here(loaded, obs) == want
    assert _actions_in_a_fresh_process(tmp_path / "free", obs) == want
    # The CLI evaluates it, and refuses in one line what needs a world model.
    run = str(tmp_path / "free")
    assert main(["evaluate", "--run", run, "--episodes", "2"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["episodes"] == 2
    for argv in (["dream", "--run", run, "--gif", str(tmp_path / "d.gif")],
                 ["gap", "--run", run]):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "model-free run" in err and len(err.splitlines()) == 1


def test_save_refuses_what_load_agent_could_not_rebuild(tmp_path):
    agent = WorldModelAgent((4,), 2)
    with pytest.raises(ValueError, match="env=None"):
        agent.save(tmp_path / "a")
    with pytest.raises(ValueError, match=r"observes shape \(3,\).*\(4,\)"):
        agent.save(tmp_path / "a", env="Pendulum-v1")
    with pytest.raises(ValueError, match="actions"):
        WorldModelAgent((4,), 3).save(tmp_path / "a", env="CartPole-v1")
    agent.save(tmp_path / "a", env="CartPole-v1")
    agent.save(tmp_path / "a")  # the same run again: a newer checkpoint
    other = WorldModelAgent((4,), 2, seed=1, features="observation")
    with pytest.raises(ValueError, match="holds another run.*features"):
        other.save(tmp_path / "a", env="CartPole-v1")
    assert isinstance(load_config(tmp_path / "a"), RunConfig)


def test_gap_measures_the_policy_asked_for_or_the_runs_own(tmp_path, capsys):
    run = tmp_path / "wm"
    WorldModelAgent((4,), 2, seed=3).save(run, env="CartPole-v1")
    base = ["gap", "--run", str(run), "--steps", "60", "--envs", "2"]
    for extra, want in (([], "mode"), (["--policy", "sample"], "sample")):
        assert main(base + extra) == 0
        printed = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert printed["policy"] == want
        assert json.loads((run / "gap.json").read_text())["policy"] == want
