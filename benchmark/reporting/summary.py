"""The results table: one row per method, from results directories written by `benchmark evaluate`.

`summary_table(results)` gives a pandas DataFrame with numeric columns (point estimates and the
bounds of their 95% bootstrap intervals); `write_summary(results, out_md)` writes it as a Markdown
table (for a README) with a short header saying which protocol and profile the numbers come from
and what each column means.

Results are read by benchmark.evaluation.results.load_results, which refuses to mix results of
different protocols or profiles, whose numbers are not comparable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.evaluation.protocol import CONDITIONS
from benchmark.evaluation.results import Result, ResultsError, ResultsInput, load_results, policy_hz, protocol_of

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
    crash, inter = r.crash(condition), r.intervention(condition)
    cr = crash.crash_rate_final if crash else None
    growth = crash.growth_exponent if crash else None
    auto = inter.autonomy_pct_per_episode if inter else None
    row: dict[str, Any] = {
        "kind": r.kind,
        "episodes": cr.n if cr else 0,
        "survival": _num(crash.final_survival if crash else None),
        "crash_rate": _num(cr.mean if cr else None),
        "crash_rate_low": _num(cr.ci_low if cr else None),
        "crash_rate_high": _num(cr.ci_high if cr else None),
        "mean_abs_offset_m": _num(crash.mean_abs_offset_m.mean if crash else None),
        "teacher_disagreement": _num(crash.teacher_disagreement if crash else None),
        "growth_exponent": _num(growth.exponent if growth else None),
        "growth_low": _num(growth.low if growth else None),
        "growth_high": _num(growth.high if growth else None),
        "drift_tv_final": _num(crash.drift.final if crash and crash.drift else None),
        "mdbf_m": _num(crash.mean_distance_between_failures_m if crash else None),
        "autonomy_pct": _num(inter.autonomy_pct if inter else None),
        "autonomy_low": _num(auto.ci_low if auto else None),
        "autonomy_high": _num(auto.ci_high if auto else None),
    }
    for c in others:
        other = r.crash(c)
        row[f"survival_{c}"] = _num(other.final_survival if other else None)
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
    - survival_<c>: S(T) at the last horizon in each other condition c of the protocol (v1: perturbed,
      photometric, traffic).

    Missing values (a condition or mode not evaluated) are NaN.
    """
    items = load_results(results)
    if condition not in CONDITIONS:
        raise ResultsError(f"unknown condition {condition!r}; conditions are: {', '.join(CONDITIONS)}")
    others = _other_conditions(items, condition)
    index = pd.Index([r.label for r in items], name="method")
    df = pd.DataFrame([_row(r, condition, others) for r in items], index=index)
    df["episodes"] = df["episodes"].astype(int)
    return df


def _other_conditions(items: list[Result], condition: str) -> list[str]:
    """The conditions of the results' protocol besides `condition` (those the results have, when
    this checkout lacks the protocol file), in the harness's order."""
    protocol = protocol_of(items[0])
    names = set(protocol.conditions) if protocol is not None else {c for r in items for c in r.conditions}
    return [c for c in CONDITIONS if c != condition and c in names]


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
    sha = str(first.results.protocol.sha256 or "")[:12]
    n = sorted({int(v) for v in df["episodes"]})
    n_text = "/".join(str(v) for v in n) if n else "0"
    others = ", ".join(_other_conditions(items, condition))
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
