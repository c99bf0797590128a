"""The typed config of a steering policy; `build_model` turns it into a network."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Literal

from benchmark.common.config import require

Arch = Literal["pilotnet", "pilotnet-gru", "resnet18"]
Head = Literal["point", "gaussian"]
Activation = Literal["relu", "elu"]

# PilotNet's fully connected layers are sized for the 1 x 18 x 64 feature map of a 66 x 200 frame.
PILOTNET_SIZE = (66, 200)
RESNET_MIN_SIZE = 32


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a steering policy."""

    arch: Arch = "pilotnet"
    """Backbone: PilotNet (Bojarski et al. 2016), its features into a GRU, or torchvision ResNet-18 from scratch."""
    head: Head = "point"
    """Output head: point (curvature, MSE loss) or gaussian (mean and log-std of the curvature, Gaussian NLL loss)."""
    output_scale: float = 0.1
    """Fixed factor from the last layer's raw output to curvature [1/m], so raw outputs are O(1)."""
    activation: Activation = "relu"
    """Nonlinearity of PilotNet's layers and the GRU variant's head (relu trains faster on CPU than elu)."""
    gru_hidden: int = 64
    """Hidden size of the GRU of pilotnet-gru."""
    input_height: int = 66
    """Frame height [px]; PilotNet requires 66."""
    input_width: int = 200
    """Frame width [px]; PilotNet requires 200."""
    log_std_min: float = -9.0
    """Lower clamp of the gaussian head's log-std of the curvature (log of 1/m)."""
    log_std_max: float = 0.0
    """Upper clamp of the gaussian head's log-std of the curvature (log of 1/m)."""

    def __post_init__(self) -> None:
        for name, choices in (("arch", Arch), ("head", Head), ("activation", Activation)):
            allowed, value = typing.get_args(choices), getattr(self, name)
            require(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("gru_hidden", "input_height", "input_width"):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                    f"{name} must be a positive integer, got {value!r}")
        for name in ("output_scale", "log_std_min", "log_std_max"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                    f"{name} must be a finite number, got {value!r}")
        require(self.output_scale > 0, f"output_scale must be positive, got {self.output_scale}")
        require(self.log_std_min < self.log_std_max,
                f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        size = (self.input_height, self.input_width)
        if self.arch in ("pilotnet", "pilotnet-gru"):
            require(size == PILOTNET_SIZE,
                    f"{self.arch} requires {PILOTNET_SIZE[0]}x{PILOTNET_SIZE[1]} frames (input_height x input_width), "
                    f"got {size[0]}x{size[1]}; resize the camera or use arch='resnet18'")
        else:
            require(min(size) >= RESNET_MIN_SIZE,
                    f"resnet18 needs frames of at least {RESNET_MIN_SIZE}x{RESNET_MIN_SIZE}, got {size[0]}x{size[1]}")

    @property
    def outputs(self) -> int:
        """Width k of the head output: 1 (point) or 2 (gaussian: mean, log-std)."""
        return 1 if self.head == "point" else 2
