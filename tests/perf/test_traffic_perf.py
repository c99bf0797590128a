"""The traffic condition's env step against the nominal one, one process, interleaved in one run:
8 highway-env IDM vehicles on procedural track 1000100, the teacher driving. `indexed` is the
environment as it runs (IndexedRoadNetwork's closest-lane lookup, TrafficRoad's step and
neighbour search, TrafficVehicle's act and step on floats); `highway-env` puts highway-env's
RoadNetwork.get_closest_lane_index, Road's act / step / neighbour_vehicles and IDMVehicle's act /
step back (what the traffic step cost before any of them), with identical trajectories. `camera=False` is the step as a privileged policy's evaluation runs it
(render_observation off), on both sides."""

import numpy as np
import pytest
from highway_env.road.road import Road, RoadNetwork
from highway_env.vehicle.behavior import IDMVehicle

from envs import DrivingEnv
from envs.road_network import IndexedRoadNetwork, TrafficRoad
from envs.traffic import TrafficVehicle

pytestmark = pytest.mark.perf

STEPS = 100


def stepper(traffic: int, camera: bool):
    env = DrivingEnv("procedural", track_seed=1000100, traffic=traffic, config={"render_observation": camera})
    state = {"info": env.reset(seed=0)[1]}

    def run():
        info = state["info"]
        for _ in range(STEPS):
            _, _, term, trunc, info = env.step(np.array([info["teacher_action"]], np.float32))
            if term or trunc:
                _, info = env.reset()
        state["info"] = info
        return STEPS

    return run


@pytest.mark.parametrize("road, camera", [("indexed", True), ("highway-env", True), ("indexed", False)])
def test_traffic_step_vs_nominal_step(compare, monkeypatch, road, camera):
    if road == "highway-env":  # the nominal side never calls these (no traffic)
        monkeypatch.setattr(IndexedRoadNetwork, "get_closest_lane_index", RoadNetwork.get_closest_lane_index)
        for name in ("act", "step", "neighbour_vehicles"):
            monkeypatch.setattr(TrafficRoad, name, getattr(Road, name))
        for name in ("act", "step"):
            monkeypatch.setattr(TrafficVehicle, name, getattr(IDMVehicle, name))
    suffix = f"{road.replace('-', '_')}{'' if camera else '_no_camera'}"
    result = compare(stepper(8, camera), stepper(0, camera), rounds=10 if road == "indexed" else 5,
                     name=f"traffic_steps_{suffix}", reference_name=f"nominal_steps{'' if camera else '_no_camera'}")
    cost = 1.0 / result["ratio"]
    print(f"[perf] a traffic step costs {cost:.2f}x a nominal step ({road}, camera {'on' if camera else 'off'}; "
          "issue 12's target: 1.5x)")
    # reported, not a target met: what remains is the IDM's per-vehicle Python (act, step, the
    # neighbour search over every vehicle, the closest-lane lookup) for 8 vehicles x 2 substeps
    if road == "indexed" and camera:
        assert cost < 6.0
