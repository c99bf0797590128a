"""The camera figure: left, centre and right dashcam views and the car on the track map.

`python -m benchmark frames --out docs/frames.png` drives the teacher a few seconds into an episode
on a built-in and a procedural track and lays the rig's three views next to a top-down map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class FramesConfig:
    """Write a PNG with the rig's left, centre and right views and a top-down map, for two tracks."""

    out: Path = Path("docs/frames.png")
    """Where to write the PNG."""
    builtin: str = "racetrack"
    """The built-in track shown in the first row."""
    procedural_seed: int = 7
    """The procedural (training) track shown in the second row."""
    seed: int = 3
    """Episode seed (start position and lane)."""
    steps: int = 25
    """Teacher steps driven before the snapshot."""
    traffic: int = 6
    """Traffic vehicles on the track."""


def run(config: FramesConfig) -> Path:
    import gymnasium as gym
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import envs  # noqa: F401  (registers the ids)

    from .plots import save

    rows = [
        (f"built-in: {config.builtin}", dict(track=config.builtin)),
        (f"procedural: seed {config.procedural_seed}", dict(track="procedural", track_seed=config.procedural_seed)),
    ]
    fig, axes = plt.subplots(2, 4, figsize=(17, 5.6), gridspec_kw={"width_ratios": [1, 1, 1, 0.75]})
    for r, (title, kwargs) in enumerate(rows):
        env = gym.make("SteerBench/Racetrack-v0", traffic=config.traffic, **kwargs).unwrapped
        _, info = env.reset(seed=config.seed)
        trail = [(info["x"], info["y"])]
        for _ in range(config.steps):
            _, _, term, trunc, info = env.step(np.array([info["teacher_action"]], np.float32))
            trail.append((info["x"], info["y"]))
            if term or trunc:
                break
        rig = env.render_rig()
        o = env.camera_config.side_offset_m
        for c, (name, label) in enumerate([("left", f"left camera ({-o:+.1f} m)"), ("center", "centre camera"),
                                          ("right", f"right camera ({o:+.1f} m)")]):
            ax = axes[r, c]
            ax.imshow(rig[name], interpolation="nearest")
            ax.set_title(f"{label}   {rig[name].shape[1]}x{rig[name].shape[0]}", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[r, 3]
        ax.imshow(env.render_map(max_size=700))
        ax.set_title(f"{title} ({env.track.length:.0f} m, {env.track.lanes} lanes)", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        axes[r, 0].set_ylabel(title, fontsize=10)
        env.close()
    fig.suptitle("SteerBench dashcam rig: exact views from the same state; ego car in red on the map", fontsize=12)
    fig.tight_layout()
    out = save(fig, config.out, dpi=110)
    plt.close(fig)
    return out
