"""The ego vehicle: highway-env's kinematic bicycle, commanded by path curvature.

The policy's action is the curvature kappa = 1/r of the path [1/m], positive turning right, as
PilotNet's steering command. highway-env's `Vehicle` integrates a kinematic bicycle whose slip angle
is beta = atan(tan(delta) / 2) and whose heading rate is v sin(beta) / (L / 2), so a path of
curvature kappa needs sin(beta) = kappa L / 2 and delta = atan(2 tan(beta)).
"""

from __future__ import annotations

import math

import numpy as np
from highway_env.vehicle.kinematics import Vehicle

MAX_STEERING_RAD = math.pi / 4
"""Front-wheel angle limit, as highway-env's ContinuousAction."""
LENGTH_M = Vehicle.LENGTH
WIDTH_M = Vehicle.WIDTH
MAX_CURVATURE = 2.0 * math.sin(math.atan(math.tan(MAX_STEERING_RAD) / 2.0)) / LENGTH_M
"""Tightest path curvature the vehicle can drive [1/m] (about 0.179, a 5.6 m radius)."""


def curvature_to_steering(kappa: float) -> float:
    """Front-wheel angle [rad] of highway-env's bicycle model that drives a path of curvature kappa."""
    beta = math.asin(max(-1.0, min(1.0, kappa * LENGTH_M / 2.0)))
    return math.atan(2.0 * math.tan(beta))


def steering_to_curvature(delta: float) -> float:
    """Path curvature [1/m] driven with front-wheel angle delta [rad]."""
    return 2.0 * math.sin(math.atan(math.tan(delta) / 2.0)) / LENGTH_M


def clip_curvature(kappa: float) -> float:
    return float(np.clip(kappa, -MAX_CURVATURE, MAX_CURVATURE))


class EgoVehicle(Vehicle):
    """highway-env's Vehicle whose lane bookkeeping is done by the environment's lane tracker.

    highway-env looks for the closest of all lanes after every integration step; the environment
    already projects the car on its lane path, so it sets `lane_index` / `lane` itself (traffic
    vehicles read them to find their neighbours).
    """

    def on_state_update(self) -> None:
        pass


def virtual_pose(x: float, y: float, heading: float, shift_m: float, yaw_rad: float) -> tuple[float, float, float]:
    """The pose of the car at (x, y, heading) displaced `shift_m` to its right and rotated `yaw_rad`
    (right) about its centre: the pose of a shifted or rotated virtual camera rig."""
    return x - shift_m * math.sin(heading), y + shift_m * math.cos(heading), heading + yaw_rad


def lens_position(x: float, y: float, heading: float, forward_m: float) -> tuple[float, float]:
    """Where a camera mounted `forward_m` ahead of the car's centre sits in the world."""
    return x + forward_m * math.cos(heading), y + forward_m * math.sin(heading)
