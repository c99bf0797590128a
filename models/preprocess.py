"""Fixed in-model preprocessing: RGB frames in 0..255 to normalised YUV planes, NCHW.

PilotNet (Bojarski et al. 2016) feeds YUV planes through a hard-coded normalisation layer. Doing it
inside the model keeps training, the simulator loop and the exported ONNX graph on the same raw
uint8 frames, so a deployment cannot forget or mismatch it.
"""

from __future__ import annotations

import torch
from torch import nn

# BT.601 analogue RGB -> YUV (Y in 0..1 of full scale, U in +-0.436, V in +-0.615 of it).
RGB_TO_YUV = (
    (0.299, 0.587, 0.114),
    (-0.14713, -0.28886, 0.436),
    (0.615, -0.51499, -0.10001),
)
# Per-plane affine to about [-1, 1] for inputs in 0..255.
YUV_SCALE = (1 / 127.5, 1 / (0.436 * 255), 1 / (0.615 * 255))
YUV_OFFSET = (-1.0, 0.0, 0.0)


class YUVNormalize(nn.Module):
    """(N, H, W, 3) RGB in 0..255 (uint8 or float) -> (N, 3, H, W) float32 normalised YUV.

    Permuting channel-last frames already gives NCHW with channels_last strides, which is what
    channels_last convolutions want; `contiguous=True` copies to plain NCHW for models kept in that
    format. The output keeps the input's memory format.
    """

    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width
        matrix = torch.tensor(YUV_SCALE, dtype=torch.float64)[:, None] * torch.tensor(RGB_TO_YUV, dtype=torch.float64)
        # Non-persistent buffers: fixed constants of the architecture, not weights to save or load.
        # Stored as a 1 x 1 convolution: on the permuted frames oneDNN runs it ~10x faster than a
        # matmul over the channel-last dimension.
        self.register_buffer("matrix", matrix.to(torch.float32)[:, :, None, None], persistent=False)
        self.register_buffer("offset", torch.tensor(YUV_OFFSET, dtype=torch.float32), persistent=False)

    def forward(self, frames: torch.Tensor, contiguous: bool = False) -> torch.Tensor:
        check_frames(frames, self.height, self.width)
        x = frames.to(torch.float32).permute(0, 3, 1, 2)
        if contiguous:
            x = x.contiguous()
        return nn.functional.conv2d(x, self.matrix, self.offset)

    def extra_repr(self) -> str:
        return f"height={self.height}, width={self.width}"


def check_frames(frames: torch.Tensor, height: int, width: int) -> None:
    """Raise a clear error unless `frames` is a (N, height, width, 3) uint8 or floating tensor."""
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a torch.Tensor, got {type(frames).__name__}")
    if frames.dtype != torch.uint8 and not frames.is_floating_point():
        raise TypeError(f"frames must be uint8 or floating point (values 0..255), got {frames.dtype}")
    if frames.dim() != 4 or tuple(frames.shape[1:]) != (height, width, 3):
        raise ValueError(f"frames must have shape (N, {height}, {width}, 3) (RGB, channel-last), "
                         f"got {tuple(frames.shape)}")
