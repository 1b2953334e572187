"""What V keeps of a frame and what M's reward and done heads catch, measured on
real steps: the numbers that say whether the representation or the model
bounds a score, before anything is changed.

- **V per channel** (binary frames such as MinAtar's): V's reconstruction of
  each real frame, thresholded at 0.5, against the frame: precision and recall
  of the set cells of each channel (MinAtar Breakout: paddle, ball, trail,
  bricks). A loss averages over the 400 cells and hides a ball V never draws;
  a channel's recall does not.
- **M's heads on the rare events**: fed the real z_t, a_t and its own carry
  (teacher forcing, the way C sees M while acting), M's reward prediction at
  the steps that paid (brick hits) and its done probability at the steps that
  ended the episode (a lost ball): recall at 0.5, precision, and a calibration
  table of the done head (predicted probability against the observed rate).
"""

from __future__ import annotations

import jax
import numpy as np

from janus_jax import agent
from janus_jax.envs import compiled
from janus_jax.imagination import WorldModelParams
from janus_jax.models import controller, mdn_rnn, vae

# Edges of the done head's calibration bins (probabilities).
CALIBRATION_EDGES = (0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
# Channel names of the MinAtar games whose frames are known here.
CHANNELS = {
    "Breakout-MinAtar": ("paddle", "ball", "trail", "brick"),
    "Asterix-MinAtar": ("player", "enemy", "trail", "gold"),
    "Freeway-MinAtar": (
        "chicken",
        "car",
        "speed1",
        "speed2",
        "speed3",
        "speed4",
        "speed5",
    ),
}


def binary_scores(truth: np.ndarray, predicted: np.ndarray, threshold: float = 0.5):
    """Returns one dict per channel (the last axis) of binary ``truth`` [..., C]
    against ``predicted`` [..., C] (set where >= ``threshold``): the set cells
    of the truth (``positives``), the predicted ones, precision (None without a
    prediction) and recall (None without a positive)."""
    truth = np.asarray(truth).astype(bool)
    guess = np.asarray(predicted) >= threshold
    if truth.shape != guess.shape:
        raise ValueError(
            f"truth has shape {truth.shape} and predicted {guess.shape}: they must "
            "match"
        )
    axes = tuple(range(truth.ndim - 1))
    hits = np.sum(truth & guess, axis=axes)
    positives = np.sum(truth, axis=axes)
    predictions = np.sum(guess, axis=axes)
    return [
        {
            "positives": int(p),
            "predicted": int(q),
            "precision": float(h / q) if q else None,
            "recall": float(h / p) if p else None,
        }
        for h, p, q in zip(hits, positives, predictions, strict=True)
    ]


def event_scores(events: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Returns recall and precision of the steps whose ``scores`` reach
    ``threshold`` as a detector of ``events`` (bool [N]), with the counts and
    the mean score on and off the events."""
    events = np.asarray(events, bool).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    [cell] = binary_scores(events[:, None], (scores >= threshold)[:, None], 0.5)
    cell["events"] = cell.pop("positives")
    cell["mean_on_events"] = float(scores[events].mean()) if events.any() else None
    cell["mean_elsewhere"] = float(scores[~events].mean()) if (~events).any() else None
    return cell


def calibration(
    probabilities: np.ndarray, outcomes: np.ndarray, edges=CALIBRATION_EDGES
) -> list[dict]:
    """Returns one row per bin [edges[i], edges[i+1]) of ``probabilities`` (the
    last bin closed): the steps in it, their mean probability and the observed
    rate of ``outcomes`` (None for an empty bin)."""
    p = np.asarray(probabilities, np.float64).ravel()
    y = np.asarray(outcomes, bool).ravel()
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for i in range(len(edges) - 1):
        inside = index == i
        count = int(inside.sum())
        rows.append(
            {
                "low": edges[i],
                "high": edges[i + 1],
                "steps": count,
                "mean_probability": float(p[inside].mean()) if count else None,
                "observed_rate": float(y[inside].mean()) if count else None,
            }
        )
    return rows


@jax.jit
def _heads(params: WorldModelParams, info, action):
    """Returns (V's reconstructions, M's reward and done probability) of each
    recorded step [T, E]."""
    recon = vae.decode(params.vae, info.latent)
    _, out = mdn_rnn.step(params.mdn_rnn, info.carry, info.latent, action)
    return recon, out.reward, jax.nn.sigmoid(out.done_logit)


def measure(
    key: jax.Array, env, params: WorldModelParams, num_steps: int = 1000
) -> dict:
    """Returns the report (see the module docstring) from ``num_steps`` real
    steps of each of ``env``'s envs, C sampling its actions."""
    spec = env.spec
    carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    state = env.start(jax.random.fold_in(key, 1), carry)
    _, steps = compiled(env, agent.act, num_steps)(params, state, key)
    c_params = params.controller
    action = controller.encode_action(spec.action, steps.action, c_params.task)
    recon, reward, done = jax.device_get(_heads(params, steps.info, action))
    steps = jax.device_get(steps)
    obs = np.asarray(steps.obs)
    report: dict = {
        "env_id": spec.env_id,
        "real_steps": int(obs.shape[0] * obs.shape[1]),
    }
    if obs.ndim == 5 and np.isin(obs, (0, 1)).all():  # binary frames [T, E, H, W, C]
        names = CHANNELS.get(spec.env_id, ())
        cells = binary_scores(obs, np.asarray(recon))
        report["vae_channels"] = {
            names[c] if c < len(names) else f"channel {c}": cell
            for c, cell in enumerate(cells)
        }
    report["vae_frame_mse"] = float(np.mean((np.asarray(recon) - obs) ** 2))
    real_reward = np.asarray(steps.reward)
    report["reward_head"] = event_scores(real_reward > 0, reward, 0.5)
    report["reward_head"]["mse"] = float(np.mean((reward - real_reward) ** 2))
    ended = np.asarray(steps.terminated)
    report["done_head"] = event_scores(ended, done, 0.5)
    report["done_head"]["calibration"] = calibration(done, ended)
    report["done_head"]["brier"] = float(np.mean((done - ended) ** 2))
    return report
