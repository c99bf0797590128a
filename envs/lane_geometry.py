"""highway-env's lane coordinates in Python floats: the same operations, in the same order.

With traffic, every IDM vehicle asks its lanes for local coordinates and headings several times
per integration step (steering control, the end-of-lane check, the neighbour search, the
closest-lane lookup), and each of highway-env's methods costs a few microseconds of numpy
overhead on two-element arrays. `geometry(lane)` gives the same functions on floats for the three
lane types of SteerBench's tracks (`StraightLane`, `SineLane`, `CircularLane`, exactly those
classes), with the same floating-point operations in the same order as highway-env 1.12.1:

- a two-element `np.dot(a, b)` is `a0 * b0 + a1 * b1`, `np.linalg.norm(d)` is
  `sqrt(d0 * d0 + d1 * d1)`, `utils.wrap_to_pi(x)` is `((x + pi) % (2 pi)) - pi`;
- numpy's float64 `sin`, `cos`, `tan`, `arctan`, `arcsin`, `arctan2`, `sqrt` and `power` are the
  C library's, as `math`'s are.

Those identities hold on the CPUs and numpy builds SteerBench runs on, but not by contract (a numpy
built with other SIMD kernels, a BLAS whose dot uses fused multiply-adds), so they are checked
once per process on fixed random inputs (`EXACT`); where any differs, `geometry` returns None and
every caller keeps highway-env's own methods. Tests compare both on every lane of many tracks and
on whole traffic episodes.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
from highway_env import utils
from highway_env.road.lane import CircularLane, SineLane, StraightLane

MIRRORED_HIGHWAY_ENV = "1.12.1"
"""The highway-env version whose lane methods these functions mirror."""

PI = math.pi
TWO_PI = 2 * math.pi
HALF_PI = math.pi / 2


def wrap_to_pi(x: float) -> float:
    """highway_env.utils.wrap_to_pi on a float."""
    return ((x + PI) % TWO_PI) - PI


def _numerics_match() -> bool:
    """numpy's functions as highway-env calls them against the float expressions used here, on
    fixed random inputs (scalars and two-element arrays, as highway-env has them)."""
    rng = np.random.default_rng(20261202)
    x = rng.uniform(-40.0, 40.0, 400)
    u = rng.uniform(-1.0, 1.0, 400)
    a, b = rng.normal(0.0, 300.0, (400, 2)), rng.normal(0.0, 1.0, (400, 2))
    for xi, ui, ai, bi in zip(x.tolist(), u.tolist(), a, b):
        pairs = [(np.sin(xi), math.sin(xi)), (np.cos(xi), math.cos(xi)), (np.tan(xi), math.tan(xi)),
                 (np.arctan(xi), math.atan(xi)), (np.arcsin(ui), math.asin(ui)),
                 (np.arctan2(ai[1], ai[0]), math.atan2(float(ai[1]), float(ai[0]))),
                 (np.sqrt(abs(xi)), math.sqrt(abs(xi))), (np.power(abs(ui), 4.0), math.pow(abs(ui), 4.0)),
                 (np.power(xi, 2), math.pow(xi, 2)), (utils.wrap_to_pi(np.float64(xi)), wrap_to_pi(xi)),
                 (np.dot(ai, bi), float(ai[0]) * float(bi[0]) + float(ai[1]) * float(bi[1])),
                 (np.linalg.norm(ai), math.sqrt(float(ai[0]) * float(ai[0]) + float(ai[1]) * float(ai[1])))]
        if any(float(p) != q for p, q in pairs):
            return False
    return True


EXACT = version("highway-env") == MIRRORED_HIGHWAY_ENV and _numerics_match()
"""Whether the float functions reproduce highway-env's here (else `geometry` returns None)."""


class StraightGeometry:
    """StraightLane: local coordinates by two dot products with the lane's unit vectors."""

    def __init__(self, lane: StraightLane):
        self.x0, self.y0 = float(lane.start[0]), float(lane.start[1])
        self.d0, self.d1 = float(lane.direction[0]), float(lane.direction[1])
        self.l0, self.l1 = float(lane.direction_lateral[0]), float(lane.direction_lateral[1])
        self.heading = float(lane.heading)
        self.length = float(lane.length)
        self.half_width = lane.width / 2
        self.vehicle_length = lane.VEHICLE_LENGTH
        self.end_s = self.length - lane.VEHICLE_LENGTH / 2
        """AbstractLane.after_end: past this arc length the vehicle switches to the next lane."""

    def local(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.x0, y - self.y0
        return dx * self.d0 + dy * self.d1, dx * self.l0 + dy * self.l1

    def heading_at(self, s: float) -> float:
        return self.heading

    def distance_with_heading(self, x: float, y: float, heading: float) -> float:
        s, r = self.local(x, y)
        return abs(r) + max(s - self.length, 0) + max(0 - s, 0) + 1.0 * abs(wrap_to_pi(heading - self.heading_at(s)))

    def on_lane(self, s: float, r: float, margin: float) -> bool:
        return abs(r) <= self.half_width + margin and -self.vehicle_length <= s < self.length + self.vehicle_length


class SineGeometry(StraightGeometry):
    """SineLane: the straight lane's coordinates, less the sine's lateral offset."""

    def __init__(self, lane: SineLane):
        super().__init__(lane)
        self.amplitude, self.pulsation, self.phase = float(lane.amplitude), float(lane.pulsation), float(lane.phase)

    def local(self, x: float, y: float) -> tuple[float, float]:
        s, r = StraightGeometry.local(self, x, y)
        return s, r - self.amplitude * math.sin(self.pulsation * s + self.phase)

    def heading_at(self, s: float) -> float:
        return self.heading + math.atan(self.amplitude * self.pulsation * math.cos(self.pulsation * s + self.phase))


class CircularGeometry(StraightGeometry):
    """CircularLane: arc length from the start phase, lateral from the radius."""

    def __init__(self, lane: CircularLane):
        self.cx, self.cy = float(lane.center[0]), float(lane.center[1])
        self.radius, self.start_phase = float(lane.radius), float(lane.start_phase)
        self.direction = int(lane.direction)
        self.length = float(lane.length)
        self.half_width = lane.width / 2
        self.vehicle_length = lane.VEHICLE_LENGTH
        self.end_s = self.length - lane.VEHICLE_LENGTH / 2

    def local(self, x: float, y: float) -> tuple[float, float]:
        dx, dy = x - self.cx, y - self.cy
        phi = math.atan2(dy, dx)
        phi = self.start_phase + wrap_to_pi(phi - self.start_phase)
        r = math.sqrt(dx * dx + dy * dy)
        return self.direction * (phi - self.start_phase) * self.radius, self.direction * (self.radius - r)

    def heading_at(self, s: float) -> float:
        phi = self.direction * s / self.radius + self.start_phase
        return phi + HALF_PI * self.direction


Geometry = StraightGeometry
"""Any of the three (CircularGeometry shares the distance and on-lane tests)."""

_KINDS = {StraightLane: StraightGeometry, SineLane: SineGeometry, CircularLane: CircularGeometry}


def geometry(lane) -> Geometry | None:
    """The float functions of `lane` (built once, kept on the lane), or None: a lane of another
    class (a subclass included), a degenerate lane, or numerics that differ here (`EXACT`)."""
    cached = lane.__dict__.get("_steerbench_geometry", False)
    if cached is not False:
        return cached
    kind = _KINDS.get(type(lane)) if EXACT else None
    geom = None
    if kind is not None:
        try:
            geom = kind(lane)
        except (AttributeError, TypeError, ValueError, IndexError):
            geom = None
        if geom is not None and not (math.isfinite(geom.length) and geom.length > 0.0):
            geom = None
    lane.__dict__["_steerbench_geometry"] = geom
    return geom


__all__ = ["EXACT", "MIRRORED_HIGHWAY_ENV", "CircularGeometry", "Geometry", "SineGeometry", "StraightGeometry",
           "geometry", "wrap_to_pi"]
