"""Intents: a teacher that keeps its lane, changes lane, or overtakes, in traffic that changes lane too.

The hierarchical task of issue 15. On a road of two lanes or more, with traffic whose IDM vehicles are
slower than the car, each on its own speed, and change lane themselves (highway-env's MOBIL;
`TrafficConfig.lane_changes`), the teacher drives with one of four intents at a time:

- `keep` (0): follow the lane it is in;
- `left` (1) / `right` (2): move to the adjacent lane on that side (a voluntary change, after a
  stretch of keep: with probability `p_change`, to a side that is free);
- `overtake` (3): a slower vehicle ahead in the car's lane within `lookahead_m`: move out to a free
  adjacent lane (left first), drive past it, and once it is `pass_m` behind and the original lane is
  free, move back.

The intent is in `info["intent"]` and never in the observation: the learner sees the frame alone
(the hierarchical learner has to find the options itself). A lane is free when no vehicle in it is
within `clear_ahead_m` ahead or `clear_behind_m` behind, along the track. Each lane change is the
lane goals' raised cosine over `change_m` metres of progress (envs.lane_goals); the car's lane is the
lane it is in, as with lane goals. The stretches and coins come from the reset seed and the track's
name on a stream of their own (two numbers at the end of each stretch of keep), so the reset's other
draws, the traffic's included, are untouched; with the traffic deterministic per seed, so are the
intents.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from benchmark.common.config import require

KEEP, LEFT, RIGHT, OVERTAKE = 0, 1, 2, 3
INTENTS = ("keep", "left", "right", "overtake")
"""Intent names by code."""

INTENT_STREAM = 20261503
"""Separates the intents' random numbers from every other use of the episode seed."""

INTENT_TRAFFIC = {"vehicles": 4, "lane_changes": True, "other_lane_speed": (0.55, 0.8)}
"""The task's traffic (SteerBench/Intents-v0, `record --intents`): four lane-changing vehicles at 55-80% of
the car's speed. The car cannot brake, so a slower vehicle ahead with another beside it can trap it;
denser traffic traps it more often."""


@dataclass(frozen=True)
class IntentConfig:
    """The teacher's intents in traffic on roads of two lanes or more (seeded per episode)."""

    keep_s: tuple[float, float] = (5.0, 10.0)
    """Range of a stretch of keep before a voluntary lane change may follow [s] (uniform)."""
    p_change: float = 0.5
    """Probability that a finished stretch of keep is followed by a voluntary lane change."""
    change_m: float = 50.0
    """Length of a lane change [m of progress]."""
    lookahead_m: float = 30.0
    """A slower vehicle ahead in the lane the car is in or moving to, within this distance ...  [m]"""
    lookahead_s: float = 6.0
    """... or this time at the closing speed, starts an overtake [s]."""
    clear_ahead_m: float = 25.0
    """A lane is free when no vehicle in it is within this distance ahead [m] ..."""
    clear_behind_m: float = 8.0
    """... or this distance behind [m]."""
    urgent_s: float = 3.0
    """With a slower vehicle this close ahead in time, and no lane free, a lane will do that is free
    within `urgent_behind_m` behind and `urgent_ahead_m` ahead (the vehicles behind are slower and brake
    for the car: IDM) [s]."""
    urgent_behind_m: float = 6.0
    """See urgent_s [m]."""
    urgent_ahead_m: float = 12.0
    """See urgent_s [m]."""
    pass_m: float = 15.0
    """The overtaken vehicle must be this far behind before the move back [m]."""
    settle_m: float = 0.5
    """A change is over in the target lane within this distance of its centre [m]."""

    def __post_init__(self) -> None:
        require(len(self.keep_s) == 2, f"intents: keep_s must be [low, high] seconds, got {self.keep_s}")
        object.__setattr__(self, "keep_s", (float(self.keep_s[0]), float(self.keep_s[1])))  # YAML gives a list
        lo, hi = self.keep_s
        require(0.5 <= lo <= hi <= 600.0, f"intents: keep_s must satisfy 0.5 <= low <= high <= 600 s, got {self.keep_s}")
        require(0.0 <= self.p_change <= 1.0, f"intents: p_change must be 0..1, got {self.p_change}")
        require(5.0 <= self.change_m <= 500.0, f"intents: change_m must be 5..500 m, got {self.change_m}")
        require(0.0 < self.lookahead_s <= 60.0, f"intents: lookahead_s must be in (0, 60] s, got {self.lookahead_s}")
        require(0.0 < self.urgent_s <= self.lookahead_s, f"intents: urgent_s must be in (0, lookahead_s], got {self.urgent_s}")
        for name in ("lookahead_m", "clear_ahead_m", "clear_behind_m", "urgent_behind_m", "urgent_ahead_m", "pass_m"):
            value = getattr(self, name)
            require(0.0 < value <= 500.0, f"intents: {name} must be in (0, 500] m, got {value}")
        require(0.05 <= self.settle_m <= 1.5, f"intents: settle_m must be 0.05..1.5 m, got {self.settle_m}")


def intent_rng(seed: int | None, track_name: str) -> np.random.Generator:
    """The intents' generator for a reset seed (None: unseeded) on a track."""
    name = zlib.crc32(track_name.encode())
    return np.random.default_rng(None if seed is None else [INTENT_STREAM, name, int(seed)])


@dataclass(frozen=True)
class Nearby:
    """A traffic vehicle as the teacher sees it: its lane, how far ahead along the track (negative
    behind) [m], and its speed [m/s]."""

    vehicle: int
    lane: int
    ahead_m: float
    speed: float


@dataclass
class _Change:
    """A lane change under way or done: from and to which lane, from which progress."""

    lane: int
    target: int
    progress_m: float


@dataclass
class Intents:
    """One episode's intents: the one in force, the teacher's lane plan, and the history."""

    config: IntentConfig
    lanes: int
    lane_width: float
    speed: float
    policy_hz: float
    rng: np.random.Generator
    intent: int = KEEP
    history: list[tuple[int, int]] = field(default_factory=list)
    """(step, intent) at every change of intent, from (0, keep)."""
    _change: _Change | None = None
    _phase: str = ""
    _overtaken: int = -1
    _home: int = -1
    _next: int = 0

    def __post_init__(self) -> None:
        require(self.lanes >= 2, f"intents need a road of two lanes or more, got {self.lanes}")
        self.history = [(0, KEEP)]
        self._next = self._stretch()

    def _stretch(self) -> int:
        return max(1, round(float(self.rng.uniform(*self.config.keep_s)) * self.policy_hz))

    def _free(self, lane: int, nearby: list[Nearby], urgent: bool = False) -> bool:
        c = self.config
        behind, ahead = (c.urgent_behind_m, c.urgent_ahead_m) if urgent else (c.clear_behind_m, c.clear_ahead_m)
        return 0 <= lane < self.lanes and not any(n.lane == lane and -behind < n.ahead_m < ahead for n in nearby)

    def _set(self, step: int, intent: int) -> None:
        if intent != self.intent:
            self.intent = intent
            self.history.append((step, intent))

    def _start(self, lane: int, target: int, progress_m: float) -> None:
        self._change = _Change(lane, target, progress_m)

    def _settled(self, lane: int, offset_m: float) -> bool:
        return self._change is not None and lane == self._change.target and abs(offset_m) <= self.config.settle_m

    def _threat(self, lane: int, nearby: list[Nearby]) -> Nearby | None:
        """The nearest slower vehicle ahead in `lane` that the car reaches within `lookahead_m` or
        `lookahead_s` (at the closing speed), if any."""
        c = self.config
        ahead = [n for n in nearby if n.lane == lane and n.ahead_m >= 0.0 and n.speed < self.speed
                 and (n.ahead_m < c.lookahead_m or n.ahead_m < c.lookahead_s * (self.speed - n.speed))]
        return min(ahead, key=lambda n: n.ahead_m) if ahead else None

    def update(self, step: int, lane: int, offset_m: float, progress_m: float, nearby: list[Nearby]) -> None:
        """After each step (and at reset, step 0): advance the intent in force, or start the next."""
        heading_to = self._change.target if self._change is not None else lane
        if self.intent == OVERTAKE and self._phase == "pass":
            passed = [n for n in nearby if n.vehicle == self._overtaken]
            if (not passed or passed[0].ahead_m < -self.config.pass_m) and self._free(self._home, nearby):
                self._phase = "back"
                self._start(lane, self._home, progress_m)
                return
        # a slower vehicle close ahead in the lane the car is heading to: around it, by a free lane
        # (left first), whatever the intent was: an overtake (the vehicle may itself have moved there)
        threat = self._threat(heading_to, nearby)
        if threat is not None:
            # left first, then right, then (mid-change) staying in the lane the car is still in
            sides = [t for t in (lane - 1, lane + 1, lane) if t != heading_to]
            side = next((t for t in sides if self._free(t, nearby)), None)
            if side is None and threat.ahead_m < self.config.urgent_s * (self.speed - threat.speed):
                side = next((t for t in sides if self._free(t, nearby, urgent=True)), None)  # no time to wait
            if side is not None:
                self._overtaken, self._home, self._phase = threat.vehicle, heading_to, "out"
                self._start(lane, side, progress_m)
                self._set(step, OVERTAKE)
                return
        if self.intent in (LEFT, RIGHT):
            if self._settled(lane, offset_m):
                self._change = None
                self._set(step, KEEP)
                self._next = step + self._stretch()
            return
        if self.intent == OVERTAKE:
            if self._phase == "out" and self._settled(lane, offset_m):
                self._phase = "pass"
            elif self._phase == "back" and self._settled(lane, offset_m):
                self._change, self._phase = None, ""
                self._set(step, KEEP)
                self._next = step + self._stretch()
            return
        if step >= self._next:
            change, coin = float(self.rng.random()), float(self.rng.random())  # two numbers a stretch
            self._next = step + self._stretch()
            if change < self.config.p_change:
                side = 1 if lane == 0 else -1 if lane == self.lanes - 1 else (-1 if coin < 0.5 else 1)
                if self._free(lane + side, nearby) and self._threat(lane + side, nearby) is None:
                    self._start(lane, lane + side, progress_m)
                    self._set(step, LEFT if side < 0 else RIGHT)

    def offset_at(self, lane: int, progress_m: float) -> float:
        """The teacher's target offset from the centre of `lane` [m, positive right] at progress
        `progress_m`: on the raised cosine of the change under way, else the centre of its target."""
        change = self._change
        if change is None:
            return 0.0
        x = (progress_m - change.progress_m) / self.config.change_m
        w = 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else 0.5 * (1.0 - math.cos(math.pi * x))
        return (change.lane + (change.target - change.lane) * w - lane) * self.lane_width

    @property
    def counts(self) -> dict[str, int]:
        """How many times each intent began this episode (keep's first stretch included)."""
        out = dict.fromkeys(INTENTS, 0)
        for _, intent in self.history:
            out[INTENTS[intent]] += 1
        return out


__all__ = ["INTENTS", "INTENT_STREAM", "INTENT_TRAFFIC", "KEEP", "LEFT", "OVERTAKE", "RIGHT", "IntentConfig", "Intents", "Nearby",
           "intent_rng"]
