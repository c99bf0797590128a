"""From per-episode records to the benchmark's metrics (definitions in benchmark/metrics.py).

Per condition, crash-mode episodes give survival S(T) and crash rates (split into off-road and
collision) at the protocol's horizon checkpoints, mean |lateral offset| and |heading error|, the
one-step teacher disagreement eps, the mean distance between failures, the cumulative cost J(T) and
its growth exponent, and the drift (total variation between the learner's and the teacher's
(d_t, psi_t) distributions, from the same start states). Intervention-mode episodes give NVIDIA's
autonomy. Aggregates carry bootstrap 95% intervals over episodes; every bootstrap uses an rng
seeded from the protocol, so the same records always give the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import metrics as M
from .protocol import Protocol

DRIFT_POINTS = 40


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _agg(values, rng) -> dict[str, Any]:
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
    a = M.aggregate(values, rng, n_boot=1000)
    return {k: (_finite(v) if k != "n" else int(v)) for k, v in a.items()}


def _arrays(records: list[dict], key: str) -> list[np.ndarray]:
    return [np.array([np.nan if v is None else v for v in r[key]], float) for r in records]


def _failure_steps(records: list[dict]) -> list[int]:
    return [r["failure_step"] if r["status"] == "crashed" else -1 for r in records]


def crash_metrics(records: list[dict], horizons: list[int], d_max: float, rng: np.random.Generator,
                  teacher: list[dict] | None, edges: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    valid = [r for r in records if r["status"] != "invalid"]
    out: dict[str, Any] = {"episodes": len(records), "invalid": len(records) - len(valid)}
    if not valid:
        return out
    fails = _failure_steps(valid)
    types = [r["failure_type"] if r["status"] == "crashed" else None for r in valid]
    by_type = M.crash_rate_by_type(fails, types, horizons)
    surv = M.survival(fails, horizons)
    crashed_by_end = np.array([f >= 0 and f < horizons[-1] for f in fails], float)
    d, psi = _arrays(valid, "d"), _arrays(valid, "psi")
    act, teach = _arrays(valid, "action"), _arrays(valid, "teacher_action")
    horizon = horizons[-1]
    costs = M.cost_matrix(d, fails, d_max, horizon)
    J = M.cumulative_cost(costs, horizons)
    growth = M.growth_exponent(costs, horizons, rng=rng, n_boot=500)
    out.update({
        "horizons": horizons,
        "survival": [float(v) for v in surv],
        "crash_rate": [float(v) for v in by_type["crash"]],
        "off_road_rate": [float(v) for v in by_type["off_road"]],
        "collision_rate": [float(v) for v in by_type["collision"]],
        "crash_rate_final": _agg(crashed_by_end, rng),
        "mean_abs_offset_m": _agg(M.per_episode_mean_abs(d, horizon), rng),
        "mean_abs_heading_rad": _agg(M.per_episode_mean_abs(psi, horizon), rng),
        "teacher_disagreement": _finite(M.teacher_disagreement(act, teach, horizon)),
        "mean_distance_between_failures_m": _finite(
            M.mean_distance_between_failures([r["distance_m"] for r in valid], [f >= 0 for f in fails])),
        "cumulative_cost": [_finite(v) for v in J],
        "growth_exponent": {"exponent": _finite(growth.exponent), "low": _finite(growth.low),
                            "high": _finite(growth.high)},
    })
    if teacher:
        by_key = {r["key"]: r for r in teacher}
        pairs = [(r, by_key[r["key"]]) for r in valid if r["key"] in by_key]
        if pairs:
            tv = M.drift_tv(
                [_arrays([a], "d")[0] for a, _ in pairs], [_arrays([a], "psi")[0] for a, _ in pairs],
                [_arrays([b], "d")[0] for _, b in pairs], [_arrays([b], "psi")[0] for _, b in pairs],
                learner_failure_steps=_failure_steps([a for a, _ in pairs]),
                teacher_failure_steps=_failure_steps([b for _, b in pairs]),
                horizon=horizon, d_edges=edges[0], psi_edges=edges[1])
            t = np.unique(np.round(np.geomspace(1, horizon, DRIFT_POINTS)).astype(int)) - 1
            out["drift"] = {"t": [int(v) for v in t], "tv": [_finite(tv[v]) for v in t],
                            "final": _finite(tv[horizon - 1])}
    return out


def intervention_metrics(records: list[dict], penalty_s: float, rng: np.random.Generator) -> dict[str, Any]:
    valid = [r for r in records if r["status"] != "invalid"]
    out: dict[str, Any] = {"episodes": len(records), "invalid": len(records) - len(valid)}
    if not valid:
        return out
    n = [r["interventions"] for r in valid]
    elapsed = [r["elapsed_s"] for r in valid]
    km = sum(r["distance_m"] for r in valid) / 1000.0
    out.update({
        "interventions": int(sum(n)),
        "elapsed_s": float(sum(elapsed)),
        "autonomy_pct": _finite(M.autonomy(n, elapsed, penalty_s)),
        "autonomy_pct_per_episode": _agg([M.autonomy([a], [b], penalty_s) for a, b in zip(n, elapsed)], rng),
        "interventions_per_km": _finite(sum(n) / km) if km > 0 else None,
        "mean_abs_offset_m": _agg(M.per_episode_mean_abs(_arrays(valid, "d")), rng),
    })
    return out


def compute_results(records: list[dict], protocol: Protocol, profile: str,
                    teacher: list[dict] | None = None) -> dict[str, Any]:
    """Metrics per condition and mode, plus the overall counts and invalid reasons."""
    horizons = protocol.horizons(profile)
    edges = protocol.drift_edges()
    out: dict[str, Any] = {
        "episodes": len(records),
        "invalid": sum(r["status"] == "invalid" for r in records),
        "invalid_reasons": sorted({r["reason"] for r in records if r["status"] == "invalid"}),
        "conditions": {},
    }
    for condition in sorted({r["condition"] for r in records}, key=lambda c: list(protocol.data["conditions"]).index(c)):
        entry: dict[str, Any] = {}
        rng = np.random.default_rng([int(protocol.data["seed"]), list(protocol.data["conditions"]).index(condition)])
        crash = [r for r in records if r["condition"] == condition and r["mode"] == "crash"]
        if crash:
            ref = [t for t in (teacher or []) if t["condition"] == condition and t["mode"] == "crash"]
            entry["crash"] = crash_metrics(crash, horizons, protocol.cost_d_max, rng, ref or None, edges)
        inter = [r for r in records if r["condition"] == condition and r["mode"] == "intervention"]
        if inter:
            entry["intervention"] = intervention_metrics(inter, protocol.penalty_s, rng)
        out["conditions"][condition] = entry
    return out


def headline(results: dict) -> dict[str, Any]:
    """A few numbers to print: nominal survival at the last horizon, autonomy, invalid episodes."""
    m = results["metrics"]
    nominal = m["conditions"].get("nominal", {})
    crash = nominal.get("crash", {})
    inter = nominal.get("intervention", {})
    return {
        "policy": results["policy"]["name"],
        "episodes": m["episodes"],
        "invalid": m["invalid"],
        "nominal_survival": crash.get("survival", [None])[-1],
        "nominal_mean_abs_offset_m": (crash.get("mean_abs_offset_m") or {}).get("mean"),
        "nominal_autonomy_pct": inter.get("autonomy_pct"),
    }
