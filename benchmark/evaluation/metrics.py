"""SteerBench metrics: the reference definitions of every number the benchmark reports.

Every metric is a pure function of numpy arrays collected from evaluation episodes. Randomness (the
bootstrap) only comes from an explicit ``rng: np.random.Generator`` argument, never from global
random state: the same inputs and the same seed give identical outputs.

Conventions
-----------
- **Steps.** Policy steps ``t = 0, 1, 2, ...`` at 10 Hz. For episode ``e``: ``d[e, t]`` is the lateral
  offset in metres (positive right of the lane centre), ``psi[e, t]`` the heading error in radians,
  ``a[e, t]`` the learner's curvature command and ``a*[e, t]`` the teacher's (1/m).
- **Failures.** A failure (``"off_road"`` or ``"collision"``) ends an episode. ``failure_steps[e]`` is
  the 0-based index ``f_e`` of the step at which the failure was observed, so a failed episode has
  exactly ``f_e + 1`` recorded steps; ``-1``, ``None`` or NaN means "no failure". A failure at ``f``
  has happened *by horizon T* iff ``f < T``.
- **Horizons.** A horizon ``T`` is a number of policy steps (steps ``0 .. T-1``); checkpoints are
  e.g. ``[10, 30, 100, 300, 1000, 3000]``. Functions taking ``horizons`` accept an int or a sequence
  of ints and always return a 1-D array with one entry per checkpoint.
- **Truncation.** An episode that ends without failure before ``T`` (``max_steps`` reached, the end
  of an open road) is *truncated*: it counts as a survivor in the survival and crash rates, and its
  steps after the end are *missing* (NaN, left out of per-step means) in costs and drift.

Variable-length episodes
------------------------
The canonical representation is a **NaN-padded 2-D float array of shape (E, T_max)**: row ``e`` holds
episode ``e``'s per-step values and NaN after its last recorded step. Every function taking episode
data (``EpisodeData``) also accepts a list of per-episode 1-D arrays (or ``(T, 1)`` arrays, like the
env's ``Box(1,)`` actions), which is padded with :func:`pad_episodes`. A bare 1-D array is refused
(is it one episode or one value per episode?): wrap one episode as ``[x]``. The recorded length of
an episode is the index of its last non-NaN value plus one (:func:`episode_lengths`); NaN before that
marks a missing step and is excluded like padding.

Metrics
-------
=============================  ==============================================================
survival / crash rate          ``S(T) = (1/E) sum_e 1[no failure or f_e >= T]``, ``CR(T) = 1 - S(T)``
crash rate by type             ``CR_k(T) = (1/E) sum_e 1[type_e = k and f_e < T]``, ``sum_k CR_k = CR``
mean distance btw failures     ``MDBF = sum_e dist_e / n_failures`` (inf with no failures)
mean |offset|, |heading|       ``mean over valid (e, t) of |d[e, t]|`` (resp. ``|psi[e, t]|``)
teacher disagreement           ``eps = mean over valid (e, t) of |a[e, t] - a*[e, t]|``
cost                           ``c[e, t] = 1 if t >= f_e else min(1, |d[e, t]| / d_max)``
cumulative cost                ``J(T) = sum_{t<T} mean_e c[e, t]`` (NaN-aware mean over episodes)
growth exponent                slope of ``log J(T)`` on ``log T``, bootstrap CI over episodes
drift                          ``TV_t = 0.5 sum_b |p_t(b) - q_t(b)|`` on binned ``(d_t, psi_t)``
autonomy                       ``100 * (1 - 6 s * n_interventions / elapsed_s)`` (may be negative)
aggregation                    percentile bootstrap CI, interquartile mean (IQM)
=============================  ==============================================================

Protocol steerbench-v2 (section 11). *Alive at t*: step t recorded and ``t < f_e`` (the failure step
itself excluded). *Paired*: row e of the learner's and the teacher's arrays is the same episode.

=============================  ==============================================================
paired regret                  ``dJ(T) = sum_{t<T} mean_{pairs} (c_l[e, t] - c_t[e, t])``, ``T = 0..H``
regret slope                   log-log slope of dJ(T) over ``T in [t_min, last T with S(T) >= 0.5]``
mistake rate                   ``eps_t = #{alive e: |a - a*| > tau} / #{alive e}``; pooled ``(k, n)``
mistake-rate slope             OLS slope of ``eps_t`` on ``log10 t`` (per decade), ``t >= t_min``
covariate-shift ratio          ``eps_on / eps_off`` (own rollouts / the teacher's frames)
excursions                     onsets ``|d| > 0.5`` m, recovery ``|d| < 0.25`` m; per km, P(recover)
route completion               ``clip((f_e if failed else length_e) / intended_steps, 0, 1)``
normalised score               ``(x - x_straight) / (x_teacher - x_straight)``
paired drift                   ``g_t = mean_{alive pairs} |d_l - d_t|``, per-step W1, failure fraction
command success rate           ``SR_c = #{passages with command c passed} / #{attempted}``, per command
=============================  ==============================================================

Roads with choices (envs.forks). A fork passage is *attempted* once the car reaches the fork's split,
*passed* when it reaches the merge on the commanded branch (taking the other branch leaves the route's
road: an off-road failure), *failed* when the episode fails in between; a passage cut off by the step
limit is not counted. See :func:`command_success`.

Empty inputs
------------
Episode metrics raise ``ValueError`` when given no episodes at all (a caller bug), and return NaN when
there are episodes but no valid step to average over. The aggregation helpers (:func:`bootstrap_ci`,
:func:`iqm`, :func:`aggregate`) return NaN for an empty sample, since an empty group is an ordinary
outcome when tabulating results.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_D_EDGES",
    "DEFAULT_PSI_EDGES",
    "FAILURE_TYPES",
    "INTERVENTION_PENALTY_S",
    "Excursions",
    "GrowthExponent",
    "PairedDrift",
    "RegretSlope",
    "aggregate",
    "autonomy",
    "bootstrap_ci",
    "command_success",
    "cost_matrix",
    "covariate_shift_ratio",
    "crash_rate",
    "crash_rate_by_type",
    "cumulative_cost",
    "drift_tv",
    "drift_tv_1d",
    "episode_lengths",
    "excursions",
    "growth_exponent",
    "iqm",
    "log_log_slope",
    "mean_abs_heading_error",
    "mean_abs_lateral_offset",
    "mean_abs_over_steps",
    "mean_cost_per_step",
    "mean_distance_between_failures",
    "mistake_indicators",
    "mistake_rate",
    "mistake_rate_of",
    "mistake_rate_slope",
    "normalised_score",
    "pad_episodes",
    "paired_drift",
    "paired_offset_gap",
    "paired_regret",
    "per_episode_mean_abs",
    "pooled_mistake_rate",
    "regret_slope",
    "route_completion",
    "survival",
    "teacher_disagreement",
    "tv_distance",
    "tv_distance_1d",
    "wasserstein_1d",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
EpisodeData: TypeAlias = Sequence[ArrayLike] | NDArray[Any]
"""Per-step values of E episodes: a NaN-padded (E, T_max) array or a list of 1-D arrays."""
FailureSteps: TypeAlias = Sequence[int | float | None] | NDArray[Any]
"""Per-episode failure step index f_e, or -1 / None / NaN for no failure."""
Horizons: TypeAlias = int | Sequence[int] | NDArray[np.integer[Any]]

FAILURE_TYPES: tuple[str, ...] = ("off_road", "collision")
"""The failure types an episode can end with."""

INTERVENTION_PENALTY_S: float = 6.0
"""Seconds charged per intervention in the autonomy metric (Bojarski et al. 2016)."""


def _readonly(a: FloatArray) -> FloatArray:
    a.setflags(write=False)
    return a


DEFAULT_D_EDGES: FloatArray = _readonly(np.linspace(-3.0, 3.0, 13))
"""Default lateral-offset bin edges for drift: [-3, 3] m in 12 bins of 0.5 m."""

DEFAULT_PSI_EDGES: FloatArray = _readonly(np.linspace(-0.5, 0.5, 11))
"""Default heading-error bin edges for drift: [-0.5, 0.5] rad in 10 bins of 0.1 rad."""


# ------------------------------------------------------------------------------------------------
# Input handling
# ------------------------------------------------------------------------------------------------


def _fit_width(a: FloatArray, width: int) -> FloatArray:
    """Cut `a` (E, T) to `width` columns or pad it on the right with NaN."""
    if width <= a.shape[1]:
        return a[:, :width].copy()
    out = np.full((a.shape[0], width), np.nan)
    out[:, : a.shape[1]] = a
    return out


def _column_mean(a: FloatArray) -> FloatArray:
    """NaN-aware mean over episodes (rows) at each step (column); NaN where a column has no value."""
    valid = ~np.isnan(a)
    n = valid.sum(axis=0)
    return np.where(n > 0, np.where(valid, a, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)


def _check_count(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def pad_episodes(episodes: EpisodeData, length: int | None = None) -> FloatArray:
    """Stack variable-length episodes into a NaN-padded float array of shape (E, length).

    Args:
        episodes: a list of per-episode 1-D arrays (``(T, 1)`` arrays are accepted and flattened), or
            an already padded 2-D array (returned as a float copy). A bare 1-D array is refused as
            ambiguous; wrap a single episode as ``[x]``. A 1-D object array of arrays (e.g. from a
            pandas column) is treated as a list.
        length: number of columns; ``None`` gives the longest episode's length. Longer episodes
            are cut to ``length``, shorter ones padded with NaN.

    Returns:
        ``(E, length)`` float64 array; ``(0, length or 0)`` for no episodes.
    """
    if length is not None:
        length = _check_count(length, "length")
    if isinstance(episodes, np.ndarray) and episodes.dtype != object:
        if episodes.ndim != 2:
            raise ValueError(
                f"episode data must be a padded 2-D (episodes, steps) array or a list of 1-D arrays, "
                f"got an array of shape {episodes.shape}; wrap a single episode as [x]"
            )
        out = episodes.astype(np.float64, copy=True)
        return out if length is None else _fit_width(out, length)
    rows: list[FloatArray] = []
    for i, ep in enumerate(episodes):
        a = np.asarray(ep, dtype=np.float64)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim != 1:
            raise ValueError(f"episode {i}: expected a 1-D array of per-step values, got shape {a.shape}")
        rows.append(a)
    width = max((r.size for r in rows), default=0) if length is None else length
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        n = min(r.size, width)
        out[i, :n] = r[:n]
    return out


def episode_lengths(episodes: EpisodeData) -> IntArray:
    """Recorded length of each episode: index of its last non-NaN value + 1 (0 if all NaN)."""
    a = pad_episodes(episodes)
    if a.shape[1] == 0:  # argmax of an empty row is an error
        return np.zeros(a.shape[0], dtype=np.int64)
    valid = ~np.isnan(a)
    last_from_end = np.argmax(valid[:, ::-1], axis=1)
    return np.where(valid.any(axis=1), a.shape[1] - last_from_end, 0).astype(np.int64)


def _episodes(episodes: EpisodeData, name: str) -> FloatArray:
    a = pad_episodes(episodes)
    if a.shape[0] == 0:
        raise ValueError(f"{name}: no episodes")
    return a


def _failure_array(failure_steps: FailureSteps, n_expected: int | None = None) -> IntArray:
    """Failure steps as an int64 array with -1 for "no failure"; validates the values."""
    if isinstance(failure_steps, np.ndarray) and failure_steps.dtype != object:
        raw = failure_steps.astype(np.float64)
    else:
        raw = np.asarray([np.nan if v is None else v for v in failure_steps], dtype=np.float64)
    if raw.ndim != 1:
        raise ValueError(f"failure_steps must be 1-D (one entry per episode), got shape {raw.shape}")
    raw = np.where(np.isnan(raw), -1.0, raw)
    if not np.all(np.isfinite(raw)) or np.any(raw != np.floor(raw)) or np.any(raw < -1):
        raise ValueError("failure_steps must hold step indices >= 0, or -1 / None / NaN for no failure")
    if n_expected is not None and raw.size != n_expected:
        raise ValueError(f"failure_steps has {raw.size} entries for {n_expected} episodes")
    return raw.astype(np.int64)


def _check_failures_recorded(f: IntArray, lengths: IntArray, name: str) -> None:
    """A failed episode must have exactly f + 1 recorded steps."""
    bad = np.flatnonzero((f >= 0) & (lengths != f + 1))
    if bad.size:
        e = int(bad[0])
        raise ValueError(
            f"{name}: episode {e} failed at step {f[e]} so it should have {f[e] + 1} recorded steps, "
            f"it has {lengths[e]} (failure_steps are 0-based step indices)"
        )


def _horizons(horizons: Horizons) -> IntArray:
    h = np.asarray(horizons)
    if h.ndim == 0:
        h = h.reshape(1)
    if h.ndim != 1:
        raise ValueError(f"horizons must be an int or a 1-D sequence of ints, got shape {h.shape}")
    if h.size == 0:
        return np.zeros(0, dtype=np.int64)
    hf = h.astype(np.float64)
    if not np.all(np.isfinite(hf)) or np.any(hf != np.floor(hf)) or np.any(hf < 0):
        raise ValueError(f"horizons must be non-negative integers, got {h.tolist()}")
    return hf.astype(np.int64)


def _check_rng(rng: object) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(rng).__name__}"
        )
    return rng


def _check_alpha(alpha: float) -> float:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return float(alpha)


# ------------------------------------------------------------------------------------------------
# 1. Survival and crash rate
# ------------------------------------------------------------------------------------------------


def survival(failure_steps: FailureSteps, horizons: Horizons) -> FloatArray:
    """Survival S(T): the fraction of episodes with no failure by step T.

    ``S(T) = (1/E) * sum_e 1[f_e is none  or  f_e >= T]``

    A failure observed at step index ``f`` has happened by ``T`` iff ``f < T``, so ``S(0) = 1`` and
    an episode failing at ``t = 0`` is a crash for every ``T >= 1``. Episodes that ended before ``T``
    without failing (truncated: ``max_steps``, end of an open road) count as survivors: S is the
    fraction of episodes *not observed to fail* before T, an upper bound on the true survival when
    episodes are truncated before T.

    Args:
        failure_steps: per-episode failure step index, -1 / None / NaN for no failure.
        horizons: a horizon or a sequence of horizons (non-negative ints).

    Returns:
        1-D float array, S at each horizon. Raises ``ValueError`` for no episodes.
    """
    f = _failure_array(failure_steps)
    if f.size == 0:
        raise ValueError("survival: no episodes")
    h = _horizons(horizons)
    failed_by = (f[None, :] >= 0) & (f[None, :] < h[:, None])
    return 1.0 - failed_by.mean(axis=1)


def crash_rate(failure_steps: FailureSteps, horizons: Horizons) -> FloatArray:
    """Crash rate CR(T) = 1 - S(T): the fraction of episodes that failed before step T.

    ``CR(T) = (1/E) * sum_e 1[f_e is not none  and  f_e < T]``. Truncated episodes count as
    survivors (see :func:`survival`).
    """
    return 1.0 - survival(failure_steps, horizons)


def crash_rate_by_type(
    failure_steps: FailureSteps, failure_types: Sequence[str | None], horizons: Horizons
) -> dict[str, FloatArray]:
    """Crash rate split by failure type.

    ``CR_k(T) = (1/E) * sum_e 1[type_e = k  and  f_e < T]`` for ``k`` in ``("off_road", "collision")``;
    the types sum to the crash rate, ``CR_off_road(T) + CR_collision(T) = CR(T) = 1 - S(T)``.

    Args:
        failure_steps: per-episode failure step index, -1 / None / NaN for no failure.
        failure_types: per-episode ``"off_road"``, ``"collision"``, or None (NaN accepted) for
            episodes without failure. A type on a non-failed episode, or a failed episode
            without a known type, raises ``ValueError``.
        horizons: a horizon or a sequence of horizons.

    Returns:
        ``{"crash": CR, "off_road": CR_off_road, "collision": CR_collision}``, each a 1-D array over
        the horizons.
    """
    f = _failure_array(failure_steps)
    if f.size == 0:
        raise ValueError("crash_rate_by_type: no episodes")
    types = list(failure_types)
    if len(types) != f.size:
        raise ValueError(f"failure_types has {len(types)} entries for {f.size} episodes")
    norm: list[str | None] = []
    for e, (fe, k) in enumerate(zip(f, types, strict=True)):
        if k is not None and not isinstance(k, str) and np.isnan(k):
            k = None
        if fe >= 0 and k not in FAILURE_TYPES:
            raise ValueError(f"episode {e} failed at step {fe} with type {k!r}; expected one of {FAILURE_TYPES}")
        if fe < 0 and k is not None:
            raise ValueError(f"episode {e} has failure type {k!r} but no failure step")
        norm.append(k)
    h = _horizons(horizons)
    failed_by = (f[None, :] >= 0) & (f[None, :] < h[:, None])
    out: dict[str, FloatArray] = {"crash": failed_by.mean(axis=1)}
    for k in FAILURE_TYPES:
        is_k = np.array([t == k for t in norm], dtype=bool)
        out[k] = (failed_by & is_k[None, :]).mean(axis=1)
    return out


# ------------------------------------------------------------------------------------------------
# 2. Mean distance between failures
# ------------------------------------------------------------------------------------------------


def mean_distance_between_failures(distances_m: ArrayLike, n_failures: ArrayLike) -> float:
    """Mean distance between failures (m): total distance driven over the number of failures.

    ``MDBF = (sum_e dist_e) / (sum_e n_e)``

    In crash mode ``n_e`` is 0 or 1 (``np.asarray(failure_steps) >= 0`` works); in intervention
    mode the failures are the interventions, several per episode.

    Args:
        distances_m: per-episode distance driven (m), 1-D, finite, >= 0.
        n_failures: per-episode failure counts (ints or bools, same length), or the total count.

    Returns:
        MDBF in metres; ``inf`` when there are no failures (NaN if, in addition, no distance was
        driven). Raises ``ValueError`` for no episodes or invalid values.
    """
    dist = np.asarray(distances_m, dtype=np.float64)
    if dist.ndim != 1:
        raise ValueError(f"distances_m must be 1-D (one per episode), got shape {dist.shape}")
    if dist.size == 0:
        raise ValueError("mean_distance_between_failures: no episodes")
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise ValueError("distances_m must be finite and >= 0")
    n = np.asarray(n_failures)
    if n.ndim == 1 and n.size != dist.size:
        raise ValueError(f"n_failures has {n.size} entries for {dist.size} episodes")
    if n.ndim > 1:
        raise ValueError(f"n_failures must be a count or 1-D, got shape {n.shape}")
    nf = n.astype(np.float64)
    if not np.all(np.isfinite(nf)) or np.any(nf < 0) or np.any(nf != np.floor(nf)):
        raise ValueError("n_failures must be non-negative integers")
    total_failures = float(nf.sum())
    total = float(dist.sum())
    if total_failures == 0:
        return float("inf") if total > 0 else float("nan")
    return total / total_failures


# ------------------------------------------------------------------------------------------------
# 3. Mean absolute lateral offset and heading error
# ------------------------------------------------------------------------------------------------


def _cut(a: FloatArray, horizon: int | None) -> FloatArray:
    return a if horizon is None else _fit_width(a, _check_count(horizon, "horizon"))


def mean_abs_over_steps(episodes: EpisodeData, horizon: int | None = None) -> float:
    """Mean of |x| over all valid steps of all episodes (pooled, so longer episodes weigh more).

    ``mean_abs = (sum_{e,t valid} |x[e, t]|) / #{valid (e, t)}``, steps ``t < horizon`` only when a
    horizon is given. Valid = not NaN (padding and missing steps are excluded).

    Returns NaN when there is no valid step; raises ``ValueError`` for no episodes.
    """
    a = _cut(_episodes(episodes, "mean_abs_over_steps"), horizon)
    valid = ~np.isnan(a)
    n = int(valid.sum())
    return float(np.abs(a[valid]).sum() / n) if n else float("nan")


def per_episode_mean_abs(episodes: EpisodeData, horizon: int | None = None) -> FloatArray:
    """Per-episode mean of |x| over its valid steps: ``m_e = mean_{t valid} |x[e, t]|``.

    The per-episode values are what to pass to :func:`aggregate` for an episode-level confidence
    interval. An episode without valid steps gives NaN.
    """
    a = _cut(_episodes(episodes, "per_episode_mean_abs"), horizon)
    valid = ~np.isnan(a)
    n = valid.sum(axis=1)
    s = np.where(valid, np.abs(a), 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def mean_abs_lateral_offset(lateral_offsets: EpisodeData, horizon: int | None = None) -> float:
    """Mean absolute lateral offset (m): ``mean over valid (e, t) of |d[e, t]|``.

    Pooled over steps; see :func:`mean_abs_over_steps`.
    """
    return mean_abs_over_steps(lateral_offsets, horizon)


def mean_abs_heading_error(heading_errors: EpisodeData, horizon: int | None = None) -> float:
    """Mean absolute heading error (rad): ``mean over valid (e, t) of |psi[e, t]|``.

    Pooled over steps; see :func:`mean_abs_over_steps`.
    """
    return mean_abs_over_steps(heading_errors, horizon)


# ------------------------------------------------------------------------------------------------
# 4. One-step teacher disagreement
# ------------------------------------------------------------------------------------------------


def teacher_disagreement(
    actions: EpisodeData, teacher_actions: EpisodeData, horizon: int | None = None
) -> float:
    """One-step teacher disagreement eps (1/m): the mean absolute action error on the learner's states.

    ``eps = (sum_{e,t valid} |a[e, t] - a*[e, t]|) / #{valid (e, t)}``

    ``a*`` is the teacher's label for the state the learner actually visited, so eps is the
    per-step error on the learner's own state distribution (the epsilon of Ross & Bagnell's bounds).

    Args:
        actions: learner curvature commands per episode.
        teacher_actions: teacher labels, same episodes and lengths (same NaN pattern).
        horizon: only steps ``t < horizon`` when given.

    Returns:
        eps; NaN if there is no valid step. ``ValueError`` for no episodes or mismatched shapes.
    """
    a = _episodes(actions, "teacher_disagreement")
    b = _episodes(teacher_actions, "teacher_disagreement")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{a.shape[0]} action episodes but {b.shape[0]} teacher-action episodes")
    width = max(a.shape[1], b.shape[1])
    a, b = _fit_width(a, width), _fit_width(b, width)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise ValueError("actions and teacher_actions must have the same episode lengths (same NaN pattern)")
    return mean_abs_over_steps(a - b, horizon)


# ------------------------------------------------------------------------------------------------
# 5-6. Cost and cumulative cost
# ------------------------------------------------------------------------------------------------


def cost_matrix(
    lateral_offsets: EpisodeData, failure_steps: FailureSteps, d_max: float, horizon: int
) -> FloatArray:
    """Per-step cost ``c[e, t]`` in [0, 1], shape (E, horizon).

    ``c[e, t] = 1                         if episode e failed and t >= f_e   (absorbing)``
    ``c[e, t] = min(1, |d[e, t]| / d_max)  if t < f_e (or no failure) and step t was recorded``
    ``c[e, t] = NaN                       if episode e did not fail and ended before t (truncated)``

    A failure is absorbing: cost 1 at the failure step and at every later step up to the horizon,
    although the episode stopped there. Truncated steps of non-failed episodes are NaN, so they are
    left out of per-step means (:func:`cumulative_cost`); missing (NaN) offsets inside an episode
    stay NaN too. Recorded steps beyond the horizon are ignored.

    Args:
        lateral_offsets: per-episode ``d_t`` (m), padded array or list.
        failure_steps: per-episode failure step, -1 / None / NaN for none. A failed episode must
            have exactly ``f_e + 1`` recorded offsets (else ``ValueError``: catches off-by-one steps).
        d_max: offset (m) at which the cost saturates to 1, > 0 (e.g. the half lane width).
        horizon: number of steps (columns) to produce, >= 0.
    """
    d = _episodes(lateral_offsets, "cost_matrix")
    f = _failure_array(failure_steps, d.shape[0])
    if not (np.isfinite(d_max) and d_max > 0):
        raise ValueError(f"d_max must be a positive number, got {d_max}")
    horizon = _check_count(horizon, "horizon")
    _check_failures_recorded(f, episode_lengths(d), "cost_matrix")
    d = _fit_width(d, horizon)
    c = np.minimum(1.0, np.abs(d) / float(d_max))
    t = np.arange(horizon)
    c[(f[:, None] >= 0) & (t[None, :] >= f[:, None])] = 1.0
    return c


def _cost_array(costs: ArrayLike) -> FloatArray:
    c = np.asarray(costs, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"costs must be a 2-D (episodes, steps) array, got shape {c.shape}")
    if c.shape[0] == 0:
        raise ValueError("costs: no episodes")
    finite = c[~np.isnan(c)]
    if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
        raise ValueError("costs must lie in [0, 1] (NaN for missing steps)")
    return c


def mean_cost_per_step(costs: ArrayLike) -> FloatArray:
    """Expected cost per step, ``m_t = E_e[c[e, t]]``: the NaN-aware mean over episodes.

    ``m_t = (sum_{e: c[e,t] not NaN} c[e, t]) / #{e: c[e, t] not NaN}``; NaN where no episode has
    a value at step t.
    """
    c = _cost_array(costs)
    valid = ~np.isnan(c)
    n = valid.sum(axis=0)
    s = np.where(valid, c, 0.0).sum(axis=0)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def cumulative_cost(costs: ArrayLike, horizons: Horizons) -> FloatArray:
    """Cumulative expected cost ``J(T) = sum_{t<T} E_e[c[e, t]]`` at each checkpoint T.

    ``E_e`` is the NaN-aware mean over episodes of :func:`mean_cost_per_step` (truncated episodes
    drop out of later steps, failed ones keep contributing 1). ``J(0) = 0``; ``J(T)`` is NaN if some
    step ``t < T`` has no episode with a value. Since ``c <= 1``, ``J(T) <= T``.

    Args:
        costs: (E, H) array from :func:`cost_matrix`.
        horizons: checkpoints, each ``<= H`` (else ``ValueError``).
    """
    m = mean_cost_per_step(costs)
    h = _horizons(horizons)
    if h.size and h.max() > m.size:
        raise ValueError(f"horizon {int(h.max())} exceeds the {m.size} steps of the cost matrix")
    j = np.concatenate([[0.0], np.cumsum(m)])
    return j[h]


# ------------------------------------------------------------------------------------------------
# 7. Growth exponent
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrowthExponent:
    """Log-log growth exponent of the cumulative cost, with its bootstrap interval."""

    exponent: float
    """Least-squares slope of log J(T) on log T (NaN with fewer than 2 usable checkpoints)."""
    low: float
    """Lower end of the percentile bootstrap interval (episodes resampled with replacement)."""
    high: float
    """Upper end of the percentile bootstrap interval."""
    horizons_used: tuple[int, ...]
    """The checkpoints that entered the point estimate (T > 0 with finite J(T) > 0)."""


def _masked_slopes(x: FloatArray, y: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
    """Row-wise least-squares slope of y[i] on x over mask[i]; NaN with < 2 distinct points."""
    w = mask.astype(np.float64)
    n = w.sum(axis=1)
    y0 = np.where(mask, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xm = (w * x).sum(axis=1) / n
        ym = (w * y0).sum(axis=1) / n
        dx = np.where(mask, x[None, :] - xm[:, None], 0.0)
        sxx = (dx * dx).sum(axis=1)
        sxy = (dx * np.where(mask, y0 - ym[:, None], 0.0)).sum(axis=1)
        slope = sxy / sxx
    return np.where((n >= 2) & (sxx > 1e-12), slope, np.nan)


def log_log_slope(horizons: Horizons, values: ArrayLike) -> float:
    """Least-squares slope b of ``log J = a + b log T`` over the points with T > 0 and finite J > 0.

    ``b = sum_i (x_i - mean x)(y_i - mean y) / sum_i (x_i - mean x)^2``, ``x = log T``, ``y = log J``.
    NaN with fewer than two usable points.
    """
    h = _horizons(horizons)
    v = np.asarray(values, dtype=np.float64)
    if v.shape != h.shape:
        raise ValueError(f"{h.size} horizons but values of shape {v.shape}")
    mask = (h > 0) & np.isfinite(v) & (v > 0)
    x = np.log(np.where(h > 0, h, 1).astype(np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(np.where(mask, v, 1.0))
    return float(_masked_slopes(x, y[None, :], mask[None, :])[0])


def growth_exponent(
    costs: ArrayLike,
    horizons: Horizons,
    *,
    rng: np.random.Generator,
    n_boot: int = 1000,
    alpha: float = 0.05,
) -> GrowthExponent:
    """Growth exponent of the cumulative cost: the slope of log J(T) against log T.

    ``exponent = argmin_b min_a sum_{T in checkpoints, J(T) > 0} (log J(T) - a - b log T)^2``

    with ``J`` from :func:`cumulative_cost`. Imitation-learning theory predicts ``J(T) ~ eps T^2``
    for behaviour cloning (compounding errors: exponent -> 2) and ``J(T) ~ eps T`` for DAgger
    (exponent -> 1). Caveat: ``c <= 1`` so ``J(T) <= T``; once most episodes have failed, J grows
    linearly whatever the learner, and the quadratic regime is only visible while ``eps T << 1``.
    The exponent summarises the checkpoints given; choose them (or compare sub-ranges with
    :func:`log_log_slope`) accordingly.

    Interval: percentile bootstrap over episodes. Each of ``n_boot`` replicates resamples the E rows
    of ``costs`` with replacement, recomputes J at the checkpoints (NaN-aware per-step means, as in
    the point estimate) and its slope over that replicate's checkpoints with J > 0; ``[low, high]``
    are the ``alpha/2`` and ``1 - alpha/2`` quantiles of the finite replicate slopes (NaN if none).
    With one episode, or identical episodes, the interval collapses to the point estimate.

    Args:
        costs: (E, H) cost matrix from :func:`cost_matrix`.
        horizons: checkpoints, each ``<= H``.
        rng: the only source of randomness.
        n_boot: number of bootstrap replicates, >= 1.
        alpha: 1 - confidence level.
    """
    _check_rng(rng)
    n_boot = _check_count(n_boot, "n_boot", minimum=1)
    alpha = _check_alpha(alpha)
    c = _cost_array(costs)
    h = _horizons(horizons)
    j = cumulative_cost(c, h)
    exponent = log_log_slope(h, j)
    used = tuple(int(t) for t, v in zip(h, j, strict=True) if t > 0 and np.isfinite(v) and v > 0)
    if np.isnan(exponent):
        # every replicate uses a subset of the rows, so it has no more usable checkpoints than the data
        return GrowthExponent(exponent=exponent, low=float("nan"), high=float("nan"), horizons_used=used)

    n_ep = c.shape[0]
    h_max = int(h.max()) if h.size else 0
    valid = ~np.isnan(c[:, :h_max])
    c0 = np.where(valid, c[:, :h_max], 0.0)
    vf = valid.astype(np.float64)
    x = np.log(np.where(h > 0, h, 1).astype(np.float64))
    cols = np.clip(h - 1, 0, None)
    chunk = max(1, min(n_boot, 4_000_000 // max(h_max, n_ep, 1)))
    slopes = np.empty(n_boot)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        idx = rng.integers(0, n_ep, size=(b, n_ep))
        weights = np.bincount((idx + n_ep * np.arange(b)[:, None]).ravel(), minlength=b * n_ep)
        weights = weights.reshape(b, n_ep).astype(np.float64)
        num, den = weights @ c0, weights @ vf
        with np.errstate(invalid="ignore", divide="ignore"):
            per_step = num / den
        jb = np.where(h[None, :] > 0, np.cumsum(per_step, axis=1)[:, cols], 0.0)
        mask = (h[None, :] > 0) & np.isfinite(jb) & (jb > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            yb = np.log(np.where(mask, jb, 1.0))
        slopes[done : done + b] = _masked_slopes(x, yb, mask)
        done += b
    finite = slopes[np.isfinite(slopes)]
    if finite.size == 0:
        low = high = float("nan")
    else:
        low, high = (float(q) for q in np.quantile(finite, [alpha / 2, 1 - alpha / 2]))
    return GrowthExponent(exponent=exponent, low=low, high=high, horizons_used=used)


# ------------------------------------------------------------------------------------------------
# 8. Drift: total variation between state distributions
# ------------------------------------------------------------------------------------------------


def tv_distance(p: ArrayLike, q: ArrayLike) -> float:
    """Total-variation distance between two histograms: ``TV = 0.5 * sum_b |p_b - q_b|``.

    ``p`` and ``q`` are non-negative counts or probabilities over the same bins; each is normalised
    to sum 1 first. TV lies in [0, 1]: 0 for identical distributions, 1 for disjoint supports.
    Raises ``ValueError`` for mismatched shapes, negative entries or an all-zero histogram.
    """
    pa, qa = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if pa.shape != qa.shape:
        raise ValueError(f"histograms of different shapes {pa.shape} and {qa.shape}")
    if np.any(pa < 0) or np.any(qa < 0) or not (np.all(np.isfinite(pa)) and np.all(np.isfinite(qa))):
        raise ValueError("histograms must be finite and non-negative")
    sp, sq = pa.sum(), qa.sum()
    if sp <= 0 or sq <= 0:
        raise ValueError("a histogram sums to zero")
    return float(0.5 * np.abs(pa / sp - qa / sq).sum())


def _check_edges(edges: ArrayLike | None, default: FloatArray, name: str) -> FloatArray:
    e = default if edges is None else np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
        raise ValueError(f"{name} must be a 1-D strictly increasing array of >= 2 finite edges")
    return e


def _bin_index(x: FloatArray, edges: FloatArray) -> IntArray:
    """Bin of each value; values outside [edges[0], edges[-1]] go to the edge bins. NaN -> garbage."""
    idx = np.searchsorted(edges, x, side="right") - 1
    return np.clip(idx, 0, edges.size - 2).astype(np.int64)


def tv_distance_1d(x: ArrayLike, y: ArrayLike, edges: ArrayLike | None = None) -> float:
    """TV distance between two 1-D samples histogrammed on the same bins.

    ``TV = 0.5 * sum_b |n_x(b)/N_x - n_y(b)/N_y|``. Values outside the edges are clipped into the
    edge bins; NaN values are dropped. Default edges :data:`DEFAULT_D_EDGES`. NaN if either
    sample is empty. The plug-in estimate is biased upwards with finite samples (see
    :func:`drift_tv`).
    """
    e = _check_edges(edges, DEFAULT_D_EDGES, "edges")
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    xa, ya = xa[~np.isnan(xa)], ya[~np.isnan(ya)]
    if xa.size == 0 or ya.size == 0:
        return float("nan")
    k = e.size - 1
    return tv_distance(np.bincount(_bin_index(xa, e), minlength=k), np.bincount(_bin_index(ya, e), minlength=k))


def _state_bins(
    values: Sequence[FloatArray],
    edges: Sequence[FloatArray],
    failure_steps: FailureSteps | None,
    horizon: int,
    name: str,
) -> tuple[IntArray, int]:
    """Per-(episode, step) bin index over the product of `edges`; the failed bin is the last one.

    Returns ``(bins, n_bins)`` with ``bins[e, t]`` in ``[0, n_bins)`` or -1 for "no sample"
    (truncated or missing step).
    """
    n_ep = values[0].shape[0]
    lengths = [episode_lengths(v) for v in values]
    for v, ln in zip(values[1:], lengths[1:], strict=True):
        if v.shape[0] != n_ep or not np.array_equal(ln, lengths[0]):
            raise ValueError(f"{name}: lateral offsets and heading errors must have the same episodes and lengths")
    f = np.full(n_ep, -1, dtype=np.int64) if failure_steps is None else _failure_array(failure_steps, n_ep)
    _check_failures_recorded(f, lengths[0], name)
    fitted = [_fit_width(v, horizon) for v in values]
    present = np.ones((n_ep, horizon), dtype=bool)
    flat = np.zeros((n_ep, horizon), dtype=np.int64)
    for v, e in zip(fitted, edges, strict=True):
        present &= ~np.isnan(v)
        flat = flat * (e.size - 1) + _bin_index(np.where(np.isnan(v), 0.0, v), e)
    n_regular = int(np.prod([e.size - 1 for e in edges]))
    bins = np.where(present, flat, -1)
    t = np.arange(horizon)
    bins[(f[:, None] >= 0) & (t[None, :] >= f[:, None])] = n_regular
    return bins, n_regular + 1


def _per_step_counts(bins: IntArray, n_bins: int) -> FloatArray:
    horizon = bins.shape[1]
    ok = bins >= 0
    t = np.broadcast_to(np.arange(horizon), bins.shape)
    flat = t[ok] * n_bins + bins[ok]
    return np.bincount(flat, minlength=horizon * n_bins).reshape(horizon, n_bins).astype(np.float64)


def _tv_per_step(learner: IntArray, teacher: IntArray, n_bins: int) -> FloatArray:
    p, q = _per_step_counts(learner, n_bins), _per_step_counts(teacher, n_bins)
    n_p, n_q = p.sum(axis=1), q.sum(axis=1)
    ok = (n_p > 0) & (n_q > 0)
    tv = 0.5 * np.abs(p / np.maximum(n_p, 1)[:, None] - q / np.maximum(n_q, 1)[:, None]).sum(axis=1)
    return np.where(ok, tv, np.nan)


def drift_tv(
    learner_offsets: EpisodeData,
    learner_headings: EpisodeData,
    teacher_offsets: EpisodeData,
    teacher_headings: EpisodeData,
    *,
    learner_failure_steps: FailureSteps | None = None,
    teacher_failure_steps: FailureSteps | None = None,
    horizon: int | None = None,
    d_edges: ArrayLike | None = None,
    psi_edges: ArrayLike | None = None,
) -> FloatArray:
    """Drift: TV distance between the learner's and the teacher's state distributions at each step.

    ``TV_t = 0.5 * sum_b |p_t(b) - q_t(b)|``, ``t = 0 .. horizon-1``

    where ``p_t`` (learner) and ``q_t`` (teacher) are the normalised histograms of the states
    ``(d_t, psi_t)`` of the episodes at step t, on the same fixed 2-D grid (``d_edges`` x
    ``psi_edges``; values outside are clipped into the edge bins) plus one extra **failed** bin. An
    episode that failed at ``f`` is in the failed bin for every ``t >= f`` (absorbing, as in
    :func:`cost_matrix`), so a crash counts as maximal drift: if every learner episode has failed
    and no teacher episode has, ``TV_t = 1``. Teacher failures, if given, are binned the same way.
    Truncated (ended without failure) and missing steps contribute no sample; the histograms are
    normalised over the episodes that do have one. ``TV_t`` is NaN where either side has no sample.

    The episodes should be run from the same start states (same seeds) so that ``p_0 = q_0`` up to
    sampling noise; they are not paired, and the learner and teacher may have different numbers
    of episodes.

    Bias of the estimator (honestly): this is the plug-in estimate from ``n`` learner and ``m``
    teacher samples per step. (1) Finite samples bias it **upwards**: ``E[TV_hat] >= TV`` (Jensen),
    and for identical distributions ``E[TV_hat] ~ sum_b sqrt(p_b (1 - p_b) (1/n + 1/m) / (2 pi))``
    (normal approximation), at most about ``sqrt(K (1/n + 1/m) / (2 pi))`` with K occupied bins:
    about 0.17 for 10 equally likely bins and 100 episodes per side, and never exactly 0 in
    practice. (2) Binning biases it **downwards**: TV between binned distributions is <= TV between
    the continuous ones (differences inside a bin are invisible). Finer bins trade (2) for (1).
    Compare learners at equal n, m and bins, and read values against the noise floor, e.g. the
    teacher-vs-teacher TV between two disjoint halves of the teacher episodes.

    Args:
        learner_offsets, learner_headings: learner ``d_t`` (m) and ``psi_t`` (rad) per episode; the two
            must have the same episodes and lengths.
        teacher_offsets, teacher_headings: the same for the teacher's episodes.
        learner_failure_steps, teacher_failure_steps: per-episode failure step (-1 / None / NaN for
            none); ``None`` means no episode failed. A failed episode must have ``f + 1`` recorded steps.
        horizon: number of steps; default the longest episode of either side.
        d_edges, psi_edges: bin edges, default :data:`DEFAULT_D_EDGES` (12 bins of 0.5 m on [-3, 3])
            and :data:`DEFAULT_PSI_EDGES` (10 bins of 0.1 rad on [-0.5, 0.5]).

    Returns:
        1-D array of ``TV_t`` over ``t = 0 .. horizon-1``, values in [0, 1] or NaN.
    """
    de = _check_edges(d_edges, DEFAULT_D_EDGES, "d_edges")
    pe = _check_edges(psi_edges, DEFAULT_PSI_EDGES, "psi_edges")
    ld, lp = _episodes(learner_offsets, "drift_tv"), _episodes(learner_headings, "drift_tv")
    td, tp = _episodes(teacher_offsets, "drift_tv"), _episodes(teacher_headings, "drift_tv")
    h = max(ld.shape[1], lp.shape[1], td.shape[1], tp.shape[1]) if horizon is None else _check_count(horizon, "horizon")
    lb, n_bins = _state_bins([ld, lp], [de, pe], learner_failure_steps, h, "drift_tv (learner)")
    tb, _ = _state_bins([td, tp], [de, pe], teacher_failure_steps, h, "drift_tv (teacher)")
    return _tv_per_step(lb, tb, n_bins)


def drift_tv_1d(
    learner_values: EpisodeData,
    teacher_values: EpisodeData,
    *,
    learner_failure_steps: FailureSteps | None = None,
    teacher_failure_steps: FailureSteps | None = None,
    horizon: int | None = None,
    edges: ArrayLike | None = None,
) -> FloatArray:
    """Drift of one state variable: :func:`drift_tv` with a 1-D histogram (plus the failed bin).

    ``TV_t = 0.5 * sum_b |p_t(b) - q_t(b)|`` over the bins of ``edges`` (default
    :data:`DEFAULT_D_EDGES`, for lateral offsets; pass :data:`DEFAULT_PSI_EDGES` for heading errors).
    Same conventions and the same biases as :func:`drift_tv` (fewer bins: less sampling bias, more
    binning bias).
    """
    e = _check_edges(edges, DEFAULT_D_EDGES, "edges")
    lv, tv = _episodes(learner_values, "drift_tv_1d"), _episodes(teacher_values, "drift_tv_1d")
    h = max(lv.shape[1], tv.shape[1]) if horizon is None else _check_count(horizon, "horizon")
    lb, n_bins = _state_bins([lv], [e], learner_failure_steps, h, "drift_tv_1d (learner)")
    tb, _ = _state_bins([tv], [e], teacher_failure_steps, h, "drift_tv_1d (teacher)")
    return _tv_per_step(lb, tb, n_bins)


# ------------------------------------------------------------------------------------------------
# 9. Autonomy
# ------------------------------------------------------------------------------------------------


def autonomy(n_interventions: ArrayLike, elapsed_s: ArrayLike, penalty_s: float = INTERVENTION_PENALTY_S) -> float:
    """NVIDIA's autonomy (percent) from intervention-mode driving (Bojarski et al. 2016).

    ``autonomy = (1 - n_interventions * penalty_s / elapsed_s) * 100``, ``penalty_s = 6`` s.

    Each intervention is charged 6 s of human driving. Not clipped: it goes **negative** when the
    charged time exceeds the elapsed time (more than one intervention per 6 s), so that policies
    below 0 % still rank by their intervention rate. Clip at 0 when displaying if needed.

    Args:
        n_interventions: the intervention count, or per-episode counts (summed).
        elapsed_s: the driven time in seconds, or per-episode times (summed); total must be > 0.
        penalty_s: seconds charged per intervention, >= 0.
    """
    n = np.asarray(n_interventions, dtype=np.float64)
    t = np.asarray(elapsed_s, dtype=np.float64)
    if not np.all(np.isfinite(n)) or np.any(n < 0) or np.any(n != np.floor(n)):
        raise ValueError("n_interventions must be non-negative integers")
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError("elapsed_s must be finite and >= 0")
    total_t = float(t.sum())
    if total_t <= 0:
        raise ValueError("autonomy: no elapsed time")
    if not (np.isfinite(penalty_s) and penalty_s >= 0):
        raise ValueError(f"penalty_s must be >= 0, got {penalty_s}")
    return (1.0 - float(n.sum()) * float(penalty_s) / total_t) * 100.0


# ------------------------------------------------------------------------------------------------
# 10. Aggregation
# ------------------------------------------------------------------------------------------------


def _values_1d(values: ArrayLike) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {x.shape}")
    if np.any(np.isnan(x)):
        raise ValueError("values contain NaN; drop them explicitly before aggregating")
    return x


def bootstrap_ci(
    values: ArrayLike,
    stat: Callable[[FloatArray], Any] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    *,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of ``stat(values)``.

    ``point = stat(x)``; for ``i = 1 .. n_boot`` draw ``x*_i``, n values of x with replacement, and
    ``s_i = stat(x*_i)``; ``low, high`` = the ``alpha/2`` and ``1 - alpha/2`` quantiles of the ``s_i``
    (numpy's linear interpolation). Degenerate cases: n = 0 gives ``(nan, nan, nan)``; n = 1 gives
    ``(x, x, x)`` (the interval collapses to the value).

    Args:
        values: 1-D sample without NaN (``ValueError`` otherwise).
        stat: statistic of a 1-D array, e.g. ``np.mean``, ``np.median`` or :func:`iqm`.
        n_boot: number of resamples, >= 1.
        alpha: 1 - confidence level (0.05: 95 % interval).
        rng: the only source of randomness.

    Returns:
        ``(point, low, high)``.
    """
    _check_rng(rng)
    n_boot = _check_count(n_boot, "n_boot", minimum=1)
    alpha = _check_alpha(alpha)
    x = _values_1d(values)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(stat(x))
    if x.size == 1:
        return point, point, point
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    boots = np.array([float(stat(x[row])) for row in idx])
    low, high = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return point, float(low), float(high)


def iqm(values: ArrayLike) -> float:
    """Interquartile mean: the mean of the middle 50 % of the sorted values (as in rliable).

    With ``x_(1) <= ... <= x_(n)`` and ``k = floor(n / 4)``: ``IQM = mean(x_(k+1), ..., x_(n-k))``,
    i.e. ``scipy.stats.trim_mean(x, 0.25)``. n = 0 gives NaN; n < 4 gives the plain mean.
    """
    x = np.sort(_values_1d(values))
    if x.size == 0:
        return float("nan")
    k = x.size // 4
    return float(x[k : x.size - k].mean())


def aggregate(
    values: ArrayLike, rng: np.random.Generator, *, n_boot: int = 1000, alpha: float = 0.05
) -> dict[str, float | int]:
    """Summary of a per-episode (or per-seed) metric: mean with bootstrap CI, IQM and count.

    Returns ``{"mean", "ci_low", "ci_high", "iqm", "n"}`` where ``(mean, ci_low, ci_high)`` is
    :func:`bootstrap_ci` of the mean. n = 0 gives NaN everywhere and ``n = 0``.
    """
    x = _values_1d(values)
    mean, low, high = bootstrap_ci(x, np.mean, n_boot, alpha, rng=rng)
    return {"mean": mean, "ci_low": low, "ci_high": high, "iqm": iqm(x), "n": int(x.size)}


# ------------------------------------------------------------------------------------------------
# 11. Protocol steerbench-v2
#
# v2 reports the learner relative to the teacher on the same start states (paired episodes), the
# per-step mistake rate and its trend, recoverable excursions, route completion and normalised
# scores. v1's numbers above are unchanged.
# ------------------------------------------------------------------------------------------------

# 11.1 Paired regret and its growth exponent


def paired_regret(learner_costs: ArrayLike, teacher_costs: ArrayLike) -> FloatArray:
    """Cumulative paired regret ``dJ(T) = J_l(T) - J_t(T)`` for ``T = 0 .. H``.

    ``dJ(T) = sum_{t<T} mean_{e in P_t} (c_l[e, t] - c_t[e, t])``, ``P_t = {e: both c_l[e, t] and c_t[e, t] not NaN}``

    Row ``e`` of both matrices is the same episode (same track and seed) driven by the learner and by
    the teacher, both ``(E, H)`` from :func:`cost_matrix` with the same ``d_max`` and horizon. Each
    step averages over the pairs recorded on both sides, so a step truncated on one side only drops
    the pair rather than comparing different sets of episodes; with the same NaN pattern on both
    sides (the usual case: failures are absorbing, truncation at the same ``max_steps``) this is
    exactly ``cumulative_cost(c_l) - cumulative_cost(c_t)``. ``dJ(0) = 0``; ``dJ(T)`` is NaN from the
    first step without a pair on. Negative when the learner beats the teacher (lower cost); ``|dJ(T)| <= T``.

    Returns:
        1-D array of shape ``(H + 1,)``, ``dJ(T)`` at ``T = 0 .. H``. ``ValueError`` for no episodes,
        costs outside [0, 1] or matrices of different shapes.
    """
    cl, ct = _cost_array(learner_costs), _cost_array(teacher_costs)
    if cl.shape != ct.shape:
        raise ValueError(
            f"paired_regret: learner costs {cl.shape} and teacher costs {ct.shape} must have the same shape "
            "(row e of both is the same episode)"
        )
    per_step = _column_mean(cl - ct)  # the difference is NaN unless both sides have the step
    return np.concatenate([[0.0], np.cumsum(per_step)])


@dataclass(frozen=True)
class RegretSlope:
    """Log-log slope of the paired regret over a window of horizons (:func:`regret_slope`)."""

    slope: float
    """Least-squares slope of log dJ(T) on log T (NaN with fewer than 2 usable points)."""
    t_lo: int
    """First horizon of the window (``t_min``)."""
    t_hi: int
    """Last horizon of the window: the last T with S(T) >= min_survival (-1 if none). Empty if t_hi < t_lo."""
    n_points: int
    """Number of horizons that entered the fit (those of the grid with dJ(T) > 0)."""


def _check_fraction(value: float, name: str) -> float:
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _geometric_grid(lo: int, hi: int, points: int) -> IntArray:
    """``points`` geometrically spaced integers from lo to hi (both included, 1 <= lo <= hi), deduplicated."""
    return np.unique(np.rint(np.geomspace(lo, hi, points)).astype(np.int64))


def regret_slope(
    regret: ArrayLike, survival_curve: ArrayLike, t_min: int = 30, min_survival: float = 0.5, points: int = 12
) -> RegretSlope:
    """Growth exponent of the paired regret: the slope b of ``log dJ(T) = a + b log T`` over a window.

    Window: ``T in [t_min, t_hi]``, ``t_hi = max{T: S(T) >= min_survival}``, the last horizon at which
    at least ``min_survival`` of the learner's episodes are still alive. Fit: least squares (as
    :func:`log_log_slope`) at ``points`` geometrically spaced integer T from ``t_min`` to ``t_hi``
    (rounded, duplicates dropped), leaving out T with ``dJ(T) <= 0`` or NaN (log undefined; the learner
    is at least as good as the teacher there).

    Theory: a learner whose mistakes compound (each one shifts it to states where it errs more, the
    behaviour-cloning regime of Ross & Bagnell) has ``dJ(T) ~ eps T^2``, slope ~ 2; a learner with
    independent mistakes it recovers from has ``dJ(T) ~ eps T``, slope ~ 1. The survival cut keeps
    the fit out of the saturated regime: a failed episode costs 1 per step, so once most episodes
    have failed dJ grows linearly whatever the learner (see :func:`growth_exponent`).

    Args:
        regret: ``dJ(T)`` for ``T = 0 .. H``, shape ``(H + 1,)`` from :func:`paired_regret`.
        survival_curve: the learner's ``S(T)`` for ``T = 0 .. H``, the same shape ``(H + 1,)`` indexed
            by T like ``regret``: ``survival(failure_steps, np.arange(H + 1))`` (a Kaplan-Meier curve
            evaluated at those T works too). NaN counts as below ``min_survival``.
        t_min: first horizon of the window, >= 1.
        min_survival: survival threshold in [0, 1] that ends the window.
        points: grid size, >= 2.

    Returns:
        :class:`RegretSlope`; slope NaN when the window is empty (``t_hi < t_min``, e.g. S drops below
        ``min_survival`` before ``t_min`` or H < t_min) or fewer than 2 grid points have ``dJ > 0``.
    """
    r = np.asarray(regret, dtype=np.float64)
    s = np.asarray(survival_curve, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"regret must be a non-empty 1-D array dJ(T) for T = 0..H, got shape {r.shape}")
    if s.shape != r.shape:
        raise ValueError(
            f"survival_curve has shape {s.shape}, regret {r.shape}: both must be (H + 1,), indexed by T = 0..H "
            "(survival(failure_steps, np.arange(H + 1)))"
        )
    t_min = _check_count(t_min, "t_min", minimum=1)
    min_survival = _check_fraction(min_survival, "min_survival")
    points = _check_count(points, "points", minimum=2)
    alive_enough = np.flatnonzero(s >= min_survival)  # NaN compares False
    t_hi = int(alive_enough[-1]) if alive_enough.size else -1
    if t_hi < t_min:
        return RegretSlope(slope=float("nan"), t_lo=t_min, t_hi=t_hi, n_points=0)
    grid = _geometric_grid(t_min, t_hi, points)
    values = r[grid]
    keep = np.isfinite(values) & (values > 0)
    n = int(keep.sum())
    slope = log_log_slope(grid[keep], values[keep]) if n >= 2 else float("nan")
    return RegretSlope(slope=slope, t_lo=t_min, t_hi=t_hi, n_points=n)


# 11.2 Mistake rate and covariate shift


def _alive(values: FloatArray, f: IntArray) -> NDArray[np.bool_]:
    """Recorded (not NaN) and before the failure step: ``t < f_e``, or any recorded t without failure."""
    t = np.arange(values.shape[1])
    return ~np.isnan(values) & ((f[:, None] < 0) | (t[None, :] < f[:, None]))


def _mistakes(
    actions: EpisodeData,
    teacher_actions: EpisodeData,
    failure_steps: FailureSteps,
    tau: float,
    horizon: int | None,
    name: str,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``(mistake, alive)`` boolean (E, H) arrays: alive steps, and alive steps with |a - a*| > tau."""
    a, b = _episodes(actions, name), _episodes(teacher_actions, name)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name}: {a.shape[0]} action episodes but {b.shape[0]} teacher-action episodes")
    width = max(a.shape[1], b.shape[1])
    a, b = _fit_width(a, width), _fit_width(b, width)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        raise ValueError(f"{name}: actions and teacher_actions must have the same episode lengths (same NaN pattern)")
    f = _failure_array(failure_steps, a.shape[0])
    # No action is taken in the failure state, so a failed episode may hold f_e actions (the
    # harness's records: NaN at the failure step) or f_e + 1 (the failure step's value is ignored).
    lengths = episode_lengths(a)
    _check_failures_recorded(f, np.where((f >= 0) & (lengths == f), f + 1, lengths), name)
    if not (np.isfinite(tau) and tau >= 0):
        raise ValueError(f"{name}: tau must be a finite number >= 0, got {tau}")
    h = width if horizon is None else _check_count(horizon, "horizon")
    a, b = _fit_width(a, h), _fit_width(b, h)
    alive = _alive(a, f)
    with np.errstate(invalid="ignore"):
        mistake = alive & (np.abs(a - b) > tau)
    return mistake, alive


def mistake_rate(
    actions: EpisodeData,
    teacher_actions: EpisodeData,
    failure_steps: FailureSteps,
    tau: float,
    *,
    horizon: int | None = None,
) -> FloatArray:
    """Per-step mistake rate ``eps_t``: the fraction of alive episodes whose action is off by more than tau.

    ``eps_t = #{e alive at t: |a[e, t] - a*[e, t]| > tau} / #{e alive at t}``

    Alive at t: step t recorded and ``t < f_e`` (or no failure). The failure step itself is left out:
    the state there is already off the road or in a collision, so its action says nothing about the
    policy's per-step error (the failure is counted by the survival metrics). ``a*`` is the teacher's
    label for the state the learner visited (as in :func:`teacher_disagreement`).

    Args:
        actions, teacher_actions: learner commands and teacher labels (1/m), the same episodes and
            lengths (same NaN pattern).
        failure_steps: per-episode failure step, -1 / None / NaN for none; a failed episode has
            ``f_e + 1`` recorded steps, or ``f_e`` (no action is taken in the failure state).
        tau: mistake threshold on ``|a - a*|`` (1/m), >= 0; strictly greater counts.
        horizon: number of steps H to return; default the longest episode.

    Returns:
        Shape ``(H,)``; NaN at steps where no episode is alive.
    """
    return mistake_rate_of(*_mistakes(actions, teacher_actions, failure_steps, tau, horizon, "mistake_rate"))


def mistake_indicators(
    actions: EpisodeData,
    teacher_actions: EpisodeData,
    failure_steps: FailureSteps,
    tau: float,
    *,
    horizon: int,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """``(mistake, alive)``: the boolean (E, horizon) arrays that :func:`mistake_rate` and
    :func:`pooled_mistake_rate` reduce (arguments and checks as there; alive as in mistake_rate,
    mistake = alive and ``|a - a*| > tau``). Each row depends on its own episode only, so a
    bootstrap that resamples episodes indexes rows (``mistake_rate_of(m[b], a[b])``) and gets what
    the functions would return on the resampled episodes, without validating them again."""
    return _mistakes(actions, teacher_actions, failure_steps, tau, _check_count(horizon, "horizon"),
                     "mistake_indicators")


def mistake_rate_of(mistake: NDArray[np.bool_], alive: NDArray[np.bool_]) -> FloatArray:
    """``eps_t`` from :func:`mistake_indicators`' arrays: ``mistake.sum(0) / alive.sum(0)``, NaN where
    no episode is alive."""
    n = alive.sum(axis=0)
    return np.where(n > 0, mistake.sum(axis=0) / np.maximum(n, 1), np.nan)


def mistake_rate_slope(eps: ArrayLike, t_min: int = 10, points: int = 12) -> float:
    """Trend of the mistake rate: the OLS slope of ``eps_t`` on ``log10 t`` (change per decade of t).

    ``slope = sum_i (x_i - mean x)(eps_i - mean eps) / sum_i (x_i - mean x)^2``, ``x_i = log10 t_i``

    over ``points`` geometrically spaced integer steps ``t_i`` from ``t_min`` to the last step with a
    finite ``eps_t`` (rounded, duplicates dropped, NaN steps left out). Flat (~0): the learner errs as
    often late in an episode as early (DAgger-like, trained on its own states); rising (> 0): its
    states drift away from the training distribution and it errs more and more (behaviour cloning).

    Why log10 t and not t: horizons span decades (10 .. 3000 steps). Against t, the fit would be
    dominated by the last decade, where few episodes are still alive and ``eps_t`` is noisiest (and
    biased towards the survivors); against log10 t on a geometric grid the points are evenly spaced,
    each decade weighs the same, and the slope reads as "rate change per tenfold horizon".

    Args:
        eps: per-step ``eps_t`` from :func:`mistake_rate`, indexed by step t = 0 .. H-1.
        t_min: first step, >= 1 (log10 0 is undefined).
        points: grid size, >= 2.

    Returns:
        The slope (fraction per decade); NaN with fewer than 2 finite grid points.
    """
    e = np.asarray(eps, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"eps must be 1-D (one value per step), got shape {e.shape}")
    t_min = _check_count(t_min, "t_min", minimum=1)
    points = _check_count(points, "points", minimum=2)
    finite_t = np.flatnonzero(np.isfinite(e))
    finite_t = finite_t[finite_t >= t_min]
    if finite_t.size < 2:
        return float("nan")
    grid = _geometric_grid(t_min, int(finite_t[-1]), points)
    keep = np.isfinite(e[grid])
    x = np.log10(grid.astype(np.float64))
    return float(_masked_slopes(x, np.where(keep, e[grid], 0.0)[None, :], keep[None, :])[0])


def pooled_mistake_rate(
    actions: EpisodeData,
    teacher_actions: EpisodeData,
    failure_steps: FailureSteps,
    tau: float,
    *,
    horizon: int | None = None,
) -> tuple[int, int]:
    """Mistakes pooled over every alive step of every episode: ``(k, n)``.

    ``k = #{(e, t) alive: |a[e, t] - a*[e, t]| > tau}``, ``n = #{(e, t) alive}``, alive as in
    :func:`mistake_rate`. ``k / n`` is the pooled rate (longer episodes weigh more);
    ``statistics.wilson_interval(k, n)`` puts an interval on it (approximate: steps of one episode
    are correlated, so the interval is too narrow; use :func:`bootstrap_ci` over episodes for an
    honest one). ``n = 0`` when no step is alive.
    """
    mistake, alive = _mistakes(actions, teacher_actions, failure_steps, tau, horizon, "pooled_mistake_rate")
    return int(mistake.sum()), int(alive.sum())


def covariate_shift_ratio(eps_on: float, eps_off: float) -> float:
    """Covariate-shift ratio ``eps_on / eps_off``: how much more the learner errs on its own states.

    ``eps_off``: the learner's mistake rate on the teacher's own trajectories (the learner queried
    on the frames the teacher saw, its action not executed); ``eps_on``: the same rate on its own
    rollouts (:func:`mistake_rate` / :func:`pooled_mistake_rate` with the same tau). Theory: >> 1 for
    behaviour cloning (it was trained on the teacher's state distribution only and compounds its
    errors on its own), ~ 1 for DAgger (trained on its own state distribution).

    Edge cases: ``inf`` if ``eps_off == 0 < eps_on``; NaN if both are 0 or either is NaN.
    ``ValueError`` for negative or infinite rates.
    """
    on, off = float(eps_on), float(eps_off)
    if math.isnan(on) or math.isnan(off):
        return float("nan")
    if on < 0 or off < 0 or math.isinf(on) or math.isinf(off):
        raise ValueError(f"mistake rates must be finite and >= 0, got eps_on={on}, eps_off={off}")
    if off == 0.0:
        return float("inf") if on > 0 else float("nan")
    return on / off


# 11.3 Excursions


@dataclass(frozen=True)
class Excursions:
    """Excursions from the lane centre, pooled over episodes (:func:`excursions`).

    Every excursion ends exactly one way: ``onsets = recovered + failed + censored``.
    """

    onsets: int
    """Number of excursions (steps where |d| first exceeds onset_m)."""
    recovered: int
    """Excursions that came back below recover_m before any failure."""
    failed: int
    """Excursions during which the episode failed."""
    censored: int
    """Excursions still open when the episode ended without failure (outcome unknown)."""
    km: float
    """Distance driven, ``sum(distances_m) / 1000``."""
    onset_rate_per_km: float
    """``onsets / km``; NaN if km = 0."""
    recovery_probability: float
    """``recovered / (recovered + failed)``; censored excursions are left out; NaN if 0/0."""


def excursions(
    lateral_offsets: EpisodeData,
    failure_steps: FailureSteps,
    distances_m: ArrayLike,
    onset_m: float = 0.5,
    recover_m: float = 0.25,
) -> Excursions:
    """Count excursions (|d| > onset_m) and how they end: recovered, failed or censored.

    Per episode, a two-threshold (hysteresis) state machine over the recorded steps: outside an
    excursion, ``|d_t| > onset_m`` starts one at t; inside, ``|d_t| < recover_m`` ends it as
    *recovered*; after a recovery a new onset needs ``|d| > onset_m`` again (so noise around one
    threshold does not count many excursions). An episode starts outside: one that starts with
    ``|d_0| > onset_m`` counts an onset at t = 0. An excursion open at the end of the episode is
    *failed* if the episode failed, else *censored* (truncated while outside). At the failure step
    ``f_e`` an onset can still happen (an off-road failure usually is one) but no recovery: the
    episode ends there in failure. A failure outside an excursion (a collision near the centre line)
    is not an excursion failure. Missing (NaN) steps leave the state unchanged.

    ``onset_rate_per_km = onsets / (sum_e dist_e / 1000)``, ``recovery_probability = recovered /
    (recovered + failed)``.

    Args:
        lateral_offsets: per-episode ``d_t`` (m).
        failure_steps: per-episode failure step, -1 / None / NaN for none; a failed episode has
            ``f_e + 1`` recorded steps.
        distances_m: per-episode distance driven (m), 1-D, finite, >= 0.
        onset_m: onset threshold on ``|d|`` (m), > 0.
        recover_m: recovery threshold (m), ``0 < recover_m <= onset_m``.

    Returns:
        :class:`Excursions` with the pooled counts. ``ValueError`` for no episodes or invalid input.
    """
    d = _episodes(lateral_offsets, "excursions")
    n_ep, width = d.shape
    f = _failure_array(failure_steps, n_ep)
    _check_failures_recorded(f, episode_lengths(d), "excursions")
    dist = np.asarray(distances_m, dtype=np.float64)
    if dist.ndim != 1 or dist.size != n_ep:
        raise ValueError(f"distances_m must be 1-D with one entry per episode ({n_ep}), got shape {dist.shape}")
    if not np.all(np.isfinite(dist)) or np.any(dist < 0):
        raise ValueError("distances_m must be finite and >= 0")
    if not (np.isfinite(onset_m) and onset_m > 0):
        raise ValueError(f"onset_m must be a positive number, got {onset_m}")
    if not (np.isfinite(recover_m) and 0 < recover_m <= onset_m):
        raise ValueError(f"recover_m must be in (0, onset_m = {onset_m}], got {recover_m}")

    # event +1: enter (or stay in) an excursion; -1: recover; 0: keep the state (between the thresholds, NaN)
    ad = np.abs(d)
    event = np.zeros((n_ep, width), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        event[ad > onset_m] = 1
        event[ad < recover_m] = -1
    failed_rows = np.flatnonzero(f >= 0)
    event[failed_rows, f[failed_rows]] = np.maximum(event[failed_rows, f[failed_rows]], 0)  # no recovery at f
    # the state after step t is set by the last non-zero event up to t (outside before the first one)
    last = np.maximum.accumulate(np.where(event != 0, np.arange(width)[None, :], -1), axis=1)
    inside = (last >= 0) & (np.take_along_axis(event, np.maximum(last, 0), axis=1) > 0)
    before = np.concatenate([np.zeros((n_ep, 1), dtype=bool), inside[:, :-1]], axis=1)
    onsets = int((inside & ~before).sum())
    recovered = int((before & ~inside).sum())
    open_at_end = inside[:, -1] if width else np.zeros(n_ep, dtype=bool)  # padding keeps the last state
    failed = int((open_at_end & (f >= 0)).sum())
    censored = int((open_at_end & (f < 0)).sum())

    km = float(dist.sum()) / 1000.0
    ended = recovered + failed
    return Excursions(
        onsets=onsets,
        recovered=recovered,
        failed=failed,
        censored=censored,
        km=km,
        onset_rate_per_km=onsets / km if km > 0 else float("nan"),
        recovery_probability=recovered / ended if ended else float("nan"),
    )


# 11.4 Route completion and normalised scores


def route_completion(failure_steps: FailureSteps, lengths: ArrayLike, intended_steps: int | ArrayLike) -> FloatArray:
    """Per-episode route completion: the fraction of the intended route driven before any failure.

    ``RC_e = clip(n_e / N_e, 0, 1)``, ``n_e = f_e`` if episode e failed (steps ``0 .. f_e - 1``
    completed; the failure step is not) else ``lengths[e]``, ``N_e = intended_steps``.

    Steps stand in for distance (the ego speed is constant). ``N_e`` is the profile's ``max_steps``,
    or fewer steps for an open road that ends earlier; an episode that reaches it has ``RC = 1``, one
    failing at step 0 has ``RC = 0``. Pass the per-episode values to :func:`aggregate`.

    Args:
        failure_steps: per-episode failure step, -1 / None / NaN for none.
        lengths: per-episode recorded steps (e.g. :func:`episode_lengths`); a failed episode must
            have ``f_e + 1``.
        intended_steps: one number for all episodes or one per episode, each finite and > 0.

    Returns:
        1-D array of ``RC_e`` in [0, 1]. ``ValueError`` for no episodes or invalid input.
    """
    f = _failure_array(failure_steps)
    if f.size == 0:
        raise ValueError("route_completion: no episodes")
    ln = np.asarray(lengths, dtype=np.float64)
    if ln.shape != f.shape:
        raise ValueError(f"lengths has shape {ln.shape} for {f.size} episodes")
    if not np.all(np.isfinite(ln)) or np.any(ln < 0) or np.any(ln != np.floor(ln)):
        raise ValueError("lengths must be non-negative integers")
    _check_failures_recorded(f, ln.astype(np.int64), "route_completion")
    intended = np.asarray(intended_steps, dtype=np.float64)
    if intended.ndim > 1 or (intended.ndim == 1 and intended.size != f.size):
        raise ValueError(f"intended_steps must be a number or one per episode ({f.size}), got shape {intended.shape}")
    if not np.all(np.isfinite(intended)) or np.any(intended <= 0):
        raise ValueError("intended_steps must be finite and > 0")
    driven = np.where(f >= 0, f, ln)
    return np.clip(driven / intended, 0.0, 1.0)


def normalised_score(value: float, straight_value: float, teacher_value: float) -> float:
    """A metric rescaled between two reference policies: ``(value - straight) / (teacher - straight)``.

    0 = the straight-ahead policy (constant zero steering), 1 = the teacher; it may be < 0 (worse
    than driving straight) or > 1 (better than the teacher), and it works for metrics where lower
    is better too (the sign of the denominator flips with them). NaN if ``teacher == straight``
    (no scale), if a reference is not finite (e.g. an MDBF of inf for a teacher that never fails)
    or if ``value`` is NaN; an infinite ``value`` gives ``+-inf``.
    """
    v, s, t = float(value), float(straight_value), float(teacher_value)
    if not (math.isfinite(s) and math.isfinite(t)) or t == s or math.isnan(v):
        return float("nan")
    return (v - s) / (t - s)


# 11.5 Paired lateral drift


def _alive_offsets(
    offsets: EpisodeData, failure_steps: FailureSteps, horizon: int | None, name: str
) -> tuple[FloatArray, IntArray]:
    """``(d, f)``: offsets (E, horizon) with NaN wherever the episode is not alive (see :func:`_alive`)."""
    d = _episodes(offsets, name)
    f = _failure_array(failure_steps, d.shape[0])
    _check_failures_recorded(f, episode_lengths(d), name)
    d = d if horizon is None else _fit_width(d, horizon)
    return np.where(_alive(d, f), d, np.nan), f


def _paired_offsets(
    d_learner: EpisodeData,
    d_teacher: EpisodeData,
    failure_l: FailureSteps,
    failure_t: FailureSteps,
    horizon: int | None,
    name: str,
) -> tuple[FloatArray, FloatArray, IntArray]:
    if horizon is not None:
        horizon = _check_count(horizon, "horizon")
    dl, fl = _alive_offsets(d_learner, failure_l, horizon, f"{name} (learner)")
    dt, _ = _alive_offsets(d_teacher, failure_t, horizon, f"{name} (teacher)")
    if dl.shape[0] != dt.shape[0]:
        raise ValueError(
            f"{name}: {dl.shape[0]} learner episodes but {dt.shape[0]} teacher episodes (row e of both is the same episode)"
        )
    width = max(dl.shape[1], dt.shape[1])
    return _fit_width(dl, width), _fit_width(dt, width), fl


def paired_offset_gap(
    d_learner: EpisodeData,
    d_teacher: EpisodeData,
    failure_l: FailureSteps,
    failure_t: FailureSteps,
    *,
    horizon: int | None = None,
) -> FloatArray:
    """Per-step mean gap (m) between paired learner and teacher lateral offsets.

    ``g_t = mean_{e in A_t} |d_l[e, t] - d_t[e, t]|``, ``A_t = {e: both episodes e alive at t}``

    Row e of both is the same episode (same track and seed). Alive at t: step t recorded and
    ``t < f_e`` (or no failure), on each side with its own failure steps; the failure step itself is
    left out (an off-road state there would swamp the mean; failures are counted separately).

    Args:
        d_learner, d_teacher: per-episode ``d_t`` (m), the same number of episodes.
        failure_l, failure_t: per-episode failure steps of each side, -1 / None / NaN for none.
        horizon: number of steps H to return; default the longest episode of either side.

    Returns:
        Shape ``(H,)``; NaN at steps without an alive pair.
    """
    dl, dt, _ = _paired_offsets(d_learner, d_teacher, failure_l, failure_t, horizon, "paired_offset_gap")
    return _column_mean(np.abs(dl - dt))


def wasserstein_1d(x: ArrayLike, y: ArrayLike) -> float:
    """Wasserstein-1 distance between two 1-D samples: ``W1 = int_0^1 |F^-1(u) - G^-1(u)| du``.

    ``F^-1``, ``G^-1`` are the empirical quantile functions (``F^-1(u) = x_(ceil(u n))``), piecewise
    constant between the breakpoints ``{i / n} U {j / m}``, so the integral is an exact finite sum;
    the sizes n and m may differ. Equal to ``scipy.stats.wasserstein_distance(x, y)``. NaN values
    are dropped; NaN if either sample is then empty. Units: those of x (m for offsets).
    """
    xa, ya = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    xs, ys = np.sort(xa[~np.isnan(xa)]), np.sort(ya[~np.isnan(ya)])
    n, k = xs.size, ys.size
    if n == 0 or k == 0:
        return float("nan")
    # breakpoints in units of 1 / (n k), as integers so that ceil() is exact
    b = np.union1d(np.arange(1, n + 1) * k, np.arange(1, k + 1) * n)
    widths = np.diff(b, prepend=0)
    ix, iy = (b + k - 1) // k - 1, (b + n - 1) // n - 1  # ceil(b / k) - 1, ceil(b / n) - 1
    return float((widths * np.abs(xs[ix] - ys[iy])).sum() / (n * k))


@dataclass(frozen=True, eq=False)
class PairedDrift:
    """Lateral drift of the learner from the teacher on paired episodes (:func:`paired_drift`).

    Compared by identity (``w1`` is an array).
    """

    gap_mean: float
    """Mean over steps t < horizon of the per-step paired gap g_t (m), NaN-aware; NaN if no step has one."""
    gap_final: float
    """g_t at the last step t < horizon with a value (m); NaN if none."""
    w1: FloatArray
    """Per-step W1 distance (m) between the alive learner and alive teacher offsets, shape (horizon,)."""
    failure_fraction: float
    """Fraction of learner episodes that failed by the horizon (f < horizon): what the gaps leave out."""


def paired_drift(
    d_learner: EpisodeData, d_teacher: EpisodeData, failure_l: FailureSteps, failure_t: FailureSteps, horizon: int
) -> PairedDrift:
    """Summary of the learner's lateral drift from the teacher over ``t = 0 .. horizon-1``.

    - ``gap_mean = mean_{t: g_t defined} g_t`` and ``gap_final = g_{t_last}``, ``g_t`` from
      :func:`paired_offset_gap` (pairs alive on both sides).
    - ``w1[t] = W1(d_l[L_t, t], d_t[T_t, t])`` (:func:`wasserstein_1d`), ``L_t`` / ``T_t`` the learner /
      teacher episodes alive at t. The two sets may differ (each side loses its own failed
      episodes), so W1 compares the distributions, not the pairs; NaN where either is empty.
    - ``failure_fraction = #{e: f_l[e] < horizon} / E``, the crash rate at the horizon.

    Both gaps and W1 are computed on survivors only, so a learner whose drifting episodes fail
    looks *better* on them: read them together with ``failure_fraction``, which is kept as its own
    number for that reason. The noise floor is the same function applied to two teacher runs on
    the same episodes (teacher vs teacher, e.g. different seeds of the teacher's noise or two
    recordings): what "no drift" looks like with finite samples.

    Args:
        d_learner, d_teacher: per-episode ``d_t`` (m), the same episodes in the same order.
        failure_l, failure_t: per-episode failure steps, -1 / None / NaN for none.
        horizon: number of steps, >= 0.

    Returns:
        :class:`PairedDrift`.
    """
    horizon = _check_count(horizon, "horizon")
    dl, dt, fl = _paired_offsets(d_learner, d_teacher, failure_l, failure_t, horizon, "paired_drift")
    g = _column_mean(np.abs(dl - dt))
    defined = np.flatnonzero(~np.isnan(g))
    w1 = np.array([wasserstein_1d(dl[:, t], dt[:, t]) for t in range(horizon)], dtype=np.float64)
    return PairedDrift(
        gap_mean=float(g[defined].mean()) if defined.size else float("nan"),
        gap_final=float(g[defined[-1]]) if defined.size else float("nan"),
        w1=_readonly(w1),
        failure_fraction=float(np.mean((fl >= 0) & (fl < horizon))),
    )


def command_success(commands: Sequence[Sequence[int]], outcomes: Sequence[Sequence[str]],
                    names: Sequence[str] = ("follow", "left", "right")) -> dict[str, tuple[int, int]]:
    """Command success counts at forks: ``{name: (passed, attempted)}`` per command, and ``"all"``.

    ``SR_c = #{attempted passages with command c that were passed} / #{attempted passages with command c}``,
    pooled over episodes; ``"all"`` pools every command. A name with no attempt gets ``(0, 0)`` (its
    rate undefined: report it as such, never as 0).

    Args:
        commands, outcomes: per episode, the attempted passages' command codes (indices into ``names``)
            and outcomes, ``"passed"`` or ``"failed"``, in the same order.
        names: the command names by code.

    Returns:
        ``{name: (k, n)}`` for every name, then ``"all"``; feed ``(k, n)`` to a Wilson interval.
    """
    if len(commands) != len(outcomes):
        raise ValueError(f"command_success: {len(commands)} episodes of commands, {len(outcomes)} of outcomes")
    passed = np.zeros(len(names), np.int64)
    tried = np.zeros(len(names), np.int64)
    for e, (cs, os_) in enumerate(zip(commands, outcomes)):
        if len(cs) != len(os_):
            raise ValueError(f"command_success: episode {e} has {len(cs)} commands and {len(os_)} outcomes")
        for c, o in zip(cs, os_):
            if not (isinstance(c, (int, np.integer)) and 0 <= c < len(names)):
                raise ValueError(f"command_success: episode {e}: command {c!r} is not a code 0..{len(names) - 1}")
            if o not in ("passed", "failed"):
                raise ValueError(f"command_success: episode {e}: outcome {o!r} is not 'passed' or 'failed'")
            tried[c] += 1
            passed[c] += o == "passed"
    out = {name: (int(passed[i]), int(tried[i])) for i, name in enumerate(names)}
    out["all"] = (int(passed.sum()), int(tried.sum()))
    return out
