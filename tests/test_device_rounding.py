"""Global batches fitted to any device count: the rounding against hand-computed
values, and the tiny preset trained on 4 forced CPU devices (a subprocess: the
device count is fixed when JAX starts), recording what it rounded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import subprocess_env

from janus_jax.config import presets
from janus_jax.config.models import PPOConfig
from janus_jax.config.run import apply_overrides, to_dict
from janus_jax.config.sizes import (
    DREAMS,
    Rounded,
    check_run_sizes,
    controller_sizes,
    dream_starts,
    fit_to_devices,
    round_up,
)
from janus_jax.config.training import ControllerTrainingConfig


@pytest.mark.parametrize(
    "devices,expected",  # the sizes 2, 3, 4, 32 rounded up
    [(1, [2, 3, 4, 32]), (2, [2, 4, 4, 32]), (4, [4, 4, 4, 32]), (8, [8, 8, 8, 32])],
)
def test_round_up(devices, expected):
    assert [round_up(size, devices) for size in (2, 3, 4, 32)] == expected


def _tiny(*overrides):
    return apply_overrides(presets.tiny(), list(overrides))


def _changes(config, devices) -> dict:
    fitted, changed = fit_to_devices(config, devices)
    assert all(isinstance(c, Rounded) for c in changed)
    return fitted, {c.name: (c.before, c.after) for c in changed}


@pytest.mark.parametrize(
    "devices,expected",
    [
        (1, {}),
        (2, {}),  # 2 envs, batches 32 and 4, 8 dreams: all split over 2
        (4, {"controller.num_envs": (2, 4)}),
        (8, {"controller.num_envs": (2, 8), "world_model.mdn_batch_size": (4, 8)}),
    ],
)
def test_the_tiny_preset_on_1_2_4_8_devices(devices, expected):
    fitted, changes = _changes(presets.tiny(), devices)
    assert changes == expected
    wm, c = fitted.world_model, fitted.controller
    for size in (wm.vae_batch_size, wm.mdn_batch_size, c.num_envs):
        assert size % devices == 0
    # Dreams follow num_envs as the ratio says (8 per 64 real steps), and split.
    starts = dream_starts(c.num_envs * 32, 0.5, 8, 32, devices)
    assert starts == {1: 8, 2: 8, 4: 16, 8: 32}[devices]
    assert (c.num_envs * c.rollout_length) % fitted.ppo.minibatch_size == 0
    untouched = to_dict(presets.tiny())
    for key in ("network", "ppo", "env_id", "seed"):
        assert to_dict(fitted)[key] == untouched[key]


@pytest.mark.parametrize("devices", [1, 2, 4, 8])
@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_fits_1_2_4_8_devices(name, devices):
    fitted, _ = fit_to_devices(presets.preset(name), devices)
    wm, c, ppo = fitted.world_model, fitted.controller, fitted.ppo
    sizes = [c.num_envs]
    if c.features == "world_model":
        sizes += [wm.vae_batch_size, wm.mdn_batch_size]
        real = c.num_envs * c.rollout_length
        args = (real, c.imagination_ratio, c.imagination_horizon, ppo.minibatch_size)
        sizes.append(dream_starts(*args, devices))
    assert [size % devices for size in sizes] == [0] * len(sizes)
    assert c.num_envs * c.rollout_length % ppo.minibatch_size == 0


def test_dreams_per_update_are_rounded_up_and_named():
    # 4 envs x 32 steps at ratio 0.2 over horizons of 32: wanted 0.25 x 128 = 32
    # dreamed steps = 1 dream; minibatches of 32 need none more; 4 devices need 4.
    config = _tiny(
        "controller.num_envs=4",
        "controller.imagination_ratio=0.2",
        "controller.imagination_horizon=32",
    )
    assert dream_starts(128, 0.2, 32, 32) == 1
    fitted, changes = _changes(config, 4)
    assert changes == {"the dreams per update": (1, 4)}
    assert fitted == config  # nothing in the config changed: it is derived
    assert dream_starts(128, 0.2, 32, 32, 4) == 4
    # Minibatch multiples and devices together: 8 dreams (step 4) on 3 devices
    # become lcm(4, 3) = 12.
    assert dream_starts(64, 0.5, 8, 32) == 8
    assert dream_starts(64, 0.5, 8, 32, 3) == 12
    assert dream_starts(64, 0.5, 8, 32, 8) == 8
    assert dream_starts(64, 0.0, 8, 32, 8) == 0


def test_num_envs_keeps_the_ppo_batch_whole_minibatches():
    # 3 envs x 256 steps = 768 = one minibatch of 768. On 2 devices 4 envs would
    # give 1024 (not whole minibatches); 768 / gcd(768, 256) = 3 envs per
    # minibatch, so num_envs becomes lcm(2, 3) = 6: 1536 = 2 minibatches.
    config = _tiny(
        "controller.num_envs=3",
        "controller.rollout_length=256",
        "ppo.minibatch_size=768",
    )
    fitted, changed = fit_to_devices(config, 2)
    (change,) = [c for c in changed if c.name == "controller.num_envs"]
    assert (change.before, change.after) == (3, 6)
    assert "ppo.minibatch_size=768" in change.why and "6 x 256" in change.line()
    # Without the real rollout in the PPO batch nothing needs whole minibatches.
    config = apply_overrides(config, ["controller.learn_from_real=false"])
    assert _changes(config, 2)[1]["controller.num_envs"] == (3, 4)


def test_model_free_runs_round_only_the_controller():
    fitted, changes = _changes(presets.preset("cartpole-ppo"), 8)
    assert changes == {"controller.num_envs": (4, 8)}


def test_controller_sizes_by_hand():
    # 2 envs x 32 steps = 64 real; ratio 0.5 of horizons 8 wants 64 dreamed
    # steps = 8 dreams (a multiple of 32 / gcd(8, 32) = 4). With one dream
    # update the PPO batches hold 64 + 2 x 8 x 8 = 192 rows: 6 minibatches of 32.
    c = ControllerTrainingConfig(
        num_envs=2,
        rollout_length=32,
        imagination_ratio=0.5,
        imagination_horizon=8,
        dream_updates=1,
    )
    ppo = PPOConfig(minibatch_size=32)
    assert tuple(controller_sizes(c, ppo)) == (64, 8, 6)
    # The trainer's own rollout length and env count replace the config's:
    # 4 x 16 = 64 real steps again.
    assert controller_sizes(c, ppo, num_envs=4, rollout_length=16).real == 64
    # 8 dreams split over 2 devices; on 3 they become lcm(4, 3) = 12 (and 2
    # envs do not split over 3).
    assert controller_sizes(c, ppo, 2).dream_starts == 8
    with pytest.raises(ValueError, match="controller.num_envs=2 does not divide"):
        controller_sizes(c, ppo, 3)
    assert controller_sizes(c, ppo, 3, num_envs=3, rollout_length=32).dream_starts == 12


@pytest.mark.parametrize(
    "fields,minibatch,world_model,message",
    [
        ({"rollout_length": 10}, 32, True, r"minibatch_size=32 must divide .* = 20"),
        (
            {"imagination_ratio": 0.0, "dream_updates": 2},
            32,
            True,
            "dream_updates=2 needs dreams",
        ),
        ({"imagination_ratio": 0.5}, 32, False, "cannot dream"),
    ],
)
def test_controller_sizes_refuse_what_does_not_fit(
    fields, minibatch, world_model, message
):
    c = ControllerTrainingConfig(num_envs=2, **fields)
    with pytest.raises(ValueError, match=message):
        controller_sizes(
            c, PPOConfig(minibatch_size=minibatch), world_model=world_model
        )


def test_a_run_checks_the_sizes_of_the_phases_it_trains():
    tiny = presets.tiny()  # V batches of 32, M of 4, 2 envs
    check_run_sizes(tiny, 4, world_model=True, controller=False)
    with pytest.raises(ValueError, match="world_model.mdn_batch_size=4 does not"):
        check_run_sizes(tiny, 8, world_model=True, controller=False)
    with pytest.raises(ValueError, match="controller.num_envs=2 does not divide"):
        check_run_sizes(tiny, 4, world_model=False, controller=True)
    check_run_sizes(fit_to_devices(tiny, 8)[0], 8, world_model=True, controller=True)
    assert DREAMS.startswith("the dreams per update (set by controller.num_envs")


WORKER = textwrap.dedent(
    """
    import json, sys
    import jax
    from janus_jax.train import pipeline
    from janus_jax.config import presets
    from janus_jax.config.run import apply_overrides

    assert jax.device_count() == 4, jax.devices()
    config = apply_overrides(presets.tiny(), sys.argv[2:])
    stages = ("collect", "world_model", "controller")
    pipeline.run(config, sys.argv[1], stages=stages, progress=False)
    """
)


def test_the_tiny_preset_trains_on_four_devices(tmp_path):
    out = tmp_path / "run"
    env = subprocess_env("--xla_force_host_platform_device_count=4")
    overrides = [
        "world_model.mdn_batch_size=3",  # -> 4
        "world_model.vae_epochs=0.5",
        "world_model.mdn_epochs=0.5",
        "controller.total_timesteps=128",  # one update of 4 envs x 32 steps
        "controller.updates_per_chunk=1",
    ]
    process = subprocess.run(
        [sys.executable, "-c", WORKER, str(out), *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    printed = [line for line in process.stdout.splitlines() if "->" in line]
    assert printed == [
        "janus-jax: world_model.mdn_batch_size: 3 -> 4 (a multiple of 4 devices)",
        "janus-jax: controller.num_envs: 2 -> 4 (a multiple of 4 devices)",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["world_model"]["mdn_batch_size"] == 4
    assert config["world_model"]["vae_batch_size"] == 32  # split already
    assert config["controller"]["num_envs"] == 4
    summary = json.loads((out / "summary.json").read_text())
    rounding = summary["device_rounding"]
    assert rounding["devices"] == 4
    assert [(c["name"], c["before"], c["after"]) for c in rounding["changed"]] == [
        ("world_model.mdn_batch_size", 3, 4),
        ("controller.num_envs", 2, 4),
    ]
    assert summary["controller_env_steps"] == 4 * 32  # 4 envs really stepped
