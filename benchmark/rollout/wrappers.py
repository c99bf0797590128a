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
    """Every observation's frame goes through `transform` (frame -> frame); a road network's command is kept."""

    def __init__(self, env: Any, transform: Callable[[np.ndarray], np.ndarray]):
        super().__init__(env)
        self.transform = transform

    def _shift(self, obs):
        return {**obs, "frame": self.transform(obs["frame"])} if isinstance(obs, dict) else self.transform(obs)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        return self._shift(obs), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._shift(obs), reward, terminated, truncated, info

    def recover(self):
        obs, info = self.env.recover()
        return self._shift(obs), info


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


class Disturbance(Wrapper):
    """Stochastic disturbance of the vehicle itself: steering-actuator noise added to the executed
    curvature, and a lateral gust that pushes the car sideways, each an Ornstein-Uhlenbeck process
    (stationary standard deviation `*_std`, correlation time `*_tau_s`).

    Common random numbers: the process's random numbers come from `seed` alone (two normal draws
    per step, in a fixed order), so every policy, and the teacher, meet exactly the same sequence
    of disturbances on the same episode; `history` keeps it, for tests and figures.
    """

    STREAM = 20261201
    """Separates the disturbance's random numbers from every other use of the episode seed."""

    def __init__(self, env: Any, seed: int, steering_std: float, steering_tau_s: float, gust_std_mps: float,
                 gust_tau_s: float, stream: int = 0):
        super().__init__(env)
        # stream 0 is every policy's sequence; stream k > 0 an independent one (the teacher's replica)
        self.rng = np.random.default_rng([self.STREAM, int(seed)] + ([int(stream)] if stream else []))
        dt = 1.0 / float(env.config.policy_hz)
        self.dt = dt
        self.a_steer = float(np.exp(-dt / steering_tau_s)) if steering_tau_s > 0 else 0.0
        self.a_gust = float(np.exp(-dt / gust_tau_s)) if gust_tau_s > 0 else 0.0
        self.steering_std, self.gust_std = float(steering_std), float(gust_std_mps)
        self.steer = self.gust = 0.0
        self.history: list[tuple[float, float]] = []
        """(steering noise [1/m], lateral gust speed [m/s]) applied at each step."""

    def step(self, action: np.ndarray):
        e_steer, e_gust = self.rng.standard_normal(2)
        self.steer = self.a_steer * self.steer + np.sqrt(1 - self.a_steer**2) * self.steering_std * e_steer
        self.gust = self.a_gust * self.gust + np.sqrt(1 - self.a_gust**2) * self.gust_std * e_gust
        self.history.append((float(self.steer), float(self.gust)))
        vehicle = self.env.vehicle
        h = vehicle.heading
        # the gust moves the car sideways (positive: to its right) over the step
        vehicle.position = vehicle.position + self.gust * self.dt * np.array([-np.sin(h), np.cos(h)])
        executed = np.asarray(action, np.float64).reshape(-1) + self.steer
        return self.env.step(executed.astype(np.float32))


class TeacherDriven(Wrapper):
    """The teacher drives, whatever the policy answers (evaluation mode `offpolicy`): each step
    executes the teacher's label for the current state, so the policy is only queried, on the frames
    of the teacher's own trajectory. Outside the Disturbance wrapper, so the teacher's action gets
    the episode's disturbance exactly as in the teacher's own evaluation."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._label = float(info["teacher_action"])
        return obs, info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(np.array([self._label], np.float32))
        self._label = float(info["teacher_action"])
        return obs, reward, terminated, truncated, info
