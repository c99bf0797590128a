"""Hindsight relabelling of demonstrations on road networks with forks, and of lane changes.

A demonstration recorded without a command (the teacher drove wherever its route went) becomes a correct
example of following a command once each step is labelled with what the car actually did next: the
branch of the fork it drove through within a horizon ahead (LEFT or RIGHT, also while on the branch;
the horizon in steps, or in metres of progress for a dataset), FOLLOW where it reached no fork within it. Every demonstration is then an example for
the goal it reached, whatever route it was meant to take.

The branch a car drove is read from its positions alone (the closest lane of the network at each step),
never from the route it was given; a run of steps on a fork's branches takes the side most of its steps
were on, so that the first metres after a split, where the two branches still overlap, cannot flip it.

On a road of several lanes (the lane-goal task, envs.lane_goals) the goal is a lane: each step gets the
command of the lane change the car made next, LEFT or RIGHT, from `horizon` before it crossed the lane
line until it settled in the new lane (within `settle_m` of its centre), FOLLOW elsewhere; the change is
read from the recorded lane index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.forks import COMMAND_DISTANCE_M, FOLLOW, ForkNetwork, fork_network, side_command
from envs.lane_goals import LaneGoalConfig


def branch_sides(network: ForkNetwork) -> dict[tuple[str, str], int]:
    """Every branch edge of the network mapped to its side (-1 left, +1 right)."""
    return {edge: side for fork in network.branches.values() for side, edges in fork.items() for edge in edges}


def branches_driven(network: ForkNetwork, xs: Sequence[float], ys: Sequence[float],
                    headings: Sequence[float] | None = None) -> np.ndarray:
    """Per step, the side of the fork branch the car was on (-1 left, +1 right; 0 off every branch),
    from its positions (and headings) and the network's closest lane."""
    sides = branch_sides(network)
    out = np.zeros(len(xs), np.int8)
    for t, (x, y) in enumerate(zip(xs, ys)):
        h = None if headings is None else float(headings[t])
        a, b, _ = network.network.get_closest_lane_index(np.array([float(x), float(y)]), h)
        out[t] = sides.get((a, b), 0)
    return out


def branch_runs(on_branch: Sequence[int]) -> list[tuple[int, int, int]]:
    """The runs of consecutive steps on a branch, as (first step, end step, side): each run takes the side
    most of its steps were on (the right on a tie)."""
    v = np.asarray(on_branch, int)
    runs, t = [], 0
    while t < len(v):
        if v[t] == 0:
            t += 1
            continue
        end = t
        while end < len(v) and v[end] != 0:
            end += 1
        left, right = int((v[t:end] < 0).sum()), int((v[t:end] > 0).sum())
        runs.append((t, end, -1 if left > right else 1))
        t = end
    return runs


def hindsight_commands(on_branch: Sequence[int], horizon: float, along: Sequence[float] | None = None) -> np.ndarray:
    """The hindsight command of every step: the command of the branch run under way, else of the first run
    that starts within `horizon` ahead, else FOLLOW.

    on_branch: per step -1, +1 (on a fork's left or right branch) or 0 (see branches_driven). `along`: each
    step's position along the road (for example progress_m), in which the horizon is measured; None
    measures it in steps.
    """
    if horizon < 0:
        raise ValueError(f"horizon must be at least 0, got {horizon}")
    n = len(on_branch)
    pos = np.arange(n, dtype=float) if along is None else np.asarray(along, float)
    if len(pos) != n:
        raise ValueError(f"along has {len(pos)} positions for {n} steps")
    out = np.full(n, FOLLOW, np.int64)
    runs = branch_runs(on_branch)
    for start, _, side in reversed(runs):  # the nearest run ahead is written last, so it wins
        before = np.arange(start)
        out[before[pos[before] >= pos[start] - horizon]] = side_command(side)
    for start, end, side in runs:  # a step on a branch is that branch's, whatever lies ahead
        out[start:end] = side_command(side)
    return out


def lane_changes(lanes: Sequence[int]) -> list[tuple[int, int]]:
    """(step, side) of every lane change: the first step in the new lane, -1 to the left, +1 to the right."""
    v = np.asarray(lanes, int)
    steps = np.flatnonzero(np.diff(v) != 0) + 1
    return [(int(t), -1 if v[t] < v[t - 1] else 1) for t in steps]


def lane_hindsight_commands(lanes: Sequence[int], offsets: Sequence[float], horizon: float,
                            along: Sequence[float] | None = None,
                            settle_m: float = LaneGoalConfig.settle_m) -> np.ndarray:
    """The hindsight command of every step on a road of several lanes: the side of the next lane change
    within `horizon` ahead of the step (in steps, or in the units of `along`), and of the change under way
    until the car is within `settle_m` of the new lane's centre; FOLLOW elsewhere.

    lanes, offsets: per step, the lane index and the offset from that lane's centre [m].
    """
    if horizon < 0:
        raise ValueError(f"horizon must be at least 0, got {horizon}")
    n = len(lanes)
    d = np.asarray(offsets, float)
    pos = np.arange(n, dtype=float) if along is None else np.asarray(along, float)
    if len(d) != n or len(pos) != n:
        raise ValueError(f"lanes, offsets and along must have one value per step ({n}, {len(d)}, {len(pos)})")
    out = np.full(n, FOLLOW, np.int64)
    changes = lane_changes(lanes)
    for t, side in reversed(changes):  # the nearest change ahead is written last, so it wins
        before = np.arange(t)
        out[before[pos[before] >= pos[t] - horizon]] = side_command(side)
    for t, side in changes:  # from the crossing until settled in the new lane
        settled = np.flatnonzero(np.abs(d[t:]) <= settle_m)
        out[t: t + (int(settled[0]) if len(settled) else n - t)] = side_command(side)
    return out


def dataset_commands(index, source: str = "route", horizon_m: float = COMMAND_DISTANCE_M) -> np.ndarray:
    """The command of every row of a dataset index (benchmark.data.dataset) for conditional training.

    'route': the command the recording stored (follow on tracks without forks). 'hindsight': relabelled
    from each episode's recorded poses alone, the branch the car drove through within the next
    `horizon_m` metres of progress, or on a road of several lanes the lane change it made next
    (lane_hindsight_commands; follow where it made none); the stored command is never read.
    """
    if source == "route":
        if "command" not in index:
            return np.zeros(len(index), np.int64)
        return index["command"].to_numpy(np.int64)
    if source != "hindsight":
        raise ValueError(f"command source must be 'route' or 'hindsight', got {source!r}")
    out = np.zeros(len(index), np.int64)
    tracks = index["track"].to_numpy(dtype=object)
    episodes = index["episode"].to_numpy()
    for ep in np.unique(episodes[[str(t).startswith("fork-") for t in tracks]]):
        rows = np.flatnonzero(episodes == ep)
        rows = rows[np.argsort(index["step"].to_numpy()[rows], kind="stable")]
        net = fork_network(int(str(tracks[rows[0]]).split("-", 1)[1]))
        part = index.iloc[rows]
        driven = branches_driven(net, part["x"].to_numpy(), part["y"].to_numpy(), part["heading"].to_numpy())
        out[rows] = hindsight_commands(driven, horizon_m, part["progress_m"].to_numpy())
    lanes = index["lane"].to_numpy()
    for ep in np.unique(episodes):
        rows = np.flatnonzero(episodes == ep)
        if str(tracks[rows[0]]).startswith("fork-") or len(np.unique(lanes[rows])) < 2:
            continue  # no lane change: follow throughout
        rows = rows[np.argsort(index["step"].to_numpy()[rows], kind="stable")]
        part = index.iloc[rows]
        out[rows] = lane_hindsight_commands(part["lane"].to_numpy(), part["lateral_offset"].to_numpy(), horizon_m,
                                            part["progress_m"].to_numpy())
    return out


def horizon_steps(distance_m: float, speed_mps: float, policy_hz: float) -> int:
    """Steps the car takes to drive distance_m at speed_mps (rounded): a command distance as a horizon."""
    if speed_mps <= 0 or policy_hz <= 0:
        raise ValueError(f"speed and policy rate must be positive, got {speed_mps}, {policy_hz}")
    return round(distance_m / speed_mps * policy_hz)
