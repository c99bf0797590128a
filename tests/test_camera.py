"""Camera geometry, checked on rendered frames of a long straight road."""

import math

import numpy as np
import pytest

from envs import DrivingEnv, track_from_spec

STRAIGHT = {"name": "straight", "lanes": 1, "lane_width": 4.0, "closed": False,
            "segments": [{"type": "straight", "length": 600.0}]}


@pytest.fixture(scope="module")
def env():
    e = DrivingEnv(track_from_spec(STRAIGHT))
    yield e
    e.close()


def marking_lines(frame, first_row=34):
    """Least-squares lines u = a v + b through the bright markings left and right of the centre."""
    grey = frame.astype(float).mean(axis=2)
    cx = (frame.shape[1] - 1) / 2
    rows, left, right = [], [], []
    for v in range(first_row, frame.shape[0]):
        cols = np.flatnonzero(grey[v] > 170)
        lcols, rcols = cols[cols < cx], cols[cols > cx]
        if len(lcols) and len(rcols):
            rows.append(v)
            left.append(lcols.mean())
            right.append(rcols.mean())
    assert len(rows) > 15, "markings not found"
    return np.polyfit(rows, left, 1), np.polyfit(rows, right, 1), np.array(rows)


def vanishing_point(frame):
    (a1, b1), (a2, b2), _ = marking_lines(frame)
    v = (b2 - b1) / (a1 - a2)
    return a1 * v + b1, v


def test_lane_lines_meet_at_the_horizon_vanishing_point(env):
    env.reset(seed=0, options={"start_s": 50.0})
    u, v = vanishing_point(env.render_view())
    assert abs(u - env.camera.cx) < 1.0
    assert abs(v - env.camera.horizon_row()) < 1.0


@pytest.mark.parametrize("offset", [-1.0, 1.0])
def test_car_off_centre_sees_the_lane_centre_on_the_other_side(env, offset):
    _, info = env.reset(seed=0, options={"start_s": 50.0, "lateral_offset": offset})
    assert info["lateral_offset"] == pytest.approx(offset, abs=1e-6)
    (a1, b1), (a2, b2), rows = marking_lines(env.render_view())
    v = rows.max()
    centre = 0.5 * ((a1 * v + b1) + (a2 * v + b2))
    # left of centre (offset < 0) -> lane centre appears right of the image centre, and vice versa
    assert math.copysign(1, centre - env.camera.cx) == -math.copysign(1, offset)
    assert abs(centre - env.camera.cx) > 10


@pytest.mark.parametrize("yaw", [-0.12, 0.08])
def test_yaw_moves_the_vanishing_point_sideways(env, yaw):
    env.reset(seed=0, options={"start_s": 50.0})
    u, v = vanishing_point(env.render_view(yaw_rad=yaw))
    # turning the camera right (yaw > 0) moves the road's vanishing point left by fx tan(yaw)
    assert u == pytest.approx(env.camera.cx - env.camera.fx * math.tan(yaw), abs=1.5)
    assert v == pytest.approx(env.camera.horizon_row(), abs=1.5)


def test_side_cameras_see_the_road_shifted(env):
    env.reset(seed=0, options={"start_s": 50.0})
    rig = env.render_rig()
    assert np.array_equal(rig["center"], env.render_view(0.0, 0.0))
    centres = {}
    for name in ("left", "center", "right"):
        (a1, b1), (a2, b2), rows = marking_lines(rig[name])
        v = rows.max()
        centres[name] = 0.5 * ((a1 * v + b1) + (a2 * v + b2))
    assert centres["left"] > centres["center"] + 5 > centres["right"] + 10


def test_frame_is_pilotnet_sized_uint8_with_sky_on_top(env):
    obs, _ = env.reset(seed=0, options={"start_s": 50.0})
    assert obs.shape == (66, 200, 3) and obs.dtype == np.uint8 and obs.flags.c_contiguous
    sky = obs[: int(env.camera.horizon_row()) - 1]
    assert (sky[..., 2] > sky[..., 0]).all()  # blue above the horizon
    assert obs[40:].std() > 5  # textured ground, markings


def test_camera_config_is_configurable():
    e = DrivingEnv(track_from_spec(STRAIGHT), camera={"width": 320, "height": 120, "hfov_deg": 90, "pitch_deg": 10})
    obs, _ = e.reset(seed=0)
    assert obs.shape == (120, 320, 3)
    assert e.observation_space.shape == (120, 320, 3)
