"""Tests for janus_jax.run.metrics_log: JSON-lines log, TensorBoard, progress."""

import json
import math

import numpy as np
import pytest

from janus_jax.run.metrics_log import MetricsLogger, Progress, read_metrics

PHASES = ["collect", "vae", "mdn", "controller"]


def test_rows_round_trip_with_builtin_types(tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    with MetricsLogger(tmp_path) as log:
        returned = log.write(
            "vae",
            np.int64(3),
            {"loss": np.float32(0.25), "kl": jnp.array(1.5), "n": 7},
            epoch=np.int32(2),
        )
        log.write("vae", 4, {"loss": 0.125})
    rows = read_metrics(tmp_path / "metrics.jsonl")
    assert log.path == tmp_path / "metrics.jsonl"
    assert len(rows) == 2
    first = rows[0]
    assert list(first) == ["phase", "step", "time_s", "epoch", "loss", "kl", "n"]
    assert first["phase"] == "vae" and type(first["step"]) is int
    assert first["step"] == 3 and first["epoch"] == 2 and type(first["epoch"]) is int
    assert first["loss"] == 0.25 and first["kl"] == 1.5
    assert type(first["n"]) is float and first["n"] == 7.0
    assert first["time_s"] >= 0 and rows[1]["time_s"] >= first["time_s"]
    assert returned == first


def test_non_finite_is_null_in_file_but_float_in_row(tmp_path):
    with MetricsLogger(tmp_path) as log:
        row = log.write("mdn", 1, {"loss": float("nan"), "grad": np.inf, "ok": 1.0})
    assert math.isnan(row["loss"]) and row["grad"] == math.inf
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    (read,) = read_metrics(tmp_path / "metrics.jsonl")
    assert read["loss"] is None and read["grad"] is None and read["ok"] == 1.0


def test_metric_clashing_with_row_field_is_refused(tmp_path):
    with MetricsLogger(tmp_path) as log, pytest.raises(ValueError, match="step"):
        log.write("vae", 1, {"step": 1.0})


def test_fresh_start_replaces_and_resume_appends_continuing_time(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"phase": "old", "step": 0, "time_s": 1.0}) + "\n")
    with MetricsLogger(tmp_path) as log:
        log.write("vae", 1, {"loss": 1.0})
    assert [r["phase"] for r in read_metrics(path)] == ["vae"]

    # Fake a long first session so continued time is unmistakable.
    rows = read_metrics(path)
    rows[0]["time_s"] = 1000.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with MetricsLogger(tmp_path, resume=True) as log:
        log.write("vae", 2, {"loss": 0.5})
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [1, 2]
    assert 1000.0 <= rows[1]["time_s"] < 1060.0


def test_resume_drops_torn_last_line_before_appending(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"phase": "vae", "step": 1, "time_s": 5.0}\n{"phase": "va')
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: dropped its last line"):
        log = MetricsLogger(tmp_path, resume=True)
    with log:
        log.write("vae", 2, {"loss": 0.5})
    rows = read_metrics(path)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["time_s"] >= 5.0


def test_rewind_keeps_exactly_the_rows_of_the_restored_state(tmp_path):
    history = [
        ("setup", 0),  # outside `order`, before any dropped row: kept
        ("collect", 0),
        ("collect", 1),
        ("vae", 0),
        ("vae", 1),
        ("vae", 2),
        ("eval", 0),  # outside `order`, still before the first drop: kept
        ("vae", 3),  # first dropped row
        ("eval", 1),  # outside `order`, after a drop: dropped
        ("mdn", 0),
        ("controller", 0),
    ]
    with MetricsLogger(tmp_path) as log:
        for phase, step in history:
            log.write(phase, step, {"x": float(step)})
        dropped = log.rewind(PHASES, "vae", 2)
        log.write("vae", 3, {"x": 33.0})
    rows = read_metrics(log.path)
    expected = history[:7] + [("vae", 3)]
    assert dropped == 4
    assert [(r["phase"], r["step"]) for r in rows] == expected
    assert rows[-1]["x"] == 33.0
    assert not list(tmp_path.glob("*.tmp"))


def test_rewind_rejects_unknown_phase(tmp_path):
    with MetricsLogger(tmp_path) as log, pytest.raises(ValueError, match="bogus"):
        log.rewind(PHASES, "bogus", 0)


def test_truncated_last_line_ignored_but_malformed_middle_line_errors(tmp_path):
    path = tmp_path / "metrics.jsonl"
    good = '{"phase": "vae", "step": 1, "time_s": 0.5}\n'
    path.write_text(good + good + '{"phase": "vae", "st')
    assert [r["step"] for r in read_metrics(path)] == [1, 1]

    path.write_text(good + "{not json\n" + good)
    with pytest.raises(ValueError, match=r"metrics\.jsonl: line 2 .*delete that line"):
        read_metrics(path)
    # A complete (newline-terminated) last line that is broken is corruption.
    path.write_text(good + "{not json\n")
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(path)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl"):
        read_metrics(tmp_path / "nowhere.jsonl")


def test_tensorboard_scalars_read_back_by_tensorboard(tmp_path):
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    written = {
        ("vae/loss", 1): 0.5,
        ("vae/loss", 2): 0.25,
        ("eval/return", 2): 187.3,
        ("controller/return", 4096): -3.5,
        ("controller/loss", 4096): float("nan"),
    }
    with MetricsLogger(tmp_path, use_tensorboard=True) as log:
        log.write("vae", 1, {"loss": 0.5})
        log.write("vae", 2, {"loss": 0.25, "eval/return": 187.3})
        log.write(
            "controller", 7, {"return": -3.5, "loss": np.nan}, real_env_steps=4096
        )
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
    accumulator.Reload()
    read = {
        (tag, event.step): event.value
        for tag in accumulator.Tags()["scalars"]
        for event in accumulator.Scalars(tag)
    }
    assert set(read) == set(written)
    for key, value in written.items():
        if math.isnan(value):
            assert math.isnan(read[key])
        else:
            assert read[key] == pytest.approx(value, rel=1e-6)


def test_progress_disabled_prints_nothing(capsys):
    with Progress(10, "vae", "batch", enabled=False) as bar:
        bar.update(3, loss=0.5)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_shows_compact_postfix_on_stderr(capsys):
    with Progress(100, "controller", "update", initial=10) as bar:
        bar.update(5, ret=187.3456, loss=0.123456, **{"steps/s": 10511.8})
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "controller" in captured.err and "15/100" in captured.err
    assert "ret=187.3 loss=0.1235 steps/s=10,512" in captured.err
