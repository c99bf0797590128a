"""Shared test set-up: headless SDL, small helpers. The project is installed editable (`make install`)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest

ROOT = Path(__file__).resolve().parents[1]

EXAMPLE_TRACK = ROOT / "envs" / "track_specs" / "example.yaml"


@pytest.fixture
def example_track() -> Path:
    return EXAMPLE_TRACK


def drive_teacher(env, steps: int, info: dict):
    """Step `env` with its teacher's action; returns the list of infos."""
    import numpy as np

    infos = []
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(np.array([info["teacher_action"]], np.float32))
        infos.append(info)
        if terminated or truncated:
            break
    return infos


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """A small recording: the oval and one procedural track, 2 episodes each, 80 steps, shards of 50."""
    from benchmark.data.record import RecordConfig, run

    out = tmp_path_factory.mktemp("data") / "teacher"
    run(RecordConfig(out=out, tracks=("oval",), procedural_seeds="3", episodes_per_track=2, steps=80,
                     seed=1, shard_size=50, progress=False, start_offset_m=0.5))
    return out


@pytest.fixture(scope="module")
def untrained_model(tmp_path_factory):
    """A PilotNet with seeded random weights (a policy that drives badly, deterministically)."""
    import torch

    from models import ModelConfig, build_model, save_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "pilotnet"
    save_model(build_model(ModelConfig()), path)
    return path


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the module's tests (`--backend ray` uses this process's connection),
    shut down after them. Ray is the optional extra that `make test` installs (requirements-ray.txt)."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=True, logging_level="warning")
    try:
        yield ray
    finally:
        ray.shutdown()
