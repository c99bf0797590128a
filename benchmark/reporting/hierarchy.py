"""`python -m benchmark hierarchy`: hierarchical imitation with latent options against flat BC (issue 15).

The teacher drives procedural training tracks of two or three lanes in lane-changing traffic with hidden
intents (envs.intents: keep, a voluntary change left or right, overtaking a slower vehicle); the intent
is stored in the recording (for this analysis only) and never given to a learner. From that one
recording, with the same frames and labels and the rig's side cameras, two models are trained:

- `bc`: PilotNet, behaviour cloning frame by frame;
- `options`: PilotNet with K latent options (models/options.py, HVIL-style): an encoder q(z | segment),
  a high-level pi(z | frame) and a low level pi(a | frame, z), trained by the evidence lower bound on
  segments of `segment` steps.

The report says how well the options recover the intents on held-out demonstrations (other training
seeds, never trained on), each cut into segments of `segment` steps: the normalised mutual information
(arithmetic normalisation) between the posterior's option of each segment and the intent at each of its
steps, and between the high level's option at each frame and the intent there, with a 95% interval from
resampling whole episodes and a permutation p-value against options assigned at random (segments
shuffled); and the confusion matrices. Then both models drive steerbench-intents-v1 (held-out tracks,
the traffic and intents of the teacher): crashes k/n with Wilson intervals, McNemar's exact test on the
paired episodes, and lane changes per 1,000 steps (the teacher changes lane; does the learner?).

Everything resumes in `out` (the recordings, the trained models, finished evaluation groups); each
model's folder gets its card (card.json); the report goes to <report>.md and <report>.png.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.common.files import write_json_atomic, write_text_atomic
from benchmark.training.augment import AugmentConfig
from benchmark.training.train import TrainConfig
from envs.intents import INTENT_TRAFFIC, INTENTS, IntentConfig

VARIANTS = ("bc", "options")
ARCH = {"bc": "pilotnet", "options": "pilotnet-options"}
CONDITIONS = ("intents", "intents_disturbed")
BOOTSTRAP_SEED = 20261506


@dataclass(frozen=True)
class HierarchyConfig:
    """PilotNet with latent options (HVIL-style) against flat BC on the intents task, and how well the options
    recover the teacher's hidden intents."""

    out: Path = Path("runs/hierarchy")
    """Working directory: data/ and heldout/ (the recordings) and one folder per model."""
    report: Path = Path("docs/hierarchy")
    """Where the report goes: <report>.md and <report>.png."""
    train_seeds: str = "1-10,12,13,15-18"
    """Procedural training tracks of two lanes or more the teacher drives for training."""
    heldout_seeds: str = "19-22,24,25,28,29"
    """Other training tracks of two lanes or more: the held-out demonstrations the options are read off."""
    episodes_per_track: int = 3
    """Training episodes per track."""
    heldout_episodes: int = 2
    """Held-out episodes per track."""
    steps: int = 600
    """Policy steps per recorded episode."""
    options: int = 4
    """Latent options K."""
    segment: int = 32
    """Steps of a segment (the encoder's input, one option each)."""
    epochs: int = 8
    """Training epochs of both models."""
    kl_warmup_updates: int = 500
    """Updates over which the ELBO's KL weight rises from 0 to 1."""
    seed: int = 0
    """Seed of the recordings (the held-out one: seed + 1), the initial weights, the split and the batches."""
    precision: Literal["auto", "bf16", "float32"] = "auto"
    """Training precision."""
    protocol: str = "steerbench-intents-v1"
    """The protocol of held-out tracks with intents and their traffic."""
    profile: str = "quick"
    """Protocol profile."""
    workers: int = 2
    """Evaluation worker processes."""
    threads: int = 0
    """CPU threads for torch training (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


def record(out: Path, seeds: str, episodes: int, config: HierarchyConfig, seed: int) -> Path:
    """The teacher with intents on `seeds` (resumed: refused when an existing recording has other settings)."""
    from benchmark.common.config import parse_seeds
    from benchmark.data.record import RecordConfig
    from benchmark.data.record import run as run_record

    manifest = Path(out) / "manifest.json"
    want = {"procedural_seeds": parse_seeds(seeds), "seed": seed, "tracks": [], "intents": asdict(IntentConfig()),
            "traffic": {k: list(v) if isinstance(v, tuple) else v for k, v in INTENT_TRAFFIC.items()}}
    if manifest.is_file():
        got = json.loads(manifest.read_text())
        have = {k: got.get(k) for k in want}
        if have != json.loads(json.dumps(want)) or got.get("episodes") != len(want["procedural_seeds"]) * episodes:
            raise ValueError(f"{out} holds a recording made with other settings; choose a new --out")
        return Path(out)
    run_record(RecordConfig(out=Path(out), tracks=(), procedural_seeds=seeds, intents=True, episodes_per_track=episodes,
                            steps=config.steps, seed=seed, overwrite=True, progress=config.progress))
    return Path(out)


def train_config(variant: str, data: Path, config: HierarchyConfig) -> TrainConfig:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants are: {', '.join(VARIANTS)}")
    return TrainConfig(data=data, out=Path(config.out) / variant / "train", arch=ARCH[variant], epochs=config.epochs,
                       seq_len=config.segment, options=config.options, kl_warmup_updates=config.kl_warmup_updates,
                       batch_size=128 if variant == "options" else 64, seed=config.seed, precision=config.precision,
                       threads=config.threads, progress=config.progress, augment=AugmentConfig(side_cameras=True))


# --- reading the options off demonstrations --------------------------------------------------------


def episode_segments(index, length: int) -> np.ndarray:
    """(n, length) dataset rows: each episode cut into consecutive, non-overlapping segments of `length` steps
    (a remainder shorter than `length` is left out)."""
    order = np.lexsort((index["step"].to_numpy(), index["episode"].to_numpy()))
    episodes = index["episode"].to_numpy()[order]
    out = []
    for ep in np.unique(episodes):
        rows = order[episodes == ep]
        n = len(rows) // length
        out.extend(rows[: n * length].reshape(n, length))
    return np.asarray(out, dtype=np.int64).reshape(-1, length)


def read_options(model, dataset, length: int, batch: int = 16) -> dict[str, np.ndarray]:
    """Per step of the held-out segments (centre camera): the episode, the true intent, the posterior's option
    of its segment, and the high level's option at its frame."""
    import torch

    segments = episode_segments(dataset.index, length)
    labels = dataset.index["label_center"].to_numpy(np.float32)
    posterior, high = [], []
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(segments), batch):
            rows = segments[i: i + batch]
            frames = torch.from_numpy(dataset.frames(rows.reshape(-1), 1)).reshape(*rows.shape, 66, 200, 3)
            _, prior, post = model.segment_parts(frames, torch.from_numpy(labels[rows]))
            posterior.append(np.repeat(post.argmax(-1).numpy(), length))
            high.append(prior.argmax(-1).reshape(-1).numpy())
    rows = segments.reshape(-1)
    return {"episode": dataset.index["episode"].to_numpy()[rows], "intent": dataset.index["intent"].to_numpy()[rows],
            "segment": np.repeat(np.arange(len(segments)), length), "posterior": np.concatenate(posterior),
            "high": np.concatenate(high)}


def nmi(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised mutual information of two labellings, I(a; b) / ((H(a) + H(b)) / 2) (0 when either is constant)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("nmi needs two labellings of the same, non-zero length")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    joint = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(joint, (ia, ib), 1.0)
    p = joint / joint.sum()
    pa, pb = p.sum(1), p.sum(0)

    def entropy(q):
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    ha, hb = entropy(pa), entropy(pb)
    if ha == 0.0 or hb == 0.0:
        return 0.0
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(pa, pb)[nz])).sum())
    return max(0.0, mi / (0.5 * (ha + hb)))


def nmi_statistics(options: np.ndarray, intents: np.ndarray, episodes: np.ndarray, units: np.ndarray,
                   n_boot: int = 1000, n_perm: int = 1000, seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
    """The NMI of `options` with `intents` (per step), a 95% percentile interval from resampling whole episodes,
    and a permutation p-value: options shuffled across `units` (segments, or steps), each unit keeping its
    steps together, (1 + #{null >= observed}) / (1 + n_perm)."""
    rng = np.random.default_rng(seed)
    value = nmi(options, intents)
    eps = np.unique(episodes)
    by_episode = [np.flatnonzero(episodes == e) for e in eps]
    boots = []
    for _ in range(n_boot):
        pick = np.concatenate([by_episode[i] for i in rng.integers(0, len(eps), len(eps))])
        boots.append(nmi(options[pick], intents[pick]))
    _, first, inverse = np.unique(units, return_index=True, return_inverse=True)
    per_unit = options[first]
    null = np.array([nmi(rng.permutation(per_unit)[inverse], intents) for _ in range(n_perm)])
    low, high = np.quantile(boots, [0.025, 0.975])
    return {"nmi": value, "low": float(low), "high": float(high), "p": float((1 + (null >= value).sum()) / (1 + n_perm)),
            "null_mean": float(null.mean())}


def confusion(options: np.ndarray, intents: np.ndarray, k: int) -> np.ndarray:
    """(k, len(INTENTS)) step counts: option (row) by true intent (column)."""
    out = np.zeros((k, len(INTENTS)), dtype=np.int64)
    np.add.at(out, (np.asarray(options), np.asarray(intents)), 1)
    return out


def lane_changes(d: list, lane_width: float) -> int:
    """Lane changes in a trace of offsets from the centre of the lane the car is in: each jump of more than half
    a lane width between consecutive steps (the car crossed into the next lane)."""
    x = np.asarray([np.nan if v is None else v for v in d], float)
    jumps = np.abs(np.diff(x))
    return int(np.sum(np.isfinite(jumps) & (jumps > 0.5 * lane_width)))


# --- the study ---------------------------------------------------------------------------------------


def run_variant(variant: str, data: Path, heldout: Path, config: HierarchyConfig) -> dict:
    from benchmark.data.dataset import Dataset
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.records import read_records
    from benchmark.training.train import fit
    from models import load_model
    from models.onnx_export import export_onnx

    from .causal_confusion import study_card
    from .multimodal import check_resumable

    folder = Path(config.out) / variant
    cfg = train_config(variant, data, config)
    check_resumable(cfg)
    fit(cfg)  # resumes from its checkpoint; a finished run only reloads its best model
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        export_onnx(load_model(cfg.out / "model"), onnx)
    row: dict = {"variant": variant, "onnx": str(onnx)}
    if variant == "options":
        read = read_options(load_model(cfg.out / "model"), Dataset.open(heldout, verify=False), config.segment)
        row["options"] = {
            "steps": len(read["intent"]), "segments": int(read["segment"].max() + 1),
            "posterior": {**nmi_statistics(read["posterior"], read["intent"], read["episode"], read["segment"]),
                          "confusion": confusion(read["posterior"], read["intent"], config.options).tolist()},
            "high": {**nmi_statistics(read["high"], read["intent"], read["episode"], np.arange(len(read["high"]))),
                     "confusion": confusion(read["high"], read["intent"], config.options).tolist()}}
    evaluate(EvaluateConfig(policy=str(onnx), name=f"hierarchy-{variant}", protocol=config.protocol,
                            profile=config.profile, workers=config.workers, out=folder / "eval", progress=config.progress))
    row["driving"] = driving(read_records(folder / "eval" / "records.jsonl").records)
    write_json_atomic(folder / "summary.json", row)
    method = ("behaviour cloning, PilotNet frame by frame" if variant == "bc" else
              f"hierarchical imitation with {config.options} latent options (HVIL-style: an encoder q(z | segment), "
              f"pi(z | frame), pi(a | frame, z), trained by the ELBO on segments of {config.segment} steps)")
    write_json_atomic(folder / "card.json", study_card(
        f"hierarchy-{variant}", method, f"the hierarchy study's `{variant}` model, trained on one recording of the "
        f"teacher with hidden intents in lane-changing traffic on procedural tracks {config.train_seeds}.", cfg,
        onnx, "benchmark/reporting/hierarchy.py", {"variant": variant}))
    return row


def driving(records) -> dict:
    """Per condition (crash mode): each track's outcome (crashed or not), its lane changes and its steps."""
    from envs import procedural_track

    out: dict = {}
    for r in records:
        if r.mode != "crash":
            continue
        width = procedural_track(int(r.track.rsplit("-", 1)[1])).lane_width
        out.setdefault(r.condition, {})[r.track] = {"crashed": r.status == "crashed", "failure": r.failure_type,
                                                    "steps": r.steps, "lane_changes": lane_changes(r.d, width)}
    return out


def teacher_driving(config: HierarchyConfig) -> dict:
    """The teacher's outcomes on the same episodes: its records are the protocol's drift reference (evaluated
    once, under results/, when the learners' results were computed)."""
    from benchmark.evaluation.evaluate import default_out
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.records import read_records

    path = default_out(load_protocol(config.protocol).name, config.profile, "teacher") / "records.jsonl"
    return driving(read_records(path).records)


def run(config: HierarchyConfig) -> dict:
    from benchmark.common.provenance import pinned_git_sha

    with pinned_git_sha():
        data = record(Path(config.out) / "data", config.train_seeds, config.episodes_per_track, config, config.seed)
        heldout = record(Path(config.out) / "heldout", config.heldout_seeds, config.heldout_episodes, config,
                         config.seed + 1)
        rows = {v: run_variant(v, data, heldout, config) for v in VARIANTS}
        rows["teacher"] = {"variant": "teacher", "driving": teacher_driving(config)}
    Path(config.report).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(f"{config.report}.md"), report(rows, data, heldout, config))
    figure(rows, Path(f"{config.report}.png"), config)
    return {"report": f"{config.report}.md", "variants": list(rows)}


def _rate(k: int, n: int) -> str:
    from benchmark.evaluation.statistics import wilson_interval

    lo, hi = wilson_interval(k, n)
    return f"{k}/{n} [{lo:.2f}, {hi:.2f}]"


def _changes(tracks: dict) -> str:
    """Lane changes per 1,000 steps, with a 95% interval from resampling the tracks."""
    names = sorted(tracks)
    rate = np.array([1000.0 * tracks[t]["lane_changes"] / max(tracks[t]["steps"], 1) for t in names])
    weights = np.array([tracks[t]["steps"] for t in names], float)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    total = 1000.0 * sum(tracks[t]["lane_changes"] for t in names) / max(weights.sum(), 1.0)
    draws = rng.integers(0, len(names), (2000, len(names)))
    boots = (rate[draws] * weights[draws]).sum(1) / np.maximum(weights[draws].sum(1), 1.0)
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return f"{total:.1f} [{lo:.1f}, {hi:.1f}]"


def report(rows: dict[str, dict], data: Path, heldout: Path, config: HierarchyConfig) -> str:
    from benchmark.common.files import sha256_file
    from benchmark.data.dataset import Dataset
    from benchmark.evaluation.statistics import mcnemar_exact, paired_discordance

    train, held = Dataset.open(data, verify=False).index, Dataset.open(heldout, verify=False).index
    share = np.bincount(train["intent"].to_numpy(), minlength=len(INTENTS)) / len(train)
    o = rows["options"]["options"]
    lines = [
        "# Hierarchical imitation: latent options against flat BC in traffic with hidden intents",
        "",
        (f"Made by `python -m benchmark hierarchy` (protocol {config.protocol}, profile {config.profile}). Training: the "
         f"teacher with hidden intents (envs.intents) in lane-changing traffic on procedural tracks {config.train_seeds} "
         f"of two or three lanes, {config.episodes_per_track} episodes each of {config.steps} steps: {len(train):,} "
         f"labelled steps (manifest sha256 {sha256_file(data / 'manifest.json')[:12]}), intents "
         + ", ".join(f"{name} {share[i]:.1%}" for i, name in enumerate(INTENTS))
         + f"; {config.epochs} epochs with the rig's side cameras, seed {config.seed}, both models on the same frames "
         f"and labels. `options`: {config.options} latent options, segments of {config.segment} steps, KL warm-up "
         f"over {config.kl_warmup_updates} updates; the intent is never an input."),
        "",
        "## Do the options recover the intents?",
        "",
        (f"Held-out demonstrations: tracks {config.heldout_seeds}, {config.heldout_episodes} episodes each, "
         f"{len(held):,} steps, cut into {o['segments']} segments of {config.segment} steps ({o['steps']:,} steps). "
         "NMI with a 95% interval from resampling whole episodes; p: permutation test against options shuffled "
         "across segments (the posterior) or frames (the high level), 1,000 permutations, whose mean NMI is the "
         "null."),
        "",
        "| options read by | NMI with the intent [95% CI] | null mean | p |",
        "|---|---|---|---|",
    ]
    for key, what in (("posterior", "the encoder q(z | segment)"), ("high", "the high level pi(z | frame)")):
        s = o[key]
        lines.append(f"| {what} | {s['nmi']:.3f} [{s['low']:.3f}, {s['high']:.3f}] | {s['null_mean']:.3f} | "
                     f"{s['p']:.2g} |")
    for key, what in (("posterior", "Posterior option"), ("high", "High-level option")):
        lines += ["", f"{what} (rows) by true intent (columns), steps:", "",
                  "| option | " + " | ".join(INTENTS) + " |", "|---|" + "---|" * len(INTENTS)]
        for z, counts in enumerate(o[key]["confusion"]):
            lines.append(f"| z = {z} | " + " | ".join(f"{c:,}" for c in counts) + " |")
    lines += [
        "",
        "## Driving in traffic",
        "",
        ("Crashes (off-road or a collision) k/n with Wilson 95% intervals on the protocol's held-out tracks, one "
         "episode each; lane changes per 1,000 steps with a 95% interval from resampling the tracks; paired: the "
         "episodes where one of bc and options crashed and the other did not, McNemar's exact p."),
        "",
        "| policy | condition | crashes | collisions | lane changes / 1,000 steps | vs bc: only bc / only this, p |",
        "|---|---|---|---|---|---|",
    ]
    for v in ("teacher", "bc", "options"):
        for c in CONDITIONS:
            tracks = rows[v]["driving"].get(c, {})
            names = sorted(tracks)
            crashed = [tracks[t]["crashed"] for t in names]
            collisions = sum(tracks[t]["failure"] == "collision" for t in names)
            paired = ""
            if v != "bc":
                ref = rows["bc"]["driving"][c]
                common = [t for t in names if t in ref]
                only_bc, only_v = paired_discordance([ref[t]["crashed"] for t in common], [tracks[t]["crashed"] for t in common])
                paired = f"{only_bc} / {only_v}, p = {mcnemar_exact(only_bc, only_v):.2g}"
            lines.append(f"| {v} | {c} | {_rate(sum(crashed), len(names))} | {collisions} | {_changes(tracks)} | "
                         f"{paired} |")
    lines.append("")
    return "\n".join(lines)


def figure(rows: dict[str, dict], path: Path, config: HierarchyConfig) -> None:
    """Left: the posterior's options by true intent (each intent's steps as fractions); right: crashes per condition."""
    from matplotlib.figure import Figure

    from benchmark.evaluation.statistics import wilson_interval

    from .plots import save

    fig = Figure(figsize=(10.0, 3.8))
    ax = fig.add_subplot(1, 2, 1)
    counts = np.asarray(rows["options"]["options"]["posterior"]["confusion"], float)
    share = counts / np.maximum(counts.sum(0, keepdims=True), 1.0)
    ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    for (z, i), value in np.ndenumerate(share):
        ax.text(i, z, f"{value:.2f}", ha="center", va="center", fontsize=8, color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(INTENTS)), list(INTENTS))
    ax.set_yticks(range(config.options), [f"z = {z}" for z in range(config.options)])
    s = rows["options"]["options"]["posterior"]
    ax.set_title(f"q(z | segment) by hidden intent (held out)\nNMI {s['nmi']:.2f} [{s['low']:.2f}, {s['high']:.2f}]",
                 fontsize=9)
    ax = fig.add_subplot(1, 2, 2)
    x = np.arange(len(CONDITIONS))
    policies = ("teacher", "bc", "options")
    width = 0.8 / len(policies)
    for j, v in enumerate(policies):
        rates, errs = [], [[], []]
        for c in CONDITIONS:
            tracks = rows[v]["driving"].get(c, {})
            k, n = sum(t["crashed"] for t in tracks.values()), len(tracks)
            lo, hi = wilson_interval(k, n)
            r = k / n if n else math.nan
            rates.append(r)
            errs[0].append(max(0.0, r - lo))
            errs[1].append(max(0.0, hi - r))
        ax.bar(x + (j - 1) * width, rates, width, yerr=errs, capsize=3, label=v)
    ax.set_xticks(x, list(CONDITIONS))
    ax.set_ylabel("crash fraction (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title(f"Driving held-out tracks in traffic ({config.protocol}, {config.profile})", fontsize=9)
    fig.tight_layout()
    save(fig, path)
