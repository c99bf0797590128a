"""Camera dropouts: stretches where the frame is lost (the memory task, issue 14).

Under partial observability the current frame alone is not enough to steer: a policy must carry what
it saw before. A dropout replaces the centre camera's frame by black (`mode: black`: the camera lost)
or by the last frame delivered before it (`freeze`: a stuck video feed) for a stretch of steps. The
car, the teacher and the infos are untouched: only the observation is lost, and `info["camera_dropout"]`
says when.

Stretches start at each step with probability `rate_per_s / policy_hz` (a Bernoulli process: about
`rate_per_s` onsets per second of driving outside dropouts) and last a whole number of steps drawn
uniformly from `[min_s, max_s]` seconds; the frame after a dropout is always delivered, and so is the
reset's. The schedule comes from the reset seed and the track's name
alone, on a stream of its own, drawn once at reset for the whole episode: every policy meets the same
dropouts on the same episode (common random numbers), and the reset's other draws are untouched.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from benchmark.common.config import require

DROPOUT_STREAM = 20261403
"""Separates the dropout schedule's random numbers from every other use of the episode seed."""


@dataclass(frozen=True)
class DropoutConfig:
    """Camera dropouts: the observation lost for stretches of steps, seeded per episode."""

    rate_per_s: float = 0.1
    """Dropout onsets per second of driving (outside dropouts)."""
    min_s: float = 1.0
    """Shortest dropout [s]."""
    max_s: float = 2.0
    """Longest dropout [s]."""
    mode: Literal["black", "freeze"] = "black"
    """What the camera shows during a dropout: a black frame, or the last frame before it."""

    def __post_init__(self) -> None:
        require(0.0 <= self.rate_per_s <= 10.0, f"dropout rate_per_s must be 0..10, got {self.rate_per_s}")
        require(0.0 < self.min_s <= self.max_s <= 60.0,
                f"dropout durations must satisfy 0 < min_s <= max_s <= 60 s, got {self.min_s}, {self.max_s}")
        require(self.mode in ("black", "freeze"), f"dropout mode must be black or freeze, got {self.mode!r}")


def dropout_rng(seed: int | None, track_name: str) -> np.random.Generator:
    """The schedule's generator for a reset seed (None: unseeded) on a track."""
    name = zlib.crc32(track_name.encode())
    return np.random.default_rng(None if seed is None else [DROPOUT_STREAM, name, int(seed)])


def dropout_schedule(config: DropoutConfig, steps: int, policy_hz: float, rng: np.random.Generator) -> np.ndarray:
    """(steps + 1,) bool: whether the observation after step t (t = 0: the reset's) is lost."""
    p = config.rate_per_s / policy_hz
    shortest = max(1, math.ceil(config.min_s * policy_hz - 1e-9))
    longest = max(shortest, math.floor(config.max_s * policy_hz + 1e-9))
    out = np.zeros(steps + 1, bool)
    t = 1  # the reset's frame is always delivered: a policy starts from a sight of the road
    while t <= steps:
        if rng.random() < p:
            length = int(rng.integers(shortest, longest + 1))
            out[t: t + length] = True
            t += length + 1  # the frame after a dropout is delivered: stretches never merge
        else:
            t += 1
    return out
