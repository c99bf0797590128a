"""PilotNet over a stack of past frames: memory as a fixed window, for partially observed driving.

The classic alternative to a recurrent state (Mnih et al.'s frame stack): the policy sees the current
frame and `stack_frames - 1` earlier ones, `stack_stride` steps apart, so a window of
(stack_frames - 1) * stack_stride steps (2 s by default, as long as the memory task's longest camera
dropout). Every frame goes through PilotNet's convolutions once and is squeezed to `stack_channels`
features (a shared linear layer); the window's features are concatenated into PilotNet's fully
connected layers. The features of the window's past steps are the state, so the model runs through
the recurrent interface (`forward(frames, state) -> (out, state)`, the ONNX graph's state_in /
state_out) and the harness carries it like a GRU's. Before an episode's first frame the window holds
zeros.
"""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .base import RecurrentSteeringModel, activation, he_init
from .config import ModelConfig
from .pilotnet import FEATURES, PilotNetFeatures


class PilotNetStack(RecurrentSteeringModel):
    """Frames (N, 66, 200, 3) and state (N, span * C) -> (head output (N, k), new state (N, span * C)),
    span = (stack_frames - 1) * stack_stride past steps of C = stack_channels features, oldest first."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(arch="pilotnet-stack")
        if config.arch != "pilotnet-stack":
            raise ValueError(f"PilotNetStack needs a config with arch='pilotnet-stack', got {config.arch!r}")
        super().__init__(config)
        act = config.activation
        self.features = PilotNetFeatures(act)
        self.squeeze = nn.Sequential(nn.Linear(FEATURES, config.stack_channels), activation(act))
        self.fc = nn.Sequential(
            nn.Linear(config.stack_frames * config.stack_channels, 100), activation(act),
            nn.Linear(100, 50), activation(act),
            nn.Linear(50, 10), activation(act),
            nn.Linear(10, config.outputs),
        )
        heads.init_output(self.fc[-1], config)
        he_init(list(self.squeeze.modules()) + list(self.fc[:-1].modules()))
        # Where step j of a sequence finds its window in [past steps, the sequence's steps]: the
        # positions span + j - stride * (stack_frames - 1 - i), i = 0 (oldest) .. stack_frames - 1.
        self.register_buffer("_offsets", config.stack_stride * torch.arange(config.stack_frames - 1, -1, -1),
                             persistent=False)

    @property
    def span(self) -> int:
        """Past steps the window reaches back."""
        return (self.config.stack_frames - 1) * self.config.stack_stride

    def initial_state(self, batch_size: int) -> torch.Tensor:
        """Zeros (batch_size, span * stack_channels): no frame seen yet."""
        ref = self.fc[0].weight
        return torch.zeros(batch_size, self.span * self.config.stack_channels, dtype=ref.dtype, device=ref.device)

    def _sequence(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, t = frames.shape[:2]
        c, span = self.config.stack_channels, self.span
        x = self._input(frames.flatten(0, 1), self.features[0].weight)
        z = self.squeeze(self.features(x)).unflatten(0, (n, t))  # (N, T, C)
        full = torch.cat([state.reshape(-1, span, c).to(z.dtype), z], dim=1)  # (N, span + T, C)
        index = span + torch.arange(t, device=z.device)[:, None] - self._offsets[None, :]  # (T, stack_frames)
        window = full[:, index]  # (N, T, stack_frames, C)
        out = self._finish(self.fc(window.flatten(2)))
        return out, full[:, t:].reshape(-1, span * c)  # a fixed state width in the ONNX graph
