import json
import math

import numpy as np
import pytest

from envs.procedural import TEST_SEEDS, TRAIN_SEEDS, check_training_seed, procedural_spec, procedural_track
from envs.tracks import BUILTIN_TRACKS, TrackSpecError, builtin_track, load_track_file, track_from_spec
from highway_env.road.lane import CircularLane


def test_builtin_tracks_are_highway_env_networks_with_arcs_under_180():
    for name in BUILTIN_TRACKS:
        track = builtin_track(name)
        assert track.lanes >= 2
        for lane in track.all_lanes():
            if isinstance(lane, CircularLane):
                assert abs(lane.end_phase - lane.start_phase) < math.pi
        for path in track.paths:
            # the centre line advances everywhere: no backward steps at the joins of segments
            assert (path.seg_len > 0).all()
            turn = np.abs(np.diff(np.unwrap(np.arctan2(path.tangent[:, 1], path.tangent[:, 0]))))
            assert turn.max() < math.radians(30)


def test_procedural_same_seed_same_track():
    a, b = procedural_spec(11), procedural_spec(11)
    assert a == b
    assert procedural_spec(12) != a
    ta = procedural_track(11)
    tb = track_from_spec(procedural_spec(11))
    assert np.array_equal(ta.paths[0].points, tb.paths[0].points)


@pytest.mark.parametrize("seed", list(range(0, 40)) + list(TEST_SEEDS[:10]))
def test_procedural_tracks_obey_the_rules(seed):
    spec = procedural_spec(seed)
    arcs = [s for s in spec["segments"] if s["type"] == "arc"]
    assert arcs and all(0 < abs(s["angle_deg"]) < 180 for s in arcs)
    half_road = 0.5 * (spec["lanes"] - 1) * spec["lane_width"]
    assert min(s["radius"] for s in arcs) - half_road >= 15.0 - 1e-9
    track = track_from_spec(spec)
    assert 300.0 <= track.length <= 1500.0 + 50.0  # lanes differ in length around the loop
    # closed, and never closer to itself than a road width away from the neighbouring parts
    pts = track.paths[0].points[::4]
    d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    idx = np.arange(len(pts))
    sep = np.abs(idx[:, None] - idx[None, :])
    sep = np.minimum(sep, len(pts) - sep) * 2.0  # metres along the track (samples every ~2 m)
    assert (d[sep > 60.0] > spec["lanes"] * spec["lane_width"]).all()
    turning = sum(s["angle_deg"] for s in arcs)
    assert abs(abs(turning) - 360.0) < 1e-6


def test_train_and_test_seeds_are_disjoint():
    assert set(TRAIN_SEEDS).isdisjoint(TEST_SEEDS)
    assert check_training_seed(5) == 5
    with pytest.raises(ValueError, match="held-out test seed"):
        check_training_seed(TEST_SEEDS[0])


def test_spec_file_yaml_and_json(tmp_path, example_track):
    track = load_track_file(example_track)
    assert track.name == "example" and track.lanes == 2 and track.closed
    spec = track.spec
    path = tmp_path / "same.json"
    path.write_text(json.dumps(spec))
    again = load_track_file(path)
    assert np.allclose(again.paths[1].points, track.paths[1].points)


SQUARE = {"lanes": 1, "lane_width": 4.0, "segments": [
    {"type": "straight", "length": 50}, {"type": "arc", "radius": 20, "angle_deg": 90}] * 4}


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s["segments"].__setitem__(1, {"type": "arc", "radius": 20, "angle_deg": 190}), "segment 1 (arc): 'angle_deg'"),
    (lambda s: s["segments"].__setitem__(3, {"type": "arc", "radius": 4, "angle_deg": 90}), "segment 3 (arc): radius 4"),
    (lambda s: s["segments"].__setitem__(2, {"type": "straight", "length": -3}), "segment 2 (straight): 'length' must be positive"),
    (lambda s: s["segments"].__setitem__(2, {"type": "straight", "lenght": 3}), "segment 2 (straight): unknown key 'lenght'"),
    (lambda s: s["segments"].__setitem__(0, {"type": "spiral"}), "segment 0: 'type' must be"),
    (lambda s: s["segments"].__setitem__(4, {"type": "straight", "length": 60}), "must end where it starts"),
    (lambda s: s.__setitem__("lane_widht", 3), "unknown key 'lane_widht'"),
    (lambda s: s.__setitem__("lanes", 0), "'lanes' must be an integer"),
])
def test_bad_spec_errors_name_the_segment_and_problem(mutate, message):
    spec = json.loads(json.dumps(SQUARE))
    track_from_spec(spec)  # the unmodified square is valid
    mutate(spec)
    with pytest.raises(TrackSpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        track_from_spec(spec)


def test_self_intersecting_spec_is_rejected():
    spec = {"lanes": 1, "closed": False, "segments": [
        {"type": "straight", "length": 60}, {"type": "arc", "radius": 15, "angle_deg": 170},
        {"type": "arc", "radius": 15, "angle_deg": 170}, {"type": "straight", "length": 80}]}
    with pytest.raises(TrackSpecError, match="intersect itself"):
        track_from_spec(spec)


def test_bad_track_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_track_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("segments: [unclosed")
    with pytest.raises(TrackSpecError, match="not valid YAML"):
        load_track_file(bad)
    txt = tmp_path / "track.txt"
    txt.write_text("{}")
    with pytest.raises(TrackSpecError, match="must end in"):
        load_track_file(txt)


def test_lane_path_projection_round_trip():
    path = builtin_track("oval").paths[1]
    for s in np.linspace(0, path.length - 1, 37):
        for d in (-1.2, 0.0, 0.7):
            x, y, h = path.pose_at(float(s), d)
            _, s2, d2, h2 = path.project(x, y)
            assert abs(((s2 - s) + path.length / 2) % path.length - path.length / 2) < 0.05
            assert abs(d2 - d) < 0.02


def _project_with_index_arrays(path, x, y, hint=None, window=(8, 48)):
    """LanePath.project as it was written first (index arrays everywhere), for comparison."""
    if hint is None:
        idx = np.arange(path.n_seg)
    else:
        idx = np.arange(hint - window[0], hint + window[1])
        if path.closed:
            idx %= path.n_seg
        else:
            idx = idx[(idx >= 0) & (idx < path.n_seg)]
    px, py = path._px[idx], path._py[idx]
    sx, sy = path.seg[idx, 0], path.seg[idx, 1]
    dx, dy = x - px, y - py
    t = np.clip((dx * sx + dy * sy) / (path.seg_len[idx] ** 2), 0.0, 1.0)
    ex, ey = dx - t * sx, dy - t * sy
    k = int(np.argmin(ex * ex + ey * ey))
    i = int(idx[k])
    tk = float(t[k])
    tx, ty = path.tangent[i]
    return i, float(path.s[i] + tk * path.seg_len[i]), float(ex[k] * -ty + ey[k] * tx), float(path.h0[i] + tk * path.dh[i])


@pytest.mark.parametrize("name", ["racetrack", "sine-road", "procedural-3"])
def test_project_is_unchanged_by_slicing(name):
    track = procedural_track(3) if name == "procedural-3" else builtin_track(name)
    rng = np.random.default_rng(5)
    for path in track.paths:
        for _ in range(300):
            i = int(rng.integers(path.n_seg))
            x, y = path.points[i] + rng.normal(0.0, 3.0, 2)
            for hint in (None, i, int(rng.integers(-3, path.n_seg + 3)), 0, path.n_seg - 1, 5, path.n_seg - 20):
                assert path.project(x, y, hint) == _project_with_index_arrays(path, x, y, hint)
