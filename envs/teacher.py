"""The privileged teacher: pure pursuit on the lane centre.

The teacher knows the track. At any pose (the car's, or a virtual one: shifted sideways, rotated)
it projects the pose on its lane's centre line, takes the point `lookahead` metres further along
the centre line, and returns the curvature of the circular arc through the pose, tangent to the
heading, that reaches that point: kappa = 2 y / l^2, with y the point's lateral coordinate in the
car frame (positive right) and l its distance. The lookahead grows with speed
(l_a = max(min_lookahead, lookahead_time * v)). Taken along the centre line, a car on the centre of
an arc gets exactly the arc's curvature, so the teacher does not cut steady curves.

Around obstacles (envs.obstacles) the point is taken `offset(s)` metres beside the centre line
instead: the teacher pursues the passing line of the episode's PassPlan.

`return_to_centre_curvature` is the other label rule of the suite (NVIDIA's): the curvature that
brings a displaced car back to the lane centre and heading in about two seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from benchmark.common.config import require

from .tracks import LanePath
from .vehicle import clip_curvature


@dataclass(frozen=True)
class TeacherConfig:
    """Pure-pursuit teacher."""

    lookahead_time_s: float = 0.4
    """Lookahead distance per unit speed [s]."""
    min_lookahead_m: float = 3.0
    """Lower bound of the lookahead distance [m]."""

    def __post_init__(self) -> None:
        require(self.lookahead_time_s > 0, f"lookahead_time_s must be positive, got {self.lookahead_time_s}")
        require(self.min_lookahead_m > 0, f"min_lookahead_m must be positive, got {self.min_lookahead_m}")


class Teacher:
    """Pure pursuit on a lane path; returns the clipped curvature command [1/m]."""

    def __init__(self, config: TeacherConfig | None = None):
        self.config = config or TeacherConfig()

    def lookahead(self, speed: float) -> float:
        return max(self.config.min_lookahead_m, self.config.lookahead_time_s * abs(speed))

    def action(self, path: LanePath, x: float, y: float, heading: float, speed: float,
               hint: int | None = None) -> float:
        _, s, _, _ = path.project(x, y, hint)
        return self.action_from(path, s, x, y, heading, speed)

    def action_from(self, path: LanePath, s: float, x: float, y: float, heading: float, speed: float,
                    offset: Callable[[float], float] | None = None) -> float:
        """Pure-pursuit curvature for a pose already projected at arc length s; `offset(s)` [m, positive
        right] moves the pursued point off the centre line (None: on it)."""
        st = s + self.lookahead(speed)
        if offset is None:
            tx, ty = path.point_at(st)
        else:
            tx, ty, _ = path.pose_at(st, offset(st))
        dx, dy = tx - x, ty - y
        ch, sh = math.cos(heading), math.sin(heading)
        fwd = dx * ch + dy * sh
        lat = -dx * sh + dy * ch
        dist2 = fwd * fwd + lat * lat
        return clip_curvature(2.0 * lat / max(dist2, 1e-6))


def return_to_centre_curvature(lateral: float, heading_error: float, road_curvature: float,
                               speed: float, horizon_s: float = 2.0) -> float:
    """Curvature that returns a car to the lane centre and heading in `horizon_s` seconds.

    In the road frame (x along the lane, d to the right) a cubic d(x) with d(0) = lateral,
    d'(0) = tan(heading_error) and d(D) = d'(D) = 0 over D = speed * horizon_s has
    d''(0) = -(6 d0 + 4 D tan(psi0)) / D^2; its curvature at the car, plus the road's, is the label.
    """
    D = max(speed * horizon_s, 1.0)
    c = math.tan(max(-1.4, min(1.4, heading_error)))
    dd = -(6.0 * lateral + 4.0 * D * c) / (D * D)
    return clip_curvature(road_curvature + dd / (1.0 + c * c) ** 1.5)
