"""experiments/cmaes_vs_ppo.py's --world-model: a finished run's data, V and M
are copied for the arms, its C, summary and pictures are not, and a run of
another preset or seed, or one without a world model, is refused by name."""

import json

import pytest
from conftest import import_experiment

PHASES = ["collect", "vae", "vae", "mdn", "controller", "controller", "eval", "random"]


@pytest.fixture(scope="module")
def cvp():
    return import_experiment("cmaes_vs_ppo")


def _finished_run(path, preset="carracing", seed=2, trained=True):
    (path / "data").mkdir(parents=True)
    (path / "data" / "episode-0.npz").write_text("frames")
    for phase in ("vae", "mdn", "controller") + (("agent",) if trained else ()):
        (path / "checkpoints" / phase).mkdir(parents=True)
        (path / "checkpoints" / phase / "state").write_text(phase)
    (path / "plots").mkdir()
    (path / "plots" / "dream.gif").write_text("gif")
    (path / "summary.json").write_text("{}")
    (path / "config.json").write_text(json.dumps({"preset": preset, "seed": seed}))
    rows = [json.dumps({"phase": p, "step": i}) + "\n" for i, p in enumerate(PHASES)]
    (path / "metrics.jsonl").write_text("".join(rows))
    return path


def test_the_world_model_is_copied_and_the_controller_left_behind(cvp, tmp_path):
    run = _finished_run(tmp_path / "run")
    out = tmp_path / "arms" / "seed-2" / "world-model"
    cvp.copy_world_model(run, out, "carracing", 2)
    copied = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert copied == [
        "checkpoints/agent/state",
        "checkpoints/mdn/state",
        "checkpoints/vae/state",
        "config.json",
        "data/episode-0.npz",
        "metrics.jsonl",
    ]
    rows = [
        json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["phase"], r["step"]) for r in rows] == [
        ("collect", 0),
        ("vae", 1),
        ("vae", 2),
        ("mdn", 3),
    ]
    assert (run / "checkpoints" / "controller" / "state").exists()  # run untouched


@pytest.mark.parametrize(
    "made,match",
    [
        ({"seed": 1}, r"its seed is 1, not 2 \(--preset, --seeds\)"),
        ({"preset": "cartpole"}, r"its preset is 'cartpole', not 'carracing'"),
        ({"trained": False}, "holds no trained world model yet"),
    ],
)
def test_a_run_that_does_not_fit_is_refused_by_name(cvp, tmp_path, made, match):
    run = _finished_run(tmp_path / "run", **made)
    with pytest.raises(ValueError, match=match):
        cvp.copy_world_model(run, tmp_path / "out", "carracing", 2)
    assert not (tmp_path / "out").exists()
