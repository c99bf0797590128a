"""The results document: typed metrics computed from episode records, written and read as JSON.

Per condition, crash-mode episodes give survival S(T) and crash rates (split into off-road and
collision) at the protocol's horizon checkpoints, mean |lateral offset| and |heading error|, the
one-step teacher disagreement eps, the mean distance between failures, the cumulative cost J(T) and
its growth exponent, and the drift (total variation between the learner's and the teacher's
(d_t, psi_t) distributions, from the same start states). Intervention-mode episodes give NVIDIA's
autonomy. Aggregates carry bootstrap 95% intervals over episodes; every bootstrap uses an rng
seeded from the protocol, so the same records always give the same numbers. Definitions are in
benchmark/evaluation/metrics.py.

`results.json` is a `Results`: schema and protocol versions, the policy (kind, name, sha256), the
provenance (git commit, package versions, hardware, date) and the `Metrics`. Non-finite numbers
are null. `load_result` / `load_results` are the only readers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import metrics as M
from .protocol import CONDITIONS, Protocol, ProtocolError, load_protocol
from .records import EpisodeRecord, read_records
from .statistics import cluster_bootstrap, kaplan_meier, wilson_interval

SCHEMA_VERSION = 1
"""Results of a version-1 protocol (the v1 metrics only)."""
SCHEMA_VERSION_V2 = 2
"""Results of a version-2 protocol: the v1 blocks on the held-out tracks plus `paired` per condition."""
KNOWN_SCHEMA_VERSIONS = (1, 2)
"""results.json schema versions this module reads."""
REGRET_POINTS = 24
"""Steps at which the v2 curves (dJ, eps_t, the paired gap) are stored: geometric from 1 to the horizon."""
DRIFT_POINTS = 40

ResultsInput = str | Path | Sequence[str | Path]
"""One results directory or results.json path, or several."""


class ResultsError(ValueError):
    """A results.json that cannot be read, has an unknown schema, or does not go with the others."""


def _finite(x: Any) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _strict(cls, data: Any, where: str) -> dict[str, Any]:
    """`data` checked to be a mapping with only the fields of `cls` (missing ones get their defaults)."""
    if not isinstance(data, dict):
        raise ResultsError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ResultsError(f"{where}: unknown key {unknown[0]!r}")
    return dict(data)


class _Json:
    """JSON for the frozen dataclasses of the document: fields in order, nested parts by `_NESTED`."""

    _NESTED: ClassVar[dict[str, type]] = {}

    def to_json(self) -> dict[str, Any]:
        return {f.name: (v.to_json() if isinstance(v := getattr(self, f.name), _Json) else v) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any, where: str = ""):
        where = where or cls.__name__
        d = _strict(cls, data, where)
        for name, kind in cls._NESTED.items():
            if d.get(name) is not None:
                d[name] = kind.from_json(d[name], f"{where}.{name}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise ResultsError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Interval(_Json):
    """A mean with its 95% bootstrap interval over `n` episodes (and the interquartile mean)."""

    mean: float | None
    ci_low: float | None
    ci_high: float | None
    iqm: float | None
    n: int

    @classmethod
    def of(cls, values: Iterable[float], rng: np.random.Generator) -> Interval:
        values = np.asarray([v for v in values if v is not None and math.isfinite(v)], float)
        a = M.aggregate(values, rng, n_boot=1000)
        return cls(_finite(a["mean"]), _finite(a["ci_low"]), _finite(a["ci_high"]), _finite(a["iqm"]), int(a["n"]))


@dataclass(frozen=True)
class Growth(_Json):
    """The growth exponent of J(T) with its bootstrap interval."""

    exponent: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Drift(_Json):
    """TV distance to the teacher's state distribution at steps t (0-based), and at the last step."""

    t: list[int]
    tv: list[float | None]
    final: float | None


@dataclass(frozen=True)
class _Counts(_Json):
    """A mode's episode counts; when no episode is valid, they are all its JSON holds."""

    episodes: int
    invalid: int

    @property
    def valid(self) -> int:
        return self.episodes - self.invalid

    def to_json(self) -> dict[str, Any]:
        if self.valid <= 0:
            return {"episodes": self.episodes, "invalid": self.invalid}
        return super().to_json()


@dataclass(frozen=True)
class CrashMetrics(_Counts):
    """Crash-mode metrics of one condition; everything but the counts is None when no episode is valid."""

    horizons: list[int] | None = None
    survival: list[float] | None = None
    crash_rate: list[float] | None = None
    off_road_rate: list[float] | None = None
    collision_rate: list[float] | None = None
    crash_rate_final: Interval | None = None
    mean_abs_offset_m: Interval | None = None
    mean_abs_heading_rad: Interval | None = None
    teacher_disagreement: float | None = None
    mean_distance_between_failures_m: float | None = None
    cumulative_cost: list[float | None] | None = None
    growth_exponent: Growth | None = None
    drift: Drift | None = None
    """Absent without the teacher's records (and for the teacher itself)."""

    _NESTED: ClassVar[dict[str, type]] = {"crash_rate_final": Interval, "mean_abs_offset_m": Interval,
                                          "mean_abs_heading_rad": Interval, "growth_exponent": Growth, "drift": Drift}

    @property
    def final_survival(self) -> float | None:
        return self.survival[-1] if self.survival else None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        if self.drift is None:
            out.pop("drift", None)
        return out


@dataclass(frozen=True)
class InterventionMetrics(_Counts):
    """Intervention-mode metrics of one condition (NVIDIA's autonomy)."""

    interventions: int | None = None
    elapsed_s: float | None = None
    autonomy_pct: float | None = None
    autonomy_pct_per_episode: Interval | None = None
    interventions_per_km: float | None = None
    mean_abs_offset_m: Interval | None = None

    _NESTED: ClassVar[dict[str, type]] = {"autonomy_pct_per_episode": Interval, "mean_abs_offset_m": Interval}


@dataclass(frozen=True)
class Proportion(_Json):
    """k of n, with its Wilson 95% interval (0 of n is not [0, 0])."""

    k: int
    n: int
    rate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, k: int, n: int) -> Proportion:
        if n <= 0:
            return cls(int(k), int(n), None, None, None)
        low, high = wilson_interval(int(k), int(n))
        return cls(int(k), int(n), k / n, _finite(low), _finite(high))


@dataclass(frozen=True)
class Curve(_Json):
    """A metric at steps t (0-based; horizon T = t + 1 where the metric is cumulative), with an
    optional pointwise 95% band."""

    t: list[int]
    value: list[float | None]
    low: list[float | None] | None = None
    high: list[float | None] | None = None


@dataclass(frozen=True)
class Regret(_Json):
    """Paired regret dJ(T) = J_learner(T) - J_teacher(T) on the same episodes, and its log-log slope
    over [t_lo, t_hi] (theory: near 2 when errors compound, near 1 for recoverable mistakes)."""

    curve: Curve
    """dJ at horizons T (stored in `t`)."""
    slope: float | None
    t_lo: int
    t_hi: int
    points: int
    slope_low: float | None = None
    slope_high: float | None = None
    """95% bootstrap interval of the slope: tracks resampled with their pairs, over the same window."""

    _NESTED: ClassVar[dict[str, type]] = {"curve": Curve}


@dataclass(frozen=True)
class Mistakes(_Json):
    """The mistake rate: steps with |a - a*| > tau. eps_t against t on the policy's own rollouts (the
    curve: its mean over the steps of each geometric bin up to t), its slope per decade of t, pooled
    eps_on, eps_off on the teacher's trajectories (offpolicy mode) and their ratio."""

    tau_per_m: float
    curve: Curve
    slope_per_decade: float | None
    eps_on: Proportion
    """Pooled over steps; its Wilson interval treats steps as independent, so it is too narrow."""
    eps_off: Proportion | None
    covariate_shift_ratio: float | None
    slope_low: float | None = None
    slope_high: float | None = None
    """95% bootstrap interval of the slope (tracks resampled)."""
    ratio_low: float | None = None
    ratio_high: float | None = None
    """95% bootstrap interval of eps_on / eps_off (tracks resampled, each side on its own episodes)."""

    _NESTED: ClassVar[dict[str, type]] = {"curve": Curve, "eps_on": Proportion, "eps_off": Proportion}


@dataclass(frozen=True)
class ExcursionMetrics(_Json):
    """Excursions (|d| above onset_m) per km, with a 95% cluster-bootstrap interval over tracks (the
    ratio of the drawn tracks' onsets to their km), and the probability that one recovers (Wilson)."""

    onsets: int
    km: float
    onset_rate_per_km: float | None
    recovery: Proportion
    censored: int
    rate_low: float | None = None
    rate_high: float | None = None

    _NESTED: ClassVar[dict[str, type]] = {"recovery": Proportion}


@dataclass(frozen=True)
class PairedDriftMetrics(_Json):
    """Mean |d_policy - d_teacher| on paired episodes while both drive (cluster-bootstrap interval over
    tracks), the teacher-vs-teacher floor (the teacher under a second disturbance stream), W1 of d
    against the teacher's at t, and the failure fraction that the gap leaves out."""

    gap_m: Interval
    floor_m: float | None
    gap: Curve
    w1: Curve
    failure_fraction: Proportion

    _NESTED: ClassVar[dict[str, type]] = {"gap_m": Interval, "gap": Curve, "w1": Curve,
                                          "failure_fraction": Proportion}


@dataclass(frozen=True)
class Family(_Json):
    """One track family: the seen built-ins, or held-out tracks by their sharpest turn."""

    family: str
    crashes: Proportion
    route_completion: float | None

    _NESTED: ClassVar[dict[str, type]] = {"crashes": Proportion}


@dataclass(frozen=True)
class PairedMetrics(_Json):
    """The version-2 metrics of one condition's held-out crash episodes (benchmark/evaluation/metrics.py,
    section 11). Whatever needs the teacher's (or straight-ahead's) records is None without them."""

    episodes: int
    crashes: Proportion
    """Episodes that failed within the last horizon."""
    survival: Curve
    """Kaplan-Meier S(T) at the horizons, Greenwood 95% band (log-log)."""
    km_between_failures: float | None
    """Kilometres driven per failure (None without failures)."""
    route_completion: Interval
    """Fraction of the intended distance driven before failure, cluster bootstrap over tracks."""
    normalised_score: float | None
    """Route completion rescaled: 0 = straight-ahead, 1 = the teacher."""
    mistakes: Mistakes
    excursions: ExcursionMetrics
    regret: Regret | None = None
    drift: PairedDriftMetrics | None = None
    families: list[Family] = field(default_factory=list)

    _NESTED: ClassVar[dict[str, type]] = {"crashes": Proportion, "survival": Curve, "route_completion": Interval,
                                          "mistakes": Mistakes, "excursions": ExcursionMetrics, "regret": Regret,
                                          "drift": PairedDriftMetrics}

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["families"] = [f.to_json() for f in self.families]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "paired") -> PairedMetrics:
        d = dict(_strict(cls, data, where))
        d["families"] = [Family.from_json(f, f"{where}.families") for f in d.get("families") or []]
        return super(PairedMetrics, cls).from_json(d, where)


@dataclass(frozen=True)
class CommandMetrics(_Json):
    """Command success at forks (metrics.command_success), crash-mode episodes of held-out networks:
    passages passed of those attempted, per command and in all, with Wilson intervals."""

    left: Proportion
    right: Proportion
    all: Proportion

    _NESTED: ClassVar[dict[str, type]] = {"left": Proportion, "right": Proportion, "all": Proportion}


@dataclass(frozen=True)
class ConditionMetrics(_Json):
    crash: CrashMetrics | None = None
    intervention: InterventionMetrics | None = None
    paired: PairedMetrics | None = None
    """Version 2 only."""
    commands: CommandMetrics | None = None
    """On road networks with forks only."""

    _NESTED: ClassVar[dict[str, type]] = {"crash": CrashMetrics, "intervention": InterventionMetrics,
                                          "paired": PairedMetrics, "commands": CommandMetrics}

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if v is not None}


@dataclass(frozen=True)
class Metrics(_Json):
    """Every condition's metrics and the overall counts."""

    episodes: int
    invalid: int
    invalid_reasons: list[str]
    conditions: dict[str, ConditionMetrics]

    def crash(self, condition: str = "nominal") -> CrashMetrics | None:
        """Crash-mode metrics of a condition; None when absent or when every episode was invalid."""
        c = self.conditions.get(condition)
        return c.crash if c is not None and c.crash is not None and c.crash.valid > 0 else None

    def intervention(self, condition: str = "nominal") -> InterventionMetrics | None:
        c = self.conditions.get(condition)
        return c.intervention if c is not None and c.intervention is not None and c.intervention.valid > 0 else None

    def to_json(self) -> dict[str, Any]:
        return {"episodes": self.episodes, "invalid": self.invalid, "invalid_reasons": list(self.invalid_reasons),
                "conditions": {k: v.to_json() for k, v in self.conditions.items()}}

    @classmethod
    def from_json(cls, data: Any, where: str = "metrics") -> Metrics:
        d = _strict(cls, data, where)
        missing = [f.name for f in fields(cls) if f.name not in d]
        if missing:
            raise ResultsError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(d["conditions"], dict):
            raise ResultsError(f"{where}.conditions: expected an object")
        return cls(int(d["episodes"]), int(d["invalid"]), list(d["invalid_reasons"]),
                   {k: ConditionMetrics.from_json(v, f"{where}.conditions.{k}") for k, v in d["conditions"].items()})


@dataclass(frozen=True)
class ProtocolRef(_Json):
    name: str
    sha256: str | None
    profile: str
    horizons: list[int]


@dataclass(frozen=True)
class PolicyRef(_Json):
    kind: str
    name: str
    sha256: str | None


@dataclass(frozen=True)
class Results(_Json):
    """One policy's results.json."""

    schema_version: int
    protocol: ProtocolRef
    policy: PolicyRef
    git_sha: str
    packages: dict[str, str]
    hardware: dict[str, Any]
    date: str
    records: str
    """records.jsonl, beside results.json."""
    metrics: Metrics

    @classmethod
    def from_json(cls, data: Any, where: str = "results") -> Results:
        if not isinstance(data, dict):
            raise ResultsError(f"{where}: not a results file (expected a JSON object)")
        version = data.get("schema_version")
        if version not in KNOWN_SCHEMA_VERSIONS:
            known = ", ".join(str(v) for v in KNOWN_SCHEMA_VERSIONS)
            raise ResultsError(f"{where}: unknown schema_version {version!r} (this SteerBench reads schema_version "
                               f"{known}); re-evaluate the policy or update SteerBench")
        missing = [k for k in ("protocol", "policy", "metrics") if not isinstance(data.get(k), dict)]
        if missing:
            raise ResultsError(f"{where}: missing {', '.join(missing)}")
        for k in ("name", "profile", "horizons"):
            if k not in data["protocol"]:
                raise ResultsError(f"{where}: protocol has no {k!r}")
        if "name" not in data["policy"]:
            raise ResultsError(f"{where}: policy has no 'name'")
        d = _strict(cls, data, where)
        p, q = data["protocol"], data["policy"]
        return cls(schema_version=int(version),
                   protocol=ProtocolRef(str(p["name"]), p.get("sha256"), str(p["profile"]),
                                        [int(h) for h in p["horizons"]]),
                   policy=PolicyRef(str(q.get("kind", "")), str(q["name"]), q.get("sha256")),
                   git_sha=str(d.get("git_sha", "unknown")), packages=dict(d.get("packages") or {}),
                   hardware=dict(d.get("hardware") or {}), date=str(d.get("date", "")),
                   records=str(d.get("records", "records.jsonl")),
                   metrics=Metrics.from_json(data["metrics"], f"{where}: metrics"))


# ------------------------------------------------------------------------------------------------
# Records -> metrics
# ------------------------------------------------------------------------------------------------


def _failure_steps(records: Sequence[EpisodeRecord]) -> list[int]:
    return [r.failure_step if r.crashed else -1 for r in records]


def crash_metrics(records: Sequence[EpisodeRecord], horizons: list[int], d_max: float, rng: np.random.Generator,
                  teacher: Sequence[EpisodeRecord] | None, edges: tuple[np.ndarray, np.ndarray]) -> CrashMetrics:
    valid = [r for r in records if r.valid]
    if not valid:
        return CrashMetrics(len(records), len(records))
    fails = _failure_steps(valid)
    types = [r.failure_type if r.crashed else None for r in valid]
    by_type = M.crash_rate_by_type(fails, types, horizons)
    surv = M.survival(fails, horizons)
    crashed_by_end = np.array([f >= 0 and f < horizons[-1] for f in fails], float)
    d, psi = [r.series("d") for r in valid], [r.series("psi") for r in valid]
    act, teach = [r.series("action") for r in valid], [r.series("teacher_action") for r in valid]
    horizon = horizons[-1]
    costs = M.cost_matrix(d, fails, d_max, horizon)
    J = M.cumulative_cost(costs, horizons)
    growth = M.growth_exponent(costs, horizons, rng=rng, n_boot=500)
    crash_rate_final = Interval.of(crashed_by_end, rng)
    mean_abs_offset = Interval.of(M.per_episode_mean_abs(d, horizon), rng)
    mean_abs_heading = Interval.of(M.per_episode_mean_abs(psi, horizon), rng)
    drift = None
    if teacher:
        by_key = {r.key: r for r in teacher}
        pairs = [(r, by_key[r.key]) for r in valid if r.key in by_key]
        if pairs:
            tv = M.drift_tv(
                [a.series("d") for a, _ in pairs], [a.series("psi") for a, _ in pairs],
                [b.series("d") for _, b in pairs], [b.series("psi") for _, b in pairs],
                learner_failure_steps=_failure_steps([a for a, _ in pairs]),
                teacher_failure_steps=_failure_steps([b for _, b in pairs]),
                horizon=horizon, d_edges=edges[0], psi_edges=edges[1])
            t = np.unique(np.round(np.geomspace(1, horizon, DRIFT_POINTS)).astype(int)) - 1
            drift = Drift([int(v) for v in t], [_finite(tv[v]) for v in t], _finite(tv[horizon - 1]))
    return CrashMetrics(
        episodes=len(records), invalid=len(records) - len(valid), horizons=horizons,
        survival=[float(v) for v in surv], crash_rate=[float(v) for v in by_type["crash"]],
        off_road_rate=[float(v) for v in by_type["off_road"]],
        collision_rate=[float(v) for v in by_type["collision"]],
        crash_rate_final=crash_rate_final, mean_abs_offset_m=mean_abs_offset, mean_abs_heading_rad=mean_abs_heading,
        teacher_disagreement=_finite(M.teacher_disagreement(act, teach, horizon)),
        mean_distance_between_failures_m=_finite(
            M.mean_distance_between_failures([r.distance_m for r in valid], [f >= 0 for f in fails])),
        cumulative_cost=[_finite(v) for v in J],
        growth_exponent=Growth(_finite(growth.exponent), _finite(growth.low), _finite(growth.high)),
        drift=drift)


def intervention_metrics(records: Sequence[EpisodeRecord], penalty_s: float,
                         rng: np.random.Generator) -> InterventionMetrics:
    valid = [r for r in records if r.valid]
    if not valid:
        return InterventionMetrics(len(records), len(records))
    n = [r.interventions for r in valid]
    elapsed = [r.elapsed_s for r in valid]
    km = sum(r.distance_m for r in valid) / 1000.0
    per_episode = Interval.of([M.autonomy([a], [b], penalty_s) for a, b in zip(n, elapsed)], rng)
    return InterventionMetrics(
        episodes=len(records), invalid=len(records) - len(valid), interventions=int(sum(n)),
        elapsed_s=float(sum(elapsed)), autonomy_pct=_finite(M.autonomy(n, elapsed, penalty_s)),
        autonomy_pct_per_episode=per_episode,
        interventions_per_km=_finite(sum(n) / km) if km > 0 else None,
        mean_abs_offset_m=Interval.of(M.per_episode_mean_abs([r.series("d") for r in valid]), rng))


def _geometric_steps(horizon: int, points: int = REGRET_POINTS) -> list[int]:
    return sorted({int(v) for v in np.round(np.geomspace(1, horizon, points))})


def _curve(t: Sequence[int], values: np.ndarray, low=None, high=None) -> Curve:
    return Curve([int(v) for v in t], [_finite(v) for v in values],
                 None if low is None else [_finite(v) for v in low], None if high is None else [_finite(v) for v in high])


def _family(track: str, bins: Sequence[float], seen: bool) -> str:
    """seen, forks (a road network with forks), or gentle / medium / sharp ... by the sharpest turn of a
    held-out procedural track."""
    if seen:
        return "seen"
    if track.startswith("fork-"):
        return "forks"
    from envs import sharpest_curvature

    k = sharpest_curvature(int(track.split("-", 1)[1]))
    names = FAMILY_NAMES[len(bins)] if len(bins) in FAMILY_NAMES else [f"bin{i}" for i in range(len(bins) + 1)]
    return names[int(np.searchsorted(np.asarray(bins), k, side="right"))]


FAMILY_NAMES = {2: ["gentle", "medium", "sharp"], 1: ["gentle", "sharp"], 0: ["all"]}


def paired_metrics(records: Sequence[EpisodeRecord], seen: Sequence[EpisodeRecord],
                   offpolicy: Sequence[EpisodeRecord], protocol: Protocol, horizons: list[int], max_steps: int,
                   rng: np.random.Generator, teacher: Sequence[EpisodeRecord] | None,
                   straight: Sequence[EpisodeRecord] | None, floor_m: float | None,
                   own_replicas: bool = False) -> PairedMetrics | None:
    """The version-2 metrics of one condition: `records` are the policy's held-out crash episodes,
    `seen` its crash episodes on the seen tracks (families only), `offpolicy` its offpolicy episodes
    (eps_off); `teacher` / `straight` the references' crash records with the same keys (for the
    teacher itself: its replicas, `own_replicas`, which give the drift floor and no regret);
    `floor_m` the teacher-vs-teacher mean paired gap."""
    spec = protocol.metrics
    valid = [r for r in records if r.valid]
    if not valid or spec is None:
        return None
    horizon = horizons[-1]
    fails = _failure_steps(valid)
    n = len(valid)
    crashed = [0 <= f < horizon for f in fails]
    km = kaplan_meier([f if c else min(r.steps, horizon) for r, f, c in zip(valid, fails, crashed)], crashed)
    # S(T) counts failures at steps t < T: read the curve just before T
    survival = Curve(list(horizons), [_finite(km.at(h - 0.5)) for h in horizons],
                     [_finite(_band(km, h - 0.5, "low")) for h in horizons],
                     [_finite(_band(km, h - 0.5, "high")) for h in horizons])
    n_fail = sum(crashed)
    rc = M.route_completion(fails, [len(r.d) for r in valid], max_steps)
    rc_mean, rc_low, rc_high = cluster_bootstrap(rc, [r.track for r in valid], rng, n_boot=1000)
    route = Interval(_finite(rc_mean), _finite(rc_low), _finite(rc_high), _finite(M.iqm(rc)), int(rc.size))

    steps = _geometric_steps(horizon)
    at = [t - 1 for t in steps]  # per-step series at step t - 1, cumulative ones at T = t
    act, teach = [r.series("action") for r in valid], [r.series("teacher_action") for r in valid]
    tau = spec.mistake_tau_per_m
    # per-episode rows, reduced here and for every bootstrap draw below (rows index episodes)
    mistake, alive = M.mistake_indicators(act, teach, fails, tau, horizon=horizon)
    eps_t = M.mistake_rate_of(mistake, alive)
    k_each, n_each = mistake.sum(axis=1), alive.sum(axis=1)
    k_on, n_on = int(k_each.sum()), int(n_each.sum())
    eps_off = ratio = None
    if off := [r for r in offpolicy if r.valid]:
        off_mistake, off_alive = M.mistake_indicators([r.series("action") for r in off],
                                                      [r.series("teacher_action") for r in off], _failure_steps(off),
                                                      tau, horizon=horizon)
        k_off_each, n_off_each = off_mistake.sum(axis=1), off_alive.sum(axis=1)
        k_off, n_off = int(k_off_each.sum()), int(n_off_each.sum())
        eps_off = Proportion.of(k_off, n_off)
        if n_on and n_off:
            ratio = _finite(M.covariate_shift_ratio(k_on / n_on, k_off / n_off))
    # eps_t is noisy step by step: store its mean over the steps of each geometric bin (t_prev, t]
    edges = [0, *steps]
    binned = [_nanmean(eps_t[lo:hi]) for lo, hi in zip(edges[:-1], edges[1:])]
    # bootstrap over episodes (v2 has one per track and condition, so over tracks): the eps_t slope,
    # and the ratio with each drawn episode's offpolicy replay
    draws = rng.integers(0, n, (BOOTSTRAP_SLOPES, n))
    slopes = [M.mistake_rate_slope(M.mistake_rate_of(mistake[b], alive[b])) for b in draws]
    ratios = []
    if off:
        # the offpolicy row replaying each crash episode
        off_row = {r.key.replace("|offpolicy|", "|crash|"): j for j, r in enumerate(off)}
        for b in draws:
            o = [off_row[valid[i].key] for i in b if valid[i].key in off_row]
            if not o:
                continue
            k1, n1 = int(k_each[b].sum()), int(n_each[b].sum())
            k2, n2 = int(k_off_each[o].sum()), int(n_off_each[o].sum())
            if n1 and n2:
                ratios.append(M.covariate_shift_ratio(k1 / n1, k2 / n2))
    s_lo, s_hi = _quantiles(slopes)
    r_lo, r_hi = _quantiles(ratios)
    mistakes = Mistakes(tau, _curve(steps, np.asarray(binned)), _finite(M.mistake_rate_slope(eps_t)),
                        Proportion.of(k_on, n_on), eps_off, ratio, s_lo, s_hi, r_lo, r_hi)

    ex = M.excursions([r.series("d") for r in valid], fails, [r.distance_m for r in valid],
                      onset_m=spec.excursion_onset_m, recover_m=spec.excursion_recover_m)
    # per episode, for the interval: the rate of the drawn episodes is sum(onsets) / sum(km)
    onsets = np.array([M.excursions([r.series("d")], [f], [r.distance_m], onset_m=spec.excursion_onset_m,
                                    recover_m=spec.excursion_recover_m).onsets for r, f in zip(valid, fails)], float)
    km_each = np.array([r.distance_m / 1000.0 for r in valid])
    rates = [onsets[b].sum() / km_each[b].sum() for b in draws if km_each[b].sum() > 0]
    e_lo, e_hi = _quantiles(rates)
    excursions = ExcursionMetrics(ex.onsets, float(ex.km), _finite(ex.onset_rate_per_km),
                                  Proportion.of(ex.recovered, ex.recovered + ex.failed), ex.censored, e_lo, e_hi)

    regret = drift = score = None
    by_key = {r.key: r for r in teacher or [] if r.valid}
    if by_key and all(r.key in by_key for r in valid):
        ref = [by_key[r.key] for r in valid]
        f_t = _failure_steps(ref)
        c_l = M.cost_matrix([r.series("d") for r in valid], fails, protocol.cost_d_max_m, horizon)
        c_t = M.cost_matrix([r.series("d") for r in ref], f_t, protocol.cost_d_max_m, horizon)
        dj = M.paired_regret(c_l, c_t)
        slope = M.regret_slope(dj, M.survival(fails, np.arange(horizon + 1)), t_min=spec.regret_t_min,
                               min_survival=spec.regret_min_survival)
        if not own_replicas:  # the teacher against its replica: the drift floor only, no regret slope
            lo = hi = None
            if slope.t_hi >= slope.t_lo:  # the same window in every resample: S = 1 up to t_hi, then 0
                window = (np.arange(horizon + 1) <= slope.t_hi).astype(float)
                boots = [M.regret_slope(M.paired_regret(c_l[b], c_t[b]), window, t_min=spec.regret_t_min,
                                        min_survival=0.5).slope for b in draws]
                lo, hi = _quantiles(boots)
            regret = Regret(_curve(steps, dj[steps]), _finite(slope.slope), int(slope.t_lo), int(slope.t_hi),
                            int(slope.n_points), lo, hi)
        d_l, d_t = [r.series("d") for r in valid], [r.series("d") for r in ref]
        gaps = M.paired_offset_gap(d_l, d_t, fails, f_t, horizon=horizon)
        w1 = M.paired_drift(d_l, d_t, fails, f_t, horizon).w1
        per_episode = [_nanmean(M.paired_offset_gap([x], [y], [a], [b], horizon=horizon))
                       for x, y, a, b in zip(d_l, d_t, fails, f_t)]
        g_mean, g_low, g_high = cluster_bootstrap(per_episode, [r.track for r in valid], rng, n_boot=1000)
        finite = [v for v in per_episode if math.isfinite(v)]
        gap_m = Interval(_finite(g_mean), _finite(g_low), _finite(g_high),
                         _finite(M.iqm(finite)) if finite else None, len(finite))
        drift = PairedDriftMetrics(gap_m, floor_m, _curve(steps, gaps[at]), _curve(steps, w1[at]),
                                   Proportion.of(n_fail, n))
        s_by_key = {r.key: r for r in straight or [] if r.valid}
        if straight and all(r.key in s_by_key for r in valid):
            s_recs = [s_by_key[r.key] for r in valid]
            rc_t = M.route_completion(f_t, [len(r.d) for r in ref], max_steps).mean()
            rc_s = M.route_completion(_failure_steps(s_recs), [len(r.d) for r in s_recs], max_steps).mean()
            score = _finite(M.normalised_score(float(rc.mean()), float(rc_s), float(rc_t)))

    return PairedMetrics(
        episodes=n, crashes=Proportion.of(n_fail, n), survival=survival,
        km_between_failures=_finite(sum(r.distance_m for r in valid) / 1000.0 / n_fail) if n_fail else None,
        route_completion=route, normalised_score=score, mistakes=mistakes, excursions=excursions, regret=regret,
        drift=drift, families=_families(valid, [r for r in seen if r.valid], protocol, horizon, max_steps))


BOOTSTRAP_SLOPES = 200
"""Resamples of the v2 slopes' and ratio's bootstrap intervals (each recomputes a whole curve)."""


def _quantiles(values) -> tuple[float | None, float | None]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], float)
    if v.size < 10:  # too few finite resamples for a 95% interval
        return None, None
    lo, hi = np.quantile(v, [0.025, 0.975])
    return float(lo), float(hi)


def _nanmean(a: np.ndarray) -> float:
    a = np.asarray(a, float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else math.nan


def _band(curve, t: float, side: str) -> float:
    i = int(np.searchsorted(curve.times, t, side="right"))
    return 1.0 if i == 0 else float(getattr(curve, side)[i - 1])


def _as_crash(replicas: Sequence[EpisodeRecord]) -> list[EpisodeRecord]:
    """The teacher's replica records under the keys of the crash episodes they replay."""
    return [replace(r, key=r.key.replace("|replica|", "|crash|"), mode="crash") for r in replicas]


def _floor_gap(crash: Sequence[EpisodeRecord], replica: Sequence[EpisodeRecord], horizon: int) -> float | None:
    """The teacher-vs-teacher floor: mean paired |d| gap of the teacher's crash episodes and replicas."""
    by_key = {r.key: r for r in _as_crash(replica) if r.valid}
    pairs = [(a, by_key[a.key]) for a in crash if a.valid and a.key in by_key]
    if not pairs:
        return None
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    return _finite(M.paired_drift([x.series("d") for x in a], [y.series("d") for y in b], _failure_steps(a),
                                  _failure_steps(b), horizon).gap_mean)


def _families(held_out: Sequence[EpisodeRecord], seen: Sequence[EpisodeRecord], protocol: Protocol, horizon: int,
              max_steps: int) -> list[Family]:
    bins = protocol.metrics.curvature_bins_per_m if protocol.metrics else ()
    groups: dict[str, list[EpisodeRecord]] = {}
    for r in seen:
        groups.setdefault("seen", []).append(r)
    for r in held_out:
        groups.setdefault(_family(r.track, bins, False), []).append(r)
    order = ["seen", *FAMILY_NAMES.get(len(bins), [])]
    out = []
    for name in sorted(groups, key=lambda g: order.index(g) if g in order else len(order)):
        recs = groups[name]
        f = _failure_steps(recs)
        rc = M.route_completion(f, [len(r.d) for r in recs], max_steps)
        out.append(Family(name, Proportion.of(sum(0 <= x < horizon for x in f), len(recs)), _finite(rc.mean())))
    return out


def command_metrics(records: Sequence[EpisodeRecord]) -> CommandMetrics | None:
    """Command success over the records' fork passages; None when no record is on a network with forks."""
    from envs.forks import COMMANDS

    forks = [r.forks for r in records if r.valid and r.forks is not None]
    if not forks:
        return None
    counts = M.command_success([f["commands"] for f in forks], [f["outcomes"] for f in forks], COMMANDS)
    return CommandMetrics(*(Proportion.of(*counts[name]) for name in ("left", "right", "all")))


def compute_results(records: Sequence[EpisodeRecord], protocol: Protocol, profile: str,
                    teacher: Sequence[EpisodeRecord] | None = None,
                    straight: Sequence[EpisodeRecord] | None = None) -> Metrics:
    """Metrics per condition and mode, plus the overall counts and invalid reasons. From version 2 on,
    the v1 blocks hold the held-out tracks only and `paired` holds the v2 metrics."""
    horizons = protocol.horizons(profile)
    edges = protocol.drift_edges()
    v2 = protocol.version >= 2
    seen_tracks = {str(t) for t in protocol.profile(profile).seen_tracks}
    conditions: dict[str, ConditionMetrics] = {}
    for condition in sorted({r.condition for r in records}, key=protocol.condition_index):
        rng = np.random.default_rng([protocol.seed, protocol.condition_index(condition)])

        def held_out(rs, mode):
            return [r for r in rs if r.condition == condition and r.mode == mode
                    and not (v2 and r.track in seen_tracks)]

        crash = held_out(records, "crash")
        crash_m = None
        if crash:
            ref = held_out(teacher or [], "crash")
            crash_m = crash_metrics(crash, horizons, protocol.cost_d_max_m, rng, ref or None, edges)
        inter = held_out(records, "intervention")
        inter_m = intervention_metrics(inter, protocol.intervention_penalty_s, rng) if inter else None
        paired = None
        if v2 and crash:
            seen = [r for r in records if r.condition == condition and r.mode == "crash" and r.track in seen_tracks]
            own_replicas = held_out(records, "replica")  # only the teacher's own records hold replicas
            reference = teacher if teacher is not None else None
            t_crash = held_out(reference, "crash") if reference else (_as_crash(own_replicas) or None)
            floor_src = reference if reference is not None else records
            floor_m = _floor_gap(held_out(floor_src, "crash"), held_out(floor_src, "replica"), horizons[-1])
            paired = paired_metrics(crash, seen, held_out(records, "offpolicy"), protocol, horizons,
                                    int(protocol.profile(profile).max_steps), rng, t_crash,
                                    held_out(straight, "crash") if straight else None, floor_m,
                                    own_replicas=reference is None)
        conditions[condition] = ConditionMetrics(crash_m, inter_m, paired, command_metrics(crash))
    return Metrics(episodes=len(records), invalid=sum(not r.valid for r in records),
                   invalid_reasons=sorted({r.reason for r in records if not r.valid}), conditions=conditions)


def headline(results: Results) -> dict[str, Any]:
    """A few numbers to print: nominal survival at the last horizon, autonomy, invalid episodes, and (v2)
    the disturbed held-out crashes and route completion."""
    m = results.metrics
    crash, inter = m.crash("nominal"), m.intervention("nominal")
    out = {
        "policy": results.policy.name,
        "episodes": m.episodes,
        "invalid": m.invalid,
        "nominal_survival": crash.final_survival if crash else None,
        "nominal_mean_abs_offset_m": crash.mean_abs_offset_m.mean if crash else None,
        "nominal_autonomy_pct": inter.autonomy_pct if inter else None,
    }
    disturbed = m.conditions.get("disturbed")
    if disturbed is not None and disturbed.paired is not None:  # v2's main condition
        p = disturbed.paired
        out["disturbed_crashes"] = f"{p.crashes.k}/{p.crashes.n}"
        out["disturbed_route_completion"] = p.route_completion.mean
    return out


# ------------------------------------------------------------------------------------------------
# Reading results directories
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One policy's results.json, as loaded by :func:`load_results`."""

    label: str
    """The method's name in tables and legends (the policy name, made unique if needed)."""
    path: Path
    """The results.json file."""
    results: Results = field(repr=False)

    @property
    def name(self) -> str:
        return self.results.policy.name

    @property
    def kind(self) -> str:
        return self.results.policy.kind

    @property
    def protocol(self) -> str:
        return self.results.protocol.name

    @property
    def profile(self) -> str:
        return self.results.protocol.profile

    @property
    def horizons(self) -> list[int]:
        return list(self.results.protocol.horizons)

    @property
    def conditions(self) -> list[str]:
        """The conditions with metrics, in the protocol's order."""
        present = self.results.metrics.conditions
        return [c for c in CONDITIONS if c in present] + sorted(c for c in present if c not in CONDITIONS)

    def crash(self, condition: str = "nominal") -> CrashMetrics | None:
        return self.results.metrics.crash(condition)

    def intervention(self, condition: str = "nominal") -> InterventionMetrics | None:
        return self.results.metrics.intervention(condition)

    @property
    def records_path(self) -> Path | None:
        """records.jsonl: beside results.json, else where results.json says (relative to the
        working directory); None when neither exists."""
        beside = self.path.parent / "records.jsonl"
        if beside.is_file():
            return beside
        stored = self.results.records
        if stored and Path(stored).is_file():
            return Path(stored)
        return None

    def records(self, keep=None) -> list[EpisodeRecord]:
        """The episode records (only those whose key passes `keep`, when given)."""
        path = self.records_path
        return [] if path is None else read_records(path, keep).records


def _results_file(path: str | Path) -> Path:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        if path.is_dir():
            raise FileNotFoundError(f"{path}: no results.json in this directory (run `python -m benchmark evaluate` "
                                    "first, or point at a results directory)")
        raise FileNotFoundError(f"{path}: no such results directory or results.json file")
    return file


def load_result(path: str | Path) -> Result:
    """One results directory (or results.json file), checked; its label is the policy name."""
    file = _results_file(path)
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON ({exc})") from exc
    results = Results.from_json(data, str(file))
    return Result(label=results.policy.name, path=file, results=results)


def load_results(results: ResultsInput | Iterable[Result]) -> list[Result]:
    """Load and check several results (directories, results.json paths or loaded Results).

    Raises FileNotFoundError for a missing file, ResultsError for an unknown schema_version and
    when the results come from different protocols, protocol versions or profiles. Methods with the
    same policy name get the name of their directory added to their label."""
    given = [results] if isinstance(results, str | Path) else list(results)
    items = [r if isinstance(r, Result) else load_result(r) for r in given]
    if not items:
        raise ResultsError("no results given: pass at least one results directory or results.json")
    keys = {(r.protocol, r.results.protocol.sha256, r.profile) for r in items}
    if len(keys) > 1:
        listing = "; ".join(f"{r.path}: protocol {r.protocol} (sha256 {str(r.results.protocol.sha256)[:12]}), "
                            f"profile {r.profile}" for r in items)
        if len({k[0] for k in keys}) > 1:
            what = "different protocols"
        elif len({k[2] for k in keys}) > 1:
            what = "different profiles"
        else:
            what = "different versions of the protocol file"
        raise ResultsError(f"cannot compare results from {what}: {listing}. "
                           "Evaluate every policy with the same --protocol and --profile.")
    labels = [r.label for r in items]
    out = []
    for i, r in enumerate(items):
        label = r.label
        if labels.count(label) > 1:
            label = f"{label} ({r.path.parent.name})"
            if sum(f"{x.label} ({x.path.parent.name})" == label for x in items) > 1:
                label = f"{label} #{i + 1}"
        out.append(Result(label, r.path, r.results))
    return out


def protocol_of(result: Result) -> Protocol | None:
    """The Protocol the result was evaluated on, None when this checkout does not have that
    protocol file (or has another version of it)."""
    try:
        protocol = load_protocol(result.protocol)
    except (ProtocolError, OSError, KeyError, TypeError, ValueError):
        return None
    sha = result.results.protocol.sha256
    return protocol if sha in (None, protocol.sha256) else None


def policy_hz(result: Result) -> float:
    """The protocol's policy rate (steps per second); 10 Hz when the protocol file is unavailable."""
    protocol = protocol_of(result)
    return protocol.policy_hz if protocol is not None else 10.0
