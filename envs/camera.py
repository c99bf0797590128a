"""The dashcam: pinhole cameras rendered as ground-plane homographies of a top-down map texture.

The whole track is drawn once, top-down, into a map texture (grass, asphalt, and the lane markings
drawn by highway-env's own `LaneGraphics`, so striped and continuous lines are as highway-env
defines them). A camera view is then a perspective warp of that map: every image row below the
horizon sees the flat ground, so one 3x3 homography per view maps image pixels to map pixels
(`cv2.warpPerspective`). Far rows cover metres of ground per pixel; sampling the full-resolution
map there shimmers, so each band of rows samples the level of a mip pyramid (`cv2.pyrDown`) whose
texel matches its footprint. Rows above the horizon are sky, far ground fades into haze, and other
vehicles and obstacles are drawn as shaded boxes.

Conventions: world x, y as in highway-env (y points down on its screen, so a positive heading
change turns right); camera axes x right, y down, z forward; a camera pose is the ground point
under the lens plus the heading of its optical axis.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from benchmark.common.config import require

from .tracks import Track

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

GRASS = (86, 122, 58)
ASPHALT = (72, 72, 76)
MARKING = (235, 235, 228)
SKY_TOP = (96, 150, 215)
SKY_HORIZON = (190, 210, 230)
VEHICLE_HEIGHT_M = 1.5


@dataclass(frozen=True)
class CameraConfig:
    """The dashcam rig: one pinhole model for the centre, left and right cameras."""

    width: int = 200
    """Image width [px] (PilotNet: 200)."""
    height: int = 66
    """Image height [px] (PilotNet: 66)."""
    hfov_deg: float = 70.0
    """Horizontal field of view [degrees]."""
    mount_height_m: float = 1.4
    """Height of the lens above the ground [m]."""
    pitch_deg: float = 6.0
    """Downward pitch of the optical axis [degrees]."""
    forward_offset_m: float = 1.0
    """Distance of the lens ahead of the vehicle's centre [m]."""
    side_offset_m: float = 0.8
    """Lateral offset of the left and right cameras from the centre camera [m]."""
    max_range_m: float = 400.0
    """Ground beyond this distance is not drawn (haze and sky) [m]."""
    haze_distance_m: float = 250.0
    """Distance over which far ground fades towards the horizon colour [m]."""
    map_ppm: float = 8.0
    """Resolution of the top-down map texture [pixels per metre]."""

    def __post_init__(self) -> None:
        require(16 <= self.width <= 2048 and 16 <= self.height <= 2048, "camera width and height must be 16..2048 px")
        require(10.0 <= self.hfov_deg <= 150.0, f"hfov_deg must be 10..150, got {self.hfov_deg}")
        require(0.3 <= self.mount_height_m <= 5.0, f"mount_height_m must be 0.3..5 m, got {self.mount_height_m}")
        require(-10.0 <= self.pitch_deg <= 45.0, f"pitch_deg must be -10..45, got {self.pitch_deg}")
        require(0.0 <= self.side_offset_m <= 3.0, f"side_offset_m must be 0..3 m, got {self.side_offset_m}")
        require(2.0 <= self.map_ppm <= 32.0, f"map_ppm must be 2..32 px/m, got {self.map_ppm}")
        require(self.max_range_m > 10 and self.haze_distance_m > 0, "max_range_m and haze_distance_m must be positive")


class MapTexture:
    """The track drawn top-down into an RGB pyramid; level k has map_ppm / 2**k pixels per metre."""

    MAX_PIXELS = 28_000_000

    def __init__(self, track: Track, ppm: float, margin_m: float = 60.0):
        x0, y0, x1, y1 = track.bounds(margin_m)
        # Keep very large tracks within a memory budget by lowering the resolution.
        ppm = min(ppm, math.sqrt(self.MAX_PIXELS / ((x1 - x0) * (y1 - y0))))
        self.ppm = ppm
        self.origin = (x0, y0)
        size = (int(math.ceil((x1 - x0) * ppm)), int(math.ceil((y1 - y0) * ppm)))
        base = _draw_map(track, size, ppm, self.origin)
        self.levels = [base]
        while min(self.levels[-1].shape[:2]) > 64 and len(self.levels) < 7:
            self.levels.append(np.ascontiguousarray(cv2.pyrDown(self.levels[-1])))
        self._w2p = [self.world_to_pixel(k) for k in range(len(self.levels))]

    def world_to_pixel(self, level: int = 0) -> np.ndarray:
        """3x3 matrix taking homogeneous world (x, y, 1) to pixel (u, v, 1) of a level."""
        s = self.ppm / 2**level
        return np.array([[s, 0.0, -s * self.origin[0]], [0.0, s, -s * self.origin[1]], [0.0, 0.0, 1.0]])


def _draw_map(track: Track, size: tuple[int, int], ppm: float, origin: tuple[float, float]) -> np.ndarray:
    import pygame
    from highway_env.road.graphics import LaneGraphics, WorldSurface

    surface = WorldSurface(size, 0, pygame.Surface(size))
    surface.scaling = ppm
    surface.origin = np.array(origin, float)
    surface.fill(GRASS)
    for lane in track.all_lanes():  # asphalt first, finely sampled so curves stay round
        n = max(2, int(lane.length / 0.5) + 1)
        s = np.linspace(0.0, lane.length, n)
        half = 0.5 * lane.width_at(0.0) + 0.05  # a sliver of overlap hides seams between lanes
        left = [surface.vec2pix(lane.position(float(v), -half)) for v in s]
        right = [surface.vec2pix(lane.position(float(v), half)) for v in s[::-1]]
        pygame.draw.polygon(surface, ASPHALT, left + right)
    WorldSurface.WHITE = MARKING  # highway-env draws markings in surface.WHITE
    try:
        for lane in track.all_lanes():
            LaneGraphics.display(lane, surface)
    finally:
        WorldSurface.WHITE = (255, 255, 255)
    # row-major RGB straight from the surface: one copy (surfarray's column-major array and its transpose
    # took ten times as long)
    image = np.frombuffer(pygame.image.tobytes(surface, "RGB"), np.uint8).reshape(size[1], size[0], 3)
    # Texture on the ground (deterministic per track) so the scene is not flat colour: smooth
    # blotches plus fine grain from a tiled patch, added with saturating uint8 arithmetic.
    rng = np.random.default_rng(zlib.crc32(track.name.encode()))
    coarse = rng.normal(0.0, 7.0, (max(2, size[1] // 24), max(2, size[0] // 24))).astype(np.float32)
    tex = cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 3.0, (256, 256)).astype(np.float32)
    tex += np.tile(grain, (size[1] // 256 + 1, size[0] // 256 + 1))[: size[1], : size[0]]
    up = cv2.merge([cv2.convertScaleAbs(np.maximum(tex, 0))] * 3)
    down = cv2.merge([cv2.convertScaleAbs(np.minimum(tex, 0))] * 3)
    out = cv2.add(image, up)
    return cv2.subtract(out, down, dst=out)  # in place: a second 30-80 MB image costs its page faults


@functools.lru_cache(maxsize=8)
def map_texture(track: Track, ppm: float) -> MapTexture:
    """The map texture of a track (cached: drawing a large track takes a fraction of a second)."""
    return MapTexture(track, ppm)


@dataclass(frozen=True)
class Box:
    """An axis-aligned (in its own frame) box on the ground: a vehicle, or an obstacle."""

    x: float
    y: float
    heading: float
    length: float
    width: float
    color: tuple[int, int, int]
    height: float = VEHICLE_HEIGHT_M
    windows: bool = True
    """Draw a dark band of windows on the upper faces (cars; not cones)."""


class Camera:
    """Renders views of a MapTexture for a CameraConfig; geometry is precomputed per config."""

    SUPERSAMPLE = 4

    def __init__(self, config: CameraConfig):
        self.config = c = config
        w, h = c.width, c.height
        self.fx = self.fy = 0.5 * w / math.tan(math.radians(c.hfov_deg) / 2)
        self.cx, self.cy = (w - 1) / 2.0, (h - 1) / 2.0
        self.K = np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])
        th = math.radians(c.pitch_deg)
        self._cos_p, self._sin_p = math.cos(th), math.sin(th)
        # Per row: the ground distance seen at the row centre and edges (inf above the horizon).
        rows = np.arange(h, dtype=float)
        self.row_distance = self._ground_distance((rows - self.cy) / self.fy)
        ground = np.isfinite(self.row_distance) & (self.row_distance <= c.max_range_m)
        self.first_ground_row = int(np.argmax(ground)) if ground.any() else h
        self._bands = self._plan_bands()
        self._groups, self._buffers = self._group_bands()
        self._sky = self._sky_image()
        self._haze = self._haze_weights()

    # --- geometry -------------------------------------------------------------------------------
    def _ground_distance(self, t: np.ndarray) -> np.ndarray:
        """Forward ground distance seen along image rows with normalised coordinate t."""
        down = self._cos_p * t + self._sin_p
        fwd = self._cos_p - self._sin_p * t
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.where(down > 1e-9, self.config.mount_height_m * fwd / down, np.inf)
        return d

    def _plan_bands(self) -> list[tuple[int, int, int, int]]:
        """Split the ground rows into bands (first row, end row, pyramid level, supersampling).

        Far rows are foreshortened: one row covers metres along the road but centimetres across.
        Those rows are rendered with SUPERSAMPLE sub-rows each and averaged (anisotropic filtering),
        and each band samples the pyramid level whose texel matches its sub-row footprint.
        """
        c = self.config
        rows = np.arange(self.first_ground_row, c.height, dtype=float)
        if len(rows) == 0:
            return []
        z = self.row_distance[self.first_ground_row :]
        near = self._ground_distance((rows + 0.5 - self.cy) / self.fy)
        far = self._ground_distance((rows - 0.5 - self.cy) / self.fy)
        far = np.where(np.isfinite(far), far, c.max_range_m * 2)
        along = np.abs(far - near)
        across = np.hypot(z, c.mount_height_m) / self.fx
        along_px = along * c.map_ppm  # map texels skipped from one row to the next
        sub = np.where(along_px > 8, self.SUPERSAMPLE, np.where(along_px > 3, 2, 1))
        footprint = np.maximum(across * c.map_ppm, along_px / (2 * sub))
        level = np.clip(np.floor(np.log2(np.maximum(footprint, 1.0))), 0, 6).astype(int)
        # The last rows before the horizon (levels 3 and up) are few and under the haze: one band
        # at their finest level saves several warp calls per view.
        far = level >= 3
        if far.any():
            level[far] = level[far].min()
        bands, start = [], 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or (level[i], sub[i]) != (level[start], sub[start]):
                bands.append((self.first_ground_row + start, self.first_ground_row + i, int(level[start]), int(sub[start])))
                start = i
        return bands

    def _group_bands(self):
        """Bands by supersampling factor (each factor's rows are contiguous), with their constant
        band-to-image matrices, and one scratch buffer per factor above 1."""
        groups, buffers = [], {}
        for sub in sorted({b[3] for b in self._bands}, reverse=True):
            bands = [b for b in self._bands if b[3] == sub]
            first, last = bands[0][0], bands[-1][1]
            parts = []
            for r0, r1, level, _ in bands:
                # band pixel (u, j) -> image (u, r0 - 0.5 + (j + 0.5) / sub)
                to_image = np.array([[1.0, 0, 0], [0, 1.0 / sub, r0 - 0.5 + 0.5 / sub], [0, 0, 1.0]])
                parts.append((r0, r1, level, to_image, (r0 - first) * sub))
            groups.append((sub, (first, last), parts))
            if sub > 1:
                buffers[sub] = np.empty(((last - first) * sub, self.config.width, 3), np.uint8)
        return groups, buffers

    def _sky_image(self) -> np.ndarray:
        h = max(self.first_ground_row, 1)
        a = np.linspace(0.0, 1.0, h)[:, None]
        row = (1 - a) * np.array(SKY_TOP) + a * np.array(SKY_HORIZON)
        return np.repeat(row[:, None, :], self.config.width, axis=1).astype(np.uint8)

    def _haze_weights(self) -> tuple[int, np.ndarray] | None:
        z = self.row_distance[self.first_ground_row :]
        alpha = 1.0 - np.exp(-np.clip(z, 0, None) / self.config.haze_distance_m)
        n = int(np.sum(alpha > 0.1))  # nearer rows would change by a few grey levels at most
        if n == 0:
            return None
        return n, alpha[:n, None, None].astype(np.float32)

    def rotation(self, heading: float) -> np.ndarray:
        """World-to-camera rotation (rows: camera x, y, z axes in world (x, y, down) coordinates)."""
        ch, sh = math.cos(heading), math.sin(heading)
        cp, sp = self._cos_p, self._sin_p
        f = np.array([ch, sh, 0.0])
        r = np.array([-sh, ch, 0.0])
        d = np.array([0.0, 0.0, 1.0])
        return np.stack([r, -sp * f + cp * d, cp * f + sp * d])

    def ground_homography(self, x: float, y: float, heading: float) -> np.ndarray:
        """3x3 H mapping homogeneous ground (X, Y, 1) to image pixels, camera over (x, y)."""
        R = self.rotation(heading)
        hgt = self.config.mount_height_m
        G = np.column_stack([R[:, 0], R[:, 1], R[:, 2] * hgt - R[:, 0] * x - R[:, 1] * y])
        return self.K @ G

    def project(self, points: np.ndarray, x: float, y: float, heading: float) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (N, 3) given as (x, y, height) to pixels; returns (uv, depth)."""
        R = self.rotation(heading)
        rel = np.column_stack([points[:, 0] - x, points[:, 1] - y, self.config.mount_height_m - points[:, 2]])
        cam = rel @ R.T
        z = cam[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = np.column_stack([self.cx + self.fx * cam[:, 0] / z, self.cy + self.fy * cam[:, 1] / z])
        return uv, z

    # --- rendering -----------------------------------------------------------------------------
    def render(self, texture: MapTexture, x: float, y: float, heading: float,
               boxes: Iterable[Box] = ()) -> np.ndarray:
        """An (H, W, 3) uint8 RGB view from a camera over ground point (x, y) facing `heading`."""
        c = self.config
        out = np.empty((c.height, c.width, 3), np.uint8)
        g0 = self.first_ground_row
        out[:g0] = self._sky[:g0]
        if self._bands:
            ground_from_img = np.linalg.inv(self.ground_homography(x, y, heading))
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            # Bands sharing a supersampling factor are warped into one buffer, then averaged
            # down to image rows with a single area resize.
            for sub, (first, last), parts in self._groups:
                fine = out[first:last] if sub == 1 else self._buffers[sub]
                for r0, r1, level, to_image, offset in parts:
                    lv = min(level, len(texture.levels) - 1)
                    M = texture._w2p[lv] @ ground_from_img @ to_image
                    cv2.warpPerspective(texture.levels[lv], M, (c.width, (r1 - r0) * sub),
                                        dst=fine[offset: offset + (r1 - r0) * sub], flags=flags,
                                        borderMode=cv2.BORDER_CONSTANT, borderValue=GRASS)
                if sub > 1:
                    cv2.resize(fine, (c.width, last - first), dst=out[first:last], interpolation=cv2.INTER_AREA)
            if self._haze is not None:
                n, alpha = self._haze
                band = out[g0 : g0 + n].astype(np.float32)
                out[g0 : g0 + n] = (band + alpha * (np.float32(SKY_HORIZON) - band)).astype(np.uint8)
        boxes = list(boxes)
        if boxes:
            self._draw_boxes(out, boxes, x, y, heading)
        return out

    def _draw_boxes(self, out: np.ndarray, boxes: list[Box], x: float, y: float, heading: float) -> None:
        ch, sh = math.cos(heading), math.sin(heading)
        near = 0.3
        items = []
        for b in boxes:
            dx, dy = b.x - x, b.y - y
            fwd = dx * ch + dy * sh
            if fwd < -b.length or fwd > 0.5 * self.config.max_range_m or abs(dx * -sh + dy * ch) > fwd + 2 * b.length:
                continue  # behind or far outside the field of view
            items.append((fwd, b))
        for _, b in sorted(items, key=lambda item: -item[0]):  # painter's order: far to near
            cb, sb = math.cos(b.heading), math.sin(b.heading)
            hl, hw = b.length / 2, b.width / 2
            base = np.array([[hl, -hw], [hl, hw], [-hl, hw], [-hl, -hw]])
            xy = base @ np.array([[cb, sb], [-sb, cb]]) + (b.x, b.y)
            pts = np.concatenate([np.column_stack([xy, np.zeros(4)]), np.column_stack([xy, np.full(4, b.height)])])
            uv, z = self.project(pts, x, y, heading)
            if (z < near).all():
                continue
            if (z < near).any():  # clamp corners behind the near plane (rough, only at the image edge)
                R = self.rotation(heading)
                rel = np.column_stack([pts[:, 0] - x, pts[:, 1] - y, self.config.mount_height_m - pts[:, 2]]) @ R.T
                rel[:, 2] = np.maximum(rel[:, 2], near)
                uv = np.column_stack([self.cx + self.fx * rel[:, 0] / rel[:, 2], self.cy + self.fy * rel[:, 1] / rel[:, 2]])
            uv = np.clip(uv, -4 * self.config.width, 4 * self.config.width)
            dist = math.hypot(b.x - x, b.y - y)
            fade = 1.0 - math.exp(-dist / self.config.haze_distance_m)
            color = np.array(b.color, float) + fade * (np.array(SKY_HORIZON, float) - np.array(b.color, float))
            hull = cv2.convexHull(np.round(uv * 16).astype(np.int32))
            cv2.fillConvexPoly(out, hull, tuple(int(v) for v in color * 0.75), cv2.LINE_AA, shift=4)
            # Shade the faces turned towards the camera: sides brighter than front/back.
            centre = np.array([b.x, b.y])
            cam = np.array([x, y])
            for k, shade in ((0, 0.85), (1, 1.0), (2, 0.85), (3, 1.0)):
                i, j = k, (k + 1) % 4
                mid = 0.5 * (xy[i] + xy[j])
                if np.dot(mid - centre, cam - mid) <= 0:
                    continue
                face = np.round(uv[[i, j, j + 4, i + 4]] * 16).astype(np.int32)
                cv2.fillConvexPoly(out, face, tuple(int(v) for v in color * shade), cv2.LINE_AA, shift=4)
            if not b.windows:
                continue
            # Dark windows band on the upper part of the faces, for a car-like silhouette.
            top = np.round(uv[4:] * 16).astype(np.int32)
            cv2.fillConvexPoly(out, cv2.convexHull(top), tuple(int(v) for v in color * 0.55), cv2.LINE_AA, shift=4)

    def horizon_row(self) -> float:
        """Image row (sub-pixel) of the horizon: where rays become parallel to the ground."""
        return self.cy - self.fy * self._sin_p / self._cos_p
