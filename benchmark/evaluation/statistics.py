"""Statistics for honest comparisons: intervals for proportions, tests on paired episodes, survival.

These are the statistical tools a results table needs beyond `metrics.aggregate`'s percentile
bootstrap (groundwork for protocol v2; v1's numbers do not use them, so nothing v1 reports moves).
Each is a pure function; randomness comes only from an explicit ``rng``.

=================================  ==========================================================
``wilson_interval(k, n)``          score interval of a proportion k/n; never [0, 0] for 0/n
``clopper_pearson_interval(k, n)`` exact (conservative) binomial interval
``mcnemar_exact(b, c)``            two-sided exact p-value of paired binary outcomes, from the
                                   discordant counts b (only A fails) and c (only B fails)
``paired_bootstrap(x, y, rng)``    mean difference of paired values, percentile interval, and
                                   a two-sided bootstrap p-value
``sign_flip_test(x, y)``           exact two-sided p-value of paired values (all 2^n sign flips of
                                   the differences), for the few pairs a bootstrap p cannot resolve
``cluster_bootstrap(x, g, rng)``   mean with a percentile interval that resamples whole clusters
                                   (tracks), not episodes
``kaplan_meier(t, event)``         survival curve with Greenwood standard errors and a
                                   log(-log) confidence band
``power_two_proportions``          power of a two-sided test of p1 against p2 with n per arm
``loglog_slope(T, y)``             least-squares slope of log y on log T
=================================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def _counts(k: int, n: int) -> tuple[int, int]:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    return int(k), int(n)


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n: (low, high); (nan, nan) when n = 0.

    ``center = (p + z^2 / 2n) / (1 + z^2 / n)``, ``half = z sqrt(p (1 - p) / n + z^2 / 4n^2) / (1 + z^2 / n)``.
    """
    k, n = _counts(k, n)
    if n == 0:
        return math.nan, math.nan
    z = _z(confidence)
    p = k / n
    denominator = 1.0 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k/n from the beta quantiles: (low, high); (nan, nan) when n = 0."""
    k, n = _counts(k, n)
    if n == 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under H0 the b + c discordant pairs split as Binomial(b + c, 1/2).

    b: pairs where only method A failed; c: only method B failed. p = 1 without discordant pairs.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b}, {c}")
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * stats.binom.cdf(min(b, c), n, 0.5)))


def paired_discordance(failed_a: Sequence[bool], failed_b: Sequence[bool]) -> tuple[int, int]:
    """(b, c) of McNemar's test from paired outcomes: b = A failed and B did not, c = the reverse."""
    a, b_ = np.asarray(failed_a, bool), np.asarray(failed_b, bool)
    if a.shape != b_.shape:
        raise ValueError("paired outcomes must have the same length")
    return int(np.sum(a & ~b_)), int(np.sum(~a & b_))


@dataclass(frozen=True)
class PairedDifference:
    difference: float
    """mean(x - y) over the pairs."""
    low: float
    high: float
    p_value: float
    """Two-sided bootstrap p-value of H0: mean difference = 0."""
    n: int


def paired_bootstrap(x: Sequence[float], y: Sequence[float], rng: np.random.Generator, n_boot: int = 2000,
                     confidence: float = 0.95) -> PairedDifference:
    """Mean of the paired differences x_i - y_i with a percentile bootstrap interval (pairs resampled
    together) and the two-sided p-value 2 min(P*(diff <= 0), P*(diff >= 0)) of the bootstrap
    distribution shifted to the null (Efron and Tibshirani's recipe: resample d_i - mean(d))."""
    d = np.asarray(x, float) - np.asarray(y, float)
    if d.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    d = d[np.isfinite(d)]
    if d.size == 0:
        return PairedDifference(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(d.mean())
    idx = rng.integers(0, d.size, (n_boot, d.size))
    boots = d[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    null = (d - mean)[idx].mean(axis=1)
    # A draw as extreme as the observed mean counts, ties included: with 0/1 outcomes many draws equal it up to
    # the rounding of their sums (80 per-track differences of 0.0125 sum to just under 1), which `>=` alone misses.
    observed = abs(mean) - 1e-12 * max(1.0, abs(mean))
    p = float(min(1.0, 2.0 * min(np.mean(null >= observed), np.mean(null <= -observed))))
    if np.allclose(d, d[0]):  # no variation: the difference is exactly what it is
        p = 1.0 if mean == 0 else 0.0
    return PairedDifference(mean, float(low), float(high), p, int(d.size))


def sign_flip_test(x: Sequence[float], y: Sequence[float], max_pairs: int = 20) -> float:
    """Exact two-sided p-value of H0: the paired differences d_i = x_i - y_i are symmetric about 0: the
    share of the 2^n sign patterns of |d| whose mean is at least |mean(d)| in size (ties counted). With
    n pairs the smallest p is 2 / 2^n (6 pairs: 0.031); a bootstrap p-value of so few pairs can be 0."""
    d = np.asarray(x, float) - np.asarray(y, float)
    d = d[np.isfinite(d)]
    n = d.size
    if n == 0:
        return math.nan
    if n > max_pairs:
        raise ValueError(f"sign_flip_test enumerates 2^n patterns; {n} pairs is more than max_pairs={max_pairs}")
    signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1)
    means = (signs * np.abs(d)[None, :]).mean(axis=1)
    observed = abs(d.mean())
    return float(np.mean(np.abs(means) >= observed - 1e-12 * max(1.0, observed)))


def cluster_bootstrap(values: Sequence[float], clusters: Sequence, rng: np.random.Generator, n_boot: int = 2000,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean over all values, and a percentile interval from resampling whole
    clusters (episodes of one track are correlated; resampling them one by one understates the
    uncertainty). Each bootstrap sample draws as many clusters as there are, with replacement, and
    takes the mean over every value of the drawn clusters."""
    v = np.asarray(values, float)
    g = np.asarray(clusters)
    if v.shape != g.shape:
        raise ValueError("values and clusters must have the same length")
    ok = np.isfinite(v)
    v, g = v[ok], g[ok]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    labels, inverse = np.unique(g, return_inverse=True)
    sums = np.bincount(inverse, weights=v, minlength=len(labels))
    counts = np.bincount(inverse, minlength=len(labels)).astype(float)
    draws = rng.integers(0, len(labels), (n_boot, len(labels)))
    boots = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(low), float(high)


@dataclass(frozen=True)
class KaplanMeier:
    times: np.ndarray
    """Distinct event times, increasing."""
    survival: np.ndarray
    """S(t) just after each time."""
    std_error: np.ndarray
    """Greenwood's standard error of S(t)."""
    low: np.ndarray
    high: np.ndarray
    """Pointwise confidence band (log(-log) transform, so it stays in [0, 1])."""

    def at(self, t: float) -> float:
        """S(t): the survival after every event time <= t (1 before the first)."""
        i = int(np.searchsorted(self.times, t, side="right"))
        return 1.0 if i == 0 else float(self.survival[i - 1])


def kaplan_meier(durations: Sequence[float], events: Sequence[bool], confidence: float = 0.95) -> KaplanMeier:
    """Kaplan-Meier estimate from per-episode durations and whether each ended in a failure (True)
    or was censored (False: it survived its whole length).

    ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)``; Greenwood: ``Var S = S^2 sum d_i / (n_i (n_i - d_i))``.
    """
    t = np.asarray(durations, float)
    e = np.asarray(events, bool)
    if t.shape != e.shape or t.ndim != 1:
        raise ValueError("durations and events must be 1-D and of the same length")
    if t.size == 0:
        raise ValueError("no episodes")
    times = np.unique(t[e])
    z = _z(confidence)
    s, greenwood = 1.0, 0.0
    surv, se, low, high = [], [], [], []
    for ti in times:
        n_at_risk = int(np.sum(t >= ti))
        d = int(np.sum((t == ti) & e))
        s *= 1.0 - d / n_at_risk
        greenwood += d / (n_at_risk * (n_at_risk - d)) if n_at_risk > d else math.inf
        surv.append(s)
        se.append(s * math.sqrt(greenwood) if math.isfinite(greenwood) else math.nan)
        if 0.0 < s < 1.0 and math.isfinite(greenwood):
            # log(-log S) has standard error sqrt(greenwood) / |log S|
            w = z * math.sqrt(greenwood) / abs(math.log(s))
            low.append(s ** math.exp(w))
            high.append(s ** math.exp(-w))
        else:
            low.append(0.0 if s == 0.0 else s)
            high.append(s)
    return KaplanMeier(times, np.array(surv), np.array(se), np.array(low), np.array(high))


def power_two_proportions(p1: float, p2: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-proportion z-test of p1 against p2 with n episodes per method
    (normal approximation with the pooled variance under H0)."""
    if n <= 0 or not (0 <= p1 <= 1 and 0 <= p2 <= 1):
        raise ValueError("need n > 0 and proportions in [0, 1]")
    z_alpha = _z(1.0 - alpha)
    p_bar = (p1 + p2) / 2
    se0 = math.sqrt(2 * p_bar * (1 - p_bar) / n)
    se1 = math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n)
    if se1 == 0:
        return 1.0 if p1 != p2 else alpha
    delta = abs(p1 - p2)
    return float(stats.norm.cdf((delta - z_alpha * se0) / se1) + stats.norm.cdf((-delta - z_alpha * se0) / se1))


def loglog_slope(horizons: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) on log(horizons), over the points where both are > 0 and
    finite; NaN with fewer than two such points."""
    T, y = np.asarray(horizons, float), np.asarray(values, float)
    ok = np.isfinite(T) & np.isfinite(y) & (T > 0) & (y > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(T[ok]), np.log(y[ok]), 1)[0])
