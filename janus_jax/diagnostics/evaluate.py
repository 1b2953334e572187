"""Evaluation in the real environment: the return and length of whole episodes,
for the controller acting on [z, h] or for a uniformly random policy (the
baseline every summary reports beside it). One loop for every env: chunks of
the env's rollout until each env has finished its first episode.

An env that resets to one state (gymnax's SpaceInvaders-MinAtar) played by the
mode policy gives the same episode every time: its N episodes are one
trajectory, and their standard deviation of 0 says nothing about the policy.
``Evaluation.distinct`` counts the different (return, length) pairs so the run
can say so (``single_trajectory_notice``)."""

from __future__ import annotations

from typing import NamedTuple

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
# A mode evaluation with at most one distinct episode in FEW gets a notice.
FEW = 8


class Evaluation(NamedTuple):
    """N evaluation episodes, each the first episode of one env."""

    returns: np.ndarray  # [N] float64: undiscounted return
    lengths: np.ndarray  # [N] int64: env steps (a cut episode: the steps it ran)

    @property
    def distinct(self) -> int:
        """Returns how many different (return, length) pairs the episodes have."""
        return distinct_episodes(self.returns, self.lengths)

    @property
    def single_trajectory(self) -> bool:
        """Returns whether two or more episodes were all the same episode."""
        return len(self.returns) > 1 and self.distinct == 1


def distinct_episodes(returns, lengths) -> int:
    """Returns the number of different (return, length) pairs in ``returns`` [N]
    and ``lengths`` [N]: 1 when every episode earned the same in as many steps.

    Returns are compared exactly: replaying one trajectory reproduces its
    float sums bit for bit, and different trajectories that tie on both are
    what this count is meant to merge."""
    returns, lengths = np.asarray(returns, np.float64), np.asarray(lengths)
    if returns.shape != lengths.shape or returns.ndim != 1:
        raise ValueError(
            f"returns {returns.shape} and lengths {lengths.shape} are invalid: "
            "must be two vectors of one length"
        )
    pairs = np.stack([returns, lengths.astype(np.float64)], axis=1)
    return int(len(np.unique(pairs, axis=0)))


def single_trajectory_notice(evaluation: Evaluation, deterministic: bool) -> str:
    """Returns the one line a run prints when ``evaluation``'s episodes were all
    one trajectory (deterministic: they were played by the mode policy), or,
    played by the mode policy, only a few (at most one in ``FEW`` episodes
    distinct: gymnax's Breakout starts the ball one of two ways, so 32 mode
    episodes are 2 trajectories); else an empty string."""
    n = len(evaluation.returns)
    if not evaluation.single_trajectory:
        if deterministic and n > 1 and evaluation.distinct * FEW <= n:
            return (
                f"evaluation: the {n} episodes were only {evaluation.distinct} "
                "distinct trajectories (the env resets to few states and the mode "
                "policy is deterministic), so their mean weighs a few episodes "
                "and their std says little; evaluate with sampled actions: --set "
                "controller.eval_policy=sample, or janus-jax evaluate --policy "
                "sample"
            )
        return ""
    if deterministic:
        return (
            f"evaluation: all {n} episodes were one trajectory (the env resets to "
            "one state and the mode policy is deterministic), so their mean is one "
            "episode's return and their std says nothing; evaluate with sampled "
            "actions: --set controller.eval_policy=sample, or janus-jax evaluate "
            "--policy sample"
        )
    return (
        f"evaluation: all {n} episodes were one trajectory although actions were "
        "sampled (the env resets to one state and C's action distribution is "
        "nearly deterministic), so their std says nothing"
    )


def first_episodes(
    chunk,
    done: np.ndarray,
    returns: np.ndarray,
    lengths: np.ndarray,
    offset: int,
) -> None:
    """Writes into ``returns`` [E] and ``lengths`` [E] the return and length of
    each env's first episode to end in ``chunk`` (a Transition [T, E] of numpy
    arrays whose step 0 is the env's step ``offset``), unless ``done`` [E]
    already says it had one; updates ``done``."""
    ended = np.logical_or(chunk.terminated, chunk.truncated)
    for e in np.flatnonzero(~done & ended.any(axis=0)):
        t = int(np.argmax(ended[:, e]))
        returns[e] = chunk.episode_return[t, e]
        lengths[e] = offset + t + 1
        done[e] = True


def _one_round(run, env, params, key, max_steps: int, length: int):
    """Returns (return [E], length [E]) of the first episode of each of the env's
    E envs, running chunks of ``length`` steps; episodes still running after
    ``max_steps`` (rounded up to whole chunks) count what they earned so far in
    the steps they ran. A chunk of host envs stops at the step on which the last
    env without an episode ends its first (the same steps, none after)."""
    start_key, key = jax.random.split(key)
    carry = None  # a random policy, or C without M, carries nothing
    if params is not None and params.mdn_rnn is not None:
        carry = mdn_rnn.initial_carry(params.mdn_rnn.config, (env.num_envs,))
    state = env.start(start_key, carry)
    done = np.zeros(env.num_envs, bool)
    returns = np.zeros(env.num_envs)
    lengths = np.zeros(env.num_envs, np.int64)
    steps = 0
    while steps < max_steps and not done.all():
        # Host envs stop once each env has ended (a compiled chunk runs whole)
        early = {} if env.spec.on_device else {"until_ended": ~done}
        state, chunk = run(params, state, jax.random.fold_in(key, steps), **early)
        first_episodes(jax.device_get(chunk), done, returns, lengths, steps)
        steps += length
    running = np.asarray(state.episode_return)
    return np.where(done, returns, running), np.where(done, lengths, steps)


def evaluate_episodes(
    key: jax.Array,
    env,
    params: WorldModelParams | None,
    num_episodes: int,
    *,
    deterministic: bool | str = True,
    max_steps: int | None = None,
    progress: bool = False,
) -> Evaluation:
    """Returns the Evaluation (return and length) of N episodes, the first
    episode of each env, ``env.num_envs`` at a time.

    params None evaluates a uniformly random policy. The controller acts on
    [z, h] with M's carry reset at the start (argmax / mode actions when
    ``deterministic``, the expected actions when it is "mean"). Episodes still
    running after ``max_steps`` (default: the env's time limit, else 10,000)
    count what they earned in the steps they ran.
    A progress bar shows the rounds when ``progress``.
    """
    if max_steps is None:
        max_steps = env.spec.max_episode_steps or DEFAULT_MAX_STEPS
    max_steps = min(max_steps, DEFAULT_MAX_STEPS * 10)
    if params is None:
        policy = RandomPolicy(env.spec.action)
    else:
        policy = {False: agent.act, True: agent.act_greedy, "mean": agent.act_mean}[
            deterministic
        ]
    length = min(CHUNK_STEPS, max_steps)
    run = compiled(env, policy, length)
    returns, lengths = [], []
    bar = Progress(num_episodes, desc="evaluate", unit="ep", enabled=progress)
    for round_index in range(-(-num_episodes // env.num_envs)):
        round_key = jax.random.fold_in(key, round_index)
        total, steps = _one_round(run, env, params, round_key, max_steps, length)
        wanted = min(env.num_envs, num_episodes - len(returns))
        returns.extend(total.tolist())
        lengths.extend(steps.tolist())
        bar.update(wanted, ret=total.mean())
    bar.close()
    return Evaluation(
        np.asarray(returns[:num_episodes]),
        np.asarray(lengths[:num_episodes], np.int64),
    )


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
    """Returns the undiscounted return [N] of N episodes: ``evaluate_episodes``'s
    returns, for callers that need no lengths."""
    return evaluate_episodes(
        key,
        env,
        params,
        num_episodes,
        deterministic=deterministic,
        max_steps=max_steps,
        progress=progress,
    ).returns
