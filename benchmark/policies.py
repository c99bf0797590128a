"""Policies behind one small interface, for the collector and the evaluation harness.

A policy steers a batch of episodes stepped in lockstep:

    policy.reset(n)                       # a new batch of n episode slots (recurrent state zeroed)
    actions = policy.act(frames, slots, infos)

`frames` is (N, H, W, 3) uint8 (the centre camera of the N active episodes), `slots` says which of
the n slots they are (so recurrent models keep one state per episode), and `infos` are the
environments' info dicts, which only privileged policies (the teacher) may read. `act` returns N
curvatures [1/m]. Implementations: the teacher, a straight-ahead baseline, torch models, and ONNX
files through onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class Policy(Protocol):
    name: str

    def reset(self, n: int) -> None: ...

    def reset_slots(self, slots: Sequence[int]) -> None: ...

    def act(self, frames: np.ndarray, slots: np.ndarray, infos: Sequence[dict]) -> np.ndarray: ...


class TeacherPolicy:
    """The privileged teacher: returns info['teacher_action'] (it never looks at the frames)."""

    name = "teacher"
    privileged = True

    def reset(self, n: int) -> None:
        pass

    def reset_slots(self, slots: Sequence[int]) -> None:
        pass

    def act(self, frames: np.ndarray, slots: np.ndarray, infos: Sequence[dict]) -> np.ndarray:
        return np.array([i["teacher_action"] for i in infos], np.float64)


class StraightPolicy:
    """The straight-ahead baseline: curvature 0 whatever it sees."""

    name = "straight"

    def reset(self, n: int) -> None:
        pass

    def reset_slots(self, slots: Sequence[int]) -> None:
        pass

    def act(self, frames: np.ndarray, slots: np.ndarray, infos: Sequence[dict]) -> np.ndarray:
        return np.zeros(len(frames))


class TorchPolicy:
    """A models/ network in eval mode; channels_last on CPU, no gradients, batch inference."""

    def __init__(self, model, name: str = "model", device: str | None = None):
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.name = name
        self.recurrent = bool(getattr(model, "recurrent", False))
        self._state = None

    def reset(self, n: int) -> None:
        self._state = self.model.initial_state(n).to(self.device) if self.recurrent else None

    def reset_slots(self, slots: Sequence[int]) -> None:
        if self.recurrent:
            self._state[list(slots)] = 0.0

    def act(self, frames: np.ndarray, slots: np.ndarray, infos: Sequence[dict]) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            if self.recurrent:
                idx = torch.as_tensor(np.asarray(slots), device=self.device)
                out, new_state = self.model(x, self._state[idx])
                self._state[idx] = new_state
            else:
                out = self.model(x)
            return self.model.curvature(out).float().cpu().numpy().reshape(-1).astype(np.float64)


class OnnxPolicy:
    """An ONNX file run by onnxruntime on the CPU (recurrent state via state_in / state_out)."""

    def __init__(self, path: str | Path, name: str | None = None, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.recurrent = "state_in" in self.inputs
        self.name = name or self.path.stem
        self._state = None
        if self.recurrent:
            shape = self.inputs["state_in"].shape
            self.state_size = int(shape[-1])

    def reset(self, n: int) -> None:
        self._state = np.zeros((n, self.state_size), np.float32) if self.recurrent else None

    def reset_slots(self, slots: Sequence[int]) -> None:
        if self.recurrent:
            self._state[list(slots)] = 0.0

    def act(self, frames: np.ndarray, slots: np.ndarray, infos: Sequence[dict]) -> np.ndarray:
        feeds = {"frames": np.ascontiguousarray(frames, dtype=np.uint8)}
        if self.recurrent:
            feeds["state_in"] = self._state[slots]
        result = dict(zip(self.outputs, self.session.run(None, feeds)))
        if self.recurrent:
            self._state[slots] = result["state_out"]
        return np.asarray(result["curvature"], np.float64).reshape(-1)
