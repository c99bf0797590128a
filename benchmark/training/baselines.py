"""`python -m benchmark baselines` (`make baselines`): the model zoo at one label budget and seed.

Trains PilotNet five ways on the same training tracks, the same seed and the same number of
labelled states: behaviour cloning from the centre camera (bc), behaviour cloning with shifted
cameras (NVIDIA's recipe: side cameras and flat-ground warps, labelled to return to the lane centre in
2 s; bc-shifted), DART, DAgger and HG-DAgger. BC collects its whole budget in one round; the interactive methods in `rounds` rounds
and retrain after each. BC trains for (rounds + 1) / 2 times as many epochs, so that every method
makes about the same number of gradient updates.

Each model goes to `out/<method>/` (model.safetensors, config.json, model.onnx, card.json,
rounds.csv), then all are validated once more in closed loop on the validation set of training
tracks, and `out/README.md` gets the comparison table with 95% intervals (Wilson for crash rates).
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd

from benchmark.common.files import write_json_atomic
from benchmark.common.provenance import pinned_git_sha

from .augment import AugmentConfig
from .dagger import DaggerConfig, dagger
from .dart import DartConfig, dart
from .hg_dagger import HGDaggerConfig, hg_dagger
from .imitation import ImitationConfig, behaviour_cloning, closed_loop_validation

METHODS = ("bc", "bc-shifted", "dart", "dagger", "hg-dagger")


@dataclass(frozen=True)
class BaselinesConfig:
    """Train the model zoo (BC, BC with shifted cameras, DART, DAgger, HG-DAgger) at one budget."""

    out: Path = Path("models/zoo")
    """Zoo directory (small files: weights, ONNX, model cards)."""
    work: Path = Path("runs/baselines")
    """Working directory for datasets and training runs (large; not committed)."""
    methods: tuple[str, ...] = METHODS
    """Methods to train."""
    label_budget: int = 8000
    """Labelled states per method."""
    rounds: int = 4
    """Rounds of the interactive methods."""
    epochs: int = 6
    """Epochs per round of the interactive methods."""
    procedural_seeds: str = "0-39"
    """Procedural training seeds."""
    steps: int = 150
    """Most steps per collection episode."""
    seed: int = 0
    """One seed for every method."""
    validation_seeds: str = "90000-90007"
    """Procedural training seeds of the final closed-loop comparison."""
    validation_steps: int = 600
    """Steps per validation episode."""
    precision: Literal["auto", "bf16", "float32"] = "float32"
    """Training precision. float32 by default: the checked-in zoo was trained in float32, and bf16 would
    give other weights; 'auto' trains in bf16 where the device has it natively."""
    threads: int = 0
    """CPU threads for torch (0: all cores)."""
    progress: bool = True
    """Show progress bars."""


def method_config(name: str, config: BaselinesConfig) -> ImitationConfig:
    common = dict(out=Path(config.work) / name, label_budget=config.label_budget, rounds=config.rounds,
                  procedural_seeds=config.procedural_seeds, steps=config.steps, seed=config.seed,
                  epochs=config.epochs, precision=config.precision, threads=config.threads, progress=config.progress)
    if name in ("bc", "bc-shifted"):
        epochs = max(1, math.ceil(config.epochs * (config.rounds + 1) / 2))
        augment = AugmentConfig()
        if name == "bc-shifted":  # NVIDIA's recipe: side cameras and warped views, return-to-centre labels
            augment = AugmentConfig(side_cameras=True, label_rule="return", synthetic_prob=0.3,
                                    synthetic_method="warp", max_shift_m=1.0, max_yaw_rad=0.08)
        return ImitationConfig(**{**common, "rounds": 1, "epochs": epochs}, augment=augment)
    if name == "dart":
        return DartConfig(**common)
    if name == "dagger":
        return DaggerConfig(**common)
    if name == "hg-dagger":
        return HGDaggerConfig(**common)
    raise ValueError(f"unknown method {name!r}; methods are: {', '.join(METHODS)}")


RUN = {"bc": behaviour_cloning, "bc-shifted": behaviour_cloning, "dart": dart, "dagger": dagger, "hg-dagger": hg_dagger}


def run(config: BaselinesConfig) -> dict:
    for m in config.methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; methods are: {', '.join(METHODS)}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with pinned_git_sha():  # the zoo's own files, written below, are tracked: later cards stay clean
        _train(config, out)
    # The table covers every method in the zoo, also those trained by an earlier invocation.
    rows = [json.loads((out / m / "validation.json").read_text()) for m in METHODS
            if (out / m / "validation.json").is_file()]
    write_comparison(pd.DataFrame(rows), config, out / "README.md")
    return {"out": str(out), "methods": [r["method"] for r in rows]}


def _train(config: BaselinesConfig, out: Path) -> None:
    from models import load_model

    for name in config.methods:
        cfg = method_config(name, config)
        result = RUN[name](cfg)
        run_dir, dest = Path(result["out"]), out / name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for f in ("model/model.safetensors", "model/config.json", "model.onnx", "card.json", "rounds.csv"):
            shutil.copy2(run_dir / f, dest / Path(f).name)
        final = closed_loop_validation(load_model(dest), replace(cfg, validation_seeds=config.validation_seeds,
                                                                 validation_steps=config.validation_steps,
                                                                 validation_tracks=("racetrack", "oval")))
        row = {"method": name, "labels": result["labels"], "env_steps": result["env_steps"],
               "chosen_round": result["best_round"], **final}
        write_json_atomic(dest / "validation.json", row)


def write_comparison(table: pd.DataFrame, config: BaselinesConfig, path: Path) -> None:
    def ci(m, lo, hi, digits):
        return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    shown = pd.DataFrame({
        "method": table["method"], "labelled states": table["labels"], "env steps": table["env_steps"],
        "chosen round": table["chosen_round"],
        "crash rate [95% CI]": [ci(r.val_crash_rate, r.val_crash_low, r.val_crash_high, 2) for r in table.itertuples()],
        "mean abs offset m [95% CI]": [ci(r.val_offset_m, r.val_offset_low, r.val_offset_high, 2) for r in table.itertuples()],
        "km driven": table["val_km"].round(1),
    })
    text = f"""# SteerBench model zoo

Made by `make baselines` (`python -m benchmark baselines`): PilotNet trained five ways with the same
label budget ({config.label_budget} labelled states), seed ({config.seed}) and training tracks (the
built-in tracks and procedural seeds {config.procedural_seeds}); interactive methods in
{config.rounds} rounds. Each directory holds `model.safetensors` + `config.json` (load with
`models.load_model`), `model.onnx`, `card.json` (method, budgets, data hash, exact command) and
`rounds.csv` (per-round log).

Closed-loop validation on training tracks not used for training (racetrack, oval and procedural
training seeds {config.validation_seeds}, {config.validation_steps} steps each, crash mode):

{shown.to_markdown(index=False)}

Crash rates have Wilson 95% intervals; offsets 95% percentile bootstraps over episodes. The held-out test tracks are evaluated by
`make bench` (results/) and the leaderboard, not here.
"""
    path.write_text(text)
