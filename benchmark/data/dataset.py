"""Recorded driving on disk: uint8 frame shards, a Parquet index, and a checksummed manifest.

Layout of a dataset directory:

    manifest.json          format version, rig, label rule, tracks, seeds, counts, and the sha256
                           of every shard file; rewritten atomically after each finished shard
    shard-00000.npy        uint8 frames (n, cameras, H, W, 3), cameras = left, center, right;
                           plain .npy, memory-mapped on load (never pickled)
    shard-00000.parquet    one row per step: state, teacher labels per camera, executed action

A shard's files are written under temporary names and renamed when complete, so a killed recording
keeps every finished shard and a manifest that lists exactly those. Loading checks the format
version and every checksum; a missing or corrupt file gets an error that names it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.common.files import sha256_file, write_json_atomic
from benchmark.common.provenance import command_line, git_sha

FORMAT_VERSION = 1
CAMERAS = ("left", "center", "right")
LABEL_COLUMNS = tuple(f"label_{c}" for c in CAMERAS)

# Columns of the index, in order, with their dtypes. `label_<camera>` is the teacher's curvature
# for the car at that camera's pose (the centre label is the teacher's action at the state).
INDEX_COLUMNS: dict[str, str] = {
    "episode": "int64",          # episode number within the dataset
    "step": "int64",             # policy step within the episode
    "track": "string",           # track name (e.g. racetrack, procedural-12)
    "track_seed": "int64",       # procedural seed, -1 for other tracks
    "lane": "int64",
    "source": "string",          # teacher, dart, dagger, hg-dagger, human, udacity ...
    "round": "int64",            # collection round (DAgger / DART iterations), 0 for plain recording
    "x": "float64", "y": "float64", "heading": "float64",  # world pose of the car [m, rad]
    "speed": "float64",
    "s_m": "float64", "progress_m": "float64",
    "lateral_offset": "float64", "heading_error": "float64",
    "road_curvature": "float64",  # curvature of the lane centre at the car [1/m]
    "action": "float64",          # the executed curvature
    "label_left": "float64", "label_center": "float64", "label_right": "float64",
}
OPTIONAL_COLUMNS: dict[str, tuple[str, int]] = {
    "command": ("int64", 0),      # on a road network with forks: the route's command (envs.forks.COMMANDS)
    "intent": ("int64", -1),      # with intents: the teacher's hidden intent (envs.intents.INTENTS), -1 without
}
"""Columns only some recordings have: (dtype, the value of a row without one). A shard has the column when
any of its rows does; a step on a track without forks has the command 0, follow."""


class DatasetError(ValueError):
    """A dataset that cannot be read as it is: the message names the file and the problem."""


@dataclass
class ShardInfo:
    frames: str
    index: str
    rows: int
    frames_sha256: str
    index_sha256: str


@dataclass(frozen=True)
class DatasetManifest:
    """manifest.json: the format, the frames' layout, the finished shards, and where the data came
    from (`source`: kind, label rule, rig, tracks, seeds, counts, command, ...; flat on disk)."""

    format_version: int
    created: str
    cameras: list[str]
    frame_shape: list[int]
    steps: int
    shards: list[ShardInfo]
    source: dict[str, Any]

    CORE = ("format_version", "created", "cameras", "frame_shape", "steps", "shards")

    def to_json(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "created": self.created, "cameras": list(self.cameras),
                "frame_shape": list(self.frame_shape), "steps": self.steps,
                "shards": [asdict(s) for s in self.shards], **self.source}

    # Read access by key, as the manifest reads on disk (core fields and source fields alike).
    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.CORE or key in self.source

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_json().get(key, default)

    @classmethod
    def from_json(cls, data: Any, where: Path) -> DatasetManifest:
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: not a manifest (expected a JSON object)")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(f"{where}: format version {version!r}, this code reads {FORMAT_VERSION}")
        missing = [k for k in cls.CORE if k not in data]
        if missing:
            raise DatasetError(f"{where}: missing {', '.join(missing)}")
        try:
            shards = [ShardInfo(**s) for s in data["shards"]]
            for s in shards:
                for name in (s.frames, s.index):
                    if not isinstance(name, str) or Path(name).name != name or not name.startswith("shard-"):
                        raise DatasetError(f"{where}: shard file {name!r} is not a file of this directory")
                if isinstance(s.rows, bool) or not isinstance(s.rows, int) or s.rows < 0:
                    raise DatasetError(f"{where}: shard {s.frames!r} has {s.rows!r} rows")
            return cls(int(version), str(data["created"]), [str(c) for c in data["cameras"]],
                       [int(v) for v in data["frame_shape"]], int(data["steps"]), shards,
                       {k: v for k, v in data.items() if k not in cls.CORE})
        except (TypeError, ValueError) as exc:  # wrong types in a hand-edited or corrupt manifest
            if isinstance(exc, DatasetError):
                raise
            raise DatasetError(f"{where}: malformed ({exc})") from None


@dataclass(frozen=True)
class Source:
    """What a writer records: the frame shape of its rig and the manifest's source fields."""

    frame_shape: tuple[int, int, int]
    metadata: dict[str, Any]


def simulator_source(kind: str, label_rule: str, *, rig=None, env=None, **fields: Any) -> Source:
    """The source of a recording in the simulator (teacher, imitation round, person): its rig and
    env configs, the caller's fields, and the command and commit that made it."""
    from envs import CameraConfig, EnvConfig

    rig = rig or CameraConfig()
    return Source((rig.height, rig.width, 3), {
        "kind": kind, "label_rule": label_rule, "rig": asdict(rig), "env": asdict(env or EnvConfig()), **fields,
        "command": command_line(), "git_sha": git_sha()})


class DatasetWriter:
    """Append steps (rig frames + an index row) and finish shards as they fill up.

    Use as a context manager; `close()` finishes the last, partial shard.
    """

    def __init__(self, directory: str | os.PathLike, frame_shape: tuple[int, int, int],
                 metadata: dict[str, Any], shard_size: int = 2000, cameras: Sequence[str] = CAMERAS,
                 overwrite: bool = False):
        self.directory = Path(directory)
        if self.directory.exists() and any(self.directory.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{self.directory} is not empty; choose a new directory or pass overwrite")
            for p in self.directory.glob("shard-*"):
                p.unlink()
            (self.directory / "manifest.json").unlink(missing_ok=True)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.frame_shape = tuple(int(v) for v in frame_shape)
        self.cameras = tuple(cameras)
        self.metadata = dict(metadata)
        self.shard_size = int(shard_size)
        self.shards: list[ShardInfo] = []
        self._buffer: np.ndarray | None = None
        self._rows: list[dict] = []
        self._tmp_path: Path | None = None
        self.steps = 0
        self.created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._write_manifest()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add(self, frames: np.ndarray, row: dict[str, Any]) -> None:
        """Add one step: frames (cameras, H, W, 3) uint8, and its index row (INDEX_COLUMNS)."""
        if frames.shape != (len(self.cameras), *self.frame_shape) or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames of shape {(len(self.cameras), *self.frame_shape)}, "
                             f"got {frames.dtype} {frames.shape}")
        missing = [c for c in INDEX_COLUMNS if c not in row]
        if missing:
            raise ValueError(f"index row is missing {missing}")
        if self._buffer is None:
            name = f"shard-{len(self.shards):05d}.npy"
            self._tmp_path = self.directory / (name + ".partial")
            # Written straight to disk through a memory map: recording never holds a shard in RAM.
            self._buffer = np.lib.format.open_memmap(
                self._tmp_path, mode="w+", dtype=np.uint8,
                shape=(self.shard_size, len(self.cameras), *self.frame_shape))
        self._buffer[len(self._rows)] = frames
        self._rows.append(row)
        self.steps += 1
        if len(self._rows) == self.shard_size:
            self._finish_shard()

    def _finish_shard(self) -> None:
        n = len(self._rows)
        if self._buffer is None or n == 0:
            return
        k = len(self.shards)
        frames_name, index_name = f"shard-{k:05d}.npy", f"shard-{k:05d}.parquet"
        if n < self.shard_size:  # the last shard: rewrite at its true length
            part = np.array(self._buffer[:n])
            del self._buffer
            self._tmp_path.unlink()
            tmp = self.directory / (frames_name + ".partial")
            with open(tmp, "wb") as f:
                np.save(f, part, allow_pickle=False)
            self._tmp_path = tmp
        else:
            self._buffer.flush()
            del self._buffer
        self._buffer = None
        with open(self._tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp_path, self.directory / frames_name)
        table = rows_to_frame(self._rows)
        tmp_index = self.directory / (index_name + ".partial")
        table.to_parquet(tmp_index, index=False)
        os.replace(tmp_index, self.directory / index_name)
        self.shards.append(ShardInfo(frames_name, index_name, n, sha256_file(self.directory / frames_name),
                                     sha256_file(self.directory / index_name)))
        self._rows = []
        self._write_manifest()

    def _write_manifest(self) -> None:
        manifest = DatasetManifest(FORMAT_VERSION, self.created, list(self.cameras), list(self.frame_shape),
                                   sum(s.rows for s in self.shards), self.shards, self.metadata)
        write_json_atomic(self.directory / "manifest.json", manifest.to_json())

    def flush(self) -> None:
        """Finish the current partial shard now, so that `Dataset.open` sees every step so far."""
        self._finish_shard()

    def update_metadata(self, **fields: Any) -> None:
        self.metadata.update(fields)
        self._write_manifest()

    def close(self) -> None:
        self._finish_shard()
        self._write_manifest()


def rows_to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    rows = list(rows)
    optional = [c for c in OPTIONAL_COLUMNS if any(c in r for r in rows)]
    df = pd.DataFrame(rows, columns=[*INDEX_COLUMNS, *optional])
    for c in optional:
        df[c] = df[c].fillna(OPTIONAL_COLUMNS[c][1])
    return df.astype({**INDEX_COLUMNS, **{c: OPTIONAL_COLUMNS[c][0] for c in optional}})


class Dataset:
    """A recorded dataset: memory-mapped frames and the index as a pandas DataFrame.

    `index` has one row per step with the columns of INDEX_COLUMNS plus `shard` and `row` (the
    frame's location). `frames(i, camera)` returns the frames of global step numbers `i`.
    """

    def __init__(self, directory: Path, manifest: DatasetManifest, shards: list[np.ndarray], index: pd.DataFrame):
        self.directory = directory
        self.manifest = manifest
        self.shards = shards
        self.index = index
        self.cameras = tuple(manifest.cameras)
        self._shard = index["shard"].to_numpy()
        self._row = index["row"].to_numpy()

    @classmethod
    def open(cls, directory: str | os.PathLike, verify: bool = True) -> Dataset:
        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise DatasetError(f"{manifest_path}: missing; not a SteerBench dataset directory")
        try:
            manifest = DatasetManifest.from_json(json.loads(manifest_path.read_text()), manifest_path)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{manifest_path}: not valid JSON ({exc})") from exc
        if not manifest.shards:
            raise DatasetError(f"{manifest_path}: the dataset has no finished shards")
        shards, parts = [], []
        for k, s in enumerate(manifest.shards):
            fpath, ipath = directory / s.frames, directory / s.index
            for path, digest in ((fpath, s.frames_sha256), (ipath, s.index_sha256)):
                if not path.is_file():
                    raise DatasetError(f"{path}: missing (listed in {manifest_path})")
                if verify and sha256_file(path) != digest:
                    raise DatasetError(f"{path}: checksum mismatch, the file is corrupt or was modified")
            try:
                arr = np.load(fpath, mmap_mode="r", allow_pickle=False)
            except ValueError as exc:
                raise DatasetError(f"{fpath}: not a readable .npy frame shard ({exc})") from exc
            if arr.dtype != np.uint8 or arr.shape[0] != s.rows or arr.shape[1:] != (
                    len(manifest.cameras), *manifest.frame_shape):
                raise DatasetError(f"{fpath}: shape {arr.shape} / dtype {arr.dtype} does not match the manifest")
            try:
                part = pd.read_parquet(ipath)
            except Exception as exc:  # pyarrow's ArrowInvalid and friends: a corrupt index file
                raise DatasetError(f"{ipath}: not a readable parquet index ({type(exc).__name__}: {exc})") from None
            if len(part) != s.rows:
                raise DatasetError(f"{ipath}: {len(part)} rows, the manifest says {s.rows}")
            part["shard"] = k
            part["row"] = np.arange(len(part))
            shards.append(arr)
            parts.append(part)
        index = pd.concat(parts, ignore_index=True)
        for c, (dtype, default) in OPTIONAL_COLUMNS.items():  # shards without the column: its default
            if c in index:
                index[c] = index[c].fillna(default).astype(dtype)
        return cls(directory, manifest, shards, index)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(self.manifest.frame_shape)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.shards)

    def camera_index(self, camera: str) -> int:
        try:
            return self.cameras.index(camera)
        except ValueError:
            raise ValueError(f"unknown camera {camera!r}; this dataset has {self.cameras}") from None

    def frames(self, steps: np.ndarray | Sequence[int], cameras: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Frames (len(steps), H, W, 3) of global step numbers `steps`, camera index per step or one."""
        steps = np.asarray(steps)
        cams = np.broadcast_to(np.asarray(cameras), steps.shape)
        out = np.empty((len(steps), *self.frame_shape), np.uint8)
        shard, row = self._shard[steps], self._row[steps]
        for k in np.unique(shard):
            sel = np.flatnonzero(shard == k)
            out[sel] = self.shards[k][row[sel], cams[sel]]
        return out
