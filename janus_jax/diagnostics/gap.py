"""The dream-vs-real gap of a trained agent, measured on its own real episodes.

C drives the real env (its mode actions, or sampled ones: ``policy``) and every
step's z_t = V(o_t), M's carry h_t and reward are kept: the gap is measured on
the episodes of the policy that is scored (a run's ``controller.eval_policy``).
From start steps s of those episodes:

- **Open-loop error at horizons k** (1, 10, 50): M is fed z_s, its carry h_s and
  the real actions a_s..a_{s+k-1}, never a later frame, and its mean
  prediction (temperature 0: the most likely component's mean) of z_{s+k} is
  compared with V(o_{s+k}), as latents and as V's decoded frames against the
  real frame. The baseline copies the last frame seen: z_s for z_{s+k}, o_s
  for o_{s+k}. A window must lie inside one episode.
- **Dreamed against real return**: C acts inside M for ``horizon`` steps from
  (z_s, h_s), rewards from M's heads, at each temperature tau of the paper's
  sweep; the real return is the next ``horizon`` real rewards. A window may end
  with a real termination (the dream should predict it) but not cross a
  truncation.

The tau sweep scores the one trained C inside dreams of each temperature; the
paper also trained a C at each tau, which this does not.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from janus_jax import agent
from janus_jax.config.training import EVAL_POLICIES, acting_as
from janus_jax.envs import compiled
from janus_jax.imagination import WorldModelParams, controller_act, imagine
from janus_jax.models import mdn_rnn, vae

HORIZONS = (1, 10, 50)
TEMPERATURES = (0.5, 1.0, 1.15, 1.3)


def window_starts(ended: np.ndarray, length: int, stride: int = 1) -> np.ndarray:
    """Returns the steps s (every ``stride``-th) of one env's record whose window
    s .. s+length-1 holds no episode end before its last step; ``ended`` [T]
    marks the steps after which an episode ended."""
    ended = np.asarray(ended, bool)
    t = len(ended)
    if length > t:
        return np.zeros(0, np.int64)
    # ends[s] = episode ends among steps s .. s+length-2
    prefix = np.concatenate([[0], np.cumsum(ended)])
    s = np.arange(0, t - length + 1)
    inside = prefix[s + length - 1] - prefix[s] == 0
    return s[inside & (s % stride == 0)]


def prediction_errors(
    predicted: np.ndarray, real: np.ndarray, first: np.ndarray, horizons
) -> dict[int, tuple[float, float]]:
    """Returns {k: (model MSE, copy-the-first MSE)} at each horizon k, where
    predicted and real are [S, K, ...] (step k-1 holds the prediction of s+k)
    and first [S, ...] is what was seen at s."""
    predicted, real = np.asarray(predicted, np.float64), np.asarray(real, np.float64)
    first = np.asarray(first, np.float64)
    out = {}
    for k in horizons:
        model = np.mean((predicted[:, k - 1] - real[:, k - 1]) ** 2)
        copy = np.mean((first - real[:, k - 1]) ** 2)
        out[k] = (float(model), float(copy))
    return out


def window_returns(
    rewards: np.ndarray, terminated: np.ndarray, starts: np.ndarray, horizon: int
) -> np.ndarray:
    """Returns each start s's real return over s .. s+horizon-1 of one env's
    record (rewards, terminated [T]), stopping after the first termination (the
    next steps belong to the episode the env reset into)."""
    index = np.asarray(starts)[:, None] + np.arange(horizon)  # [S, H]
    ended = np.maximum.accumulate(np.asarray(terminated, bool)[index], axis=1)
    alive = np.concatenate([np.ones((len(index), 1)), 1 - ended[:, :-1]], axis=1)
    return (np.asarray(rewards, np.float64)[index] * alive).sum(axis=1)


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Returns Pearson's r, or None where either side is constant."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


@jax.jit
def _open_loop(params: WorldModelParams, z0, carry0, actions):
    """Returns M's mean predictions [S, K, Z] given actions [K, S, ...]."""
    dream = imagine(jax.random.key(0), params, z0, carry0, None, 0.0, actions=actions)
    return jnp.swapaxes(dream.next_obs, 0, 1)


_decode = jax.jit(vae.decode)


@functools.partial(jax.jit, static_argnames=("horizon", "deterministic"))
def _dream_returns(
    key, params: WorldModelParams, z0, carry0, temperature, horizon, deterministic
):
    """Returns each start's dreamed return [S] of C's mode (``deterministic``)
    or sampled actions."""

    def c(key, feats):
        return controller_act(params.controller, key, feats, deterministic)

    dream = imagine(key, params, z0, carry0, horizon, temperature, policy=c)
    return jnp.sum(dream.reward * dream.mask, axis=0)


def _picks(ended: np.ndarray, length: int, stride: int) -> list[tuple[int, int]]:
    """Returns (env, start) of every window of ``length`` in records [T, E]."""
    return [
        (e, int(s))
        for e in range(ended.shape[1])
        for s in window_starts(ended[:, e], length, stride)
    ]


def _at(tree, steps: np.ndarray, envs: np.ndarray):
    """Returns the leaves [T, E, ...] of ``tree`` at (steps, envs) [S]."""
    return jax.tree.map(lambda x: x[steps, envs], tree)


def _frames_as_decoded(obs: np.ndarray) -> np.ndarray:
    """Returns observations in V's output space (pixels / 255)."""
    return obs.astype(np.float32) / 255.0 if obs.dtype == np.uint8 else obs


def measure(
    key: jax.Array,
    env,
    params: WorldModelParams,
    num_steps: int = 1000,
    horizons=HORIZONS,
    temperatures=TEMPERATURES,
    return_horizon: int = 50,
    stride: int = 10,
    dreams_per_start: int = 4,
    policy: str = "mode",
) -> dict:
    """Returns the gap report (see the module docstring) from ``num_steps`` real
    steps of each of ``env``'s envs, starts every ``stride`` steps, C acting by
    ``policy`` ("mode", "mean" or "sample") in the real env and in the dreams."""
    if policy not in EVAL_POLICIES:
        raise ValueError(
            f"policy={policy!r} is invalid: must be one of {EVAL_POLICIES}"
        )
    deterministic = acting_as(policy)
    run_key, dream_key = jax.random.split(key)
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    state = env.start(jax.random.fold_in(run_key, 1), carry)
    act = functools.partial(agent.act, deterministic=deterministic)
    _, steps = compiled(env, act, num_steps)(params, state, run_key)
    steps = jax.device_get(steps)
    ended = np.logical_or(steps.terminated, steps.truncated)  # [T, E]
    info = steps.info
    report: dict = {
        "policy": policy,
        "real_steps": int(num_steps * env.num_envs),
        "open_loop": {},
    }

    for k in horizons:
        picks = _picks(ended, k + 1, stride)
        report["open_loop"][str(k)] = {"starts": len(picks)}
        if not picks:
            continue
        env_i, s = np.array(picks).T
        offsets = s[:, None] + np.arange(1, k + 1)  # [S, k]: s+1 .. s+k
        z0 = info.latent[s, env_i]
        carry0 = _at(info.carry, s, env_i)
        actions = np.swapaxes(steps.action[offsets - 1, env_i[:, None]], 0, 1)
        latents = jax.device_get(_open_loop(params, z0, carry0, actions))
        real_z = info.latent[offsets, env_i[:, None]]
        z_err = prediction_errors(latents, real_z, z0, (k,))[k]
        # decoded only where measured: [S, k, 64, 64, 3] floats would not fit
        frames = np.asarray(_decode(params.vae, latents[:, k - 1]))[:, None]
        real_o = _frames_as_decoded(steps.obs[s + k, env_i])[:, None]
        first_o = _frames_as_decoded(steps.obs[s, env_i])
        o_err = prediction_errors(frames, real_o, first_o, (1,))[1]
        report["open_loop"][str(k)].update(
            latent_mse=z_err[0],
            latent_mse_copy_last=z_err[1],
            frame_mse=o_err[0],
            frame_mse_copy_last=o_err[1],
        )

    picks = _picks(steps.truncated, return_horizon, stride)
    report["returns"] = {"horizon": return_horizon, "starts": len(picks)}
    if not picks:
        return report
    env_i, s = np.array(picks).T
    real = np.concatenate(
        [
            window_returns(
                steps.reward[:, e],
                steps.terminated[:, e],
                s[env_i == e],
                return_horizon,
            )
            for e in range(env.num_envs)
        ]
    )
    z0 = np.repeat(info.latent[s, env_i], dreams_per_start, axis=0)
    carry0 = jax.tree.map(
        lambda c: np.repeat(c[s, env_i], dreams_per_start, axis=0), info.carry
    )
    report["returns"]["real_mean"] = float(real.mean())
    report["returns"]["dream"] = {}
    for tau in temperatures:
        dreamed = (
            jax.device_get(
                _dream_returns(
                    jax.random.fold_in(dream_key, int(tau * 1000)),
                    params,
                    z0,
                    carry0,
                    jnp.float32(tau),
                    return_horizon,
                    deterministic,
                )
            )
            .reshape(len(real), dreams_per_start)
            .mean(axis=1)
        )
        report["returns"]["dream"][str(tau)] = {
            "mean": float(dreamed.mean()),
            "mean_abs_gap": float(np.abs(dreamed - real).mean()),
            "correlation": _correlation(dreamed, real),
        }
    return report
