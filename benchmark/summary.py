"""The results table: one row per method, from results directories written by `benchmark evaluate`.

`summary_table(results)` gives a pandas DataFrame with numeric columns (point estimates and the
bounds of their 95% bootstrap intervals); `write_summary(results, out_md)` writes it as a Markdown
table (for a README) with a short header saying which protocol and profile the numbers come from
and what each column means.

This module also holds the loader shared with benchmark/plots.py: `load_results` reads
`results.json` files (given as results directories or as files), checks their schema version, and
refuses to mix results of different protocols or profiles, whose numbers are not comparable.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .protocol import CONDITIONS

KNOWN_SCHEMA_VERSIONS = (1,)
"""results.json schema versions this module can read (benchmark.evaluate.SCHEMA_VERSION)."""

ResultsInput = str | Path | Sequence[str | Path]
"""One results directory or results.json path, or several."""


class ResultsError(ValueError):
    """A results.json that cannot be read, has an unknown schema, or does not go with the others."""


@dataclass(frozen=True)
class Result:
    """One policy's results.json, as loaded by :func:`load_results`."""

    label: str
    """The method's name in tables and legends (the policy name, made unique if needed)."""
    path: Path
    """The results.json file."""
    data: dict
    """Its content."""

    @property
    def name(self) -> str:
        return str(self.data["policy"]["name"])

    @property
    def kind(self) -> str:
        return str(self.data["policy"].get("kind", ""))

    @property
    def protocol(self) -> str:
        return str(self.data["protocol"]["name"])

    @property
    def profile(self) -> str:
        return str(self.data["protocol"]["profile"])

    @property
    def horizons(self) -> list[int]:
        return [int(h) for h in self.data["protocol"]["horizons"]]

    @property
    def conditions(self) -> list[str]:
        """The conditions with metrics, in the protocol's order."""
        present = self.data["metrics"].get("conditions", {})
        return [c for c in CONDITIONS if c in present] + sorted(c for c in present if c not in CONDITIONS)

    def mode(self, condition: str, mode: str) -> dict | None:
        """The metrics of one condition and mode ('crash' or 'intervention'), None when absent or
        when every episode of it was invalid."""
        entry = self.data["metrics"].get("conditions", {}).get(condition, {}).get(mode)
        if not entry or entry.get("episodes", 0) - entry.get("invalid", 0) <= 0:
            return None
        return entry

    def crash(self, condition: str = "nominal") -> dict | None:
        return self.mode(condition, "crash")

    def intervention(self, condition: str = "nominal") -> dict | None:
        return self.mode(condition, "intervention")

    @property
    def records_path(self) -> Path | None:
        """records.jsonl: beside results.json, else where results.json says (relative to the
        working directory); None when neither exists."""
        beside = self.path.parent / "records.jsonl"
        if beside.is_file():
            return beside
        stored = self.data.get("records")
        if stored and Path(stored).is_file():
            return Path(stored)
        return None

    def records(self, keep: Callable[[str], bool] = lambda key: True) -> Iterator[dict]:
        """The episode records whose key passes `keep`; only those lines are parsed."""
        path = self.records_path
        if path is None:
            return
        key_re = re.compile(r'"key":\s*"((?:[^"\\]|\\.)*)"')
        with open(path) as f:
            for line in f:
                if not line.strip() or line.startswith('{"_meta"'):
                    continue
                m = key_re.search(line, 0, 400)
                if m is not None and not keep(json.loads(f'"{m.group(1)}"')):
                    continue
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line cut off by a killed evaluation: everything before it is intact
                if "_meta" in item or not keep(item.get("key", "")):
                    continue
                yield item


def _results_file(path: str | Path) -> Path:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        if path.is_dir():
            raise FileNotFoundError(f"{path}: no results.json in this directory (run `python -m benchmark evaluate` "
                                    "first, or point at a results directory)")
        raise FileNotFoundError(f"{path}: no such results directory or results.json file")
    return file


def _as_list(results: ResultsInput | Iterable[Result]) -> list:
    if isinstance(results, str | Path):
        return [results]
    return list(results)


def load_result(path: str | Path) -> Result:
    """One results directory (or results.json file), checked; its label is the policy name."""
    file = _results_file(path)
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{file}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"{file}: not a results file (expected a JSON object)")
    version = data.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in KNOWN_SCHEMA_VERSIONS)
        raise ResultsError(f"{file}: unknown schema_version {version!r} (this SteerBench reads schema_version "
                           f"{known}); re-evaluate the policy or update SteerBench")
    missing = [k for k in ("protocol", "policy", "metrics") if not isinstance(data.get(k), dict)]
    if missing:
        raise ResultsError(f"{file}: missing {', '.join(missing)}")
    for k in ("name", "profile", "horizons"):
        if k not in data["protocol"]:
            raise ResultsError(f"{file}: protocol has no {k!r}")
    if "name" not in data["policy"]:
        raise ResultsError(f"{file}: policy has no 'name'")
    return Result(label=str(data["policy"]["name"]), path=file, data=data)


def load_results(results: ResultsInput | Iterable[Result]) -> list[Result]:
    """Load and check several results (directories, results.json paths or loaded Results).

    Raises FileNotFoundError for a missing file, ResultsError for an unknown schema_version and
    when the results come from different protocols, protocol versions or profiles. Methods with the
    same policy name get the name of their directory added to their label."""
    items = [r if isinstance(r, Result) else load_result(r) for r in _as_list(results)]
    if not items:
        raise ResultsError("no results given: pass at least one results directory or results.json")
    keys = {(r.protocol, r.data["protocol"].get("sha256"), r.profile) for r in items}
    if len(keys) > 1:
        listing = "; ".join(f"{r.path}: protocol {r.protocol} (sha256 {str(r.data['protocol'].get('sha256'))[:12]}), "
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
        out.append(Result(label, r.path, r.data))
    return out


def protocol_of(result: Result):
    """The benchmark.protocol.Protocol the result was evaluated on, None when this checkout does not
    have that protocol file (or has another version of it)."""
    from .protocol import ProtocolError, load_protocol

    try:
        protocol = load_protocol(result.protocol)
    except (ProtocolError, OSError, KeyError, TypeError, ValueError):
        return None
    sha = result.data["protocol"].get("sha256")
    return protocol if sha in (None, protocol.sha256) else None


def policy_hz(result: Result) -> float:
    """The protocol's policy rate (steps per second); 10 Hz when the protocol file is unavailable."""
    protocol = protocol_of(result)
    return protocol.policy_hz if protocol is not None else 10.0


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------

COLUMNS: tuple[str, ...] = (
    "kind", "episodes", "survival", "crash_rate", "crash_rate_low", "crash_rate_high", "mean_abs_offset_m",
    "teacher_disagreement", "growth_exponent", "growth_low", "growth_high", "drift_tv_final",
    "mdbf_m", "autonomy_pct", "autonomy_low", "autonomy_high",
)
"""The DataFrame's columns (then one `survival_<condition>` per other condition), index `method`."""


def _num(x: Any) -> float:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else math.nan


def _row(r: Result, condition: str, others: list[str]) -> dict[str, Any]:
    crash = r.crash(condition) or {}
    inter = r.intervention(condition) or {}
    cr = crash.get("crash_rate_final") or {}
    growth = crash.get("growth_exponent") or {}
    auto = inter.get("autonomy_pct_per_episode") or {}
    row: dict[str, Any] = {
        "kind": r.kind,
        "episodes": (cr.get("n") if cr.get("n") is not None else crash.get("episodes", 0) - crash.get("invalid", 0)),
        "survival": _num((crash.get("survival") or [None])[-1]),
        "crash_rate": _num(cr.get("mean")),
        "crash_rate_low": _num(cr.get("ci_low")),
        "crash_rate_high": _num(cr.get("ci_high")),
        "mean_abs_offset_m": _num((crash.get("mean_abs_offset_m") or {}).get("mean")),
        "teacher_disagreement": _num(crash.get("teacher_disagreement")),
        "growth_exponent": _num(growth.get("exponent")),
        "growth_low": _num(growth.get("low")),
        "growth_high": _num(growth.get("high")),
        "drift_tv_final": _num((crash.get("drift") or {}).get("final")),
        "mdbf_m": _num(crash.get("mean_distance_between_failures_m")),
        "autonomy_pct": _num(inter.get("autonomy_pct")),
        "autonomy_low": _num(auto.get("ci_low")),
        "autonomy_high": _num(auto.get("ci_high")),
    }
    for c in others:
        row[f"survival_{c}"] = _num(((r.crash(c) or {}).get("survival") or [None])[-1])
    return row


def summary_table(results: ResultsInput | Iterable[Result], condition: str = "nominal") -> pd.DataFrame:
    """One row per method (index `method`, in the order given), numeric columns:

    - kind, episodes: the policy kind and the number of valid crash-mode episodes of `condition`;
    - survival: S(T) at the last horizon; crash_rate (= 1 - S) with crash_rate_low/high (95% CI);
    - mean_abs_offset_m: mean |lateral offset| (m); teacher_disagreement: eps, mean |a - a*| (1/m);
    - growth_exponent with growth_low/high: slope of log J(T) on log T, bootstrap interval;
    - drift_tv_final: TV distance to the teacher's (d, psi) distribution at the last step (NaN for
      the teacher itself); mdbf_m: mean distance between failures (NaN without failures);
    - autonomy_pct with autonomy_low/high: NVIDIA autonomy (intervention mode), per-episode interval;
    - survival_<c>: S(T) at the last horizon in each other condition c (perturbed, photometric, traffic).

    Missing values (a condition or mode not evaluated) are NaN.
    """
    items = load_results(results)
    if condition not in CONDITIONS:
        raise ResultsError(f"unknown condition {condition!r}; conditions are: {', '.join(CONDITIONS)}")
    others = [c for c in CONDITIONS if c != condition]
    index = pd.Index([r.label for r in items], name="method")
    df = pd.DataFrame([_row(r, condition, others) for r in items], index=index)
    df["episodes"] = df["episodes"].astype(int)
    return df


def _fmt(x: float, digits: int) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_ci(x: float, lo: float, hi: float, digits: int) -> str:
    if not math.isfinite(x):
        return "–"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return _fmt(x, digits)
    return f"{x:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def markdown_table(df: pd.DataFrame, horizon: int | None = None, condition: str = "nominal") -> str:
    """The summary DataFrame as a GitHub Markdown table (intervals as 'x [low, high]')."""
    t = f"T={horizon}" if horizon else "T"
    rows = []
    for method, r in df.iterrows():
        row = {
            "method": str(method).replace("|", "\\|"),
            f"S({t})": _fmt(r["survival"], 2),
            "crash rate [95% CI]": _fmt_ci(r["crash_rate"], r["crash_rate_low"], r["crash_rate_high"], 2),
            "mean abs offset (m)": _fmt(r["mean_abs_offset_m"], 2),
            "ε (1/m)": _fmt(r["teacher_disagreement"], 4),
            "growth exponent [95% CI]": _fmt_ci(r["growth_exponent"], r["growth_low"], r["growth_high"], 2),
            "drift TV": _fmt(r["drift_tv_final"], 2),
            "autonomy % [95% CI]": _fmt_ci(r["autonomy_pct"], r["autonomy_low"], r["autonomy_high"], 1),
        }
        for col in df.columns:
            if col.startswith("survival_"):
                row[f"S {col.removeprefix('survival_')}"] = _fmt(r[col], 2)
        rows.append(row)
    table = pd.DataFrame(rows)
    if condition != "nominal":
        table = table.rename(columns={f"S({t})": f"S({t}) {condition}"})
    return table.to_markdown(index=False, disable_numparse=True, colalign=["left"] + ["right"] * (table.shape[1] - 1))


def write_summary(results: ResultsInput | Iterable[Result], out_md: str | Path, condition: str = "nominal") -> Path:
    """Write the summary table as Markdown, with a header on the protocol, profile and columns."""
    items = load_results(results)
    df = summary_table(items, condition)
    first = items[0]
    horizon = first.horizons[-1]
    sha = str(first.data["protocol"].get("sha256") or "")[:12]
    n = sorted({int(v) for v in df["episodes"]})
    n_text = "/".join(str(v) for v in n) if n else "0"
    others = ", ".join(c for c in CONDITIONS if c != condition)
    header = f"""# SteerBench results: {first.protocol}, {first.profile} profile

Protocol `{first.protocol}`{f" (sha256 `{sha}…`)" if sha else ""}, profile `{first.profile}`: horizons
{", ".join(str(h) for h in first.horizons)} policy steps ({policy_hz(first):g} Hz); {n_text} crash-mode episodes per
method in the {condition} condition. Intervals are 95% bootstrap intervals over episodes; – means not
evaluated or not applicable (the teacher has no drift from itself).

- **S(T={horizon})**: survival, the fraction of {condition} crash-mode episodes with no failure (off-road or
  collision) within T={horizon} steps; **crash rate** = 1 − S.
- **mean abs offset**: mean |lateral offset| from the lane centre over the steps driven (m).
- **ε**: teacher disagreement, mean |a − a*| between the policy's and the teacher's curvature commands
  on the policy's own trajectory (1/m).
- **growth exponent**: slope of log J(T) against log T, J(T) = Σ_(t<T) E[c_t] the cumulative cost with
  c_t = min(1, |d_t| / d_max) and 1 after a failure. Compounding errors (behaviour cloning, J ~ εT²)
  push it towards 2, DAgger's J ~ εT gives 1; since c_t ≤ 1, a policy that fails early also ends at 1.
- **drift TV**: total variation between the policy's and the teacher's (d, ψ) distributions at the last
  step, from the same start states (0: same, 1: disjoint).
- **autonomy %**: NVIDIA's 100 (1 − 6 s × interventions / elapsed s) in intervention mode ({condition});
  negative when a safety driver would take over more often than once per 6 s.
- **S {others.replace(", ", " / S ")}**: survival S(T={horizon}) in the other conditions.

"""
    out = Path(out_md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + markdown_table(df, horizon, condition) + "\n")
    return out
