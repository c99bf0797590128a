"""SteerBench steering policies: camera frames (N, 66, 200, 3) uint8 RGB -> curvature (N, 1) in 1/m.

    model = build_model(ModelConfig(arch="pilotnet", head="point"))
    out = model(frames)                      # (N, k); recurrent: out, state = model(frames, state)
    kappa = model.curvature(out)             # (N, 1), positive turns right (the head's run-time choice)
    model.loss(out, target_kappa).backward()
    save_model(model, "runs/x/model"); model = load_model("runs/x/model")
    export_onnx(model, "runs/x/model.onnx")

Architectures: PilotNet (Bojarski et al. 2016), PilotNetGRU (its features into a GRU), PilotNetStack
(over a window of past frames), PilotNetCommand and PilotNetBranched (conditioned on a command:
out = model(frames, command)) and ResNet18Steer (torchvision ResNet-18 from scratch); each takes the
point, gaussian, mixture or categorical head (models/heads.py).
"""

from benchmark.common.files import sha256_file as model_sha256

from .base import SteeringModel
from .conditional import PilotNetBranched, PilotNetCommand
from .config import ModelConfig
from .factory import ARCHITECTURES, build_model
from .frame_stack import PilotNetStack
from .inference import infer
from .io import ModelFileError, load_model, save_model
from .onnx_export import export_onnx, onnx_parity
from .pilotnet import PilotNet
from .recurrent import PilotNetGRU
from .resnet import ResNet18Steer

__all__ = [
    "ARCHITECTURES",
    "ModelConfig",
    "ModelFileError",
    "PilotNet",
    "PilotNetBranched",
    "PilotNetCommand",
    "PilotNetGRU",
    "PilotNetStack",
    "ResNet18Steer",
    "SteeringModel",
    "build_model",
    "export_onnx",
    "infer",
    "load_model",
    "model_sha256",
    "onnx_parity",
    "save_model",
]
