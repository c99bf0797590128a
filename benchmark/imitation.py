"""`python -m benchmark train dagger|dart|hg-dagger`: interactive imitation on one collector.

Every algorithm spends the same kind of budget, labelled states, in rounds: it collects with the
shared collector (benchmark/collector.py), aggregates everything into one dataset, retrains with
the behaviour-cloning trainer (benchmark/train.py), and validates the new policy in closed loop on
a validation set of training tracks. The returned policy is the round that validates best (lowest
crash rate, then lowest mean |lateral offset|).

- DAgger (Ross, Gordon and Bagnell 2011): round i executes the per-step mixture
  beta_i * teacher + (1 - beta_i) * learner_i; schedules: indicator (beta_1 = 1, then 0),
  exponential (beta_i = p^(i-1)) and linear (beta_i = 1 - (i-1)/N). Retraining is from scratch or
  warm-started from the previous round.
- DART (Laskey et al. 2017): the teacher drives with Gaussian noise on the executed curvature;
  after each round the noise variance is set to the learner's own mean squared error against the
  teacher on held-out states of the noisy demonstrations (times `noise_scale`), or kept fixed.
- HG-DAgger (Kelly et al. 2019): after a round of teacher demonstrations, the learner drives and
  the teacher takes over while the car is more than `threshold_m` off the lane centre; only the
  teacher's segments are aggregated.

Outputs in `out/`: data/ (the aggregated dataset), round-<i>/ (each training run), model/ (the
chosen policy), model.onnx, rounds.csv (per-round log) and card.json (the model card).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from envs import CameraConfig, EnvConfig, check_training_seed

from . import metrics as M
from .augment import AugmentConfig
from .collector import CollectStats, GatedBehaviour, MixtureBehaviour, TeacherBehaviour, collect
from .dataset import Dataset, DatasetWriter
from .files import sha256_file, write_json_atomic
from .policies import TorchPolicy
from .protocol import EvalEpisode
from .provenance import command_line, git_sha, package_versions
from .rollout import run_episodes
from .tracksets import parse_seeds, training_episodes
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
    arch: Literal["pilotnet", "pilotnet-gru", "resnet18"] = "pilotnet"
    """Network."""
    head: Literal["point", "gaussian"] = "point"
    """Output head."""
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
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.label_budget < self.rounds:
            raise ValueError("need rounds >= 1 and label_budget >= rounds")
        overlap = set(parse_seeds(self.validation_seeds)) & set(parse_seeds(self.procedural_seeds))
        if overlap:
            raise ValueError(f"validation seeds {sorted(overlap)[:5]} are also training seeds")
        for s in parse_seeds(self.validation_seeds):
            check_training_seed(s)


@dataclass(frozen=True)
class DaggerConfig(ImitationConfig):
    """DAgger: learner rollouts labelled by the teacher, aggregated with all earlier data, retrained."""

    out: Path = Path("runs/dagger")
    """Run directory."""
    beta_schedule: Literal["indicator", "exponential", "linear"] = "indicator"
    """Mixture weight of the teacher per round: indicator (1 then 0), exponential p^(i-1), linear."""
    beta_p: float = 0.5
    """p of the exponential schedule."""


@dataclass(frozen=True)
class DartConfig(ImitationConfig):
    """DART: noisy teacher demonstrations, noise set from the learner's own error each round."""

    out: Path = Path("runs/dart")
    """Run directory."""
    noise: Literal["optimized", "fixed"] = "optimized"
    """optimized: variance = learner's error after each round; fixed: noise_std throughout."""
    noise_std: float = 0.01
    """Noise standard deviation of the first round (and of every round when fixed) [1/m]."""
    noise_scale: float = 1.0
    """Multiplier of the estimated variance (alpha in Laskey et al.)."""


@dataclass(frozen=True)
class HGDaggerConfig(ImitationConfig):
    """HG-DAgger: the learner drives, the teacher takes over when the car is too far off centre."""

    out: Path = Path("runs/hg-dagger")
    """Run directory."""
    threshold_m: float = 1.0
    """The teacher takes over beyond this lateral offset [m]."""
    release_m: float = 0.3
    """... and hands back once the car is within this offset [m]."""
    max_env_steps_factor: float = 10.0
    """Stop a round after this many environment steps per label it was to collect."""


# --- schedules and estimates -----------------------------------------------------------------------


def beta_schedule(kind: str, round_index: int, rounds: int, p: float = 0.5) -> float:
    """Teacher mixture weight beta_i of round i = 1..rounds."""
    if round_index < 1:
        raise ValueError("rounds are numbered from 1")
    if kind == "indicator":
        return 1.0 if round_index == 1 else 0.0
    if kind == "exponential":
        return float(p ** (round_index - 1))
    if kind == "linear":
        return float(max(0.0, 1.0 - (round_index - 1) / rounds))
    raise ValueError(f"unknown beta schedule {kind!r}; use indicator, exponential or linear")


def dart_noise_variance(learner_actions: np.ndarray, teacher_actions: np.ndarray, scale: float = 1.0) -> float:
    """DART's noise for a one-dimensional action: scale * E[(learner(s) - teacher(s))^2] over the
    states of the demonstrations (Laskey et al. 2017, the isotropic Gaussian case)."""
    a = np.asarray(learner_actions, float).reshape(-1)
    b = np.asarray(teacher_actions, float).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("learner and teacher actions must be non-empty and of the same length")
    return float(scale * np.mean((a - b) ** 2))


# --- the shared loop -------------------------------------------------------------------------------


def validation_episodes(config: ImitationConfig) -> list[EvalEpisode]:
    rng = np.random.default_rng([config.seed, 99])
    eps = []
    tracks = [(t, None) for t in config.validation_tracks] + [("procedural", s) for s in parse_seeds(config.validation_seeds)]
    for k, (track, track_seed) in enumerate(tracks):
        name = track if track_seed is None else f"procedural-{track_seed}"
        eps.append(EvalEpisode(key=f"{name}|nominal|crash|0", track=track, track_seed=track_seed, condition="nominal",
                               mode="crash", index=0, seed=int(rng.integers(2**31)), max_steps=config.validation_steps))
    return eps


def closed_loop_validation(model, config: ImitationConfig) -> dict:
    """Crash rate and mean |lateral offset| (with bootstrap 95% intervals) on the validation tracks."""
    records = run_episodes(TorchPolicy(model, device="cpu"), validation_episodes(config))
    rng = np.random.default_rng([config.seed, 5])
    crashed = [float(r["status"] == "crashed") for r in records]
    offsets = [float(np.nanmean(np.abs(np.array([np.nan if v is None else v for v in r["d"]])))) for r in records]
    c, o = M.aggregate(crashed, rng, n_boot=500), M.aggregate(offsets, rng, n_boot=500)
    return {"val_crash_rate": c["mean"], "val_crash_low": c["ci_low"], "val_crash_high": c["ci_high"],
            "val_offset_m": o["mean"], "val_offset_low": o["ci_low"], "val_offset_high": o["ci_high"],
            "val_km": sum(r["distance_m"] for r in records) / 1000.0}


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
                       epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                       augment=config.augment, device=config.device, threads=config.threads,
                       progress=config.progress, resume=True)


def run_imitation(config: ImitationConfig, method: str, behaviour_for_round) -> dict:
    """The loop every algorithm shares; `behaviour_for_round(i, learner, state)` returns the round's
    collector behaviour and a dict of its parameters for the log."""
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    for old in [out / "data", out / "model", *out.glob("round-*")]:
        shutil.rmtree(old, ignore_errors=True)  # rounds build on each other: a rerun starts afresh
    out.mkdir(parents=True, exist_ok=True)
    camera = CameraConfig()
    meta = {"kind": method, "label_rule": "teacher: pure-pursuit curvature at each camera's pose (left, center, right)",
            "rig": asdict(camera), "env": asdict(EnvConfig()), "tracks": list(config.tracks),
            "procedural_seeds": parse_seeds(config.procedural_seeds), "seed": config.seed,
            "command": command_line(), "git_sha": git_sha()}
    per_round = [config.label_budget // config.rounds + (1 if i < config.label_budget % config.rounds else 0)
                 for i in range(config.rounds)]
    totals = CollectStats()
    log, learner, state = [], None, {}
    rng = np.random.default_rng([config.seed, 17])
    with DatasetWriter(out / "data", (camera.height, camera.width, 3), meta, overwrite=True) as writer:
        for i, budget in enumerate(per_round, start=1):
            behaviour, params = behaviour_for_round(i, learner, state)
            surplus = max(3.0, getattr(config, "max_env_steps_factor", 0.0))
            stats = collect(_episodes_for(config, budget, i, surplus), behaviour, writer, source=method, round_=i, rng=rng,
                            label_budget=budget, first_episode=totals.episodes, progress=config.progress,
                            desc=f"{method} round {i}/{config.rounds}",
                            max_env_steps=int(getattr(config, "max_env_steps_factor", 0) * budget) or None,
                            max_offset_m=config.max_offset_m)
            totals.add(stats)
            writer.flush()
            dataset = Dataset.open(out / "data", verify=False)
            result = fit(_train_config(config, out, i), dataset,
                         init_model=learner if (config.warm_start and learner is not None) else None)
            learner = result.model
            state["dataset"] = dataset
            val = closed_loop_validation(learner, config)
            row = {"round": i, **params, "labels": totals.labels, "teacher_queries": totals.teacher_queries,
                   "env_steps": totals.env_steps, "round_labels": stats.labels, "round_env_steps": stats.env_steps,
                   "learner_steps": stats.learner_steps, "train_loss": float(result.log["train_loss"].iloc[-1]),
                   "val_loss": result.best_val_loss, **val}
            log.append(row)
            pd.DataFrame(log).to_csv(out / "rounds.csv", index=False)
            if config.progress:
                print(pd.DataFrame([row]).to_string(index=False))
        writer.update_metadata(labels=totals.labels, teacher_queries=totals.teacher_queries, env_steps=totals.env_steps)
    best = min(log, key=lambda r: (r["val_crash_rate"], r["val_offset_m"]))
    shutil.copytree(out / f"round-{best['round']}" / "model", out / "model")
    card = model_card(config, method, log, best, totals, out)
    return {"out": str(out), "best_round": best["round"], "labels": totals.labels, "env_steps": totals.env_steps,
            "val_crash_rate": best["val_crash_rate"], "val_offset_m": best["val_offset_m"], "card": card}


METHOD_NAMES = {"bc": "behaviour cloning", "dagger": "DAgger", "dart": "DART", "hg-dagger": "HG-DAgger"}


def model_card(config, method: str, log: list[dict], best: dict, totals: CollectStats, out: Path) -> str:
    """Write card.json (the leaderboard's card schema, details under `extra`) and model.onnx for the
    chosen model; returns the card path."""
    from models import export_onnx, load_model

    model = load_model(out / "model")
    export_onnx(model, out / "model.onnx")
    details = {"beta_schedule": getattr(config, "beta_schedule", None), "noise": getattr(config, "noise", None),
               "side_cameras": config.augment.side_cameras, "label_rule": config.augment.label_rule,
               "synthetic_prob": config.augment.synthetic_prob}
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
        "code": "benchmark/imitation.py",
        "description": f"Made by `{command_line()}`; the round chosen by closed-loop validation: {best['round']}.",
        "extra": {
            "algorithm": method, "architecture": {"arch": config.arch, "head": config.head},
            "label_budget_requested": config.label_budget, "teacher_queries": totals.teacher_queries,
            "rounds": config.rounds, "chosen_round": best["round"],
            "validation": {k: v for k, v in best.items() if k.startswith("val_")},
            "data_sha256": sha256_file(out / "data" / "manifest.json"),
            "model_sha256": sha256_file(out / "model" / "model.safetensors"),
            "onnx_sha256": sha256_file(out / "model.onnx"),
            "config": _jsonable(asdict(config)), "command": command_line(), "git_sha": git_sha(),
            "packages": package_versions(), "rounds_log": log,
        },
    }
    write_json_atomic(out / "card.json", card)
    return str(out / "card.json")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return str(obj) if isinstance(obj, Path) else obj


# --- the algorithms --------------------------------------------------------------------------------


def behaviour_cloning(config: ImitationConfig) -> dict:
    """BC on the same footing: one round of teacher demonstrations, then training."""
    if config.rounds != 1:
        raise ValueError("behaviour cloning collects in one round (rounds=1)")
    return run_imitation(config, "bc", lambda i, learner, state: (TeacherBehaviour(), {}))


def dagger(config: DaggerConfig) -> dict:
    def behaviour(i, learner, state):
        beta = beta_schedule(config.beta_schedule, i, config.rounds, config.beta_p)
        if learner is None and beta < 1.0:
            raise ValueError("the first DAgger round needs beta = 1 (no learner yet)")
        policy = TorchPolicy(learner, device="cpu") if learner is not None else None
        return (TeacherBehaviour() if beta >= 1.0 else MixtureBehaviour(policy, beta)), {"beta": beta}

    return run_imitation(config, "dagger", behaviour)


def dart(config: DartConfig) -> dict:
    def behaviour(i, learner, state):
        if config.noise == "optimized" and learner is not None:
            ds: Dataset = state["dataset"]
            _, val_steps = _heldout(ds, config.seed)
            variance = dart_noise_variance(_predict(learner, ds, val_steps), ds.index["label_center"].to_numpy()[val_steps],
                                           config.noise_scale)
            state["std"] = math.sqrt(variance)
        std = state.get("std", config.noise_std)
        return TeacherBehaviour(noise_std=std), {"noise_std": std}

    return run_imitation(config, "dart", behaviour)


def hg_dagger(config: HGDaggerConfig) -> dict:
    def behaviour(i, learner, state):
        if learner is None:
            return TeacherBehaviour(), {"gated": False}
        return GatedBehaviour(TorchPolicy(learner, device="cpu"), config.threshold_m, config.release_m), {"gated": True}

    return run_imitation(config, "hg-dagger", behaviour)


def _heldout(ds: Dataset, seed: int):
    from .train import split_episodes

    train, val = split_episodes(ds, 0.2, seed)
    return train, (val if len(val) else train)


def _predict(model, ds: Dataset, steps: np.ndarray, batch: int = 256) -> np.ndarray:
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(steps), batch):
            x = torch.from_numpy(ds.frames(steps[i: i + batch], 1))
            out.append(model.curvature(model(x)).reshape(-1).numpy())
    return np.concatenate(out).astype(float)


RUNNERS = {DaggerConfig: dagger, DartConfig: dart, HGDaggerConfig: hg_dagger}


def run(config: ImitationConfig) -> dict:
    result = RUNNERS[type(config)](config)
    result.pop("card", None)
    return result
