"""The obstacle figure: one dashcam image, the teacher's two answers to it, and both passes top-down.

`python -m benchmark obstacle-figure --out docs/obstacles.png` starts two episodes at the same pose
before a stopped car, one whose teacher passes it on the left and one on the right (their reset
seeds draw the sides), and drives both past it: the first frame is the same image in both, labelled
with two curvatures of opposite sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class ObstacleFigureConfig:
    """Write a PNG of an obstacle passed both ways by the teacher: the dashcam on the approach and
    alongside, the two paths top-down, and the curvature and offset along the lane."""

    out: Path = Path("docs/obstacles.png")
    """Where to write the PNG."""
    track_seed: int = 1000101
    """The procedural track (3 lanes of 5 m)."""
    lane: int = 1
    """The lane driven (its middle lane: room on both sides)."""
    obstacle_s: float = 347.3
    """Arc length of the obstacle shown, along the lane [m] (the nearest one is taken)."""
    before_m: float = 36.0
    """Start this far before the obstacle's centre [m]: just inside the teacher's move out, where its
    two passing lines part."""
    steps: int = 110
    """Teacher steps driven in each episode."""


def _episodes(config: ObstacleFigureConfig):
    from envs import DrivingEnv

    env = DrivingEnv("procedural", track_seed=config.track_seed, obstacles=True)
    env.reset(seed=0, options={"lane": config.lane, "start_s": 0.0})
    index = min(env.passes.passes, key=lambda p: abs(p.s - config.obstacle_s)).obstacle
    runs = {}
    for seed in range(100):  # the first reset seed that draws each side for this obstacle
        env.reset(seed=seed, options={"lane": config.lane, "start_s": 0.0})
        side = env.passes.passes[index].side
        if side in runs:
            continue
        s0 = env.passes.passes[index].s
        obs, info = env.reset(seed=seed, options={"lane": config.lane, "start_s": s0 - config.before_m})
        trace = {"frame0": obs, "label0": info["teacher_action"], "xy": [], "ds": [], "a": [], "d": [], "line": []}
        alongside = None
        for _ in range(config.steps):
            trace["xy"].append((info["x"], info["y"]))
            trace["ds"].append(-info["obstacle_distance_m"] if info["obstacle"] == index else np.nan)
            trace["a"].append(info["teacher_action"])
            trace["d"].append(info["lateral_offset"])
            trace["line"].append(info["pass_offset_m"])
            if alongside is None and info["obstacle"] == index and info["obstacle_distance_m"] < 8.0:
                alongside = env.render_view()
            obs, _, terminated, truncated, info = env.step(np.array([info["teacher_action"]], np.float32))
            if terminated or truncated:
                raise RuntimeError(f"the teacher failed ({info['failure']}) on the {side} pass")
        trace["alongside"] = alongside
        runs[side] = trace
        if len(runs) == 2:
            return env, index, runs
    raise RuntimeError("one side was never drawn in 100 episodes")


def _strip(env, x: float, y: float, heading: float, width: int = 1000, height: int = 200, ppm: float = 10.0):
    """A top-down strip of the map centred at (x, y), the lane running left to right; with the 3x3
    matrix from world to its pixels."""
    import cv2

    from envs.camera import ASPHALT

    ch, sh = np.cos(heading), np.sin(heading)
    # screen u -> along the lane, v (down) -> to the lane's right
    screen_to_world = np.array([
        [ch / ppm, -sh / ppm, x - (ch * width / 2 - sh * height / 2) / ppm],
        [sh / ppm, ch / ppm, y - (sh * width / 2 + ch * height / 2) / ppm],
        [0.0, 0.0, 1.0]])
    M = (env.map.world_to_pixel(0) @ screen_to_world)[:2]
    img = cv2.warpAffine(env.map.levels[0], M, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=ASPHALT)
    return img, np.linalg.inv(screen_to_world)


def run(config: ObstacleFigureConfig) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt

    from envs.obstacles import box_corners
    from envs.topdown import draw_car, to_pixels

    from .plots import save

    env, index, runs = _episodes(config)
    left, right = runs["left"], runs["right"]
    if not np.array_equal(left["frame0"], right["frame0"]):
        raise RuntimeError("the two episodes do not start from the same image")
    colours = {"left": "#1f77b4", "right": "#d62728"}
    fig = plt.figure(figsize=(15, 7.2))
    grid = fig.add_gridspec(2, 3, height_ratios=[1, 1.25])
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(left["frame0"], interpolation="nearest")
    ax.set_title(f"one image ({config.before_m:.0f} m before), two labels: {left['label0']:+.3f} (left), "
                 f"{right['label0']:+.3f} 1/m (right)", fontsize=8)
    for k, side in enumerate(("left", "right")):
        ax_ = fig.add_subplot(grid[0, 1 + k])
        ax_.imshow(runs[side]["alongside"], interpolation="nearest")
        ax_.set_title(f"{side} pass, 8 m before the car", fontsize=9, color=colours[side])
    for a in fig.axes:
        a.set_xticks([])
        a.set_yticks([])
    # top-down: both paths around the obstacle
    ob = env.obstacles[index]
    img, M = _strip(env, ob.x, ob.y, ob.boxes[0].heading)
    for b in ob.boxes:
        draw_car(img, M, b.x, b.y, b.heading, b.color, b.length, b.width)
        corners = to_pixels(M, np.array(box_corners(b.x, b.y, b.heading, b.length, b.width)))
        cv2.polylines(img, [np.round(corners).astype(np.int32)], True, (255, 255, 255), 1, cv2.LINE_AA)
    ax = fig.add_subplot(grid[1, :2])
    ax.imshow(img)
    ax.set_xlim(0, img.shape[1])
    ax.set_ylim(img.shape[0], 0)
    for side in ("left", "right"):
        uv = to_pixels(M, np.array(runs[side]["xy"]))
        ax.plot(uv[:, 0], uv[:, 1], color=colours[side], lw=2, label=f"teacher, {side} pass")
    ax.legend(loc="lower left", fontsize=9)
    ax.set_title(f"procedural-{config.track_seed}, lane {config.lane}: a stopped car passed both ways "
                 "(the two episodes differ only in their reset seed)", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = fig.add_subplot(grid[1, 2])
    twin = ax.twinx()
    for side in ("left", "right"):
        r = runs[side]
        ax.plot(r["ds"], r["a"], color=colours[side], lw=2, label=f"curvature, {side}")
        twin.plot(r["ds"], r["d"], color=colours[side], lw=1, ls="--", label=f"offset, {side}")
    ax.axvspan(-ob.boxes[0].length / 2, ob.boxes[0].length / 2, color="0.85", zorder=0)
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("distance past the obstacle's centre [m]")
    ax.set_ylabel("teacher's curvature [1/m] (solid)")
    twin.set_ylabel("offset from the lane centre [m] (dashed)")
    ax.set_title("the labels: opposite signs from the same states", fontsize=10)
    fig.tight_layout()
    out = save(fig, config.out, dpi=100)
    plt.close(fig)
    return out
