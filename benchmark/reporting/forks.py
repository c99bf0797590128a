"""`python -m benchmark forks` and `lanes`: following commands at forks or to change lane, and hindsight
relabelling (issue 15).

The teacher drives procedural fork networks of training seeds (envs.forks), each episode on a route
drawn from its seed. From that one recording, with the same frames and labels, four models are trained:

- `bc`: PilotNet without a command. At a fork its frame does not say which branch; it cannot follow one;
- `command-route`: PilotNet with the command as an input (models/conditional.py), trained on the
  commands the recording stored (the teacher's route: commands given explicitly);
- `command-hindsight`: the same model trained on commands relabelled in hindsight from the recorded
  poses alone (benchmark/data/hindsight.py: the branch driven within the next 40 m), as if the
  demonstrations had been recorded without any command;
- `branched-hindsight`: one branch of fully connected layers per command, hindsight commands.

Each is evaluated on steerbench-forks-v1 (held-out networks) and the report gives the command success
rate at forks and the crash rate, with Wilson intervals, and each model against `bc` and
`command-route` by McNemar's exact test on the passages both attempted (the same episode seeds give
the same routes, so the j-th passage of an episode is the same fork with the same command for both).

`python -m benchmark lanes` (LanesConfig) runs the same four models on the lane-goal task: the teacher
drives procedural training tracks of two or three lanes with lane goals (envs.lane_goals: a command to
change to the lane on the left or right every 6 to 12 s), the hindsight commands come from the lane
changes the car made (benchmark.data.hindsight.lane_hindsight_commands), and the models are evaluated on
steerbench-lanes-v1; a passage is then a lane goal, passed when reached.

Everything resumes in `out` (the recording, trained models, finished evaluation groups); each model's
folder gets its card (card.json, the leaderboard's schema: models/tasks/forks holds the published ones);
the report goes to <report>.md and <report>.png.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from benchmark.common.files import write_json_atomic, write_text_atomic
from benchmark.training.augment import AugmentConfig
from benchmark.training.train import TrainConfig
from envs.lane_goals import LaneGoalConfig

VARIANTS = ("bc", "command-route", "command-hindsight", "branched-hindsight")
ARCH = {"bc": "pilotnet", "command-route": "pilotnet-command", "command-hindsight": "pilotnet-command",
        "branched-hindsight": "pilotnet-branched"}
SOURCE = {"bc": "route", "command-route": "route", "command-hindsight": "hindsight", "branched-hindsight": "hindsight"}
CONDITIONS = ("nominal", "disturbed")
LANE_CONDITIONS = ("lane_goals", "lane_goals_disturbed")


@dataclass(frozen=True)
class CommandStudyConfig:
    """What the forks and lanes studies share (see ForksConfig and LanesConfig)."""

    episodes_per_track: int = 3
    """Episodes per network or track (each on its own route or goals)."""
    steps: int = 600
    """Policy steps per episode."""
    variants: tuple[str, ...] = VARIANTS
    """Models to train and compare (bc is always among them)."""
    epochs: int = 8
    """Training epochs of every model."""
    seed: int = 0
    """Seed of the recording, the initial weights, the split and the batches."""
    precision: Literal["auto", "bf16", "float32"] = "auto"
    """Training precision."""
    profile: str = "quick"
    """Protocol profile."""
    workers: int = 2
    """Evaluation worker processes."""
    threads: int = 0
    """CPU threads for torch training (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


@dataclass(frozen=True)
class ForksConfig(CommandStudyConfig):
    """Command-conditioned PilotNets, with commands as recorded or relabelled in hindsight, against BC at forks."""

    out: Path = Path("runs/forks")
    """Working directory: data/ (the recording) and one folder per model (training run, model.onnx, evaluation)."""
    report: Path = Path("docs/forks")
    """Where the report goes: <report>.md and <report>.png."""
    fork_seeds: str = "0-15"
    """Fork networks of training seeds the teacher drives."""
    protocol: str = "steerbench-forks-v1"
    """The protocol of held-out fork networks."""

    task = "forks"
    conditions = CONDITIONS


@dataclass(frozen=True)
class LanesConfig(CommandStudyConfig):
    """The same models against BC on the lane-goal task: commands to change to the lane on the left or right."""

    out: Path = Path("runs/lanes")
    """Working directory: data/ (the recording) and one folder per model (training run, model.onnx, evaluation)."""
    report: Path = Path("docs/lanes")
    """Where the report goes: <report>.md and <report>.png."""
    lane_seeds: str = "1-10,12,13,15-18"
    """Procedural training tracks of two lanes or more the teacher drives, with lane goals."""
    protocol: str = "steerbench-lanes-v1"
    """The protocol of held-out multi-lane tracks with lane goals."""

    task = "lanes"
    conditions = LANE_CONDITIONS


def record_data(config: ForksConfig | LanesConfig) -> Path:
    from benchmark.common.config import parse_seeds
    from benchmark.data.record import RecordConfig
    from benchmark.data.record import run as record

    data = Path(config.out) / "data"
    manifest = data / "manifest.json"
    if config.task == "forks":
        want = {"fork_seeds": parse_seeds(config.fork_seeds), "seed": config.seed, "tracks": [], "procedural_seeds": []}
        sources = {"procedural_seeds": "", "fork_seeds": config.fork_seeds}
        tracks = len(want["fork_seeds"])
    else:
        want = {"procedural_seeds": parse_seeds(config.lane_seeds), "seed": config.seed, "tracks": [],
                "lane_goals": asdict(LaneGoalConfig())}
        sources = {"procedural_seeds": config.lane_seeds, "lane_goals": True}
        tracks = len(want["procedural_seeds"])
    if manifest.is_file():  # resume, but never from a recording made under other settings
        got = json.loads(manifest.read_text())
        have = {k: got.get(k) for k in want}
        if have != want or got.get("episodes") != tracks * config.episodes_per_track:
            raise ValueError(f"{data} holds a recording made with other settings ({have}); choose a new --out")
    else:
        record(RecordConfig(out=data, tracks=(), **sources, episodes_per_track=config.episodes_per_track,
                            steps=config.steps, seed=config.seed, overwrite=True, progress=config.progress))
    return data


def train_config(variant: str, data: Path, config: ForksConfig | LanesConfig) -> TrainConfig:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants are: {', '.join(VARIANTS)}")
    return TrainConfig(data=data, out=Path(config.out) / variant / "train", arch=ARCH[variant],
                       command_source=SOURCE[variant], epochs=config.epochs, seed=config.seed,
                       precision=config.precision, threads=config.threads, progress=config.progress,
                       augment=AugmentConfig(side_cameras=True))


def run_variant(variant: str, data: Path, config: ForksConfig | LanesConfig) -> dict:
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.records import read_records
    from benchmark.training.train import fit
    from models import load_model
    from models.onnx_export import export_onnx

    from .multimodal import check_resumable

    folder = Path(config.out) / variant
    cfg = train_config(variant, data, config)
    check_resumable(cfg)
    fit(cfg)  # resumes from its checkpoint; a finished run only reloads its best model
    onnx = folder / "model.onnx"
    if not onnx.is_file():
        export_onnx(load_model(cfg.out / "model"), onnx)
    results = evaluate(EvaluateConfig(policy=str(onnx), name=f"{config.task}-{variant}", protocol=config.protocol,
                                      profile=config.profile, workers=config.workers, out=folder / "eval",
                                      progress=config.progress))
    records = read_records(folder / "eval" / "records.jsonl").records
    row = {"variant": variant, "onnx": str(onnx), "conditions": {}}
    for c in config.conditions:
        m = results.metrics.conditions[c]
        crash = m.paired.crashes
        row["conditions"][c] = {
            "crashes": [crash.k, crash.n, crash.low, crash.high],
            "commands": {k: [p.k, p.n, p.low, p.high] for k, p in
                         (("left", m.commands.left), ("right", m.commands.right), ("all", m.commands.all))},
            "passages": {r.track: r.forks["outcomes"] for r in records
                         if r.condition == c and r.mode == "crash" and r.forks is not None}}
    write_json_atomic(folder / "summary.json", row)
    from .causal_confusion import study_card

    source = {"route": "the commands the recording stored", "hindsight": "commands relabelled in hindsight "
              "from the poses"}[cfg.command_source]
    method = ("behaviour cloning, PilotNet without a command (it cannot follow one)" if variant == "bc" else
              f"conditional behaviour cloning, {cfg.arch}, trained on {source}")
    recording = (f"fork networks of training seeds {config.fork_seeds}" if config.task == "forks" else
                 f"procedural tracks of training seeds {config.lane_seeds} with lane goals")
    write_json_atomic(folder / "card.json", study_card(
        f"{config.task}-{variant}", method, f"the {config.task} study's `{variant}` model, trained on one recording "
        f"of {recording}.", cfg, onnx, "benchmark/reporting/forks.py",
        {"variant": variant, "command_source": None if variant == "bc" else cfg.command_source}))
    return row


def run(config: ForksConfig | LanesConfig) -> dict:
    from benchmark.common.provenance import pinned_git_sha

    chosen = ("bc", *(v for v in VARIANTS if v in config.variants and v != "bc"))
    unknown = [v for v in config.variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant {unknown[0]!r}; variants are: {', '.join(VARIANTS)}")
    with pinned_git_sha():
        data = record_data(config)
        rows = {v: run_variant(v, data, config) for v in chosen}
    Path(config.report).parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(f"{config.report}.md"), report(rows, data, config))
    figure(rows, Path(f"{config.report}.png"), config)
    return {"report": f"{config.report}.md", "variants": list(rows)}


def paired_passages(a: dict[str, list[str]], b: dict[str, list[str]]) -> tuple[int, int, int]:
    """(passages both attempted, passed by a only, passed by b only), pairing the j-th attempted passage of
    each episode (the same fork and command: the same seeds give the same routes)."""
    both = only_a = only_b = 0
    for track in sorted(set(a) & set(b)):
        for x, y in zip(a[track], b[track]):
            both += 1
            only_a += x == "passed" and y != "passed"
            only_b += y == "passed" and x != "passed"
    return both, only_a, only_b


def _cell(v: list) -> str:
    k, n, lo, hi = v
    return f"{k}/{n} [{lo:.2f}, {hi:.2f}]" if n else "0/0"


def report(rows: dict[str, dict], data: Path, config: ForksConfig | LanesConfig) -> str:
    from benchmark.common.files import sha256_file
    from benchmark.data.dataset import Dataset
    from benchmark.data.hindsight import dataset_commands
    from benchmark.evaluation.statistics import mcnemar_exact

    index = Dataset.open(data, verify=False).index
    route, hindsight = dataset_commands(index, "route"), dataset_commands(index, "hindsight")
    if config.task == "forks":
        title, what = "Roads with choices: following commands at forks", (
            f"on fork networks {config.fork_seeds} ({config.episodes_per_track} routes each")
        passages = "Passages passed"
    else:
        title, what = "Lane goals: following commands to change lane", (
            f"with lane goals on procedural tracks {config.lane_seeds} of two or three lanes "
            f"({config.episodes_per_track} episodes each")
        passages = "Lane goals reached (a passage: a goal, passed when reached)"
    lines = [
        f"# {title}",
        "",
        (f"Made by `python -m benchmark {config.task}` (protocol {config.protocol}, profile {config.profile}). Training: "
         f"the teacher {what}, {config.steps} steps; "
         f"{len(index):,} labelled steps, manifest sha256 {sha256_file(data / 'manifest.json')[:12]}), "
         f"{config.epochs} epochs with the rig's side cameras, seed {config.seed}; every model on the same frames and "
         f"labels. Hindsight commands agree with the recorded route's on {np.mean(route == hindsight):.1%} of the "
         f"steps. {passages} k/n and crashes k/n with Wilson 95% intervals; the paired columns count the "
         "passages both models attempted, passed by one only, with McNemar's exact p."),
        "",
        ("| model | condition | commands passed (all) | left | right | crashes | vs bc: both / only bc / only this, p "
         "| vs command-route: both / only route / only this, p |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, row in rows.items():
        for c in config.conditions:
            m = row["conditions"][c]
            cells = [_cell(m["commands"]["all"]), _cell(m["commands"]["left"]), _cell(m["commands"]["right"]),
                     _cell(m["crashes"])]
            for ref in ("bc", "command-route"):
                if v == ref or ref not in rows:
                    cells.append("")
                    continue
                both, only_ref, only_v = paired_passages(rows[ref]["conditions"][c]["passages"], m["passages"])
                cells.append(f"{both} / {only_ref} / {only_v}, p = {mcnemar_exact(only_ref, only_v):.2g}")
            lines.append(f"| {v} | {c} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def figure(rows: dict[str, dict], path: Path, config: ForksConfig | LanesConfig) -> None:
    """Command success (at forks, or of lane goals) with Wilson intervals per condition, the models side by side."""
    from matplotlib.figure import Figure

    from .plots import save

    fig = Figure(figsize=(6.5, 3.6))
    ax = fig.add_subplot()
    conditions = config.conditions
    x = np.arange(len(conditions))
    width = 0.8 / len(rows)
    for j, (v, row) in enumerate(rows.items()):
        d = [row["conditions"][c]["commands"]["all"] for c in conditions]
        rate = np.array([k / n if n else np.nan for k, n, _, _ in d])
        err = np.array([[max(0.0, r - (lo or 0)) for r, (_, _, lo, _) in zip(rate, d)],
                        [max(0.0, (hi or 0) - r) for r, (_, _, _, hi) in zip(rate, d)]])
        ax.bar(x + (j - 0.5 * (len(rows) - 1)) * width, rate, width, yerr=err, capsize=3, label=v)
    ax.set_xticks(x, list(conditions))
    ax.set_ylabel("fork passages passed (95% CI)" if config.task == "forks" else "lane goals reached (95% CI)")
    ax.set_ylim(0, 1.05)
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Following the command at held-out forks" if config.task == "forks" else
                 "Following the command to change lane on held-out tracks", fontsize=10)
    save(fig, path)
