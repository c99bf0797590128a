"""The typed config of a steering policy; `build_model` turns it into a network."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Literal

from benchmark.common.config import require

Arch = Literal["pilotnet", "pilotnet-gru", "pilotnet-stack", "pilotnet-command", "pilotnet-branched", "pilotnet-options",
               "resnet18"]
Head = Literal["point", "gaussian", "mixture", "categorical"]
Activation = Literal["relu", "elu"]

# PilotNet's fully connected layers are sized for the 1 x 18 x 64 feature map of a 66 x 200 frame.
PILOTNET_SIZE = (66, 200)
RESNET_MIN_SIZE = 32


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a steering policy."""

    arch: Arch = "pilotnet"
    """Backbone: PilotNet (Bojarski et al. 2016), its features into a GRU, its features over a stack of past frames,
    PilotNet with a command input or with one branch per command (roads with forks: models/conditional.py), PilotNet
    with latent options (hierarchical imitation: models/options.py), or torchvision ResNet-18 from scratch."""
    head: Head = "point"
    """Output head: point (curvature, MSE loss), gaussian (mean and log-std, Gaussian NLL), mixture (K Gaussians,
    mixture NLL) or categorical (curvature bins, cross-entropy); see models/heads.py."""
    output_scale: float = 0.1
    """Fixed factor from the last layer's raw output to curvature [1/m], so raw outputs are O(1)."""
    activation: Activation = "relu"
    """Nonlinearity of PilotNet's layers and the GRU variant's head (relu trains faster on CPU than elu)."""
    gru_hidden: int = 64
    """Hidden size of the GRU of pilotnet-gru."""
    stack_frames: int = 5
    """Frames in the window of pilotnet-stack: the current one and stack_frames - 1 earlier ones (at least 2)."""
    stack_stride: int = 5
    """Steps between the frames of pilotnet-stack's window (5 x 4 = 20 steps: 2 s at 10 Hz)."""
    stack_channels: int = 64
    """Features per frame of pilotnet-stack's window (PilotNet's 1152 squeezed by a shared linear layer)."""
    commands: int = 3
    """Number of commands of pilotnet-command and pilotnet-branched (envs.forks.COMMANDS: follow, left, right)."""
    options: int = 4
    """Number K of latent options of pilotnet-options (models/options.py)."""
    option_std: float = 0.01
    """Std [1/m] of the Gaussian likelihood of pilotnet-options' low level in its evidence lower bound."""
    input_height: int = 66
    """Frame height [px]; PilotNet requires 66."""
    input_width: int = 200
    """Frame width [px]; PilotNet requires 200."""
    log_std_min: float = -9.0
    """Lower clamp of the log-std of the curvature (log of 1/m) of the gaussian head and of each mixture component."""
    log_std_max: float = 0.0
    """Upper clamp of the log-std of the curvature (log of 1/m) of the gaussian head and of each mixture component."""
    mixture_components: int = 2
    """Number K of Gaussian components of the mixture head (2: a frame's label may be one of two modes)."""
    categorical_bins: int = 61
    """Number B of equal curvature bins of the categorical head (odd, so that one bin is centred on 0)."""
    categorical_max: float = 0.18
    """Half-width R [1/m] of the categorical head's bins, B bins over [-R, R] with the edge bins open (labels beyond
    R fall into them); 0.18 covers the tightest curve the vehicle can drive (envs.MAX_CURVATURE, 0.179)."""

    def __post_init__(self) -> None:
        for name, choices in (("arch", Arch), ("head", Head), ("activation", Activation)):
            allowed, value = typing.get_args(choices), getattr(self, name)
            require(value in allowed, f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        for name in ("gru_hidden", "stack_frames", "stack_stride", "stack_channels", "commands", "options", "input_height",
                     "input_width",
                     "mixture_components", "categorical_bins"):
            value = getattr(self, name)
            require(isinstance(value, int) and not isinstance(value, bool) and value > 0,
                    f"{name} must be a positive integer, got {value!r}")
        for name in ("output_scale", "log_std_min", "log_std_max", "categorical_max", "option_std"):
            value = getattr(self, name)
            require(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
                    f"{name} must be a finite number, got {value!r}")
        require(self.output_scale > 0, f"output_scale must be positive, got {self.output_scale}")
        require(self.option_std > 0, f"option_std must be positive, got {self.option_std}")
        require(self.stack_frames >= 2, f"stack_frames must be at least 2, got {self.stack_frames}")
        require(self.categorical_bins >= 2, f"categorical_bins must be at least 2, got {self.categorical_bins}")
        require(self.categorical_max > 0, f"categorical_max must be positive, got {self.categorical_max}")
        require(self.log_std_min < self.log_std_max,
                f"log_std_min ({self.log_std_min}) must be below log_std_max ({self.log_std_max})")
        size = (self.input_height, self.input_width)
        if self.arch != "resnet18":
            require(size == PILOTNET_SIZE,
                    f"{self.arch} requires {PILOTNET_SIZE[0]}x{PILOTNET_SIZE[1]} frames (input_height x input_width), "
                    f"got {size[0]}x{size[1]}; resize the camera or use arch='resnet18'")
        else:
            require(min(size) >= RESNET_MIN_SIZE,
                    f"resnet18 needs frames of at least {RESNET_MIN_SIZE}x{RESNET_MIN_SIZE}, got {size[0]}x{size[1]}")

    @property
    def outputs(self) -> int:
        """Width k of the head output: 1 (point), 2 (gaussian: mean, log-std), 3K (mixture: K logits, K means,
        K log-stds) or B (categorical: one logit per bin)."""
        return {"point": 1, "gaussian": 2, "mixture": 3 * self.mixture_components,
                "categorical": self.categorical_bins}[self.head]
