"""Sets of training episodes: built-in tracks plus procedural training seeds.

Training never touches the held-out test seeds: every procedural seed goes through
`envs.check_training_seed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchmark.common.config import parse_seeds
from envs import BUILTIN_TRACKS, check_training_seed, fork_network

from .collector import EpisodeSpec


def training_episodes(tracks: Sequence[str], procedural_seeds: str, episodes_per_track: int, steps: int,
                      seed: int, start_offset_m: float = 0.0, start_heading_rad: float = 0.0,
                      fork_seeds: str = "") -> list[EpisodeSpec]:
    """Episode specs on the built-in `tracks`, procedural training seeds and procedural fork networks of
    training seeds (`fork_seeds`), reset seeds from `seed`."""
    for t in tracks:
        if t not in BUILTIN_TRACKS:
            raise ValueError(f"unknown track {t!r}; built-in tracks are: {', '.join(BUILTIN_TRACKS)}")
    if episodes_per_track < 1 or steps < 1:
        raise ValueError("episodes_per_track and steps must be positive")
    rng = np.random.default_rng(seed)
    sources = [(t, None) for t in tracks] + [("procedural", check_training_seed(s)) for s in parse_seeds(procedural_seeds)]
    for s in parse_seeds(fork_seeds) if fork_seeds else []:
        fork_network(check_training_seed(s))  # a seed without a fork fails here, by name
        sources.append(("fork", s))
    if not sources:
        raise ValueError("no training tracks: give built-in tracks, procedural seeds and/or fork seeds")
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


def obstacle_approach_episodes(tracks: Sequence[str], procedural_seeds: str, per_obstacle: int, steps: int,
                               seed: int) -> list[EpisodeSpec]:
    """Short episodes that start on the lane centre on the approach to an obstacle in the way.

    These are the frames that make the obstacle task bimodal: on the centre, with an obstacle ahead,
    the teacher steers out to the side drawn for the episode, so the same image is labelled left in
    some episodes and right in others. A whole-lap recording meets each such state once per pass (after
    its first step the car's offset shows the side); these episodes meet it `per_obstacle` times per
    obstacle. Each starts at a uniform point of [start of the teacher's ramp minus its lookahead, 60% of
    the way up the ramp], on each lane, with its own reset seed (hence its own sides).
    """
    from envs import DrivingEnv, ObstacleConfig

    if per_obstacle < 1 or steps < 1:
        raise ValueError("per_obstacle and steps must be positive")
    rng = np.random.default_rng([seed, 20261406])  # apart from training_episodes' stream of the same seed
    sources = [(t, None) for t in tracks] + [("procedural", check_training_seed(s)) for s in parse_seeds(procedural_seeds)]
    config = ObstacleConfig()
    episodes = []
    for track, track_seed in sources:
        env = DrivingEnv(track, track_seed=track_seed, obstacles=config)
        lookahead = env.teacher.lookahead(env.speed)
        for lane in range(env.track.lanes):
            env.reset(seed=0, options={"lane": lane})
            length, closed = env.path.length, env.track.closed
            for p in env.passes.passes:
                if p.side is None:  # not in the way: nothing to choose
                    continue
                ramp_start = p.s - p.half_length - config.ramp_m
                for _ in range(per_obstacle):
                    s = ramp_start - lookahead + rng.uniform() * (lookahead + 0.6 * config.ramp_m)
                    s = s % length if closed else s
                    if 0.0 <= s < length - 50.0:
                        episodes.append(EpisodeSpec(track, track_seed, int(rng.integers(2**31)), steps,
                                                    (("lane", float(lane)), ("start_s", float(s)))))
        env.close()
    return episodes
