"""experiments/memory_compare.py's bookkeeping: each arm trains the memory it
names whatever the preset holds, and the table's means over seeds against
hand-computed ones."""

import dataclasses

import pytest
from conftest import import_experiment


@pytest.fixture(scope="module")
def mc():
    return import_experiment("memory_compare")


@pytest.mark.parametrize("preset", ["cartpole", "breakout"])
def test_each_arm_names_its_memory_whatever_the_preset_holds(mc, preset):
    # cartpole's M is the transformer, breakout's the LSTM
    base, configs = mc.arms(preset, 3, ["world_model.mdn_rnn.context_length=8"])
    assert base.seed == 3
    lstm, attention = configs["lstm"], configs["transformer"]
    assert lstm.world_model.mdn_rnn.rnn_type == "lstm"
    assert attention.world_model.mdn_rnn.rnn_type == "transformer"
    assert attention.world_model.mdn_rnn.context_length == 8  # --set: its arm only
    assert lstm.world_model.mdn_rnn.context_length == 16
    # the arms differ in M's memory only: the same data, V and schedule
    for config in (lstm, attention):
        same = dataclasses.replace(config.world_model, mdn_rnn=base.world_model.mdn_rnn)
        assert dataclasses.replace(config, world_model=same) == base


def _memory(train_s, nll, h1, copy1, starts1):
    return {
        "train_s": train_s,
        "heldout": {"mdn/latent_nll": nll, "mdn/reward_mse": 0.5, "mdn/done_bce": 0.25},
        "open_loop": {
            "1": {"latent_mse": h1, "latent_mse_copy_last": copy1, "starts": starts1},
            "10": {"latent_mse": 2.0, "latent_mse_copy_last": 3.0, "starts": 5},
            "50": {"starts": 0},  # no episode lasted 51 steps
        },
    }


def test_the_table_holds_the_means_over_seeds(mc):
    results = [
        {"seed": 0, "memories": {"lstm": _memory(30, -0.5, 0.2, 1.0, 100),
                                 "transformer": _memory(60, -1.0, 0.1, 1.0, 100)}},
        {"seed": 1, "memories": {"lstm": _memory(40, -0.7, 0.4, 2.0, 50),
                                 "transformer": _memory(70, -0.8, 0.3, 2.0, 60)}},
    ]  # fmt: skip
    rows = {line.split(" | ")[0][2:]: line for line in mc.table(results).splitlines()}
    # by hand: train (30+40)/2, NLL (-0.5-0.7)/2, h=1 (0.2+0.4)/2 and copy 1.5
    assert rows["lstm"] == (
        "| lstm | 35 | -0.6000 | 0.5000 | 0.2500 | 0.3000 (1.5000), 150 starts | "
        "2.0000 (3.0000), 10 starts | no window |"
    )
    assert rows["transformer"].startswith(
        "| transformer | 65 | -0.9000 | 0.5000 | 0.2500 | 0.2000 (1.5000), 160 starts"
    )
