"""`python -m benchmark video`: watch one evaluation episode, replayed exactly from its records.

The episode is found in a results directory (by its key, or the first crash-mode failure of a
condition) and run again: the same protocol episode, in the same lockstep group (batched inference
is bit-identical only for the same batch), with the policy whose sha256 the results name. The
replay must reproduce the recorded lateral offsets exactly, or the command stops and says so.

Each video frame shows the dashcam frame the policy saw (at twice its native size), a heading-up
top-down view with the learner's path so far and the teacher's path on the same episode (from the
teacher's records of the protocol, when they exist), and a strip chart of the lateral offset and
of the policy's and the teacher's curvature commands, the failure marked. The clip is `window_s`
seconds before the failure (or the end), written as MP4 (H.264, imageio-ffmpeg's own ffmpeg) and
as an animated WebP for pages; `--full` writes the whole episode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmark.evaluation.evaluate import default_out, groups_of, policy_spec
from benchmark.evaluation.protocol import load_protocol
from benchmark.evaluation.records import EpisodeRecord, read_records
from benchmark.evaluation.results import load_result
from benchmark.evaluation.rollouts import Evaluation
from benchmark.rollout.policies import make_policy

LEARNER, TEACHER, FAILURE = (40, 110, 230), (30, 160, 60), (220, 40, 40)
"""Colours (RGB) of the learner, the teacher and the failure mark."""


@dataclass(frozen=True)
class VideoConfig:
    """Replay one evaluation episode exactly and write it as a short video (MP4 and animated WebP)."""

    results: Path
    """Results directory of the policy (results.json and records.jsonl)."""
    policy: str
    """The policy those results are of: 'teacher', 'straight', a model directory or an .onnx file (its sha256 must match)."""
    key: str = ""
    """Episode key (track|condition|mode|index); default: the first crash-mode failure of `condition`."""
    condition: str = "nominal"
    """Condition searched for the first failure when no key is given."""
    protocol: str = ""
    """Protocol name or path (default: the one the results name, from benchmark/evaluation/protocols)."""
    group_size: int = 8
    """Group size of the evaluation (it fixes the batches, so the replay reproduces the records)."""
    window_s: float = 10.0
    """Seconds of driving before the failure (or the end) that the clip shows."""
    full: bool = False
    """Write the whole episode instead."""
    out: Path = Path("results/videos")
    """Folder of the videos: <policy>-<track>-<condition>-<index>.mp4 and .webp."""


class _Capture(Evaluation):
    """The evaluation's hooks, keeping the frames the policy saw in one episode."""

    def __init__(self, *args, number: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.number, self.frames = number, []

    def decide(self, frames, numbers, infos):
        hit = np.flatnonzero(numbers == self.number)
        if len(hit):
            self.frames.append(frames[hit[0]].copy())
        return super().decide(frames, numbers, infos)


def replay(config: VideoConfig) -> tuple[EpisodeRecord, list[np.ndarray], EpisodeRecord | None]:
    """(the replayed record, the frames the policy saw, the teacher's record of the episode)."""
    result = load_result(config.results)
    protocol = load_protocol(config.protocol or result.protocol)
    if protocol.name != result.protocol or result.results.protocol.sha256 not in (None, protocol.sha256):
        raise ValueError(f"{config.results} was evaluated under another version of {protocol.name}")
    spec = policy_spec(config.policy, result.name)
    if spec.sha256 != result.results.policy.sha256 or spec.kind != result.kind:
        raise ValueError(f"{config.policy} is not the policy of {config.results} (kind {spec.kind}, sha256 "
                         f"{str(spec.sha256)[:12]}; the results name {result.kind}, {str(result.results.policy.sha256)[:12]})")
    records = {r.key: r for r in result.records()}
    key = config.key or next((k for k, r in records.items() if r.crashed and r.condition == config.condition
                              and r.mode == "crash"), "")
    if key not in records:
        raise ValueError(f"no episode {key!r} in {config.results}" if key else
                         f"no crash-mode failure in the {config.condition} condition of {config.results}; pass --key")
    stored = records[key]
    episodes = protocol.episodes(result.profile, [stored.condition])
    group = next(g for g in groups_of(episodes, config.group_size) if any(str(e.key) == key for e in g))
    number = next(i for i, e in enumerate(group) if str(e.key) == key)
    if spec.kind == "torch":  # as in the evaluation's workers: one thread (the bits depend on it)
        import torch

        torch.set_num_threads(1)
    run = _Capture(make_policy(spec), group, intervention_threshold_m=protocol.intervention_threshold_m,
                   policy_hz=protocol.policy_hz, env_kwargs=None, number=number)
    run.run()
    replayed = run.records[number]
    if replayed.d != stored.d:
        raise ValueError(f"the replay of {key} does not reproduce its records (another machine or software "
                         "version?); a video of it would show another episode")
    teacher_path = default_out(protocol.name, result.profile, "teacher") / "records.jsonl"
    teacher = next((r for r in read_records(teacher_path).records if r.key == key), None)
    return replayed, run.frames, teacher


def _chart(record: EpisodeRecord, teacher: EpisodeRecord | None, t: int, start: int, end: int, size: tuple[int, int],
           hz: float) -> np.ndarray:
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    half = h // 2
    span = max(end - start, 1)

    def x(i):
        return int(40 + (i - start) / span * (w - 50))

    def series(values, lo, hi, top, height, colour):
        pts = [(x(i), int(top + height * (1 - (v - lo) / (hi - lo)))) for i, v in enumerate(values)
               if start <= i <= t and v is not None and math.isfinite(v)]
        if len(pts) > 1:
            cv2.polylines(img, [np.array(pts, np.int32)], False, colour, 2, cv2.LINE_AA)

    d_max = max(1.0, max((abs(v) for v in record.d if v is not None), default=1.0))
    for top, label in ((4, f"offset d (m), +-{d_max:.1f}"), (half + 4, "curvature (1/m), +-0.18")):
        cv2.rectangle(img, (40, top), (w - 10, top + half - 12), (210, 210, 210), 1)
        cv2.line(img, (40, top + (half - 12) // 2), (w - 10, top + (half - 12) // 2), (230, 230, 230), 1)
        cv2.putText(img, label, (44, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    series(record.d, -d_max, d_max, 4, half - 12, LEARNER)
    series(record.action, -0.18, 0.18, half + 4, half - 12, LEARNER)
    series(record.teacher_action, -0.18, 0.18, half + 4, half - 12, TEACHER)
    if teacher is not None:
        series(teacher.d, -d_max, d_max, 4, half - 12, TEACHER)
    if record.crashed and t >= record.failure_step:
        cv2.line(img, (x(record.failure_step), 4), (x(record.failure_step), h - 8), FAILURE, 2)
    cv2.putText(img, f"t = {t / hz:5.1f} s", (w - 110, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1,
                cv2.LINE_AA)
    return img


def frames_of(record: EpisodeRecord, seen: list[np.ndarray], teacher: EpisodeRecord | None, start: int, end: int,
              hz: float) -> list[np.ndarray]:
    """The video frames of steps start..end (inclusive) of the replayed episode."""
    from envs import map_texture, track_by_name
    from envs.topdown import chase_view, draw_car, to_pixels

    texture = map_texture(track_by_name(record.track), 4.0)
    xy = np.stack([record.series("x"), record.series("y")], axis=1)
    txy = np.stack([teacher.series("x"), teacher.series("y")], axis=1) if teacher is not None else None
    out = []
    for t in range(start, end + 1):
        cam = cv2.resize(seen[min(t, len(seen) - 1)], (400, 132), interpolation=cv2.INTER_NEAREST)
        x, y = xy[t]
        heading = math.atan2(*(xy[min(t + 1, len(xy) - 1)] - xy[max(t - 1, 0)])[::-1]) if len(xy) > 1 else 0.0
        view, M = chase_view(texture, x, y, heading, size=264, ppm=6.0)
        view = np.ascontiguousarray(view)
        for path, colour in ((txy, TEACHER), (xy[: t + 1], LEARNER)):
            if path is not None and len(path) > 1:
                pts = to_pixels(M, path[np.isfinite(path).all(axis=1)])
                cv2.polylines(view, [np.round(pts).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
        draw_car(view, M, x, y, heading, FAILURE if (record.crashed and t >= record.failure_step) else LEARNER)
        canvas = np.full((424, 664, 3), 255, np.uint8)
        canvas[:132, :400] = cam
        canvas[:264, 400:] = view
        text = [f"{record.track} | {record.condition} | episode {record.index}", f"step {t} of {record.steps}",
                "blue: policy   green: teacher"]
        if record.crashed:
            text.append(f"{record.failure_type} at {record.failure_step / hz:.1f} s")
        for i, line in enumerate(text):
            cv2.putText(canvas, line, (8, 160 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (40, 40, 40), 1, cv2.LINE_AA)
        canvas[264:] = _chart(record, teacher, t, start, end, (664, 160), hz)
        out.append(canvas)
    return out


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> list[Path]:
    """`path`.mp4 (H.264) and `path`.webp (animated); returns both."""
    import imageio.v3 as iio
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    mp4, webp = path.with_suffix(".mp4"), path.with_suffix(".webp")
    iio.imwrite(mp4, np.stack(frames), fps=fps, codec="libx264", macro_block_size=8)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(webp, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, quality=60,
                   method=4, minimize_size=False)
    return [mp4, webp]


def run(config: VideoConfig) -> dict:
    record, seen, teacher = replay(config)
    hz = load_protocol(config.protocol or load_result(config.results).protocol).policy_hz
    end = record.failure_step if record.crashed else record.steps - 1
    start = 0 if config.full else max(0, end - int(round(config.window_s * hz)))
    frames = frames_of(record, seen, teacher, start, end, hz)
    name = f"{record.episode_key.track}-{record.condition}-{record.index}"
    files = write_video(frames, Path(config.out) / f"{load_result(config.results).name}-{name}", hz)
    return {"key": record.key, "frames": len(frames), "start_step": start, "end_step": end,
            "files": [str(f) for f in files]}
