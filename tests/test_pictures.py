"""Pictures read back from disk and compared with positions computed here, and the
episodes and dreams they show checked against CartPole's physics and M replayed."""

import json

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments.classic_control.cartpole import EnvState
from PIL import Image, ImageSequence

from janus_jax import MDNRNNConfig, NetworkConfig, VAEConfig, WorldModelAgent
from janus_jax.envs import make
from janus_jax.models import mdn_rnn, vae
from janus_jax.pictures import (
    dream_gif,
    learning_curves,
    open_loop_dream,
    reconstruction_grid,
    record_episode,
)
from janus_jax.pictures.drawing import _PALETTE, training_returns
from janus_jax.run.metrics_log import read_metrics

GAP, GRAY = 2, 128


def solid_frames(colours, height, width):
    """[N, H, W, 3] uint8 frames, frame i filled with colours[i]."""
    colours = np.asarray(colours, np.uint8)
    return np.broadcast_to(colours[:, None, None, :], (len(colours), height, width, 3))


def distinct_colours(n, seed):
    rng = np.random.default_rng(seed)
    # Avoid the gap gray so a misplaced gap cannot pass for a tile.
    colours = rng.integers(0, 256, (4 * n, 3))
    colours = colours[np.abs(colours - GRAY).max(axis=1) > 10]
    return np.unique(colours, axis=0)[:n].astype(np.uint8)


def read_png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def read_gif(path):
    with Image.open(path) as image:
        info = dict(image.info)
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(image)]
    return np.stack(frames), info


def test_grid_puts_each_real_frame_above_its_reconstruction(tmp_path):
    n, height, width, columns = 5, 4, 6, 3
    colours = distinct_colours(2 * n, seed=0)
    real = solid_frames(colours[:n], height, width)
    recon = solid_frames(colours[n:], height, width)
    path = reconstruction_grid(real, recon, tmp_path / "grid.png", columns=columns)
    assert path == tmp_path / "grid.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.png"]
    image = read_png(path)
    # Two pairs of rows (5 frames, 3 per row), gaps only between tiles.
    assert image.shape == (4 * height + 3 * GAP, 3 * width + 2 * GAP, 3)
    covered = np.zeros(image.shape[:2], bool)
    for i in range(n):
        y_real = (2 * (i // columns)) * (height + GAP)
        y_recon = y_real + height + GAP
        x = (i % columns) * (width + GAP)
        for y, colour in ((y_real, colours[i]), (y_recon, colours[n + i])):
            np.testing.assert_array_equal(
                image[y : y + height, x : x + width], np.broadcast_to(colour, (4, 6, 3))
            )
            covered[y : y + height, x : x + width] = True
    # Everything else (gaps and the two empty slots) is mid-gray.
    assert (image[~covered] == GRAY).all()


def test_grid_clips_floats_and_renders_gray_frames(tmp_path):
    real = np.array([-0.5, 0.25, 1.7]).reshape(3, 1, 1, 1) * np.ones((3, 2, 2, 1))
    recon = np.array([0, 100, 255], np.uint8).reshape(3, 1, 1, 1) * np.ones(
        (3, 2, 2, 1), np.uint8
    )
    image = read_png(
        reconstruction_grid(real, recon.astype(np.float32) / 255, tmp_path / "g.png")
    )
    assert image.shape == (2 * 2 + GAP, 3 * 2 + 2 * GAP, 3)
    for i, (expected_real, expected_recon) in enumerate(
        zip([0, 64, 255], [0, 100, 255], strict=True)
    ):
        x = i * (2 + GAP)
        assert (image[0:2, x : x + 2] == expected_real).all()
        assert (image[2 + GAP : 4 + GAP, x : x + 2] == expected_recon).all()


def test_grid_of_vectors_is_a_png(tmp_path):
    rng = np.random.default_rng(1)
    real = rng.normal(size=(12, 5))
    path = reconstruction_grid(real, real + 0.1, tmp_path / "v.png", columns=3)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > image.height > 50


@pytest.mark.parametrize(
    ("real", "recon", "columns", "match"),
    [
        (np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 5, 3)), 8, r"recon has shape"),
        (np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 3)), 0, r"columns=0.*>= 1"),
        (np.zeros((2, 4, 4, 3)), np.zeros((2, 4, 4, 3)), 2.0, r"columns=2\.0"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), 8, r"real has shape \(2, 4, 4\)"),
        (np.zeros((2, 4, 4, 3), np.int32),) * 2 + (8, r"real has dtype int32"),
    ],
)
def test_grid_rejects_bad_input(tmp_path, real, recon, columns, match):
    with pytest.raises(ValueError, match=match):
        reconstruction_grid(real, recon, tmp_path / "g.png", columns=columns)
    assert list(tmp_path.iterdir()) == []


def test_dream_gif_panels_are_upscaled_frames(tmp_path):
    height, width, scale = 5, 7, 3
    rng = np.random.default_rng(2)
    palette = distinct_colours(6, seed=3)  # few colours: GIF palettes stay exact
    # Lengths 6, 5, 4: the dream is the shortest and sets the frame count.
    real = palette[rng.integers(0, 6, (6, height, width))]
    recon = palette[rng.integers(0, 6, (5, height, width))]
    dream = palette[rng.integers(0, 6, (4, height, width))]
    # A float reconstruction beside uint8 frames must not be rescaled twice.
    path = dream_gif(
        real, recon / 255.0, dream, tmp_path / "d.gif", fps=10, scale=scale
    )
    frames, info = read_gif(path)
    assert frames.shape[0] == 4
    assert frames.shape[2] == (3 * width + 2 * GAP) * scale
    caption = frames.shape[1] - height * scale
    assert caption > 5
    assert info["loop"] == 0 and info["duration"] == 100
    for t in range(4):
        for k, sequence in enumerate((real, recon, dream)):
            x = k * (width + GAP) * scale
            expected = sequence[t].repeat(scale, axis=0).repeat(scale, axis=1)
            np.testing.assert_array_equal(
                frames[t, caption:, x : x + width * scale], expected
            )
        gap = frames[t, caption:, width * scale : (width + GAP) * scale]
        assert (gap == GRAY).all()
    # The caption strip holds text, not one flat colour.
    assert len(np.unique(frames[0, :caption].reshape(-1, 3), axis=0)) > 1


def test_dream_gif_accepts_gray_float_frames(tmp_path):
    values = np.array([-0.2, 0.5, 1.2])  # clipped to 0, 0.5, 1
    real = values.reshape(3, 1, 1, 1) * np.ones((3, 4, 4, 1))
    frames, _ = read_gif(dream_gif(real, real, real, tmp_path / "g.gif", scale=1))
    assert frames.shape[0] == 3
    for t, expected in enumerate([0, 128, 255]):
        assert (frames[t, -4:, :4] == expected).all()


def test_dream_gif_of_vectors_has_one_frame_per_step(tmp_path):
    rng = np.random.default_rng(4)
    real = rng.normal(size=(5, 3))
    frames, _ = read_gif(
        dream_gif(real, real * 0.5, rng.normal(size=(7, 3)), tmp_path / "v.gif")
    )
    assert frames.shape[0] == 5
    assert frames.shape[1] > 50 and frames.shape[2] > 50


@pytest.mark.parametrize(
    ("dream", "kwargs", "match"),
    [
        (np.zeros((3, 4, 5, 3)), {}, r"shapes .*\(3, 4, 5, 3\).*must match"),
        (np.zeros((3, 4, 4, 3)), {"scale": 0}, r"scale=0"),
        (np.zeros((3, 4, 4, 3)), {"fps": 0}, r"fps=0"),
        (np.zeros((3, 4)), {}, r"must match"),
    ],
)
def test_dream_gif_rejects_bad_input(tmp_path, dream, kwargs, match):
    real = np.zeros((3, 4, 4, 3))
    with pytest.raises(ValueError, match=match):
        dream_gif(real, real, dream, tmp_path / "d.gif", **kwargs)


def write_metrics(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def run_rows(with_ppo):
    rows = [{"phase": "random", "step": 0, "random/return_mean": 20.0}]
    for step in range(3):
        rows.append(
            {"phase": "vae", "step": step, "vae/loss": 3.0 - step, "vae/kl": 0.1}
        )
        rows.append(
            {"phase": "mdn", "step": step, "mdn/loss": 2.0, "mdn/done_bce": 0.5}
        )
    for step in range(4):
        row = {
            "phase": "controller",
            "step": step,
            "real_env_steps": 100 * step,
            "real/episode_return": 10.0 * step,
            "mdn/loss": 1.0,
            "note": "ignored text",
        }
        if with_ppo:
            row |= {"ppo/policy_loss": -0.1 * step, "ppo/entropy": 0.6}
        rows.append(row)
    rows.append(
        {
            "phase": "eval",
            "step": 3,
            "real_env_steps": 300,
            "eval/return_mean": 35.0,
            "eval/return_std": 4.0,
        }
    )
    return rows


@pytest.mark.parametrize(
    ("with_ppo", "expected"),
    [
        (True, ["ppo.png", "returns.png", "world_model_losses.png"]),
        (False, ["returns.png", "world_model_losses.png"]),
    ],
)
def test_learning_curves_writes_one_png_per_kind_of_data(tmp_path, with_ppo, expected):
    metrics = write_metrics(tmp_path / "metrics.jsonl", run_rows(with_ppo))
    out_dir = tmp_path / "plots" / "nested"
    paths = learning_curves(read_metrics(metrics), out_dir, str(metrics))
    assert sorted(p.name for p in paths) == expected
    assert sorted(p.name for p in out_dir.iterdir()) == expected
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 100


def test_learning_curves_skips_plots_without_data(tmp_path):
    rows = [
        {"phase": "vae", "step": 0, "vae/loss": 1.0, "ppo/entropy": "not a number"},
        {"phase": "random", "step": 0, "random/return_mean": 5.0},
    ]
    paths = learning_curves(rows, tmp_path)
    assert [p.name for p in paths] == ["world_model_losses.png"]


def test_read_metrics_reports_missing_file_and_bad_line(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_metrics(missing)
    metrics = tmp_path / "m.jsonl"
    metrics.write_text('{"phase": "vae", "step": 0}\n\n{"phase": oops}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:? line 3"):
        read_metrics(metrics)
    metrics.write_text('{"phase": "vae", "step": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:? line 2"):
        read_metrics(metrics)


@pytest.mark.parametrize(
    "row", [{"step": 0, "vae/loss": 1.0}, {"phase": "vae", "step": "0"}, {"phase": 1}]
)
def test_learning_curves_names_the_source_and_row_without_phase_and_step(tmp_path, row):
    rows = [{"phase": "vae", "step": 0, "vae/loss": 1.0}, row]
    with pytest.raises(ValueError, match=r"m\.jsonl row 2 .*'phase'.*'step'"):
        learning_curves(rows, tmp_path / "out", source="m.jsonl")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_layered_frames_get_one_colour_per_channel(tmp_path):
    # MinAtar-style frames: 4 binary layers. A pixel lit in layer c alone must
    # show palette colour c; an unlit pixel stays black.
    frames = np.zeros((1, 2, 2, 4), np.float32)
    frames[0, 0, 0, 0] = 1.0
    frames[0, 0, 1, 2] = 1.0
    path = reconstruction_grid(frames, frames, tmp_path / "layers.png", columns=1)
    pixels = np.asarray(Image.open(path).convert("RGB"))
    # The real frame is the grid's top-left corner (gaps lie between frames).
    np.testing.assert_array_equal(pixels[0, 0], _PALETTE[0].astype(np.uint8))
    np.testing.assert_array_equal(pixels[0, 1], _PALETTE[2].astype(np.uint8))
    np.testing.assert_array_equal(pixels[1, 0], [0, 0, 0])


# --- what the pictures show: an episode of C and M's open-loop dream of it -------


def _agent_params(predict_reward=True):
    agent = WorldModelAgent(
        (4,),
        2,
        vae_config=VAEConfig(observation_size=4, latent_dim=3),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=3,
            action_dim=2,
            hidden_dim=8,
            num_mixtures=2,
            predict_reward=predict_reward,
        ),
        controller_config=NetworkConfig(layer_sizes=(8,)),
    )
    return agent.params


def _cartpole_next_obs(obs, action):
    """Returns gymnax CartPole's next observation, by its own physics, per row."""
    env, params = gymnax.make("CartPole-v1")

    def step(o, a):
        state = EnvState(time=0, x=o[0], x_dot=o[1], theta=o[2], theta_dot=o[3])
        return env.step_env(jax.random.key(0), state, a, params)[0]

    return np.asarray(jax.vmap(step)(jnp.asarray(obs), jnp.asarray(action)))


@pytest.mark.parametrize("family", ["gymnax", "gymnasium"])
def test_record_episode_is_the_first_episode_cut_at_its_end(family):
    params, limit = _agent_params(), 5
    if family == "gymnax":
        kwargs = {"env_params": {"max_steps_in_episode": limit}}
    else:
        kwargs = {"family": "gymnasium", "max_episode_steps": limit}
    with make("CartPole-v1", **kwargs) as env:
        assert env.num_envs == 1 and env.spec.family == family
        frames, actions = record_episode(jax.random.key(0), env, params, 12)
        first, first_actions = record_episode(jax.random.key(0), env, params, 3)
    # The pole cannot fall in 5 steps: the episode is cut by its time limit, with
    # its last (pre-reset) frame, not the next episode's first.
    chex.assert_shape(frames, (limit + 1, 4))
    chex.assert_shape(actions, (limit,))
    assert np.abs(frames[0]).max() <= 0.05  # a fresh reset
    np.testing.assert_allclose(
        _cartpole_next_obs(frames[:-1], actions), frames[1:], rtol=1e-5, atol=1e-6
    )
    # Fewer steps than the episode: the same start, cut at num_steps.
    np.testing.assert_array_equal(first, frames[:4])
    np.testing.assert_array_equal(first_actions, actions[:3])


@pytest.mark.parametrize("predict_reward", [True, False])
def test_open_loop_dream_decodes_m_fed_the_real_actions(predict_reward):
    # At tau = 0, z_{t+1} is the mean of M's most likely component given (z_t, a_t):
    # computed here step by step, then decoded.
    params = _agent_params(predict_reward)
    first = jnp.array([0.01, -0.02, 0.03, 0.0])
    actions = jnp.array([1, 0, 0, 1, 1], jnp.int32)
    dreamed = open_loop_dream(
        jax.random.key(0), params, first, actions, jnp.float32(0.0)
    )
    latent = vae.get_latent(params.vae, first[None])
    latents = [latent]
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (1,))
    for action in actions:
        action_vector = jax.nn.one_hot(action[None], 2)
        carry, out = mdn_rnn.step(params.mdn_rnn, carry, latent, action_vector)
        best = np.argmax(np.asarray(out.mixture_logits), -1)[..., None]
        latent = np.take_along_axis(np.asarray(out.means), best, -1)[..., 0]
        latents.append(latent)
    want = vae.decode(params.vae, jnp.concatenate(latents))
    chex.assert_shape(dreamed, (6, 4))
    np.testing.assert_allclose(dreamed, want, rtol=1e-5, atol=1e-5)


def test_training_returns_skip_chunks_in_which_no_episode_ended():
    rows = [
        {
            "phase": "controller",
            "step": 1,
            "real_env_steps": 100,
            "real/episode_return": 0.0,
            "real/episodes": 0.0,
        },
        {
            "phase": "controller",
            "step": 2,
            "real_env_steps": 200,
            "real/episode_return": -31.5,
            "real/episodes": 2.0,
        },
        {
            "phase": "controller",
            "step": 3,
            "real_env_steps": 300,
            "real/episode_return": 0.0,
            "real/episodes": 0.0,
        },
        {
            "phase": "controller",
            "step": 4,
            "real_env_steps": 400,
            "real/episode_return": 0.0,
            "real/episodes": 1.0,
        },  # a true 0
        # a log written before real/episodes existed keeps its rows
        {
            "phase": "controller",
            "step": 5,
            "real_env_steps": 500,
            "real/episode_return": 12.0,
        },
        {"phase": "eval", "step": 6, "real_env_steps": 500, "eval/return_mean": 3.0},
    ]
    np.testing.assert_array_equal(
        training_returns(rows), [[200, -31.5], [400, 0.0], [500, 12.0]]
    )
