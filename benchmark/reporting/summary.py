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
    """Write the summary table as Markdown, with a header on the protocol, profile and columns
    (results of a version-2 protocol: the paired v2 summary)."""
    items = load_results(results)
    if items[0].results.schema_version >= 2:
        return write_paired_summary(items, out_md, condition)
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


# ------------------------------------------------------------------------------------------------
# Protocol v2: paired metrics with intervals
# ------------------------------------------------------------------------------------------------

SYNTHETIC = ("noisy-teacher", "drifting-teacher")
"""Policy kinds of the synthetic references: calibration rows, not methods."""
BASELINE = "bc"
"""The method every other one is tested against (McNemar on paired crashes), when present."""


def _p(prop) -> tuple[float, float, float]:
    return (_num(prop.rate), _num(prop.low), _num(prop.high)) if prop is not None else (math.nan,) * 3


def paired_row(r: Result, condition: str) -> dict[str, Any]:
    """The v2 numbers of one method and condition (NaN where absent)."""
    c = r.results.metrics.conditions.get(condition)
    m = c.paired if c is not None else None
    row: dict[str, Any] = {"kind": r.kind, "episodes": m.episodes if m else 0}
    if m is None:
        return row
    row["crashes"], row["crashes_n"] = m.crashes.k, m.crashes.n
    row["crash_rate"], row["crash_low"], row["crash_high"] = _p(m.crashes)
    rc = m.route_completion
    row["route_completion"], row["route_low"], row["route_high"] = _num(rc.mean), _num(rc.ci_low), _num(rc.ci_high)
    row["score"] = _num(m.normalised_score)
    row["regret_slope"] = _num(m.regret.slope if m.regret else None)
    row["regret_low"], row["regret_high"] = _num(m.regret.slope_low if m.regret else None), _num(
        m.regret.slope_high if m.regret else None)
    row["eps_slope_low"], row["eps_slope_high"] = _num(m.mistakes.slope_low), _num(m.mistakes.slope_high)
    row["ratio_low"], row["ratio_high"] = _num(m.mistakes.ratio_low), _num(m.mistakes.ratio_high)
    row["regret_window"] = f"{m.regret.t_lo}-{m.regret.t_hi}" if m.regret and m.regret.t_hi >= m.regret.t_lo else ""
    row["eps_on"], row["eps_on_low"], row["eps_on_high"] = _p(m.mistakes.eps_on)
    row["eps_off"], row["eps_off_low"], row["eps_off_high"] = _p(m.mistakes.eps_off)
    row["shift_ratio"] = _num(m.mistakes.covariate_shift_ratio)
    row["eps_slope"] = _num(m.mistakes.slope_per_decade)
    d = m.drift
    row["gap_m"], row["gap_low"], row["gap_high"] = ((_num(d.gap_m.mean), _num(d.gap_m.ci_low), _num(d.gap_m.ci_high))
                                                     if d else (math.nan,) * 3)
    row["floor_m"] = _num(d.floor_m if d else None)
    row["excursions_per_km"] = _num(m.excursions.onset_rate_per_km)
    row["excursions_low"], row["excursions_high"] = _num(m.excursions.rate_low), _num(m.excursions.rate_high)
    row["recovery"], row["recovery_low"], row["recovery_high"] = _p(m.excursions.recovery)
    seen = next((f for f in m.families if f.family == "seen"), None)
    row["seen_crashes"] = f"{seen.crashes.k}/{seen.crashes.n}" if seen else ""
    return row


def paired_table(results: ResultsInput | Iterable[Result], condition: str = "disturbed") -> pd.DataFrame:
    """One row per method (v2 results): crashes with Wilson intervals, route completion (cluster
    bootstrap over tracks), the normalised score, the paired-regret slope, eps_on / eps_off and their
    ratio, the paired gap to the teacher with the teacher-vs-teacher floor, excursions, the seen
    tracks' crashes apart, and McNemar's exact p of the paired crashes against `BASELINE`."""
    items = load_results(results)
    rows = [paired_row(r, condition) for r in items]
    base = next((r for r in items if r.label == BASELINE), None)
    for r, row in zip(items, rows):
        row["p_vs_bc"] = math.nan
        if base is not None and r is not base and r.kind not in ("teacher",) and row["episodes"]:
            from .compare import crash_test

            row["p_vs_bc"] = crash_test(r, base, condition)[3]
    return pd.DataFrame(rows, index=pd.Index([r.label for r in items], name="method"))


def _pct(x: float, lo: float, hi: float) -> str:
    return _fmt_ci(x, lo, hi, 2)


def paired_markdown(df: pd.DataFrame, alpha: float = 0.05) -> str:
    rows = []
    for method, r in df.iterrows():
        if not r.get("episodes"):
            continue
        p = r["p_vs_bc"]
        verdict = "–" if not math.isfinite(p) else (f"{p:.3g}" + (" (not separable)" if p >= alpha else ""))
        rows.append({
            "method": str(method).replace("|", "\\|"),
            "crashes [95% CI]": f"{int(r['crashes'])}/{int(r['crashes_n'])} {_pct(r['crash_rate'], r['crash_low'], r['crash_high'])}",
            "vs bc: McNemar p": verdict,
            "route completion": _fmt_ci(r["route_completion"], r["route_low"], r["route_high"], 2),
            "score": _fmt(r["score"], 2),
            "regret slope": _fmt_ci(r["regret_slope"], r["regret_low"], r["regret_high"], 2),
            "ε_t slope /decade": _fmt_ci(r["eps_slope"], r["eps_slope_low"], r["eps_slope_high"], 2),
            "ε_on": _fmt(r["eps_on"], 3),
            "ε_off": _fmt(r["eps_off"], 3),
            "ε_on/ε_off": _fmt_ci(r["shift_ratio"], r["ratio_low"], r["ratio_high"], 2),
            "gap to teacher (m)": _fmt_ci(r["gap_m"], r["gap_low"], r["gap_high"], 3),
            "excursions /km": _fmt_ci(r["excursions_per_km"], r["excursions_low"], r["excursions_high"], 1),
            "recovered": _fmt_ci(r["recovery"], r["recovery_low"], r["recovery_high"], 2),
            "seen tracks: crashes": r["seen_crashes"] or "–",
        })
    table = pd.DataFrame(rows)
    return table.to_markdown(index=False, disable_numparse=True, colalign=["left"] + ["right"] * (table.shape[1] - 1))


def families_markdown(results: ResultsInput | Iterable[Result], condition: str = "disturbed") -> str:
    """Crashes per track family (seen built-ins; held-out tracks by their sharpest turn), Wilson intervals."""
    items = load_results(results)
    names: list[str] = []
    cells: dict[str, dict[str, str]] = {}
    for r in items:
        c = r.results.metrics.conditions.get(condition)
        if c is None or c.paired is None:
            continue
        for f in c.paired.families:
            if f.family not in names:
                names.append(f.family)
            cells.setdefault(r.label, {})[f.family] = (
                f"{f.crashes.k}/{f.crashes.n} [{f.crashes.low:.2f}, {f.crashes.high:.2f}]")
    rows = [{"method": m.replace("|", "\\|"), **{n: v.get(n, "–") for n in names}} for m, v in cells.items()]
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def write_paired_summary(items: list[Result], out_md: str | Path, condition: str = "disturbed") -> Path:
    """The v2 summary: the paired table, the families, and what every column means."""
    first = items[0]
    protocol = protocol_of(first)
    horizon = first.horizons[-1]
    sha = str(first.results.protocol.sha256 or "")[:12]
    df = paired_table(items, condition)
    methods = [label for label, r in zip(df.index, items) if r.kind not in SYNTHETIC]
    synthetic = [label for label, r in zip(df.index, items) if r.kind in SYNTHETIC]
    n = sorted({int(v) for v in df["episodes"] if v})
    spec = protocol.metrics if protocol is not None else None
    tau = f"{spec.mistake_tau_per_m:g}" if spec else "tau"
    onset = f"{spec.excursion_onset_m:g}" if spec else "onset"
    recover = f"{spec.excursion_recover_m:g}" if spec else "recover"
    from benchmark.evaluation.results import BOOTSTRAP_SLOPES as n_boot

    window = (f"from T = {spec.regret_t_min} to the last T with survival ≥ {spec.regret_min_survival:g}" if spec
              else "over the protocol's window")
    header = f"""# SteerBench results: {first.protocol}, {first.profile} profile

Protocol `{first.protocol}`{f" (sha256 `{sha}…`)" if sha else ""}, profile `{first.profile}`, the {condition}
condition: {"/".join(str(v) for v in n)} held-out test tracks, one {horizon}-step crash-mode episode each
({policy_hz(first):g} Hz), the same episodes and the same disturbance sequence for every method (common random
numbers). Proportions carry Wilson 95% intervals, means a cluster bootstrap over tracks; "not separable" marks
a McNemar exact p ≥ 0.05 against bc on the paired crashes. Seen tracks (built-ins that training uses) are
counted apart, never pooled. Definitions: benchmark/evaluation/metrics.py, section 11; docs/protocol-v2.md.

- **crashes**: episodes that left the road or collided within T = {horizon}.
- **route completion**: fraction of the intended {horizon} steps driven before a failure; **score**: route
  completion rescaled so that straight-ahead is 0 and the teacher 1.
- **regret slope**: log-log slope of the paired regret dJ(T) = J_policy(T) − J_teacher(T) on the same
  episodes, {window} (near 2: errors compound; near 1: independent, recoverable mistakes).
- **ε_t slope**: change per tenfold t of ε_t, the fraction of alive episodes whose action is off the
  teacher's label a* by more than {tau} 1/m at step t (rising: mistakes compound; flat: they do not).
- **ε_on**: fraction of the policy's own steps with |a − a*| > {tau} 1/m; **ε_off**: the same on the
  teacher's trajectories of the same episodes (the teacher drives, the policy is queried);
  **ε_on/ε_off**: the covariate-shift ratio (≫ 1: the policy's own states are harder for it).
  Slopes, the ratio and the excursion rate carry 95% bootstrap intervals over tracks ({n_boot} resamples).
- **gap to teacher**: mean |d_policy − d_teacher| while both drive (m); the teacher's row is the floor,
  the teacher against itself under a second disturbance sequence. It is measured on survivors: read it with
  the crashes.
- **excursions /km**: |d| rising above {onset} m, per km; **recovered**: fraction back under {recover} m
  without a failure.

"""
    parts = [header, "## Methods\n\n", paired_markdown(df.loc[methods]), "\n"]
    if synthetic:
        parts += ["\n## Calibration: synthetic references with known shapes\n\n",
                  "noisy-teacher: the teacher plus independent noise (its mistakes do not compound: ε flat, "
                  "ε_on/ε_off = 1); drifting-teacher: the teacher plus a push away from the centre that grows "
                  "with its own offset (its mistakes compound).\n\n", paired_markdown(df.loc[synthetic]), "\n"]
    parts += ["\n## Crashes by track family\n\n", families_markdown(items, condition), "\n"]
    out = Path(out_md)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(parts))
    return out
