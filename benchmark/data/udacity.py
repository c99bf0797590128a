"""Udacity-style recordings: export a dataset as `driving_log.csv` + PNG frames, and import one.

`python -m benchmark export-udacity --data DIR --out FOLDER` and
`python -m benchmark import-udacity --folder FOLDER --out DIR`.

Conventions of the CSV (the Udacity self-driving-car simulator's `driving_log.csv`):

- columns `center,left,right,steering,throttle,brake,speed`; the simulator writes no header, the
  Udacity sample data has one. Export writes one unless `--no-header`; import takes either. Rows
  are frames in driving order: export sorts the steps by round, episode and step (a recording
  stores the episodes it drives in lockstep interleaved).
- image paths: export writes paths relative to the folder (`IMG/center_000123.png`, forward
  slashes). Import takes any path, including absolute paths from another machine (Windows or Unix):
  it tries the path as given, then relative to the folder, then `folder/IMG/<basename>`.
- steering: unitless, positive turns right (as in the simulator and as SteerBench's curvature).
  The declared `steering_scale` is the curvature [1/m] of one unit of steering:
  `curvature = steering * steering_scale`, `steering = curvature / steering_scale`. Its default is
  `envs.MAX_CURVATURE` (about 0.179 1/m, the tightest path the SteerBench car can drive), so full
  lock maps to steering +-1, like the simulator's range. Steering is not clipped either way.
- speed: export writes SteerBench's speed in m/s (the simulator logs mph; the export's
  `steerbench.json` says `"speed_unit": "m/s"`). Import converts with `speed_unit`: `auto` reads
  the unit from `steerbench.json` when the folder has one, else assumes the simulator's mph.
- throttle and brake: export writes 0 (SteerBench commands curvature only); import ignores them.

Export also writes `steerbench.json` beside the CSV: the steering scale and units, the source
dataset (path, kind, label rule, steps), its camera rig and its episode boundaries, so that an
import of the export means the same thing as the source. Importing such a folder takes the
steering scale, speed unit, episode boundaries and (when the frames are kept as they are) the rig
from it unless they are given explicitly.

Import writes a SteerBench dataset (`benchmark.data.dataset`): frames (left, centre, right) cropped to
rows `crop_top..crop_bottom` (default 60..135 of the simulator's 160x320 images: the sky and the
car's hood are dropped, as in the common PilotNet practice), resized to 66x200 with
`cv2.INTER_AREA` (no resize when the crop already has that size) and converted to RGB;
`label_center = action = steering * steering_scale`; `label_left = label_right = NaN` (someone
else's recording has no teacher for the side cameras: train with `--side-cameras --label-rule
fixed`, which derives side labels from the centre one); the state columns (pose, lateral offset,
heading error, road curvature, s, progress) are NaN; `track = "udacity:<folder name>"`,
`track_seed = -1`, `lane = 0`, `source = "udacity"`, `round = 0`.

Episodes: a recording is split so that training's split by whole episodes has episodes to hold
out. A new episode starts where the image file names' timestamps (`center_2016_12_01_13_30_48_287`)
jump by more than `max_gap_s` (separate recording sessions appended to one log), and every
`episode_rows` rows within a session; `step` is the row number within its episode. A SteerBench
export's own episode boundaries (from `steerbench.json`) are used instead when present.

Errors (`UdacityError`, a ValueError) name the problem, the CSV line and the path: a missing
`driving_log.csv`, missing required columns, a steering value that is not a number, an image that
is missing or unreadable, an image too small for the crop.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from tqdm import tqdm

from benchmark.common.config import ConfigError
from benchmark.common.files import atomic_path, write_json_atomic
from benchmark.common.provenance import command_line, git_sha
from envs.vehicle import MAX_CURVATURE

from .dataset import CAMERAS, Dataset, DatasetWriter

LOG_NAME = "driving_log.csv"
SIDECAR_NAME = "steerbench.json"
SIM_COLUMNS = ("center", "left", "right", "steering", "throttle", "brake", "speed")
REQUIRED_COLUMNS = ("center", "left", "right", "steering")
MPH_TO_MPS = 0.44704
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_EXPORTED_IMAGE = re.compile(r"^(left|center|right)_\d+\.png$")
_TIMESTAMP = re.compile(r"(\d{4})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{2})_(\d{3})")


class UdacityError(ValueError):
    """A Udacity-style folder that cannot be imported as it is: the message names the problem."""


# --- export --------------------------------------------------------------------------------------


@dataclass
class ExportConfig:
    """Export a SteerBench dataset as a Udacity-style folder: driving_log.csv and IMG/*.png."""

    data: Path
    """SteerBench dataset directory to export."""
    out: Path
    """Folder to write: driving_log.csv, IMG/ (PNG frames) and steerbench.json."""
    steering_scale: float = MAX_CURVATURE
    """Curvature [1/m] per unit of steering: steering = curvature / steering_scale (default: the car's maximum
    curvature, so full lock is steering +-1)."""
    steering_from: Literal["label_center", "action"] = "label_center"
    """Index column written as the steering: the centre camera's label or the executed action."""
    header: bool = True
    """Write the header line center,left,right,steering,throttle,brake,speed (the simulator writes none)."""
    max_steps: int = 0
    """Export only the first this many steps in driving order (by round, episode, step; 0: all)."""
    overwrite: bool = False
    """Replace an earlier export in `out`."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.steering_scale) and self.steering_scale > 0):
            raise ConfigError(f"steering_scale must be a positive curvature [1/m], got {self.steering_scale}")
        if self.max_steps < 0:
            raise ConfigError(f"max_steps must be >= 0, got {self.max_steps}")


def _prepare_export_folder(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; choose a new folder or pass overwrite")
        for name in (LOG_NAME, SIDECAR_NAME):
            (out / name).unlink(missing_ok=True)
        if (out / "IMG").is_dir():
            for p in (out / "IMG").iterdir():
                if _EXPORTED_IMAGE.match(p.name):
                    p.unlink()
    (out / "IMG").mkdir(parents=True, exist_ok=True)


def export_order(index) -> np.ndarray:
    """Global step numbers in driving order: by round, episode and step (recordings interleave the
    episodes they step in lockstep; a driving log reads as consecutive frames of one drive)."""
    return np.lexsort((index["step"].to_numpy(), index["episode"].to_numpy(), index["round"].to_numpy()))


def _episode_runs(index, steps: np.ndarray) -> list[dict]:
    """The exported rows' source episodes: runs of consecutive rows of one (round, episode)."""
    idx = index.iloc[steps]
    key = list(zip(idx["round"].to_numpy().tolist(), idx["episode"].to_numpy().tolist()))
    step = idx["step"].to_numpy()
    runs: list[dict] = []
    for i, k in enumerate(key):
        if runs and key[i - 1] == k:
            runs[-1]["rows"] += 1
            runs[-1]["last_step"] = int(step[i])
        else:
            runs.append({"round": k[0], "episode": k[1], "track": str(idx["track"].iloc[i]),
                         "source": str(idx["source"].iloc[i]), "first_row": i, "rows": 1,
                         "first_step": int(step[i]), "last_step": int(step[i])})
    return runs


def _fmt(v: float) -> str:
    return repr(float(v))  # shortest text that reads back as the same float


def export(config: ExportConfig) -> dict:
    t0 = time.perf_counter()
    ds = Dataset.open(config.data)
    n = len(ds) if config.max_steps == 0 else min(config.max_steps, len(ds))
    steps = export_order(ds.index)[:n]  # CSV row i shows global step steps[i]
    values = ds.index[config.steering_from].to_numpy(np.float64)[steps]
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise UdacityError(f"{config.data}: step {int(steps[bad[0]])} has no {config.steering_from} value ({values[bad[0]]}); "
                           f"{len(bad)} steps in all" + (" (try steering_from=action)"
                                                         if config.steering_from == "label_center" else ""))
    speed = ds.index["speed"].to_numpy(np.float64)[steps]
    out = Path(config.out)
    _prepare_export_folder(out, config.overwrite)
    digits = max(6, len(str(max(n - 1, 0))))
    names = {c: [f"IMG/{c}_{i:0{digits}d}.png" for i in range(n)] for c in CAMERAS}
    cams = [ds.camera_index(c) for c in CAMERAS]

    bar = tqdm(total=n, desc="export", unit="step", disable=not config.progress, leave=False, dynamic_ncols=True)
    block = 256
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for start in range(0, n, block):
            sel = steps[start:start + block]
            jobs = []
            for c, cam in zip(CAMERAS, cams):
                frames = ds.frames(sel, cam)
                for j in range(len(sel)):
                    jobs.append((out / names[c][start + j], frames[j]))
            for path, ok in zip((p for p, _ in jobs),
                                pool.map(lambda job: cv2.imwrite(str(job[0]), cv2.cvtColor(job[1], cv2.COLOR_RGB2BGR)),
                                         jobs)):
                if not ok:
                    raise OSError(f"{path}: cv2.imwrite failed")
            bar.update(len(sel))
    bar.close()

    with atomic_path(out / LOG_NAME) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        if config.header:
            w.writerow(SIM_COLUMNS)
        for i in range(n):
            w.writerow([names["center"][i], names["left"][i], names["right"][i],
                        _fmt(values[i] / config.steering_scale), "0", "0", _fmt(speed[i])])

    m = ds.manifest
    sidecar = {
        "format": "steerbench-udacity-export",
        "version": 1,
        "rows": n,
        "row_order": "source steps sorted by round, episode, step",
        "header": config.header,
        "columns": list(SIM_COLUMNS),
        "steering_scale": config.steering_scale,
        "steering": "steering = curvature [1/m] / steering_scale; positive turns right",
        "steering_from": config.steering_from,
        "speed_unit": "m/s",
        "throttle_brake": "0 (not recorded: SteerBench commands curvature only)",
        "image_format": "png (lossless), RGB frames written as BGR by cv2.imwrite",
        "frame_shape": list(ds.frame_shape),
        "cameras": list(CAMERAS),
        "rig": m.get("rig"),
        "episodes": _episode_runs(ds.index, steps),
        "source": {"path": str(Path(config.data).resolve()), "kind": m.get("kind"),
                   "label_rule": m.get("label_rule"), "created": m.get("created"), "steps": len(ds),
                   "git_sha": m.get("git_sha")},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "git_sha": git_sha(),
    }
    write_json_atomic(out / SIDECAR_NAME, sidecar)
    seconds = time.perf_counter() - t0
    return {"out": str(out), "csv": str(out / LOG_NAME), "rows": n, "images": 3 * n,
            "steering_scale": config.steering_scale, "seconds": round(seconds, 1)}


# --- import --------------------------------------------------------------------------------------


@dataclass
class ImportConfig:
    """Import a Udacity-style recording (driving_log.csv and its images) as a SteerBench dataset."""

    folder: Path
    """Recording folder holding driving_log.csv (and usually IMG/), or the CSV file itself."""
    out: Path = Path("data/udacity")
    """Dataset directory to create."""
    steering_scale: float | None = None
    """Curvature [1/m] per unit of recorded steering: label = steering * steering_scale. None: the value in the
    folder's steerbench.json (a SteerBench export), else envs.MAX_CURVATURE (about 0.179: steering +-1 is the
    car's full lock)."""
    crop_top: int = 60
    """First image row kept (the default drops the sky of the simulator's 160x320 images)."""
    crop_bottom: int = 135
    """Row after the last one kept (the default drops the car's hood); 0 keeps rows down to the bottom."""
    height: int = 66
    """Frame height after resizing [px] (PilotNet: 66)."""
    width: int = 200
    """Frame width after resizing [px] (PilotNet: 200)."""
    speed_unit: Literal["auto", "mph", "m/s"] = "auto"
    """Unit of the CSV's speed column; auto: steerbench.json's when present, else mph (the simulator's)."""
    episode_rows: int = 200
    """Rows per episode: a recording is cut into episodes of this many rows (for validation splits)."""
    max_gap_s: float = 1.0
    """Also start an episode where the image names' timestamps jump by more than this [s] (0: never)."""
    max_rows: int = 0
    """Import only the first this many rows (0: all)."""
    shard_size: int = 2000
    """Steps per frame shard."""
    threads: int = 0
    """Image decoding threads (0: one per CPU core)."""
    overwrite: bool = False
    """Replace an existing dataset in `out`."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.steering_scale is not None and not (math.isfinite(self.steering_scale) and self.steering_scale > 0):
            raise ConfigError(f"steering_scale must be a positive curvature [1/m], got {self.steering_scale}")
        if self.crop_top < 0 or self.crop_bottom < 0 or (self.crop_bottom and self.crop_bottom <= self.crop_top):
            raise ConfigError(f"crop rows {self.crop_top}..{self.crop_bottom} are empty; need 0 <= crop_top < crop_bottom "
                             "(or crop_bottom 0 for the image bottom)")
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"frame size must be positive, got {self.height}x{self.width}")
        if self.speed_unit not in ("auto", "mph", "m/s"):
            raise ConfigError(f"speed_unit must be auto, mph or m/s, got {self.speed_unit!r}")
        if self.episode_rows < 1 or self.max_gap_s < 0 or self.max_rows < 0 or self.shard_size < 1 or self.threads < 0:
            raise ConfigError("episode_rows and shard_size must be positive; max_gap_s, max_rows and threads >= 0")


@dataclass
class LogRow:
    line: int
    """Line number in the CSV file (1-based, the header counts)."""
    paths: dict[str, str]
    steering: float
    speed: float


@dataclass
class DrivingLog:
    path: Path
    header: bool
    columns: dict[str, int]
    rows: list[LogRow] = field(default_factory=list)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _looks_like_image(text: str) -> bool:
    return text.strip().lower().endswith(IMAGE_SUFFIXES)


def read_driving_log(path: Path) -> DrivingLog:
    """Parse driving_log.csv, with or without a header; every row's steering checked."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            lines = [(n, [v.strip() for v in r]) for n, r in enumerate(csv.reader(f), start=1)]
    except UnicodeDecodeError as exc:
        raise UdacityError(f"{path}: not a text CSV file ({exc})") from exc
    lines = [(n, r) for n, r in lines if any(r)]  # blank lines
    if not lines:
        raise UdacityError(f"{path}: empty; expected one row per frame: {','.join(SIM_COLUMNS)}")
    first_line, first = lines[0]
    header = not any(_looks_like_image(v) for v in first) and (len(first) < 4 or not _is_number(first[3]))
    if header:
        names = [v.lower() for v in first]
        columns = {name: names.index(name) for name in SIM_COLUMNS if name in names}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise UdacityError(f"{path}: the header (line {first_line}) has no column {', '.join(repr(c) for c in missing)}; "
                               f"required: {', '.join(REQUIRED_COLUMNS)} (found: {', '.join(first)})")
        body = lines[1:]
    else:
        if len(first) < len(REQUIRED_COLUMNS):
            raise UdacityError(f"{path} line {first_line}: {len(first)} columns and no header; a log without a header "
                               f"needs the simulator's columns by position: {', '.join(SIM_COLUMNS)} (at least the "
                               f"first {len(REQUIRED_COLUMNS)}: {', '.join(REQUIRED_COLUMNS)})")
        columns = {name: i for i, name in enumerate(SIM_COLUMNS) if i < len(first)}
        body = lines
    log = DrivingLog(path, header, columns)
    need = max(columns[c] for c in REQUIRED_COLUMNS) + 1
    for n, r in body:
        if len(r) < need:
            missing = [c for c in REQUIRED_COLUMNS if columns[c] >= len(r)]
            raise UdacityError(f"{path} line {n}: {len(r)} columns, no value for {', '.join(missing)}")
        text = r[columns["steering"]]
        try:
            steering = float(text)
        except ValueError:
            raise UdacityError(f"{path} line {n}: steering {text!r} is not a number") from None
        if not math.isfinite(steering):
            raise UdacityError(f"{path} line {n}: steering {text!r} is not a finite number")
        speed = math.nan
        if "speed" in columns and columns["speed"] < len(r) and r[columns["speed"]]:
            text = r[columns["speed"]]
            try:
                speed = float(text)
            except ValueError:
                raise UdacityError(f"{path} line {n}: speed {text!r} is not a number") from None
        paths = {}
        for cam in CAMERAS:
            if not r[columns[cam]]:
                raise UdacityError(f"{path} line {n}: the {cam} image path is empty")
            paths[cam] = r[columns[cam]]
        log.rows.append(LogRow(n, paths, steering, speed))
    if not log.rows:
        raise UdacityError(f"{path}: a header and no data rows")
    return log


def _basename(raw: str) -> str:
    return re.split(r"[\\/]", raw)[-1]


def image_candidates(raw: str, folder: Path) -> list[Path]:
    """Where an image path from the log may be: as given, relative to the folder, folder/IMG/<basename>."""
    out = [Path(raw).expanduser()]
    portable = raw.replace("\\", "/")
    if not re.match(r"^([A-Za-z]:)?/", portable):
        out.append(folder / portable)
    out.append(folder / "IMG" / _basename(raw))
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def resolve_image(raw: str, folder: Path, where: str) -> Path:
    candidates = image_candidates(raw, folder)
    for p in candidates:
        if p.is_file():
            return p
    raise UdacityError(f"{where}: image {raw!r} not found (tried {', '.join(str(p) for p in candidates)})")


def _timestamp(raw: str) -> float | None:
    m = _TIMESTAMP.search(_basename(raw))
    if not m:
        return None
    y, mo, d, h, mi, s, ms = (int(v) for v in m.groups())
    try:
        return _dt.datetime(y, mo, d, h, mi, s, ms * 1000).timestamp()
    except ValueError:
        return None


def read_sidecar(path: Path) -> dict[str, Any]:
    """An export's steerbench.json, checked as the command line's options are: a positive finite
    steering scale, a known speed unit, and episode runs that tile its rows; UdacityError otherwise."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise UdacityError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UdacityError(f"{path}: expected a JSON object")
    if "steering_scale" in data:
        s = data["steering_scale"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
            raise UdacityError(f"{path}: steering_scale must be a positive curvature [1/m], got {s!r}")
    if data.get("speed_unit", "m/s") not in ("mph", "m/s"):
        raise UdacityError(f"{path}: speed_unit must be mph or m/s, got {data.get('speed_unit')!r}")
    rows, runs = data.get("rows"), data.get("episodes")
    if runs is not None:
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0 or not isinstance(runs, list):
            raise UdacityError(f"{path}: rows must be a count and episodes a list of runs")
        expected = 0
        for k, run in enumerate(runs):
            ok = isinstance(run, dict) and all(isinstance(run.get(f), int) and not isinstance(run.get(f), bool)
                                               for f in ("first_row", "rows"))
            if not ok or run["first_row"] != expected or run["rows"] < 1:
                raise UdacityError(f"{path}: episode run {k} is {run!r}; runs must have whole first_row and rows "
                                   f"and follow each other from row 0 (expected first_row {expected})")
            expected += run["rows"]
        if expected != rows:
            raise UdacityError(f"{path}: the episode runs cover {expected} rows, the file says {rows}")
    return data


def episode_starts(log: DrivingLog, config: ImportConfig, sidecar: dict | None) -> tuple[np.ndarray, str]:
    """Row numbers at which episodes start, and how they were chosen."""
    n = len(log.rows)
    runs = (sidecar or {}).get("episodes")
    if runs and sum(int(r["rows"]) for r in runs) == (sidecar or {}).get("rows"):  # the export's own log
        starts = [int(r["first_row"]) for r in runs]
        return np.array([s for s in starts if s < n], np.int64), "steerbench.json episode boundaries"
    cuts = {0}
    rule = f"blocks of {config.episode_rows} rows"
    stamps = [_timestamp(r.paths["center"]) for r in log.rows]
    if config.max_gap_s > 0 and all(t is not None for t in stamps):
        gaps = np.abs(np.diff(np.array(stamps, np.float64)))
        cuts.update(int(i) + 1 for i in np.flatnonzero(gaps > config.max_gap_s))
        rule = f"image timestamp gaps > {config.max_gap_s} s, then " + rule
    session_starts = sorted(cuts) + [n]
    starts = []
    for a, b in zip(session_starts[:-1], session_starts[1:]):
        starts.extend(range(a, b, config.episode_rows))
    return np.array(starts, np.int64), rule


class _FrameLoader:
    """Reads, crops, resizes and converts one row's three images."""

    def __init__(self, config: ImportConfig, log: DrivingLog, paths: list[dict[str, Path]], exported: bool):
        self.config, self.log, self.paths, self.exported = config, log, paths, exported
        self.shape = (config.height, config.width, 3)

    def image(self, k: int, cam: str) -> np.ndarray:
        c, row, path = self.config, self.log.rows[k], self.paths[k][cam]
        where = f"{self.log.path} line {row.line}"
        try:
            data = np.fromfile(path, np.uint8)
        except OSError as exc:
            raise UdacityError(f"{where}: cannot read the {cam} image {path} ({exc})") from exc
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise UdacityError(f"{where}: the {cam} image {path} is not a readable image")
        h, w = img.shape[:2]
        bottom = c.crop_bottom or h
        if bottom > h:
            hint = (f" (a SteerBench export: its frames are {h}x{w} already, keep them with crop_top 0 and "
                    "crop_bottom 0)") if self.exported else ""
            raise UdacityError(f"{where}: the {cam} image {path} is {h}x{w} (rows x columns), too small for the "
                               f"crop rows {c.crop_top}..{bottom}; set crop_top/crop_bottom within 0..{h}{hint}")
        img = img[c.crop_top:bottom]
        if img.shape[:2] != self.shape[:2]:
            img = cv2.resize(img, (c.width, c.height), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def __call__(self, k: int) -> np.ndarray:
        return np.stack([self.image(k, cam) for cam in CAMERAS])


def _remove_partial(out: Path, created: bool) -> None:
    """Remove what a failed import wrote, so no half dataset is left looking complete."""
    if not out.is_dir():
        return
    for p in out.glob("shard-*"):
        p.unlink()
    (out / "manifest.json").unlink(missing_ok=True)
    if created and not any(out.iterdir()):
        out.rmdir()


def import_folder(config: ImportConfig) -> dict:
    t0 = time.perf_counter()
    given = Path(config.folder)
    if given.is_file():
        folder, log_path = given.parent, given
    else:
        folder, log_path = given, given / LOG_NAME
    if not folder.is_dir():
        raise UdacityError(f"{folder}: no such folder; expected a Udacity recording folder with {LOG_NAME} and IMG/")
    if not log_path.is_file():
        raise UdacityError(f"{log_path}: missing; a Udacity recording folder holds {LOG_NAME} (columns "
                           f"{','.join(SIM_COLUMNS)}) and its images, usually under IMG/")
    sidecar = read_sidecar(folder / SIDECAR_NAME) if (folder / SIDECAR_NAME).is_file() else None

    log = read_driving_log(log_path)
    log_rows = len(log.rows)
    if config.max_rows:
        log.rows = log.rows[:config.max_rows]
    n = len(log.rows)

    if config.steering_scale is not None:
        scale, scale_from = float(config.steering_scale), "argument"
    elif sidecar and "steering_scale" in sidecar:
        scale, scale_from = float(sidecar["steering_scale"]), SIDECAR_NAME
    else:
        scale, scale_from = MAX_CURVATURE, "default (envs.MAX_CURVATURE)"
    speed_unit = config.speed_unit
    if speed_unit == "auto":
        speed_unit = (sidecar or {}).get("speed_unit", "mph")
    speed_factor = MPH_TO_MPS if speed_unit == "mph" else 1.0

    # Every image is located before anything is written: a missing one fails fast, naming its line.
    paths = [{cam: resolve_image(r.paths[cam], folder, f"{log_path} line {r.line} ({cam})") for cam in CAMERAS}
             for r in log.rows]
    starts, episode_rule = episode_starts(log, config, sidecar if (sidecar or {}).get("rows") == log_rows else None)
    episode_of = np.searchsorted(starts, np.arange(n), side="right") - 1
    step_of = np.arange(n) - starts[episode_of]

    loader = _FrameLoader(config, log, paths, exported=sidecar is not None)
    first = loader(0)  # checks the crop on the first row before creating the dataset
    h0, w0 = cv2.imdecode(np.fromfile(paths[0]["center"], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    crop = {"top": config.crop_top, "bottom": config.crop_bottom or h0}
    resized = (crop["bottom"] - crop["top"], w0) != (config.height, config.width)
    rig = None
    if sidecar and not resized and crop["top"] == 0 and crop["bottom"] == h0 and sidecar.get("rig"):
        rig = sidecar["rig"]  # the export's frames, untouched: the source rig still describes them
    labels = np.array([r.steering for r in log.rows], np.float64) * scale
    track = f"udacity:{folder.resolve().name}"
    meta: dict[str, Any] = {
        "kind": "udacity-import",
        "label_rule": "recorded steering * steering_scale (centre camera only)",
        "source_folder": str(folder.resolve()),
        "driving_log": str(log_path.resolve()),
        "header": log.header,
        "steering_scale": scale,
        "steering_scale_from": scale_from,
        "speed_unit": speed_unit,
        "crop": crop,
        "source_image_size": [h0, w0],
        "resize": "cv2.INTER_AREA" if resized else None,
        "rig": rig,
        "rig_note": ("the exported SteerBench rig (frames unchanged)" if rig else
                     "unknown: the recording's cameras are not described; side labels are NaN"),
        "episode_rule": episode_rule,
        "episodes": int(len(starts)),
        "tracks": [track],
        "steerbench_export": {k: sidecar.get(k) for k in ("source", "steering_from", "created")} if sidecar else None,
        "command": command_line(),
        "git_sha": git_sha(),
    }
    out = Path(config.out)
    created = not out.exists()
    writer = DatasetWriter(out, (config.height, config.width, 3), meta, config.shard_size, overwrite=config.overwrite)
    bar = tqdm(total=n, desc="import", unit="row", disable=not config.progress, leave=False, dynamic_ncols=True)
    nan = math.nan
    try:
        threads = config.threads or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=threads) as pool:
            block = 64 * threads
            for a in range(0, n, block):
                rows = range(a, min(n, a + block))
                frames = pool.map(lambda k: first if k == 0 else loader(k), rows)
                for k, fr in zip(rows, frames):
                    r = log.rows[k]
                    writer.add(fr, {
                        "episode": int(episode_of[k]), "step": int(step_of[k]), "track": track, "track_seed": -1,
                        "lane": 0, "source": "udacity", "round": 0,
                        "x": nan, "y": nan, "heading": nan, "speed": r.speed * speed_factor,
                        "s_m": nan, "progress_m": nan, "lateral_offset": nan, "heading_error": nan,
                        "road_curvature": nan, "action": labels[k],
                        "label_left": nan, "label_center": labels[k], "label_right": nan,
                    })
                bar.update(len(rows))
        writer.close()
    except BaseException:
        bar.close()
        _remove_partial(out, created)
        raise
    bar.close()
    beyond = int(np.sum(np.abs(labels) > MAX_CURVATURE + 1e-12))
    writer.update_metadata(labels=n, beyond_max_curvature=beyond)
    seconds = time.perf_counter() - t0
    return {"out": str(out), "steps": n, "episodes": int(len(starts)), "steering_scale": scale,
            "steering_scale_from": scale_from, "beyond_max_curvature": beyond,
            "frames_per_s": round(3 * n / seconds, 1), "seconds": round(seconds, 1)}


def run(config: ExportConfig | ImportConfig) -> dict:
    """Entry point of both commands: export-udacity (ExportConfig) and import-udacity (ImportConfig)."""
    if isinstance(config, ExportConfig):
        return export(config)
    if isinstance(config, ImportConfig):
        return import_folder(config)
    raise TypeError(f"expected ExportConfig or ImportConfig, got {type(config).__name__}")
