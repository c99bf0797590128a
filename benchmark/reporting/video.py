"""`python -m benchmark video`: watch one evaluation episode, replayed exactly from its records.

The episode is found in a results directory (by its key, or the first crash-mode failure of a
condition) and run again: the same protocol episode, in the same lockstep group (batched inference
is bit-identical only for the same batch), with the policy whose sha256 the results name. The
replay must reproduce the recorded lateral offsets exactly, or the command stops and says so.

Each video frame shows the dashcam frame the policy saw (at twice its native size, or at its native
size with `--scale 1` in a smaller layout), a heading-up top-down view with the learner's path so
far and the teacher's path on the same episode (from the teacher's records of the protocol, when
they exist), and a strip chart of the lateral offset and of the policy's and the teacher's
curvature commands, the failure marked. The clip is `window_s` seconds before the failure (or the
end), written as MP4 (H.264, imageio-ffmpeg's own ffmpeg) and as an animated WebP for pages;
`--full` writes the whole episode.

`failure_clips` (called by `make bench`) writes, for every method of a set of results, the clip of
its first crash-mode failure in one condition and the teacher's clip of the same steps of the same
episode, small enough for a page: the dashcam at native size, a few seconds.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmark.common.files import atomic_path, write_bytes_atomic
from benchmark.evaluation.evaluate import default_out, groups_of, policy_spec
from benchmark.evaluation.protocol import Protocol, load_protocol
from benchmark.evaluation.records import EpisodeRecord, read_records
from benchmark.evaluation.results import Result, load_result, load_results
from benchmark.evaluation.rollouts import Evaluation
from benchmark.rollout.policies import BUILTIN_KINDS, PolicySpec, make_policy

LEARNER, TEACHER, FAILURE = (40, 110, 230), (30, 160, 60), (220, 40, 40)
"""Colours (RGB) of the learner, the teacher and the failure mark."""


COLOUR_NAMES = {LEARNER: "blue", TEACHER: "green"}


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
    scale: int = 2
    """Dashcam size in the video: 2 (twice native, 664x424 frames) or 1 (native, 400x320 frames, about 60% of the bytes)."""
    teacher: Path | None = None
    """Results directory of the teacher, whose path is drawn (default: results/<protocol>/<profile>/teacher)."""
    out: Path = Path("results/videos")
    """Folder of the videos: <policy>-<track>-<condition>-<index>.mp4 and .webp."""

    def __post_init__(self):
        if self.scale not in (1, 2):
            raise ValueError(f"scale must be 1 (native dashcam size) or 2, not {self.scale}")


class _Capture(Evaluation):
    """The evaluation's hooks, keeping the frames the policy saw in one episode (from step `first` on:
    a long episode's earlier frames are not needed), and stopping when that episode ends. The frames
    are rendered for every policy, the teacher included (they are the video)."""

    frames_wanted = True

    def __init__(self, *args, number: int, first: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.number, self.first, self.frames = number, first, []

    def decide(self, frames, numbers, infos):
        hit = np.flatnonzero(numbers == self.number)
        if len(hit):
            keep = len(self.frames) >= self.first
            self.frames.append(frames[hit[0]].copy() if keep else None)
        return super().decide(frames, numbers, infos)

    def stop(self) -> bool:  # the group's later steps cannot change this episode's record
        return self.records[self.number] is not None


def checked_protocol(result: Result, protocol: str = "") -> Protocol:
    """The protocol of `result` (or the one named), refused when it is another version of it."""
    loaded = load_protocol(protocol or result.protocol)
    if loaded.name != result.protocol or result.results.protocol.sha256 not in (None, loaded.sha256):
        raise ValueError(f"{result.path.parent} was evaluated under another version of {loaded.name}")
    return loaded


def checked_policy(policy: str, result: Result) -> PolicySpec:
    """The PolicySpec of `policy`, refused unless it is the policy the results name (kind and sha256)."""
    spec = policy_spec(policy, result.name)
    if spec.sha256 != result.results.policy.sha256 or spec.kind != result.kind:
        raise ValueError(f"{policy} is not the policy of {result.path.parent} (kind {spec.kind}, sha256 "
                         f"{str(spec.sha256)[:12]}; the results name {result.kind}, "
                         f"{str(result.results.policy.sha256)[:12]})")
    return spec


def first_failure(result: Result, condition: str, protocol: Protocol) -> EpisodeRecord | None:
    """The first crash-mode failure of `condition` in the protocol's episode order (records.jsonl is
    in the order the groups finished, which varies with the workers)."""
    order = {str(e.key): i for i, e in enumerate(protocol.episodes(result.profile, [condition]))}
    failures = [r for r in result.records(keep=order.__contains__) if r.crashed and r.mode == "crash"]
    return min(failures, key=lambda r: order[r.key], default=None)


def replay_episode(result: Result, spec: PolicySpec, protocol: Protocol, key: str, group_size: int = 8,
                   first: int = 0) -> tuple[EpisodeRecord, list[np.ndarray | None]]:
    """(the replayed record, the frames the policy saw: None before step `first`) of episode `key`
    of `result`, run again in its lockstep group; ValueError unless it reproduces the records."""
    stored = next(iter(result.records(keep=key.__eq__)), None)
    if stored is None:
        raise ValueError(f"no episode {key!r} in {result.path.parent}")
    replayed, frames = replay_protocol_episode(spec, protocol, result.profile, key, group_size, first)
    if replayed.d != stored.d:
        raise ValueError(f"the replay of {key} does not reproduce its records (another machine or software "
                         "version?); a video of it would show another episode")
    return replayed, frames


def replay_protocol_episode(spec: PolicySpec, protocol: Protocol, profile: str, key: str, group_size: int = 8,
                            first: int = 0) -> tuple[EpisodeRecord, list[np.ndarray | None]]:
    """(the record, the frames the policy saw: None before step `first`) of the protocol's episode
    `key`, run in the lockstep group the evaluation ran it in (batched inference is bit-identical only
    for the same batch), and only that group: the record of an evaluation nobody kept, made again."""
    episodes = protocol.episodes(profile, teacher=True)
    target = next((e for e in episodes if str(e.key) == key), None)
    if target is None:
        raise ValueError(f"{protocol.name} ({profile}) has no episode {key!r}")
    group = next(g for g in groups_of([e for e in episodes if e.group == target.group], group_size) if target in g)
    number = group.index(target)
    threads = None
    if spec.kind == "torch":  # as in the evaluation's workers: one thread (the bits depend on it)
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        run = _Capture(make_policy(spec), group, intervention_threshold_m=protocol.intervention_threshold_m,
                       policy_hz=protocol.policy_hz, env_kwargs=None, number=number, first=first)
        run.run()
    finally:
        if threads is not None:
            torch.set_num_threads(threads)
    return run.records[number], run.frames


def teacher_record(path: Path, key: str, protocol: Protocol, profile: str) -> EpisodeRecord | None:
    """The teacher's record of `key` from its records.jsonl, when that file is of this protocol."""
    read = read_records(path, keep=key.__eq__)
    if read.meta is None or (read.meta.get("protocol_sha256"), read.meta.get("profile")) != (protocol.sha256, profile):
        return None
    return next(iter(read.records), None)


def replay(config: VideoConfig) -> tuple[EpisodeRecord, list[np.ndarray], EpisodeRecord | None]:
    """(the replayed record, the frames the policy saw, the teacher's record of the episode)."""
    result = load_result(config.results)
    protocol = checked_protocol(result, config.protocol)
    spec = checked_policy(config.policy, result)
    key = config.key
    if not key:
        failure = first_failure(result, config.condition, protocol)
        if failure is None:
            raise ValueError(f"no crash-mode failure in the {config.condition} condition of {config.results}; "
                             "pass --key")
        key = failure.key
    replayed, seen = replay_episode(result, spec, protocol, key, config.group_size)
    teacher_dir = config.teacher or default_out(protocol.name, result.profile, "teacher")
    return replayed, seen, teacher_record(Path(teacher_dir) / "records.jsonl", key, protocol, result.profile)


def _chart(record: EpisodeRecord, teacher: EpisodeRecord | None, t: int, start: int, end: int, size: tuple[int, int],
           hz: float, colours=(LEARNER, TEACHER)) -> np.ndarray:
    main, second = colours
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

    both = record.d + (teacher.d if teacher is not None else [])
    d_max = max(1.0, max((abs(v) for v in both if v is not None and math.isfinite(v)), default=1.0))
    for top, label in ((4, f"offset d (m), +-{d_max:.1f}"), (half + 4, "curvature (1/m), +-0.18")):
        cv2.rectangle(img, (40, top), (w - 10, top + half - 12), (210, 210, 210), 1)
        cv2.line(img, (40, top + (half - 12) // 2), (w - 10, top + (half - 12) // 2), (230, 230, 230), 1)
        cv2.putText(img, label, (44, top + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
    series(record.d, -d_max, d_max, 4, half - 12, main)
    series(record.action, -0.18, 0.18, half + 4, half - 12, main)
    series(record.teacher_action, -0.18, 0.18, half + 4, half - 12, TEACHER)  # the teacher's label, always green
    if teacher is not None:
        series(teacher.d, -d_max, d_max, 4, half - 12, second)
    if record.crashed and t >= record.failure_step:
        cv2.line(img, (x(record.failure_step), 4), (x(record.failure_step), h - 8), FAILURE, 2)
    cv2.putText(img, f"t = {t / hz:5.1f} s", (w - 110, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1,
                cv2.LINE_AA)
    return img


def _fit(text: str, width: int, font_scale: float) -> str:
    """`text` cut (with '...') to fit `width` pixels (a long policy name must not run into the map)."""
    def fits(t):
        return cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)[0][0] <= width

    if fits(text):
        return text
    while text and not fits(text + "..."):
        text = text[:-1]
    return text + "..."


def frames_of(record: EpisodeRecord, seen: list[np.ndarray | None], teacher: EpisodeRecord | None, start: int,
              end: int, hz: float, *, scale: int = 2, name: str = "policy", other: str = "teacher",
              colours: tuple[tuple[int, int, int], tuple[int, int, int]] = (LEARNER, TEACHER)) -> list[np.ndarray]:
    """The video frames of steps start..end (inclusive) of the replayed episode. `teacher` is the
    record drawn for comparison (named `other`); `colours` are the record's and the comparison's.
    scale 2: the dashcam at twice its size, 664x424 frames; 1: native size, 400x320 frames."""
    from envs import drawing_by_name, map_texture
    from envs.topdown import chase_view, draw_car, to_pixels

    main, second = colours
    cam_h, cam_w = next(f for f in seen if f is not None).shape[:2]
    cam_h, cam_w = cam_h * scale, cam_w * scale
    view_size = 264 if scale == 2 else 200
    chart_h, font, line_h = (160, 0.5, 20) if scale == 2 else (120, 0.38, 15)
    width = cam_w + view_size
    texture = map_texture(drawing_by_name(record.track), 4.0)
    xy = np.stack([record.series("x"), record.series("y")], axis=1)
    txy = np.stack([teacher.series("x"), teacher.series("y")], axis=1) if teacher is not None else None
    legend = f"{COLOUR_NAMES.get(main, 'this')}: {name}"
    if teacher is not None:
        legend += f"   {COLOUR_NAMES.get(second, 'other')}: {other}"
    out = []
    for t in range(start, end + 1):
        frame = seen[min(t, len(seen) - 1)]
        cam = cv2.resize(frame, (cam_w, cam_h), interpolation=cv2.INTER_NEAREST) if scale != 1 else frame
        x, y = xy[t]
        heading = math.atan2(*(xy[min(t + 1, len(xy) - 1)] - xy[max(t - 1, 0)])[::-1]) if len(xy) > 1 else 0.0
        view, M = chase_view(texture, x, y, heading, size=view_size, ppm=6.0 * view_size / 264)
        view = np.ascontiguousarray(view)
        for path, colour in ((txy, second), (xy[: t + 1], main)):
            if path is not None and len(path) > 1:
                pts = to_pixels(M, path[np.isfinite(path).all(axis=1)])
                cv2.polylines(view, [np.round(pts).astype(np.int32)], False, colour, 2, cv2.LINE_AA)
        draw_car(view, M, x, y, heading, FAILURE if (record.crashed and t >= record.failure_step) else main)
        canvas = np.full((view_size + chart_h, width, 3), 255, np.uint8)
        canvas[:cam_h, :cam_w] = cam
        canvas[:view_size, cam_w:] = view
        text = [name, record.track, f"{record.condition}, episode {record.index}", f"step {t} of {record.steps}",
                legend]
        if record.crashed:
            text.append(f"{record.failure_type} at {record.failure_step / hz:.1f} s")
        for i, line in enumerate(text):
            cv2.putText(canvas, _fit(line, cam_w - 12, font), (8, cam_h + 18 + line_h * i), cv2.FONT_HERSHEY_SIMPLEX,
                        font, (40, 40, 40), 1, cv2.LINE_AA)
        canvas[view_size:] = _chart(record, teacher, t, start, end, (width, chart_h), hz, colours)
        out.append(canvas)
    return out


FORMATS = ("mp4", "webp")


def write_video(frames: list[np.ndarray], path: Path, fps: float, formats: Sequence[str] = FORMATS) -> list[Path]:
    """`path`.mp4 (H.264) and `path`.webp (animated), each written atomically; returns them."""
    import imageio.v3 as iio
    from PIL import Image

    files = []
    if "mp4" in formats:
        mp4 = path.with_suffix(".mp4")
        with atomic_path(mp4) as tmp:
            iio.imwrite(tmp, np.stack(frames), fps=fps, codec="libx264", macro_block_size=8, extension=".mp4",
                        output_params=["-f", "mp4"])  # the temporary name has no .mp4 to go by
        files.append(mp4)
    if "webp" in formats:
        webp = path.with_suffix(".webp")
        images = [Image.fromarray(f) for f in frames]
        data = io.BytesIO()
        images[0].save(data, format="WEBP", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                       loop=0, quality=60, method=4, minimize_size=False)
        write_bytes_atomic(webp, data.getvalue())
        files.append(webp)
    return files


def run(config: VideoConfig) -> dict:
    record, seen, teacher = replay(config)
    result = load_result(config.results)
    hz = load_protocol(config.protocol or result.protocol).policy_hz
    end = record.failure_step if record.crashed else record.steps - 1
    start = 0 if config.full else max(0, end - round(config.window_s * hz))
    frames = frames_of(record, seen, teacher, start, end, hz, scale=config.scale, name=result.name)
    name = f"{record.episode_key.track}-{record.condition}-{record.index}"
    files = write_video(frames, Path(config.out) / f"{result.name}-{name}", hz)
    return {"key": record.key, "frames": len(frames), "start_step": start, "end_step": end,
            "files": [str(f) for f in files]}


# ------------------------------------------------------------------------------------------------
# Failure clips (`make bench`, the leaderboard)
# ------------------------------------------------------------------------------------------------


def clip_of(result: Result, spec: PolicySpec, protocol: Protocol, key: str, path: Path, *,
            teacher: EpisodeRecord | None = None, steps: tuple[int, int] | None = None, window_s: float = 5.0,
            scale: int = 1, group_size: int = 8, formats: Sequence[str] = FORMATS, name: str = "",
            other: str = "teacher", colours=(LEARNER, TEACHER)) -> dict:
    """Replay episode `key` of `result` and write its clip as `path`.webp / .mp4: the `window_s`
    seconds up to its failure (or end), or the given (first, last) steps, cut to the episode.
    `teacher` is the record drawn beside it. Returns key, frames, start_step, end_step, files."""
    stored = next(iter(result.records(keep=key.__eq__)), None)
    if stored is None:
        raise ValueError(f"no episode {key!r} in {result.path.parent}")
    last = stored.failure_step if stored.crashed else stored.steps - 1
    if steps is None:
        steps = (last - round(window_s * protocol.policy_hz), last)
    start, end = max(0, steps[0]), min(last, steps[1])
    record, seen = replay_episode(result, spec, protocol, key, group_size, first=start)
    frames = frames_of(record, seen, teacher, start, end, protocol.policy_hz, scale=scale, name=name or result.name,
                       other=other, colours=colours)
    files = write_video(frames, path, protocol.policy_hz, formats)
    return {"key": key, "frames": len(frames), "start_step": start, "end_step": end, "record": record,
            "files": files}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "policy"


def failure_clips(result_dirs: Sequence[str | Path], out_dir: str | Path, condition: str = "nominal",
                  policies: Sequence[str | Path] = (), *, window_s: float = 5.0, scale: int = 1, group_size: int = 8,
                  protocol: str = "", formats: Sequence[str] = FORMATS, verbose: bool = True,
                  workers: int = 1) -> list[Path]:
    """For each results directory (a method), the clip of its first crash-mode failure in `condition`
    (in protocol order) and the teacher's clip of the same steps of the same episode, into `out_dir`:

        <method>-<track>-<condition>-<index>.webp / .mp4           the method, teacher's path drawn
        <method>-<track>-<condition>-<index>-teacher.webp / .mp4   the teacher, the method's path drawn

    The teacher's results are the directory whose policy kind is 'teacher' (without one, no teacher
    clips). Each policy is recovered from its results: the teacher and straight-ahead by kind, a
    model by the sha256 the results name, among `policies` (model directories or .onnx files). A
    method that never fails in `condition` gets no clip, and a line saying so (printed when
    `verbose`, like every clip written). Earlier clips of these methods in `out_dir` are removed.
    With `workers` > 1 the methods' clips are made in the evaluation's worker processes (the same
    files: each clip is a replay and an encoding of its own). Returns the files written."""
    results = load_results(result_dirs)
    if not results:
        return []
    proto = checked_protocol(results[0], protocol)
    if condition not in proto.profile(results[0].profile).conditions:
        raise ValueError(f"{proto.name} ({results[0].profile}) has no crash-mode condition {condition!r}")
    out_dir = Path(out_dir)
    teacher = next((r for r in results if r.kind == "teacher"), None)
    candidates: dict[str, PolicySpec] = {}
    for policy in policies:  # model files by sha256 (the results name no path)
        if str(policy) not in BUILTIN_KINDS:
            spec = policy_spec(str(policy))
            candidates.setdefault(spec.sha256, spec)
    written: list[Path] = []

    def say(line: str) -> None:
        if verbose:
            print(line, flush=True)

    plan = []  # every policy is found before any file is touched
    for result in results:
        failure = first_failure(result, condition, proto)
        spec = None
        if failure is not None and result.kind in BUILTIN_KINDS:
            spec = PolicySpec(kind=result.kind, name=result.name)
        elif failure is not None:
            if result.results.policy.sha256 not in candidates:
                raise ValueError(f"{result.path.parent}: none of the policies given has the sha256 its results name "
                                 f"({str(result.results.policy.sha256)[:12]}); pass its model directory or .onnx file")
            spec = PolicySpec(**{**candidates[result.results.policy.sha256].__dict__, "name": result.name})
        plan.append((result, failure, spec))
    episodes = [e.key for e in proto.episodes(results[0].profile, [condition]) if e.mode == "crash"]
    for result in results:  # an earlier run's clips of these methods (another episode may fail now)
        for key in episodes:
            stem = f"{_slug(result.label)}-{key.track}-{condition}-{key.index}"
            for name in (stem, f"{stem}-teacher"):
                for suffix in (".webp", ".mp4"):
                    (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    jobs = []
    for result, failure, spec in plan:
        if failure is None:
            continue
        stem = f"{_slug(result.label)}-{failure.episode_key.track}-{condition}-{failure.index}"
        jobs.append((result, spec, proto, failure.key, out_dir / stem, teacher if teacher is not result else None,
                     window_s, scale, group_size, tuple(formats)))
    if workers > 1 and len(jobs) > 1:
        from benchmark.evaluation.evaluate import _pool

        with _pool(workers, 0) as pool:
            futures = [pool.submit(_method_clips, *job) for job in jobs]
            written += _report(plan, (f.result() for f in futures), condition, say)
    else:
        written += _report(plan, (_method_clips(*job) for job in jobs), condition, say)
    return written


def _method_clips(result: Result, spec: PolicySpec, proto: Protocol, key: str, path: Path, teacher: Result | None,
                  window_s: float, scale: int, group_size: int, formats: Sequence[str]) -> tuple[dict, dict | None]:
    """A method's failure clip and the teacher's on the same steps (its clip_of dicts, without records)."""
    theirs = None if teacher is None else next(iter(teacher.records(keep=key.__eq__)), None)
    clip = clip_of(result, spec, proto, key, path, teacher=theirs, window_s=window_s, scale=scale,
                   group_size=group_size, formats=formats, name=result.label)
    paired = None
    if theirs is not None:
        paired = clip_of(teacher, PolicySpec(kind="teacher", name=teacher.name), proto, key,
                         path.with_name(f"{path.name}-teacher"), teacher=clip["record"],
                         steps=(clip["start_step"], clip["end_step"]), scale=scale, group_size=group_size,
                         formats=formats, name=teacher.label, other=result.label, colours=(TEACHER, LEARNER))
        paired.pop("record")
    clip.pop("record")
    return clip, paired


def _report(plan, outcomes, condition: str, say) -> list[Path]:
    """Say what each method's clips are, in the plan's order, as they arrive; the files written."""
    written: list[Path] = []
    for result, failure, _spec in plan:
        if failure is None:
            say(f"{result.label}: no crash-mode failure in the {condition} condition; no clip")
            continue
        clip, paired = next(outcomes)
        written += clip["files"]
        say(f"{result.label}: {failure.failure_type} at step {failure.failure_step} of {failure.key}; clip of steps "
            f"{clip['start_step']}-{clip['end_step']} ({clip['frames']} frames): "
            + ", ".join(f"{f} ({f.stat().st_size / 1e3:.0f} kB)" for f in clip["files"]))
        if paired is not None:
            written += paired["files"]
            say(f"  the teacher on the same steps ({paired['frames']} frames): "
                + ", ".join(f"{f} ({f.stat().st_size / 1e3:.0f} kB)" for f in paired["files"]))
    return written
