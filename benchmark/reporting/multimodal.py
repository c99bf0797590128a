"""`python -m benchmark multimodal`: point, mixture and categorical heads on bimodal demonstrations.

The obstacle task (envs.obstacles, protocol steerbench-tasks-v1): the teacher passes each obstacle on
the left or on the right, drawn per obstacle and per episode, so the same image is labelled both ways
across its demonstrations. A point head trained by least squares learns the average of the two
answers, straight at the obstacle; a mixture-density or categorical head can keep both and drive one
(models/heads.py: the most probable component's mean, or bin's centre, chosen inside the ONNX graph).

This study records the teacher on the training tracks with obstacles (`record --obstacles`), laps plus
short approach episodes from the lane centre (`--obstacle-approaches`; a lap meets the state where the
teacher decides once per pass, so without them the heads see almost no bimodal frame), trains
PilotNet with each head on the same data and seed, exports and evaluates each on steerbench-tasks-v1
(both conditions, quick by default), and reports the crashes and the collisions with obstacles
(McNemar's exact test against the point head, paired by track), the held-out NLL of the distribution
heads, and a figure of each head's predicted distribution at one obstacle frame (the obstacle
figure's frame, which the teacher labels both ways).

Everything resumes (the recording, the trained models, finished evaluation groups), in `out`; the
report goes to <report>.md and <report>.png.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.common.files import write_json_atomic, write_text_atomic
from benchmark.training.train import TrainConfig

VARIANTS = ("point", "mixture", "categorical")
CONDITIONS = ("obstacles", "obstacles_disturbed")
BOOTSTRAP_SEED = 20261405


@dataclass(frozen=True)
class MultimodalConfig:
    """Point, mixture and categorical heads trained on the obstacle task's bimodal demonstrations."""

    out: Path = Path("runs/multimodal")
    """Working directory: the recording (data/) and one folder per head."""
    report: Path = Path("docs/multimodal")
    """Where the report goes: <report>.md and <report>.png."""
    variants: tuple[str, ...] = VARIANTS
    """Heads to train and evaluate."""
    tracks: tuple[str, ...] = ("racetrack", "racetrack-large", "oval", "sine-road")
    """Built-in tracks of the recording (the zoo's)."""
    procedural_seeds: str = "0-39"
    """Procedural training tracks of the recording (the zoo's)."""
    steps: int = 180
    """Steps per recorded lap episode (one per track: 44 x 180 = 7,920 labels, about the zoo's 8,000)."""
    approaches: int = 5
    """Approach episodes per obstacle in the way and lane, from the lane centre (record
    --obstacle-approaches): the frames the teacher labels both ways (1,047 episodes of 10 steps,
    10,470 labels, on the default tracks: 212 obstacle-lane pairs x 5, less starts too near an open road's end). A lap meets each such state once per pass; 0: laps only."""
    approach_steps: int = 10
    """Steps of each approach episode."""
    mixture_log_std_max: float = -3.5
    """Upper bound of each mixture component's log-std [log of 1/m]: -3.5 is a std of 0.03 1/m, a tenth of
    the distance between the two passing modes (about 0.3 1/m). Unbounded (0), the mixture learnt one
    wide and one narrow component, both centred on 0 (the README's "Heads at obstacles")."""
    epochs: int = 15
    """Training epochs (the zoo's BC: 15)."""
    seed: int = 0
    """Seed of the recording's starts, the initial weights, the split and the batches."""
    precision: Literal["auto", "bf16", "float32"] = "auto"
    """Training precision (auto: bf16 autocast where supported)."""
    protocol: str = "steerbench-tasks-v1"
    """The protocol with the obstacle conditions."""
    profile: str = "quick"
    """Protocol profile."""
    workers: int = 2
    """Evaluation worker processes."""
    threads: int = 0
    """CPU threads for torch training (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


def record_data(config: MultimodalConfig) -> Path:
    import json

    from benchmark.common.config import parse_seeds
    from benchmark.data.record import RecordConfig
    from benchmark.data.record import run as record

    data = Path(config.out) / "data"
    manifest = data / "manifest.json"
    want = {"tracks": list(config.tracks), "procedural_seeds": parse_seeds(config.procedural_seeds),
            "seed": config.seed, "obstacle_approaches": config.approaches or None,
            "approach_steps": config.approach_steps if config.approaches else None}
    if manifest.is_file():  # resume, but never from a recording made under other settings
        got = json.loads(manifest.read_text())
        have = {k: got.get(k) for k in want}
        if have != want:
            raise ValueError(f"{data} holds a recording made with other settings ({have}, not {want}); "
                             "choose a new --out")
    else:
        record(RecordConfig(out=data, tracks=config.tracks, procedural_seeds=config.procedural_seeds, steps=config.steps,
                            seed=config.seed, obstacles=True, obstacle_approaches=config.approaches,
                            approach_steps=config.approach_steps, overwrite=True, progress=config.progress))
    return data


def train_config(variant: str, data: Path, config: MultimodalConfig) -> TrainConfig:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants are: {', '.join(VARIANTS)}")
    extra = {"log_std_max": config.mixture_log_std_max} if variant == "mixture" else {}
    return TrainConfig(data=data, out=Path(config.out) / variant / "train", head=variant, epochs=config.epochs,
                       seed=config.seed, precision=config.precision, threads=config.threads, progress=config.progress,
                       **extra)


RUN_ONLY = ("precision", "threads", "progress", "device")
"""TrainConfig fields that do not change what a run learns (precision is saved resolved)."""


def check_resumable(cfg: TrainConfig) -> None:
    """Refuse to reuse a trained model whose saved training config differs from `cfg` (other settings)."""
    import json

    from benchmark.common.files import to_jsonable

    saved = cfg.out / "train_config.json"
    if not saved.is_file():
        return
    have, want = json.loads(saved.read_text()), to_jsonable(cfg)
    default = to_jsonable(TrainConfig())  # a field newer than the saved run had its default there
    diff = sorted(k for k in want if k not in RUN_ONLY and have.get(k, default.get(k)) != want[k])
    if diff:
        raise ValueError(f"{cfg.out} holds a run made with other settings ({', '.join(diff)}); choose a new --out")


def heldout_nll(model_dir: Path, cfg: TrainConfig) -> dict | None:
    """Mean NLL [nats] of the validation episodes' centre labels, with a cluster-bootstrap 95% interval
    over episodes; None for the point head (no distribution)."""
    from .causal_confusion import by_episode, heldout_per_sample

    if cfg.head == "point":
        return None

    def nll(model, out, y):  # heads.nll is a batch mean: one row at a time
        return [float(model.nll(out[j: j + 1], y[j: j + 1])) for j in range(len(y))]

    got = by_episode(*heldout_per_sample(model_dir, cfg, nll))
    return {"nll": got.pop("mean"), **{k: v for k, v in got.items() if k != "per_episode"}}


def run_variant(variant: str, data: Path, config: MultimodalConfig) -> dict:
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.records import read_records
    from benchmark.training.train import fit
    from models import load_model
    from models.onnx_export import export_onnx

    from .causal_confusion import study_card

    cfg = train_config(variant, data, config)
    folder = Path(config.out) / variant
    check_resumable(cfg)
    if not (cfg.out / "model" / "config.json").is_file():
        fit(cfg)
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        export_onnx(load_model(cfg.out / "model"), onnx)
    results = evaluate(EvaluateConfig(policy=str(onnx), name=f"multimodal-{variant}", protocol=config.protocol,
                                      profile=config.profile, workers=config.workers, out=folder / "eval",
                                      progress=config.progress))
    records = read_records(folder / "eval" / "records.jsonl").records
    row = {"variant": variant, "nll": heldout_nll(cfg.out / "model", cfg), "conditions": {}}
    for c in CONDITIONS:
        paired = results.metrics.conditions[c].paired
        crash = [r for r in records if r.condition == c and r.mode == "crash"]
        row["conditions"][c] = {
            "crashes": paired.crashes.k, "n": paired.crashes.n, "low": paired.crashes.low, "high": paired.crashes.high,
            "collisions": sum(r.failure_type == "collision" for r in crash),
            "crashed": {r.track: r.status == "crashed" for r in crash},
            "collided": {r.track: r.failure_type == "collision" for r in crash}}
    write_json_atomic(folder / "summary.json", row)
    write_json_atomic(folder / "card.json", study_card(
        f"multimodal-{variant}", f"behaviour cloning, {cfg.arch} ({cfg.head} head), on obstacle demonstrations",
        f"the multimodal study's {variant}-head model, trained on the teacher's obstacle passes.",
        cfg, onnx, "benchmark/reporting/multimodal.py", {"variant": variant, "nll": row["nll"]}))
    return row


def run(config: MultimodalConfig) -> dict:
    from benchmark.common.provenance import pinned_git_sha

    with pinned_git_sha():
        data = record_data(config)
        rows = {v: run_variant(v, data, config) for v in config.variants}
    Path(config.report).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(f"{config.report}.md"), report(rows, config))
    figure(rows, config, Path(f"{config.report}.png"))
    return {"report": f"{config.report}.md", "variants": list(rows)}


def report(rows: dict[str, dict], config: MultimodalConfig) -> str:
    from benchmark.evaluation.statistics import mcnemar_exact, wilson_interval

    point = rows.get("point")
    lines = [
        "# Multimodal demonstrations: point, mixture and categorical heads at obstacles",
        "",
        (f"Made by `python -m benchmark multimodal` (protocol {config.protocol}, profile {config.profile}; the "
         f"teacher recorded with obstacles on {', '.join(config.tracks) or 'no built-in track'} and procedural "
         f"{config.procedural_seeds}, "
         f"{config.steps} steps each, plus {config.approaches} approach episodes of {config.approach_steps} steps "
         f"from the lane centre per obstacle and lane; seed {config.seed}; {config.epochs} epochs, "
         f"precision {config.precision}; mixture components' log-std at most {config.mixture_log_std_max:g}). "
         "Crashes and collisions with "
         "obstacles k/n with Wilson 95% intervals; against the point head by McNemar's exact test on the same "
         "tracks (only point / only this)."),
        "",
        "| head | held-out NLL [nats] | condition | crashes | collisions | vs. point: collisions |",
        "|---|---|---|---|---|---|",
    ]
    for v, row in rows.items():
        nll = row["nll"]
        nll_text = "-" if nll is None else f"{nll['nll']:.2f} [{nll['low']:.2f}, {nll['high']:.2f}]"
        for c in CONDITIONS:
            d = row["conditions"][c]
            lo, hi = wilson_interval(d["collisions"], d["n"])
            versus = "-"
            if point is not None and v != "point":
                a, b = point["conditions"][c]["collided"], d["collided"]
                only_a = sum(a[t] and not b[t] for t in a)
                only_b = sum(b[t] and not a[t] for t in a)
                versus = f"{only_a} / {only_b}, p = {mcnemar_exact(only_a, only_b):.2g}"
            lines.append(f"| {v} | {nll_text} | {c} | {d['crashes']}/{d['n']} [{d['low']:.2f}, {d['high']:.2f}] | "
                         f"{d['collisions']}/{d['n']} [{lo:.2f}, {hi:.2f}] | {versus} |")
    lines += ["", ("Held-out NLL: the density of the validation episodes' centre labels under each head "
                   "(per 1/m), with a cluster-bootstrap interval over episodes (4,000 draws)."), ""]
    return "\n".join(lines)


def figure(rows: dict[str, dict], config: MultimodalConfig, path: Path) -> None:
    """Each head's predicted distribution at the obstacle figure's frame, with the teacher's two labels."""
    import torch
    from matplotlib.figure import Figure

    from models import load_model

    from .obstacle_figure import ObstacleFigureConfig, _episodes
    from .plots import save

    _, _, runs = _episodes(ObstacleFigureConfig())
    frame = next(iter(runs.values()))["frame0"]
    grid = np.linspace(-0.1, 0.1, 401)
    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    colours = {"point": "#1f77b4", "mixture": "#d62728", "categorical": "#2ca02c"}
    top = 1.0
    with torch.inference_mode():
        for v in rows:
            model = load_model(Path(config.out) / v / "train" / "model")
            out = model(torch.from_numpy(frame[None].copy()))
            driven = float(model.curvature(out)[0, 0])
            if model.config.head != "point":
                density = np.array([math.exp(-float(model.nll(out, torch.tensor([[g]], dtype=torch.float32))))
                                    for g in grid])
                ax.plot(grid, density, color=colours.get(v), label=f"{v}: density")
                top = max(top, float(density.max()))
            ax.axvline(driven, color=colours.get(v), linestyle="--", label=f"{v}: driven, {driven:+.3f}")
    for side, run in sorted(runs.items()):
        ax.axvline(run["label0"], color="black", linewidth=2, alpha=0.5)
        ax.annotate(f"teacher, {side}", (run["label0"], top * 0.95), ha="center", fontsize=8)
    ax.set_xlabel("curvature [1/m]")
    ax.set_ylabel("predicted density [per 1/m]")
    ax.legend(frameon=False, fontsize=7, loc="upper left")
    ax.set_title("One obstacle frame, labelled both ways: what each head predicts", fontsize=10)
    save(fig, path)
