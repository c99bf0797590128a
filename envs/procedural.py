"""Procedural closed tracks from an integer seed.

A random star-shaped polygon (5 to 10 corners around a circle whose size sets the length) has its
corners rounded by circular arcs; what is left of each edge is a straight. Star-shaped with sorted
corner angles means the polygon is simple, so the track winds once; every turn is kept under 150
degrees, every lane centre at least 15 m from its arc centre, and the road is checked for clearance
against itself. Same seed, same track: the generator draws only from `np.random.default_rng(seed)`.

Training and test tracks come from disjoint, published seed ranges: `TRAIN_SEEDS` for recording and
training, `TEST_SEEDS` for evaluation only.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .tracks import Track, TrackSpecError, track_from_spec, validate_spec, wrap_angle

TRAIN_SEEDS = range(100_000)
"""Seeds whose tracks may be used for recording, training and validation."""
TEST_SEEDS = range(1_000_000, 1_001_000)
"""Held-out seeds: evaluation only, never training."""

MIN_LENGTH_M = 300.0
MAX_LENGTH_M = 1500.0
MIN_INNER_RADIUS_M = 15.0
MAX_TURN_DEG = 150.0


def check_training_seed(seed: int) -> int:
    """Return `seed` if it may be used for training; raise ValueError for a held-out test seed."""
    if seed in TEST_SEEDS:
        raise ValueError(
            f"procedural seed {seed} is a held-out test seed ({TEST_SEEDS.start}..{TEST_SEEDS.stop - 1}); "
            f"training uses seeds {TRAIN_SEEDS.start}..{TRAIN_SEEDS.stop - 1}"
        )
    return seed


def _attempt(rng: np.random.Generator, seed: int, corners: tuple[int, int] = (5, 11),
             length_m: tuple[float, float] = (MIN_LENGTH_M, MAX_LENGTH_M)) -> dict | None:
    """One try at a track: `corners` is the range of corner counts (high end excluded), `length_m` of
    lengths. The defaults are the procedural tracks'; fork networks ask for fewer corners and longer
    tracks, so that their straights have room for forks."""
    lanes = int(rng.choice([1, 2, 2, 3]))
    width = float(rng.choice([3.75, 4.0, 4.5, 5.0]))
    speed = float(rng.choice([8.0, 9.0, 10.0, 11.0, 12.0]))
    target = rng.uniform(*length_m)
    n = int(rng.integers(*corners))
    theta = np.sort(2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n)
    radius = target / (2 * np.pi) * rng.uniform(0.6, 1.25, n)
    verts = np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    if rng.random() < 0.5:
        verts[:, 1] *= -1  # mirror: mostly left turns instead of mostly right turns
    edges = np.roll(verts, -1, axis=0) - verts  # edge i runs from vertex i to vertex i+1
    edge_len = np.hypot(edges[:, 0], edges[:, 1])
    heading = np.arctan2(edges[:, 1], edges[:, 0])
    turn = wrap_angle(heading - np.roll(heading, 1))  # turn at vertex i, from edge i-1 to edge i
    if np.abs(np.degrees(turn)).max() > MAX_TURN_DEG:
        return None
    half_road = 0.5 * (lanes - 1) * width
    r_min = MIN_INNER_RADIUS_M + half_road
    arc_r = rng.uniform(r_min, r_min + 60.0, n)
    tan_half = np.tan(np.abs(turn) / 2)
    # Shrink radii until both fillets fit on every edge, leaving a little straight between them.
    for _ in range(20):
        t = arc_r * tan_half
        need = t + np.roll(t, -1)  # on edge i: fillet of vertex i and vertex i+1
        over = need > 0.95 * edge_len
        if not over.any():
            break
        scale = np.where(over, 0.95 * edge_len / np.maximum(need, 1e-9), 1.0)
        arc_r = arc_r * np.minimum(scale, np.roll(scale, 1))
    t = arc_r * tan_half
    if (arc_r < r_min).any() or (t + np.roll(t, -1) > 0.95 * edge_len + 1e-6).any():
        return None
    segments = []
    for i in range(n):
        if abs(turn[i]) > 1e-6:
            segments.append({"type": "arc", "radius": round(float(arc_r[i]), 6),
                             "angle_deg": round(float(np.degrees(turn[i])), 9)})
        straight = float(edge_len[i] - t[i] - t[(i + 1) % n])
        segments.append({"type": "straight", "length": round(straight, 9)})
    # Start on the longest straight, so that episodes starting at s = 0 begin on a straight.
    first = max(range(len(segments)), key=lambda k: segments[k].get("length", -1.0))
    segments = segments[first:] + segments[:first]
    spec = {"name": f"procedural-{seed}", "lanes": lanes, "lane_width": width, "speed": speed,
            "closed": True, "segments": segments}
    length = sum(s["length"] if s["type"] == "straight" else s["radius"] * math.radians(abs(s["angle_deg"]))
                 for s in segments)
    if not length_m[0] <= length <= length_m[1]:
        return None
    try:
        return validate_spec(spec, source=spec["name"])
    except TrackSpecError:
        return None


def procedural_spec(seed: int, **shape) -> dict:
    """The segment spec of procedural track `seed` (deterministic); `shape` passes corners= and
    length_m= to the generator (envs.forks uses them)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"track_seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    for _ in range(1000):
        spec = _attempt(rng, int(seed), **shape)
        if spec is not None:
            return spec
    raise RuntimeError(f"could not generate a valid track for seed {seed}")  # pragma: no cover


@functools.lru_cache(maxsize=4096)
def sharpest_curvature(seed: int) -> float:
    """The curvature of procedural track `seed`'s sharpest arc [1/m] (cached: results sort every
    held-out track into a curvature family, and the generator's rejection sampling is ~60 ms a track)."""
    return max(1.0 / seg["radius"] for seg in procedural_spec(seed)["segments"] if seg["type"] == "arc")


@functools.lru_cache(maxsize=32)
def procedural_track(seed: int) -> Track:
    """Procedural track `seed` as a Track (cached)."""
    return track_from_spec(procedural_spec(seed), source=f"procedural-{seed}")


@functools.lru_cache(maxsize=64)
def track_by_name(name: str) -> Track:
    """Rebuild a track from the name it is recorded under: a built-in name or procedural-<seed>."""
    from .tracks import BUILTIN_TRACKS, builtin_track

    if name in BUILTIN_TRACKS:
        return builtin_track(name)
    if name.startswith("procedural-") and name.split("-", 1)[1].isdigit():
        return procedural_track(int(name.split("-", 1)[1]))
    raise ValueError(f"track {name!r} cannot be rebuilt in the simulator (only built-in tracks and "
                     "procedural-<seed> can)")


def drawing_by_name(name: str):
    """What a map of the track recorded as `name` draws (for map_texture): the track itself, or for
    fork-<seed> every branch of that procedural fork network (envs.forks: its episodes' track is a
    route drawn per episode, their map the whole network)."""
    if name.startswith("fork-") and name.split("-", 1)[1].isdigit():
        from .forks import fork_network

        return fork_network(int(name.split("-", 1)[1])).drawing
    return track_by_name(name)
