"""Build a steering policy from its ModelConfig."""

from __future__ import annotations

from typing import Any

from benchmark.common.config import build_config

from .base import SteeringModel
from .conditional import PilotNetBranched, PilotNetCommand
from .config import ModelConfig
from .frame_stack import PilotNetStack
from .options import PilotNetOptions
from .pilotnet import PilotNet
from .recurrent import PilotNetGRU
from .resnet import ResNet18Steer

ARCHITECTURES: dict[str, type[SteeringModel]] = {
    "pilotnet": PilotNet,
    "pilotnet-gru": PilotNetGRU,
    "pilotnet-stack": PilotNetStack,
    "pilotnet-command": PilotNetCommand,
    "pilotnet-branched": PilotNetBranched,
    "pilotnet-options": PilotNetOptions,
    "resnet18": ResNet18Steer,
}


def build_model(config: ModelConfig | dict[str, Any] | None = None) -> SteeringModel:
    """A freshly initialised model for `config` (a ModelConfig, a mapping of its fields, or None)."""
    config = build_config(ModelConfig, config)
    return ARCHITECTURES[config.arch](config)
