"""Evaluation in the real environment: the return of whole episodes, for the
controller acting on [z, h] or for a uniformly random policy (the baseline every
summary reports beside it). One loop for every env: chunks of the env's
rollout until each env has finished its first episode."""

from __future__ import annotations

import jax
import numpy as np

from janus_jax import agent
from janus_jax.envs import RandomPolicy, compiled
from janus_jax.imagination import WorldModelParams
from janus_jax.models import mdn_rnn
from janus_jax.run.metrics_log import Progress

# Episodes of envs without a time limit are cut here (MinAtar's is 100,000 steps).
DEFAULT_MAX_STEPS = 10_000
CHUNK_STEPS = 256
# At most this many envs are stepped at once (more episodes run in rounds).
MAX_EVAL_ENVS = 64


def first_returns(chunk, done: np.ndarray, returns: np.ndarray) -> None:
    """Writes into ``returns`` [E] the return of each env's first episode to end
    in ``chunk`` (a Transition [T, E] of numpy arrays), unless ``done`` [E]
    already says it had one; updates ``done``."""
    ended = np.logical_or(chunk.terminated, chunk.truncated)
    for e in np.flatnonzero(~done & ended.any(axis=0)):
        returns[e] = chunk.episode_return[np.argmax(ended[:, e]), e]
        done[e] = True


def _one_round(run, env, params, key, max_steps: int, length: int) -> np.ndarray:
    """Returns the first-episode return [E] of each of the env's E envs, running
    chunks of ``length`` steps; episodes still running after ``max_steps``
    (rounded up to whole chunks) count what they earned so far."""
    start_key, key = jax.random.split(key)
    carry = None  # a random policy, or C without M, carries nothing
    if params is not None and params.mdn_rnn is not None:
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    state = env.start(start_key, carry)
    done = np.zeros(env.num_envs, bool)
    returns = np.zeros(env.num_envs)
    steps = 0
    while steps < max_steps and not done.all():
        state, chunk = run(params, state, jax.random.fold_in(key, steps))
        first_returns(jax.device_get(chunk), done, returns)
        steps += length
    running = np.asarray(state.episode_return)
    return np.where(done, returns, running)


def episode_returns(
    key: jax.Array,
    env,
    params: WorldModelParams | None,
    num_episodes: int,
    *,
    deterministic: bool = True,
    max_steps: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Returns the undiscounted return [N] of N episodes, the first episode of
    each env, ``env.num_envs`` at a time.

    params None evaluates a uniformly random policy. The controller acts on
    [z, h] with M's carry reset at the start (argmax / mean actions when
    ``deterministic``). Episodes still running after ``max_steps`` (default: the
    env's time limit, else 10,000) count what they earned. A progress bar shows
    the rounds when ``progress``.
    """
    if max_steps is None:
        max_steps = env.spec.max_episode_steps or DEFAULT_MAX_STEPS
    max_steps = min(max_steps, DEFAULT_MAX_STEPS * 10)
    if params is None:
        policy = RandomPolicy(env.spec.action)
    else:
        policy = agent.act_greedy if deterministic else agent.act
    length = min(CHUNK_STEPS, max_steps)
    run = compiled(env, policy, length)
    returns = []
    bar = Progress(num_episodes, desc="evaluate", unit="ep", enabled=progress)
    for round_index in range(-(-num_episodes // env.num_envs)):
        round_key = jax.random.fold_in(key, round_index)
        total = _one_round(run, env, params, round_key, max_steps, length)
        wanted = min(env.num_envs, num_episodes - len(returns))
        returns.extend(total.tolist())
        bar.update(wanted, ret=total.mean())
    bar.close()
    return np.asarray(returns[:num_episodes])
