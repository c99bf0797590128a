"""Lane goals: on a multi-lane road, commands to change to the lane on the left or on the right (issue 15).

The goal of a lane-goal episode is a lane. After a stretch of following its lane, the car is told
`left` or `right`: move to the adjacent lane on that side (the target lane, fixed when the command is
given) and settle there. The command stays in force until the car is in the target lane within
`settle_m` of its centre (the goal is reached: "passed"), or `deadline_s` have gone by ("failed"); then
the command is `follow` again for a new stretch. The side is the one lane there is, or a fair coin on a
middle lane. The stretches' lengths and the coins come from the reset seed and the track's name alone,
on a stream of their own, drawn once at reset: every policy in the same lane at the same step gets the
same command (common random numbers), and the reset's other draws are untouched.

The teacher starts its change `lead_s` after the command: its pursued point moves across to the
target lane's centre on a raised cosine over `change_m` metres of progress, and back to following
whatever lane the car is in once the goal ends. The car's lane is the lane it is in: it changes when
the car crosses a lane line (envs.DrivingEnv), and offsets are measured from that lane's centre.

A goal is attempted once its command is given; an episode that fails (off the road) while a goal is in
force fails that goal, and one cut off by the step limit leaves it out, as fork passages are
(envs.forks.Route.outcomes, metrics.command_success).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from benchmark.common.config import require

from .forks import FOLLOW, LEFT, RIGHT

LANE_GOAL_STREAM = 20261502
"""Separates the lane goals' random numbers from every other use of the episode seed."""


@dataclass(frozen=True)
class LaneGoalConfig:
    """Commands to change lane, seeded per episode, on roads of two lanes or more."""

    gap_s: tuple[float, float] = (6.0, 12.0)
    """Range of the stretch of `follow` before each command [s] (uniform)."""
    lead_s: float = 1.0
    """Time from a command to the start of the teacher's lane change [s]."""
    change_m: float = 50.0
    """Length of the teacher's lane change [m of progress]."""
    deadline_s: float = 12.0
    """A goal not reached this long after its command has failed [s]."""
    settle_m: float = 0.5
    """The goal is reached in the target lane within this distance of its centre [m]."""

    def __post_init__(self) -> None:
        require(len(self.gap_s) == 2, f"lane goals: gap_s must be [low, high] seconds, got {self.gap_s}")
        object.__setattr__(self, "gap_s", (float(self.gap_s[0]), float(self.gap_s[1])))  # YAML gives a list
        lo, hi = self.gap_s
        require(0.5 <= lo <= hi <= 600.0, f"lane goals: gap_s must satisfy 0.5 <= low <= high <= 600 s, got {self.gap_s}")
        require(0.0 <= self.lead_s <= 10.0, f"lane goals: lead_s must be 0..10 s, got {self.lead_s}")
        require(5.0 <= self.change_m <= 500.0, f"lane goals: change_m must be 5..500 m, got {self.change_m}")
        require(1.0 <= self.deadline_s <= 120.0, f"lane goals: deadline_s must be 1..120 s, got {self.deadline_s}")
        require(0.05 <= self.settle_m <= 1.5, f"lane goals: settle_m must be 0.05..1.5 m, got {self.settle_m}")


def lane_goal_rng(seed: int | None, track_name: str) -> np.random.Generator:
    """The goals' generator for a reset seed (None: unseeded) on a track."""
    name = zlib.crc32(track_name.encode())
    return np.random.default_rng(None if seed is None else [LANE_GOAL_STREAM, name, int(seed)])


@dataclass
class Goal:
    """A lane goal under way or ended: when it was given, from and to which lane, how it ended."""

    step: int
    """The step at which the command was given."""
    progress_m: float
    """The car's progress then [m]."""
    lane: int
    target: int
    outcome: str | None = None
    """None while in force, then "passed" or "failed"."""

    @property
    def command(self) -> int:
        return LEFT if self.target < self.lane else RIGHT


class LaneGoals:
    """One episode's lane goals: the command in force, the teacher's lane plan, and the outcomes."""

    def __init__(self, config: LaneGoalConfig, lanes: int, lane_width: float, speed: float, policy_hz: float,
                 rng: np.random.Generator):
        require(lanes >= 2, f"lane goals need a road of two lanes or more, got {lanes}")
        self.config, self.lanes, self.width, self.hz = config, int(lanes), float(lane_width), float(policy_hz)
        self.lead_m = config.lead_s * float(speed)
        """The teacher's lead as a distance at the cruise speed [m]."""
        self._rng = rng
        self.goals: list[Goal] = []
        self.deadline_steps = max(1, round(config.deadline_s * policy_hz))
        self._next = self._gap()

    def _gap(self) -> int:
        return max(1, round(float(self._rng.uniform(*self.config.gap_s)) * self.hz))

    @property
    def current(self) -> Goal | None:
        """The goal in force, if any."""
        return self.goals[-1] if self.goals and self.goals[-1].outcome is None else None

    @property
    def command(self) -> int:
        """FOLLOW, LEFT or RIGHT: the command in force."""
        goal = self.current
        return FOLLOW if goal is None else goal.command

    def update(self, step: int, lane: int, offset_m: float, progress_m: float) -> None:
        """After each step (and at reset, step 0): end the goal in force when reached or overdue, or
        give the next command when its stretch of follow is over."""
        goal = self.current
        if goal is not None:
            if lane == goal.target and abs(offset_m) <= self.config.settle_m:
                goal.outcome = "passed"
            elif step - goal.step >= self.deadline_steps:
                goal.outcome = "failed"
            if goal.outcome is not None:
                self._next = step + self._gap()
            return
        if step >= self._next:
            coin = float(self._rng.random())  # drawn for every goal, so the stream does not depend on the lane
            if lane == 0:
                side = 1
            elif lane == self.lanes - 1:
                side = -1
            else:
                side = -1 if coin < 0.5 else 1
            self.goals.append(Goal(step, float(progress_m), int(lane), int(lane) + side))

    def offset_at(self, lane: int, progress_m: float) -> float:
        """The teacher's target offset from the centre of `lane` [m, positive right] at progress
        `progress_m`: 0 without a goal in force, else on its way across to the target lane's centre."""
        goal = self.current
        if goal is None:
            return 0.0
        start = goal.progress_m + self.lead_m
        x = (progress_m - start) / self.config.change_m
        w = 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else 0.5 * (1.0 - math.cos(math.pi * x))
        return (goal.lane + (goal.target - goal.lane) * w - lane) * self.width

    def outcomes(self, failed: bool) -> tuple[list[int], list[str]]:
        """The goals an episode attempted, in order: their commands and outcomes. The goal in force when
        the episode ended failed if the episode failed, and is left out if it was cut off."""
        commands, outcomes = [], []
        for g in self.goals:
            outcome = g.outcome or ("failed" if failed else None)
            if outcome is None:
                continue
            commands.append(g.command)
            outcomes.append(outcome)
        return commands, outcomes

    @property
    def sides(self) -> tuple[int, ...]:
        """Every goal's side so far (-1 left, +1 right), in order."""
        return tuple(-1 if g.target < g.lane else 1 for g in self.goals)
