"""IndexedRoadNetwork: the same closest lane as highway-env's RoadNetwork, and the same traffic."""

import math
import pickle

import numpy as np
import pytest
from highway_env import utils as highway_utils
from highway_env.road.lane import CircularLane, PolyLane, SineLane, StraightLane
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle

from envs import DrivingEnv, builtin_track, procedural_track
from envs.lane_geometry import EXACT, geometry, wrap_to_pi
from envs.road_network import IndexedRoadNetwork, TrafficRoad
from envs.traffic import TrafficVehicle

TRACKS = ["racetrack", "racetrack-large", "oval", "sine-road", 0, 7, 1000100]


def _track(name):
    return builtin_track(name) if isinstance(name, str) else procedural_track(name)


def _queries(track, rng, n_box=600, n_far=60):
    """Positions near every lane (both ends, just past them: the joins), across the track's box,
    and far off the road; headings along the lane with noise, random, or None."""
    out = []
    for lane in track.all_lanes():
        ss = np.concatenate([rng.uniform(-4.0, lane.length + 4.0, 12), [0.0, lane.length, -1e-9, lane.length + 1e-9]])
        for s in ss:
            p = lane.position(float(s), float(rng.normal(0.0, 2.5)))
            h = float(lane.heading_at(float(s))) + float(rng.normal(0.0, 0.4))
            out.append((p, h))
    x0, y0, x1, y1 = track.bounds(margin=40.0)
    for _ in range(n_box):
        out.append((np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)]), float(rng.uniform(-7.0, 7.0))))
    for _ in range(n_far):
        out.append((rng.normal(0.0, 1.0, 2) * 10 ** rng.uniform(2.5, 6.0), float(rng.uniform(-4.0, 4.0))))
    out += [(p, None) for p, _ in out[:: 23]]
    return out


@pytest.mark.parametrize("name", TRACKS)
def test_lower_bounds_never_exceed_highway_env_distance(name):
    track = _track(name)
    net = track.network
    assert isinstance(net, IndexedRoadNetwork)
    net.get_closest_lane_index(np.zeros(2), 0.0)  # builds the index
    index = net._lane_index
    rng = np.random.default_rng(1)
    queries = _queries(track, rng, n_box=150, n_far=20)
    bounds = index.lower_bounds(np.array([p for p, _ in queries]))
    assert np.isfinite(bounds).all()  # every lane of these tracks has a bound
    for (p, h), row in zip(queries, bounds):
        exact = np.array([lane.distance_with_heading(p, h) for lane in index.lanes])
        assert (row <= exact + 1e-9).all()
        # what TrafficRoad.neighbour_vehicles relies on: on a lane => within its reach
        on = np.array([lane.on_lane(p, margin=1) for lane in index.lanes])
        assert (row[on] <= index.on_lane_reach[on]).all()


@pytest.mark.parametrize("name", TRACKS)
def test_closest_lane_is_highway_envs(name):
    track = _track(name)
    net = track.network
    rng = np.random.default_rng(2)
    for p, h in _queries(track, rng):
        assert net.get_closest_lane_index(p, h) == RoadNetwork.get_closest_lane_index(net, p, h)


def test_ties_go_to_the_first_lane_and_other_lane_types_are_always_evaluated():
    net = IndexedRoadNetwork()
    net.add_lane("a", "b", StraightLane([0.0, 0.0], [50.0, 0.0]))
    net.add_lane("a", "b", StraightLane([0.0, 4.0], [50.0, 4.0]))
    net.add_lane("c", "d", StraightLane([0.0, 0.0], [50.0, 0.0]))  # the same lane again: ties
    net.add_lane("d", "e", CircularLane([50.0, 20.0], 20.0, -math.pi / 2, 0.0))
    net.add_lane("e", "f", SineLane([0.0, 40.0], [60.0, 40.0], 3.0, 0.2, 0.0))
    net.add_lane("f", "g", PolyLane([(0.0, -30.0), (20.0, -30.0), (40.0, -34.0)],
                                     [(0.0, -32.0), (20.0, -32.0), (40.0, -36.0)],
                                     [(0.0, -28.0), (20.0, -28.0), (40.0, -32.0)]))
    rng = np.random.default_rng(3)
    for _ in range(1500):
        p = rng.uniform(-20.0, 90.0, 2)
        h = float(rng.choice([0.0, math.pi, rng.uniform(-4, 4)]))
        assert net.get_closest_lane_index(p, h) == RoadNetwork.get_closest_lane_index(net, p, h)
    assert net.get_closest_lane_index(np.array([10.0, 0.0]), 0.0) == ("a", "b", 0)
    assert net._lane_index.fallbacks == 0
    # non-finite input: highway-env's own answer
    with np.errstate(invalid="ignore"):
        for p, h in ((np.array([np.nan, 0.0]), 0.0), (np.array([1.0, 0.0]), np.nan), (np.array([np.inf, 1.0]), 0.0)):
            assert net.get_closest_lane_index(p, h) == RoadNetwork.get_closest_lane_index(net, p, h)
    # a lane added later is seen
    net.add_lane("g", "h", StraightLane([0.0, 100.0], [50.0, 100.0]))
    assert net.get_closest_lane_index(np.array([10.0, 100.5]), 0.0) == ("g", "h", 0)


def test_the_index_is_not_pickled():
    net = procedural_track(7).network
    net.get_closest_lane_index(np.zeros(2), 0.0)
    assert net._lane_index is not None
    copy = pickle.loads(pickle.dumps(net))
    assert copy._lane_index is None
    p = np.array([3.0, -1.0])
    assert copy.get_closest_lane_index(p, 0.3) == net.get_closest_lane_index(p, 0.3)


# --- whole traffic episodes -----------------------------------------------------------------------


def _traffic_trace(track, track_seed, ep_seed, steps, swap_lane):
    """Per step: info, reward, flags and every vehicle's full state (positions as bytes)."""
    env = DrivingEnv(track, track_seed=track_seed, traffic=8, config={"terminate_on_failure": False})
    _, info = env.reset(seed=ep_seed)
    trace = []
    for t in range(steps):
        if swap_lane:  # drive in the neighbouring lane, into the slower traffic
            w = env.track.lane_width * (1 if env.lane == env.track.lanes - 1 else -1)
            a = env.teacher_action_at(w)
        else:
            a = info["teacher_action"] + 0.1 * math.sin(t / 7.0)
        _, reward, term, trunc, info = env.step(np.array([a], np.float32))
        vehicles = [(v.position.tobytes(), float(v.heading), float(v.speed), v.lane_index,
                     getattr(v, "target_lane_index", None), bool(v.crashed),
                     None if v.impact is None else v.impact.tobytes(), repr(v.action))
                    for v in env.road.vehicles]
        trace.append((repr(info), reward, term, trunc, vehicles))
        if trunc:
            break
    return trace


@pytest.fixture
def highway_env_originals(monkeypatch):
    """Switch the environment to highway-env's own closest-lane lookup, Road.act, Road.step and
    Road.neighbour_vehicles."""
    def use():
        monkeypatch.setattr(IndexedRoadNetwork, "get_closest_lane_index", RoadNetwork.get_closest_lane_index)
        for name in ("act", "step", "neighbour_vehicles"):
            monkeypatch.setattr(TrafficRoad, name, getattr(Road, name))
        for name in ("act", "step"):
            monkeypatch.setattr(TrafficVehicle, name, getattr(IDMVehicle, name))
    return use


@pytest.mark.parametrize("track, track_seed, ep_seed, steps, swap_lane", [
    ("procedural", 7, 4, 110, True),  # the ego rear-ends a vehicle at step 64
    ("oval", None, 4, 100, True),  # at step 69
    ("procedural", 1000100, 1, 60, False),
])
def test_traffic_episodes_are_identical_to_highway_envs(track, track_seed, ep_seed, steps, swap_lane,
                                                               highway_env_originals):
    ours = _traffic_trace(track, track_seed, ep_seed, steps, swap_lane)
    highway_env_originals()
    theirs = _traffic_trace(track, track_seed, ep_seed, steps, swap_lane)
    assert len(ours) == len(theirs) == steps
    assert ours == theirs
    if swap_lane:
        assert any(step[4][0][5] for step in ours)  # the ego crashed: collisions are covered


def test_traffic_takes_the_fast_paths(monkeypatch):
    """No lookup falls back, and no neighbour search or step goes to highway-env's Road."""
    seen = []
    def spy(name):
        original = getattr(Road, name)

        def method(self, *a, **k):
            seen.append(name)
            return original(self, *a, **k)
        return method

    for name in ("step", "neighbour_vehicles"):
        monkeypatch.setattr(Road, name, spy(name))
    env = DrivingEnv("procedural", track_seed=7, traffic=8)
    _, info = env.reset(seed=4)
    for _ in range(30):
        _, _, _, _, info = env.step(np.array([info["teacher_action"]], np.float32))
    assert env.road.vehicles and seen == []
    assert env.track.network.index().fallbacks == 0
    assert env.road.float_lanes() and all(type(v) is TrafficVehicle for v in env.traffic)


def test_traffic_vehicles_act_and_step_on_floats(monkeypatch):
    """The float path runs (IDMVehicle's own act and step are never called) and gives what they give."""
    calls = []
    for name in ("act", "step"):
        original = getattr(IDMVehicle, name)
        monkeypatch.setattr(IDMVehicle, name, lambda self, *a, _o=original, _n=name, **k: (calls.append(_n),
                                                                                         _o(self, *a, **k))[1])
    env = DrivingEnv("procedural", track_seed=1000100, traffic=8)
    _, info = env.reset(seed=1)
    for _ in range(20):
        _, _, _, _, info = env.step(np.array([info["teacher_action"]], np.float32))
    assert calls == []
    v = env.traffic[0]
    twin = IDMVehicle(env.road, v.position.copy(), heading=v.heading, speed=v.speed,
                      target_lane_index=v.target_lane_index, target_speed=v.target_speed, enable_lane_change=False)
    twin.timer, twin.lane_index, twin.lane = v.timer, v.lane_index, v.lane
    k = env.road.vehicles.index(v)
    env.road.vehicles[k] = twin  # the twin in v's place: both see the same other vehicles
    IDMVehicle.act(twin)
    env.road.vehicles[k] = v
    v.act()
    assert v.action == twin.action  # the same floats (numpy's scalars compare equal to them)
    v.step(0.05), IDMVehicle.step(twin, 0.05)
    assert v.position.tobytes() == twin.position.tobytes() and (v.heading, v.speed) == (twin.heading, twin.speed)
    assert v.lane_index == twin.lane_index


# --- lane geometry on floats ---------------------------------------------------------------------


def test_lane_geometry_is_highway_envs_on_every_lane():
    """Local coordinates, headings, distances and the on-lane test on floats are highway-env's,
    bit for bit, near every lane of the built-in and several procedural tracks."""
    assert EXACT, "numpy's functions differ from math's here: traffic runs highway-env's own (slower) methods"
    rng = np.random.default_rng(3)
    checked = 0
    for name in [*TRACKS, 1000101, 1000150, 12]:
        for lane in _track(name).all_lanes():
            g = geometry(lane)
            assert g is not None and geometry(lane) is g  # built once
            for _ in range(8):
                p = lane.position(rng.uniform(-20.0, lane.length + 20.0), rng.uniform(-8.0, 8.0)) + rng.normal(0, 0.5, 2)
                x, y, h = float(p[0]), float(p[1]), float(rng.uniform(-7.0, 7.0))
                s, r = lane.local_coordinates(p)
                assert g.local(x, y) == (float(s), float(r))
                assert g.heading_at(float(s)) == float(lane.heading_at(s))
                assert g.distance_with_heading(x, y, h) == float(lane.distance_with_heading(p, h))
                assert g.on_lane(float(s), float(r), 1) == bool(lane.on_lane(p, s, r, margin=1))
                assert (float(s) > g.end_s) == bool(lane.after_end(p))
                checked += 1
    assert checked > 1000


def test_lane_geometry_declines_other_lanes():
    poly = PolyLane([(0.0, 0.0), (10.0, 0.0), (20.0, 5.0)], [(0.0, 4.0), (10.0, 4.0), (20.0, 9.0)],
                    [(0.0, -4.0), (10.0, -4.0), (20.0, 1.0)])
    assert geometry(poly) is None

    class MyLane(StraightLane):
        pass

    assert geometry(MyLane([0.0, 0.0], [10.0, 0.0])) is None  # a subclass may compute otherwise
    with np.errstate(invalid="ignore"):  # highway-env divides by the zero length
        degenerate = StraightLane([0.0, 0.0], [0.0, 0.0])
    assert geometry(degenerate) is None
    assert wrap_to_pi(3 * math.pi) == float(highway_utils.wrap_to_pi(np.float64(3 * math.pi)))
