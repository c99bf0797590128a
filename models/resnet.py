"""A larger reference policy: torchvision's ResNet-18, trained from scratch, on the same YUV input.

Never loads pretrained weights (`weights=None`): the benchmark compares architectures trained on the
same driving data only. Its BatchNorm layers make train and eval mode differ, unlike PilotNet.
"""

from __future__ import annotations

import torch
from torchvision.models import resnet18

from . import heads
from .base import SteeringModel
from .config import ModelConfig


class ResNet18Steer(SteeringModel):
    """ResNet-18 backbone, global average pool, linear head: frames (N, H, W, 3) -> (N, k)."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(arch="resnet18")
        if config.arch != "resnet18":
            raise ValueError(f"ResNet18Steer needs a config with arch='resnet18', got {config.arch!r}")
        super().__init__(config)
        # zero_init_residual: each block starts as the identity, which helps training from scratch.
        self.backbone = resnet18(weights=None, num_classes=config.outputs, zero_init_residual=True)
        heads.init_output(self.backbone.fc, config)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self._input(frames, self.backbone.conv1.weight)
        return self._finish(self.backbone(x))
