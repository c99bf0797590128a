"""Command-conditioned PilotNet, for roads with choices (conditional imitation learning, Codevilla et al. 2018).

At a fork the frame does not say which branch to take; the command does (envs.forks.COMMANDS: 0 follow,
1 left, 2 right). Two ways of giving it to PilotNet, both after the convolutional features:

- `pilotnet-command`: the command, one-hot, joins the 1152 features at the input of the fully connected
  layers (Codevilla's "command input");
- `pilotnet-branched`: one copy of the fully connected layers per command, the command picking the branch
  whose output is used (Codevilla's "branched" network); a branch learns only from its command's samples.
"""

from __future__ import annotations

import torch
from torch import nn

from . import heads
from .base import SteeringModel, activation, he_init
from .config import ModelConfig
from .pilotnet import FEATURES, PilotNetFeatures


def _fc(inputs: int, config: ModelConfig) -> nn.Sequential:
    act = config.activation
    fc = nn.Sequential(
        nn.Linear(inputs, 100), activation(act),
        nn.Linear(100, 50), activation(act),
        nn.Linear(50, 10), activation(act),
        nn.Linear(10, config.outputs),
    )
    heads.init_output(fc[-1], config)
    he_init(fc[:-1].modules())  # the output layer keeps PyTorch's smaller default init
    return fc


class ConditionalSteeringModel(SteeringModel):
    """frames (N, 66, 200, 3) and command (N,) integer codes -> head output (N, k)."""

    conditional = True
    ARCH: str = ""
    """The ModelConfig.arch of the subclass."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(arch=self.ARCH)
        if config.arch != self.ARCH:
            raise ValueError(f"{type(self).__name__} needs a config with arch={self.ARCH!r}, got {config.arch!r}")
        super().__init__(config)
        self.features = PilotNetFeatures(config.activation)

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(self._input(frames, self.features[0].weight))

    def _command(self, command: torch.Tensor, n: int) -> torch.Tensor:
        command = torch.as_tensor(command).reshape(-1)
        if command.shape[0] != n:
            raise ValueError(f"one command per frame: {n} frames, {command.shape[0]} commands")
        if command.dtype.is_floating_point or command.dtype == torch.bool:
            raise TypeError(f"commands are integer codes (0 follow, 1 left, 2 right), got {command.dtype}")
        # Out-of-range codes are clamped, not refused: data-dependent checks cannot be traced into the graph.
        return command.long().clamp(0, self.config.commands - 1)


class PilotNetCommand(ConditionalSteeringModel):
    """PilotNet with the one-hot command at the input of its fully connected layers."""

    ARCH = "pilotnet-command"

    def __init__(self, config: ModelConfig | None = None):
        super().__init__(config)
        self.fc = _fc(FEATURES + self.config.commands, self.config)

    def forward(self, frames: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        x = self._features(frames)
        onehot = nn.functional.one_hot(self._command(command, x.shape[0]), self.config.commands).to(x.dtype)
        return self._finish(self.fc(torch.cat([x, onehot], dim=1)))


class PilotNetBranched(ConditionalSteeringModel):
    """PilotNet's features into one branch of fully connected layers per command; the command picks one."""

    ARCH = "pilotnet-branched"

    def __init__(self, config: ModelConfig | None = None):
        super().__init__(config)
        self.branches = nn.ModuleList(_fc(FEATURES, self.config) for _ in range(self.config.commands))

    def forward(self, frames: torch.Tensor, command: torch.Tensor) -> torch.Tensor:
        x = self._features(frames)
        command = self._command(command, x.shape[0])
        raw = torch.stack([branch(x) for branch in self.branches], dim=1)  # (N, commands, k)
        # A one-hot mask picks the branch (a gather loses the output's width in ONNX shape inference); the
        # other branches get exactly zero gradient.
        pick = nn.functional.one_hot(command, self.config.commands).to(raw.dtype).unsqueeze(2)
        return self._finish((raw * pick).sum(dim=1))
