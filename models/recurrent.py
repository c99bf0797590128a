"""PilotNet with memory: its convolutional features into a GRU, for partially observed driving.

A single frame does not show the car's lateral velocity or where a half-seen curve is going; a GRU
over PilotNet's 1152 convolutional features can integrate them. The GRU takes the place of
PilotNet's first fully connected layer; the head keeps PilotNet's 50 and 10 unit layers.
"""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .base import RecurrentSteeringModel, activation, he_init
from .config import ModelConfig
from .pilotnet import FEATURES, PilotNetFeatures


class PilotNetGRU(RecurrentSteeringModel):
    """Frames (N, 66, 200, 3) and state (N, hidden) -> (head output (N, k), new state (N, hidden)); whole
    sequences (N, T, 66, 200, 3) through `forward_sequence`."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(arch="pilotnet-gru")
        if config.arch != "pilotnet-gru":
            raise ValueError(f"PilotNetGRU needs a config with arch='pilotnet-gru', got {config.arch!r}")
        super().__init__(config)
        self.features = PilotNetFeatures(config.activation)
        self.gru = nn.GRU(FEATURES, config.gru_hidden, batch_first=True)
        act = config.activation
        self.head = nn.Sequential(
            nn.Linear(config.gru_hidden, 50), activation(act),
            nn.Linear(50, 10), activation(act),
            nn.Linear(10, config.outputs),
        )
        heads.init_output(self.head[-1], config)
        he_init(self.head[:-1].modules())  # the output layer keeps PyTorch's smaller default init

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zeros (batch_size, gru_hidden): the state before the first frame of an episode."""
        ref = self.head[0].weight
        return torch.zeros(batch_size, self.config.gru_hidden, dtype=ref.dtype, device=ref.device)

    def _sequence(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, t = frames.shape[:2]
        # The convolutions see all N * T frames as one batch; only the GRU runs step by step.
        x = self._input(frames.flatten(0, 1), self.features[0].weight)
        feats = self.features(x).unflatten(0, (n, t))
        seq, last = self.gru(feats, state.unsqueeze(0))
        return self._finish(self.head(seq)), last[0]
