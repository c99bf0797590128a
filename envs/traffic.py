"""The traffic condition's vehicles: highway-env's IDMVehicle, its act and step on floats.

Each traffic vehicle is an `IDMVehicle` (lane changes off) and drives exactly as one: the same
controller (`steering_control`), the same IDM acceleration against the vehicle ahead, the same
bicycle-model integration, the same end-of-lane switch (`follow_road`, through highway-env's own
`next_lane`) and closest-lane bookkeeping. What changes is the arithmetic's vehicle: highway-env
does it on numpy scalars and two-element arrays (about 90 us per vehicle and integration step, most
of it numpy's per-call overhead); `TrafficVehicle` does the very same floating-point operations, in
the same order, on Python floats with `math` (envs/lane_geometry.py says why they are the same
numbers, and checks it once per process). Trajectories are bit-identical; tests compare whole
traffic episodes against highway-env's IDMVehicle and Road.

The float path runs when every lane of the network has a float geometry, lane changes are off
and the road is a `TrafficRoad` with nothing but vehicles on it; otherwise the vehicle is exactly
highway-env's (IDMVehicle's own methods).
"""

from __future__ import annotations

import math

from highway_env import utils
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

from .lane_geometry import Geometry, geometry, wrap_to_pi

QUARTER_PI = math.pi / 4
SQRT_2AB = 2 * math.sqrt(-IDMVehicle.COMFORT_ACC_MAX * IDMVehicle.COMFORT_ACC_MIN)
"""`2 * np.sqrt(ab)` of IDMVehicle.desired_gap."""


def _clip(x: float, lo: float, hi: float) -> float:
    """np.clip on a float (NaN stays NaN, as with numpy)."""
    return min(max(x, lo), hi)


def _stock_motion(v) -> bool:
    """A vehicle whose velocity and direction are highway-env's (speed times (cos, sin) of heading)."""
    cls = type(v)
    return cls.velocity is Vehicle.velocity and cls.direction is RoadObject.direction


class TrafficVehicle(IDMVehicle):
    """highway-env's IDMVehicle (lane changes off) whose act and step compute on floats (see the module)."""

    def _float_path(self) -> bool:
        road = self.road
        return (not self.enable_lane_change and road is not None and not road.objects
                and getattr(road, "float_lanes", lambda: False)())

    # --- act: IDMVehicle.act with lane changes off ----------------------------------------------
    def act(self, action: dict | str | None = None) -> None:
        if not self._float_path():
            return super().act(action)
        if self.crashed:
            return
        x, y = float(self.position[0]), float(self.position[1])
        network = self.road.network
        # ControlledVehicle.follow_road: at the end of the target lane, highway-env picks the next
        target = geometry(network.get_lane(self.target_lane_index))
        s, r = target.local(x, y)
        if s > target.end_s:  # AbstractLane.after_end
            self.target_lane_index = network.next_lane(self.target_lane_index, route=self.route,
                                                       position=self.position, np_random=self.road.np_random)
            target = geometry(network.get_lane(self.target_lane_index))
            s, r = target.local(x, y)
        steering = _clip(self._steering(target, s, r), -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE)
        front, _rear = self.road.neighbour_vehicles(self, self.lane_index)
        acceleration = self._idm(front, x, y)
        if self.lane_index != self.target_lane_index:  # between two lanes: the stricter of both
            front, _rear = self.road.neighbour_vehicles(self, self.target_lane_index)
            acceleration = min(acceleration, self._idm(front, x, y))
        acceleration = _clip(acceleration, -self.ACC_MAX, self.ACC_MAX)
        Vehicle.act(self, {"steering": steering, "acceleration": acceleration})

    def _steering(self, lane: Geometry, s: float, r: float) -> float:
        """ControlledVehicle.steering_control on the target lane's coordinates (s, r)."""
        speed = self.speed
        lane_future_heading = lane.heading_at(s + speed * self.TAU_PURSUIT)
        lateral_speed_command = -self.KP_LATERAL * r
        heading_command = math.asin(_clip(lateral_speed_command / utils.not_zero(speed), -1, 1))
        heading_ref = lane_future_heading + _clip(heading_command, -QUARTER_PI, QUARTER_PI)
        heading_rate_command = self.KP_HEADING * wrap_to_pi(heading_ref - self.heading)
        slip_angle = math.asin(_clip(self.LENGTH / 2 / utils.not_zero(speed) * heading_rate_command, -1, 1))
        steering_angle = math.atan(2 * math.tan(slip_angle))
        return float(_clip(steering_angle, -self.MAX_STEERING_ANGLE, self.MAX_STEERING_ANGLE))

    def _idm(self, front, x: float, y: float) -> float:
        """IDMVehicle.acceleration(self, front) (the rear vehicle does not enter it)."""
        target_speed = getattr(self, "target_speed", 0)
        if self.lane and self.lane.speed_limit is not None:
            target_speed = _clip(target_speed, 0, self.lane.speed_limit)
        speed = self.speed
        acceleration = self.COMFORT_ACC_MAX * (
            1 - math.pow(max(speed, 0) / abs(utils.not_zero(target_speed)), self.DELTA))
        if front:
            lane = geometry(self.lane)
            fx, fy = float(front.position[0]), float(front.position[1])
            d = lane.local(fx, fy)[0] - lane.local(x, y)[0]  # Vehicle.lane_distance_to
            acceleration -= self.COMFORT_ACC_MAX * math.pow(self._desired_gap(front) / utils.not_zero(d), 2)
        return acceleration

    def _desired_gap(self, front) -> float:
        """IDMVehicle.desired_gap(self, front), projected: np.dot(v_ego - v_front, direction_ego)."""
        if not _stock_motion(front):
            return IDMVehicle.desired_gap(self, self, front)
        speed, c, s = self.speed, math.cos(self.heading), math.sin(self.heading)
        f_speed, fc, fs = front.speed, math.cos(front.heading), math.sin(front.heading)
        dv = (speed * c - f_speed * fc) * c + (speed * s - f_speed * fs) * s
        return self.DISTANCE_WANTED + speed * self.TIME_WANTED + speed * dv / SQRT_2AB

    # --- step: IDMVehicle.step, Vehicle.step ------------------------------------------------
    def step(self, dt: float) -> None:
        if not self._float_path():
            return super().step(dt)
        self.timer += dt
        self.clip_actions()
        delta_f = self.action["steering"]
        beta = math.atan(1 / 2 * math.tan(delta_f))
        speed, heading = self.speed, self.heading
        position = self.position
        position[0] = position[0] + speed * math.cos(heading + beta) * dt
        position[1] = position[1] + speed * math.sin(heading + beta) * dt
        if self.impact is not None:
            self.position += self.impact
            self.crashed = True
            self.impact = None
        self.heading = heading + speed * math.sin(beta) / (self.LENGTH / 2) * dt
        self.speed = speed + self.action["acceleration"] * dt
        self.on_state_update()


__all__ = ["TrafficVehicle"]
