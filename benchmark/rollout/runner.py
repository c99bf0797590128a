"""The one lockstep runner: several episodes stepped together, one batched decision per step.

Collection (benchmark/data/collector.py) and evaluation (benchmark/evaluation/rollouts.py) are
both a `Lockstep` with their own hooks. At every step the frames of the active episodes go through
one `decide` call (one batched forward pass of a learner), then each environment is stepped with
its action. A queue of episodes refills a slot as soon as its episode ends.

Slots and episode numbers: the batch holds the active episodes in the order of their slots; the
`numbers` passed to `decide` are the episodes' positions in the run (0 .. len(episodes) - 1), so a
policy that keeps state per episode (a recurrent network, HG-DAgger's gate) is `reset(n)` once for
the run's n episodes and never sees a slot reused.

The hooks, in the order they are called:

    start(number, episode)               -> (env, obs, info) of a new episode (wrappers applied)
    stop()                               -> True to end the run before the next step
    decide(frames, numbers, infos)       -> one action per active episode
    action_for_env(action)               -> the action as executed (collection clips it)
    before_step(number, env, info, j, action)   (the state the action is taken in)
    after_step(number, env, info, terminated)   (the state it led to)
    end(number, env, info, status, reason)      (status: finished, crashed or invalid)

On a road network with forks the observation is a dict of the frame and the command: `frames` holds the
frames, and `self.commands` the commands of the same episodes at this step (envs.forks: 0 follow, 1 left,
2 right; FOLLOW on tracks without forks), for the conditional policies that take one.

An episode ends when the environment terminates or truncates it, or after `episode.steps` steps.
A `decide` that raises, returns the wrong shape or a non-finite action ends every running episode
as `invalid`, with the reason, and the run stops (`PolicyFailure` carries the reason).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import numpy as np


class StepEnv(Protocol):
    """What the runner needs of an environment (DrivingEnv, or a wrapper of one)."""

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]: ...

    def close(self) -> None: ...


class EpisodeLike(Protocol):
    steps: int
    """The most steps the episode runs."""


E = TypeVar("E", bound=EpisodeLike)


class PolicyFailure(RuntimeError):
    """A policy that raised or returned something other than one finite action per frame."""


def checked_actions(actions: Any, n: int) -> np.ndarray:
    """`actions` as a float64 array of n finite values; PolicyFailure saying what is wrong."""
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PolicyFailure(f"returned something that is not an array of numbers ({exc})") from None
    if a.shape not in ((n,), (n, 1)):
        raise PolicyFailure(f"returned shape {a.shape} for {n} frames (expected ({n},) or ({n}, 1))")
    a = a.reshape(n)
    if not np.isfinite(a).all():
        raise PolicyFailure("returned a non-finite curvature (NaN or inf)")
    return a


def frame_of(obs: Any) -> np.ndarray:
    """The camera frame of an observation (the "frame" of a road network's dict observation)."""
    return obs["frame"] if isinstance(obs, dict) else obs


def command_of(obs: Any) -> int:
    """The command of an observation: a road network's, else FOLLOW (0)."""
    return int(obs["command"]) if isinstance(obs, dict) else 0


@dataclass
class _Slot:
    number: int
    env: Any
    obs: np.ndarray
    info: dict
    steps: int = 0
    limit: int = 0


@dataclass
class Lockstep(ABC, Generic[E]):
    """Run `episodes` with at most `slots` of them in lockstep; subclasses give the hooks."""

    episodes: Sequence[E]
    slots: int = 8
    _queue: list[tuple[int, E]] = field(init=False, default_factory=list)
    commands: np.ndarray = field(init=False, default_factory=lambda: np.zeros(0, np.int64))
    """The active episodes' commands at this step, in the order of `frames` (see the module doc)."""

    # --- hooks ------------------------------------------------------------------------------
    @abstractmethod
    def start(self, number: int, episode: E) -> tuple[StepEnv, np.ndarray, dict]:
        """Make, wrap and reset the environment of a new episode."""

    @abstractmethod
    def decide(self, frames: np.ndarray, numbers: np.ndarray, infos: list[dict]) -> np.ndarray:
        """One action per active episode."""

    def stop(self) -> bool:
        return False

    def before_step(self, number: int, env: Any, info: dict, j: int, action: float) -> None:
        pass

    def after_step(self, number: int, env: Any, info: dict, terminated: bool) -> None:
        pass

    def end(self, number: int, env: Any, info: dict, status: str, reason: str | None) -> None:
        pass

    def action_for_env(self, action: float) -> float:
        """The action as executed (collection clips it to the vehicle's range first)."""
        return action

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        self._queue = list(enumerate(self.episodes))
        slots: list[_Slot | None] = [None] * min(self.slots, len(self._queue))
        for k in range(len(slots)):
            slots[k] = self._next()
        while any(slots) and not self.stop():
            active = [k for k, s in enumerate(slots) if s is not None]
            frames = np.stack([frame_of(slots[k].obs) for k in active])
            self.commands = np.array([command_of(slots[k].obs) for k in active], np.int64)
            infos = [slots[k].info for k in active]
            try:
                actions = checked_actions(self.decide(frames, np.array([slots[k].number for k in active]), infos),
                                          len(active))
            except Exception as exc:  # any failure of the policy is a result, not a crash of the runner
                reason = str(exc) if isinstance(exc, PolicyFailure) else f"raised {type(exc).__name__}: {exc}"
                for k in active:
                    s = slots[k]
                    self.end(s.number, s.env, s.info, "invalid", f"policy {reason}")
                    s.env.close()
                return
            for j, k in enumerate(active):
                s = slots[k]
                action = self.action_for_env(float(actions[j]))
                self.before_step(s.number, s.env, s.info, j, action)
                s.obs, _, terminated, truncated, s.info = s.env.step(np.array([action], np.float32))
                s.steps += 1
                self.after_step(s.number, s.env, s.info, terminated)
                if terminated or truncated or s.steps >= s.limit:
                    self.end(s.number, s.env, s.info, "crashed" if terminated else "finished", None)
                    s.env.close()
                    slots[k] = self._next()
        for s in slots:
            if s is not None:
                s.env.close()

    def _next(self) -> _Slot | None:
        if not self._queue:
            return None
        number, episode = self._queue.pop(0)
        env, obs, info = self.start(number, episode)
        return _Slot(number, env, obs, info, limit=int(episode.steps))
