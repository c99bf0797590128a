"""Static obstacles on the lane (a stopped car, a row of cones) and the teacher's passes around them.

Layout, per track: where the obstacles stand along the track and of which kind is drawn from the
track's name and `ObstacleConfig.layout` alone (`LAYOUT_STREAM`), never from an episode, so every
episode on a lane of a track meets the same obstacles. Each stands on a lane (by default the one the
episode drives), aligned with it and shifted sideways by the least that leaves room to pass it on
either side: the car's width plus `clearance_m` beside the obstacle, with the whole car on the road
(`edge_margin_m` from the edge). A kind that cannot be passed both ways on a lane gives way to a
narrower one (a stopped car to a row of cones); a lane too narrow for any gets none (one-lane roads
under the defaults). So every obstacle can be passed on the left and on the right.

Passes, per episode: the teacher passes each obstacle in its way on the left or on the right, drawn
per obstacle from the episode's reset seed and the track's name on a stream of their own
(`SIDE_STREAM`: the reset's other draws, hence every episode without obstacles, are untouched). It shifts its pure-pursuit target
sideways: flat at the passing offset from `PASS_BUFFER_M` before the car's front reaches the
obstacle to as far behind it, with raised-cosine ramps of `ramp_m` out and back. The same image is
then labelled both ways across episodes: a bimodal conditional action distribution.

Obstacles are inert boxes, not highway-env vehicles: they never move, traffic does not see them,
and touching one (the car's rectangle against a box, by separating axes) is a collision.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from benchmark.common.config import require

from .camera import Box
from .tracks import LanePath, Track
from .vehicle import LENGTH_M, WIDTH_M

OBSTACLE_KINDS = ("car", "cones")
"""car: a stopped car on the lane; cones: a row of cones along the lane."""
SIDES = ("left", "right")
LAYOUT_STREAM = 20261401
"""Separates the layout's random numbers from every other use of a track's name."""
SIDE_STREAM = 20261402
"""Separates the passing sides' random numbers from every other use of the reset seed."""
CONES_PER_ROW = 5
CONE_SPACING_M = 1.8
CONE_SIZE_M = 0.45
CONE_HEIGHT_M = 0.75
CONE_COLOR = (245, 110, 20)
STOPPED_CAR_COLORS = ((40, 90, 180), (230, 200, 60), (225, 225, 225), (40, 40, 45), (120, 160, 90), (150, 90, 170))
HALF_WIDTH_M = {"car": 0.5 * WIDTH_M, "cones": 0.5 * CONE_SIZE_M}
HALF_LENGTH_M = {"car": 0.5 * LENGTH_M, "cones": 0.5 * ((CONES_PER_ROW - 1) * CONE_SPACING_M + CONE_SIZE_M)}
PASS_BUFFER_M = 3.0
"""The car is at its passing offset from this far before the obstacle until this far after it [m]."""
OPEN_ROAD_MARGINS_M = (150.0, 100.0)
"""On an open road, no obstacle within these distances of its start and its end [m]."""
CAR_RADIUS_M = math.hypot(0.5 * LENGTH_M, 0.5 * WIDTH_M)
_LONGEST_PASS_M = max(HALF_LENGTH_M.values()) + 0.5 * LENGTH_M + PASS_BUFFER_M + 2.0  # + a bend's bulge


@dataclass(frozen=True)
class ObstacleConfig:
    """Static obstacles on the lane, and how the teacher passes them."""

    per_km: float = 3.0
    """Obstacles per kilometre of track (rounded, at least one), unless `count` is set."""
    count: int = 0
    """Obstacles per track (0: from per_km). A track too short for them at min_spacing_m gets fewer."""
    kinds: tuple[str, ...] = OBSTACLE_KINDS
    """Kinds drawn from, uniformly per obstacle: car (a stopped car), cones (a row of cones along the lane)."""
    min_spacing_m: float = 120.0
    """Smallest distance along the track between two obstacles [m]."""
    lane: int | None = None
    """Lane of the obstacles (0 is the leftmost); None: the lane each episode drives."""
    layout: int = 0
    """Which of a track's layouts (another number: other positions and kinds)."""
    clearance_m: float = 1.25
    """Teacher: gap kept between the car's side and the obstacle while passing it [m] (1.25 m: room for
    steerbench-v2's gusts and steering noise, which push the car up to a metre off its line)."""
    edge_margin_m: float = 0.0
    """Teacher: gap kept between the car's side and the road edge while passing [m]; negative lets the
    wheels onto the verge (down to -0.75 m: the car's centre stays on the road)."""
    ramp_m: float = 30.0
    """Teacher: length of the sideways move out to the passing offset, and of the move back [m]."""

    def __post_init__(self) -> None:
        kinds = (self.kinds,) if isinstance(self.kinds, str) else tuple(self.kinds)
        object.__setattr__(self, "kinds", kinds)
        require(bool(kinds) and all(k in OBSTACLE_KINDS for k in kinds) and len(set(kinds)) == len(kinds),
                f"obstacle kinds must be distinct names among {', '.join(OBSTACLE_KINDS)}, got {list(kinds)}")
        require(0 < self.per_km <= 20, f"per_km must be in (0, 20], got {self.per_km}")
        require(isinstance(self.count, int) and 0 <= self.count <= 50, f"count must be 0..50, got {self.count}")
        require(self.lane is None or (isinstance(self.lane, int) and 0 <= self.lane <= 3),
                f"lane must be None (the episode's lane) or 0..3, got {self.lane}")
        require(isinstance(self.layout, int) and self.layout >= 0, f"layout must be a non-negative integer, got {self.layout}")
        require(0.1 <= self.clearance_m <= 3.0, f"clearance_m must be 0.1..3 m, got {self.clearance_m}")
        require(-0.75 <= self.edge_margin_m <= 3.0, f"edge_margin_m must be -0.75..3 m, got {self.edge_margin_m}")
        require(10.0 <= self.ramp_m <= 100.0, f"ramp_m must be 10..100 m, got {self.ramp_m}")
        need = 2 * (self.ramp_m + _LONGEST_PASS_M)
        require(self.min_spacing_m >= need, f"min_spacing_m must be at least {need:.0f} m with ramp_m {self.ramp_m} "
                                            f"(two passes would overlap), got {self.min_spacing_m}")


@dataclass(frozen=True, eq=False)
class Obstacle:
    """One obstacle: a stopped car (one box) or a row of cones (one box per cone)."""

    kind: str
    lane: int
    s: float
    """Arc length of its centre along its lane [m]."""
    offset: float
    """Lateral offset of its centre from its lane's centre [m, positive right]."""
    boxes: tuple[Box, ...]

    @property
    def x(self) -> float:
        return float(np.mean([b.x for b in self.boxes]))

    @property
    def y(self) -> float:
        return float(np.mean([b.y for b in self.boxes]))


def box_corners(x: float, y: float, heading: float, length: float, width: float) -> list[tuple[float, float]]:
    """The four corners of a rectangle centred at (x, y), `length` along `heading`."""
    c, s = math.cos(heading), math.sin(heading)
    hl, hw = 0.5 * length, 0.5 * width
    return [(x + c * a - s * b, y + s * a + c * b) for a, b in ((hl, -hw), (hl, hw), (-hl, hw), (-hl, -hw))]


def rectangles_touch(p: list[tuple[float, float]], q: list[tuple[float, float]]) -> bool:
    """Whether two rectangles (corners in order) overlap or touch: no separating axis among their edges."""
    for poly in (p, q):
        for i in (0, 1):
            ax, ay = poly[i + 1][0] - poly[i][0], poly[i + 1][1] - poly[i][1]
            nx, ny = -ay, ax
            pa = [nx * u + ny * v for u, v in p]
            qa = [nx * u + ny * v for u, v in q]
            if max(pa) < min(qa) or max(qa) < min(pa):
                return False
    return True


def _boxes(path: LanePath, s: float, offset: float, kind: str, color: tuple[int, int, int]) -> tuple[Box, ...]:
    if kind == "car":
        x, y, h = path.pose_at(s, offset)
        return (Box(x, y, h, LENGTH_M, WIDTH_M, color),)
    out = []
    for k in range(CONES_PER_ROW):  # each cone on the lane's own curve: the row bends with the road
        x, y, h = path.pose_at(s + (k - 0.5 * (CONES_PER_ROW - 1)) * CONE_SPACING_M, offset)
        out.append(Box(x, y, h, CONE_SIZE_M, CONE_SIZE_M, CONE_COLOR, height=CONE_HEIGHT_M, windows=False))
    return tuple(out)


def _wrap(ds: float, length: float, closed: bool) -> float:
    return (ds + 0.5 * length) % length - 0.5 * length if closed else ds


@dataclass(frozen=True)
class Footprint:
    """Where an obstacle's boxes lie in the frame of a lane path."""

    s: float
    """Arc length of the obstacle's centre [m]."""
    back: float
    front: float
    """Extent along the path from the centre [m] (back <= 0 <= front)."""
    left: float
    right: float
    """Extent across the path, from its centre line [m, positive right]."""


def footprint(boxes: tuple[Box, ...], path: LanePath) -> Footprint:
    xs, ys = np.mean([b.x for b in boxes]), np.mean([b.y for b in boxes])
    seg, s0, _, _ = path.project(float(xs), float(ys))
    along, across = [], []
    for b in boxes:
        for cx, cy in box_corners(b.x, b.y, b.heading, b.length, b.width):
            _, s, d, _ = path.project(cx, cy, seg, window=(40, 40))
            along.append(_wrap(s - s0, path.length, path.closed))
            across.append(d)
    return Footprint(s0, min(along), max(along), min(across), max(across))


def car_extents(path: LanePath, s: float, half_length: float) -> tuple[float, float]:
    """How far the car reaches left and right of its centre line [m] while it drives a stretch of the
    lane (s +- half_length). On a straight, half its width; in a bend, more: its rectangle is a chord of
    the curve, its ends a sagitta L^2 kappa / 8 out of the bend, and highway-env's bicycle turns its body
    out of the bend by its slip angle beta ~ kappa L / 2, L beta / 2 more at the front outer and rear
    inner corners. So it reaches W/2 + 3/8 L^2 kappa out of the bend and W/2 + 1/8 L^2 kappa into it."""
    ks = [path.curvature_at(float(v)) for v in np.arange(s - half_length, s + half_length + 0.5, 1.0)]
    right_turn, left_turn = max(0.0, max(ks)), max(0.0, -min(ks))  # positive curvature turns right
    l2 = LENGTH_M**2
    return (0.5 * WIDTH_M + l2 * (3 * right_turn + left_turn) / 8, 0.5 * WIDTH_M + l2 * (right_turn + 3 * left_turn) / 8)


def pass_offsets(fp: Footprint, car: tuple[float, float], edges: tuple[float, float],
                 config: ObstacleConfig) -> tuple[float | None, float | None]:
    """The car's lateral offsets [m] to pass an obstacle on the left and on the right, `clearance_m` from
    it, each None where the car would not stay `edge_margin_m` inside the road. `car`: its reach left
    and right (car_extents)."""
    left = fp.left - car[1] - config.clearance_m
    right = fp.right + car[0] + config.clearance_m
    ok_left = left - car[0] >= edges[0] + config.edge_margin_m - 1e-9
    ok_right = right + car[1] <= edges[1] - config.edge_margin_m + 1e-9
    return (left if ok_left else None, right if ok_right else None)


def in_the_way(fp: Footprint, car: tuple[float, float], config: ObstacleConfig) -> bool:
    """Whether a car on the lane centre would come within clearance_m of the obstacle."""
    return fp.left < car[1] + config.clearance_m and fp.right > -(car[0] + config.clearance_m)


def pass_half_length(fp: Footprint) -> float:
    """Half the stretch driven at the passing offset: the obstacle, half the car and PASS_BUFFER_M each way."""
    return max(-fp.back, fp.front) + 0.5 * LENGTH_M + PASS_BUFFER_M


def layout(track: Track, config: ObstacleConfig, lane: int) -> list[Obstacle]:
    """The obstacles of a track on `lane` (the config's own lane if it names one), in order along it:
    the same for every episode. Positions and kinds are drawn for the whole track before any lane's
    room is considered, so every lane sees the same draws."""
    lane = lane if config.lane is None else config.lane
    if not 0 <= lane < track.lanes:
        raise ValueError(f"obstacle lane must be 0..{track.lanes - 1} on {track.name}, got {lane}")
    rng = np.random.default_rng([LAYOUT_STREAM, zlib.crc32(track.name.encode()), config.layout])
    length = track.length
    n = config.count or max(1, round(config.per_km * length / 1000.0))
    lo, hi = (0.0, length) if track.closed else (OPEN_ROAD_MARGINS_M[0], length - OPEN_ROAD_MARGINS_M[1])
    drawn: list[tuple[float, str, tuple[int, int, int]]] = []
    for _ in range(n):
        u = None
        for _attempt in range(100):
            cand = float(rng.uniform(lo, hi))
            if all(abs(_wrap(cand - v, length, track.closed)) >= config.min_spacing_m for v, _, _ in drawn):
                u = cand
                break
        kind = config.kinds[int(rng.integers(len(config.kinds)))]
        color = STOPPED_CAR_COLORS[int(rng.integers(len(STOPPED_CAR_COLORS)))]
        if u is not None:
            drawn.append((u, kind, color))
    path = track.paths[lane]
    edges = track.road_edges(lane)
    out = []
    for u, kind, color in sorted(drawn):
        s = u * path.length / length
        # the drawn kind, else narrower ones of the config's kinds
        for k in [kind] + sorted((k for k in config.kinds if HALF_WIDTH_M[k] < HALF_WIDTH_M[kind]),
                                 key=HALF_WIDTH_M.get, reverse=True):
            ob = _fit(path, lane, edges, s, k, color, config)
            if ob is not None:
                out.append(ob)
                break
    return out


def _fit(path: LanePath, lane: int, edges: tuple[float, float], s: float, kind: str,
         color: tuple[int, int, int], config: ObstacleConfig) -> Obstacle | None:
    """The obstacle at s, shifted sideways by the least that lets it be passed on both sides, or None.
    In a bend a box bulges beyond the lane's curve, unevenly on its two sides and more when shifted:
    the shift is refined from the exact footprint a few times."""
    shift = 0.0
    for _ in range(4):
        boxes = _boxes(path, s, shift, kind, color)
        fp = footprint(boxes, path)
        car = car_extents(path, fp.s, pass_half_length(fp))
        need = car[0] + car[1] + config.clearance_m + config.edge_margin_m
        left, right = pass_offsets(fp, car, edges, config)
        if left is not None and right is not None:
            return Obstacle(kind, lane, float(s), float(shift), boxes) if in_the_way(fp, car, config) else None
        lo = shift + edges[0] + need - fp.left  # the least shift that leaves a left pass
        hi = shift + edges[1] - need - fp.right  # the most that leaves a right pass
        if lo > hi:
            return None
        margin = min(0.01, 0.5 * (hi - lo))  # off the exact limit, which rounding would miss
        shift = min(max(0.0, lo + margin), hi - margin)
    return None


@dataclass(frozen=True)
class Pass:
    """The teacher's pass of one obstacle, in the frame of the episode's lane."""

    obstacle: int
    """Index in the episode's obstacles."""
    kind: str
    s: float
    """Arc length of the obstacle's centre along the episode's lane [m]."""
    half_length: float
    """Half the length of the stretch driven at the passing offset [m]."""
    offset: float
    """The teacher's target offset beside the obstacle [m, positive right]; 0 when not in the way."""
    side: str | None
    """'left' or 'right'; None when the obstacle is not in the way."""


class PassPlan:
    """The teacher's passing line along the episode's lane: the lane centre, except around the obstacles
    in the way, where it ramps (raised cosine) out to each pass's offset and back.

    What the teacher pursues is not quite the line: in a bend, pure pursuit from the car's heading cuts
    inside. highway-env's bicycle moves at its slip angle beta off its heading, sin beta = kappa L / 2,
    and on an arc of curvature kappa the car settles about l_a beta = l_a L kappa / 2 inside the point
    it pursues (to first order, whatever the offset: 0.66 m at 12 m/s on a 16 m radius). Beside an
    obstacle the pursued point is moved out by that much (`target_at`), so the car drives the line.
    """

    def __init__(self, passes: list[Pass], path: LanePath, ramp_m: float, lookahead_m: float):
        self.passes = passes
        self.path = path
        self.length, self.closed, self.ramp = path.length, path.closed, float(ramp_m)
        self.cut_gain = 0.5 * float(lookahead_m) * LENGTH_M
        self._active = [(p.s, p.half_length, p.offset) for p in passes if p.side is not None]

    @property
    def sides(self) -> tuple[str | None, ...]:
        return tuple(p.side for p in self.passes)

    def _weight(self, s: float) -> tuple[float, float]:
        """(profile weight in [0, 1], pass offset) at arc length s."""
        for s0, half, offset in self._active:
            x = abs(_wrap(s - s0, self.length, self.closed)) - half
            if x <= 0.0:
                return 1.0, offset
            if x < self.ramp:
                return 0.5 * (1.0 + math.cos(math.pi * x / self.ramp)), offset
        return 0.0, 0.0

    def line_at(self, s: float) -> float:
        """The passing line's lateral offset from the lane centre [m, positive right] at arc length s."""
        w, offset = self._weight(s)
        return w * offset

    def target_at(self, s: float) -> float:
        """The lateral offset [m] of the point the teacher pursues at arc length s: the line, moved out of
        the bend by the car's steady cut inside it; exactly 0 away from the obstacles."""
        w, offset = self._weight(s)
        if w == 0.0:
            return 0.0
        return w * (offset - self.cut_gain * self.path.curvature_at(s))

    def current(self, s: float) -> tuple[Pass, float] | None:
        """The pass under way or next ahead at arc length s, with the distance to its obstacle's centre
        (negative once the centre is behind); None without obstacles in the way."""
        best = None
        for p in self.passes:
            if p.side is None:
                continue
            zone = p.half_length + self.ramp
            ds = s0 = p.s - s
            if self.closed:
                ds = (s0 + zone) % self.length - zone  # in [-zone, length - zone)
            elif ds < -zone:
                continue
            if best is None or ds < best[1]:
                best = (p, ds)
        return best

    def clear_start(self, s: float) -> float:
        """A start at s moved past any pass it falls in (approach or alongside), so that no episode
        begins on an obstacle or too close to get round it."""
        for _ in range(len(self._active) + 1):
            for s0, half, _ in self._active:
                ds = _wrap(s - s0, self.length, self.closed)
                if -(half + self.ramp) < ds < half:  # on the approach ramp or alongside
                    s = s0 + half + self.ramp
                    s = s % self.length if self.closed else s
                    break
            else:
                return s
        return s


def plan_passes(obstacles: list[Obstacle], track: Track, lane: int, config: ObstacleConfig,
                draws: np.ndarray, lookahead_m: float) -> PassPlan:
    """The teacher's passes on `lane` around `obstacles`, each one's side from its uniform draw in
    [0, 1): left under one half, right above, where both sides have room (else the side that has)."""
    path, edges = track.paths[lane], track.road_edges(lane)
    passes = []
    for i, ob in enumerate(obstacles):
        fp = footprint(ob.boxes, path)
        half = pass_half_length(fp)
        car = car_extents(path, fp.s, half)
        if not in_the_way(fp, car, config):
            passes.append(Pass(i, ob.kind, fp.s, half, 0.0, None))
            continue
        left, right = pass_offsets(fp, car, edges, config)
        if left is not None and right is not None:
            side = "left" if draws[i] < 0.5 else "right"
        elif left is not None or right is not None:
            side = "left" if left is not None else "right"
        else:  # no room either way (an obstacle on another lane in the way): the wider side
            side = "left" if fp.left - edges[0] >= edges[1] - fp.right else "right"
            left = fp.left - car[1] - config.clearance_m
            right = fp.right + car[0] + config.clearance_m
        passes.append(Pass(i, ob.kind, fp.s, half, float(left if side == "left" else right), side))
    return PassPlan(passes, path, config.ramp_m, lookahead_m)


__all__ = [
    "CONE_COLOR",
    "LAYOUT_STREAM",
    "OBSTACLE_KINDS",
    "SIDES",
    "SIDE_STREAM",
    "Footprint",
    "Obstacle",
    "ObstacleConfig",
    "Pass",
    "PassPlan",
    "box_corners",
    "footprint",
    "layout",
    "pass_offsets",
    "plan_passes",
    "rectangles_touch",
]
