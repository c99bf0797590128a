"""PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving Cars").

66 x 200 YUV frames, a fixed normalisation, five convolutions (24, 36, 48 channels with 5 x 5
kernels, stride 2; 64, 64 with 3 x 3, stride 1; no padding) to a 64 x 1 x 18 map (1152 features),
then fully connected layers of 100, 50 and 10 units and the output: 252,219 trainable parameters
with the point head.
"""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .base import SteeringModel, activation, he_init
from .config import ModelConfig

FEATURES = 1152  # 64 channels x 1 x 18 for a 66 x 200 frame


class PilotNetFeatures(nn.Sequential):
    """PilotNet's convolutional trunk: normalised (N, 3, 66, 200) -> (N, 1152)."""

    def __init__(self, act: str):
        layers: list[nn.Module] = []
        for c_in, c_out, k, s in ((3, 24, 5, 2), (24, 36, 5, 2), (36, 48, 5, 2), (48, 64, 3, 1), (64, 64, 3, 1)):
            layers += [nn.Conv2d(c_in, c_out, k, stride=s), activation(act)]
        super().__init__(*layers, nn.Flatten())
        he_init(self.modules())


class PilotNet(SteeringModel):
    """PilotNet: frames (N, 66, 200, 3) uint8/float RGB 0..255 -> head output (N, k)."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig()
        if config.arch != "pilotnet":
            raise ValueError(f"PilotNet needs a config with arch='pilotnet', got {config.arch!r}")
        super().__init__(config)
        self.features = PilotNetFeatures(config.activation)
        act = config.activation
        self.fc = nn.Sequential(
            nn.Linear(FEATURES, 100), activation(act),
            nn.Linear(100, 50), activation(act),
            nn.Linear(50, 10), activation(act),
            nn.Linear(10, config.outputs),
        )
        heads.init_output(self.fc[-1], config)
        he_init(self.fc[:-1].modules())  # the output layer keeps PyTorch's smaller default init

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self._input(frames, self.features[0].weight)
        return self._finish(self.fc(self.features(x)))
