"""Collection with a budget in real env steps (``collect(num_steps=...)``,
``world_model.random_steps``): at least that many steps, whole episodes only, an
overshoot of at most one episode per env, no bias toward short episodes, and a
resume that counts the steps already there."""

import json

import numpy as np
import pytest

from janus_jax.cli import main
from janus_jax.data import RolloutDataset
from janus_jax.data.collect import EpisodeCutter, collect
from janus_jax.train import WorldModelTrainingConfig


def _episodes(path):
    """Returns every stored episode: (obs, actions, rewards, terminated, truncated)."""
    return list(RolloutDataset(path).iter_episodes())


def _lengths(path) -> np.ndarray:
    return np.array([len(rewards) for _, _, rewards, *_ in _episodes(path)])


def test_a_step_budget_gives_whole_episodes_and_overshoots_by_one_per_env(tmp_path):
    stats = collect(
        "CartPole-v1", tmp_path, num_steps=500, num_envs=4, progress=False, seed=2
    )
    episodes = _episodes(tmp_path)
    for obs, actions, _, terminated, truncated in episodes:
        ended = np.logical_or(terminated, truncated)
        assert ended[-1] and not ended[:-1].any()  # one episode, ended at its end
        assert len(obs) == len(actions) + 1
    lengths = np.array([len(e[2]) for e in episodes])
    total = int(lengths.sum())
    assert total == RolloutDataset(tmp_path).num_steps == stats.steps
    assert total >= 500
    assert total - 500 < np.sort(lengths)[-4:].sum()
    assert RolloutDataset(tmp_path).manifest["metadata"]["num_steps"] == 500


def _collect_many_envs(path, num_envs):
    # A budget far below one episode per env: every env's first episode is still
    # chosen (it started before the budget was met) and kept to its end.
    return collect(
        "CartPole-v1", path, num_steps=100, num_envs=num_envs, progress=False, seed=3
    )


def _unbiased(lengths: np.ndarray, reference: np.ndarray, num_envs: int) -> bool:
    """True if ``lengths`` hold every env's first episode and their mean is the
    one a single env (which cannot favour short episodes) gives."""
    return len(lengths) >= num_envs and abs(lengths.mean() - reference.mean()) < 4


def test_a_step_budget_does_not_favour_short_episodes(tmp_path, monkeypatch):
    # One env runs its episodes one after another, so what it keeps cannot
    # depend on which finish first: the reference mean length (about 22 for a
    # random CartPole policy). With 256 envs and 100 steps, keeping the first
    # episodes to *finish* would keep a handful of the shortest ones (about 10
    # steps each); choosing them when they start keeps all 256 first episodes.
    collect("CartPole-v1", tmp_path / "one", num_steps=5000, num_envs=1, seed=3)
    reference = _lengths(tmp_path / "one")
    _collect_many_envs(tmp_path / "many", 256)
    lengths = _lengths(tmp_path / "many")
    assert _unbiased(lengths, reference, 256), (len(lengths), lengths.mean())

    # The check can fail: a cutter that drops the chosen episodes in progress
    # once the budget is met (keeping only those that finished) is caught.
    def drop_in_progress(self):
        self.remaining = 0
        self.chosen[:] = False

    monkeypatch.setattr(EpisodeCutter, "stop_choosing", drop_in_progress)
    _collect_many_envs(tmp_path / "finished_first", 256)
    assert not _unbiased(_lengths(tmp_path / "finished_first"), reference, 256)


def test_a_step_budget_chooses_what_an_episode_budget_of_that_size_does(tmp_path):
    # Both choose episodes as they start, in one order: the step budget's
    # episodes are the first K to start, for the K it ended up with.
    stats = collect("CartPole-v1", tmp_path / "steps", num_steps=700, num_envs=8)
    collect("CartPole-v1", tmp_path / "eps", stats.episodes, num_envs=8)
    by_steps, by_episodes = _episodes(tmp_path / "steps"), _episodes(tmp_path / "eps")
    assert len(by_steps) == len(by_episodes) == stats.episodes
    for x, y in zip(by_steps, by_episodes, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    "budget",
    [{}, {"num_episodes": 4, "num_steps": 100}, {"num_episodes": None}],
    ids=["neither", "both", "none"],
)
def test_exactly_one_budget_is_required(tmp_path, budget):
    with pytest.raises(ValueError, match="exactly one of num_episodes or num_steps"):
        collect("CartPole-v1", tmp_path, **budget, progress=False)
    assert not tmp_path.joinpath("manifest.json").exists()


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_a_bad_step_budget_is_refused_naming_it(tmp_path, bad):
    with pytest.raises(ValueError, match=rf"num_steps={bad!r} is invalid"):
        collect("CartPole-v1", tmp_path, num_steps=bad, progress=False)


def test_resume_counts_the_steps_already_there(tmp_path):
    collect("CartPole-v1", tmp_path, num_steps=300, num_envs=2, progress=False)
    first = _episodes(tmp_path)
    before = sum(len(e[2]) for e in first)
    assert before >= 300
    stats = collect(
        "CartPole-v1", tmp_path, num_steps=600, num_envs=2, progress=False, resume=True
    )
    after = _episodes(tmp_path)
    lengths = np.array([len(e[2]) for e in after])
    assert lengths.sum() >= 600 and stats.steps == lengths.sum() - before
    # Only the missing steps were collected (not 600 more), whole episodes.
    assert lengths.sum() - 600 < np.sort(lengths[len(first) :])[-2:].sum()
    for old, new in zip(first, after, strict=False):  # the old episodes, unchanged
        for u, v in zip(old, new, strict=True):
            np.testing.assert_array_equal(u, v)
    # A budget already met collects nothing.
    again = collect(
        "CartPole-v1", tmp_path, num_steps=600, num_envs=2, progress=False, resume=True
    )
    assert again.episodes == 0 and again.total_episodes == len(after)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "300"])
def test_random_steps_must_be_a_non_negative_int(bad):
    with pytest.raises(
        ValueError,
        match=r"^WorldModelTrainingConfig\.random_steps=.* is invalid: must be an "
        r"integer >= 0$",
    ):
        WorldModelTrainingConfig(random_steps=bad)
    assert WorldModelTrainingConfig(random_steps=0).random_steps == 0


def test_cli_collects_random_steps(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["collect", "--preset", "tiny", "--out", str(out), "--no-progress"]
    status = main([*argv, "--set", "world_model.random_steps=1000"])
    assert status in (0, None), capsys.readouterr().err
    dataset = RolloutDataset(out / "data")
    # The tiny preset's 16 episodes are about 350 steps: these 1000 come from
    # the step budget.
    assert dataset.num_steps >= 1000
    assert dataset.manifest["metadata"]["num_steps"] == 1000
    config = json.loads((out / "config.json").read_text())
    assert config["world_model"]["random_steps"] == 1000
