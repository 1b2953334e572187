"""How a results table reads a few seeds' evaluation curves: the return within a
budget, the real steps at which a smoothed curve crosses a threshold, and the
mean and interquartile mean over seeds with 95% bootstrap confidence intervals.

The intervals follow Agarwal et al. (NeurIPS 2021, "Deep RL at the Edge of the
Statistical Precipice") and their ``rliable`` library: the interquartile mean is
``scipy.stats.trim_mean(x, 0.25)`` (rliable's definition) and the interval is a
percentile bootstrap over seeds. ``scipy.stats.bootstrap`` computes it; scipy
comes with jax already, where rliable would add its own dependencies (arch,
seaborn, pandas...) for one env at a time, which is all this table needs.

A curve is (real env steps [K], evaluation returns [K]) of one seed, its
evaluations in order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.stats

CONFIDENCE = 0.95
RESAMPLES = 10_000
# A threshold is crossed when the mean of this many consecutive evaluations is.
SMOOTHING = 3
RULES = ("each", "mean")


class Estimate(NamedTuple):
    """A statistic over seeds and its 95% bootstrap interval (nan where fewer
    than two seeds leave nothing to resample)."""

    value: float
    low: float
    high: float


def mean(x, axis=-1):
    """Returns the mean of ``x`` along ``axis``."""
    return np.mean(x, axis=axis)


def iqm(x, axis=-1):
    """Returns the interquartile mean of ``x`` along ``axis``: the mean of what
    is left once ``int(n / 4)`` values are cut from each end (with 3 seeds
    nothing is cut, and it is the mean)."""
    return scipy.stats.trim_mean(x, 0.25, axis=axis)


def estimate(values, statistic=mean, *, seed: int = 0) -> Estimate:
    """Returns ``statistic`` (``mean`` or ``iqm``) of the finite ``values`` (one
    per seed) with its 95% percentile bootstrap interval over them.

    Percentile, as rliable's default: BCa's corrections are undefined when the
    seeds agree (as 500 on CartPole does) and unstable on three values. With
    three seeds the interval is the seeds' range: each value alone is drawn
    with probability 1/27 > 2.5%."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Estimate(math.nan, math.nan, math.nan)
    value = float(statistic(x))
    if x.size < 2:
        return Estimate(value, math.nan, math.nan)
    low, high = bootstrap_interval(x, statistic, seed=seed)
    return Estimate(value, float(low), float(high))


def bootstrap_interval(x: np.ndarray, statistic, *, seed: int = 0):
    """Returns (low [...], high [...]): the 95% percentile bootstrap interval of
    ``statistic`` over the last axis of ``x`` [..., seeds] (leading axes are
    separate samples: one interval per curve point)."""
    result = scipy.stats.bootstrap(
        (x,),
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        axis=-1,
        vectorized=True,
        # random_state, not rng: scipy < 1.15 (jax's older pins) lacks rng.
        random_state=np.random.default_rng(seed),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def at_budget(steps, returns, budget: int) -> float:
    """Returns the last evaluation within ``budget`` real steps (nan if none)."""
    steps, returns = np.asarray(steps), np.asarray(returns)
    within = steps <= budget
    return float(returns[within][-1]) if within.any() else math.nan


def smoothed(returns, window: int = SMOOTHING) -> np.ndarray:
    """Returns [K]: at each evaluation the mean of it and the ``window - 1``
    before it; nan until ``window`` evaluations exist."""
    returns = np.asarray(returns, np.float64)
    out = np.full(returns.shape, math.nan)
    if returns.size >= window:
        sums = np.convolve(returns, np.ones(window), mode="valid")
        out[window - 1 :] = sums / window
    return out


def first_crossing(steps, returns, threshold: float, window: int = SMOOTHING):
    """Returns the real steps of the first evaluation at which the mean of the
    last ``window`` evaluations reaches ``threshold`` (inf if none does)."""
    hit = np.flatnonzero(smoothed(returns, window) >= threshold)
    return float(np.asarray(steps)[hit[0]]) if hit.size else math.inf


def steps_to(curves, threshold: float, rule: str, window: int = SMOOTHING) -> float:
    """Returns the real steps at which the seeds' ``curves`` pass ``threshold``
    on the smoothed curve, or inf if they never do.

    Smoothed: at each evaluation, the mean of the last ``window`` (3)
    evaluations of that seed, so one lucky evaluation cannot decide it. Rule
    "each": every seed's smoothed curve must reach the threshold, the row's
    figure is the last seed's first crossing. Rule "mean": the first real step
    x, among all the seeds' evaluation steps, at which the mean over seeds of
    each seed's latest smoothed value within x reaches it (every seed must
    have ``window`` evaluations by then); where the seeds evaluate at the same
    steps this is the seeds' mean curve smoothed over its last ``window``
    points."""
    if rule not in RULES:
        raise ValueError(f"rule={rule!r} is invalid: must be one of {RULES}")
    if rule == "each":
        crossings = [first_crossing(s, r, threshold, window) for s, r in curves]
        return max(crossings) if crossings else math.inf
    smooth = [(np.asarray(s), smoothed(r, window)) for s, r in curves]
    grid = np.unique(np.concatenate([s for s, _ in smooth])) if smooth else []
    for x in grid:
        values = [at_budget(s, r, int(x)) for s, r in smooth]
        if not any(math.isnan(v) for v in values) and np.mean(values) >= threshold:
            return float(x)
    return math.inf
