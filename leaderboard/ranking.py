"""The ranking metric: the SteerBench score, its interval, and the tie-breaks.

    score = (1 / |C|) * sum_{c in C} S_c(T_max)

C is the set of crash-mode conditions of the protocol profile, each weighted equally
(steerbench-v2 full: disturbed, nominal, perturbed, photometric, traffic; steerbench-v1 full:
nominal, perturbed, photometric, traffic); S_c(T_max) is the survival at the last horizon checkpoint
(T_max = 3000 steps = 300 s at 10 Hz): the fraction of condition c's held-out episodes with no
off-road and no collision within T_max steps (benchmark/evaluation/metrics.py). The score lies in
[0, 1]; higher is better.

On the conditional board (leaderboard/conditional: road networks with forks, steerbench-forks-v1:
disturbed, nominal) a car that takes the other branch leaves its route's road, so S_c(T_max) is the
fraction of routes driven through every commanded branch; the command success rate is shown beside
it and does not enter the score.

From protocol version 2 on, the score has a 95% cluster-bootstrap interval over the held-out tracks
(leaderboard/outcomes.py: a track's episodes under every condition are drawn together), and each
S_c(T_max) its Wilson 95% interval.

Entries are sorted by

1. higher score (compared to 9 decimal places);
2. then lower mean |lateral offset| in the main condition (crash mode, metres; disturbed from
   version 2 on, nominal before): of equal survivors, the one that keeps to the lane centre;
3. then higher autonomy in the main condition (intervention mode, %; an entry without it comes after
   those with);
4. then the earlier evaluation date (the first to reach a result keeps the place);
5. then the entry id (alphabetical), so the order is total and reproducible.
"""

from __future__ import annotations

import math
from typing import Any

from benchmark.evaluation.results import Metrics

from .outcomes import check_outcomes, score_interval

SCORE_FORMULA = "score = (1/|C|) · Σ_{c∈C} S_c(T_max)"
SCORE_MEANING = ("the mean over the crash-mode conditions C of the survival S_c(T_max) at the last horizon, with "
                 "equal weights")
TIE_BREAKS = ("ties go to the lower mean |lateral offset| in the main condition (disturbed from protocol version 2 "
              "on, nominal before), then the higher autonomy there, then the earlier evaluation date, then the entry id")
SCORE_TEXT = f"{SCORE_MEANING}; {TIE_BREAKS}"
DECIMALS = 9


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def is_v2(metrics: Metrics) -> bool:
    """Whether the metrics are of protocol version 2 or later (they hold the paired blocks)."""
    return any(c.paired is not None for c in metrics.conditions.values())


def main_condition(metrics: Metrics) -> str:
    """The condition of the tie-breaks: disturbed from version 2 on (its main condition), else nominal."""
    return "disturbed" if is_v2(metrics) and "disturbed" in metrics.conditions else "nominal"


def score_of(metrics: Metrics | dict[str, Any], outcomes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The score block of an entry, computed from its metrics (typed, or as stored in the entry) and,
    from version 2 on, its outcomes (the score's interval)."""
    if not isinstance(metrics, Metrics):
        metrics = Metrics.from_json(metrics)
    survival: dict[str, float] = {}
    for name, entry in metrics.conditions.items():
        if entry.crash is None:
            continue
        survival[name] = _number(entry.crash.final_survival) or 0.0
    main = main_condition(metrics)
    crash, inter = metrics.crash(main), metrics.intervention(main)
    offset = crash.mean_abs_offset_m.mean if crash else None
    autonomy = inter.autonomy_pct if inter else None
    value = sum(survival.values()) / len(survival) if survival else 0.0
    if not is_v2(metrics):
        return {"value": value, "survival_t_max": survival, "nominal_mean_abs_offset_m": _number(offset),
                "nominal_autonomy_pct": _number(autonomy)}
    low = high = None
    if outcomes is not None:
        t_max = next(c.crash.horizons[-1] for c in metrics.conditions.values() if c.crash and c.crash.horizons)
        _, low, high = score_interval(check_outcomes(outcomes), t_max)
    wilson = {}
    for name, entry in metrics.conditions.items():
        if entry.crash is not None and entry.paired is not None:
            c = entry.paired.crashes
            wilson[name] = [_number(None if c.high is None else 1.0 - c.high),
                            _number(None if c.low is None else 1.0 - c.low)]
    return {"value": value, "low": _number(low), "high": _number(high), "survival_t_max": survival,
            "survival_interval": wilson, "main_condition": main, "mean_abs_offset_m": _number(offset),
            "autonomy_pct": _number(autonomy)}


def _tie_values(score: dict[str, Any]) -> tuple[float | None, float | None]:
    if "main_condition" in score:
        return score["mean_abs_offset_m"], score["autonomy_pct"]
    return score["nominal_mean_abs_offset_m"], score["nominal_autonomy_pct"]


def rank_key(entry: dict[str, Any]) -> tuple:
    """Sort key of an entry: see the module docstring."""
    s = score_of(entry["metrics"])  # from the metrics, never the stored block (verify checks that they agree)
    offset, autonomy = _tie_values(s)
    return (-round(s["value"], DECIMALS),
            math.inf if offset is None else round(offset, DECIMALS),
            math.inf if autonomy is None else -round(autonomy, DECIMALS),
            str(entry.get("date", "")), str(entry["id"]))


def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries in leaderboard order."""
    return sorted(entries, key=rank_key)
