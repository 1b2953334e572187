"""WorldModelAgent.imagine_trajectory as the seed's README uses it: raw frames of
the env's size, a custom reward function (compiled once per function object),
V's decoded frames, and the action encoding; rewards and latents checked
against NumPy computations of the same function and hand-made frames."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from janus_jax import WorldModelAgent
from janus_jax.config.models import MDNRNNConfig, NetworkConfig, VAEConfig
from janus_jax.envs import preprocess_frames
from janus_jax.models import vae

Z, N_ACTIONS = 3, 4
W_Z = np.array([0.5, -1.0, 2.0], np.float32)
W_A = np.array([1.0, 2.0, 3.0, 4.0], np.float32)


def _reward(z_t, a_t, z_next):
    """A reward only this function gives: tanh(w.z_t) + w_a.a_t - |z_next|^2."""
    return jnp.tanh(z_t @ W_Z) + a_t @ W_A - jnp.sum(z_next**2)


def _numpy_reward(z_t, a_t, z_next):
    return np.tanh(z_t @ W_Z) + a_t @ W_A - np.sum(z_next**2, axis=-1)


@functools.cache
def _vector_agent(continuous: bool = False) -> WorldModelAgent:
    bounds = dict(action_low=(-2.0, 0.0), action_high=(2.0, 1.0))
    return WorldModelAgent(
        (5,),
        2 if continuous else N_ACTIONS,
        continuous,
        vae_config=VAEConfig(observation_size=5, latent_dim=Z, hidden_sizes=(8,)),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=Z,
            action_dim=2 if continuous else N_ACTIONS,
            hidden_dim=8,
            num_mixtures=2,
        ),
        controller_config=NetworkConfig(layer_sizes=(8,)),
        seed=1,
        **(bounds if continuous else {}),
    )


@functools.cache
def _image_agent() -> WorldModelAgent:
    """An agent made for 64x64x3 frames, small enough to compile quickly."""
    return WorldModelAgent(
        (64, 64, 3),
        3,
        True,
        vae_config=VAEConfig(
            input_channels=3,
            input_height=64,
            input_width=64,
            latent_dim=4,
            hidden_channels=(4, 8),
        ),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=4, action_dim=3, hidden_dim=8, num_mixtures=2
        ),
        controller_config=NetworkConfig(layer_sizes=(8,)),
        seed=2,
    )


def test_a_reward_fn_scores_every_dreamed_step_as_numpy_says():
    agent = _vector_agent()
    start = np.linspace(-1.0, 1.0, 10, dtype=np.float32).reshape(2, 5)
    key = jax.random.key(3)
    mine = agent.imagine_trajectory(start, 12, key=key, reward_fn=_reward)
    heads = agent.imagine_trajectory(start, 12, key=key)
    # Same key, same dream: only the rewards differ.
    np.testing.assert_array_equal(mine["latents"], heads["latents"])
    np.testing.assert_array_equal(mine["actions"], heads["actions"])
    one_hot = np.eye(N_ACTIONS, dtype=np.float32)[np.asarray(mine["actions"])]
    want = _numpy_reward(
        np.asarray(mine["latents"]), one_hot, np.asarray(mine["next_latents"])
    )
    np.testing.assert_allclose(mine["rewards"], want * mine["mask"], rtol=1e-5)
    assert not np.allclose(mine["rewards"], heads["rewards"])


def test_one_reward_function_compiles_once_and_two_compile_twice():
    agent = WorldModelAgent(
        (5,),
        N_ACTIONS,
        vae_config=VAEConfig(observation_size=5, latent_dim=Z, hidden_sizes=(8,)),
        mdn_rnn_config=MDNRNNConfig(
            latent_dim=Z, action_dim=N_ACTIONS, hidden_dim=8, num_mixtures=2
        ),
        seed=0,
    )
    calls = {"first": 0, "second": 0}

    def first(z_t, a_t, z_next):
        calls["first"] += 1  # Python runs this only while JAX traces
        return jnp.sum(z_t)

    def second(z_t, a_t, z_next):
        calls["second"] += 1
        return jnp.sum(z_next)

    start = np.zeros(5, np.float32)
    for _ in range(3):
        agent.imagine_trajectory(start, 6, reward_fn=first)
    assert agent.imagine_traces == 1 and calls == {"first": 1, "second": 0}
    for fn in (second, first, second):
        agent.imagine_trajectory(start, 6, reward_fn=fn)
    assert agent.imagine_traces == 2 and calls == {"first": 1, "second": 1}


def test_discrete_actions_come_back_as_indices_and_continuous_in_the_box():
    discrete = _vector_agent().imagine_trajectory(np.zeros(5), 20)
    actions = np.asarray(discrete["actions"])
    assert actions.shape == (20,) and actions.dtype == np.int32
    assert set(actions.tolist()) <= set(range(N_ACTIONS))
    continuous = _vector_agent(True).imagine_trajectory(np.zeros((3, 5)), 20)
    actions = np.asarray(continuous["actions"])
    assert actions.shape == (20, 3, 2)
    assert np.all(actions >= [-2.0, 0.0]) and np.all(actions <= [2.0, 1.0])


def test_a_raw_carracing_frame_is_resized_as_the_gymnasium_adapter_does():
    agent = _image_agent()
    frame = np.random.default_rng(0).integers(0, 256, (96, 96, 3), np.uint8)
    dream = agent.imagine_trajectory(frame, 3, key=jax.random.key(0))
    by_hand = preprocess_frames(jnp.asarray(frame)[None], (64, 64))
    want = vae.get_latent(agent.vae.params, by_hand)[0]
    np.testing.assert_allclose(dream["latents"][0], want, rtol=1e-5, atol=1e-6)
    # The adapter's crop (CarRacing's dashboard rows) too.
    crop = (0, 12, 0, 0)
    cropped = agent.imagine_trajectory(frame, 3, key=jax.random.key(0), crop=crop)
    by_hand = preprocess_frames(jnp.asarray(frame)[None], (64, 64), crop)
    want = vae.get_latent(agent.vae.params, by_hand)[0]
    np.testing.assert_allclose(cropped["latents"][0], want, rtol=1e-5, atol=1e-6)


def test_a_constant_frame_of_any_size_encodes_as_the_constant_64x64_frame():
    # Independent of the resize code: a flat colour stays that colour.
    agent = _image_agent()
    colour = np.array([200, 30, 90], np.uint8)
    big = np.broadcast_to(colour, (2, 96, 96, 3))
    small = np.broadcast_to(colour, (64, 64, 3))
    dream = agent.imagine_trajectory(big, 2, key=jax.random.key(1))
    want = vae.get_latent(agent.vae.params, jnp.asarray(small))
    np.testing.assert_allclose(dream["latents"][0, 0], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dream["latents"][0, 1], want, rtol=1e-5, atol=1e-6)


def test_decoded_frames_are_v_s_images_of_each_dreamed_latent():
    agent = _image_agent()
    frame = np.full((96, 96, 3), 120, np.uint8)
    dream = agent.imagine_trajectory(frame, 4, decode=True)
    frames = np.asarray(dream["frames"])
    assert frames.shape == (4, 64, 64, 3) and frames.dtype == np.float32
    assert frames.min() >= 0.0 and frames.max() <= 1.0
    # Frame t is V's decoding of z_t: the latents move, so the frames do.
    latents = np.asarray(dream["latents"])
    assert not np.allclose(latents[0], latents[1])
    assert not np.allclose(frames[0], frames[1])
    assert "frames" not in agent.imagine_trajectory(frame, 4)


class _Scorer(nn.Module):
    @nn.compact
    def __call__(self, z_t, a_t, z_next):
        return nn.Dense(1)(z_t)[..., 0]


def test_bad_dream_inputs_raise_value_error_naming_the_argument():
    agent = _image_agent()
    with pytest.raises(ValueError, match="uint8 with the same channels"):
        agent.imagine_trajectory(np.zeros((96, 96, 3), np.float32), 2)
    with pytest.raises(ValueError, match="uint8 with the same channels"):
        agent.imagine_trajectory(np.zeros((96, 96, 1), np.uint8), 2)
    with pytest.raises(ValueError, match="initial_obs has shape"):
        agent.imagine_trajectory(np.zeros((96, 96), np.uint8), 2)
    with pytest.raises(ValueError, match="temperature=-1"):
        agent.imagine_trajectory(np.zeros((64, 64, 3), np.uint8), 2, -1.0)
    with pytest.raises(ValueError, match="flax module without its parameters"):
        agent.imagine_trajectory(np.zeros(5), 2, reward_fn=_Scorer())
    with pytest.raises(ValueError, match="reward_fn=3 is invalid"):
        agent.imagine_trajectory(np.zeros(5), 2, reward_fn=3)
