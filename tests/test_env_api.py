"""The public gymnasium API: registration, check_env, errors, reset options, info, determinism."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs
from envs import ENV_IDS, MAX_CURVATURE, ConfigError

from .conftest import EXAMPLE_TRACK, drive_teacher

INFO_KEYS = {"lateral_offset", "heading_error", "teacher_action", "off_road", "crashed", "progress_m"}


def make(env_id, **kwargs):
    if env_id == "SteerBench/CustomTrack-v0":
        kwargs.setdefault("track_file", str(EXAMPLE_TRACK))
    return gym.make(env_id, **kwargs)


def frame_of(obs):
    """The frame of an observation (a dict of frame and command on road networks with forks)."""
    return obs["frame"] if isinstance(obs, dict) else obs


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_every_registered_id_passes_check_env(env_id):
    env = make(env_id)
    check_env(env.unwrapped, skip_render_check=False)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert INFO_KEYS <= set(info)
    assert env.action_space.shape == (1,)
    assert env.action_space.high[0] == pytest.approx(MAX_CURVATURE)


def test_procedural_kwarg_and_custom_file_are_required_inputs():
    a = gym.make("SteerBench/Procedural-v0", track_seed=17).unwrapped
    assert a.track.name == "procedural-17"
    with pytest.raises(ValueError, match="track_file"):
        gym.make("SteerBench/CustomTrack-v0")
    with pytest.raises(ValueError, match="unknown track"):
        envs.DrivingEnv("racetrak")


@pytest.mark.parametrize("kwargs, key", [
    ({"config": {"polciy_hz": 5}}, "polciy_hz"),
    ({"camera": {"fov": 60}}, "fov"),
    ({"traffic": {"cars": 3}}, "cars"),
    ({"config": {"teacher": {"look_ahead": 1}}}, "look_ahead"),
])
def test_unknown_config_key_is_named_with_the_valid_ones(kwargs, key):
    with pytest.raises(ConfigError, match=rf"unknown key '{key}'; valid keys are: .+"):
        gym.make("SteerBench/Oval-v0", **kwargs)


def test_bad_config_value_is_rejected():
    with pytest.raises(ConfigError, match="policy_hz"):
        gym.make("SteerBench/Oval-v0", config={"policy_hz": 0})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_raises(bad):
    env = gym.make("SteerBench/Oval-v0")
    env.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([bad], np.float32))


def test_wrong_action_shape_raises():
    env = gym.make("SteerBench/Oval-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="one curvature"):
        env.step(np.zeros(2))


def test_out_of_range_action_is_clipped_to_the_vehicle_limit():
    a, b = gym.make("SteerBench/Oval-v0").unwrapped, gym.make("SteerBench/Oval-v0").unwrapped
    a.reset(seed=3)
    b.reset(seed=3)
    for _ in range(5):
        oa, *_, ia = a.step(np.array([5.0]))
        ob, *_, ib = b.step(np.array([MAX_CURVATURE]))
    assert np.array_equal(oa, ob) and ia == ib


def test_positive_curvature_turns_right():
    env = gym.make("SteerBench/Oval-v0").unwrapped
    _, info0 = env.reset(seed=0, options={"lane": 1, "start_s": 10.0})  # on the first straight
    for _ in range(5):
        _, _, _, _, info = env.step(np.array([0.05]))
    assert info["lateral_offset"] > info0["lateral_offset"] + 0.2
    assert info["heading_error"] > 0


def test_reset_options_displace_the_car_and_unknown_options_are_named():
    env = gym.make("SteerBench/RacetrackLarge-v0").unwrapped
    _, info = env.reset(seed=1, options={"lateral_offset": -1.3, "heading_error": 0.2, "lane": 2, "start_s": 30.0})
    assert info["lateral_offset"] == pytest.approx(-1.3, abs=1e-3)
    assert info["heading_error"] == pytest.approx(0.2, abs=2e-3)
    assert info["lane"] == 2
    assert info["s_m"] == pytest.approx(30.0, abs=1e-6)
    with pytest.raises(ValueError, match="unknown reset option 'offset'"):
        env.reset(seed=0, options={"offset": 1.0})
    with pytest.raises(ValueError, match="lane must be"):
        env.reset(seed=0, options={"lane": 3})


def test_teacher_labels_virtual_poses_with_the_right_sign():
    env = gym.make("SteerBench/Oval-v0").unwrapped
    _, info = env.reset(seed=0, options={"lane": 1, "start_s": 20.0})
    assert env.teacher_action_at() == info["teacher_action"]
    assert env.teacher_action_at(shift_m=1.0) < -0.01  # right of centre: steer left
    assert env.teacher_action_at(shift_m=-1.0) > 0.01  # left of centre: steer right
    assert env.teacher_action_at(yaw_rad=0.1) < -0.01  # rotated right: steer left
    assert env.teacher_action_at(yaw_rad=-0.1) > 0.01


def test_off_road_ends_the_episode():
    env = gym.make("SteerBench/Oval-v0")
    env.reset(seed=0, options={"lane": 2, "start_s": 10.0})
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(np.array([0.1]))
        if terminated:
            break
    assert terminated and info["off_road"] and info["failure"] == "off_road" and reward == 0.0
    assert not info["crashed"]


def test_collision_with_traffic_is_a_crash():
    env = gym.make("SteerBench/Oval-v0", traffic=2).unwrapped
    env.reset(seed=0, options={"lane": 1, "start_s": 10.0})
    assert len(env.traffic) == 2
    other = env.traffic[0]
    x, y, h = env.path.pose_at(env.path.project(*env.vehicle.position)[1] + 4.0)
    other.position = np.array([x, y])
    other.heading = h
    other.speed = 0.0
    _, _, terminated, _, info = env.step(np.array([0.0]))
    assert terminated and info["crashed"] and info["failure"] == "collision"


def test_traffic_keeps_to_other_lanes_and_teacher_survives_it():
    env = gym.make("SteerBench/RacetrackLarge-v0", traffic=10)
    _, info = env.reset(seed=4, options={"lane": 1})
    lanes = {v.lane_index[2] for v in env.unwrapped.traffic}
    assert 1 not in lanes and lanes
    infos = drive_teacher(env, 400, info)
    assert len(infos) == 400 and not any(i["crashed"] for i in infos)


def test_recover_puts_the_car_back_on_the_centre_line():
    env = gym.make("SteerBench/Oval-v0", config={"terminate_on_failure": False}).unwrapped
    env.reset(seed=0, options={"lane": 0, "lateral_offset": 1.5, "heading_error": -0.3})
    _, info = env.recover()
    assert abs(info["lateral_offset"]) < 1e-6 and abs(info["heading_error"]) < 1e-3


def test_open_road_truncates_at_its_end():
    env = gym.make("SteerBench/SineRoad-v0")
    _, info = env.reset(seed=0, options={"start_s": env.unwrapped.track.paths[0].length - 45.0, "lane": 0})
    infos = drive_teacher(env, 100, info)
    assert len(infos) < 30


def test_render_rgb_array_is_a_top_down_view():
    env = gym.make("SteerBench/Racetrack-v0", render_mode="rgb_array", traffic=3)
    env.reset(seed=0)
    img = env.render()
    assert img.shape == (320, 320, 3) and img.dtype == np.uint8
    assert (img[..., 0] > 200).sum() > 20  # the red ego car
    full = env.unwrapped.render_map(max_size=400)
    assert max(full.shape[:2]) <= 400


@pytest.mark.parametrize("env_id, kwargs", [(i, {}) for i in ENV_IDS] + [
    ("SteerBench/Racetrack-v0", {"traffic": 6}),
    ("SteerBench/Procedural-v0", {"track_seed": 21}),
])
def test_same_seed_gives_identical_frames_and_infos(env_id, kwargs):
    runs = []
    for _ in range(2):
        env = make(env_id, **kwargs)
        obs, info = env.reset(seed=42)
        frames, infos = [frame_of(obs)], [info]
        for t in range(60):
            action = info["teacher_action"] + 0.02 * math.sin(0.3 * t)
            obs, reward, term, trunc, info = env.step(np.array([action], np.float32))
            frames.append(frame_of(obs))
            infos.append(info)
        runs.append((np.stack(frames), infos))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    env = make(env_id, **kwargs)
    other, _ = env.reset(seed=43)
    assert not np.array_equal(frame_of(other), runs[0][0][0])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_make_vec_works_for_every_id_and_matches_the_single_env(env_id, mode):
    kwargs = {"track_file": str(EXAMPLE_TRACK)} if env_id == "SteerBench/CustomTrack-v0" else {}
    vec = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **kwargs)
    try:
        obs, info = vec.reset(seed=7)
        assert frame_of(obs).shape == (2, 66, 200, 3) and frame_of(obs).dtype == np.uint8
        for _ in range(5):
            obs, reward, term, trunc, info = vec.step(info["teacher_action"].astype(np.float32).reshape(2, 1))
        assert reward.shape == term.shape == trunc.shape == (2,)
    finally:
        vec.close()
    single = make(env_id, **kwargs)  # sub-environment 0 is seeded with 7, as a single env would be
    s_obs, s_info = single.reset(seed=7)
    for _ in range(5):
        s_obs, _, _, _, s_info = single.step(np.array([s_info["teacher_action"]], np.float32))
    assert np.array_equal(frame_of(obs)[0], frame_of(s_obs))
