"""`python -m benchmark record`: the teacher drives the training tracks and the rig is recorded."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from benchmark.common.config import parse_seeds
from envs import LaneGoalConfig, ObstacleConfig

from .collector import TEACHER_LABELS, TeacherBehaviour, collect
from .dataset import DatasetWriter, simulator_source
from .tracksets import obstacle_approach_episodes, training_episodes


@dataclass
class RecordConfig:
    """Record the teacher driving the training tracks: left, centre and right frames, the teacher's
    label for each camera pose, and the state, into a dataset directory."""

    out: Path = Path("data/teacher")
    """Dataset directory to create."""
    tracks: tuple[str, ...] = ("racetrack", "racetrack-large", "oval", "sine-road")
    """Built-in tracks to drive."""
    procedural_seeds: str = "0-19"
    """Procedural training seeds, e.g. '0-19' or '1,4,7-9' (test seeds are refused)."""
    fork_seeds: str = ""
    """Procedural road networks with forks to drive (training seeds, e.g. '1-8'; envs.forks): each episode
    follows a route drawn from its seed, and its steps store the route's command."""
    episodes_per_track: int = 1
    """Episodes on each track."""
    steps: int = 300
    """Policy steps per episode (10 Hz)."""
    seed: int = 0
    """Seed of the episodes' start states."""
    start_offset_m: float = 0.0
    """Largest |lateral offset| of a random start (uniform); 0 starts on the lane centre."""
    start_heading_rad: float = 0.0
    """Largest |heading error| of a random start (uniform)."""
    noise_std: float = 0.0
    """Gaussian noise on the executed curvature [1/m]; labels stay the teacher's clean actions."""
    lane_goals: bool = False
    """Command lane changes (envs.lane_goals' defaults, those of steerbench-lanes-v1): every track must have
    two lanes or more; each step stores the command in force."""
    intents: bool = False
    """Drive with the teacher's hidden intents in lane-changing traffic (envs.intents' defaults, the traffic of
    SteerBench/Intents-v0): every track must have two lanes or more; each step stores the intent, for analysis
    and the hierarchical task's evaluation (never a learner's input)."""
    obstacles: bool = False
    """Put static obstacles on the tracks (envs.ObstacleConfig's defaults, those of steerbench-tasks-v1):
    the teacher passes each on a side drawn per episode, so its labels there are bimodal."""
    obstacle_approaches: int = 0
    """With obstacles: extra short episodes per obstacle in the way (on each lane), starting on the lane
    centre on its approach, where the teacher's labels are bimodal (benchmark.data.tracksets
    .obstacle_approach_episodes); 0: none."""
    approach_steps: int = 20
    """Policy steps of each approach episode."""
    shard_size: int = 2000
    """Steps per frame shard."""
    lockstep: int = 8
    """Episodes stepped together."""
    overwrite: bool = False
    """Replace an existing dataset in `out`."""
    progress: bool = True
    """Show a progress bar."""


def run(config: RecordConfig) -> dict:
    episodes = training_episodes(config.tracks, config.procedural_seeds, config.episodes_per_track,
                                 config.steps, config.seed, config.start_offset_m, config.start_heading_rad,
                                 config.fork_seeds)
    extra = {}  # manifest fields only when used: other recordings' manifests are unchanged
    if config.fork_seeds:
        extra["fork_seeds"] = parse_seeds(config.fork_seeds)
    env_kwargs: dict = {"obstacles": ObstacleConfig()} if config.obstacles else {}
    if config.lane_goals:
        check_lane_goal_tracks(episodes)
        extra["lane_goals"] = asdict(LaneGoalConfig())
        env_kwargs["lane_goals"] = LaneGoalConfig()
    if config.intents:
        from envs.intents import INTENT_TRAFFIC, IntentConfig

        if config.lane_goals or config.obstacles:
            raise ValueError("intents do not go with lane goals or obstacles")
        check_lane_goal_tracks(episodes, "intents")
        extra.update(intents=asdict(IntentConfig()), traffic=dict(INTENT_TRAFFIC))
        env_kwargs.update(intents=IntentConfig(), traffic=dict(INTENT_TRAFFIC))
    if config.obstacle_approaches:
        extra.update(obstacle_approaches=config.obstacle_approaches, approach_steps=config.approach_steps)
        if not config.obstacles:
            raise ValueError("obstacle_approaches needs obstacles (--obstacles)")
        episodes += obstacle_approach_episodes(config.tracks, config.procedural_seeds, config.obstacle_approaches,
                                               config.approach_steps, config.seed)
    source = simulator_source("recording", TEACHER_LABELS, tracks=list(config.tracks),
                              procedural_seeds=parse_seeds(config.procedural_seeds), episodes=len(episodes),
                              seed=config.seed, noise_std=config.noise_std,
                              obstacles=asdict(ObstacleConfig()) if config.obstacles else None,
                              **extra)
    t0 = time.perf_counter()
    with DatasetWriter(config.out, source.frame_shape, source.metadata, config.shard_size,
                       overwrite=config.overwrite) as writer:
        stats = collect(episodes, TeacherBehaviour(config.noise_std), writer, source="teacher",
                        rng=np.random.default_rng(config.seed), lockstep=config.lockstep,
                        env_kwargs=env_kwargs or None,
                        progress=config.progress, desc="record")
        writer.update_metadata(labels=stats.labels, teacher_queries=stats.teacher_queries,
                               env_steps=stats.env_steps, failures=stats.failures)
    seconds = time.perf_counter() - t0
    return {"out": str(config.out), "steps": stats.labels, "episodes": stats.episodes,
            "frames_per_s": round(3 * stats.labels / seconds, 1), "seconds": round(seconds, 1)}


def check_lane_goal_tracks(episodes, what: str = "lane goals") -> None:
    """Lane goals (and intents) need two lanes or more: name every track of the episodes that has one."""
    from envs import builtin_track, procedural_track

    def lanes(e) -> int:
        if e.track == "procedural":
            return procedural_track(e.track_seed).lanes
        return 1 if e.track == "fork" else builtin_track(e.track).lanes  # fork networks are of one lane

    one_lane = sorted({e.track if e.track_seed is None else f"{e.track}-{e.track_seed}" for e in episodes
                       if lanes(e) < 2})
    if one_lane:
        raise ValueError(f"{what} need tracks of two lanes or more; these have one: {', '.join(one_lane)}")
