"""An entry's per-episode outcomes (protocol version 2 on), and the statistics the board draws from them.

    outcomes   {condition: {track: [failure step or null, one per episode]}}
               every crash-mode condition's held-out episodes (the seen built-in tracks are not
               scored); the failure step (0-based) only when the policy failed, null when it drove
               to the end of the episode

The score's interval and the comparison of two entries need whole tracks, the unit that is
resampled (a track's episodes under its conditions are correlated), and the aggregate metrics no
longer hold them. Every entry of a board was evaluated on the same episodes, so two entries
compare track by track: a paired bootstrap of their score difference over tracks.

Bootstraps here draw from a fixed seed (BOOTSTRAP_SEED), so a rebuilt board is byte for byte the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmark.evaluation.records import EpisodeRecord
from benchmark.evaluation.statistics import PairedDifference, cluster_bootstrap, paired_bootstrap

BOOTSTRAP_SEED = 20261201
N_BOOT = 4000
SEPARABLE_P = 0.05
"""Two neighbours are "separable" when the paired test's two-sided p-value is below this."""


def outcomes_of(records: Sequence[EpisodeRecord], seen_tracks: Sequence[str]) -> dict[str, dict[str, list]]:
    """The outcomes block of an evaluation's records: its held-out crash-mode episodes."""
    seen = {str(t) for t in seen_tracks}
    out: dict[str, dict[str, list]] = {}
    for r in sorted(records, key=lambda r: (r.condition, r.track, r.index)):
        if r.mode != "crash" or r.track in seen or not r.valid:  # an invalid episode rejects the entry
            continue
        out.setdefault(r.condition, {}).setdefault(r.track, []).append(int(r.failure_step) if r.crashed else None)
    return out


def check_outcomes(outcomes: Any, where: str = "outcomes") -> dict[str, dict[str, list]]:
    """The outcomes block as stored, or ValueError naming what is malformed."""
    if not isinstance(outcomes, dict):
        raise ValueError(f"{where}: not an object")
    for condition, tracks in outcomes.items():
        if not isinstance(tracks, dict) or not tracks:
            raise ValueError(f"{where}.{condition}: not an object of tracks")
        for track, steps in tracks.items():
            if not isinstance(steps, list) or not steps or not all(
                    s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 0) for s in steps):
                raise ValueError(f"{where}.{condition}.{track}: not a list of failure steps (int >= 0 or null)")
    return outcomes


def survived(outcomes: dict[str, dict[str, list]], t_max: int) -> tuple[np.ndarray, np.ndarray]:
    """(1.0 where an episode survived T_max steps else 0.0, its track): one value per episode of every
    condition. A failure at step index t means the policy survived t steps."""
    values, clusters = [], []
    for condition in sorted(outcomes):
        for track, steps in sorted(outcomes[condition].items()):
            for s in steps:
                values.append(0.0 if s is not None and s < t_max else 1.0)
                clusters.append(track)
    return np.asarray(values, float), np.asarray(clusters, dtype=object)


def score_interval(outcomes: dict[str, dict[str, list]], t_max: int) -> tuple[float, float, float]:
    """(score, low, high): the mean survival over every condition's episodes (the score, when every
    condition has the same episodes) and its 95% cluster-bootstrap interval over tracks."""
    values, clusters = survived(outcomes, t_max)
    if values.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    return cluster_bootstrap(values, clusters.astype(str), rng, n_boot=N_BOOT)


def _per_track(outcomes: dict[str, dict[str, list]], t_max: int) -> dict[str, float]:
    values, clusters = survived(outcomes, t_max)
    out: dict[str, list[float]] = {}
    for v, c in zip(values, clusters):
        out.setdefault(str(c), []).append(float(v))
    return {k: float(np.mean(v)) for k, v in out.items()}


def compare(a: dict[str, dict[str, list]], b: dict[str, dict[str, list]], t_max: int) -> PairedDifference:
    """Entry a's score minus entry b's, paired by track: the mean per-track difference of survival
    over the conditions, its 95% bootstrap interval (tracks resampled) and its two-sided p-value.
    ValueError when the two were not evaluated on the same episodes."""
    if {c: {t: len(s) for t, s in v.items()} for c, v in a.items()} != \
            {c: {t: len(s) for t, s in v.items()} for c, v in b.items()}:
        raise ValueError("the two entries' outcomes are not of the same episodes")
    x, y = _per_track(a, t_max), _per_track(b, t_max)
    tracks = sorted(x)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    return paired_bootstrap([x[t] for t in tracks], [y[t] for t in tracks], rng, n_boot=N_BOOT)


def separable(diff: PairedDifference) -> bool:
    return math.isfinite(diff.p_value) and diff.p_value < SEPARABLE_P
