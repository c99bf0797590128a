"""Interactive imitation on one collector: the loop DAgger, DART and HG-DAgger share, and BC.

Every algorithm spends the same kind of budget, labelled states, in rounds: it collects with the
shared collector (benchmark/data/collector.py), aggregates everything into one dataset, retrains
with the behaviour-cloning trainer (benchmark/training/train.py), and validates the new policy in
closed loop on a validation set of training tracks. The returned policy is the round that
validates best (lowest crash rate, then lowest mean |lateral offset|).

An algorithm is an `Algorithm`: the collector behaviour of each round, what it learns after a
round, and its collection limits. The algorithms are in benchmark/training/dagger.py, dart.py and
hg_dagger.py; behaviour cloning (one round of teacher demonstrations) is `BehaviourCloning` here.

Outputs in `out/`: data/ (the aggregated dataset), round-<i>/ (each training run), model/ (the
chosen policy), model.onnx, rounds.csv (per-round log) and card.json (the model card).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

from benchmark.common.config import parse_seeds, require
from benchmark.common.files import sha256_file, to_jsonable, write_json_atomic
from benchmark.common.provenance import command_line, git_sha, package_versions
from benchmark.data.collector import TEACHER_LABELS, Behaviour, CollectStats, TeacherBehaviour, collect
from benchmark.data.dataset import Dataset, DatasetWriter, simulator_source
from benchmark.data.tracksets import training_episodes
from benchmark.evaluation import metrics as M
from benchmark.evaluation.protocol import EvalEpisode
from benchmark.evaluation.records import EpisodeKey
from benchmark.evaluation.rollouts import run_episodes
from benchmark.evaluation.statistics import wilson_interval
from benchmark.rollout.policies import TorchPolicy
from envs import check_training_seed
from models import ModelConfig
from models.config import Head

from .augment import AugmentConfig
from .train import TrainConfig, fit


@dataclass(frozen=True)
class ImitationConfig:
    """Budget, tracks, training and validation shared by every imitation algorithm."""

    out: Path = Path("runs/imitation")
    """Run directory."""
    label_budget: int = 6000
    """Labelled states over all rounds (the teacher is queried once per camera of each)."""
    rounds: int = 4
    """Collection rounds (the budget is split evenly)."""
    tracks: tuple[str, ...] = ("racetrack", "racetrack-large", "oval", "sine-road")
    """Built-in training tracks."""
    procedural_seeds: str = "0-39"
    """Procedural training seeds."""
    steps: int = 150
    """Most policy steps per collection episode (short episodes spread a round over many tracks)."""
    max_offset_m: float = 2.5
    """A collection episode ends when the car is this far off its lane centre (a safety driver's reset)."""
    seed: int = 0
    """Seed of everything: episodes, noise, mixtures, weights, batches."""
    arch: Literal["pilotnet", "pilotnet-gru", "pilotnet-stack", "resnet18"] = "pilotnet"
    """Network."""
    head: Head = "point"
    """Output head (see `train bc --help`)."""
    mixture_components: int = 2
    """Gaussian components of the mixture head."""
    categorical_bins: int = 61
    """Curvature bins of the categorical head."""
    epochs: int = 6
    """Training epochs per round over the aggregated data."""
    batch_size: int = 64
    """Samples per optimiser step."""
    lr: float = 1e-3
    """Adam learning rate."""
    warm_start: bool = True
    """Start each round's training from the previous round's weights (else from scratch)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation used when training (default: plain centre camera)."""
    validation_tracks: tuple[str, ...] = ("racetrack",)
    """Built-in tracks of the closed-loop validation."""
    validation_seeds: str = "90000-90003"
    """Procedural training seeds of the closed-loop validation (kept out of `procedural_seeds`)."""
    validation_steps: int = 400
    """Policy steps per validation episode."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda' for training."""
    precision: Literal["auto", "bf16", "float32"] = "auto"
    """Training precision: bf16 autocast, float32, or auto (bf16 where the device has it natively)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        require(self.rounds >= 1 and self.label_budget >= self.rounds, "need rounds >= 1 and label_budget >= rounds")
        overlap = set(parse_seeds(self.validation_seeds)) & set(parse_seeds(self.procedural_seeds))
        require(not overlap, f"validation seeds {sorted(overlap)[:5]} are also training seeds")
        for s in parse_seeds(self.validation_seeds):
            check_training_seed(s)
        ModelConfig(arch=self.arch, head=self.head, mixture_components=self.mixture_components,
                    categorical_bins=self.categorical_bins)  # a bad head size fails before the first round


@dataclass(frozen=True)
class Limits:
    """How far one round's collection may go."""

    episodes_per_label: float = 3.0
    """Episodes to queue, as a multiple of those the budget needs (a learner's may end early)."""
    max_env_steps_per_label: float = 0.0
    """Stop after this many environment steps per label to collect (0: no such limit)."""


class Algorithm(Protocol):
    """An interactive imitation algorithm, as the shared loop runs it."""

    name: str
    """Its name in datasets, logs and cards: bc, dagger, dart, hg-dagger."""

    def behaviour(self, round_: int, learner) -> tuple[Behaviour, dict[str, Any]]:
        """The collector behaviour of round `round_` (1-based; `learner` is None before the first
        training) and its parameters for the per-round log."""
        ...

    def after_round(self, round_: int, learner, dataset: Dataset, last: bool) -> None:
        """What the algorithm learns from a round's result (DART: its noise level)."""
        ...

    def limits(self) -> Limits: ...

    def details(self) -> dict[str, Any]:
        """Settings named in the model card's method line."""
        ...


class AlgorithmBase:
    """An Algorithm's defaults: nothing learnt after a round, the usual limits, no card details.
    A subclass names itself (`name`) and gives `behaviour`."""

    name: str

    def __init__(self, config: ImitationConfig):
        self.config = config

    def after_round(self, round_: int, learner, dataset: Dataset, last: bool) -> None:
        pass

    def limits(self) -> Limits:
        return Limits()

    def details(self) -> dict[str, Any]:
        return {}


class BehaviourCloning(AlgorithmBase):
    """BC on the same footing: one round of teacher demonstrations, then training."""

    name = "bc"

    def __init__(self, config: ImitationConfig):
        require(config.rounds == 1, "behaviour cloning collects in one round (rounds=1)")
        super().__init__(config)

    def behaviour(self, round_, learner):
        return TeacherBehaviour(), {}


def validation_episodes(config: ImitationConfig) -> list[EvalEpisode]:
    rng = np.random.default_rng([config.seed, 99])
    eps = []
    tracks = [(t, None) for t in config.validation_tracks] + [("procedural", s) for s in parse_seeds(config.validation_seeds)]
    for track, track_seed in tracks:
        name = track if track_seed is None else f"procedural-{track_seed}"
        eps.append(EvalEpisode(key=EpisodeKey(name, "nominal", "crash", 0), track=track, track_seed=track_seed,
                               seed=int(rng.integers(2**31)), max_steps=config.validation_steps))
    return eps


def closed_loop_validation(model, config: ImitationConfig) -> dict:
    """Crash rate (Wilson 95% interval: 0 of 10 is not [0, 0]) and mean |lateral offset| (95% bootstrap
    interval over episodes) on the validation tracks."""
    records = run_episodes(TorchPolicy(model, device="cpu"), validation_episodes(config))
    rng = np.random.default_rng([config.seed, 5])
    crashes = sum(bool(r.crashed) for r in records)
    crash_low, crash_high = wilson_interval(crashes, len(records))
    offsets = [float(np.nanmean(np.abs(r.series("d")))) for r in records]
    o = M.aggregate(offsets, rng, n_boot=500)
    return {"val_crash_rate": crashes / len(records), "val_crash_low": crash_low, "val_crash_high": crash_high,
            "val_offset_m": o["mean"], "val_offset_low": o["ci_low"], "val_offset_high": o["ci_high"],
            "val_km": sum(r.distance_m for r in records) / 1000.0}


def _episodes_for(config: ImitationConfig, labels: int, round_index: int, surplus: float = 3.0):
    """Enough episodes for `labels`, over every training track in an order shuffled per round (a
    budget that runs out early still spreads over many tracks)."""
    sources = len(config.tracks) + len(parse_seeds(config.procedural_seeds))
    per_track = max(1, math.ceil(surplus * labels / (config.steps * max(sources, 1))))
    episodes = training_episodes(config.tracks, config.procedural_seeds, per_track, config.steps,
                                 seed=config.seed * 1000 + round_index)
    order = np.random.default_rng([config.seed, round_index, 3]).permutation(len(episodes))
    return [episodes[i] for i in order]


def _train_config(config: ImitationConfig, out: Path, round_index: int) -> TrainConfig:
    return TrainConfig(data=out / "data", out=out / f"round-{round_index}", arch=config.arch, head=config.head,
                       mixture_components=config.mixture_components, categorical_bins=config.categorical_bins,
                       epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                       augment=config.augment, device=config.device, precision=config.precision, threads=config.threads,
                       progress=config.progress, resume=True)


def round_budgets(label_budget: int, rounds: int) -> list[int]:
    """The label budget split over the rounds as evenly as whole labels allow (earlier rounds first)."""
    return [label_budget // rounds + (1 if i < label_budget % rounds else 0) for i in range(rounds)]


def run_imitation(config: ImitationConfig, algorithm: Algorithm) -> dict:
    """The loop every algorithm shares: collect, aggregate, retrain, validate; round after round."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    for old in [out / "data", out / "model", *out.glob("round-*")]:
        shutil.rmtree(old, ignore_errors=True)  # rounds build on each other: a rerun starts afresh
    out.mkdir(parents=True, exist_ok=True)
    source = simulator_source(algorithm.name, TEACHER_LABELS, tracks=list(config.tracks),
                              procedural_seeds=parse_seeds(config.procedural_seeds), seed=config.seed)
    limits = algorithm.limits()
    totals = CollectStats()
    log, learner = [], None
    rng = np.random.default_rng([config.seed, 17])
    with DatasetWriter(out / "data", source.frame_shape, source.metadata, overwrite=True) as writer:
        for i, budget in enumerate(round_budgets(config.label_budget, config.rounds), start=1):
            behaviour, params = algorithm.behaviour(i, learner)
            episodes = _episodes_for(config, budget, i, max(3.0, limits.episodes_per_label))
            stats = collect(episodes, behaviour, writer, source=algorithm.name, round_=i, rng=rng,
                            label_budget=budget, first_episode=totals.episodes, progress=config.progress,
                            desc=f"{algorithm.name} round {i}/{config.rounds}",
                            max_env_steps=int(limits.max_env_steps_per_label * budget) or None,
                            max_offset_m=config.max_offset_m)
            totals.add(stats)
            writer.flush()
            dataset = Dataset.open(out / "data", verify=False)
            result = fit(_train_config(config, out, i), dataset,
                         init_model=learner if (config.warm_start and learner is not None) else None)
            learner = result.model
            val = closed_loop_validation(learner, config)
            row = {"round": i, **params, "labels": totals.labels, "teacher_queries": totals.teacher_queries,
                   "env_steps": totals.env_steps, "round_labels": stats.labels, "round_env_steps": stats.env_steps,
                   "learner_steps": stats.learner_steps, "train_loss": float(result.log["train_loss"].iloc[-1]),
                   "val_loss": result.best_val_loss, "precision": result.precision, **val}
            log.append(row)
            pd.DataFrame(log).to_csv(out / "rounds.csv", index=False)
            if config.progress:
                print(pd.DataFrame([row]).to_string(index=False))
            algorithm.after_round(i, learner, dataset, last=i == config.rounds)
        writer.update_metadata(labels=totals.labels, teacher_queries=totals.teacher_queries, env_steps=totals.env_steps)
    best = min(log, key=lambda r: (r["val_crash_rate"], r["val_offset_m"]))
    shutil.copytree(out / f"round-{best['round']}" / "model", out / "model")
    card = model_card(config, algorithm, log, best, totals, out)
    return {"out": str(out), "best_round": best["round"], "labels": totals.labels, "env_steps": totals.env_steps,
            "val_crash_rate": best["val_crash_rate"], "val_offset_m": best["val_offset_m"], "card": card}


METHOD_NAMES = {"bc": "behaviour cloning", "dagger": "DAgger", "dart": "DART", "hg-dagger": "HG-DAgger"}


def model_card(config: ImitationConfig, algorithm: Algorithm, log: list[dict], best: dict, totals: CollectStats,
               out: Path) -> str:
    """Write card.json (the leaderboard's card schema, details under `extra`) and model.onnx for the
    chosen model; returns the card path."""
    from models import export_onnx, load_model

    method = algorithm.name
    model = load_model(out / "model")
    export_onnx(model, out / "model.onnx")
    details = {**algorithm.details(), "side_cameras": config.augment.side_cameras,
               "label_rule": config.augment.label_rule, "synthetic_prob": config.augment.synthetic_prob}
    described = ", ".join(f"{k} {v}" for k, v in details.items() if v not in (None, False, 0.0))
    card = {
        "name": out.name,
        "authors": ["SteerBench baselines"],
        "method": f"{METHOD_NAMES.get(method, method)}, {config.arch} ({config.head} head), {config.rounds} round(s); "
                  f"{described}",
        "training": {"tracks": [*config.tracks, f"procedural:{config.procedural_seeds}"], "seeds": [config.seed]},
        "label_budget": int(totals.labels),
        "env_steps": int(totals.env_steps),
        "licence": "MIT",
        "code": "benchmark/training/imitation.py",
        "description": f"Made by `{command_line()}`; the round chosen by closed-loop validation: {best['round']}.",
        "extra": {
            "algorithm": method, "architecture": {"arch": config.arch, "head": config.head},
            "label_budget_requested": config.label_budget, "teacher_queries": totals.teacher_queries,
            "rounds": config.rounds, "chosen_round": best["round"], "precision": best["precision"],
            "validation": {k: v for k, v in best.items() if k.startswith("val_")},
            "data_sha256": sha256_file(out / "data" / "manifest.json"),
            "model_sha256": sha256_file(out / "model" / "model.safetensors"),
            "onnx_sha256": sha256_file(out / "model.onnx"),
            "config": to_jsonable(config), "command": command_line(), "git_sha": git_sha(),
            "packages": package_versions(), "rounds_log": log,
        },
    }
    write_json_atomic(out / "card.json", card)
    return str(out / "card.json")


def behaviour_cloning(config: ImitationConfig) -> dict:
    """BC on the same footing as the interactive methods: one round of teacher demonstrations."""
    return run_imitation(config, BehaviourCloning(config))


def command_result(result: dict) -> dict:
    """What `python -m benchmark train ...` prints of a run (the card is a file, not printed)."""
    return {k: v for k, v in result.items() if k != "card"}
