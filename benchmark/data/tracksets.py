"""Sets of training episodes: built-in tracks plus procedural training seeds.

Training never touches the held-out test seeds: every procedural seed goes through
`envs.check_training_seed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.common.config import parse_seeds
from envs import BUILTIN_TRACKS, check_training_seed

from .collector import EpisodeSpec


def training_episodes(tracks: Sequence[str], procedural_seeds: str, episodes_per_track: int, steps: int,
                      seed: int, start_offset_m: float = 0.0, start_heading_rad: float = 0.0) -> list[EpisodeSpec]:
    """Episode specs on the built-in `tracks` and procedural training seeds, reset seeds from `seed`."""
    for t in tracks:
        if t not in BUILTIN_TRACKS:
            raise ValueError(f"unknown track {t!r}; built-in tracks are: {', '.join(BUILTIN_TRACKS)}")
    if episodes_per_track < 1 or steps < 1:
        raise ValueError("episodes_per_track and steps must be positive")
    rng = np.random.default_rng(seed)
    sources = [(t, None) for t in tracks] + [("procedural", check_training_seed(s)) for s in parse_seeds(procedural_seeds)]
    if not sources:
        raise ValueError("no training tracks: give built-in tracks and/or procedural seeds")
    # Round-robin over the tracks, so that a label budget that stops collection early still
    # covers every track.
    episodes = []
    for _ in range(episodes_per_track):
        for track, track_seed in sources:
            options = ()
            if start_offset_m or start_heading_rad:
                options = (("lateral_offset", float(rng.uniform(-start_offset_m, start_offset_m))),
                           ("heading_error", float(rng.uniform(-start_heading_rad, start_heading_rad))))
            episodes.append(EpisodeSpec(track, track_seed, int(rng.integers(2**31)), steps, options))
    return episodes
