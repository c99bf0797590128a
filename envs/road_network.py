"""highway-env's `RoadNetwork` and `Road`, with the same results for less work.

`IndexedRoadNetwork`: a network whose closest-lane lookup prunes lanes that cannot be the closest.

highway-env's `Vehicle.on_state_update` asks the network for the closest lane after every
integration step of every vehicle: `RoadNetwork.get_closest_lane_index` evaluates
`lane.distance_with_heading(position, heading)` on every lane and takes `np.argmin`. With traffic
that was most of an environment step. `IndexedRoadNetwork` returns the same index, always:

- For every lane of a known type it has a lower bound of highway-env's distance: the Euclidean
  distance to the lane's centre line. highway-env's distance is |lateral| + the longitudinal
  overflow past either end + |heading difference|, which is at least that (for a `StraightLane`,
  sqrt(lat^2 + over^2) <= |lat| + over; for a `CircularLane` the point is |R - r| from the circle
  at its own angle and, past an end, at most R |angle past the end| further along the circle from
  that end; a `SineLane` lies within its amplitude of its base segment). Other lane types, and
  degenerate lanes, get no bound: they are always evaluated.
- The plane is cut into square cells (2 m). The first query in a cell computes the bounds at the
  centres of its block of 4 x 4 cells for all lanes at once and lowers them by half a cell's
  diagonal (a distance to a set changes by at most the distance moved), so they hold anywhere in
  the cell; each cell keeps its lanes in order of increasing bound, ties in the network's order.
  Queries outside the network's bounding box (plus a margin) compute the bounds at the point
  itself, uncached.
- A query evaluates highway-env's own `distance_with_heading` (the same floats) lane by lane in that
  order and stops when the next bound exceeds the best exact distance; the lanes not evaluated are
  then strictly farther. Among equal distances the lane earliest in the network's order wins, as
  with `np.argmin`. Bounds are lowered by a tolerance (1e-6 m) far above the rounding of either
  computation.
- Anything unusual (a non-finite position, heading or distance, or a cell's short list of
  candidates running out) falls back to highway-env's own lookup.

The index is built on the first lookup and dropped by `add_lane` (edit the network through it, not
through `graph`), and is not pickled.

`TrafficRoad`: a Road that skips work whose outcome is known, again with highway-env's results:

- `step` skips the collision checks of pairs of vehicles that highway-env's own check would reject
  at once (`RoadObject._is_colliding` first compares the distance of the centres with half the sum
  of the diagonals plus one speed x dt); it finds them for all pairs at once and makes the very
  same calls, in the same order, for the other pairs.
- During `act` (no vehicle moves), `neighbour_vehicles` (an IDM vehicle's search for the vehicles
  ahead and behind on a lane) skips the vehicles that cannot be on that lane: `lane.on_lane(...,
  margin=1)` needs |lateral| <= width / 2 + 1 and -5 <= longitudinal < length + 5 m, so a vehicle
  farther than width / 2 + 1 + 5 m from the lane's centre line is not on it (the same lower bounds
  as above, for all vehicles and lanes at once). The other vehicles go through highway-env's loop.

- On float lanes (every lane of the network has float functions, envs/lane_geometry.py; no road
  objects, no connected-lane search: `float_lanes`) the neighbour search computes on floats over
  the vehicles' positions taken once per `act`, the collision pre-check is highway-env's own
  comparison on floats, and the closest-lane lookup evaluates the lanes' float distances. The
  traffic vehicles themselves (envs/traffic.py) then act and step on floats too.

Both mirror highway-env 1.12.1 (the pinned version); with any other version, with road objects
(obstacles), connected-lane neighbour search, or vehicle classes with their own collision checks,
the Road's own methods run.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
from highway_env.road.lane import CircularLane, SineLane, StraightLane
from highway_env.road.road import LaneIndex, Road, RoadNetwork
from highway_env.vehicle.objects import Landmark, RoadObject

from .lane_geometry import geometry

CELL_M = 2.0
"""Side of the index's square cells [m]."""

TOLERANCE_M = 1e-6
"""Every lower bound is lowered by this much, far above the floating-point error of either side."""

BLOCK = 4
"""Cells are filled BLOCK x BLOCK at a time (one vectorised pass), on the first query in any of them."""

GRID_MARGIN_M = 60.0
"""The cells cover the network's bounding box widened by this much; farther queries are uncached."""

MIRRORED_HIGHWAY_ENV = "1.12.1"
"""The highway-env version whose Road.step and Road.neighbour_vehicles TrafficRoad mirrors."""

_MIRRORS = version("highway-env") == MIRRORED_HIGHWAY_ENV


class IndexedRoadNetwork(RoadNetwork):
    """highway-env's RoadNetwork with an exact, pruned `get_closest_lane_index` (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self._lane_index: _LaneIndex | None = None

    def add_lane(self, _from: str, _to: str, lane) -> None:
        super().add_lane(_from, _to, lane)
        self._lane_index = None

    def index(self) -> _LaneIndex:
        """The lane index (built on first use)."""
        if self._lane_index is None:
            self._lane_index = _LaneIndex(self)
        return self._lane_index

    def get_closest_lane_index(self, position: np.ndarray, heading: float | None = None) -> LaneIndex:
        index = self._lane_index
        if index is None:
            index = self.index()
        return index.closest(position, heading)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_lane_index"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_lane_index", None)


class _LaneIndex:
    """Lane geometry as arrays, lower bounds of highway-env's distance, and the cell cache."""

    def __init__(self, network: RoadNetwork, cell_m: float | None = None):
        self.network = network
        self.keys: list[LaneIndex] = []
        self.lanes: list = []
        for _from, to_dict in network.graph.items():
            for _to, lanes in to_dict.items():
                for _id, lane in enumerate(lanes):
                    self.keys.append((_from, _to, _id))
                    self.lanes.append(lane)
        n = len(self.lanes)
        seg, arc = [], []
        lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        for i, lane in enumerate(self.lanes):
            kind = _classify(lane)
            if kind == "segment":
                start, end = np.asarray(lane.start, float), np.asarray(lane.end, float)
                pad = abs(float(lane.amplitude)) if type(lane) is SineLane else 0.0
                seg.append((i, start, end - start, pad))
                lo = np.minimum(lo, np.minimum(start, end) - pad)
                hi = np.maximum(hi, np.maximum(start, end) + pad)
            elif kind == "arc":
                c, r = np.asarray(lane.center, float), float(lane.radius)
                a0, a1 = float(lane.start_phase), float(lane.end_phase)
                arc.append((i, c, r, a0, a1))
                lo, hi = np.minimum(lo, c - r), np.maximum(hi, c + r)
        self.n = n
        self.column = {key: i for i, key in enumerate(self.keys)}
        self.geometries = [geometry(lane) for lane in self.lanes]
        """Each lane's float functions (envs.lane_geometry), None where it has none."""
        self.all_geometry = n > 0 and all(g is not None for g in self.geometries)
        # Farthest a position on the lane (AbstractLane.on_lane with margin 1) can be from its
        # centre line: half its width + 1 laterally, VEHICLE_LENGTH past either end.
        self.on_lane_reach = np.array([
            0.5 * float(lane.width) + 1.0 + float(lane.VEHICLE_LENGTH) + TOLERANCE_M if _classify(lane) else np.inf
            for lane in self.lanes
        ])
        self.seg_i = np.array([s[0] for s in seg], dtype=np.intp)
        self.seg_a = np.array([complex(*s[1]) for s in seg], complex)
        self.seg_d = np.array([complex(*s[2]) for s in seg], complex)
        self.seg_conj_d = np.conj(self.seg_d)
        self.seg_dd = np.abs(self.seg_d) ** 2
        self.seg_pad = np.array([s[3] for s in seg], float)
        self.arc_i = np.array([a[0] for a in arc], dtype=np.intp)
        self.arc_c = np.array([complex(*a[1]) for a in arc], complex)
        self.arc_r = np.array([a[2] for a in arc], float)
        a0 = np.array([a[3] for a in arc], float)
        a1 = np.array([a[4] for a in arc], float)
        sweep = a1 - a0
        sign = np.sign(sweep)
        u0, u1 = np.exp(1j * a0), np.exp(1j * a1)
        self.arc_w0 = sign * np.conj(u0)  # Im(d w0) = sign cross(u0, d)
        self.arc_w1 = -sign * np.conj(u1)  # Im(d w1) = sign cross(d, u1)
        self.arc_e0 = self.arc_c + self.arc_r * u0
        self.arc_e1 = self.arc_c + self.arc_r * u1
        # Under half a turn the arc's sector is the intersection of two half-planes; otherwise the
        # bound is the distance to the whole circle.
        self.arc_sector = (np.abs(sweep) < np.pi - 1e-9) & (sweep != 0.0)
        # The cells: a grid anchored at the bounding box's corner.
        self.cell = float(CELL_M if cell_m is None else cell_m)
        self.half_diagonal = math.sqrt(0.5) * self.cell
        if np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)):
            self.x0, self.y0 = float(lo[0] - GRID_MARGIN_M), float(lo[1] - GRID_MARGIN_M)
            self.nx = math.ceil((hi[0] - lo[0] + 2 * GRID_MARGIN_M) / self.cell)
            self.ny = math.ceil((hi[1] - lo[1] + 2 * GRID_MARGIN_M) / self.cell)
        else:
            self.x0 = self.y0 = 0.0
            self.nx = self.ny = 0
        self.cells: dict[int, list[tuple[float, int]]] = {}
        self.fallbacks = 0
        """Lookups answered by highway-env's own method (for tests and diagnostics)."""

    # --- bounds --------------------------------------------------------------------------------
    def lower_bounds(self, points: np.ndarray) -> np.ndarray:
        """(m, n) lower bounds of highway-env's distance from each point to each lane, any heading;
        -inf for lanes without a bound. Exact Euclidean distances to the centre lines, no tolerance."""
        p = np.asarray(points, float).reshape(-1, 2)
        z = (p[:, 0] + 1j * p[:, 1])[:, None]  # points as complex numbers: fewer array operations
        out = np.full((len(p), self.n), -np.inf)
        if len(self.seg_i):
            d = z - self.seg_a
            t = np.clip((d * self.seg_conj_d).real / self.seg_dd, 0.0, 1.0)
            out[:, self.seg_i] = np.abs(d - t * self.seg_d) - self.seg_pad
        if len(self.arc_i):
            d = z - self.arc_c
            ring = np.abs(np.abs(d) - self.arc_r)
            # cross(u0, d) and cross(d, u1), times the sweep's sign: both >= 0 inside the sector
            inside = ((d * self.arc_w0).imag >= 0.0) & ((d * self.arc_w1).imag >= 0.0)
            ends = np.minimum(np.abs(z - self.arc_e0), np.abs(z - self.arc_e1))
            out[:, self.arc_i] = np.where(self.arc_sector & ~inside, ends, ring)
        return out

    def _candidates(self, points: np.ndarray, slack: float, truncate: bool) -> list[list[tuple[float, int]]]:
        """For each point, the lanes in order of increasing lower bound (ties in network order),
        valid anywhere within `slack` of the point. With `truncate`, only the plausible lanes, then
        a (bound, -1) sentinel that stands for all the others."""
        g = self.lower_bounds(points)
        lb = g - (slack + TOLERANCE_M + 1e-12 * np.abs(points).sum(axis=1))[:, None]
        order = np.argsort(lb, axis=1, kind="stable")
        lb = np.take_along_axis(lb, order, axis=1)
        if truncate:
            # The closest lane is within ~sqrt(2) x its Euclidean distance + pi (the heading term)
            # of any point; lanes past a generous cut are left to the sentinel (highway-env's lookup).
            g_min = np.where(np.isfinite(g), g, np.inf).min(axis=1, initial=np.inf)
            g_min = np.where(np.isfinite(g_min), np.maximum(g_min, 0.0), 0.0)
            keep = (lb <= (1.5 * (g_min + slack) + 4.5)[:, None]).sum(axis=1)
        else:
            keep = np.full(len(lb), self.n)
        out = []
        for row_lb, row_order, k in zip(lb.tolist(), order.tolist(), keep.tolist()):
            cands = list(zip(row_lb[:k], row_order[:k]))
            if k < self.n:
                cands.append((row_lb[k], -1))
            out.append(cands)
        return out

    def _build_block(self, ix: int, iy: int) -> None:
        """Candidates for the BLOCK x BLOCK cells of the block holding cell (ix, iy), in one pass."""
        bx, by = ix - ix % BLOCK, iy - iy % BLOCK
        cells = [(i, j) for i in range(bx, min(bx + BLOCK, self.nx)) for j in range(by, min(by + BLOCK, self.ny))]
        centres = np.array([(self.x0 + (i + 0.5) * self.cell, self.y0 + (j + 0.5) * self.cell) for i, j in cells])
        for (i, j), cands in zip(cells, self._candidates(centres, self.half_diagonal, truncate=True)):
            self.cells[i * self.ny + j] = cands

    # --- lookup --------------------------------------------------------------------------------
    def closest(self, position: np.ndarray, heading: float | None) -> LaneIndex:
        x, y = float(position[0]), float(position[1])
        if not (math.isfinite(x) and math.isfinite(y) and (heading is None or math.isfinite(heading))):
            return self._fallback(position, heading)
        fx = (x - self.x0) / self.cell
        fy = (y - self.y0) / self.cell
        if 0.0 <= fx < self.nx and 0.0 <= fy < self.ny:
            ix, iy = int(fx), int(fy)
            key = ix * self.ny + iy
            cands = self.cells.get(key)
            if cands is None:
                self._build_block(ix, iy)
                cands = self.cells[key]
        else:
            cands = self._candidates(np.array([[x, y]]), 0.0, truncate=False)[0]
        lanes, geoms = self.lanes, self.geometries if heading is not None else ()
        best, best_i = math.inf, -1
        for lb, i in cands:
            if lb > best:
                break
            if i < 0:
                return self._fallback(position, heading)
            g = geoms[i] if geoms else None
            d = g.distance_with_heading(x, y, heading) if g is not None else lanes[i].distance_with_heading(
                position, heading)
            if d < best or (d == best and i < best_i):
                best, best_i = d, i
            elif math.isnan(d):  # let highway-env decide
                return self._fallback(position, heading)
        if best_i < 0:
            return self._fallback(position, heading)
        return self.keys[best_i]

    def _fallback(self, position, heading) -> LaneIndex:
        self.fallbacks += 1
        return RoadNetwork.get_closest_lane_index(self.network, position, heading)


def _classify(lane) -> str | None:
    """'segment' or 'arc' for the lane types with a bound, None for any other (always evaluated)."""
    try:
        if type(lane) in (StraightLane, SineLane):
            d = np.asarray(lane.end, float) - np.asarray(lane.start, float)
            ok = np.all(np.isfinite(d)) and float(np.hypot(*d)) > 0.0
            if type(lane) is SineLane:
                ok = ok and math.isfinite(float(lane.amplitude))
            return "segment" if ok else None
        if type(lane) is CircularLane:
            r = float(lane.radius)
            a0, a1 = float(lane.start_phase), float(lane.end_phase)
            ok = (math.isfinite(r) and r > 0.0 and math.isfinite(a0) and math.isfinite(a1)
                  and np.all(np.isfinite(lane.center)) and float(lane.length) >= 0.0)
            return "arc" if ok else None
    except (AttributeError, TypeError, ValueError):
        return None
    return None


class TrafficRoad(Road):
    """highway-env's Road, skipping checks whose answer is known (see the module)."""

    _maybe_on_lane: np.ndarray | None = None
    """During act: (vehicle, lane) pairs of the network's index that may satisfy on_lane."""

    def _fast(self) -> bool:
        return _MIRRORS and not self.objects and len(self.vehicles) >= 3

    _round: list | None = None
    """During act on float lanes: (vehicle, x, y) of the vehicles a neighbour search looks at."""

    def float_lanes(self) -> bool:
        """Every lane has float functions (envs.lane_geometry), nothing but vehicles is on the road
        and neighbours are searched on one lane: the neighbour search and the traffic vehicles
        (envs.traffic) compute on floats."""
        network = self.network
        if type(network) is not IndexedRoadNetwork or self.objects or self.neighbour_vehicles_connected_lanes:
            return False
        index = network._lane_index or network.index()
        return _MIRRORS and index.all_geometry

    def act(self) -> None:
        self._maybe_on_lane = None
        network = self.network
        if self.float_lanes():
            # no vehicle moves during act: their float positions once (the search needs no pruning)
            self._round = [(v, float(v.position[0]), float(v.position[1])) for v in self.vehicles
                           if not isinstance(v, Landmark)]
            try:
                return super().act()
            finally:
                self._round = None
        if self._fast() and not self.neighbour_vehicles_connected_lanes and isinstance(network, IndexedRoadNetwork):
            index = network.index()
            pos = np.array([v.position for v in self.vehicles], dtype=float)
            with np.errstate(invalid="ignore"):
                self._maybe_on_lane = ~(index.lower_bounds(pos) > index.on_lane_reach)  # NaN: maybe
        try:
            super().act()
        finally:
            self._maybe_on_lane = None

    def neighbour_vehicles(self, vehicle, lane_index: LaneIndex = None):
        if self.float_lanes():
            return self._neighbours_on_floats(vehicle, lane_index)
        maybe = self._maybe_on_lane
        index = self.network._lane_index if maybe is not None else None
        lane_index = lane_index or vehicle.lane_index
        col = index.column.get(lane_index) if index is not None and lane_index else None
        if col is None or len(self.vehicles) != len(maybe) or self.objects or self.neighbour_vehicles_connected_lanes:
            return super().neighbour_vehicles(vehicle, lane_index)
        # highway-env 1.12.1's Road.neighbour_vehicles without connected lanes, over the vehicles
        # that may be on the lane.
        lane = self.network.get_lane(lane_index)
        if lane is not index.lanes[col]:
            return super().neighbour_vehicles(vehicle, lane_index)
        s = lane.local_coordinates(vehicle.position)[0]

        def on_lane():
            for v, may in zip(self.vehicles, maybe[:, col].tolist()):
                if not may or v is vehicle or isinstance(v, Landmark):
                    continue
                s_v, lat_v = lane.local_coordinates(v.position)
                if lane.on_lane(v.position, s_v, lat_v, margin=1):
                    yield v, s_v

        return _front_and_rear(s, on_lane())

    def _neighbours_on_floats(self, vehicle, lane_index: LaneIndex = None):
        """highway-env 1.12.1's Road.neighbour_vehicles without connected lanes, on floats."""
        lane_index = lane_index or vehicle.lane_index
        if not lane_index:
            return None, None
        lane = geometry(self.network.get_lane(lane_index))
        s = lane.local(float(vehicle.position[0]), float(vehicle.position[1]))[0]
        others = self._round
        if others is None:
            others = [(v, float(v.position[0]), float(v.position[1])) for v in self.vehicles
                      if not isinstance(v, Landmark)]

        def on_lane():
            for v, x, y in others:
                if v is not vehicle:
                    s_v, lat_v = lane.local(x, y)
                    if lane.on_lane(s_v, lat_v, 1):
                        yield v, s_v

        return _front_and_rear(s, on_lane())

    def step(self, dt: float) -> None:
        vehicles = self.vehicles
        if not self._fast() or not all(_stock_collisions(v) for v in vehicles):
            return super().step(dt)
        for vehicle in vehicles:
            vehicle.step(dt)
        if self.float_lanes():
            # highway-env's pre-check itself, on floats (|p_j - p_i| as np.linalg.norm computes it)
            state = [(float(v.position[0]), float(v.position[1]), v.diagonal, v.speed * dt) for v in vehicles]
            for i, (xi, yi, di, reach) in enumerate(state):
                for j in range(i + 1, len(state)):
                    xj, yj, dj, _ = state[j]
                    dx, dy = xj - xi, yj - yi
                    if not math.sqrt(dx * dx + dy * dy) > (di + dj) / 2 + reach:
                        vehicles[i].handle_collisions(vehicles[j], dt)
            return
        # The pre-check of vehicles[i]._is_colliding(vehicles[j], dt): |p_j - p_i| > (diag_i +
        # diag_j) / 2 + speed_i dt answers "no collision" and handle_collisions then does nothing.
        # Skipped here only when it holds with a margin (NaNs are never skipped).
        pos = np.array([v.position for v in vehicles], dtype=float)
        half = 0.5 * np.array([v.diagonal for v in vehicles], dtype=float)
        reach = np.array([v.speed for v in vehicles], dtype=float) * dt
        dist = np.hypot(pos[None, :, 0] - pos[:, None, 0], pos[None, :, 1] - pos[:, None, 1])
        limit = half[:, None] + half[None, :] + reach[:, None]
        with np.errstate(invalid="ignore"):
            skip = dist > limit + (TOLERANCE_M + 1e-12 * (np.abs(pos).max() + np.abs(limit).max()))
        for i, j in np.argwhere(np.triu(~skip, 1)).tolist():  # row by row: highway-env's order
            vehicles[i].handle_collisions(vehicles[j], dt)


def _front_and_rear(s: float, on_lane):
    """highway-env 1.12.1's choice in Road.neighbour_vehicles among the (vehicle, s_v) on the lane, in
    the road's order: ahead the nearest at s_v >= s (the last of equals), behind the nearest at s_v < s
    (the first of equals)."""
    s_front = s_rear = None
    v_front = v_rear = None
    for v, s_v in on_lane:
        if s <= s_v and (s_front is None or s_v <= s_front):
            s_front = s_v
            v_front = v
        if s_v < s and (s_rear is None or s_v > s_rear):
            s_rear = s_v
            v_rear = v
    return v_front, v_rear


def _stock_collisions(v) -> bool:
    cls = type(v)
    return cls.handle_collisions is RoadObject.handle_collisions and cls._is_colliding is RoadObject._is_colliding


__all__ = ["CELL_M", "TOLERANCE_M", "IndexedRoadNetwork", "TrafficRoad"]
