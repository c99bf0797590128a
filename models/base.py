"""The interface shared by every steering policy, whatever its backbone."""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .config import ModelConfig
from .preprocess import YUVNormalize


class SteeringModel(nn.Module):
    """Base class: camera frames (N, H, W, 3) RGB 0..255 -> head output (N, k), k = config.outputs.

    Feedforward models implement `forward(frames) -> out`; recurrent ones (`recurrent = True`)
    `forward(frames, state) -> (out, new_state)`. `out` holds the head's distribution in physical
    units (see `models.heads`); `curvature(out)` is the one curvature [1/m] a policy drives.
    Conditional ones (`conditional = True`, models.conditional) take a command as well:
    `forward(frames, command) -> out`.
    """

    recurrent: bool = False
    conditional: bool = False

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.preprocess = YUVNormalize(config.input_height, config.input_width)

    def _input(self, frames: torch.Tensor, first_weight: torch.Tensor) -> torch.Tensor:
        # Follow the convolutions' memory format: oneDNN goes channels_last if either the input or
        # the weight is, so a plain-NCHW model must get a contiguous copy to really run NCHW.
        channels_last = first_weight.is_contiguous(memory_format=torch.channels_last)
        return self.preprocess(frames, contiguous=not channels_last)

    def _finish(self, raw: torch.Tensor) -> torch.Tensor:
        return heads.finish(raw, self.config)

    def curvature(self, out: torch.Tensor) -> torch.Tensor:
        """Curvature [1/m] a policy drives for a head output, (N, 1): the gaussian's mean, the mixture's most
        probable component's mean, the categorical head's most probable bin's centre (see models.heads)."""
        return heads.curvature(out, self.config)

    def loss(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar training loss: MSE (point), Gaussian or mixture NLL, or the bins' cross-entropy (categorical),
        optionally weighted per sample."""
        return heads.loss(out, target, self.config, weight)

    def nll(self, out: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Mean NLL [nats] of `target` under the predictive density (not for the point head); see heads.nll."""
        return heads.nll(out, target, self.config, weight)

    def sample(self, out: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A curvature (N, 1) drawn from the predictive distribution (torch only, never exported)."""
        return heads.sample(out, self.config, generator)

    def initial_state(self, batch_size: int) -> torch.Tensor | None:
        """The state before the first frame: None for feedforward models."""
        return None

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class RecurrentSteeringModel(SteeringModel):
    """A model with state: `forward_sequence(frames (N, T, H, W, 3), state) -> (out (N, T, k), state)`, and
    one step of it, `forward(frames (N, H, W, 3), state) -> (out (N, k), state)`; a state of None is the
    initial one. Subclasses implement `initial_state` and `_sequence` (frames already checked)."""

    recurrent = True

    def forward(self, frames: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: frames (N, H, W, 3), state or None (the initial state) -> (out (N, k), new state)."""
        if frames.dim() != 4:
            raise ValueError(f"forward takes one step of frames (N, H, W, 3), got {tuple(frames.shape)}; "
                             "use forward_sequence for (N, T, H, W, 3)")
        out, state = self.forward_sequence(frames.unsqueeze(1), state)
        return out[:, 0], state

    def forward_sequence(self, frames: torch.Tensor, state: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (N, T, H, W, 3), state or None -> (out (N, T, k), the state after the last step)."""
        if frames.dim() != 5:
            raise ValueError(f"forward_sequence needs frames of shape (N, T, H, W, 3), got {tuple(frames.shape)}")
        n = frames.shape[0]
        if state is None:
            state = self.initial_state(n)
        elif state.shape != (want := (n, *self.initial_state(1).shape[1:])):
            raise ValueError(f"state must have shape {want}, got {tuple(state.shape)}")
        return self._sequence(frames, state)

    def _sequence(self, frames: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def he_init(modules) -> None:
    """Kaiming-normal weights and zero biases for the convolutions and linear layers in `modules`.

    PyTorch's default init shrinks the signal layer by layer; through PilotNet's eight layers the
    features of different frames become nearly identical and training stalls at the target mean.
    """
    for m in modules:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)


def activation(name: str) -> nn.Module:
    """The nonlinearity named by ModelConfig.activation."""
    return nn.ReLU(inplace=True) if name == "relu" else nn.ELU(inplace=True)
