"""Policies behind one small interface, for the collector and the evaluation harness.

A learner sees only what a car's computer would, the camera:

    policy.reset(n)                   # a run of n episodes begins (recurrent state zeroed)
    curvatures = policy.act(frames, episodes)

`frames` is (N, H, W, 3) uint8, the centre camera of the N episodes running now, and `episodes`
says which of the run's n episodes they are (so recurrent models keep one state per episode).
`act` returns N curvatures [1/m]. A conditional policy (`conditional = True`: a command-conditioned model,
models/conditional.py) takes the episodes' commands as well, `act(frames, episodes, commands)`, (N,)
integer codes (0 follow, 1 left, 2 right: the command in a road network's observation; follow elsewhere).
Implementations: torch models, ONNX files through onnxruntime,
and the straight-ahead baseline. A policy with `reads_frames = False` (straight-ahead) declares that
it never looks at the frames' contents; the evaluation then passes black frames and skips the camera.

The teacher is different, and explicitly so: a `PrivilegedPolicy` reads the simulator's state
(each environment's info dict, which holds the teacher's action) instead of the frames. The runner
calls `act_on_state(infos, episodes)` for it; no learner ever receives the infos.

Two synthetic reference policies, privileged too, have error shapes known in advance; they check
that the metrics see what they claim to (tests/test_protocol_v2.py, and the summary's
calibration rows): `NoisyTeacher` makes independent, recoverable mistakes, `DriftingTeacher`
mistakes that compound.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self, n: int) -> None: ...

    def act(self, frames: np.ndarray, episodes: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class PrivilegedPolicy(Protocol):
    name: str

    def reset(self, n: int) -> None: ...

    def act_on_state(self, infos: Sequence[dict], episodes: np.ndarray) -> np.ndarray: ...


def teacher_actions(infos: Sequence[dict]) -> np.ndarray:
    """The teacher's curvature at each state (the env computes it into info['teacher_action'])."""
    return np.array([i["teacher_action"] for i in infos], np.float64)


def act(policy: Policy | PrivilegedPolicy, frames: np.ndarray, episodes: np.ndarray,
        infos: Sequence[dict], commands: np.ndarray | None = None) -> np.ndarray:
    """The policy's actions: from the state for a privileged policy, from the frames otherwise (and the
    commands for a conditional one: FOLLOW for every frame when None)."""
    if isinstance(policy, PrivilegedPolicy):
        return policy.act_on_state(infos, episodes)
    if getattr(policy, "conditional", False):
        return policy.act(frames, episodes, np.zeros(len(frames), np.int64) if commands is None else commands)
    return policy.act(frames, episodes)


class TeacherPolicy:
    """The privileged teacher: pure pursuit on the lane centre (it never looks at the frames)."""

    name = "teacher"

    def reset(self, n: int) -> None:
        pass

    def act_on_state(self, infos: Sequence[dict], episodes: np.ndarray) -> np.ndarray:
        return teacher_actions(infos)


class NoisyTeacher:
    """Synthetic reference with independent, recoverable mistakes: the teacher's label plus white
    Gaussian noise (std `std` [1/m]). The noise is a function of (`seed`, track, step) alone, so it
    is independent from step to step and from track to track, and the same in every run of a
    track. Its mistake rate is the same at every step and the teacher's correction undoes each
    mistake, so eps_t is flat and the paired regret grows about linearly (log-log slope near 1)."""

    name = "noisy-teacher"

    def __init__(self, std: float = 0.03, seed: int = 0):
        self.std, self.seed = float(std), int(seed)

    def reset(self, n: int) -> None:
        pass

    def act_on_state(self, infos: Sequence[dict], episodes: np.ndarray) -> np.ndarray:
        noise = np.array([np.random.default_rng([self.seed, zlib.crc32(str(i["track"]).encode()), int(i["step"])])
                          .standard_normal() for i in infos])
        return teacher_actions(infos) + self.std * noise


class DriftingTeacher:
    """Synthetic reference whose mistakes compound: the teacher's label plus `gain` times its own
    lateral offset d [m], steering away from the centre (a = a* + gain * d). Its error grows with its
    distance from the states the teacher visits. The default gain, 0.1 1/m per m, is about the
    teacher's own restoring gain at these speeds, so the closed loop is barely stable: under the
    disturbance, excursions grow instead of dying out and episodes leave the road at all horizons
    (19 of v2 quick's 24 held-out tracks within 1,000 steps). Its mistakes are more frequent on its own
    states than on the teacher's (eps_on/eps_off 1.50) and its paired regret grows faster than
    linearly (slope 1.47 [1.28, 1.68]); its eps_t saturates in the first seconds (a push from 0.2 m of
    offset on is already a mistake), so its eps_t slope does not separate from flat."""

    name = "drifting-teacher"

    def __init__(self, gain: float = 0.1):
        self.gain = float(gain)

    def reset(self, n: int) -> None:
        pass

    def act_on_state(self, infos: Sequence[dict], episodes: np.ndarray) -> np.ndarray:
        return teacher_actions(infos) + self.gain * np.array([i["lateral_offset"] for i in infos], np.float64)


class StraightPolicy:
    """The straight-ahead baseline: curvature 0 whatever it sees."""

    name = "straight"
    reads_frames = False
    """It never looks at the frames (only at how many there are): evaluations skip the camera."""

    def reset(self, n: int) -> None:
        pass

    def act(self, frames: np.ndarray, episodes: np.ndarray) -> np.ndarray:
        return np.zeros(len(frames))


class TorchPolicy:
    """A models/ network in eval mode; channels_last on CPU, no gradients, batch inference."""

    def __init__(self, model, name: str = "model", device: str | None = None):
        import torch

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = name
        self.recurrent = bool(getattr(model, "recurrent", False))
        self.conditional = bool(getattr(model, "conditional", False))
        self._state = None

    def reset(self, n: int) -> None:
        self._state = self.model.initial_state(n).to(self.device) if self.recurrent else None

    def act(self, frames: np.ndarray, episodes: np.ndarray, commands: np.ndarray | None = None) -> np.ndarray:
        from models import infer

        if self.recurrent:
            out, self._state = infer(self.model, frames, self._state, np.asarray(episodes))
        else:
            out, _ = infer(self.model, frames, commands=commands)
        return out


class OnnxPolicy:
    """An ONNX file run by onnxruntime on the CPU (recurrent state via state_in / state_out)."""

    def __init__(self, path: str | Path, name: str | None = None, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: a graph's warnings (unused initializers...) are not ours to print
        ort.set_default_logger_severity(3)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.recurrent = "state_in" in self.inputs
        self.conditional = "command" in self.inputs
        self.name = name or self.path.stem
        self._state = None
        if self.recurrent:
            shape = self.inputs["state_in"].shape
            self.state_size = int(shape[-1])

    def reset(self, n: int) -> None:
        self._state = np.zeros((n, self.state_size), np.float32) if self.recurrent else None

    def act(self, frames: np.ndarray, episodes: np.ndarray, commands: np.ndarray | None = None) -> np.ndarray:
        feeds = {"frames": np.ascontiguousarray(frames, dtype=np.uint8)}
        if self.conditional:
            feeds["command"] = np.zeros(len(frames), np.int64) if commands is None else np.asarray(commands, np.int64)
        if self.recurrent:
            feeds["state_in"] = self._state[episodes]
        result = dict(zip(self.outputs, self.session.run(None, feeds)))
        if self.recurrent:
            self._state[episodes] = result["state_out"]
        return np.asarray(result["curvature"], np.float64).reshape(-1)


POLICY_KINDS = ("teacher", "straight", "noisy-teacher", "drifting-teacher", "torch", "onnx")
BUILTIN_KINDS = ("teacher", "straight", "noisy-teacher", "drifting-teacher")
"""Policies that need no file (the synthetic references are privileged, like the teacher)."""


@dataclass(frozen=True)
class PolicySpec:
    """What a worker process needs to build a policy (small, picklable, hashable)."""

    kind: str
    """teacher, straight, torch (a model directory) or onnx (an .onnx file)."""
    name: str
    path: str | None = None
    sha256: str | None = None
    """sha256 of the weights (model.safetensors) or of the ONNX file; None for built-in policies."""
    threads: int = 1
    """onnxruntime intra-op threads."""

    def ref(self) -> dict[str, Any]:
        """kind, name and sha256: how results and records name the policy."""
        return {"kind": self.kind, "name": self.name, "sha256": self.sha256}


def make_policy(spec: PolicySpec) -> Policy | PrivilegedPolicy:
    """The policy a PolicySpec describes."""
    if spec.kind == "teacher":
        return TeacherPolicy()
    if spec.kind == "straight":
        return StraightPolicy()
    if spec.kind == "noisy-teacher":
        return NoisyTeacher()
    if spec.kind == "drifting-teacher":
        return DriftingTeacher()
    if spec.kind == "torch":
        from models import load_model

        return TorchPolicy(load_model(spec.path), name=spec.name or Path(spec.path).parent.name, device="cpu")
    if spec.kind == "onnx":
        return OnnxPolicy(spec.path, name=spec.name, threads=spec.threads)
    raise ValueError(f"unknown policy kind {spec.kind!r}; kinds are {', '.join(POLICY_KINDS)}")
