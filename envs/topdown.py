"""Top-down pictures of a track: the whole map, or a heading-up chase view, with cars and paths.

Each function returns an RGB image and the 3x3 matrix taking world (x, y, 1) to its pixels, so
callers can draw more (trajectories, lookahead points) in the same frame.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .camera import ASPHALT, MapTexture
from .vehicle import LENGTH_M, WIDTH_M


def map_image(texture: MapTexture, max_size: int = 900,
              bounds: tuple[float, float, float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The map (or its part inside world `bounds` xmin, ymin, xmax, ymax) scaled to fit max_size px."""
    level = 0
    if bounds is None:
        x0, y0 = texture.origin
        h, w = texture.levels[0].shape[:2]
        bounds = (x0, y0, x0 + w / texture.ppm, y0 + h / texture.ppm)
    extent = max(bounds[2] - bounds[0], bounds[3] - bounds[1]) * texture.ppm
    while level + 1 < len(texture.levels) and extent / 2 ** (level + 1) > max_size:
        level += 1
    A = texture.world_to_pixel(level)
    (u0, v0), (u1, v1) = (A[:2, :2] @ np.array(bounds[:2]) + A[:2, 2]), (A[:2, :2] @ np.array(bounds[2:]) + A[:2, 2])
    img = texture.levels[level]
    u0, v0 = max(int(u0), 0), max(int(v0), 0)
    u1, v1 = min(int(math.ceil(u1)), img.shape[1]), min(int(math.ceil(v1)), img.shape[0])
    crop = img[v0:v1, u0:u1]
    scale = min(1.0, max_size / max(crop.shape[:2]))
    out = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else crop.copy()
    M = np.diag([scale, scale, 1.0]) @ np.array([[1.0, 0, -u0], [0, 1.0, -v0], [0, 0, 1.0]]) @ A
    return out, M


def chase_view(texture: MapTexture, x: float, y: float, heading: float, size: int = 320,
               ppm: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """A square heading-up view around (x, y), the car two thirds of the way down."""
    ch, sh = math.cos(heading), math.sin(heading)
    u0, v0 = 0.5 * size, 0.65 * size
    # screen (u, v) -> world: forward = (v0 - v) / ppm, right = (u - u0) / ppm
    screen_to_world = np.array([
        [-sh / ppm, -ch / ppm, x + (sh * u0 + ch * v0) / ppm],
        [ch / ppm, -sh / ppm, y + (-ch * u0 + sh * v0) / ppm],
        [0.0, 0.0, 1.0],
    ])
    M = (texture.world_to_pixel(0) @ screen_to_world)[:2]
    out = cv2.warpAffine(texture.levels[0], M, (size, size), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=ASPHALT)
    return out, np.linalg.inv(screen_to_world)


def to_pixels(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    xy = np.asarray(xy, float).reshape(-1, 2)
    return xy @ M[:2, :2].T + M[:2, 2]


def draw_car(img: np.ndarray, M: np.ndarray, x: float, y: float, heading: float,
             color: tuple[int, int, int], length: float = LENGTH_M, width: float = WIDTH_M,
             min_px: float = 0.0) -> None:
    """A car as a filled rectangle (at least min_px long on screen, so it shows on small maps)."""
    scale = math.sqrt(abs(np.linalg.det(M[:2, :2])))
    grow = max(1.0, min_px / max(length * scale, 1e-9))
    c, s = math.cos(heading), math.sin(heading)
    hl, hw = grow * length / 2, grow * width / 2
    local = np.array([[hl, -hw], [hl, hw], [-hl, hw], [-hl, -hw]])
    corners = local @ np.array([[c, s], [-s, c]]) + (x, y)
    pts = np.round(to_pixels(M, corners) * 16).astype(np.int32)
    cv2.fillConvexPoly(img, pts, color, cv2.LINE_AA, shift=4)
