"""The teacher keeps its lane: 3,000 steps on every track, no traffic, the car body inside the lane."""

import gymnasium as gym
import numpy as np
import pytest

from envs import TRAIN_SEEDS, return_to_centre_curvature
from envs.vehicle import WIDTH_M

from .conftest import EXAMPLE_TRACK, drive_teacher

STEPS = 3000


def worst_margin(env_id, lane=None, seed=0, **kwargs):
    """Smallest distance [m] between the car's side and its lane's edge over STEPS teacher steps."""
    env = gym.make(env_id, **kwargs)
    options = None if lane is None else {"lane": lane}
    _, info = env.reset(seed=seed, options=options)
    infos = drive_teacher(env, STEPS, info)
    assert len(infos) == STEPS, f"episode ended early: {infos[-1]['failure']}"
    assert not any(i["off_road"] or i["crashed"] for i in infos)
    half_lane = 0.5 * env.unwrapped.track.lane_width
    return half_lane - 0.5 * WIDTH_M - max(abs(i["lateral_offset"]) for i in infos)


@pytest.mark.parametrize("env_id, lanes", [
    ("SteerBench/Racetrack-v0", 2), ("SteerBench/RacetrackLarge-v0", 3),
    ("SteerBench/Oval-v0", 3), ("SteerBench/SineRoad-v0", 2),
])
def test_teacher_keeps_its_lane_on_every_builtin_lane(env_id, lanes):
    for lane in range(lanes):
        assert worst_margin(env_id, lane=lane) > 0.0


def test_teacher_keeps_its_lane_on_a_custom_track_and_a_few_procedural_ones():
    assert worst_margin("SteerBench/CustomTrack-v0", track_file=str(EXAMPLE_TRACK)) > 0.0
    for seed in (0, 1, 2):
        assert worst_margin("SteerBench/Procedural-v0", seed=seed, track_seed=seed) > 0.0


@pytest.mark.slow
def test_teacher_keeps_its_lane_on_100_procedural_tracks():
    margins = [worst_margin("SteerBench/Procedural-v0", seed=s, track_seed=s) for s in TRAIN_SEEDS[:100]]
    assert min(margins) > 0.0


def test_return_to_centre_rule():
    # on a straight, a car right of the centre is steered left, and the harder the further out
    a = return_to_centre_curvature(1.0, 0.0, 0.0, speed=10.0)
    b = return_to_centre_curvature(2.0, 0.0, 0.0, speed=10.0)
    assert b < a < 0
    assert return_to_centre_curvature(-1.0, 0.0, 0.0, 10.0) == pytest.approx(-a)
    assert return_to_centre_curvature(0.0, 0.0, 0.02, 10.0) == pytest.approx(0.02)
    # a car already heading back to the centre needs less correction
    assert abs(return_to_centre_curvature(1.0, -0.05, 0.0, 10.0)) < abs(a)


def test_return_to_centre_rule_brings_the_car_back_in_about_two_seconds():
    env = gym.make("SteerBench/Oval-v0").unwrapped
    _, info = env.reset(seed=0, options={"lane": 1, "start_s": 5.0, "lateral_offset": 1.5})
    track = env.track
    offsets = []
    for _ in range(40):  # 4 s at 10 Hz
        kappa = return_to_centre_curvature(info["lateral_offset"], info["heading_error"],
                                           env.path.curvature_at(info["s_m"]), info["speed"])
        _, _, _, _, info = env.step(np.array([kappa]))
        offsets.append(abs(info["lateral_offset"]))
    assert offsets[19] < 0.5 and max(offsets[25:]) < 0.2
    assert track.lane_width > 0
