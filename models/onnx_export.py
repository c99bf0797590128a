"""ONNX export of a steering policy for deployment, and a torch-vs-onnxruntime parity check.

The graph takes the raw camera frames and returns curvature in 1/m, preprocessing and output scale
included, so a consumer needs nothing but the .onnx file:

    inputs   frames     (N, H, W, 3) uint8 RGB
             state_in   (N, hidden) float32            recurrent models only
             command    (N,) int64, 0 follow 1 left 2 right   conditional models only
    outputs  curvature  (N, 1) float32, 1/m, positive turns right
             log_std    (N, 1) float32, log of 1/m     gaussian heads only
             state_out  (N, hidden) float32            recurrent models only

N is dynamic; weights are embedded; only standard ONNX operators (ai.onnx domain) are used.
`curvature` is the head's run-time choice (models.heads.curvature), made inside the graph: the
mixture's most probable component's mean (ArgMax, GatherElements), the categorical head's most
probable bin's centre (ArgMax and arithmetic), so every head's file returns one curvature per frame.

Uses the TorchScript exporter (`dynamo=False`). With torch 2.14.1 the torch.export-based exporter
only implements opset >= 18 and converts down afterwards, and that conversion fails for ResNet-18
(a reduction's axes input), leaving an opset-18 file behind with just a log message. The TorchScript
exporter writes opset 17 directly, exports in well under a second, and maps nn.GRU to ONNX's GRU.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmark.common.files import atomic_path

from . import heads
from .base import SteeringModel

EXPORT_BATCH = 2  # not 1: a traced size-1 dimension can be mistaken for a broadcast and fixed


class _Deployed(nn.Module):
    """The model with its head output split into named outputs, in physical units."""

    def __init__(self, model: SteeringModel):
        super().__init__()
        self.model = model
        self.gaussian = model.config.head == "gaussian"

    def _split(self, out: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kappa = heads.curvature(out, self.model.config)
        return (kappa, out[:, 1:2]) if self.gaussian else (kappa,)


class _DeployedFeedforward(_Deployed):
    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._split(self.model(frames))


class _DeployedConditional(_Deployed):
    def forward(self, frames: torch.Tensor, command: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._split(self.model(frames, command))


def _deployed(model: SteeringModel) -> _Deployed:
    if model.recurrent:
        return _DeployedRecurrent(model)
    return (_DeployedConditional if model.conditional else _DeployedFeedforward)(model)


class _DeployedRecurrent(_Deployed):
    def forward(self, frames: torch.Tensor, state_in: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, state_out = self.model(frames, state_in)
        return (*self._split(out), state_out)


def io_names(model: SteeringModel) -> tuple[list[str], list[str]]:
    """The ONNX graph's input and output names for `model`."""
    inputs = ["frames"] + (["state_in"] if model.recurrent else []) + (["command"] if model.conditional else [])
    outputs = ["curvature"] + (["log_std"] if model.config.head == "gaussian" else [])
    return inputs, outputs + (["state_out"] if model.recurrent else [])


def export_onnx(model: SteeringModel, path: str | os.PathLike, opset: int = 17) -> Path:
    """Write `model` (in eval mode) to a self-contained ONNX file at `path`; returns the path.

    The file is checked with onnx.checker before it replaces an existing one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deployed = _deployed(model)
    cfg = model.config
    device = next(model.parameters()).device
    frames = torch.zeros(EXPORT_BATCH, cfg.input_height, cfg.input_width, 3, dtype=torch.uint8, device=device)
    args: tuple[torch.Tensor, ...] = (frames,)
    if model.recurrent:
        args += (model.initial_state(EXPORT_BATCH),)
    if model.conditional:  # distinct codes, so that the trace cannot take the batch's commands for constants
        args += (torch.arange(EXPORT_BATCH, dtype=torch.int64, device=device),)
    input_names, output_names = io_names(model)
    dynamic_axes = {name: {0: "batch"} for name in input_names + output_names}

    was_training = model.training
    model.eval()
    with atomic_path(path) as tmp:
        # The tracer warns that the models' shape checks become constants, which is what we want.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                deployed, args, str(tmp), dynamo=False, opset_version=opset, dynamic_axes=dynamic_axes,
                input_names=input_names, output_names=output_names, do_constant_folding=True,
            )
        _check(tmp, opset)
        model.train(was_training)
    return path


def _check(path: Path, opset: int) -> None:
    """onnx.checker, plus what the checker allows but a deployment must not get."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(proto, full_check=True)
    domains = {op.domain: op.version for op in proto.opset_import}
    if set(domains) - {"", "ai.onnx"} or domains.get("", domains.get("ai.onnx")) != opset:
        raise RuntimeError(f"{path}: exported opsets {domains}, expected only the standard domain at {opset}")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise RuntimeError(f"{path}: weights were written as external data")


def onnx_parity(model: SteeringModel, onnx_path: str | os.PathLike, frames, state=None, command=None) -> float:
    """Max |torch - onnxruntime| over all outputs of `model` and its ONNX export on `frames`.

    `frames` is (N, H, W, 3) uint8 (numpy or torch). For a recurrent model, `state` is its
    (N, hidden) input (zeros when None), and frames may be a sequence (N, T, H, W, 3): each side then
    carries its own state from step to step, so drift through the recurrence is caught too. For a
    conditional model, `command` is the (N,) integer commands (required).
    """
    import onnxruntime as ort

    frames = frames.cpu() if isinstance(frames, torch.Tensor) else torch.from_numpy(np.asarray(frames))
    if frames.dtype != torch.uint8:
        raise TypeError(f"the ONNX graph takes uint8 frames, got {frames.dtype}")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    deployed = _deployed(model)
    if model.conditional and command is None:
        raise ValueError("a conditional model's parity check needs command=(N,) integer commands")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            if model.conditional:
                command = torch.as_tensor(np.asarray(command), dtype=torch.int64)
                return _max_diff(deployed(frames.to(device), command.to(device)),
                                 session.run(None, {"frames": frames.numpy(), "command": command.numpy()}))
            if not model.recurrent:
                return _max_diff(deployed(frames.to(device)), session.run(None, {"frames": frames.numpy()}))
            steps = frames.unbind(1) if frames.dim() == 5 else (frames,)
            state = model.initial_state(len(frames)) if state is None else torch.as_tensor(state).to(device)
            ort_state = state.cpu().numpy().astype(np.float32)
            worst = 0.0
            for step in steps:
                ours = deployed(step.to(device), state)
                theirs = session.run(None, {"frames": step.numpy(), "state_in": ort_state})
                worst = max(worst, _max_diff(ours, theirs))
                state, ort_state = ours[-1], theirs[-1]
            return worst
    finally:
        model.train(was_training)


def _max_diff(ours: tuple[torch.Tensor, ...], theirs: list[np.ndarray]) -> float:
    if len(ours) != len(theirs):
        raise ValueError(f"the ONNX model has {len(theirs)} outputs, the torch model {len(ours)}")
    worst = 0.0
    for a, b in zip(ours, theirs):
        a = a.detach().cpu().numpy()
        if a.shape != b.shape:  # broadcasting would hide a wrong output shape
            raise ValueError(f"output shapes differ: torch {a.shape}, onnx {b.shape}")
        worst = max(worst, float(np.abs(a - b).max()))
    return worst
