"""The ranking metric: the SteerBench score and its tie-breaks.

    score = (1 / |C|) * sum_{c in C} S_c(T_max)

C is the set of crash-mode conditions of the protocol profile (steerbench-v1 full: nominal,
perturbed, photometric, traffic), each weighted equally; S_c(T_max) is the survival at the last
horizon checkpoint (T_max = 3000 steps = 300 s at 10 Hz): the fraction of condition c's episodes
with no off-road and no collision within T_max steps (benchmark/evaluation/metrics.py). The score lies in
[0, 1]; higher is better.

Entries are sorted by

1. higher score (compared to 9 decimal places);
2. then lower nominal mean |lateral offset| (crash mode, metres): of equal survivors, the one that
   keeps to the lane centre;
3. then higher nominal autonomy (intervention mode, %; an entry without it comes after those with);
4. then the earlier evaluation date (the first to reach a result keeps the place);
5. then the entry id (alphabetical), so the order is total and reproducible.
"""

from __future__ import annotations

import math
from typing import Any

from benchmark.evaluation.results import Metrics

SCORE_FORMULA = "score = (1/|C|) · Σ_{c∈C} S_c(T_max)"
SCORE_MEANING = ("the mean over the crash-mode conditions C of the survival S_c(T_max) at the last horizon, with "
                 "equal weights")
TIE_BREAKS = ("ties go to the lower nominal mean |lateral offset|, then the higher nominal autonomy, then the earlier "
              "evaluation date, then the entry id")
SCORE_TEXT = f"{SCORE_MEANING}; {TIE_BREAKS}"
DECIMALS = 9


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def score_of(metrics: Metrics | dict[str, Any]) -> dict[str, Any]:
    """The score block of an entry, computed from its metrics (typed, or as stored in the entry)."""
    if not isinstance(metrics, Metrics):
        metrics = Metrics.from_json(metrics)
    survival: dict[str, float] = {}
    for name, entry in metrics.conditions.items():
        if entry.crash is None:
            continue
        survival[name] = _number(entry.crash.final_survival) or 0.0
    crash, inter = metrics.crash("nominal"), metrics.intervention("nominal")
    offset = crash.mean_abs_offset_m.mean if crash else None
    autonomy = inter.autonomy_pct if inter else None
    value = sum(survival.values()) / len(survival) if survival else 0.0
    return {"value": value, "survival_t_max": survival, "nominal_mean_abs_offset_m": _number(offset),
            "nominal_autonomy_pct": _number(autonomy)}


def rank_key(entry: dict[str, Any]) -> tuple:
    """Sort key of an entry: see the module docstring."""
    s = score_of(entry["metrics"])
    offset = s["nominal_mean_abs_offset_m"]
    autonomy = s["nominal_autonomy_pct"]
    return (-round(s["value"], DECIMALS),
            math.inf if offset is None else round(offset, DECIMALS),
            math.inf if autonomy is None else -round(autonomy, DECIMALS),
            str(entry.get("date", "")), str(entry["id"]))


def ranked(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries in leaderboard order."""
    return sorted(entries, key=rank_key)
