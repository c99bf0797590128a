"""Tracks: highway-env road networks plus a dense centre line per lane.

Every track is a highway-env `RoadNetwork` of `StraightLane` / `CircularLane` / `SineLane` segments
along one route, with `lanes` parallel lanes of equal width (lane 0 is the leftmost; lateral
coordinates are positive to the right, as in highway-env). Three sources:

- built-in layouts: highway-env's own racetrack, racetrack-large and oval roads (built by its
  `_make_road`, with arcs of 180 degrees or more split in two) and an open sine road;
- a track spec (a dict, or a JSON/YAML file): straight and arc segments, lane count, width, speed;
- procedural specs from an integer seed (see `envs.procedural`).

For speed the simulator does not ask highway-env for the closest lane each step: each lane's
centre is sampled every 0.5 m into a `LanePath`, and the car is projected onto it with a local
search around its previous position. Traffic vehicles do ask, after every integration step; every
track's network is an `IndexedRoadNetwork` (see `envs.road_network`), which answers exactly as
highway-env's `RoadNetwork` does without evaluating every lane.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from highway_env.road.lane import AbstractLane, CircularLane, LineType, SineLane, StraightLane
from highway_env.road.road import RoadNetwork

from .road_network import IndexedRoadNetwork

SAMPLE_SPACING_M = 0.5
"""Spacing of the samples of each lane's centre line."""

JOIN_BLEND_M = 2.0
"""Length over which a sideways step between consecutive segments is blended."""

MIN_LANE_RADIUS_M = 10.0
"""Smallest radius of any lane centre: the vehicle's tightest turn is 5.6 m, the teacher needs margin."""

BUILTIN_TRACKS = ("racetrack", "racetrack-large", "oval", "sine-road")


class TrackSpecError(ValueError):
    """A track spec that cannot be built; the message names the segment and the problem."""


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wrap an angle to [-pi, pi)."""
    return (a + np.pi) % (2 * np.pi) - np.pi


class LanePath:
    """A lane's centre line as a dense polyline, with projection and lookup by arc length."""

    def __init__(self, points: np.ndarray, edge_ids: np.ndarray, closed: bool):
        points, edge_ids = _clean_polyline(np.asarray(points, float), np.asarray(edge_ids), closed)
        self.closed = closed
        self.points = points
        self.edge_ids = edge_ids
        ends = np.roll(points, -1, axis=0) if closed else points[1:]
        self.seg = ends - points[: len(ends)]
        self.seg_len = np.hypot(self.seg[:, 0], self.seg[:, 1])
        self.tangent = self.seg / self.seg_len[:, None]
        self.n_seg = len(self.seg)
        self.s = np.concatenate([[0.0], np.cumsum(self.seg_len)])
        self.length = float(self.s[-1])
        seg_heading = np.arctan2(self.tangent[:, 1], self.tangent[:, 0])
        # Heading at each vertex is the mean of its two segments' headings; within a segment it is
        # interpolated, so heading errors do not jump by the sampling angle at every vertex.
        prev = np.roll(seg_heading, 1) if closed else np.concatenate([seg_heading[:1], seg_heading[:-1]])
        vertex = seg_heading - 0.5 * wrap_angle(seg_heading - prev)
        nxt = np.roll(vertex, -1) if closed else np.concatenate([vertex[1:], seg_heading[-1:]])
        self.h0 = vertex
        self.dh = wrap_angle(nxt - vertex)
        self.curvature = self.dh / self.seg_len  # per segment, 1/m, positive turning right
        # Pre-split arrays for the per-step local search (plain floats are faster than numpy here).
        self._px, self._py = points[:, 0].copy(), points[:, 1].copy()
        self._sx, self._sy = self.seg[:, 0].copy(), self.seg[:, 1].copy()
        self._seg_len2 = self.seg_len**2

    # --- queries -------------------------------------------------------------------------------
    def project(self, x: float, y: float, hint: int | None = None, window: tuple[int, int] = (8, 48)):
        """Closest point of the path to (x, y).

        Returns (segment index, arc length s, lateral offset d [m, positive right], path heading).
        With `hint` only segments hint-window[0] .. hint+window[1] are searched (the car moves a few
        metres a step), otherwise the whole path.
        """
        n = self.n_seg
        first = 0
        if hint is None:
            idx = slice(0, n)
        else:
            lo, hi = hint - window[0], hint + window[1]
            if not self.closed:
                first = max(lo, 0)
                idx = slice(first, min(hi, n))
            elif 0 <= lo and hi <= n:
                first = lo
                idx = slice(lo, hi)
            else:  # the window wraps around the start of a closed path
                idx = np.arange(lo, hi) % n
        # Slices (views) where the window is contiguous: the same elements in the same order as
        # an index array, so the same result.
        px = self._px[idx]
        py = self._py[idx]
        sx = self._sx[idx]
        sy = self._sy[idx]
        dx = x - px
        dy = y - py
        t = np.clip((dx * sx + dy * sy) / self._seg_len2[idx], 0.0, 1.0)
        ex = dx - t * sx
        ey = dy - t * sy
        k = int(np.argmin(ex * ex + ey * ey))
        i = first + k if isinstance(idx, slice) else int(idx[k])
        tk = float(t[k])
        tx, ty = self.tangent[i]
        lateral = float(ex[k] * -ty + ey[k] * tx)
        s = float(self.s[i] + tk * self.seg_len[i])
        heading = float(self.h0[i] + tk * self.dh[i])
        return i, s, lateral, heading

    def locate(self, s: float) -> tuple[int, float]:
        """Segment index and fraction within it for arc length s (wrapped on closed paths)."""
        if self.closed:
            s = s % self.length
        else:
            s = min(max(s, 0.0), self.length)
        i = int(np.searchsorted(self.s, s, side="right")) - 1
        i = min(max(i, 0), self.n_seg - 1)
        return i, (s - self.s[i]) / self.seg_len[i]

    def point_at(self, s: float) -> np.ndarray:
        i, t = self.locate(s)
        return self.points[i] + t * self.seg[i]

    def pose_at(self, s: float, lateral: float = 0.0) -> tuple[float, float, float]:
        """World (x, y, heading) of the point `lateral` metres right of the centre at arc length s."""
        i, t = self.locate(s)
        x, y = self.points[i] + t * self.seg[i]
        h = self.h0[i] + t * self.dh[i]
        return x - lateral * math.sin(h), y + lateral * math.cos(h), float(wrap_angle(h))

    def heading_at(self, s: float) -> float:
        i, t = self.locate(s)
        return float(self.h0[i] + t * self.dh[i])

    def curvature_at(self, s: float, window: float = 4.0) -> float:
        """Mean curvature of the centre line over `window` metres around s [1/m, positive right].

        Averaged over a few metres so that the small kinks of highway-env's segment joins do not
        show up as curvature spikes.
        """
        a, b = s - window / 2, s + window / 2
        if not self.closed:
            a, b = max(a, 0.0), min(b, self.length)
        return float(wrap_angle(self.heading_at(b) - self.heading_at(a)) / max(b - a, 1e-9))


def _clean_polyline(points: np.ndarray, edge_ids: np.ndarray, closed: bool):
    """Drop samples that do not move forward along the running direction.

    highway-env's layouts join segments with small overlaps (an arc ending a few centimetres past
    where the next straight begins); without this the path would step backwards at those joins.
    """
    keep = [0]
    for j in range(1, len(points)):
        last = points[keep[-1]]
        step = points[j] - last
        dist = math.hypot(step[0], step[1])
        if dist < 1e-6:
            continue
        if len(keep) >= 2:
            prev = points[keep[-2]]
            direction = last - prev
            if np.dot(step, direction) <= 0.0:
                continue
        keep.append(j)
    points, edge_ids = points[keep], edge_ids[keep]
    if closed:
        # Trim the end of the loop where it overlaps the start.
        start_dir = points[1] - points[0]
        while len(points) > 3:
            back = points[-1] - points[0]
            if math.hypot(*back) < 10.0 and np.dot(back, start_dir) >= -1e-9:
                points, edge_ids = points[:-1], edge_ids[:-1]
            else:
                break
    return points, edge_ids


@dataclass(eq=False)  # identity hash: tracks key the map-texture cache
class Track:
    """A driving track: highway-env road network, route, lanes and one LanePath per lane."""

    name: str
    network: RoadNetwork
    route: list[tuple[str, str]]
    lanes: int
    lane_width: float
    speed: float
    """Cruise speed of the ego vehicle on this track [m/s]."""
    closed: bool
    spec: dict | None = None
    """The segment spec the track was built from (procedural and custom tracks)."""
    drawing: Any = None
    """What the camera draws, when it is more than this track's own lanes: a route of a road network
    with forks shows every branch (envs.forks.RoadMap); None draws the track itself."""
    paths: list[LanePath] = field(init=False)

    def __post_init__(self) -> None:
        self.paths = [self._sample_lane(k) for k in range(self.lanes)]

    def _sample_lane(self, k: int) -> LanePath:
        pts, ids = [], []
        lanes = [self.network.get_lane((a, b, k)) for a, b in self.route]
        for e, lane in enumerate(lanes):
            n = max(2, int(math.ceil(lane.length / SAMPLE_SPACING_M)) + 1)
            s_values = np.linspace(0.0, lane.length, n)
            if not (e == len(lanes) - 1 and not self.closed):
                s_values = s_values[:-1]
            # highway-env's layouts have joins where a segment starts beside the previous one's end;
            # spread such a sideways step over JOIN_BLEND_M instead of a kink in the centre line.
            prev = lanes[e - 1] if (e > 0 or self.closed) else None
            if prev is not None and np.hypot(*(prev.position(prev.length, 0.0) - lane.position(0.0, 0.0))) > 0.05:
                s_values = s_values[s_values >= min(JOIN_BLEND_M, 0.25 * lane.length)]
            for s in s_values:
                pts.append(lane.position(float(s), 0.0))
                ids.append(e)
        return LanePath(np.array(pts), np.array(ids), self.closed)

    @property
    def length(self) -> float:
        """Mean length of the lane centre lines [m]."""
        return float(np.mean([p.length for p in self.paths]))

    def lane_index(self, lane: int, segment: int) -> tuple[str, str, int]:
        """highway-env lane index of lane `lane` at LanePath segment `segment`."""
        a, b = self.route[int(self.paths[lane].edge_ids[segment])]
        return (a, b, lane)

    def road_edges(self, lane: int) -> tuple[float, float]:
        """Lateral offsets of the left and right road edges from the centre of `lane` [m]."""
        w = self.lane_width
        return -(lane + 0.5) * w, (self.lanes - lane - 0.5) * w

    def bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of every lane's centre, widened by half the road and `margin`."""
        pts = np.concatenate([p.points for p in self.paths])
        pad = 0.5 * self.lane_width + margin
        lo = pts.min(axis=0) - pad
        hi = pts.max(axis=0) + pad
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def all_lanes(self) -> list[AbstractLane]:
        return [lane for a, b in self.route for lane in self.network.graph[a][b]]


# --- built-in layouts ---------------------------------------------------------------------------


def _route_from(network: RoadNetwork, start: str = "a") -> list[tuple[str, str]]:
    route, node = [], start
    while True:
        nxt = next(iter(network.graph[node]))
        route.append((node, nxt))
        node = nxt
        if node == start or node not in network.graph:
            return route


def _split_long_arcs(network: RoadNetwork, route: list[tuple[str, str]]):
    """Split arcs of 180 degrees or more, which highway-env's local coordinates wrap."""
    out_net, out_route = IndexedRoadNetwork(), []
    for a, b in route:
        lanes = network.graph[a][b]
        long_arc = any(
            isinstance(ln, CircularLane) and abs(ln.end_phase - ln.start_phase) >= np.pi - 1e-9
            for ln in lanes
        )
        if not long_arc:
            for ln in lanes:
                out_net.add_lane(a, b, ln)
            out_route.append((a, b))
            continue
        mid = f"{a}{b}"
        for ln in lanes:
            m = 0.5 * (ln.start_phase + ln.end_phase)
            kw = dict(
                clockwise=ln.clockwise, width=ln.width, line_types=ln.line_types, speed_limit=ln.speed_limit
            )
            out_net.add_lane(a, mid, CircularLane(ln.center, ln.radius, ln.start_phase, m, **kw))
            out_net.add_lane(mid, b, CircularLane(ln.center, ln.radius, m, ln.end_phase, **kw))
        out_route += [(a, mid), (mid, b)]
    return out_net, out_route


def _highway_env_layout(name: str) -> Track:
    from highway_env.envs.racetrack_env import RacetrackEnv, RacetrackEnvLarge, RacetrackEnvOval

    cls = {"racetrack": RacetrackEnv, "racetrack-large": RacetrackEnvLarge, "oval": RacetrackEnvOval}[name]
    env = cls()  # highway-env builds its road in reset; only the network is kept
    env.reset(seed=0)
    network, route = _split_long_arcs(env.road.network, _route_from(env.road.network))
    env.close()
    lanes = len(network.graph[route[0][0]][route[0][1]])
    width = network.get_lane((route[0][0], route[0][1], 0)).width
    return Track(name, network, route, lanes, float(width), speed=10.0, closed=True)


def _sine_road(length: float = 4000.0, lanes: int = 2, width: float = 4.0) -> Track:
    """An open two-lane road along highway-env's `SineLane`: 5 m amplitude, 100 m wavelength."""
    net = IndexedRoadNetwork()
    for k in range(lanes):
        left = LineType.CONTINUOUS if k == 0 else LineType.STRIPED
        right = LineType.CONTINUOUS if k == lanes - 1 else LineType.NONE
        lane = SineLane(
            [0.0, k * width], [length, k * width], amplitude=5.0, pulsation=2 * np.pi / 100.0,
            phase=0.0, width=width, line_types=(left, right), speed_limit=10.0,
        )
        net.add_lane("a", "b", lane)
    return Track("sine-road", net, [("a", "b")], lanes, width, speed=10.0, closed=False)


# --- track specs ----------------------------------------------------------------------------------

SPEC_KEYS = {"name", "lanes", "lane_width", "speed", "closed", "segments"}
SEGMENT_KEYS = {"straight": {"type", "length"}, "arc": {"type", "radius", "angle_deg"},
                "fork": {"type", "radius", "angle_deg", "length"}}
FORK_MAX_ANGLE_DEG = 45.0
"""Steepest branch of a fork: each branch turns out by angle_deg, back parallel, and in again."""


def fork_branch(seg: dict, side: int) -> list[dict]:
    """The plain segments of one branch of a fork segment; side -1 is the left branch, +1 the right.

    A fork splits the road into two branches that meet again (a split and a merge): each branch turns
    away by angle_deg on an arc of the given radius, turns back parallel, runs `length` metres
    straight and returns the same way, so both end where a straight of 4 r sin(a) + length would.
    """
    r, a = seg["radius"], side * seg["angle_deg"]
    arc = lambda angle: {"type": "arc", "radius": r, "angle_deg": angle}
    return [arc(a), arc(-a), {"type": "straight", "length": seg["length"]}, arc(-a), arc(a)]


def fork_chord(seg: dict) -> float:
    """Distance along the road from a fork's split to its merge [m]."""
    return 4.0 * seg["radius"] * math.sin(math.radians(seg["angle_deg"])) + seg["length"]


def fork_separation(seg: dict) -> float:
    """Distance between the centre lines of a fork's two branches where they run parallel [m]."""
    return 4.0 * seg["radius"] * (1.0 - math.cos(math.radians(seg["angle_deg"])))


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TrackSpecError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def validate_spec(data: Any, source: str = "track spec") -> dict:
    """Check a track spec and return it normalised; errors name the segment and the problem."""
    if not isinstance(data, Mapping):
        raise TrackSpecError(f"{source}: expected a mapping with 'segments', got {type(data).__name__}")
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise TrackSpecError(f"{source}: unknown key {unknown[0]!r}; valid keys are: {', '.join(sorted(SPEC_KEYS))}")
    lanes = data.get("lanes", 1)
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= 4:
        raise TrackSpecError(f"{source}: 'lanes' must be an integer from 1 to 4, got {lanes!r}")
    width = _number(data.get("lane_width", 4.0), f"{source}: 'lane_width'")
    if not 2.5 <= width <= 6.0:
        raise TrackSpecError(f"{source}: 'lane_width' must be between 2.5 and 6 m, got {width}")
    speed = _number(data.get("speed", 10.0), f"{source}: 'speed'")
    if not 1.0 <= speed <= 30.0:
        raise TrackSpecError(f"{source}: 'speed' must be between 1 and 30 m/s, got {speed}")
    closed = data.get("closed", True)
    if not isinstance(closed, bool):
        raise TrackSpecError(f"{source}: 'closed' must be true or false, got {closed!r}")
    segments = data.get("segments")
    if not isinstance(segments, list) or not segments:
        raise TrackSpecError(f"{source}: 'segments' must be a non-empty list of straight/arc segments")
    half_road = 0.5 * (lanes - 1) * width
    out = []
    for i, seg in enumerate(segments):
        where = f"{source}: segment {i}"
        if not isinstance(seg, Mapping) or seg.get("type") not in SEGMENT_KEYS:
            kind = seg.get("type") if isinstance(seg, Mapping) else seg
            raise TrackSpecError(f"{where}: 'type' must be 'straight', 'arc' or 'fork', got {kind!r}")
        kind = seg["type"]
        where = f"{where} ({kind})"
        bad = sorted(set(seg) - SEGMENT_KEYS[kind])
        missing = sorted(SEGMENT_KEYS[kind] - set(seg))
        if bad:
            raise TrackSpecError(f"{where}: unknown key {bad[0]!r}; valid keys are: {', '.join(sorted(SEGMENT_KEYS[kind]))}")
        if missing:
            raise TrackSpecError(f"{where}: missing {missing[0]!r}")
        if kind == "straight":
            length = _number(seg["length"], f"{where}: 'length'")
            if length <= 0:
                raise TrackSpecError(f"{where}: 'length' must be positive, got {length}")
            out.append({"type": "straight", "length": length})
        elif kind == "fork":
            out.append(_validate_fork(seg, where, half_road, lanes * width))
        else:
            radius = _number(seg["radius"], f"{where}: 'radius'")
            angle = _number(seg["angle_deg"], f"{where}: 'angle_deg'")
            if not (0 < abs(angle) < 180):
                raise TrackSpecError(
                    f"{where}: 'angle_deg' must be non-zero and under 180 degrees either way "
                    f"(split longer turns into several arcs), got {angle}"
                )
            if radius - half_road < MIN_LANE_RADIUS_M:
                raise TrackSpecError(
                    f"{where}: radius {radius} m leaves the innermost lane a radius of "
                    f"{radius - half_road:.1f} m, under the minimum {MIN_LANE_RADIUS_M} m"
                )
            out.append({"type": "arc", "radius": radius, "angle_deg": angle})
    name = str(data.get("name", "custom"))
    spec = {"name": name, "lanes": lanes, "lane_width": width, "speed": speed, "closed": closed, "segments": out}
    _check_geometry(spec, source)
    return spec


def _validate_fork(seg: Mapping, where: str, half_road: float, road: float) -> dict:
    radius = _number(seg["radius"], f"{where}: 'radius'")
    angle = _number(seg["angle_deg"], f"{where}: 'angle_deg'")
    length = _number(seg["length"], f"{where}: 'length'")
    if not 5.0 <= angle <= FORK_MAX_ANGLE_DEG:
        raise TrackSpecError(f"{where}: 'angle_deg' must be 5..{FORK_MAX_ANGLE_DEG:g} degrees (each branch turns "
                             f"out by it, one left and one right), got {angle}")
    if radius - half_road < MIN_LANE_RADIUS_M:
        raise TrackSpecError(f"{where}: radius {radius} m leaves the innermost lane a radius of "
                             f"{radius - half_road:.1f} m, under the minimum {MIN_LANE_RADIUS_M} m")
    if length < 5.0:
        raise TrackSpecError(f"{where}: 'length' (the branches' parallel straight) must be at least 5 m, got {length}")
    out = {"type": "fork", "radius": radius, "angle_deg": angle, "length": length}
    if fork_separation(out) < road + 4.0:
        raise TrackSpecError(f"{where}: the branches run {fork_separation(out):.1f} m apart, under a road width plus "
                             f"4 m ({road + 4.0:.1f} m); raise radius or angle_deg")
    return out


def _reference_line(spec: dict, step: float = 1.0):
    """Sample the road's reference (middle) line, about `step` metres apart.

    Returns points, segment ids, the end pose, each sample's position along the road (in samples)
    and the road's length in samples. A fork is sampled along both of its branches, each sample
    placed along the road by its projection on the fork's chord; without forks the positions are
    0, 1, 2, ...
    """
    x = y = h = 0.0
    pts, ids, along = [], [], []
    for i, seg in enumerate(spec["segments"]):
        k = float(len(along) and math.floor(along[-1]) + 1)
        if seg["type"] == "fork":
            c, sn = math.cos(h), math.sin(h)
            for side in (-1, 1):
                bpts, _, _, _, _ = _reference_line({"segments": fork_branch(seg, side)}, step)
                for bx, by in bpts:  # the branch's frame starts at (0, 0) heading +x: rotate it into place
                    pts.append((x + bx * c - by * sn, y + bx * sn + by * c))
                    ids.append(i)
                    along.append(k + bx / step)
            chord = fork_chord(seg)
            x, y = x + chord * c, y + chord * sn
            continue
        if seg["type"] == "straight":
            n = max(1, int(math.ceil(seg["length"] / step)))
            for j in range(n):
                d = seg["length"] * j / n
                pts.append((x + d * math.cos(h), y + d * math.sin(h)))
                ids.append(i)
                along.append(k + j)
            x += seg["length"] * math.cos(h)
            y += seg["length"] * math.sin(h)
        else:
            r, a = seg["radius"], math.radians(seg["angle_deg"])
            sign = 1.0 if a > 0 else -1.0
            cx, cy = x - sign * r * math.sin(h), y + sign * r * math.cos(h)
            n = max(1, int(math.ceil(r * abs(a) / step)))
            for j in range(n):
                hj = h + a * j / n
                pts.append((cx + sign * r * math.sin(hj), cy - sign * r * math.cos(hj)))
                ids.append(i)
                along.append(k + j)
            h += a
            x, y = cx + sign * r * math.sin(h), cy - sign * r * math.cos(h)
    total = float(len(along) and math.floor(along[-1]) + 1)
    return np.array(pts), np.array(ids), (x, y, h), np.array(along, float), total


def _check_geometry(spec: dict, source: str) -> None:
    pts, ids, (x, y, h), along, n = _reference_line(spec)
    if spec["closed"]:
        gap = math.hypot(x, y)
        turn = math.degrees(wrap_angle(h))
        if gap > 0.5 or abs(turn) > 0.5:
            raise TrackSpecError(
                f"{source}: a closed track must end where it starts, heading the same way; it ends "
                f"{gap:.2f} m from its start at ({x:.2f}, {y:.2f}) and {turn:.1f} degrees off its start heading "
                "(set 'closed: false' for an open road)"
            )
    # No two parts of the road may come closer than a road width plus a margin, unless they are
    # neighbours along the track (a fork's two branches are neighbours: they run side by side).
    road = spec["lanes"] * spec["lane_width"]
    clearance = road + 4.0
    d2 = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1)
    sep = np.abs(along[:, None] - along[None, :])
    if spec["closed"]:
        sep = np.minimum(sep, n - sep)
    near = (d2 < clearance**2) & (sep > 2.5 * clearance)
    if near.any():
        i, j = np.argwhere(near)[0]
        a, b = sorted((int(ids[i]), int(ids[j])))
        raise TrackSpecError(
            f"{source}: segment {a} and segment {b} come within {math.sqrt(d2[i, j]):.1f} m of each "
            f"other; the road needs {clearance:.1f} m of clearance (it would intersect itself)"
        )


def _add_segment(net: RoadNetwork, a: str, b: str, pose: tuple[float, float, float], seg: dict,
                 spec: dict) -> tuple[float, float, float]:
    """Add every lane of a straight or arc segment from node a to node b; returns the end pose."""
    lanes, w = spec["lanes"], spec["lane_width"]
    offsets = [(k - 0.5 * (lanes - 1)) * w for k in range(lanes)]
    x, y, h = pose
    fwd = np.array([math.cos(h), math.sin(h)])
    right = np.array([-math.sin(h), math.cos(h)])
    p = np.array([x, y])
    for k, o in enumerate(offsets):
        types = (
            LineType.CONTINUOUS if k == 0 else LineType.STRIPED,
            LineType.CONTINUOUS if k == lanes - 1 else LineType.NONE,
        )
        if seg["type"] == "straight":
            lane = StraightLane(p + o * right, p + o * right + seg["length"] * fwd, width=w,
                                line_types=types, speed_limit=spec["speed"])
        else:
            a_rad = math.radians(seg["angle_deg"])
            if a_rad > 0:  # right turn: centre on the right, clockwise on screen (y down)
                c = p + seg["radius"] * right
                r = seg["radius"] - o
                phi0 = math.atan2(-right[1], -right[0])
            else:
                c = p - seg["radius"] * right
                r = seg["radius"] + o
                phi0 = math.atan2(right[1], right[0])
            lane = CircularLane(c, r, phi0, phi0 + a_rad, clockwise=a_rad > 0, width=w,
                                line_types=types, speed_limit=spec["speed"])
        net.add_lane(a, b, lane)
    if seg["type"] == "straight":
        x, y = p + seg["length"] * fwd
    else:
        a_rad = math.radians(seg["angle_deg"])
        sign = 1.0 if a_rad > 0 else -1.0
        cx, cy = p + sign * seg["radius"] * right
        h += a_rad
        x, y = cx + sign * seg["radius"] * math.sin(h), cy - sign * seg["radius"] * math.cos(h)
    return x, y, h


def build_network(spec: dict) -> tuple[RoadNetwork, list[str], dict[int, dict[int, list[tuple[str, str]]]]]:
    """The highway-env network of a validated spec.

    Returns the network, the node at the start of each segment (plus the end node) and, per fork
    segment, the edges of its left (-1) and right (+1) branch. Segment i runs from nodes[i] to
    nodes[i + 1]; a fork's branches from its split nodes[i] to its merge nodes[i + 1].
    """
    net = IndexedRoadNetwork()
    segs = spec["segments"]
    nodes = [f"n{i}" for i in range(len(segs))] + (["n0"] if spec["closed"] else [f"n{len(segs)}"])
    branches: dict[int, dict[int, list[tuple[str, str]]]] = {}
    pose = (0.0, 0.0, 0.0)
    for i, seg in enumerate(segs):
        if seg["type"] != "fork":
            pose = _add_segment(net, nodes[i], nodes[i + 1], pose, seg, spec)
            continue
        branches[i] = {}
        for side, tag in ((-1, "L"), (1, "R")):
            parts = fork_branch(seg, side)
            inner = [f"{nodes[i]}{tag}{j}" for j in range(1, len(parts))]
            chain = [nodes[i], *inner, nodes[i + 1]]
            end = pose
            for j, part in enumerate(parts):
                end = _add_segment(net, chain[j], chain[j + 1], end, part, spec)
            branches[i][side] = list(itertools.pairwise(chain))
        # Both branches end where the chord does; continue from the chord's end exactly, so that a
        # spec reads the same with a fork as with the straight of its chord.
        x, y, h = pose
        chord = fork_chord(seg)
        pose = (x + chord * math.cos(h), y + chord * math.sin(h), h)
    return net, nodes, branches


def track_from_spec(data: Mapping, source: str = "track spec") -> Track:
    """Build a Track (highway-env lanes for every lane) from a validated segment spec without forks
    (a spec with forks is a road network: envs.forks.fork_network_from_spec)."""
    spec = validate_spec(data, source)
    if any(seg["type"] == "fork" for seg in spec["segments"]):
        raise TrackSpecError(f"{source}: the spec has forks, so it is a road network with routes, not one track "
                             "(build it with envs.forks.fork_network_from_spec)")
    net, nodes, _ = build_network(spec)
    route = [(nodes[i], nodes[i + 1]) for i in range(len(spec["segments"]))]
    return Track(spec["name"], net, route, spec["lanes"], spec["lane_width"], spec["speed"], spec["closed"], spec=spec)


def load_track_file(path: str | Path):
    """Load a track spec from a .json, .yaml or .yml file: a Track, or an envs.forks.ForkNetwork when
    the spec has fork segments."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"track file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise TrackSpecError(f"{path}: track files must end in .json, .yaml or .yml")
    except (json.JSONDecodeError, ValueError) as exc:
        if isinstance(exc, TrackSpecError):
            raise
        raise TrackSpecError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError
        raise TrackSpecError(f"{path}: not valid YAML: {exc}") from exc
    if isinstance(data, Mapping) and "name" not in data:
        data = {**data, "name": path.stem}
    segments = data.get("segments") if isinstance(data, Mapping) else None
    if isinstance(segments, list) and any(isinstance(g, Mapping) and g.get("type") == "fork" for g in segments):
        from .forks import fork_network_from_spec  # a spec with forks is a network of routes

        return fork_network_from_spec(data, source=str(path))
    return track_from_spec(data, source=str(path))


@functools.lru_cache(maxsize=16)
def builtin_track(name: str) -> Track:
    """One of BUILTIN_TRACKS (cached: tracks are immutable once built)."""
    if name == "sine-road":
        return _sine_road()
    if name in ("racetrack", "racetrack-large", "oval"):
        return _highway_env_layout(name)
    raise ValueError(f"unknown track {name!r}; built-in tracks are: {', '.join(BUILTIN_TRACKS)}")
