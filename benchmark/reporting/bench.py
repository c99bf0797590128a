"""`python -m benchmark bench` (`make bench`): the zoo, the teacher, straight-ahead and (protocol v2) the
two synthetic reference policies on the quick profile, then the figures and a summary table, all
under results/."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark.evaluation.evaluate import EvaluateConfig, default_out, evaluate_many
from benchmark.evaluation.protocol import load_protocol

BENCH_PROTOCOL = "steerbench-v2"


@dataclass(frozen=True)
class BenchConfig:
    """Evaluate the model zoo, the teacher, straight-ahead and (v2) the synthetic references, then plot and tabulate."""

    zoo: Path = Path("models/zoo")
    """Model zoo directory: one sub-directory per model (config.json + model.safetensors)."""
    protocol: str = BENCH_PROTOCOL
    """Protocol name or path."""
    profile: Literal["quick", "full"] = "quick"
    """Protocol profile."""
    figures: Path = Path("results/figures")
    """Where the figures and summary.md go."""
    condition: str = "disturbed"
    """Condition of the summary and of the compounding (v2) or error-growth (v1) and trajectory figures."""
    workers: int = 2
    """Worker processes for the evaluation."""
    progress: bool = True
    """Show progress bars."""
    clips: bool = True
    """Write <figures>/clips/: each method's first failure in `condition` and the teacher on it (WebP and MP4)."""


def zoo_models(zoo: Path) -> list[Path]:
    return sorted(p for p in Path(zoo).iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file())


def run(config: BenchConfig) -> dict:
    from benchmark.evaluation.results import load_results

    from .plots import plot_all
    from .summary import write_summary

    start = time.perf_counter()
    if not Path(config.zoo).is_dir() or not zoo_models(config.zoo):
        raise FileNotFoundError(f"{config.zoo} holds no models (config.json + model.safetensors); "
                                "train them with `make baselines`")
    protocol = load_protocol(config.protocol)
    references = ["teacher", "straight"] + (["noisy-teacher", "drifting-teacher"] if protocol.version >= 2 else [])
    policies = [*references, *(str(p) for p in zoo_models(config.zoo))]
    # all at once on one pool: a track's map is drawn once for every model, and every rollout ends
    # before the first results, so the references are complete when the others' results read them
    evaluate_many([EvaluateConfig(policy=policy, name=Path(policy).name, protocol=config.protocol,
                                  profile=config.profile, workers=config.workers, progress=config.progress)
                   for policy in policies])
    dirs = [default_out(protocol.name, config.profile, Path(policy).name) for policy in policies]
    with ThreadPoolExecutor(1) as thread:
        clips = None
        if config.clips:  # made by the evaluation's workers, while this process draws the figures
            from .video import failure_clips

            clips = thread.submit(failure_clips, dirs, Path(config.figures) / "clips", config.condition, policies,
                                  workers=config.workers)
        figures = plot_all(dirs, config.figures, condition=config.condition)
        summary = write_summary(dirs, Path(config.figures) / "summary.md", condition=config.condition)
        if clips is not None:
            clips.result()
    print(summary.read_text())
    return {"results": [str(d) for d in dirs], "figures": [str(f) for f in figures], "summary": str(summary),
            "methods": [r.label for r in load_results(dirs)], "seconds": round(time.perf_counter() - start, 1)}
