"""A dashboard steering indicator drawn into the camera frame: the causal-confusion task (issue 14).

de Haan et al. (2019), "Causal confusion in imitation learning": when the observation shows the car's
own previous action, behaviour cloning can learn to read it instead of the road. The demonstrator
steers smoothly, so on the demonstrations its previous curvature predicts the next one almost exactly:
the held-out loss improves, but in closed loop the model copies its own last action, and a mistake (or
a gust) is never corrected. A dashboard gauge along the bottom of the frame leaks that action here.

The gauge is a dark bar `width_px` x `height_px` px along the bottom of the frame (where a dashboard
would be), with a white tick at its centre and a bright fill from the centre towards the curvature (to
the right for a right turn, positive; its ends are +-`full_scale_per_m`, clipped). The fill's last
pixel is drawn with its fractional coverage, so the gauge varies continuously with the curvature. At
the defaults one pixel is 0.08 / 98 = 0.0008 1/m: legible enough that PilotNet reads it (a gauge of 48
px at +-0.1 1/m, 0.004 1/m per pixel, was not: with the zoo's BC recipe its training loss after 15
epochs was 9.7e-6 (1/m)^2 against the plain model's 9.6e-6, where this one's is 4.0e-6 by epoch 8).

The environment draws the curvature it executed at the previous step (after the disturbance's
actuator noise, as a steering-wheel gauge would; 0 after a reset); training draws the recorded
executed action of the previous step (benchmark.training.augment), with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.common.config import require

BACKGROUND = (35, 35, 40)
TICK = (235, 235, 235)
FILL = (255, 150, 20)


@dataclass(frozen=True)
class IndicatorConfig:
    """The steering gauge drawn into each observation (the causal-confusion condition)."""

    full_scale_per_m: float = 0.08
    """Curvature at either end of the gauge [1/m]; larger values are drawn at the end."""
    width_px: int = 196
    """Width of the gauge [px] (even: the tick sits between its two middle columns)."""
    height_px: int = 8
    """Height of the gauge [px]."""
    margin_px: int = 2
    """Gap between the gauge and the frame's left and bottom edges [px]."""

    def __post_init__(self) -> None:
        require(self.full_scale_per_m > 0, f"indicator full_scale_per_m must be positive, got {self.full_scale_per_m}")
        require(self.width_px >= 4 and self.width_px % 2 == 0, f"indicator width_px must be even and >= 4, got {self.width_px}")
        require(self.height_px >= 1 and self.margin_px >= 0, "indicator height_px must be >= 1 and margin_px >= 0")

    def region(self, height: int, width: int) -> tuple[slice, slice]:
        """The (rows, columns) of the gauge in a frame of this size."""
        require(self.width_px + self.margin_px <= width and self.height_px + self.margin_px <= height,
                f"the indicator ({self.width_px} x {self.height_px} px) does not fit a {width} x {height} frame")
        r1 = height - self.margin_px
        c0 = self.margin_px
        return slice(r1 - self.height_px, r1), slice(c0, c0 + self.width_px)


def gauge(curvature: float, config: IndicatorConfig) -> np.ndarray:
    """The gauge's pixels, (height_px, width_px, 3) uint8, for a curvature [1/m]."""
    half = config.width_px // 2
    value = float(np.clip(curvature / config.full_scale_per_m, -1.0, 1.0)) * half  # filled columns, signed
    # column j's coverage by the fill: the right half fills from its left edge, the left half from its right
    j = np.arange(half, dtype=np.float64)
    cover_right = np.clip(value - j, 0.0, 1.0)
    cover_left = np.clip(-value - j, 0.0, 1.0)[::-1]
    cover = np.concatenate([cover_left, cover_right])[:, None]
    row = np.asarray(BACKGROUND, np.float64) + cover * (np.asarray(FILL, np.float64) - np.asarray(BACKGROUND, np.float64))
    out = np.repeat(np.rint(row)[None].astype(np.uint8), config.height_px, axis=0)
    out[: max(1, config.height_px // 3), half - 1 : half + 1] = TICK  # the centre mark stays visible
    return out


def draw_indicator(frame: np.ndarray, curvature: float, config: IndicatorConfig) -> np.ndarray:
    """`frame` (H, W, 3) uint8 with the gauge of `curvature` drawn in (in place; returned)."""
    rows, cols = config.region(frame.shape[0], frame.shape[1])
    frame[rows, cols] = gauge(curvature, config)
    return frame


def blank_indicator(frame: np.ndarray, config: IndicatorConfig) -> np.ndarray:
    """`frame` with the gauge's region all background, without its tick: no reading, told apart from a
    reading of 0 (the dropout remedy of training; in place)."""
    rows, cols = config.region(frame.shape[0], frame.shape[1])
    frame[rows, cols] = BACKGROUND
    return frame
