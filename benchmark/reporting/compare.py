"""`python -m benchmark compare A B`: two methods on identical episodes, paired, with p-values.

Both results must come from the same protocol and profile, so every episode key names the same
track, start and seed for both methods. For each condition's crash-mode episodes that both have
(valid in both; from protocol v2 on, on the held-out tracks only), the comparison is paired:

- crash by the last horizon: McNemar's exact test on the discordant pairs (b: only A crashed,
  c: only B crashed); the effect is the difference of crash rates (A - B) with Wilson intervals of
  each rate;
- mean |lateral offset| per episode and the cumulative cost per episode over the steps driven
  (c_t = min(1, |d_t| / d_max), 1 from a failure to the horizon): a paired bootstrap of the mean
  difference (A - B), with its 95% interval and two-sided p-value.

A difference whose p-value is at least `alpha` is reported as "not separable at this sample".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.evaluation import metrics as M
from benchmark.evaluation.protocol import load_protocol
from benchmark.evaluation.results import Result, load_results, protocol_of
from benchmark.evaluation.statistics import mcnemar_exact, paired_bootstrap, paired_discordance, wilson_interval


@dataclass(frozen=True)
class CompareConfig:
    """Compare two methods on identical protocol episodes: McNemar on crashes, paired bootstrap on offsets and costs."""

    a: Path
    """Results directory (or results.json) of method A."""
    b: Path
    """Results directory (or results.json) of method B."""
    alpha: float = 0.05
    """Significance level: differences with p >= alpha are 'not separable at this sample'."""
    n_boot: int = 2000
    """Bootstrap resamples."""
    seed: int = 0
    """Seed of the bootstrap."""


def _per_episode(result: Result, condition: str, horizon: int, d_max: float,
                 seen: frozenset[str] = frozenset()) -> dict[str, dict[str, float]]:
    """Per crash-mode episode of `condition` (held-out tracks only: `seen` tracks are left out)."""
    out: dict[str, dict[str, float]] = {}
    for r in result.records(lambda key: f"|{condition}|crash|" in key):
        if not r.valid or r.condition != condition or r.mode != "crash" or r.track in seen:
            continue
        fail = r.failure_step if r.crashed else -1
        costs = M.cost_matrix([r.series("d")], [fail], d_max, horizon)[0]
        out[r.key] = {"crashed": float(0 <= fail < horizon),
                      "offset": float(M.per_episode_mean_abs([r.series("d")], horizon)[0]),
                      "cost": float(np.nansum(costs))}
    return out


def seen_tracks(result: Result) -> frozenset[str]:
    """The built-in (seen, trained-on) tracks of a v2 result, never pooled with held-out ones: a v2
    protocol's held-out tracks are all procedural, so every other track in its records is seen."""
    if result.results.schema_version < 2:
        return frozenset()
    return frozenset(r.track for r in result.records() if not r.track.startswith(("procedural-", "fork-")))


def crash_test(a: Result, b: Result, condition: str) -> tuple[int, int, int, float]:
    """(pairs, only-A crashed, only-B crashed, McNemar's exact p) on the held-out crash episodes."""
    horizon, seen = a.horizons[-1], seen_tracks(a)
    ea = _per_episode(a, condition, horizon, 1.0, seen)
    eb = _per_episode(b, condition, horizon, 1.0, seen)
    keys = sorted(set(ea) & set(eb))
    disc_b, disc_c = paired_discordance([ea[k]["crashed"] > 0 for k in keys], [eb[k]["crashed"] > 0 for k in keys])
    return len(keys), disc_b, disc_c, mcnemar_exact(disc_b, disc_c)


def compare(config: CompareConfig) -> pd.DataFrame:
    """One row per condition and metric: A, B, the difference A - B, its interval, the p-value and the verdict."""
    a, b = load_results([config.a, config.b])
    protocol = protocol_of(a) or load_protocol(a.protocol)
    horizon = a.horizons[-1]
    rng = np.random.default_rng(config.seed)
    rows: list[dict[str, Any]] = []
    seen = seen_tracks(a)
    for condition in [c for c in a.conditions if c in b.conditions]:
        ea = _per_episode(a, condition, horizon, protocol.cost_d_max_m, seen)
        eb = _per_episode(b, condition, horizon, protocol.cost_d_max_m, seen)
        keys = sorted(set(ea) & set(eb))
        if not keys:
            continue
        crashed_a = [ea[k]["crashed"] > 0 for k in keys]
        crashed_b = [eb[k]["crashed"] > 0 for k in keys]
        n, ka, kb = len(keys), sum(crashed_a), sum(crashed_b)
        disc_b, disc_c = paired_discordance(crashed_a, crashed_b)
        p = mcnemar_exact(disc_b, disc_c)
        la, ha = wilson_interval(ka, n)
        lb, hb = wilson_interval(kb, n)
        rows.append({"condition": condition, "metric": f"crash rate by T={horizon}", "episodes": n,
                     "A": ka / n, "A interval": (la, ha), "B": kb / n, "B interval": (lb, hb),
                     "A - B": (ka - kb) / n, "difference interval": (math.nan, math.nan),
                     "test": f"McNemar exact (b={disc_b}, c={disc_c})", "p": p})
        for metric, label in (("offset", "mean abs offset (m)"), ("cost", f"cost J per episode, T={horizon}")):
            x, y = [ea[k][metric] for k in keys], [eb[k][metric] for k in keys]
            d = paired_bootstrap(x, y, rng, n_boot=config.n_boot)
            rows.append({"condition": condition, "metric": label, "episodes": d.n, "A": float(np.nanmean(x)),
                         "A interval": (math.nan, math.nan), "B": float(np.nanmean(y)),
                         "B interval": (math.nan, math.nan), "A - B": d.difference,
                         "difference interval": (d.low, d.high), "test": "paired bootstrap", "p": d.p_value})
    if not rows:
        raise ValueError(f"{a.label} and {b.label} share no valid crash-mode episodes (are their records.jsonl "
                         "beside their results.json?)")
    table = pd.DataFrame(rows)
    table["verdict"] = ["A < B" if r["p"] < config.alpha and r["A - B"] < 0 else
                        "A > B" if r["p"] < config.alpha and r["A - B"] > 0 else
                        "not separable at this sample" for _, r in table.iterrows()]
    table.attrs.update(a=a.label, b=b.label, protocol=a.protocol, profile=a.profile)
    return table


def _interval(v: tuple[float, float], digits: int) -> str:
    return "" if any(math.isnan(x) for x in v) else f" [{v[0]:.{digits}f}, {v[1]:.{digits}f}]"


def markdown(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "condition": table["condition"], "metric": table["metric"], "episodes": table["episodes"],
        table.attrs["a"]: [f"{r['A']:.3f}{_interval(r['A interval'], 3)}" for _, r in table.iterrows()],
        table.attrs["b"]: [f"{r['B']:.3f}{_interval(r['B interval'], 3)}" for _, r in table.iterrows()],
        "A - B [95% CI]": [f"{r['A - B']:+.3f}{_interval(r['difference interval'], 3)}" for _, r in table.iterrows()],
        "test": table["test"], "p": [f"{p:.3g}" for p in table["p"]], "verdict": table["verdict"],
    })
    head = (f"A = {table.attrs['a']}, B = {table.attrs['b']}; protocol {table.attrs['protocol']}, profile "
            f"{table.attrs['profile']}; paired on identical episodes (proportions with Wilson 95% intervals)\n\n")
    return head + shown.to_markdown(index=False, disable_numparse=True)


def run(config: CompareConfig) -> str:
    return markdown(compare(config))
