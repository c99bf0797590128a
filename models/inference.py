"""Batched inference: camera frames in, curvatures out, without gradients, on the model's device."""

from __future__ import annotations

import numpy as np
import torch

from .base import SteeringModel


def infer(model: SteeringModel, frames: np.ndarray, state: torch.Tensor | None = None,
          rows: np.ndarray | None = None, commands: np.ndarray | None = None) -> tuple[np.ndarray, torch.Tensor | None]:
    """Curvatures (N,) float64 [1/m] of uint8 frames (N, H, W, 3), and the state.

    A recurrent model reads `state[rows]` (the states of these frames' episodes) and writes the new
    states back into `state`, which is returned; a feed-forward model ignores both. A conditional
    model takes `commands`, (N,) integer codes (FOLLOW, 0, for every frame when None).
    """
    device = next(model.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
        if model.recurrent:
            idx = torch.as_tensor(np.asarray(rows), device=device)
            out, new_state = model(x, state[idx])
            state[idx] = new_state
        elif model.conditional:
            c = np.zeros(len(frames), np.int64) if commands is None else np.asarray(commands, np.int64)
            out = model(x, torch.from_numpy(c).to(device))
        else:
            out = model(x)
        return model.curvature(out).float().cpu().numpy().reshape(-1).astype(np.float64), state
