"""Road networks with forks: routes, commands and procedural fork networks.

A fork segment (`envs.tracks.fork_branch`) splits the road into a left and a right branch that merge
again further on. A `ForkNetwork` is the highway-env network of a spec with forks. A route takes one
branch at every fork it passes, and `ForkNetwork.route` turns it into an ordinary open `Track` (a closed
network is unrolled lap after lap, each lap with branches of its own), which the car, the teacher and
every metric follow as on any other track: leaving the route's branch is leaving its road. The camera
draws the whole network (`RoadMap`), so a frame shows the fork but not which branch the route takes;
the command says it.

Commands, as in conditional imitation learning (Codevilla et al. 2018): FOLLOW away from forks, LEFT or
RIGHT from `COMMAND_DISTANCE_M` before a fork's split until its merge.

Procedural fork networks (`fork_network(seed)`): the procedural generator (`envs.procedural`) draws a
loop of 4 to 6 corners and 900 to 2,000 m from the seed, on one lane, and a fork goes on every straight
long enough for one. Seeds share the procedural tracks' disjoint training and test ranges.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from highway_env.road.lane import AbstractLane

from .procedural import procedural_spec
from .tracks import Track, TrackSpecError, build_network, fork_chord, fork_separation, validate_spec

COMMANDS = ("follow", "left", "right")
"""Command names by their integer code."""
FOLLOW, LEFT, RIGHT = 0, 1, 2
COMMAND_DISTANCE_M = 40.0
"""How far before a fork's split its command is given [m]."""
BRANCH_PARTS = 5
"""Route edges of one branch (out, back parallel, straight, back, in: envs.tracks.fork_branch)."""
FORK_STREAM = 0x464F524B
"""Keys the random stream of procedural fork geometry, apart from the track's own."""
FORK_BASE_CORNERS = (4, 7)
"""Corner counts of a procedural fork network's loop (4 to 6): fewer corners than a procedural track's,"""
FORK_BASE_LENGTH_M = (900.0, 2000.0)
"""... and a longer loop [m], so that its straights have room for forks."""
ROUTE_STREAM = 0x524F5554
"""Keys the random stream of an episode's route, apart from the reset's other draws."""


def side_command(side: int) -> int:
    """The command of a branch: LEFT for side -1, RIGHT for side +1."""
    return LEFT if side < 0 else RIGHT


@dataclass(eq=False)  # identity hash: a drawing keys the map-texture cache
class RoadMap:
    """What the camera draws of a road network: every lane of it, not only a route's."""

    name: str
    lanes: list[AbstractLane]

    def all_lanes(self) -> list[AbstractLane]:
        return self.lanes

    @functools.cached_property
    def _extent(self) -> tuple[float, float, float, float]:
        pts = []
        for lane in self.lanes:
            for s in np.linspace(0.0, lane.length, max(2, int(lane.length / 2.0) + 1)):
                for d in (-0.5 * lane.width, 0.5 * lane.width):
                    pts.append(lane.position(float(s), d))
        pts = np.array(pts)
        return (*pts.min(axis=0), *pts.max(axis=0))

    def bounds(self, margin: float = 0.0) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of every lane's road surface, widened by `margin`."""
        x0, y0, x1, y1 = self._extent
        return float(x0 - margin), float(y0 - margin), float(x1 + margin), float(y1 + margin)


@dataclass(frozen=True)
class Passage:
    """A fork on a route: the fork's segment, the branch taken, and where its split and merge lie along
    each lane's path of the route [m]."""

    segment: int
    side: int
    """-1: the left branch, +1: the right branch."""
    split_s: tuple[float, ...]
    merge_s: tuple[float, ...]

    @property
    def command(self) -> int:
        return side_command(self.side)


@dataclass(eq=False)
class Route:
    """A route through a ForkNetwork: the Track it drives and its fork passages in order."""

    track: Track
    sides: tuple[int, ...]
    passages: list[Passage]
    command_distance_m: float = COMMAND_DISTANCE_M

    def passage_at(self, lane: int, s: float) -> int | None:
        """Index of the passage whose command is in force at arc length s of `lane`'s path, else None."""
        for j, p in enumerate(self.passages):
            if p.split_s[lane] - self.command_distance_m <= s < p.merge_s[lane]:
                return j
            if s < p.split_s[lane]:
                return None
        return None

    def command_at(self, lane: int, s: float) -> int:
        """The command at arc length s of `lane`'s path: FOLLOW, LEFT or RIGHT."""
        j = self.passage_at(lane, s)
        return FOLLOW if j is None else self.passages[j].command

    def outcomes(self, lane: int, s: float, failed: bool) -> tuple[list[int], list[str]]:
        """The fork passages an episode that ended at arc length s of `lane`'s path attempted, in order:
        their commands and outcomes. A passage is attempted once the car reached its split; it is "passed"
        when the car reached its merge, "failed" when the episode failed between the two. One cut off
        between split and merge without a failure (the episode's step limit) is left out."""
        commands, outcomes = [], []
        for p in self.passages:
            if s < p.split_s[lane]:
                break
            if s >= p.merge_s[lane]:
                outcome = "passed"
            elif failed:
                outcome = "failed"
            else:
                break
            commands.append(p.command)
            outcomes.append(outcome)
        return commands, outcomes


@dataclass(eq=False)
class ForkNetwork:
    """A road network with forks, built from a validated spec; see the module docstring."""

    spec: dict
    network: object = field(init=False)
    nodes: list[str] = field(init=False)
    branches: dict[int, dict[int, list[tuple[str, str]]]] = field(init=False)
    drawing: RoadMap = field(init=False)

    def __post_init__(self) -> None:
        self.network, self.nodes, self.branches = build_network(self.spec)
        if not self.branches:
            raise TrackSpecError(f"{self.name}: a fork network needs at least one fork segment")
        lanes = [ln for a in self.network.graph for b in self.network.graph[a] for ln in self.network.graph[a][b]]
        self.drawing = RoadMap(self.name, lanes)

    name = property(lambda self: self.spec["name"])
    lanes = property(lambda self: self.spec["lanes"])
    lane_width = property(lambda self: self.spec["lane_width"])
    speed = property(lambda self: self.spec["speed"])
    closed = property(lambda self: self.spec["closed"])

    @property
    def forks(self) -> list[int]:
        """The fork segments, in driving order."""
        return sorted(self.branches)

    @property
    def lap_length_m(self) -> float:
        """Length of one pass through the network along the reference line, forks by their chord [m]."""
        return sum(fork_chord(s) if s["type"] == "fork" else
                   (s["length"] if s["type"] == "straight" else s["radius"] * math.radians(abs(s["angle_deg"])))
                   for s in self.spec["segments"])

    def route(self, sides: Sequence[int]) -> Route:
        """The Route taking branch sides[j] (-1 left, +1 right) at its j-th fork passage. On a closed
        network len(sides) must be a multiple of the number of forks (whole laps); on an open one, equal."""
        sides = tuple(int(v) for v in sides)
        n = len(self.forks)
        if any(v not in (-1, 1) for v in sides):
            raise ValueError(f"route sides must be -1 (left) or +1 (right), got {sides}")
        if not sides or len(sides) % n or (not self.closed and len(sides) != n):
            raise ValueError(f"{self.name} has {n} forks: a route needs {'a multiple of ' if self.closed else ''}"
                             f"{n} branch sides, got {len(sides)}")
        edges: list[tuple[str, str]] = []
        first_edge: list[int] = []
        for lap in range(len(sides) // n):
            for i, seg in enumerate(self.spec["segments"]):
                if seg["type"] == "fork":
                    first_edge.append(len(edges))
                    edges += self.branches[i][sides[len(first_edge) - 1]]
                else:
                    edges.append((self.nodes[i], self.nodes[i + 1]))
        track = Track(self.name, self.network, edges, self.lanes, self.lane_width, self.speed, closed=False,
                      spec=self.spec, drawing=self.drawing)
        passages = []
        for j, e0 in enumerate(first_edge):
            split, merge = [], []
            for path in track.paths:
                ids = path.edge_ids
                split.append(float(path.s[int(np.searchsorted(ids, e0))]))
                k = int(np.searchsorted(ids, e0 + BRANCH_PARTS))
                merge.append(float(path.s[k]) if k < len(ids) else path.length)
            passages.append(Passage(self.forks[j % n], sides[j], tuple(split), tuple(merge)))
        return Route(track, sides, passages)

    def random_route(self, rng: np.random.Generator, min_length_m: float) -> Route:
        """A route whose branches are drawn from `rng` (fair coins), at least min_length_m long on a
        closed network (whole laps), one pass on an open one."""
        n = len(self.forks)
        laps = max(1, math.ceil(min_length_m / self.lap_length_m)) if self.closed else 1
        return self.route(tuple(int(v) for v in np.where(rng.random(n * laps) < 0.5, -1, 1)))


def fork_network_from_spec(data: Mapping, source: str = "track spec") -> ForkNetwork:
    """A ForkNetwork from a track spec (a dict) with at least one fork segment."""
    return ForkNetwork(validate_spec(data, source))


def _place_forks(base: dict, rng: np.random.Generator) -> dict:
    """Procedural track spec `base` on one lane, with a fork on each straight long enough for one."""
    spec = {**base, "lanes": 1}
    road = spec["lane_width"]
    segments = []
    for seg in base["segments"]:
        if seg["type"] == "straight":
            angle = float(rng.uniform(18.0, 32.0))
            r_min = max(30.0, (road + 6.0) / (4.0 * (1.0 - math.cos(math.radians(angle)))))
            fork = {"type": "fork", "radius": round(float(rng.uniform(r_min, r_min + 25.0)), 6),
                    "angle_deg": round(angle, 6), "length": round(float(rng.uniform(15.0, 45.0)), 6)}
            margin = 20.0  # straight road before the split and after the merge
            spare = seg["length"] - fork_chord(fork) - 2 * margin
            if spare >= 0 and fork_separation(fork) >= road + 4.0:
                before = round(margin + float(rng.uniform(0.0, spare)), 9)
                after = seg["length"] - before - fork_chord(fork)
                segments += [{"type": "straight", "length": before}, fork, {"type": "straight", "length": after}]
                continue
        segments.append(seg)
    return {**spec, "name": f"fork-{base['name'].split('-', 1)[1]}", "segments": segments}


@functools.lru_cache(maxsize=32)
def fork_spec(seed: int) -> dict:
    """The spec of procedural fork network `seed`: procedural track `seed` with forks (deterministic).

    A fork whose branch comes too close to another part of the road is dropped again; a seed whose
    track has no straight long enough for a fork raises ValueError.
    """
    base = procedural_spec(seed, corners=FORK_BASE_CORNERS, length_m=FORK_BASE_LENGTH_M)
    spec = _place_forks(base, np.random.default_rng([FORK_STREAM, int(seed)]))
    while True:
        try:
            spec = validate_spec(spec, source=spec["name"])
            break
        except TrackSpecError:  # drop the last fork (a branch that meets the road elsewhere) and retry
            k = max(i for i, s in enumerate(spec["segments"]) if s["type"] == "fork")
            segs = spec["segments"]
            merged = {"type": "straight", "length": segs[k - 1]["length"] + fork_chord(segs[k]) + segs[k + 1]["length"]}
            spec = {**spec, "segments": segs[: k - 1] + [merged] + segs[k + 2:]}
    if not any(s["type"] == "fork" for s in spec["segments"]):
        raise ValueError(f"procedural track {seed} has no straight long enough for a fork; use another seed")
    return spec


@functools.lru_cache(maxsize=16)
def fork_network(seed: int) -> ForkNetwork:
    """Procedural fork network `seed` (cached)."""
    return ForkNetwork(fork_spec(seed))
