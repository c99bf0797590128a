"""SteerBench driving tasks: highway-env tracks, a dashcam rig and a privileged teacher.

Importing the package registers the gymnasium ids:

    SteerBench/Racetrack-v0        highway-env's racetrack (2 lanes)
    SteerBench/RacetrackLarge-v0   highway-env's racetrack-large (3 lanes)
    SteerBench/Oval-v0             highway-env's oval (3 lanes)
    SteerBench/SineRoad-v0         an open sine road (2 lanes)
    SteerBench/Procedural-v0       a procedural closed track; kwarg track_seed
    SteerBench/CustomTrack-v0      a track from a spec file; kwarg track_file
    SteerBench/Forks-v0            a procedural road network with forks; kwarg track_seed; the
                                   observation is a dict of the frame and the command
    SteerBench/LaneGoals-v0        a procedural track of two or three lanes with lane goals (envs.lane_goals);
                                   kwarg track_seed; the observation is a dict of the frame and the command
    SteerBench/Intents-v0          a procedural track of two or three lanes, lane-changing traffic slower than
                                   the car, and the teacher's hidden intents (envs.intents): keep, change
                                   lane, overtake; kwarg track_seed; the observation is the frame

Every id takes the keyword arguments camera=, traffic=, obstacles=, indicator=, dropout=, lane_goals=, intents= and
config= (see DrivingEnv).
"""

from __future__ import annotations

import benchmark  # noqa: F401  (first: portable numerics before numpy loads, benchmark/common/numerics.py)

# isort: split
import gymnasium as gym

from benchmark.common.config import ConfigError, build_config

from .camera import Camera, CameraConfig, MapTexture, map_texture
from .driving_env import DrivingEnv, EnvConfig, TrafficConfig, resolve_track
from .dropout import DropoutConfig
from .forks import COMMANDS, ForkNetwork, RoadMap, Route, fork_network, fork_network_from_spec
from .indicator import IndicatorConfig, draw_indicator
from .intents import INTENT_TRAFFIC, INTENTS, IntentConfig, Intents
from .lane_goals import LaneGoalConfig, LaneGoals
from .obstacles import OBSTACLE_KINDS, Obstacle, ObstacleConfig, PassPlan
from .procedural import (
    TEST_SEEDS,
    TRAIN_SEEDS,
    check_training_seed,
    drawing_by_name,
    procedural_spec,
    procedural_track,
    sharpest_curvature,
    track_by_name,
)
from .teacher import Teacher, TeacherConfig, return_to_centre_curvature
from .tracks import BUILTIN_TRACKS, LanePath, Track, TrackSpecError, builtin_track, load_track_file, track_from_spec
from .vehicle import MAX_CURVATURE, curvature_to_steering, steering_to_curvature

ENTRY_POINT = "envs.driving_env:DrivingEnv"
ENV_IDS = {
    "SteerBench/Racetrack-v0": {"track": "racetrack"},
    "SteerBench/RacetrackLarge-v0": {"track": "racetrack-large"},
    "SteerBench/Oval-v0": {"track": "oval"},
    "SteerBench/SineRoad-v0": {"track": "sine-road"},
    "SteerBench/Procedural-v0": {"track": "procedural", "track_seed": 0},
    "SteerBench/CustomTrack-v0": {"track": "custom"},
    "SteerBench/Forks-v0": {"track": "fork", "track_seed": 1},
    "SteerBench/LaneGoals-v0": {"track": "procedural", "track_seed": 1, "lane_goals": {}},
    "SteerBench/Intents-v0": {"track": "procedural", "track_seed": 1, "intents": {}, "traffic": INTENT_TRAFFIC},
}

for _id, _kwargs in ENV_IDS.items():
    if _id not in gym.registry:
        # Episodes are truncated by EnvConfig.max_steps, so no TimeLimit wrapper is added here.
        gym.register(id=_id, entry_point=ENTRY_POINT, kwargs=_kwargs)

__all__ = [
    "BUILTIN_TRACKS",
    "COMMANDS",
    "ENV_IDS",
    "INTENTS",
    "INTENT_TRAFFIC",
    "MAX_CURVATURE",
    "OBSTACLE_KINDS",
    "TEST_SEEDS",
    "TRAIN_SEEDS",
    "Camera",
    "CameraConfig",
    "ConfigError",
    "DrivingEnv",
    "DropoutConfig",
    "EnvConfig",
    "ForkNetwork",
    "IndicatorConfig",
    "IntentConfig",
    "Intents",
    "LaneGoalConfig",
    "LaneGoals",
    "LanePath",
    "MapTexture",
    "Obstacle",
    "ObstacleConfig",
    "PassPlan",
    "RoadMap",
    "Route",
    "Teacher",
    "TeacherConfig",
    "Track",
    "TrackSpecError",
    "TrafficConfig",
    "build_config",
    "builtin_track",
    "check_training_seed",
    "curvature_to_steering",
    "draw_indicator",
    "drawing_by_name",
    "fork_network",
    "fork_network_from_spec",
    "load_track_file",
    "map_texture",
    "procedural_spec",
    "procedural_track",
    "resolve_track",
    "return_to_centre_curvature",
    "sharpest_curvature",
    "steering_to_curvature",
    "track_by_name",
    "track_from_spec",
]
