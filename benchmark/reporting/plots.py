"""`python -m benchmark plot`: the benchmark's figures from results directories.

    python -m benchmark plot --results results/steerbench-v1/quick/{teacher,bc,dagger} --out results/figures

writes, for the methods given (one colour per method, the same in every figure):

- error_growth.png  the cumulative cost J(T) against the horizon T, log-log, with guides
                    proportional to T and T^2 and each method's fitted growth exponent: the lecture
                    plot (behaviour cloning J ~ eps T^2, DAgger J ~ eps T; J(T) <= T since c_t <= 1);
- drift.png         total variation between each learner's and the teacher's (d, psi) distributions
                    against time;
- survival.png      survival S(T) at the protocol's horizons, one panel per condition;
- autonomy.png      NVIDIA's autonomy % (intervention mode) per method and condition, 95% intervals;
- trajectories.png  the first episode's path of each method on the top-down map of a few tracks,
                    start and failures marked;
- summary.md        the results table (benchmark/summary.py).

A figure whose data the results lack (no intervention episodes, no drift reference) is skipped with
a note. The figure functions return matplotlib Figures built without pyplot, so importing this
module never changes the matplotlib backend.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from benchmark.common.config import require
from benchmark.evaluation.protocol import CONDITIONS
from benchmark.evaluation.records import EpisodeRecord
from benchmark.evaluation.results import Result, ResultsError, ResultsInput, load_results, policy_hz, protocol_of

from .summary import write_summary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "FIGURES", "MissingData", "PlotConfig", "ResultsError", "autonomy_figure", "drift_figure",
    "error_growth_figure", "method_colors", "plot_all", "run", "survival_figure", "trajectories_figure",
]

FIGURES: tuple[str, ...] = ("error_growth", "drift", "survival", "autonomy", "trajectories")
FIGURES_V2: tuple[str, ...] = ("compounding", "survival", "trajectories")
"""The figures of version-2 results: the paired regret and eps_t replace the v1 growth and TV drift."""
"""The figures plot_all writes, as <name>.png."""

DPI = 150
STYLE = {
    "font.size": 11, "axes.titlesize": 12.5, "axes.labelsize": 11.5, "legend.fontsize": 10,
    "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "savefig.facecolor": "white",
}
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
MARKERS = ("o", "s", "^", "D", "v", "P", "<", ">", "h", "*")
FIXED_COLORS = {"teacher": "#222222", "straight": "#8c8c8c"}
GUIDE_COLOR = "#9a9a9a"


Condition = Literal["nominal", "perturbed", "photometric", "traffic", "disturbed", "obstacles", "obstacles_disturbed",
                    "indicator", "indicator_disturbed", "dropout", "dropout_disturbed", "lane_goals",
                    "lane_goals_disturbed", "intents", "intents_disturbed"]
assert get_args(Condition) == CONDITIONS, "keep Condition in step with benchmark.evaluation.protocol.CONDITIONS"


class MissingData(LookupError):
    """The results hold no data for a figure (the reason is the message)."""


@dataclass(frozen=True)
class PlotConfig:
    """Plot the benchmark's figures (error growth, drift, survival, autonomy, trajectories) and the
    summary table from results directories."""

    results: tuple[Path, ...]
    """Results directories (or results.json files) of `benchmark evaluate`, one per method; all of the same
    protocol and profile."""
    out: Path = Path("results/figures")
    """Folder for the PNG figures (and summary.md)."""
    condition: Condition = "nominal"
    """Condition of the error-growth, drift and trajectory figures and of the table's main columns."""
    tracks: int = 2
    """Tracks shown in the trajectory figure (first episode of each)."""
    summary: bool = True
    """Also write summary.md, the results table in Markdown."""

    def __post_init__(self) -> None:
        results = (self.results,) if isinstance(self.results, str | Path) else tuple(self.results)
        require(bool(results), "give at least one results directory or results.json (--results)")
        object.__setattr__(self, "results", tuple(Path(p) for p in results))
        object.__setattr__(self, "out", Path(self.out))
        require(self.condition in CONDITIONS,
                f"unknown condition {self.condition!r}; conditions are: {', '.join(CONDITIONS)}")
        require(self.tracks >= 1, f"tracks must be >= 1, got {self.tracks}")


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def _results(results: ResultsInput | Iterable[Result]) -> list[Result]:
    return load_results(results)


def method_colors(results: Sequence[Result]) -> dict[str, str]:
    """A colour per method label: the teacher dark grey, the straight baseline light grey, the
    others from a fixed palette in the order given (so every figure of one set agrees)."""
    colors: dict[str, str] = {}
    k = 0
    for r in results:
        if r.kind in FIXED_COLORS and FIXED_COLORS[r.kind] not in colors.values():
            colors[r.label] = FIXED_COLORS[r.kind]
        else:
            colors[r.label] = PALETTE[k % len(PALETTE)]
            k += 1
    return colors


def method_markers(results: Sequence[Result]) -> dict[str, str]:
    """A marker per method label, in the order given (the same in every figure of one set)."""
    return {r.label: MARKERS[k % len(MARKERS)] for k, r in enumerate(results)}


def _figure(figsize: tuple[float, float], **kwargs: Any) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained", **kwargs)


def _style():
    import matplotlib

    return matplotlib.rc_context(STYLE)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _log_ticks(ax: Axes, ticks: Sequence[int]) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter

    ax.xaxis.set_major_locator(FixedLocator(list(ticks)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _seconds_axis(ax: Axes, hz: float, steps: Sequence[int] | None = None) -> None:
    """A top x axis in seconds for an axis in policy steps."""
    from matplotlib.ticker import FixedLocator, FuncFormatter

    top = ax.secondary_xaxis("top", functions=(lambda t: np.asarray(t) / hz, lambda s: np.asarray(s) * hz))
    if steps is not None:
        top.xaxis.set_major_locator(FixedLocator([t / hz for t in steps]))
    top.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    top.set_xlabel("seconds", fontsize=10, color="#555555")
    top.tick_params(labelsize=9, colors="#555555")


def _check_condition(condition: str) -> None:
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; conditions are: {', '.join(CONDITIONS)}")


def _subtitle(fig: Figure, results: Sequence[Result], extra: str = "") -> None:
    """A small grey footnote (protocol, profile and `extra`) under the figure, in space reserved for it."""
    r = results[0]
    text = f"{r.protocol} / {r.profile} profile" + (f"  ·  {extra}" if extra else "")
    inches = 0.3
    fig.get_layout_engine().set(rect=(0, inches / fig.get_figheight(), 1, 1 - inches / fig.get_figheight()))
    fig.text(0.01, 0.08 / fig.get_figheight(), text, ha="left", va="bottom", fontsize=8.5, color="#666666",
             wrap=True)


def save(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Write a figure as PNG (at the module's dpi unless told), making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


# ------------------------------------------------------------------------------------------------
# Error growth
# ------------------------------------------------------------------------------------------------


def error_growth_figure(results: ResultsInput | Iterable[Result], condition: str = "nominal") -> Figure:
    """Log-log J(T) against T per method (crash mode), with guides proportional to T and T^2 through
    the methods' geometric-mean J at the first horizon, the bound J(T) = T, and each method's fitted
    growth exponent [95% bootstrap interval] in the legend."""
    _check_condition(condition)
    results = _results(results)
    colors, markers = method_colors(results), method_markers(results)
    series = []
    for r in results:
        crash = r.crash(condition)
        if not crash or not crash.cumulative_cost:
            continue
        T = np.asarray(crash.horizons, float)
        J = np.array([v if _finite(v) else np.nan for v in crash.cumulative_cost], float)
        ok = np.isfinite(J) & (J > 0) & (T > 0)
        if ok.any():
            series.append((r, T[ok], J[ok], crash.growth_exponent))
    if not series:
        raise MissingData(f"no crash-mode cumulative cost for the {condition} condition")
    horizons = results[0].horizons
    t0, t1 = float(horizons[0]), float(horizons[-1])
    with _style():
        fig = _figure((10.5, 6.2))
        ax = fig.subplots()
        for r, T, J, g in series:
            e, lo, hi = (g.exponent, g.low, g.high) if g else (None, None, None)
            if _finite(e):
                slope = f"slope {e:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if _finite(lo) and _finite(hi) else "")
            else:
                slope = "slope n/a"
            ax.plot(T, J, "-", marker=markers[r.label], color=colors[r.label], lw=2.2, ms=7, zorder=3,
                    label=f"{r.label}: {slope}")
        # Guides through the geometric mean of J at the first horizon (a common anchor, so the
        # slopes compare directly), and the ceiling J(T) = T of a cost bounded by 1.
        firsts = [J[0] for _, T, J, _ in series if T[0] == t0]  # (a method with J = 0 there is left out)
        anchor = float(np.exp(np.mean(np.log(firsts)))) if firsts else float(series[0][2][0])
        tt = np.geomspace(t0, t1, 100)
        ax.plot(tt, anchor * tt / t0, "--", color=GUIDE_COLOR, lw=1.6, zorder=2,
                label="∝ T   (DAgger: J = O(εT))")
        ax.plot(tt, anchor * (tt / t0) ** 2, ":", color=GUIDE_COLOR, lw=2.2, zorder=2,
                label="∝ T²  (behaviour cloning: J = O(εT²))")
        ax.plot(tt, tt, "-", color="#c8c8c8", lw=5, alpha=0.6, zorder=1,
                label="J(T) = T  (ceiling: every step costs 1)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ymin = min(float(np.min(J)) for _, _, J, _ in series)
        ax.set_ylim(min(ymin, anchor) / 2.5, t1 * 2.5)
        ax.set_xlim(t0 / 1.25, t1 * 1.25)
        _log_ticks(ax, horizons)
        hz = policy_hz(results[0])
        ax.set_xlabel(f"horizon T (policy steps, {hz:g} Hz; log scale)")
        _seconds_axis(ax, hz, horizons)
        ax.set_ylabel("cumulative cost J(T) = Σ$_{t<T}$ E[c$_t$]  (log scale)")
        fig.suptitle(f"Error growth, {condition} condition (crash mode): does the cost compound?")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method: growth exponent [95% CI]",
                  alignment="left", frameon=False)
        protocol = protocol_of(results[0])
        d_max = f" (d$_{{max}}$ = {protocol.cost_d_max_m:g} m)" if protocol is not None else ""
        _subtitle(fig, results, f"c$_t$ = min(1, |d$_t$|/d$_{{max}}$){d_max}, 1 after a failure; "
                                "exponent = slope of log J on log T over the horizons")
    return fig


# ------------------------------------------------------------------------------------------------
# Compounding (protocol v2)
# ------------------------------------------------------------------------------------------------


def compounding_figure(results: ResultsInput | Iterable[Result], condition: str = "disturbed") -> Figure:
    """Version-2 results: (left) the paired regret dJ(T) = J_policy(T) - J_teacher(T) on the same
    episodes, log-log, with guides proportional to T and T^2 and each method's fitted slope; (right)
    the on-policy mistake rate eps_t = P(|a - a*| > tau | alive at t) against t, with each method's
    off-policy rate eps_off (the teacher driving) as a dotted level."""
    _check_condition(condition)
    results = _results(results)
    colors, markers = method_colors(results), method_markers(results)
    rows = []
    for r in results:
        c = r.results.metrics.conditions.get(condition)
        if c is not None and c.paired is not None and r.kind != "teacher":
            rows.append((r, c.paired))
    if not rows:
        raise MissingData(f"no paired (v2) metrics for the {condition} condition")
    horizon = results[0].horizons[-1]
    hz = policy_hz(results[0])
    with _style():
        fig = _figure((14.5, 6.2))
        left, right = fig.subplots(1, 2)
        anchors = []
        for r, m in rows:
            if m.regret is None:
                continue
            T = np.asarray(m.regret.curve.t, float)
            dj = np.array([v if _finite(v) else np.nan for v in m.regret.curve.value], float)
            ok = np.isfinite(dj) & (dj > 0)
            if not ok.any():
                continue
            slope = m.regret.slope
            label = f"{r.label}: slope {slope:.2f}" if _finite(slope) else f"{r.label}: slope n/a"
            left.plot(T[ok], dj[ok], "-", marker=markers[r.label], markevery=3, color=colors[r.label], lw=2.0,
                      ms=6, label=label)
            anchors.append(float(np.interp(30.0, T[ok], dj[ok])))
        if anchors:
            anchor = float(np.exp(np.mean(np.log(np.maximum(anchors, 1e-6)))))
            tt = np.geomspace(30, horizon, 50)
            left.plot(tt, anchor * tt / 30, "--", color=GUIDE_COLOR, lw=1.5, label="∝ T  (recoverable mistakes)")
            left.plot(tt, anchor * (tt / 30) ** 2, ":", color=GUIDE_COLOR, lw=2.0, label="∝ T²  (compounding)")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel(f"horizon T (policy steps, {hz:g} Hz; log scale)")
        left.set_ylabel("paired regret dJ(T) = J$_{policy}$(T) − J$_{teacher}$(T)  (log scale)")
        left.set_title("Does the cost against the teacher compound?")
        left.legend(loc="upper left", fontsize=8.5, frameon=False)
        for r, m in rows:
            t = np.asarray(m.mistakes.curve.t, float)
            eps = np.array([v if _finite(v) else np.nan for v in m.mistakes.curve.value], float)
            right.plot(t, eps, "-", marker=markers[r.label], markevery=3, color=colors[r.label], lw=2.0, ms=6,
                       label=r.label)
            if m.mistakes.eps_off is not None and _finite(m.mistakes.eps_off.rate):
                right.axhline(m.mistakes.eps_off.rate, color=colors[r.label], ls=":", lw=1.4)
        right.set_xscale("log")
        right.set_ylim(-0.02, 1.02)
        right.set_xlabel("step t (log scale)")
        tau = rows[0][1].mistakes.tau_per_m
        right.set_ylabel(f"ε$_t$ = P(|a − a*| > {tau:g} 1/m | alive at t)")
        right.set_title("On-policy mistake rate (dotted: ε$_{off}$, the teacher driving)")
        right.legend(loc="lower right", fontsize=8.5, frameon=False)
        fig.suptitle(f"Compounding error, {condition} condition (held-out tracks, paired with the teacher)")
        _subtitle(fig, results, "same episodes and disturbance sequence for every method")
    return fig


# ------------------------------------------------------------------------------------------------
# Drift
# ------------------------------------------------------------------------------------------------


def drift_figure(results: ResultsInput | Iterable[Result], condition: str = "nominal") -> Figure:
    """TV distance between each learner's and the teacher's (d, psi) distributions against time
    (log x axis; t = 0 is left out: learner and teacher start from the same states)."""
    _check_condition(condition)
    results = _results(results)
    colors, markers = method_colors(results), method_markers(results)
    series = []
    for r in results:
        drift = getattr(r.crash(condition), "drift", None)
        if not drift:
            continue
        t = np.asarray(drift.t, float)
        tv = np.array([v if _finite(v) else np.nan for v in drift.tv], float)
        ok = (t > 0) & np.isfinite(tv)
        if ok.any():
            series.append((r, t[ok], tv[ok]))
    if not series:
        raise MissingData(f"no drift data for the {condition} condition (drift needs a learner evaluated with "
                          "the teacher's records as reference; the teacher itself has none)")
    hz = policy_hz(results[0])
    with _style():
        fig = _figure((10.5, 5.6))
        ax = fig.subplots()
        for r, t, tv in series:
            ax.plot(t, tv, "-", marker=markers[r.label], markevery=4, ms=6, color=colors[r.label], lw=2.2,
                    label=r.label)
        ax.set_xscale("log")
        from matplotlib.ticker import ScalarFormatter

        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_ylim(-0.02, 1.04)
        ax.set_xlim(left=1)
        ax.set_xlabel(f"time step t (policy steps, {hz:g} Hz; log scale)")
        _seconds_axis(ax, hz)
        ax.set_ylabel("drift TV(learner, teacher)")
        fig.suptitle(f"Drift from the teacher's state distribution, {condition} condition (crash mode)")
        ax.axhline(1.0, color=GUIDE_COLOR, ls="--", lw=1)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method", alignment="left", frameon=False)
        _subtitle(fig, results, "total variation of the binned (d$_t$, ψ$_t$) distributions from the same start "
                                "states (the teacher is the reference): 0 = same, 1 = disjoint")
    return fig


# ------------------------------------------------------------------------------------------------
# Survival
# ------------------------------------------------------------------------------------------------


def survival_figure(results: ResultsInput | Iterable[Result], conditions: Sequence[str] | None = None) -> Figure:
    """Survival S(T) at the horizons per method, one panel per condition (default: every condition
    with crash-mode results)."""
    results = _results(results)
    colors, markers = method_colors(results), method_markers(results)
    if conditions is None:
        conditions = [c for c in CONDITIONS if any(r.crash(c) and r.crash(c).survival for r in results)]
    for c in conditions:
        _check_condition(c)
    conditions = [c for c in conditions if any(r.crash(c) and r.crash(c).survival for r in results)]
    if not conditions:
        raise MissingData("no crash-mode survival in the results")
    n = len(conditions)
    rows, cols = (1, n) if n <= 2 else (2, math.ceil(n / 2))
    horizons = results[0].horizons
    hz = policy_hz(results[0])
    with _style():
        fig = _figure((5.2 * cols + 2.2, 4.0 * rows + 0.6))
        axes = np.atleast_1d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)).ravel()
        for ax, c in zip(axes, conditions):
            for k, r in enumerate(results):
                crash = r.crash(c)
                if not crash or not crash.survival:
                    continue
                T, S = np.asarray(crash.horizons, float), np.asarray(crash.survival, float)
                # earlier methods drawn wider and below, so identical curves (all at 1) stay visible
                w = (len(results) - 1 - k) / max(1, len(results) - 1)
                ax.plot(T, S, "-", marker=markers[r.label], color=colors[r.label], lw=1.8 + 2.2 * w, ms=5 + 4 * w,
                        label=r.label, zorder=2 + k)
            ax.set_xscale("log")
            _log_ticks(ax, horizons)
            ax.set_ylim(-0.04, 1.06)
            ax.set_title(f"{c} (n = {_episodes(results, c)} episodes)")
        for ax in axes[len(conditions):]:
            ax.set_visible(False)
        for ax in axes[(rows - 1) * cols:]:
            ax.set_xlabel(f"horizon T (policy steps, {hz:g} Hz)")
        for ax in axes[::cols]:
            ax.set_ylabel("survival S(T)")
        handles, labels = axes[0].get_legend_handles_labels()
        seen = dict(zip(labels, handles))
        for ax in axes[1:len(conditions)]:
            h, lab = ax.get_legend_handles_labels()
            for a, b in zip(lab, h):
                seen.setdefault(a, b)
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right center", title="method",
                   frameon=False)
        fig.suptitle("Survival: fraction of crash-mode episodes with no failure (off-road or collision) by T")
        _subtitle(fig, results)
    return fig


def _episodes(results: Sequence[Result], condition: str) -> str:
    ns = sorted({r.crash(condition).crash_rate_final.n for r in results if r.crash(condition)})
    return "/".join(str(v) for v in ns)


# ------------------------------------------------------------------------------------------------
# Autonomy
# ------------------------------------------------------------------------------------------------


def autonomy_figure(results: ResultsInput | Iterable[Result], conditions: Sequence[str] | None = None) -> Figure:
    """NVIDIA autonomy % per method (bars) and condition with intervention-mode results, with the
    per-episode 95% bootstrap interval as error bars. Autonomy is negative when interventions come
    more often than one per penalty (6 s)."""
    results = _results(results)
    colors = method_colors(results)
    if conditions is None:
        conditions = [c for c in CONDITIONS if any(r.intervention(c) for r in results)]
    conditions = [c for c in conditions if any(r.intervention(c) for r in results)]
    if not conditions:
        raise MissingData("no intervention-mode episodes in the results")
    methods = [r for r in results if any(r.intervention(c) for c in conditions)]
    width = 0.8 / len(methods)
    with _style():
        fig = _figure((max(8.5, 3.5 + 1.1 * len(methods) * len(conditions)), 5.6))
        ax = fig.subplots()
        lows, highs = [0.0, 100.0], [0.0, 100.0]
        labelled: set[str] = set()
        for k, r in enumerate(methods):
            for i, c in enumerate(conditions):
                inter = r.intervention(c)
                if not inter or not _finite(inter.autonomy_pct):
                    continue
                x = i - 0.4 + width * (k + 0.5)
                a = float(inter.autonomy_pct)
                ep = inter.autonomy_pct_per_episode
                lo = ep.ci_low if ep and _finite(ep.ci_low) else a
                hi = ep.ci_high if ep and _finite(ep.ci_high) else a
                ax.bar(x, a, width * 0.85, color=colors[r.label], zorder=2,
                       label="_" if r.label in labelled else r.label)
                labelled.add(r.label)
                ax.errorbar(x, a, yerr=[[max(0.0, a - lo)], [max(0.0, hi - a)]], fmt="none", ecolor="black",
                            elinewidth=1.4, capsize=5, zorder=3)
                lows.append(min(a, lo))
                highs.append(max(a, hi))
                ax.annotate(f"{a:.1f}%", (x, hi if a >= 0 else lo), xytext=(0, 4 if a >= 0 else -4),
                            textcoords="offset points", ha="center", va="bottom" if a >= 0 else "top", fontsize=9.5)
        span = max(highs) - min(lows)
        ax.set_ylim(min(lows) - 0.12 * span, max(highs) + 0.12 * span)
        ax.axhline(0, color="black", lw=1)
        ax.axhline(100, color=GUIDE_COLOR, ls="--", lw=1.2, label="100% = no interventions", zorder=1)
        ax.set_xticks(range(len(conditions)), [f"{c}\n(n = {_inter_n(methods, c)} episodes)" for c in conditions])
        ax.set_xlim(-0.6, len(conditions) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_ylabel("autonomy (%)")
        fig.suptitle("NVIDIA autonomy (intervention mode): 100 (1 − 6 s × interventions / elapsed s)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), title="method", alignment="left", frameon=False)
        _subtitle(fig, results,
                  "error bars: 95% bootstrap interval over episodes; < 0: more than one intervention per 6 s")
    return fig


def _inter_n(results: Sequence[Result], condition: str) -> str:
    ns = sorted({r.intervention(condition).valid for r in results if r.intervention(condition)})
    return "/".join(str(v) for v in ns)


# ------------------------------------------------------------------------------------------------
# Trajectories
# ------------------------------------------------------------------------------------------------


def _track_order(results: Sequence[Result], names: Iterable[str]) -> list[str]:
    """Track names in the protocol's order (those it does not list last, sorted)."""
    order: list[str] = []
    try:
        from benchmark.evaluation.protocol import load_protocol

        order = [t if s is None else f"procedural-{s}" for t, s in
                 load_protocol(results[0].protocol).tracks(results[0].profile)]
    except Exception:  # noqa: BLE001 - an unknown protocol only loses the ordering
        order = []
    names = set(names)
    return [t for t in order if t in names] + sorted(names - set(order))


def _load_track(name: str):
    try:
        from envs import track_by_name

        return track_by_name(name)
    except Exception:  # noqa: BLE001 - a custom track without its file: no map, paths only
        return None


def _pick_tracks(names: list[str], tracks: dict[str, Any], count: int) -> list[str]:
    """Closed tracks first (an open road makes a thin strip), a built-in and a procedural one if
    both are available, then in protocol order."""

    def closed(n: str) -> bool:
        t = tracks.get(n)
        return bool(t is not None and all(getattr(p, "closed", False) for p in t.paths))

    ranked = sorted(names, key=lambda n: not closed(n))  # stable: protocol order within each group
    builtin = next((n for n in ranked if not n.startswith("procedural-")), None)
    procedural = next((n for n in ranked if n.startswith("procedural-")), None)
    variety = [n for n in (builtin, procedural) if n is not None and (closed(n) or not closed(ranked[0]))]
    picked: list[str] = []
    for n in variety + ranked:
        if len(picked) < count and n not in picked:
            picked.append(n)
    return sorted(picked, key=ranked.index)


def _xy(record: EpisodeRecord) -> np.ndarray:
    x, y = record.series("x"), record.series("y")
    xy = np.stack([x, y], axis=1) if len(x) and len(x) == len(y) else np.zeros((0, 2))
    return xy[np.isfinite(xy).all(axis=1)]


def _outcome(record: EpisodeRecord, hz: float) -> str:
    if record.crashed:
        f = record.failure_step
        kind = str(record.failure_type or "failure").replace("_", "-")
        return f"{kind} at step {f} ({f / hz:.1f} s)"
    if not record.valid:
        return f"invalid ({record.reason})"
    return f"no failure ({record.steps} steps, {record.distance_m:.0f} m)"


def trajectories_figure(results: ResultsInput | Iterable[Result], condition: str = "nominal",
                        tracks: int = 2, max_size: int = 900) -> Figure:
    """Each method's path in the first crash-mode episode of `condition` on up to `tracks` tracks,
    on the track's top-down map (one panel per track): a dot at the start, an X at a failure."""
    _check_condition(condition)
    results = _results(results)
    colors = method_colors(results)
    episodes: dict[str, dict[str, EpisodeRecord]] = {}  # track -> label -> record
    suffix = f"|{condition}|crash|0"
    for r in results:
        for rec in r.records(lambda key: key.endswith(suffix)):
            if rec.valid and len(_xy(rec)):
                episodes.setdefault(rec.track or rec.episode_key.track, {})[r.label] = rec
    if not episodes:
        missing = [str(r.path.parent) for r in results if r.records_path is None]
        why = f" (no records.jsonl for: {', '.join(missing)})" if missing else ""
        raise MissingData(f"no crash-mode episode records for the {condition} condition{why}")
    names = _track_order(results, episodes)
    track_objs = {n: _load_track(n) for n in names}
    chosen = _pick_tracks(names, track_objs, tracks)
    hz = policy_hz(results[0])
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    import envs
    from envs.topdown import map_image, to_pixels

    panels = []  # (name, records, paths, map image or None, world -> pixel matrix, aspect w/h)
    for name in chosen:
        recs = episodes[name]
        paths = {label: _xy(rec) for label, rec in recs.items()}
        allxy = np.concatenate(list(paths.values()))
        track = track_objs[name]
        img, M = None, np.eye(3)
        if track is not None:
            closed = all(getattr(p, "closed", False) for p in track.paths)
            if closed:  # the whole track, and any excursion off it
                lo, hi = allxy.min(axis=0) - 5.0, allxy.max(axis=0) + 5.0
                tb = track.bounds(8.0)
                bounds = (min(tb[0], lo[0]), min(tb[1], lo[1]), max(tb[2], hi[0]), max(tb[3], hi[1]))
            else:  # an open road: the part driven, at least 60 m across
                lo, hi = allxy.min(axis=0) - 15.0, allxy.max(axis=0) + 15.0
                mid, half = (lo + hi) / 2, np.maximum((hi - lo) / 2, 30.0)
                bounds = (mid[0] - half[0], mid[1] - half[1], mid[0] + half[0], mid[1] + half[1])
            extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1])
            ppm = float(np.clip(2.0 * max_size / extent, 2.0, envs.CameraConfig().map_ppm))
            img, M = map_image(envs.map_texture(track, ppm), max_size, bounds)
            aspect = img.shape[1] / max(1, img.shape[0])
        else:
            span = np.maximum(allxy.max(axis=0) - allxy.min(axis=0), 1.0)
            aspect = float(span[0] / span[1])
        panels.append((name, recs, paths, img, M, float(np.clip(aspect, 0.6, 2.5))))

    # Panel widths follow the maps' aspect ratios, so each map fills its panel (a fixed-aspect image
    # in a box of another shape would leave gaps that the layout does not see).
    height = 5.6
    ratios = [p[5] for p in panels]
    with _style():
        rows = 2 + max(len(p[1]) for p in panels)  # legend rows under a panel
        fig = _figure((max(7.0, height * sum(ratios) + 0.4 * len(panels)), height + 1.2 + 0.22 * rows))
        axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False, width_ratios=ratios)).ravel()
        for ax, (name, recs, paths, img, M, _) in zip(axes, panels):
            if img is not None:
                # a pale map, so that every method's colour (dark or light) stands out on it
                pale = (0.45 * img.astype(np.float32) + 0.55 * 255).astype(np.uint8)
                ax.imshow(pale, interpolation="antialiased")
            order = sorted(recs, key=lambda lab: 0 if colors[lab] == FIXED_COLORS["teacher"] else 1)
            for label in order:
                rec, xy = recs[label], paths[label]
                px = to_pixels(M, xy)
                c = colors[label]
                ax.plot(px[:, 0], px[:, 1], "-", color=c, lw=2.2, solid_capstyle="round", zorder=3,
                        path_effects=[patheffects.withStroke(linewidth=4.2, foreground="white")],
                        label=f"{label}: {_outcome(rec, hz)}")
                ax.plot(*px[0], "o", ms=9, mfc=c, mec="black", mew=1.2, zorder=5)
                if rec.crashed:
                    ax.plot(*px[-1], "X", ms=15, mfc=c, mec="black", mew=1.2, zorder=6)
            if img is None:  # a track that cannot be rebuilt: the paths alone, north up
                ax.set_aspect("equal")
                ax.invert_yaxis()
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"{name} · {condition} · episode 0")
            handles, labels = ax.get_legend_handles_labels()
            handles += [Line2D([], [], ls="none", marker="o", ms=8, mfc="white", mec="black"),
                        Line2D([], [], ls="none", marker="X", ms=11, mfc="white", mec="black")]
            labels += ["start", "failure"]
            ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncols=1, frameon=False,
                      fontsize=9.5)
        fig.suptitle(f"Trajectories on the track map (first {condition} crash-mode episode; colour = method)")
        _subtitle(fig, results)
    return fig


# ------------------------------------------------------------------------------------------------
# All of them
# ------------------------------------------------------------------------------------------------


def plot_all(results_dirs: ResultsInput | Iterable[Result], out_dir: str | Path, condition: str = "nominal",
             tracks: int = 2) -> list[Path]:
    """Write error_growth.png, drift.png, survival.png, autonomy.png and trajectories.png (v2 results:
    compounding.png, survival.png and trajectories.png) into `out_dir`; a figure the results have no data for is skipped with a printed note. Returns the
    paths written."""
    _check_condition(condition)
    results = _results(results_dirs)
    if not any(condition in r.conditions for r in results):
        have = sorted({c for r in results for c in r.conditions}, key=lambda c: (c not in CONDITIONS, c))
        raise ResultsError(f"no results for the {condition!r} condition; the results have: {', '.join(have) or 'none'}")
    out_dir = Path(out_dir)
    makers = {
        "compounding": lambda: compounding_figure(results, condition),
        "error_growth": lambda: error_growth_figure(results, condition),
        "drift": lambda: drift_figure(results, condition),
        "survival": lambda: survival_figure(results),
        "autonomy": lambda: autonomy_figure(results),
        "trajectories": lambda: trajectories_figure(results, condition, tracks),
    }
    written: list[Path] = []
    for name in FIGURES_V2 if results[0].results.schema_version >= 2 else FIGURES:
        try:
            fig = makers[name]()
        except MissingData as exc:
            print(f"plot: skipped {name}.png: {exc}")
            continue
        written.append(save(fig, out_dir / f"{name}.png"))
    return written


def run(config: PlotConfig) -> dict:
    results = load_results(config.results)
    figures = plot_all(results, config.out, config.condition, config.tracks)
    out: dict[str, Any] = {"methods": [r.label for r in results], "figures": [str(p) for p in figures]}
    if config.summary:
        out["summary"] = str(write_summary(results, Path(config.out) / "summary.md", config.condition))
    return out
