"""Envs of the user's own class (tests/custom_env.py, registered nowhere): an
instance, a class path and a factory (env_fn), through make, both trainers and
the CLI; the errors for envs that cannot be copied, pickled or imported; and
docs/guides/your-env.md's example, run as written there, shrunk in size only.

Episodes are checked against a fresh SignEnv stepped by hand with gymnasium's
seeding (env i reset with seed + i), not against janus-jax's own output."""

import json
import re
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from conftest import subprocess_env, tiny_vector_agent
from custom_env import SignEnv

from janus_jax.cli import build_parser, main, run_config
from janus_jax.config.models import PPOConfig
from janus_jax.data import RolloutDataset
from janus_jax.envs import as_env, make, remake
from janus_jax.run.run_dir import load_agent, load_config
from janus_jax.train import (
    WorldModelPPOTrainer,
    WorldModelTrainer,
    WorldModelTrainingConfig,
)

TESTS = Path(__file__).resolve().parent
PAGE = TESTS.parent / "docs" / "guides" / "your-env.md"
TINY_WM = dict(
    num_episodes=4,
    vae_epochs=1,
    mdn_epochs=1,
    vae_batch_size=8,
    mdn_batch_size=2,
    sequence_length=4,
    collect_envs=2,
)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


class LockedEnv(SignEnv):
    """A SignEnv holding a lock: it cannot be copied or pickled."""

    def __init__(self, length: int = 20):
        super().__init__(length)
        self.lock = threading.Lock()


class RecordingLockedEnv(LockedEnv, gymnasium.utils.RecordConstructorArgs):
    """A LockedEnv that records its constructor arguments."""

    def __init__(self, length: int = 20):
        gymnasium.utils.RecordConstructorArgs.__init__(self, length=length)
        super().__init__(length)


def by_hand(length, seed, num_envs, actions):
    """Returns (obs [T+1, E, 4], rewards [T, E], ended [T, E]) of fresh SignEnvs
    stepped one by one, env i reset with seed + i, each reset at its end."""
    envs = [SignEnv(length) for _ in range(num_envs)]
    obs = [[env.reset(seed=seed + i)[0] for i, env in enumerate(envs)]]
    rewards, ended = [], []
    for row in actions:
        step = [env.step(a) for env, a in zip(envs, row, strict=True)]
        rewards.append([s[1] for s in step])
        ended.append([s[2] or s[3] for s in step])
        obs.append(
            [
                env.reset()[0] if s[2] or s[3] else s[0]
                for env, s in zip(envs, step, strict=True)
            ]
        )
    return np.array(obs), np.array(rewards), np.array(ended)


def by_janus(env, seed, actions):
    obs = [env.reset(seed=seed)]
    rewards, ended = [], []
    for row in actions:
        out = env.step(np.asarray(row))
        obs.append(out.obs)
        rewards.append(out.reward)
        ended.append(out.terminated | out.truncated)
    return np.array(obs), np.array(rewards), np.array(ended)


ACTIONS = np.random.default_rng(0).integers(0, 2, (7, 2))


@pytest.mark.parametrize(
    "source",
    [
        lambda: {"env_id": SignEnv(length=3)},
        lambda: {"env_id": "custom_env:SignEnv", "length": 3},
        lambda: {"env_fn": lambda: SignEnv(length=3)},
    ],
    ids=["instance", "class path", "env_fn"],
)
def test_own_class_steps_as_fresh_envs_by_hand(source):
    with make(num_envs=2, **source()) as env:
        got = by_janus(env, 5, ACTIONS)
        assert env.spec.env_id.endswith("SignEnv") or "lambda" in env.spec.env_id
        with remake(env, 2, evaluation=True) as copy:
            again = by_janus(copy, 5, ACTIONS)
    want = by_hand(3, 5, 2, ACTIONS)
    for a, b, c in zip(got, again, want, strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


def test_copies_are_taken_when_given_and_leave_the_instance_alone():
    instance = SignEnv(length=3)
    env = make(instance, num_envs=2)
    instance.length = 99  # a later change is not copied
    env.reset(seed=0)
    assert not hasattr(instance, "t")  # never reset nor stepped
    got = by_janus(env, 0, ACTIONS)
    np.testing.assert_array_equal(got[2], by_hand(3, 0, 2, ACTIONS)[2])


def test_instances_stepped_together_must_be_of_one_class():
    with pytest.raises(ValueError, match=r"envs\[1\] is a .*LockedEnv but envs\[0\]"):
        as_env([SignEnv(), LockedEnv()], None)
    with as_env([SignEnv(length=3), SignEnv(length=3)], None) as env:
        got = by_janus(env, 6, ACTIONS)
        with remake(env, 2, evaluation=True) as copies:  # copies of envs[0]
            again = by_janus(copies, 6, ACTIONS)
    for a, b, c in zip(got, again, by_hand(3, 6, 2, ACTIONS), strict=True):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)


@pytest.mark.parametrize("kind", ["lock", "open file"])
def test_an_env_that_cannot_be_copied_names_env_fn(kind, tmp_path):
    env = LockedEnv()
    if kind == "open file":
        del env.lock
        env.log = open(tmp_path / "log.txt", "w")  # noqa: SIM115
    message = r"cannot be copied: .* pass env_fn=.*e\.g\. env_fn=LockedEnv"
    with pytest.raises(ValueError, match=message):
        make(env, num_envs=2)
    with pytest.raises(ValueError, match=message):
        WorldModelTrainer(env, WorldModelTrainingConfig(**TINY_WM))
    with pytest.raises(ValueError, match=message):
        WorldModelPPOTrainer(tiny_vector_agent(), env, num_envs=2)
    # the factory it asks for
    with make(env_fn=LockedEnv, num_envs=2, length=3) as made:
        got = by_janus(made, 1, ACTIONS)
    np.testing.assert_array_equal(got[0], by_hand(3, 1, 2, ACTIONS)[0])


def test_an_env_recording_its_arguments_is_made_again_with_them():
    with make(RecordingLockedEnv(length=3), num_envs=2) as env:
        got = by_janus(env, 2, ACTIONS)
    for a, b in zip(got, by_hand(3, 2, 2, ACTIONS), strict=True):
        np.testing.assert_array_equal(a, b)


def test_async_workers_get_the_copies_and_refuse_what_cannot_be_pickled():
    with make(SignEnv(length=3), num_envs=2, vectorization_mode="async") as env:
        got = by_janus(env, 4, ACTIONS)
    for a, b in zip(got, by_hand(3, 4, 2, ACTIONS), strict=True):
        np.testing.assert_array_equal(a, b)
    lock = threading.Lock()
    with pytest.raises(
        ValueError, match=r"pickl.*_thread\.lock.*env_fn=.*vectorization_mode='sync'"
    ):
        make(env_fn=lambda: (lock, SignEnv())[1], vectorization_mode="async")


@pytest.mark.parametrize(
    "env_id, said",
    [
        ("json:JSONDecoder", r"'JSONDecoder' is a class, not a gymnasium\.Env"),
        ("custom_env:Missing", r"has no attribute 'Missing' and registers no id"),
        ("no_such_module_xyz:Env", r"cannot import module 'no_such_module_xyz'"),
    ],
)
def test_a_class_path_that_names_no_env_class_is_refused(env_id, said, capsys):
    with pytest.raises(ValueError, match=said):
        make(env_id)
    status = main(["train", "--preset", "tiny", "--env", env_id, "--no-progress"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert re.search(said, lines[0]) and env_id in lines[0]
    assert "module:Class (a gymnasium.Env subclass" in lines[0] or "import" in said


def test_gymnasiums_module_id_form_still_wins(tmp_path, monkeypatch):
    # A module registering the name of its own class as an id, with a limit.
    (tmp_path / "registering_mod.py").write_text(
        "import gymnasium\nfrom custom_env import SignEnv\n"
        "gymnasium.register('SignEnv', entry_point=SignEnv, max_episode_steps=2)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with make("registering_mod:SignEnv", num_envs=1) as env:
            assert env.spec.max_episode_steps == 2  # the registered id's limit
            args = ["train", "--env-module", "registering_mod", "--env", "SignEnv"]
            config = run_config(build_parser().parse_args(args))
            assert config.env_id == "registering_mod:SignEnv"
            args = ["train", "--env-module", "registering_mod"]
            with pytest.raises(ValueError, match="without --env"):
                run_config(build_parser().parse_args(args))
    finally:
        gymnasium.registry.pop("SignEnv", None)


def test_trainers_take_an_instance_and_record_its_class_path(tmp_path):
    run = tmp_path / "run"
    config = WorldModelTrainingConfig(**TINY_WM)
    trainer = WorldModelTrainer(SignEnv(length=5), config, run_dir=run)
    trainer.train_world_model()
    # collected from copies made with length 5: every episode 5 steps
    lengths = RolloutDataset(run / "data").episode_lengths()
    np.testing.assert_array_equal(lengths, [5] * 4)
    saved = load_config(run)
    assert (saved.env_id, saved.env_kwargs) == ("custom_env:SignEnv", {"length": 5})
    assert load_agent(run).observation_shape == (4,)
    with pytest.raises(ValueError, match="cannot be recorded in config.json"):
        WorldModelTrainer(env_fn=lambda: SignEnv(), config=config, run_dir=tmp_path)
    # the controller: a list of instances, stepped as given, evaluated on copies
    ppo = WorldModelPPOTrainer(
        tiny_vector_agent(),
        [SignEnv(length=4), SignEnv(length=4)],
        PPOConfig(n_epochs=1, batch_size=16),
        imagination_ratio=0.5,
        imagination_horizon=4,
        mdn_updates=1,
        sequence_length=4,
        updates_per_chunk=1,
        eval_episodes=2,
    )
    ppo.train(total_timesteps=16, rollout_length=8)
    evaluation = ppo.evaluate(ppo.state, 16)
    assert 0 <= evaluation["eval/return_mean"] <= 4  # episodes of 4 steps
    ppo.close()


def test_save_records_an_unregistered_instance_with_its_arguments(tmp_path):
    length = 5  # not SignEnv's default (20): a record without it reloads wrong
    tiny_vector_agent().save(tmp_path / "saved", env=SignEnv(length=length))
    saved = load_config(tmp_path / "saved")
    assert (saved.env_id, saved.env_kwargs) == ("custom_env:SignEnv", {"length": 5})
    with make(saved.env_id, **saved.env_kwargs) as env:  # made again: 5 steps
        env.reset(seed=0)
        ended = [bool(env.step(np.zeros(1, int)).terminated[0]) for _ in range(6)]
    assert ended == [False] * (length - 1) + [True, False]
    assert load_agent(tmp_path / "saved").observation_shape == (4,)


@pytest.mark.parametrize("factory", ["lambda", "class"])
def test_the_ppo_trainer_refuses_a_factory_it_cannot_record_before_training(
    factory, tmp_path
):
    class Local(SignEnv):  # defined here: no other process can import it
        pass

    env_fn = (lambda: Local(length=3)) if factory == "lambda" else Local
    run = tmp_path / "run"
    # Raised by the constructor: no update has run and nothing is on disk.
    with pytest.raises(ValueError, match=r"^run_dir is given.*cannot be recorded"):
        WorldModelPPOTrainer(
            tiny_vector_agent(), env_fn=env_fn, num_envs=2, run_dir=run
        )
    assert not run.exists() or not any(run.iterdir())
    # Without a run_dir the same factory trains (nothing is recorded on disk).
    trainer = WorldModelPPOTrainer(
        tiny_vector_agent(),
        env_fn=env_fn,
        config=PPOConfig(n_epochs=1, batch_size=16),
        num_envs=2,
        imagination_ratio=0.0,
        updates_per_chunk=1,
    )
    trainer.train(total_timesteps=16, rollout_length=8)
    assert trainer.real_env_steps == 16
    trainer.close()


def _blocks(language: str) -> list[str]:
    text = PAGE.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_page_shows_the_fixture_module():
    assert (TESTS / "custom_env.py").read_text() in _blocks("python")


# What the page's example is shrunk by: each text must occur once, as written.
SHRINK = {
    "num_episodes=200, vae_epochs=10, mdn_epochs=10": ", ".join(
        f"{k}={v}" for k, v in TINY_WM.items()
    ),
    "num_envs=8, imagination_ratio=0.5": "num_envs=2, imagination_ratio=0.5, "
    "updates_per_chunk=1, imagination_horizon=4, mdn_updates=1, sequence_length=4",
    "total_timesteps=20_000, rollout_length=64": (
        "total_timesteps=64, rollout_length=32"
    ),
}


def test_the_pages_python_example_runs(tmp_path, monkeypatch, capsys):
    (code,) = [b for b in _blocks("python") if "WorldModelTrainer(env, config" in b]
    for text, small in SHRINK.items():
        assert code.count(text) == 1, text
        code = code.replace(text, small)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(PAGE), "exec"), {"__name__": "your_env_page"})
    mean, _, length = capsys.readouterr().out.split()[-3:]
    assert length == "20" and 0 <= float(mean) <= 20
    saved = load_config(tmp_path / "runs" / "sign-world-model")
    assert (saved.env_id, saved.env_kwargs) == ("custom_env:SignEnv", {"length": 20})


def test_the_pages_commands_run_from_the_modules_directory(tmp_path, capsys):
    (block,) = [b for b in _blocks("bash") if "--env custom_env:SignEnv" in b]
    train, evaluate = [shlex.split(line) for line in block.strip().splitlines()]
    shutil.copy(TESTS / "custom_env.py", tmp_path)
    # the console script, whose path holds no working directory
    script = shutil.which("janus-jax", path=str(Path(sys.executable).parent))
    env = subprocess_env()
    env["PYTHONPATH"] = str(TESTS.parent)  # janus_jax, not tests/custom_env.py
    done = subprocess.run(
        [script, *train[1:], "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    run = tmp_path / "runs" / "sign"
    saved = json.loads((run / "config.json").read_text())
    assert (saved["env_id"], saved["env_kwargs"]) == (
        "custom_env:SignEnv",
        {"length": 8},
    )
    lengths = RolloutDataset(run / "data").episode_lengths()
    assert set(np.asarray(lengths).tolist()) == {8}
    # evaluate, in this process (custom_env imports from tests/)
    assert main([*evaluate[1:3], str(run), "--episodes", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env_id"] == "custom_env:SignEnv"
    assert 0 <= result["return_mean"] <= 8
