"""`python -m benchmark calibrate-disturbance`: how hard the disturbed condition is for the teacher.

The disturbed condition (benchmark/rollout/wrappers.py, `Disturbance`) must be strong enough that
every policy keeps recovering (the teacher's mean |offset| clearly above nominal) and mild enough
that the teacher survives long episodes. This command measures both for a grid of levels: the
teacher drives one episode of `steps` steps on each of `tracks` held-out procedural test tracks
per level, in crash mode; the table gives its survival (with a Wilson 95% interval: 24/24 only
shows S >= 0.86, and S >= 0.99 needs about 370 failure-free episodes) and its mean and 95th
percentile |lateral offset| with bootstrap intervals over tracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.common.files import write_text_atomic
from benchmark.rollout.policies import PolicySpec

from . import metrics as M
from .evaluate import EvaluateConfig, _run_groups
from .protocol import EvalEpisode, load_protocol
from .records import EpisodeKey, EpisodeRecord
from .statistics import wilson_interval


@dataclass(frozen=True)
class CalibrateConfig:
    """Measure the teacher's survival and offset under the disturbed condition, level by level."""

    tracks: int = 24
    """Held-out procedural test tracks (seeds 1000000 on), one episode each per level."""
    steps: int = 3000
    """Policy steps per episode (10 Hz)."""
    steering_std: tuple[float, ...] = (0.0, 0.005, 0.01, 0.02)
    """Steering-noise standard deviations of the levels [1/m] (paired with gust_std_mps)."""
    steering_tau_s: float = 0.5
    """Correlation time of the steering noise [s]."""
    gust_std_mps: tuple[float, ...] = (0.0, 0.15, 0.3, 0.5)
    """Lateral gust standard deviations of the levels [m/s]."""
    gust_tau_s: float = 2.0
    """Correlation time of the gusts [s]."""
    seed: int = 0
    """Seed of the episodes' reset seeds (and so of the disturbances) and of the bootstrap."""
    workers: int = 2
    """Worker processes."""
    out: Path = Path("results/calibration.md")
    """Where the table goes (Markdown)."""


def _episodes(config: CalibrateConfig, level: int, disturbance) -> list[EvalEpisode]:
    rng = np.random.default_rng([config.seed, 41])
    seeds = [int(s) for s in rng.integers(2**31, size=config.tracks)]  # the same starts at every level
    return [EvalEpisode(key=EpisodeKey(f"procedural-{1_000_000 + k}", "disturbed", "crash", level),
                        track="procedural", track_seed=1_000_000 + k, seed=seeds[k], max_steps=config.steps,
                        disturbance=disturbance) for k in range(config.tracks)]


def calibrate(config: CalibrateConfig) -> list[dict]:
    if len(config.steering_std) != len(config.gust_std_mps):
        raise ValueError("give as many steering_std as gust_std_mps values (one pair per level)")
    protocol = load_protocol("steerbench-v2")  # the protocol whose disturbance it calibrates
    spec = PolicySpec(kind="teacher", name="teacher")
    rows, rng = [], np.random.default_rng([config.seed, 42])
    for level, (steer, gust) in enumerate(zip(config.steering_std, config.gust_std_mps)):
        disturbance = (steer, config.steering_tau_s, gust, config.gust_tau_s) if (steer or gust) else None
        episodes = _episodes(config, level, disturbance)
        records: list[EpisodeRecord] = []
        groups = [episodes[i: i + 8] for i in range(0, len(episodes), 8)]
        _run_groups(groups, spec, protocol, EvaluateConfig(workers=config.workers), records.extend)
        n = len(records)
        survived = sum(not r.crashed for r in records)
        low, high = wilson_interval(survived, n)
        offsets = M.per_episode_mean_abs([r.series("d") for r in records])
        p95 = np.array([np.nanpercentile(np.abs(r.series("d")), 95) for r in records])
        mean_ci = M.aggregate(offsets, rng, n_boot=1000)
        p95_ci = M.aggregate(p95, rng, n_boot=1000)
        rows.append({"steering_std": steer, "gust_std_mps": gust, "episodes": n, "survived": survived,
                     "survival": survived / n, "survival_low": low, "survival_high": high,
                     "mean_abs_offset_m": mean_ci["mean"], "offset_low": mean_ci["ci_low"],
                     "offset_high": mean_ci["ci_high"], "p95_abs_offset_m": p95_ci["mean"],
                     "p95_low": p95_ci["ci_low"], "p95_high": p95_ci["ci_high"]})
    return rows


def markdown(rows: list[dict], config: CalibrateConfig) -> str:
    def ci(m, lo, hi):
        return "–" if not math.isfinite(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    lines = [f"Teacher under the disturbed condition: {config.tracks} held-out procedural test tracks (seeds "
             f"1000000-{1_000_000 + config.tracks - 1}), one {config.steps}-step crash-mode episode each per level; "
             f"steering noise correlation time {config.steering_tau_s:g} s, gust correlation time "
             f"{config.gust_tau_s:g} s. Survival with Wilson 95% intervals; offsets with bootstrap 95% intervals "
             "over tracks. Made by `python -m benchmark calibrate-disturbance`.", "",
             "| steering std (1/m) | gust std (m/s) | survived | survival [95% CI] | mean abs offset (m) | "
             "p95 abs offset (m) |", "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['steering_std']:g} | {r['gust_std_mps']:g} | {r['survived']}/{r['episodes']} | "
                     f"{r['survival']:.3f} [{r['survival_low']:.3f}, {r['survival_high']:.3f}] | "
                     f"{ci(r['mean_abs_offset_m'], r['offset_low'], r['offset_high'])} | "
                     f"{ci(r['p95_abs_offset_m'], r['p95_low'], r['p95_high'])} |")
    return "\n".join(lines) + "\n"


def run(config: CalibrateConfig) -> str:
    text = markdown(calibrate(config), config)
    Path(config.out).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(config.out, text)
    return text
