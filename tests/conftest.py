"""Shared test set-up: headless SDL, small helpers. The project is installed editable (`make install`)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import benchmark  # noqa: F401  (first: portable numerics before numpy loads, benchmark/common/numerics.py)

# isort: split
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


def twin_pairs(protocol_name: str, profile: str, prefix: str):
    """For a task protocol whose conditions `<prefix>` and `<prefix>_disturbed` are twins of `nominal` and
    `disturbed`: every twin episode with its plain one, after checking that they share seeds and
    disturbances, that the twins are half the episodes and that the plain episodes are steerbench-v2's."""
    from benchmark.evaluation.protocol import load_protocol

    eps = {str(e.key): e for e in load_protocol(protocol_name).episodes(profile, teacher=True)}
    ref = {str(e.key): e for e in load_protocol("steerbench-v2").episodes(profile, teacher=True)}
    twins = [k for k in eps if f"|{prefix}" in k]
    assert len(twins) == len(eps) / 2
    pairs = []
    for k in twins:
        plain = eps[k.replace(f"|{prefix}_disturbed|", "|disturbed|").replace(f"|{prefix}|", "|nominal|")]
        assert (eps[k].seed, eps[k].disturbance) == (plain.seed, plain.disturbance)
        pairs.append((eps[k], plain))
    common = set(eps) & set(ref)
    for k in common:  # the plain conditions are v2's own episodes
        assert (eps[k].seed, eps[k].disturbance, eps[k].max_steps) == (ref[k].seed, ref[k].disturbance, ref[k].max_steps)
    held_out = [k for k in ref if "|disturbed|" in k and k.startswith("procedural-") and "|intervention|" not in k]
    assert set(held_out) <= common  # all but v2's seen tracks and intervention mode
    return pairs
