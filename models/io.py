"""Saving and loading steering policies: safetensors weights plus a JSON config, never pickle.

A model directory holds

    config.json        {"format": 1, <ModelConfig fields>}
    model.safetensors  the state dict (trainable weights and persistent buffers such as BatchNorm's)

Loading builds the architecture from config.json (strictly: an unknown key is an error) and reads
the tensors with safetensors, which parses a JSON header and raw bytes and cannot execute code, so a
model directory from an untrusted source is safe to open; `torch.load` is never called.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from benchmark.common.config import ConfigError, build_config
from benchmark.common.files import atomic_path, write_text_atomic

from .base import SteeringModel
from .config import ModelConfig
from .factory import build_model

FORMAT = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


class ModelFileError(ValueError):
    """A model directory whose config or weights cannot be used; the message names the file."""


def save_model(model: SteeringModel, directory: str | os.PathLike) -> Path:
    """Write `model`'s config.json and model.safetensors into `directory` (created); returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # safetensors needs contiguous CPU tensors; channels_last weights are saved in standard layout.
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = {"format": FORMAT, **dataclasses.asdict(model.config)}
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    write_text_atomic(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def load_model(directory: str | os.PathLike, map_location: str | torch.device = "cpu") -> SteeringModel:
    """The model saved in `directory`, on `map_location`, in eval mode."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE}")
    model = build_model(read_config(config_path))
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as exc:  # safetensors raises its own error types for any malformed file
        raise ModelFileError(f"{weights_path}: not a valid safetensors file ({exc}); "
                             "weights are never read from pickles") from exc
    _check_tensors(model, tensors, weights_path)
    model.load_state_dict(tensors, strict=True)
    return model.to(map_location).eval()


def read_config(path: str | os.PathLike) -> ModelConfig:
    """The ModelConfig of a config.json; errors name the file (and an unknown key)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: expected a JSON object, got {type(data).__name__}")
    data = dict(data)
    version = data.pop("format", None)
    if version != FORMAT:
        raise ModelFileError(f"{path}: unsupported format {version!r}; this version reads format {FORMAT}")
    try:
        return build_config(ModelConfig, data, where=str(path))
    except ConfigError as exc:  # value errors from ModelConfig's own checks do not name the file yet
        if str(exc).startswith(str(path)):
            raise
        raise ConfigError(f"{path}: {exc}") from exc




def _check_tensors(model: SteeringModel, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Raise ModelFileError unless `tensors` match the model's state dict in names, shapes, dtypes."""
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    for k, v in tensors.items():
        if k in expected and (v.shape != expected[k].shape or v.dtype != expected[k].dtype):
            problems.append(f"{k} is {v.dtype} {tuple(v.shape)}, expected {expected[k].dtype} "
                            f"{tuple(expected[k].shape)}")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ModelFileError(f"{path}: weights do not match the architecture of {CONFIG_FILE}: "
                             f"{'; '.join(problems[:5])}{more}")


