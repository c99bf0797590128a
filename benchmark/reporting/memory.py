"""`python -m benchmark memory`: a feed-forward PilotNet against memory models under camera dropouts.

The memory task (envs.dropout, protocol steerbench-memory-v1): the frame goes black for 1 to 2 s,
about once every 10 s of driving. A feed-forward model sees nothing there; a recurrent one can carry
what it saw. This study compares, on the same episodes (McNemar's exact test pairs each memory model's
crash outcomes with the feed-forward model's by track, condition by condition):

- `feedforward`: the zoo's BC (models/zoo/bc), trained on the plain frames;
- `gru`: PilotNet features into a GRU (models/recurrent.py), trained on the same demonstrations in
  sequences of `seq_len` steps with training dropouts (`AugmentConfig.camera_dropout_rate`), and
  driven by the harness with its state carried through the ONNX graph;
- `stack`: PilotNet over a window of past frames (models/frame_stack.py: 5 frames 5 steps apart, 2 s,
  as long as the longest dropout), trained and driven the same way (its window is its state).

The copycat trap (a model with history can copy its own previous action instead of reading the
road) is measured on the teacher's own disturbed trajectories (offpolicy mode, where the model's
answer is never executed): the lag k in 0..`max_lag` steps that maximises the correlation between the
model's curvature at t and the teacher's at t - k. A model that reads the road answers at lag 0;
one that copies its past lags behind.

Everything resumes (the trained model, finished evaluation groups), in `out`; the report goes to
<report>.md and <report>.png.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.common.files import write_json_atomic, write_text_atomic
from benchmark.training.augment import AugmentConfig
from benchmark.training.train import TrainConfig

VARIANTS = ("feedforward", "gru", "stack")
MEMORY_ARCHS = {"gru": "pilotnet-gru", "stack": "pilotnet-stack"}
BOOTSTRAP_SEED = 20261404
CONDITIONS = ("disturbed", "dropout_disturbed", "nominal", "dropout")


@dataclass(frozen=True)
class MemoryConfig:
    """A feed-forward PilotNet against a PilotNet-GRU and a frame stack under camera dropouts (steerbench-memory-v1)."""

    data: Path = Path("runs/baselines/bc/data")
    """The demonstrations the memory models learn from (`make baselines` records the zoo's BC data here)."""
    feedforward: Path = Path("models/zoo/bc")
    """The feed-forward model: a directory with model.onnx (the zoo's BC, trained on the same data)."""
    out: Path = Path("runs/memory")
    """Working directory: one folder per variant (training run, model.onnx, evaluation)."""
    report: Path = Path("docs/memory")
    """Where the report goes: <report>.md and <report>.png."""
    variants: tuple[str, ...] = VARIANTS
    """Models to compare: feedforward (always) and memory models among gru, stack."""
    epochs: int = 15
    """Memory models' training epochs (the zoo's BC: 15)."""
    seq_len: int = 32
    """Memory models' training sequence length [steps]: longer than the longest dropout, with sight on both sides."""
    dropout_rate: float = 0.5
    """Training dropouts [onsets per second], more than the protocol's 0.1, so most sequences hold one."""
    seed: int = 0
    """Seed of the initial weights, the split and the batches."""
    precision: Literal["auto", "bf16", "float32"] = "float32"
    """Training precision."""
    protocol: str = "steerbench-memory-v1"
    """The protocol with the dropout conditions and their plain twins."""
    profile: str = "quick"
    """Protocol profile."""
    max_lag: int = 10
    """Largest lag of the copycat measure [steps]."""
    workers: int = 2
    """Evaluation worker processes."""
    threads: int = 0
    """CPU threads for torch training (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


def memory_config(variant: str, config: MemoryConfig) -> TrainConfig:
    """The training run of a memory model (gru or stack): the same data, sequences and dropouts."""
    return TrainConfig(data=Path(config.data), out=Path(config.out) / variant / "train", arch=MEMORY_ARCHS[variant],
                       epochs=config.epochs, seq_len=config.seq_len, seed=config.seed, precision=config.precision,
                       threads=config.threads, progress=config.progress,
                       augment=AugmentConfig(camera_dropout_rate=config.dropout_rate))


def variants(config: MemoryConfig) -> tuple[str, ...]:
    """The study's models: the feed-forward one first, then the memory models asked for."""
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; variants are: {', '.join(VARIANTS)}")
    memory = tuple(v for v in MEMORY_ARCHS if v in config.variants)
    if not memory:
        raise ValueError("the memory study needs at least one memory model: gru and/or stack")
    return ("feedforward", *memory)


def response_lag(records, max_lag: int, n_boot: int = 2000) -> dict:
    """The lag (0..max_lag steps) maximising corr(model curvature at t, teacher's at t - k), pooled
    over the offpolicy episodes (finite steps only), with the correlations, and a cluster bootstrap
    over episodes (fixed seed): the percentile interval of the lag and of corr(0) - corr(1)."""
    pairs = []  # per episode and lag: (x, y)
    for r in records:
        x, y = np.asarray(r.action, float), np.asarray(r.teacher_action, float)
        n = min(len(x), len(y))
        per_lag = []
        for k in range(max_lag + 1):
            a, b = x[k:n], y[: n - k]
            ok = np.isfinite(a) & np.isfinite(b)
            per_lag.append((a[ok], b[ok]))
        pairs.append(per_lag)

    def correlations(episodes) -> list[float]:
        out = []
        for k in range(max_lag + 1):
            a = np.concatenate([pairs[e][k][0] for e in episodes])
            b = np.concatenate([pairs[e][k][1] for e in episodes])
            out.append(float(np.corrcoef(a, b)[0, 1]) if a.size > 2 and a.std() > 0 and b.std() > 0 else math.nan)
        return out

    if not pairs:
        return {"lag": -1, "correlations": [math.nan] * (max_lag + 1), "lag_interval": [-1, -1],
                "margin": math.nan, "margin_low": math.nan, "margin_high": math.nan}
    corrs = correlations(range(len(pairs)))
    best = int(np.nanargmax(corrs)) if np.isfinite(corrs).any() else -1
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    lags, margins = [], []
    for _ in range(n_boot):
        c = correlations(rng.integers(0, len(pairs), len(pairs)))
        if np.isfinite(c).any():
            lags.append(int(np.nanargmax(c)))
            margins.append(c[0] - c[1])
    lo, hi = np.quantile(lags, [0.025, 0.975]) if lags else (-1, -1)
    m_lo, m_hi = np.nanquantile(margins, [0.025, 0.975]) if margins else (math.nan, math.nan)
    return {"lag": best, "correlations": corrs, "lag_interval": [int(lo), int(hi)], "margin": corrs[0] - corrs[1],
            "margin_low": float(m_lo), "margin_high": float(m_hi)}


def run_variant(variant: str, config: MemoryConfig) -> dict:
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.records import read_records
    from benchmark.training.train import fit
    from models import load_model
    from models.onnx_export import export_onnx

    folder = Path(config.out) / variant
    if variant == "feedforward":
        onnx = Path(config.feedforward) / "model.onnx"
    elif variant in MEMORY_ARCHS:
        cfg = memory_config(variant, config)
        if not (cfg.out / "model" / "config.json").is_file():
            fit(cfg)
        onnx = folder / "model.onnx"
        if not onnx.is_file():
            export_onnx(load_model(cfg.out / "model"), onnx)
    else:
        raise ValueError(f"unknown variant {variant!r}; variants are: {', '.join(VARIANTS)}")
    results = evaluate(EvaluateConfig(policy=str(onnx), name=f"memory-{variant}", protocol=config.protocol,
                                      profile=config.profile, workers=config.workers, out=folder / "eval",
                                      progress=config.progress))
    records = read_records(folder / "eval" / "records.jsonl").records
    row = {"variant": variant, "onnx": str(onnx), "conditions": {}}
    for c in CONDITIONS:
        paired = results.metrics.conditions[c].paired
        row["conditions"][c] = {
            "crashes": paired.crashes.k, "n": paired.crashes.n, "low": paired.crashes.low, "high": paired.crashes.high,
            "crashed": {r.track: r.status == "crashed" for r in records if r.condition == c and r.mode == "crash"}}
    for c in ("disturbed", "dropout_disturbed"):
        row["conditions"][c]["lag"] = response_lag(
            [r for r in records if r.condition == c and r.mode == "offpolicy"], config.max_lag)
    write_json_atomic(folder / "summary.json", row)
    if variant in MEMORY_ARCHS:
        from .causal_confusion import study_card

        what = {"gru": "the memory study's GRU: recurrent",
                "stack": "the memory study's frame stack: its window of past frames' features"}[variant]
        write_json_atomic(folder / "card.json", study_card(
            f"memory-{variant}", f"behaviour cloning, {cfg.arch} ({cfg.head} head), sequences of {cfg.seq_len} steps "
            f"with camera dropouts ({cfg.augment.camera_dropout_rate} per s)",
            f"{what}, its state carried through the ONNX graph's state_in / state_out.",
            cfg, onnx, "benchmark/reporting/memory.py", {"variant": variant}))
    return row


def run(config: MemoryConfig) -> dict:
    from benchmark.common.provenance import pinned_git_sha

    with pinned_git_sha():
        rows = {v: run_variant(v, config) for v in variants(config)}
    Path(config.report).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(f"{config.report}.md"), report(rows, config))
    figure(rows, Path(f"{config.report}.png"))
    return {"report": f"{config.report}.md", "variants": list(rows)}


NAMES = {"feedforward": "feed-forward", "gru": "GRU", "stack": "frame stack"}


def report(rows: dict[str, dict], config: MemoryConfig) -> str:
    from benchmark.common.files import sha256_file
    from benchmark.evaluation.statistics import mcnemar_exact

    ff = rows["feedforward"]
    memory = [v for v in rows if v != "feedforward"]
    lines = [
        "# Memory: camera dropouts, a feed-forward PilotNet against memory models",
        "",
        (f"Made by `python -m benchmark memory` (protocol {config.protocol}, profile {config.profile}; "
         f"feed-forward: `{config.feedforward}`; the memory models ({', '.join(NAMES[v] for v in memory)}) trained "
         f"on `{config.data}`, manifest sha256 {sha256_file(Path(config.data) / 'manifest.json')[:12]}, "
         f"{config.epochs} epochs, sequences of {config.seq_len} steps, training dropouts {config.dropout_rate} "
         f"per s, seed {config.seed}). Crashes k/n with Wilson 95% intervals; each memory model against the "
         "feed-forward model by McNemar's exact test on the same tracks (discordant counts: only the feed-forward "
         "model crashed / only the memory model)."),
        "",
        "| condition | feed-forward crashes | " + " | ".join(
            f"{NAMES[v]} crashes | only feed-forward / only {NAMES[v]}, McNemar p" for v in memory) + " |",
        "|---|---|" + "---|---|" * len(memory),
    ]
    for c in CONDITIONS:
        a = ff["conditions"][c]
        cells = [f"{a['crashes']}/{a['n']} [{a['low']:.2f}, {a['high']:.2f}]"]
        for v in memory:
            b = rows[v]["conditions"][c]
            tracks = sorted(set(a["crashed"]) & set(b["crashed"]))
            only_a = sum(a["crashed"][t] and not b["crashed"][t] for t in tracks)
            only_b = sum(b["crashed"][t] and not a["crashed"][t] for t in tracks)
            cells += [f"{b['crashes']}/{b['n']} [{b['low']:.2f}, {b['high']:.2f}]",
                      f"{only_a} / {only_b}, p = {mcnemar_exact(only_a, only_b):.2g}"]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", ("Copycat check, on the teacher's own trajectories (offpolicy mode, the model's answers never "
                   "executed): the lag k maximising corr(model at t, teacher at t - k) over k = 0.."
                   f"{config.max_lag}, the correlations at lags 0 and 1 and their difference; intervals are 95% "
                   "cluster-bootstrap intervals over episodes (2,000 draws). A model that copies its own past "
                   "answers late: its best lag is above 0."), "",
              "| model | condition | best lag [steps] [95% CI] | corr at lag 0 | corr at lag 1 | difference [95% CI] |",
              "|---|---|---|---|---|---|"]
    for v, row in rows.items():
        for c in ("disturbed", "dropout_disturbed"):
            lag = row["conditions"][c]["lag"]
            lines.append(f"| {v} | {c} | {lag['lag']} [{lag['lag_interval'][0]}, {lag['lag_interval'][1]}] | "
                         f"{lag['correlations'][0]:.3f} | {lag['correlations'][1]:.3f} | {lag['margin']:+.3f} "
                         f"[{lag['margin_low']:+.3f}, {lag['margin_high']:+.3f}] |")
    lines.append("")
    return "\n".join(lines)


def figure(rows: dict[str, dict], path: Path) -> None:
    """Crash rates with Wilson intervals per condition, the models side by side."""
    from matplotlib.figure import Figure

    from .plots import save

    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(CONDITIONS))
    colours = {"feedforward": "#1f77b4", "gru": "#ff7f0e", "stack": "#2ca02c"}
    width = 0.8 / len(rows)
    for j, v in enumerate(rows):
        d = [rows[v]["conditions"][c] for c in CONDITIONS]
        rate = np.array([e["crashes"] / e["n"] for e in d])
        err = np.array([[max(0.0, r - e["low"]) for r, e in zip(rate, d)], [max(0.0, e["high"] - r) for r, e in zip(rate, d)]])
        ax.bar(x + (j - 0.5 * (len(rows) - 1)) * width, rate, width, yerr=err, capsize=3, color=colours[v],
               label=NAMES[v])
    ax.set_xticks(x, [c.replace("_", "\n") for c in CONDITIONS])
    ax.set_ylabel("crash rate (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False)
    ax.set_title("Camera dropouts: feed-forward against memory", fontsize=10)
    save(fig, path)
