"""The ``janus-jax`` command line end to end: one ``tiny`` run (about 25 s) that
every test reuses, the other subcommands on it, and the one-line errors (exit
status 2, no traceback) of a user's mistakes."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import janus_jax
from janus_jax.agent import WorldModelAgent
from janus_jax.cli import bench, build_parser, main, run_config
from janus_jax.config import presets
from janus_jax.data import RolloutDataset
from janus_jax.diagnostics.evaluate import MAX_EVAL_ENVS, episode_returns
from janus_jax.envs import make
from janus_jax.run.checkpoint import PhaseCheckpoints
from janus_jax.run.metrics_log import read_metrics
from janus_jax.run.run_dir import load_agent, load_config

TINY = presets.tiny()
RUN_FILES = (
    "config.json",
    "data/manifest.json",
    "metrics.jsonl",
    "summary.json",
    "plots/reconstructions.png",
    "plots/dream.gif",
    "plots/returns.png",
    "plots/world_model_losses.png",
    "plots/ppo.png",
)
CHECKPOINT_PHASES = ("vae", "mdn", "controller", "agent")
PHASE_ORDER = ["collect", "vae", "mdn", "controller", "eval", "random"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished ``janus-jax train --preset tiny --tensorboard`` run; read only."""
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["train", "--preset", "tiny", "--out", str(out)]
    assert main([*argv, "--tensorboard", "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def rows(run_dir):
    return read_metrics(run_dir / "metrics.jsonl")


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Returns (exit status, stdout, stderr) of ``janus-jax ARGV`` run in-process."""
    capsys.readouterr()
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse exits; the console script would too
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def console(*argv, cwd=None) -> subprocess.CompletedProcess:
    """Returns the finished ``janus-jax ARGV`` process (the installed script), run
    in ``cwd`` (default: this one)."""
    script = Path(sys.executable).with_name("janus-jax")
    script = script if script.exists() else shutil.which("janus-jax")
    assert script, "the janus-jax console script is not installed"
    return subprocess.run(
        [str(script), *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def one_error_line(status: int, err: str) -> str:
    """Returns the error line after checking it is a user's-mistake exit."""
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0], err
    return lines[0]


def snapshot(directory: Path) -> dict:
    """Returns {relative path: (size, mtime_ns)} of every file under directory."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


# --- 1. what a run writes -----------------------------------------------------


def test_run_writes_every_file(run_dir):
    for name in RUN_FILES:
        path = run_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    for phase in CHECKPOINT_PHASES:
        steps = [p for p in (run_dir / "checkpoints" / phase).iterdir() if p.is_dir()]
        assert steps, f"checkpoints/{phase} holds no step"
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    for name in RUN_FILES:
        if name.startswith("plots/"):
            with Image.open(run_dir / name) as image:
                assert image.size[0] > 0 and image.size[1] > 0, name
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "CartPole-v1" and config["preset"] == "tiny"


def test_summary_fields_are_sane(run_dir, summary, rows):
    assert summary["env_id"] == "CartPole-v1"
    assert summary["preset"] == "tiny"
    assert summary["seed"] == 0
    assert summary["eval_episodes"] == TINY.controller.eval_episodes == 4
    assert summary["real_env_steps"] == (
        summary["random_data_steps"] + summary["controller_env_steps"]
    )
    assert summary["controller_env_steps"] >= TINY.controller.total_timesteps
    assert summary["imagined_steps"] > 0
    assert summary["imagination_ratio"] == TINY.controller.imagination_ratio
    for who in ("eval", "random"):
        assert 0 < summary[f"{who}_return_mean"] <= 500, who
        std = summary[f"{who}_return_std"]
        assert math.isfinite(std) and std >= 0, who
    assert summary["wall_time_s"] > 0
    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    assert manifest["env_id"] == "CartPole-v1"
    assert summary["random_data_steps"] == manifest["totals"]["steps"] > 0
    # The summary repeats what the log recorded, it does not recompute it.
    last = {row["phase"]: row for row in rows}
    for phase in ("vae", "mdn"):
        loss = summary["final_losses"][phase][f"{phase}/loss"]
        assert math.isfinite(loss) and loss == last[phase][f"{phase}/loss"]
    assert summary["eval_return_mean"] == last["eval"]["eval/return_mean"]
    assert summary["random_return_mean"] == last["random"]["random/return_mean"]
    assert summary["imagined_steps"] == last["controller"]["imagined_steps"]


def test_metrics_log_phases_in_order(summary, rows):
    phases = [row["phase"] for row in rows]
    runs = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert runs == PHASE_ORDER
    steps = [row["real_env_steps"] for row in rows if row["phase"] == "controller"]
    assert len(steps) >= 2
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False)), steps
    assert steps[-1] == summary["controller_env_steps"]
    times = [row["time_s"] for row in rows]
    assert times == sorted(times)


# --- 2. TensorBoard ---------------------------------------------------------------


@pytest.fixture(scope="module")
def events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    accumulator = EventAccumulator(str(run_dir / "tensorboard"))
    accumulator.Reload()
    return accumulator


@pytest.mark.parametrize(
    "tag",
    ["collect/return_mean", "vae/loss", "mdn/loss", "ppo/loss", "real/episode_return"],
)
def test_tensorboard_scalars_match_the_metrics_log(events, rows, tag):
    assert tag in events.Tags()["scalars"]
    logged = list(events.Scalars(tag))
    # Rows with real_env_steps are plotted against it, the others against step.
    expected = [
        (row.get("real_env_steps", row["step"]), row[tag]) for row in rows if tag in row
    ]
    assert expected
    assert [e.step for e in logged] == [step for step, _ in expected]
    np.testing.assert_allclose(
        [e.value for e in logged], [value for _, value in expected], rtol=1e-6
    )


def test_tensorboard_mdn_loss_covers_both_phases(events, rows, summary):
    steps = {e.step for e in events.Scalars("mdn/loss")}
    mdn_steps = {row["step"] for row in rows if row["phase"] == "mdn"}
    assert mdn_steps <= steps
    assert summary["controller_env_steps"] in steps


def test_tensorboard_tells_the_random_baseline_from_the_controller(events, summary):
    logged = [(e.step, e.value) for e in events.Scalars("eval/return_mean")]
    assert len(logged) == 1, logged
    step, value = logged[0]
    assert step == summary["controller_env_steps"]
    assert value == pytest.approx(summary["eval_return_mean"])
    baseline = [e.value for e in events.Scalars("random/return_mean")]
    assert baseline == [pytest.approx(summary["random_return_mean"])]


# --- 3. load_agent ----------------------------------------------------------------


def test_load_agent_restores_the_agent_checkpoint(run_dir):
    config = load_config(run_dir)
    wm = config.world_model
    fresh = WorldModelAgent(
        wm.vae.observation_shape,
        2,  # CartPole's two discrete actions
        False,
        controller_config=config.network,
        vae_config=wm.vae,
        mdn_rnn_config=wm.mdn_rnn,
        seed=config.seed,
    ).params
    with PhaseCheckpoints(run_dir / "checkpoints" / "agent") as checkpoints:
        restored, progress = checkpoints.restore(fresh)
    assert progress["stage"] == "controller"
    loaded = load_agent(run_dir).params
    assert jax.tree.structure(loaded) == jax.tree.structure(restored)
    loaded_leaves, restored_leaves = jax.tree.leaves(loaded), jax.tree.leaves(restored)
    assert loaded_leaves
    for got, want in zip(loaded_leaves, restored_leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # Trained weights, not the initial ones the abstract tree was built from.
    assert any(
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(restored_leaves, jax.tree.leaves(fresh), strict=True)
    )


def test_loaded_agent_reproduces_the_evaluation(run_dir, summary):
    config = load_config(run_dir)
    agent = load_agent(run_dir)
    # evaluate_run: key(seed + 1) split into (controller, random policy), and as
    # many envs as episodes (up to MAX_EVAL_ENVS): the env count sets the resets.
    key_agent, _ = jax.random.split(jax.random.key(config.seed + 1))
    episodes = config.controller.eval_episodes
    env = make("CartPole-v1", num_envs=min(episodes, MAX_EVAL_ENVS))
    returns = episode_returns(key_agent, env, agent.params, episodes)
    assert returns.shape == (4,)
    assert float(np.mean(returns)) == summary["eval_return_mean"]
    assert float(np.std(returns)) == summary["eval_return_std"]


def test_sampled_evaluation_is_the_policy_sampled(run_dir):
    """controller.eval_policy="sample": evaluate_run draws C's actions, which on
    CartPole gives other returns than the argmax's (the summary's)."""
    import dataclasses

    from janus_jax.train.loop import RunIO
    from janus_jax.train.pipeline import evaluate_run

    config = load_config(run_dir)
    config = dataclasses.replace(
        config,
        controller=dataclasses.replace(config.controller, eval_policy="sample"),
    )
    agent = load_agent(run_dir)
    result = evaluate_run(config, agent, RunIO(progress=False), 0)
    key_agent, _ = jax.random.split(jax.random.key(config.seed + 1))
    episodes = config.controller.eval_episodes
    env = make("CartPole-v1", num_envs=min(episodes, MAX_EVAL_ENVS))
    sampled = episode_returns(
        key_agent, env, agent.params, episodes, deterministic=False
    )
    mode = episode_returns(key_agent, env, agent.params, episodes)
    assert result["eval_policy"] == "sample"
    assert result["eval_return_mean"] == float(np.mean(sampled))
    assert not np.array_equal(sampled, mode)


# --- 4. evaluate, dream, config ---------------------------------------------------


def test_evaluate_prints_one_json_line(capsys, run_dir):
    status, out, err = cli(capsys, "evaluate", "--run", run_dir, "--episodes", 3)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 1, out
    result = json.loads(lines[0])
    assert result["episodes"] == 3
    assert result["env_id"] == "CartPole-v1"
    assert 0 < result["return_mean"] <= 500
    assert math.isfinite(result["return_std"]) and result["return_std"] >= 0
    assert result["policy"] == "mode"  # the tiny preset's controller.eval_policy


@pytest.mark.parametrize("policy", ["mode", "sample"])
def test_evaluate_acts_as_its_policy_option_says(capsys, run_dir, policy):
    argv = ["--run", run_dir, "--episodes", 3, "--policy", policy]
    status, out, err = cli(capsys, "evaluate", *argv)
    assert status == 0, err
    result = json.loads(out)
    want = episode_returns(
        jax.random.key(0),
        make("CartPole-v1", num_envs=3),
        load_agent(run_dir).params,
        3,
        deterministic=policy == "mode",
    )
    assert result["policy"] == policy
    assert result["return_mean"] == float(np.mean(want))


def test_dream_writes_an_animated_gif(capsys, run_dir, tmp_path):
    gif = tmp_path / "sub" / "x.gif"
    status, out, err = cli(
        capsys, "dream", "--run", run_dir, "--gif", gif, "--steps", 20
    )
    assert status == 0, err
    assert str(gif) in out
    with Image.open(gif) as image:
        assert image.format == "GIF"
        assert image.n_frames > 1


def test_config_lists_every_field(capsys):
    status, out, err = cli(capsys, "config", "--preset", "tiny")
    assert status == 0, err
    lines = out.splitlines()
    assert any(line.startswith("controller.imagination_ratio = 0.5") for line in lines)
    assert any(line.startswith("env_id = CartPole-v1") for line in lines)
    assert any(line.startswith("controller.total_timesteps = 1024") for line in lines)


# --- 5. a user's mistakes: one line, exit status 2 ------------------------------

MISTAKES = {
    "unknown preset": (
        ["train", "--preset", "nope", "--out", "{tmp}/a"],
        ["nope", *presets.PRESETS],
    ),
    "unknown env": (
        ["train", "--preset", "tiny", "--env", "NoSuchEnv-v0", "--out", "{tmp}/a"],
        ["NoSuchEnv-v0"],
    ),
    "text for an int": (
        [
            "train",
            "--preset",
            "tiny",
            "--set",
            "controller.num_envs=abc",
            "--out",
            "{tmp}/a",
        ],
        ["controller.num_envs", "int"],
    ),
    "float for an int": (
        [
            "train",
            "--preset",
            "tiny",
            "--set",
            "controller.num_envs=1.5",
            "--out",
            "{tmp}/a",
        ],
        ["controller.num_envs", "1.5", "int", "write a whole number (1 or 2)"],
    ),
    "unknown field": (
        ["train", "--preset", "tiny", "--set", "controller.nope=1", "--out", "{tmp}/a"],
        ["nope", "num_envs"],
    ),
    "malformed override": (
        ["train", "--preset", "tiny", "--set", "foo", "--out", "{tmp}/a"],
        ["foo", "section.field=value"],
    ),
    "resume with another config": (
        ["train", "--preset", "tiny", "--out", "{run}", "--resume", "--seed", "1"],
        ["another config", "seed", "0 there, 1 here"],
    ),
    "resume and overwrite": (
        ["train", "--preset", "tiny", "--out", "{run}", "--resume", "--overwrite"],
        ["--resume", "--overwrite"],
    ),
    "dataset of another env": (
        [
            "train-world-model",
            "--preset",
            "tiny",
            "--dataset",
            "{run}/data",
            "--env",
            "Acrobot-v1",
            "--out",
            "{tmp}/new",
        ],
        ["CartPole-v1", "Acrobot-v1"],
    ),
    "controller without world model": (
        ["train-controller", "--preset", "tiny", "--out", "{tmp}/empty"],
        ["train-world-model"],
    ),
    "no run to evaluate": (
        ["evaluate", "--run", "/nonexistent"],
        ["/nonexistent"],
    ),
    "dream to a png": (
        ["dream", "--run", "{run}", "--gif", "{tmp}/x.png"],
        ["--gif", "x.png", ".gif"],
    ),
    "zero episodes": (
        ["evaluate", "--run", "{run}", "--episodes", "0"],
        ["--episodes"],
    ),
    "no run directory": (["evaluate"], ["required", "--run"]),
    "the run directory twice": (
        ["evaluate", "--run", "{run}", "--checkpoint", "{run}"],
        ["--checkpoint", "not allowed with", "--run"],
    ),
    "a field without its section": (
        [
            "train",
            "--preset",
            "tiny",
            "--set",
            "imagination_ratio=0.5",
            "--out",
            "{tmp}/a",
        ],
        ["'imagination_ratio'", "did you mean controller.imagination_ratio?"],
    ),
    "a field in two sections": (
        ["train", "--preset", "tiny", "--set", "sequence_length=8", "--out", "{tmp}/a"],
        ["did you mean world_model.sequence_length or controller.sequence_length?"],
    ),
    "a misspelt field": (
        [
            "train",
            "--preset",
            "tiny",
            "--set",
            "controller.rollout_lenght=8",
            "--out",
            "{tmp}/a",
        ],
        ["'rollout_lenght'", "did you mean controller.rollout_length?"],
    ),
    "an old field name without its section": (
        [
            "train",
            "--preset",
            "tiny",
            "--set",
            "world_model_updates=8",
            "--out",
            "{tmp}/a",
        ],
        ["did you mean controller.mdn_updates?"],
    ),
    "an old env id": (
        ["train", "--preset", "tiny", "--env", "LunarLander-v2", "--out", "{tmp}/a"],
        ["'LunarLander-v2'", "'LunarLander-v3'", "use --env LunarLander-v3"],
    ),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistake_is_one_error_line(capsys, run_dir, tmp_path, case):
    template, expected = MISTAKES[case]
    (tmp_path / "empty").mkdir()  # an existing directory without a run
    argv = [a.format(run=run_dir, tmp=tmp_path) for a in template]
    if argv[0] != "evaluate" and argv[0] != "dream":
        argv.append("--no-progress")
    if "--resume" in argv:
        argv.append("--tensorboard")  # the run was made with it; only seed differs
    status, out, err = cli(capsys, *argv)
    line = one_error_line(status, err)
    assert line.startswith(f"janus-jax {argv[0]}: error: "), line
    for text in expected:
        assert text in line, (text, line)


def test_out_holding_a_run_is_refused_and_left_alone(capsys, run_dir):
    before = snapshot(run_dir)
    summary_before = (run_dir / "summary.json").read_text()
    argv = ["train", "--preset", "tiny", "--out", run_dir, "--tensorboard"]
    status, out, err = cli(capsys, *argv, "--no-progress")
    line = one_error_line(status, err)
    assert "already holds a run" in line
    assert "--resume" in line and "--overwrite" in line
    assert snapshot(run_dir) == before
    assert (run_dir / "summary.json").read_text() == summary_before


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--preset", "nope", "--out", "{tmp}/a"],
        ["evaluate", "--run", "/nonexistent"],
    ],
)
def test_console_script_exits_2_without_traceback(tmp_path, argv):
    process = console(*(a.format(tmp=tmp_path) for a in argv))
    assert process.stdout == ""
    one_error_line(process.returncode, process.stderr)


def test_bench_runs_the_benchmarks_of_the_checkout_from_any_directory(tmp_path):
    # benchmarks/ is not installed and tmp_path holds none: the harness that
    # answers is the one beside the janus_jax these tests import.
    checkout = Path(__file__).resolve().parents[1] / "benchmarks"
    assert bench.checkout_benchmarks() == checkout
    process = console("bench", "--help", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("usage: janus-jax bench")
    assert "{imagination,ppo,world-model,memories,all}" in process.stdout


def test_bench_without_a_checkout_is_one_error_line(capsys, monkeypatch, tmp_path):
    installed = tmp_path / "site-packages" / "janus_jax" / "__init__.py"
    monkeypatch.setattr(janus_jax, "__file__", str(installed))
    assert bench.checkout_benchmarks() is None
    status, out, err = cli(capsys, "bench", "--help")
    line = one_error_line(status, err)
    assert out == ""
    assert line.startswith("janus-jax bench: error:")
    for words in ("source checkout", "git clone", "python -m benchmarks"):
        assert words in line, line


def test_argparse_mistake_is_one_error_line(capsys, run_dir):
    status, out, err = cli(capsys, "evaluate", "--run", run_dir, "--episodes", "three")
    assert "three" in one_error_line(status, err)


def test_failed_command_leaves_out_free(capsys, tmp_path):
    out = tmp_path / "run"
    base = ["collect", "--preset", "tiny", "--out", out, "--no-progress"]
    status, _, err = cli(capsys, *base, "--env", "NoSuchEnv-v0")
    one_error_line(status, err)
    status, _, err = cli(capsys, *base, "--set", "world_model.num_episodes=4")
    assert status == 0, err


def test_collection_killed_before_its_row_logs_it_when_resumed(capsys, tmp_path):
    # A kill between the dataset's last episode and the collect row: the resumed
    # run collects nothing more, yet the row must be there, with the returns of
    # the episodes on disk (summed here from the raw rewards).
    out = tmp_path / "run"
    base = ["collect", "--preset", "tiny", "--out", out, "--no-progress"]
    assert cli(capsys, *base)[0] == 0
    (out / "metrics.jsonl").write_text("")  # the row the kill cut off
    status, _, err = cli(capsys, *base, "--resume")
    assert status == 0, err
    (row,) = read_metrics(out / "metrics.jsonl")
    returns = [
        rewards.sum()
        for _, _, rewards, *_ in RolloutDataset(out / "data").iter_episodes()
    ]
    assert row["phase"] == "collect" and row["step"] == len(returns)
    assert row["collect/return_mean"] == pytest.approx(np.mean(returns))
    assert row["collect/return_std"] == pytest.approx(np.std(returns))


def test_run_on_another_env_can_be_evaluated(capsys, tmp_path):
    out = tmp_path / "acrobot"
    status, _, err = cli(
        capsys,
        *("train-world-model", "--preset", "tiny", "--env", "Acrobot-v1"),
        *("--out", out, "--no-progress"),
        *("--set", "world_model.num_episodes=1", "--set", "world_model.collect_envs=1"),
        *("--set", "world_model.vae_epochs=0", "--set", "world_model.mdn_epochs=0"),
    )
    assert status == 0, err
    status, out_text, err = cli(capsys, "evaluate", "--run", out, "--episodes", 1)
    assert status == 0, err
    assert json.loads(out_text)["env_id"] == "Acrobot-v1"


# --- 6. the run's one seed, and overrides refused before anything runs -----------


@pytest.mark.parametrize(
    "argv,seed",
    [
        ([], 0),
        (["--seed", "4"], 4),
        (["--set", "seed=5"], 5),
        (["--seed", "6", "--set", "seed=6"], 6),
        (["--set", "seed=1", "--seed", "7", "--set", "seed=7"], 7),  # the last --set
    ],
)
def test_the_seed_comes_from_seed_or_set_seed(argv, seed):
    config = run_config(build_parser().parse_args(["train", "--preset", "tiny", *argv]))
    assert config.seed == seed


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["--seed", "1", "--set", "seed=2"], ["--seed 1", "--set seed=2"]),
        (["--set", "controller.seed=3"], ["controller.seed", "seed=N", "--seed N"]),
        (["--set", "ppo.batch_size=64"], ["ppo.batch_size", "ppo.minibatch_size"]),
        (["--set", "controller.temperature=1.1"], ["world_model.mdn_rnn.temperature"]),
        (["--set", "controller.imagination_ratio=1"], ["learn_from_real=False"]),
    ],
)
def test_a_refused_seed_or_override_is_one_error_line(capsys, tmp_path, argv, expected):
    out = tmp_path / "a"
    status, _, err = cli(
        capsys, "train", "--preset", "tiny", *argv, "--out", out, "--no-progress"
    )
    line = one_error_line(status, err)
    for text in expected:
        assert text in line, (text, line)
    assert not out.exists()


# --- 7. --overwrite -------------------------------------------------------------


def test_overwrite_replaces_only_the_run_files(capsys, run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "notes.txt").write_text("mine")
    argv = ["collect", "--preset", "tiny", "--seed", "3", "--out", copy]
    status, out, err = cli(capsys, *argv, "--overwrite", "--no-progress")
    assert status == 0, err
    assert json.loads((copy / "config.json").read_text())["seed"] == 3
    for gone in ("checkpoints", "plots", "tensorboard"):
        assert not (copy / gone).exists(), gone
    assert (copy / "notes.txt").read_text() == "mine"
    manifest = json.loads((copy / "data" / "manifest.json").read_text())
    assert manifest["metadata"]["seed"] == 3
    summary = json.loads((copy / "summary.json").read_text())
    assert "eval_return_mean" not in summary
    assert summary["seed"] == 3
    assert summary["random_data_steps"] == manifest["totals"]["steps"]
    assert {row["phase"] for row in read_metrics(copy / "metrics.jsonl")} == {"collect"}


# --- 8. old spellings still work, and say what to write -------------------------

# (command, old spelling, new spelling): the same Namespace, one warning line.
OLD_OPTIONS = [
    ("evaluate", ["--checkpoint", "D"], ["--run", "D"], "--checkpoint", "--run DIR"),
    ("gap", ["--checkpoint", "D"], ["--run", "D"], "--checkpoint", "--run DIR"),
    (
        "dream",
        ["--checkpoint", "D", "--gif", "x.gif"],
        ["--run", "D", "--gif", "x.gif"],
        "--checkpoint",
        "--run DIR",
    ),
    (
        "dream",
        ["--run", "D", "--out", "x.gif"],
        ["--run", "D", "--gif", "x.gif"],
        "--out",
        "--gif FILE.gif",
    ),
]


@pytest.mark.parametrize("command,old,new,option,instead", OLD_OPTIONS)
def test_an_old_option_spelling_parses_as_the_new_one_with_a_warning(
    capsys, command, old, new, option, instead
):
    capsys.readouterr()
    parsed = build_parser().parse_args([command, *old])
    _, err = capsys.readouterr()
    assert parsed == build_parser().parse_args([command, *new])
    assert err.splitlines() == [
        f"janus-jax {command}: warning: {option} is deprecated here: write {instead}"
    ]


def test_evaluate_with_the_old_checkpoint_option_still_evaluates(capsys, run_dir):
    status, out, err = cli(capsys, "evaluate", "--checkpoint", run_dir, "--episodes", 2)
    assert status == 0, err
    assert "--checkpoint is deprecated here: write --run DIR" in err
    _, new_out, _ = cli(capsys, "evaluate", "--run", run_dir, "--episodes", 2)
    assert json.loads(out) == json.loads(new_out)


def test_dream_with_the_old_out_option_still_writes_the_gif(capsys, run_dir, tmp_path):
    gif = tmp_path / "old.gif"
    argv = ["--checkpoint", run_dir, "--out", gif, "--steps", 5]
    status, out, err = cli(capsys, "dream", *argv)
    assert status == 0, err
    assert [line.split(": warning: ")[1] for line in err.splitlines()] == [
        "--checkpoint is deprecated here: write --run DIR",
        "--out is deprecated here: write --gif FILE.gif",
    ]
    with Image.open(gif) as image:
        assert image.format == "GIF"


def test_an_old_field_name_in_set_sets_the_new_field_with_a_warning(capsys):
    argv = ["train", "--preset", "tiny", "--set", "controller.world_model_updates=3"]
    argv += ["--set", "controller.world_model_batch_size=5"]
    capsys.readouterr()
    config = run_config(build_parser().parse_args(argv))
    _, err = capsys.readouterr()
    assert (config.controller.mdn_updates, config.controller.mdn_batch_size) == (3, 5)
    assert err.splitlines() == [
        f"janus-jax train: warning: controller.world_model_{old} is deprecated: "
        f"write controller.mdn_{old} (same meaning, same value)"
        for old in ("updates", "batch_size")
    ]


@pytest.mark.parametrize("text,steps", [("1e5", 100_000), ("2.5e4", 25_000)])
def test_a_whole_number_written_as_a_float_sets_an_int_field(text, steps):
    argv = ["train", "--preset", "tiny", "--set", f"controller.total_timesteps={text}"]
    config = run_config(build_parser().parse_args(argv))
    assert config.controller.total_timesteps == steps
    assert type(config.controller.total_timesteps) is int


def test_an_old_env_id_is_answered_in_python_words_from_python():
    with pytest.raises(ValueError, match="LunarLander-v2") as info:
        make("LunarLander-v2")
    assert "use make('LunarLander-v3')" in str(info.value)
    assert "--env" not in str(info.value)


def test_an_old_runs_config_json_loads_and_resumes(capsys, run_dir, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    data = json.loads((old / "config.json").read_text())
    for field in ("updates", "batch_size"):  # the names before mdn_*
        data["controller"][f"world_model_{field}"] = data["controller"].pop(
            f"mdn_{field}"
        )
    (old / "config.json").write_text(json.dumps(data))
    with pytest.warns(DeprecationWarning):
        assert load_config(old) == load_config(run_dir)
    argv = ["train", "--preset", "tiny", "--out", old, "--resume", "--tensorboard"]
    with pytest.warns(DeprecationWarning) as caught:
        status, out, err = cli(capsys, *argv, "--no-progress")
    assert status == 0, err
    assert {str(w.message).split(" is ")[0] for w in caught} >= {
        "controller.world_model_updates",
        "controller.world_model_batch_size",
    }
    assert "another config" not in err
