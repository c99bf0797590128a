"""Training-time augmentation: shifted cameras, label rules, photometrics, balanced sampling.

Shifted cameras (Bojarski et al. 2016). A training sample can come from the rig's side cameras and
from a synthetic viewpoint: the car displaced sideways by `shift` metres (positive right) and
rotated by `yaw` radians (positive right) about its centre. Synthetic views are made either by
exact re-rendering in the simulator (`render`: the recorded pose is enough, no traffic) or by
warping the recorded frame with the flat-ground homography between the two cameras (`warp`,
NVIDIA's method, which works on recorded data without a simulator; only the road surface is
exact). Each such sample is labelled by a rule:

- `fixed`:   the centre label minus `fixed_correction` per side-camera offset of shift (and
             `fixed_yaw_correction` per 0.1 rad of yaw), the common Udacity practice;
- `return`:  NVIDIA's rule: the recorded label adjusted by the change in the curvature that
             brings the car back to the lane centre and heading in about 2 s
             (`envs.return_to_centre_curvature`) between the recorded and the displaced pose;
- `teacher`: the teacher asked at that virtual pose (stored for the side cameras, computed from
             the track for synthetic views).

Photometric augmentation uses albumentations (brightness and contrast, colour, shadows, blur,
noise). Curvature-balanced sampling draws steps with weights inversely proportional to how common
their curvature label is, so curves are oversampled as in PilotNet's data.

The causal-confusion task draws the dashboard steering gauge (envs.indicator) into every training
frame, showing the executed action recorded at the episode's previous step (0 at its first step),
exactly as the environment's indicator conditions draw it; `indicator_dropout` leaves it out of a
fraction of the samples (a remedy to test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from benchmark.common.config import require
from benchmark.data.dataset import Dataset
from envs import Camera, CameraConfig, IndicatorConfig, Teacher, TeacherConfig, map_texture, track_by_name
from envs.indicator import blank_indicator, draw_indicator
from envs.teacher import return_to_centre_curvature
from envs.vehicle import clip_curvature, lens_position, virtual_pose


@dataclass(frozen=True)
class AugmentConfig:
    """Shifted-camera and photometric augmentation of training samples."""

    side_cameras: bool = False
    """Draw samples from the left and right cameras as well as the centre one."""
    label_rule: Literal["fixed", "return", "teacher"] = "teacher"
    """How shifted views are labelled: fixed correction, return to centre in 2 s, or the teacher."""
    fixed_correction: float = 0.012
    """`fixed` rule: curvature added per side-camera offset of shift [1/m]."""
    fixed_yaw_correction: float = 0.01
    """`fixed` rule: curvature added per 0.1 rad of yaw [1/m]."""
    return_horizon_s: float = 2.0
    """`return` rule: time to get back to the lane centre and heading [s]."""
    synthetic_prob: float = 0.0
    """Probability that a sample is a synthetic viewpoint shift/rotation."""
    synthetic_method: Literal["warp", "render"] = "warp"
    """Make synthetic views by a flat-ground warp of the recorded frame or exact re-rendering."""
    max_shift_m: float = 1.0
    """Largest synthetic lateral shift [m] (uniform in +-)."""
    max_yaw_rad: float = 0.1
    """Largest synthetic rotation [rad] (uniform in +-)."""
    photometric: bool = False
    """Apply albumentations photometric augmentation (off for the plain BC baseline)."""
    photometric_prob: float = 0.8
    """Probability that a sample gets photometric augmentation when it is on."""
    balance_curvature: bool = False
    """Oversample curves: sampling weights inversely proportional to the curvature label density."""
    target: Literal["teacher", "executed"] = "teacher"
    """Centre-camera target: the teacher's label, or the executed action (to clone a person's driving)."""
    steering_indicator: bool = False
    """Draw the steering gauge of the previous step's executed action into every frame (the
    causal-confusion task; the gauge of envs.IndicatorConfig's defaults, as steerbench-causal-v1 draws it)."""
    indicator_dropout: float = 0.0
    """With steering_indicator: probability that a sample's gauge shows no reading (a remedy to test)."""
    camera_dropout_rate: float = 0.0
    """Camera dropouts in training [onsets per second] (0: none): black frames as in
    steerbench-memory-v1, on a schedule of envs.dropout per training sequence (recurrent models) or,
    for single frames, each frame black with the schedule's long-run share of lost frames."""
    camera_dropout_s: tuple[float, float] = (1.0, 2.0)
    """Shortest and longest training dropout [s]."""

    def __post_init__(self) -> None:
        require(self.label_rule in ("fixed", "return", "teacher"),
                f"label_rule must be fixed, return or teacher, got {self.label_rule!r}")
        require(self.synthetic_method in ("warp", "render"),
                f"synthetic_method must be warp or render, got {self.synthetic_method!r}")
        require(0.0 <= self.synthetic_prob <= 1.0 and 0.0 <= self.photometric_prob <= 1.0,
                "probabilities must be in [0, 1]")
        require(self.max_shift_m >= 0 and self.max_yaw_rad >= 0, "max_shift_m and max_yaw_rad must be non-negative")
        require(self.target in ("teacher", "executed"), f"target must be teacher or executed, got {self.target!r}")
        require(0.0 <= self.indicator_dropout <= 1.0, f"indicator_dropout must be in [0, 1], got {self.indicator_dropout}")
        require(self.steering_indicator or self.indicator_dropout == 0.0,
                "indicator_dropout needs steering_indicator")
        require(0.0 <= self.camera_dropout_rate <= 10.0, f"camera_dropout_rate must be 0..10, got {self.camera_dropout_rate}")
        lo, hi = self.camera_dropout_s
        require(0.0 < lo <= hi <= 60.0, f"camera_dropout_s must satisfy 0 < low <= high <= 60, got {self.camera_dropout_s}")

    def dropout_config(self):
        """The training dropouts as an envs.DropoutConfig (black), or None without them."""
        if not self.camera_dropout_rate:
            return None
        from envs import DropoutConfig

        return DropoutConfig(rate_per_s=self.camera_dropout_rate, min_s=self.camera_dropout_s[0],
                             max_s=self.camera_dropout_s[1], mode="black")


# --- viewpoint synthesis -----------------------------------------------------------------------


def lens_pose(camera: CameraConfig, shift_m: float, yaw_rad: float) -> tuple[float, float, float]:
    """Lens pose in the car frame (x forward, y right) of the car displaced and rotated as given."""
    f = camera.forward_offset_m
    return f * math.cos(yaw_rad), shift_m + f * math.sin(yaw_rad), yaw_rad


class ViewWarper:
    """NVIDIA's viewpoint transformation: re-project a recorded frame for a shifted/rotated camera,
    assuming the world is a flat ground plane (the sky rows are kept as they are)."""

    def __init__(self, camera: CameraConfig):
        self.camera = Camera(camera)
        self.config = camera

    def homography(self, shift_m: float, yaw_rad: float, base_shift_m: float = 0.0) -> np.ndarray:
        """3x3 map from pixels of the new view to pixels of the recorded one."""
        old = self.camera.ground_homography(*lens_pose(self.config, base_shift_m, 0.0))
        new = self.camera.ground_homography(*lens_pose(self.config, base_shift_m + shift_m, yaw_rad))
        return old @ np.linalg.inv(new)

    def warp(self, frame: np.ndarray, shift_m: float, yaw_rad: float, base_shift_m: float = 0.0) -> np.ndarray:
        """The view from a camera `shift_m` right and `yaw_rad` rotated from the recorded camera
        (which itself sits `base_shift_m` right of the centre camera)."""
        if shift_m == 0.0 and yaw_rad == 0.0:
            return frame.copy()
        out = frame.copy()
        g0 = self.camera.first_ground_row
        shift_rows = np.array([[1.0, 0, 0], [0, 1.0, g0], [0, 0, 1.0]])
        M = self.homography(shift_m, yaw_rad, base_shift_m) @ shift_rows
        h, w = frame.shape[:2]
        cv2.warpPerspective(frame, M, (w, h - g0), dst=out[g0:], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
        return out


class ViewRenderer:
    """Exact re-rendering of a recorded state from a virtual pose (no traffic), and the teacher's
    label there."""

    def __init__(self, camera: CameraConfig, teacher: TeacherConfig | None = None):
        self.config = camera
        self.camera = Camera(camera)
        self.teacher = Teacher(teacher)

    def render(self, track: str, x: float, y: float, heading: float, shift_m: float, yaw_rad: float) -> np.ndarray:
        vx, vy, vh = virtual_pose(x, y, heading, shift_m, yaw_rad)
        tex = map_texture(track_by_name(track), self.config.map_ppm)
        return self.camera.render(tex, *lens_position(vx, vy, vh, self.config.forward_offset_m), vh)

    def teacher_label(self, track: str, lane: int, x: float, y: float, heading: float, speed: float,
                      shift_m: float, yaw_rad: float) -> float:
        vx, vy, vh = virtual_pose(x, y, heading, shift_m, yaw_rad)
        return self.teacher.action(track_by_name(track).paths[lane], vx, vy, vh, speed)


# --- photometric -------------------------------------------------------------------------------


def photometric_pipeline(p: float = 0.8, seed: int | None = None):
    """albumentations photometric augmentation: lighting, colour, shadows, blur, noise."""
    import albumentations as A

    return A.Compose([
        A.OneOf([
            A.RandomBrightnessContrast(brightness_limit=0.3, contrast_limit=0.3, p=1.0),
            A.RandomGamma(gamma_limit=(70, 140), p=1.0),
        ], p=0.8),
        A.OneOf([
            A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=25, val_shift_limit=15, p=1.0),
            A.RGBShift(r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=1.0),
        ], p=0.5),
        A.RandomShadow(shadow_roi=(0, 0.3, 1, 1), num_shadows_limit=(1, 2), shadow_dimension=5, p=0.3),
        A.OneOf([
            A.GaussianBlur(blur_limit=(3, 5), p=1.0),
            A.MotionBlur(blur_limit=(3, 5), p=1.0),
        ], p=0.2),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.3),
    ], p=p, seed=seed)


# --- sampling ----------------------------------------------------------------------------------


def curvature_balanced_weights(labels: np.ndarray, bins: int = 25, max_ratio: float = 20.0) -> np.ndarray:
    """Sampling weights inversely proportional to the density of the curvature label, normalised
    to sum to 1; a bin is oversampled at most `max_ratio` times relative to the most common one."""
    labels = np.asarray(labels, float)
    edges = np.linspace(labels.min(), labels.max() + 1e-12, bins + 1)
    which = np.clip(np.digitize(labels, edges) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins).astype(float)
    w = 1.0 / np.maximum(counts[which], counts.max() / max_ratio)
    return w / w.sum()


class SampleMaker:
    """Builds training batches (frames, labels) from a dataset with an AugmentConfig.

    Everything random comes from the rng passed to `batch`, so a seed reproduces the batches.
    """

    def __init__(self, dataset: Dataset, config: AugmentConfig, camera: CameraConfig | None = None,
                 teacher: TeacherConfig | None = None, seed: int = 0):
        self.dataset, self.config = dataset, config
        rig = dataset.manifest.get("rig")
        self.camera = camera or (CameraConfig(**rig) if rig else CameraConfig())
        self.side_offset = self.camera.side_offset_m
        idx = dataset.index
        self.state = {c: idx[c].to_numpy() for c in (
            "lateral_offset", "heading_error", "road_curvature", "speed", "x", "y", "heading", "lane")}
        self.tracks = idx["track"].to_numpy(dtype=object)
        self.labels = idx[["label_left", "label_center", "label_right"]].to_numpy(np.float64)
        if config.target == "executed":
            self.labels[:, 1] = idx["action"].to_numpy(np.float64)
        self._check_inputs(dataset, config)
        self.warper = ViewWarper(self.camera)
        self.renderer = ViewRenderer(self.camera, teacher) if (
            config.synthetic_method == "render" or config.label_rule == "teacher") else None
        self.photo = photometric_pipeline(config.photometric_prob, seed) if config.photometric else None
        self.indicator = IndicatorConfig() if config.steering_indicator else None
        self.previous_action = previous_actions(idx) if config.steering_indicator else None
        if config.synthetic_prob > 0 and (config.synthetic_method == "render" or config.label_rule == "teacher"):
            for name in np.unique(self.tracks):
                try:  # fail early, with the track's name, if it cannot be rebuilt
                    track_by_name(str(name))
                except ValueError as exc:
                    raise ValueError(f"{exc}; use synthetic_method='warp' and a label rule other than 'teacher' "
                                     "for synthetic views of such data") from None

    def _check_inputs(self, dataset: Dataset, c: AugmentConfig) -> None:
        """Refuse a configuration whose labels would need values this dataset does not have."""
        name = dataset.directory
        if np.isnan(self.labels[:, 1]).any():
            raise ValueError(f"{name}: some centre labels are missing (NaN); cannot train on this dataset")
        shifted = c.side_cameras or c.synthetic_prob > 0
        if shifted and c.label_rule == "teacher" and (
                (c.side_cameras and np.isnan(self.labels[:, [0, 2]]).any()) or
                (c.synthetic_prob > 0 and np.isnan(self.state["x"]).any())):
            raise ValueError(f"{name}: label_rule 'teacher' needs the teacher's side-camera labels and the recorded "
                             "poses, which this dataset lacks (an import?); use --label-rule fixed")
        if shifted and c.label_rule == "return" and np.isnan(self.state["lateral_offset"]).any():
            raise ValueError(f"{name}: label_rule 'return' needs the recorded lane offsets, which this dataset "
                             "lacks (an import?); use --label-rule fixed")
        if c.synthetic_prob > 0 and c.synthetic_method == "render" and np.isnan(self.state["x"]).any():
            raise ValueError(f"{name}: synthetic_method 'render' needs recorded poses on a SteerBench track; "
                             "use --synthetic-method warp")

    def weights(self, steps: np.ndarray) -> np.ndarray | None:
        if not self.config.balance_curvature:
            return None
        return curvature_balanced_weights(self.labels[steps, 1])

    def label(self, i: int, shift: float, yaw: float, camera: int, synthetic: bool) -> float:
        """Label of step i seen from a camera `shift` m right (and `yaw`) of the centre camera."""
        c = self.config
        if shift == 0.0 and yaw == 0.0:
            return float(self.labels[i, 1])
        if c.label_rule == "teacher":
            if not synthetic:
                return float(self.labels[i, camera])
            s = self.state
            return self.renderer.teacher_label(self.tracks[i], int(s["lane"][i]), s["x"][i], s["y"][i],
                                               s["heading"][i], s["speed"][i], shift, yaw)
        if c.label_rule == "fixed":
            k = self.labels[i, 1] - c.fixed_correction * shift / self.side_offset - c.fixed_yaw_correction * yaw / 0.1
            return clip_curvature(k)
        # The recorded label plus the change in the return-to-centre curvature between the recorded
        # pose and the shifted one, so that both label systems agree at zero shift.
        s = self.state
        d, psi, k, v = s["lateral_offset"][i], s["heading_error"][i], s["road_curvature"][i], s["speed"][i]
        shifted = return_to_centre_curvature(d + shift * math.cos(psi), psi + yaw, k, v, c.return_horizon_s)
        recorded = return_to_centre_curvature(d, psi, k, v, c.return_horizon_s)
        return clip_curvature(self.labels[i, 1] + shifted - recorded)

    def batch(self, steps: np.ndarray, rng: np.random.Generator,
              cams: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Frames (B, H, W, 3) uint8 and labels (B,) float32 for global step numbers `steps`.

        `cams` (0 left, 1 centre, 2 right per sample) overrides the random camera choice.
        """
        c = self.config
        n = len(steps)
        if cams is None:
            cams = rng.integers(0, 3, n) if c.side_cameras else np.ones(n, np.int64)
        frames = self.dataset.frames(steps, cams)
        labels = np.empty(n, np.float32)
        synth = rng.random(n) < c.synthetic_prob
        shifts = rng.uniform(-c.max_shift_m, c.max_shift_m, n)
        yaws = rng.uniform(-c.max_yaw_rad, c.max_yaw_rad, n)
        for j, i in enumerate(steps):
            base = (int(cams[j]) - 1) * self.side_offset
            if synth[j]:
                if c.synthetic_method == "warp":
                    frames[j] = self.warper.warp(frames[j], shifts[j], yaws[j], base_shift_m=base)
                else:
                    s = self.state
                    frames[j] = self.renderer.render(self.tracks[i], s["x"][i], s["y"][i], s["heading"][i],
                                                     base + shifts[j], yaws[j])
                labels[j] = self.label(i, base + shifts[j], yaws[j], int(cams[j]), True)
            else:
                labels[j] = self.label(i, base, 0.0, int(cams[j]), False)
        if self.indicator is not None:  # a dashboard overlay: after the view synthesis, under the weather
            dropped = rng.random(n) < c.indicator_dropout
            for j, i in enumerate(steps):
                if dropped[j]:
                    blank_indicator(frames[j], self.indicator)
                else:
                    draw_indicator(frames[j], self.previous_action[i], self.indicator)
        if self.photo is not None:
            for j in range(n):
                frames[j] = self.photo(image=frames[j])["image"]
        return frames, labels


def previous_actions(index) -> np.ndarray:
    """Per step of a dataset index, the executed action of the same episode's previous step (0 at an
    episode's first step): what the steering gauge shows. An episode is one (episode, round, source)
    of the index; its steps may be interleaved with other episodes' (lockstep collection)."""
    if index["action"].isna().any():
        raise ValueError("the steering indicator needs the recorded executed actions, and some are missing (NaN)")
    keys = [c for c in ("episode", "round", "source") if c in index]
    rows = index[keys + ["step", "action"]].reset_index(drop=True)
    before = rows.assign(step=rows["step"] + 1)[keys + ["step", "action"]].rename(columns={"action": "previous"})
    if before.duplicated(keys + ["step"]).any():
        raise ValueError("the steering indicator needs one row per episode and step; this dataset repeats some")
    merged = rows[keys + ["step"]].merge(before, on=keys + ["step"], how="left", validate="one_to_one")
    out = merged["previous"].to_numpy(np.float64)
    out = np.where(np.isnan(out), 0.0, out)  # an episode's first step: no previous action
    return out


def validation_overlay(dataset: Dataset, config: AugmentConfig):
    """What validation does to the recorded centre frames of `steps` (in place): with
    steering_indicator, the gauge of the previous action, always drawn (the held-out demonstrations as
    the model sees them in its condition); otherwise nothing."""
    if not config.steering_indicator:
        return lambda frames, steps: frames
    previous, gauge_config = previous_actions(dataset.index), IndicatorConfig()

    def overlay(frames: np.ndarray, steps: np.ndarray) -> np.ndarray:
        for j, i in enumerate(steps):
            draw_indicator(frames[j], previous[i], gauge_config)
        return frames

    return overlay


def black_out(frames: np.ndarray, config: AugmentConfig, rng: np.random.Generator, policy_hz: float = 10.0) -> None:
    """Training camera dropouts, in place: frames (B, T, H, W, 3) get a dropout schedule per sequence
    (its first frame delivered, as after a reset); frames (B, H, W, 3), each frame black with the
    schedule's long-run share of lost frames, rate x mean duration / (1 + rate x mean duration)."""
    from envs.dropout import dropout_schedule

    cfg = config.dropout_config()
    if cfg is None:
        return
    if frames.ndim == 5:
        for i in range(frames.shape[0]):
            lost = dropout_schedule(cfg, frames.shape[1] - 1, policy_hz, rng)
            frames[i, lost] = 0
    else:
        busy = cfg.rate_per_s * 0.5 * (cfg.min_s + cfg.max_s)
        frames[rng.random(frames.shape[0]) < busy / (1.0 + busy)] = 0

