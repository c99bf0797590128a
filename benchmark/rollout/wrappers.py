"""Environment wrappers the runner composes per episode, so no loop applies them inline.

- `ObservationShift`: what the policy sees passes through a transform (the photometric condition's
  weather); the simulator, the teacher and the metrics are untouched.
- `Intervention`: NVIDIA's intervention mode. When the car is more than `threshold_m` off the lane
  centre, or fails, a safety driver puts it back on the centre line; the step is counted and the
  episode goes on.
- `SafetyReset`: a collection episode ends (truncated) once the car is more than `max_offset_m` off
  the lane centre: labels far outside the lane are saturated and teach little.

Each wrapper forwards every other attribute to the wrapped environment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


class Wrapper:
    def __init__(self, env: Any):
        self.env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)

    def reset(self, **kwargs: Any):
        return self.env.reset(**kwargs)

    def step(self, action: np.ndarray):
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


class ObservationShift(Wrapper):
    """Every observation goes through `transform` (frame -> frame)."""

    def __init__(self, env: Any, transform: Callable[[np.ndarray], np.ndarray]):
        super().__init__(env)
        self.transform = transform

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        return self.transform(obs), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.transform(obs), reward, terminated, truncated, info

    def recover(self):
        obs, info = self.env.recover()
        return self.transform(obs), info


class Intervention(Wrapper):
    """Counts an intervention and recovers the car whenever |d| > threshold_m or it fails."""

    def __init__(self, env: Any, threshold_m: float):
        super().__init__(env)
        self.threshold_m = float(threshold_m)
        self.steps_taken = 0
        self.intervention_steps: list[int] = []
        """The step counts (1-based) after which the safety driver intervened."""

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps_taken += 1
        if abs(info["lateral_offset"]) > self.threshold_m or info["failure"] is not None:
            self.intervention_steps.append(self.steps_taken)
            obs, info = self.env.recover()
        return obs, reward, terminated, truncated, info


class SafetyReset(Wrapper):
    """Truncates the episode once |d| > max_offset_m; `too_far` says whether it did."""

    def __init__(self, env: Any, max_offset_m: float):
        super().__init__(env)
        self.max_offset_m = float(max_offset_m)
        self.too_far = False

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.too_far = abs(info["lateral_offset"]) > self.max_offset_m
        return obs, reward, terminated, truncated or self.too_far, info
