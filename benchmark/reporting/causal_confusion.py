"""`python -m benchmark causal-confusion`: BC with and without the steering gauge, on the same data.

de Haan et al. (2019): a frame that shows the car's own previous action lets behaviour cloning read
that action instead of the road. This study trains PilotNet three times on one recorded dataset (the
zoo's BC demonstrations by default), with the same seed and budget:

- `plain`:   the frames as recorded;
- `gauge`:   every frame carries the dashboard gauge of the previous step's executed action
             (envs.indicator), as steerbench-causal-v1's twin conditions draw it;
- `dropout`: the gauge, but with no reading on half of the training samples (a remedy to test).

Each is exported to ONNX and evaluated on steerbench-causal-v1 (quick by default): `plain` on the plain
conditions (disturbed, nominal), the others on their twins (indicator_disturbed, indicator), which have
the same episode seeds, so every comparison pairs by track (McNemar's exact test on crashes). The
held-out loss is the mean squared error on the validation episodes of training (the gauge drawn for
the gauge models), with a cluster-bootstrap interval over those episodes; eps_off, the mistake rate on
the teacher's own test trajectories, is the closed-loop protocol's held-out measure.

Everything resumes: a trained variant (its model/) and finished evaluation groups are kept in `out`,
with each variant's model.onnx, card.json (the zoo's card schema) and summary.json. The report
(markdown and a figure) goes to `report`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.common.files import write_json_atomic, write_text_atomic
from benchmark.training.augment import AugmentConfig, validation_overlay
from benchmark.training.train import TrainConfig, split_episodes

VARIANTS = ("plain", "gauge", "dropout")
CONDITIONS = {"plain": ("disturbed", "nominal"), "gauge": ("indicator_disturbed", "indicator"),
              "dropout": ("indicator_disturbed", "indicator")}
"""The conditions each variant is evaluated on: the disturbed one first (the comparison's main one)."""
BOOTSTRAP_SEED = 20261402


@dataclass(frozen=True)
class CausalConfusionConfig:
    """Train BC with and without the steering gauge on one dataset; evaluate and report the gap."""

    data: Path = Path("runs/baselines/bc/data")
    """The demonstrations (a dataset directory; `make baselines` records the zoo's BC data here)."""
    out: Path = Path("runs/causal-confusion")
    """Working directory: one folder per variant (training run, model.onnx, evaluation)."""
    report: Path = Path("docs/causal-confusion")
    """Where the report goes: <report>.md and <report>.png."""
    variants: tuple[str, ...] = VARIANTS
    """Variants to train and evaluate (plain, gauge, dropout)."""
    dropout: float = 0.5
    """The dropout variant's probability that a training sample's gauge shows no reading."""
    epochs: int = 15
    """Training epochs (the zoo's BC: 15)."""
    seed: int = 0
    """Seed of the initial weights, the split and the batches (the same for every variant)."""
    precision: Literal["auto", "bf16", "float32"] = "float32"
    """Training precision (float32, as the zoo's BC)."""
    protocol: str = "steerbench-causal-v1"
    """The protocol with the gauge conditions and their plain twins."""
    profile: str = "quick"
    """Protocol profile."""
    workers: int = 2
    """Evaluation worker processes."""
    threads: int = 0
    """CPU threads for torch training (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


def train_config(variant: str, config: CausalConfusionConfig) -> TrainConfig:
    """The variant's TrainConfig: the zoo's BC recipe, the gauge as the only difference."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants are: {', '.join(VARIANTS)}")
    augment = AugmentConfig(steering_indicator=variant != "plain",
                            indicator_dropout=config.dropout if variant == "dropout" else 0.0)
    return TrainConfig(data=Path(config.data), out=Path(config.out) / variant / "train", epochs=config.epochs,
                       seed=config.seed, precision=config.precision, threads=config.threads,
                       progress=config.progress, augment=augment)


def heldout_per_sample(model_dir: Path, cfg: TrainConfig, measure) -> tuple[np.ndarray, np.ndarray]:
    """`measure(model, head output (B, k), labels (B, 1)) -> (B,)` on the training run's validation
    episodes (the frames as the model saw them in training), in batches of 256; (values, episodes)."""
    import torch

    from benchmark.data.dataset import Dataset
    from models import load_model

    dataset = Dataset.open(cfg.data)
    _, val = split_episodes(dataset, cfg.val_fraction, cfg.seed)
    model = load_model(model_dir)
    overlay = validation_overlay(dataset, cfg.augment)
    labels = dataset.index["label_center"].to_numpy(np.float32)
    values = []
    with torch.inference_mode():
        for i in range(0, len(val), 256):
            s = val[i: i + 256]
            out = model(torch.from_numpy(overlay(dataset.frames(s, 1), s)))
            values.append(np.asarray(measure(model, out, torch.from_numpy(labels[s]).reshape(-1, 1)), np.float64))
    return np.concatenate(values) if values else np.zeros(0), dataset.index["episode"].to_numpy()[val]


def by_episode(values: np.ndarray, episodes: np.ndarray) -> dict:
    """The mean with a 95% cluster-bootstrap interval over episodes (4,000 draws), and per episode."""
    from benchmark.evaluation.statistics import cluster_bootstrap

    mean, low, high = cluster_bootstrap(values, episodes, np.random.default_rng(BOOTSTRAP_SEED), n_boot=4000)
    per_episode = {str(e): float(values[episodes == e].mean()) for e in np.unique(episodes)}
    return {"mean": mean, "low": low, "high": high, "samples": int(values.size), "episodes": len(per_episode),
            "per_episode": per_episode}


def heldout_loss(model_dir: Path, cfg: TrainConfig) -> dict:
    """Mean squared error [(1/m)^2] of the centre label on the validation episodes, with a 95%
    cluster-bootstrap interval over episodes (the frames as the variant sees them)."""
    def squared_error(model, out, y):
        return (model.curvature(out).reshape(-1).numpy().astype(np.float64) - y.reshape(-1).numpy()) ** 2

    got = by_episode(*heldout_per_sample(model_dir, cfg, squared_error))
    return {"mse": got.pop("mean"), **got}


def run_variant(variant: str, config: CausalConfusionConfig) -> dict:
    """Train (or reuse), export and evaluate one variant; its summary row."""
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.training.train import fit
    from models import load_model
    from models.onnx_export import export_onnx

    cfg = train_config(variant, config)
    model_dir = cfg.out / "model"
    if not (model_dir / "config.json").is_file():
        fit(cfg)
    onnx = Path(config.out) / variant / "model.onnx"
    if not onnx.is_file():
        export_onnx(load_model(model_dir), onnx)
    results = evaluate(EvaluateConfig(policy=str(onnx), name=f"causal-{variant}", protocol=config.protocol,
                                      profile=config.profile, conditions=CONDITIONS[variant], workers=config.workers,
                                      out=Path(config.out) / variant / "eval", progress=config.progress))
    row = {"variant": variant, "gauge": variant != "plain", "dropout": cfg.augment.indicator_dropout,
           "heldout": heldout_loss(model_dir, cfg), "conditions": {}}
    from benchmark.evaluation.records import read_records

    records = read_records(Path(config.out) / variant / "eval" / "records.jsonl").records
    for c in CONDITIONS[variant]:
        paired = results.metrics.conditions[c].paired
        crashed = {r.track: r.status == "crashed" for r in records if r.condition == c and r.mode == "crash"}
        row["conditions"][c] = {
            "crashes": paired.crashes.k, "n": paired.crashes.n, "low": paired.crashes.low, "high": paired.crashes.high,
            "eps_off": _proportion(paired.mistakes.eps_off), "eps_on": _proportion(paired.mistakes.eps_on),
            "crashed": crashed}
    write_json_atomic(Path(config.out) / variant / "summary.json", row)
    write_json_atomic(Path(config.out) / variant / "card.json", card(variant, cfg, onnx, row))
    return row


def card(variant: str, cfg: TrainConfig, onnx: Path, row: dict) -> dict:
    """The variant's model card (the zoo's and the leaderboard's schema)."""
    gauge = {"plain": "no steering gauge", "gauge": "the steering gauge in every frame",
             "dropout": f"the steering gauge, with no reading on {cfg.augment.indicator_dropout:.0%} of the samples"}
    return study_card(
        f"causal-{variant}", f"behaviour cloning, {cfg.arch} ({cfg.head} head); {gauge[variant]}",
        f"the causal-confusion study's {variant} model. " + (
            "Expects the frames of steerbench-causal-v1's indicator conditions." if variant != "plain"
            else "The plain frames."),
        cfg, onnx, "benchmark/reporting/causal_confusion.py", {"variant": variant, "heldout": row["heldout"]})


def study_card(name: str, method: str, description: str, cfg: TrainConfig, onnx: Path, code: str,
               extra: dict) -> dict:
    """A study model's card (the zoo's and the leaderboard's schema), with its provenance in `extra`."""
    from benchmark.common.files import sha256_file, to_jsonable
    from benchmark.common.provenance import command_line, git_sha, package_versions
    from benchmark.data.dataset import Dataset

    dataset = Dataset.open(cfg.data, verify=False)
    first = {k: v for k, v in extra.items() if k == "variant"}
    return {
        "name": name,
        "authors": ["SteerBench baselines"],
        "method": method,
        "training": {"tracks": sorted({str(t) for t in dataset.index["track"]}), "seeds": [cfg.seed]},
        "label_budget": len(dataset.index),
        "env_steps": len(dataset.index),
        "licence": "MIT",
        "code": code,
        "description": f"Made by `{command_line()}`: {description}",
        "extra": {
            **first, "augment": to_jsonable(cfg.augment), **{k: v for k, v in extra.items() if k not in first},
            "data_sha256": sha256_file(Path(cfg.data) / "manifest.json"),
            "model_sha256": sha256_file(cfg.out / "model" / "model.safetensors"),
            "onnx_sha256": sha256_file(onnx), "config": to_jsonable(cfg), "git_sha": git_sha(),
            "packages": package_versions(),
        },
    }


def _proportion(p) -> dict | None:
    return None if p is None else {"k": p.k, "n": p.n, "rate": p.rate, "low": p.low, "high": p.high}


def run(config: CausalConfusionConfig) -> dict:
    from benchmark.common.provenance import pinned_git_sha

    with pinned_git_sha():  # the report, written below, is tracked: the cards stay clean when it changes
        rows = {v: run_variant(v, config) for v in config.variants}
    text = report(rows, config)
    Path(config.report).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(f"{config.report}.md"), text)
    figure(rows, Path(f"{config.report}.png"))
    return {"report": f"{config.report}.md", "variants": list(rows)}


def heldout_difference(a: dict, b: dict) -> tuple[object, float, int]:
    """B's held-out MSE minus A's, paired by validation episode: the mean difference with a percentile
    bootstrap interval over episodes (4,000 draws), the exact sign-flip p-value, and on how many
    episodes B's is lower."""
    from benchmark.evaluation.statistics import paired_bootstrap, sign_flip_test

    eps = sorted(set(a["per_episode"]) & set(b["per_episode"]))
    x = [b["per_episode"][e] for e in eps]
    y = [a["per_episode"][e] for e in eps]
    diff = paired_bootstrap(x, y, np.random.default_rng(BOOTSTRAP_SEED), n_boot=4000)
    return diff, sign_flip_test(x, y), sum(u < v for u, v in zip(x, y))


def _paired(a: dict, b: dict) -> tuple[int, int, float]:
    """(b, c, p): tracks where only A crashed, only B crashed, McNemar's exact p."""
    from benchmark.evaluation.statistics import mcnemar_exact

    tracks = sorted(set(a) & set(b))
    only_a = sum(a[t] and not b[t] for t in tracks)
    only_b = sum(b[t] and not a[t] for t in tracks)
    return only_a, only_b, mcnemar_exact(only_a, only_b)


def _rate(p: dict | None) -> str:
    if p is None or p["rate"] is None:
        return "-"
    return f"{p['rate']:.3f} [{p['low']:.3f}, {p['high']:.3f}]"


def report(rows: dict[str, dict], config: CausalConfusionConfig) -> str:
    from benchmark.common.files import sha256_file

    first = next(iter(rows.values()))["heldout"]
    lines = [
        "# Causal confusion: BC with a steering gauge in the frame",
        "",
        (f"Made by `python -m benchmark causal-confusion` (protocol {config.protocol}, profile {config.profile}; "
         f"data `{config.data}`, manifest sha256 {sha256_file(Path(config.data) / 'manifest.json')[:12]}; "
         f"{config.epochs} epochs, seed {config.seed}). The three models differ only in the "
         "gauge (envs/indicator.py). `plain` is evaluated on the plain conditions, the gauge models on their "
         "twins, which have the same episode seeds; McNemar's exact test pairs the crash outcomes by track."),
        "",
        ("| model | gauge in training | held-out MSE [1e-6 (1/m)^2] | vs. plain: difference, lower on | "
         "crashes, disturbed | vs. plain: only plain / only this, McNemar p | crashes, nominal | vs. plain | "
         "eps_off, disturbed | eps_on, disturbed |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    plain = rows.get("plain")
    for v, row in rows.items():
        dist, nom = (row["conditions"][c] for c in CONDITIONS[v])
        h = row["heldout"]
        gauge = "no" if not row["gauge"] else (
            "yes" if not row["dropout"] else f"yes, {row['dropout']:.0%} without a reading")
        loss_vs = vs_dist = vs_nom = "-"
        if plain is not None and v != "plain":
            diff, p_flip, lower = heldout_difference(plain["heldout"], h)
            loss_vs = (f"{diff.difference * 1e6:+.2f} [{diff.low * 1e6:+.2f}, {diff.high * 1e6:+.2f}], "
                       f"p = {p_flip:.2g}; {lower} of {diff.n} episodes")
            b, c, p = _paired(plain["conditions"]["disturbed"]["crashed"], dist["crashed"])
            vs_dist = f"{b} / {c}, p = {p:.2g}"
            b, c, p = _paired(plain["conditions"]["nominal"]["crashed"], nom["crashed"])
            vs_nom = f"{b} / {c}, p = {p:.2g}"
        lines.append(
            f"| {v} | {gauge} | {h['mse'] * 1e6:.2f} [{h['low'] * 1e6:.2f}, {h['high'] * 1e6:.2f}] | {loss_vs} | "
            f"{dist['crashes']}/{dist['n']} [{dist['low']:.2f}, {dist['high']:.2f}] | {vs_dist} | "
            f"{nom['crashes']}/{nom['n']} [{nom['low']:.2f}, {nom['high']:.2f}] | {vs_nom} | "
            f"{_rate(dist['eps_off'])} | {_rate(dist['eps_on'])} |")
    lines += [
        "",
        (f"Held-out MSE: on the training run's validation episodes ({first['episodes']} episodes, "
         f"{first['samples']} steps; the gauge drawn for the gauge models), with a cluster-bootstrap interval "
         "over episodes (4,000 draws); its difference from plain is paired by episode (a bootstrap interval "
         "over episodes, 4,000 draws, and the exact sign-flip p-value, whose smallest value with "
         f"{first['episodes']} episodes is 2 / 2^{first['episodes']} = {2 / 2 ** first['episodes']:.2g}). "
         "eps_off / eps_on: the share of steps with |a - a*| > tau on the teacher's trajectories of the test "
         "episodes (the model queried, the teacher driving) / on the model's own, with Wilson intervals over "
         "steps (which treat correlated steps as independent, so they are too narrow). Every interval is 95%."),
        "",
    ]
    return "\n".join(lines)


def figure(rows: dict[str, dict], path: Path) -> None:
    """Held-out MSE against the crash rate (disturbed: filled, nominal: open), one colour per variant,
    with both intervals."""
    from matplotlib.figure import Figure

    from .plots import save

    fig = Figure(figsize=(6.0, 4.0))
    ax = fig.add_subplot()
    colours = {"plain": "#1f77b4", "gauge": "#d62728", "dropout": "#2ca02c"}
    for v, row in rows.items():
        h = row["heldout"]
        for c, filled in zip(CONDITIONS[v][::-1], (False, True)):  # nominal (open, larger) under disturbed
            d = row["conditions"][c]
            rate = d["crashes"] / d["n"] if d["n"] else math.nan
            colour = colours.get(v)
            ax.errorbar(h["mse"] * 1e6, rate,  # (a percentile interval need not hold the mean: clipped at 0)
                        xerr=[[max(0.0, h["mse"] - h["low"]) * 1e6], [max(0.0, h["high"] - h["mse"]) * 1e6]],
                        yerr=[[max(0.0, rate - d["low"])], [max(0.0, d["high"] - rate)]], fmt="o", capsize=3,
                        color=colour, markerfacecolor=colour if filled else "white", markersize=5 if filled else 10,
                        label=f"{v}, {'disturbed' if filled else 'nominal'}")
    ax.set_xlabel("held-out MSE on demonstrations [1e-6 (1/m)$^2$] (95% CI)")
    ax.set_ylabel("crash rate (95% CI)")
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    ax.legend(frameon=False, fontsize=8, loc="center right")
    ax.set_title("Causal confusion: held-out loss against driving", fontsize=10)
    save(fig, path)


def summary_rows(out: Path) -> list[dict]:
    """The summaries written so far (for tests and the README)."""
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/summary.json"))]


__all__ = ["CausalConfusionConfig", "heldout_loss", "run", "train_config"]
