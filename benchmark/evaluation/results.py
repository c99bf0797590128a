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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import metrics as M
from .protocol import CONDITIONS, Protocol, ProtocolError, load_protocol
from .records import EpisodeRecord, read_records

SCHEMA_VERSION = 1
KNOWN_SCHEMA_VERSIONS = (1,)
"""results.json schema versions this module reads."""
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
class ConditionMetrics(_Json):
    crash: CrashMetrics | None = None
    intervention: InterventionMetrics | None = None

    _NESTED: ClassVar[dict[str, type]] = {"crash": CrashMetrics, "intervention": InterventionMetrics}

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


def compute_results(records: Sequence[EpisodeRecord], protocol: Protocol, profile: str,
                    teacher: Sequence[EpisodeRecord] | None = None) -> Metrics:
    """Metrics per condition and mode, plus the overall counts and invalid reasons."""
    horizons = protocol.horizons(profile)
    edges = protocol.drift_edges()
    conditions: dict[str, ConditionMetrics] = {}
    for condition in sorted({r.condition for r in records}, key=protocol.condition_index):
        rng = np.random.default_rng([protocol.seed, protocol.condition_index(condition)])
        crash = [r for r in records if r.condition == condition and r.mode == "crash"]
        crash_m = None
        if crash:
            ref = [t for t in (teacher or []) if t.condition == condition and t.mode == "crash"]
            crash_m = crash_metrics(crash, horizons, protocol.cost_d_max_m, rng, ref or None, edges)
        inter = [r for r in records if r.condition == condition and r.mode == "intervention"]
        inter_m = intervention_metrics(inter, protocol.intervention_penalty_s, rng) if inter else None
        conditions[condition] = ConditionMetrics(crash_m, inter_m)
    return Metrics(episodes=len(records), invalid=sum(not r.valid for r in records),
                   invalid_reasons=sorted({r.reason for r in records if not r.valid}), conditions=conditions)


def headline(results: Results) -> dict[str, Any]:
    """A few numbers to print: nominal survival at the last horizon, autonomy, invalid episodes."""
    m = results.metrics
    crash, inter = m.crash("nominal"), m.intervention("nominal")
    return {
        "policy": results.policy.name,
        "episodes": m.episodes,
        "invalid": m.invalid,
        "nominal_survival": crash.final_survival if crash else None,
        "nominal_mean_abs_offset_m": crash.mean_abs_offset_m.mean if crash else None,
        "nominal_autonomy_pct": inter.autonomy_pct if inter else None,
    }


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
