"""Minari datasets: export a SteerBench dataset in the Minari format, and import one back.

`python -m benchmark export-minari --data DIR --out ROOT` and
`python -m benchmark import-minari --dataset PATH_OR_ID --out DIR`.

Export writes `ROOT/<dataset_id>/` (ROOT is what Minari calls MINARI_DATASETS_PATH; nothing is written
under ~/.minari), in Minari's `arrow` data format with `jpeg_encoding=False`, so frames are stored
as raw uint8 arrays, losslessly. What a Minari episode holds:

- episodes: one per run of consecutive steps of one SteerBench (round, episode), in driving order
  (by round, episode, step). A recording's episodes are whole runs; HG-DAgger keeps only the
  teacher's segments of an episode, and each segment becomes a Minari episode of its own.
- observations: the centre camera's frames, (N + 1, H, W, 3) uint8 for N steps, as the env
  observes them. SteerBench stores the state each action was taken in, not the state after the
  last action, so observation N repeats the last recorded frame (`infos["recorded"]` is False there).
- actions: the executed curvature [1/m], (N, 1) float64 (SteerBench's own precision; the env's
  action space is float32 and clips to the car's range).
- rewards: NaN. SteerBench datasets do not record rewards.
- terminations / truncations: a SteerBench dataset stores where each episode ends, not why (a
  failure, the step limit, or a label budget), so every episode ends with truncated = True and no
  step is marked terminated.
- infos (N + 1 entries, entry t for observation t, the last repeating entry N - 1): the columns of
  the SteerBench index except `action` (the teacher's labels `label_left`, `label_center`,
  `label_right`; the state `x`, `y`, `heading`, `speed`, `s_m`, `progress_m`, `lateral_offset`,
  `heading_error`, `road_curvature`, `lane`; and `episode`, `step`, `round`, `track`,
  `track_seed`, `source`), `frame_left` and `frame_right` (the side cameras' frames) and `recorded`.
- env spec: for a simulator dataset on one track, the SteerBench gymnasium id of that track and the
  kwargs the recording used (`camera` = the manifest's rig, `config` = its env settings, `traffic`
  when the manifest names it), so `dataset.recover_environment()` rebuilds it. A dataset on several
  tracks has one env per track: no dataset-wide env spec, and the id and kwargs of every track
  under `metadata["steerbench"]["envs"]`. Datasets imported from a Udacity recording were not made
  in the simulator and are exported without an env spec.
- metadata: `metadata.json` gets a `steerbench` entry: the format and version, the source
  manifest's fields and sha256, the cameras and the rules above. It holds no time stamp or path, so
  the same dataset exported by the same code gives byte-identical files.

The dataset is written in a hidden temporary folder inside ROOT and renamed into place when complete:
a failed export leaves no dataset under the id.

Import reads an export back (a directory, or an id under `--datasets-path`) into a SteerBench dataset
through DatasetWriter: the same frames, actions, labels, state and episode numbers; steps in driving
order, each shard in step order. The manifest keeps the source's fields (rig, label rule, tracks, ...)
with `kind = "minari-import"`. Only datasets written by export-minari can be imported: SteerBench needs
the side cameras' frames and the teacher's labels, which other Minari datasets do not have. A
malformed dataset gets a DatasetError that names the problem and the episode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from benchmark.common.config import ConfigError
from benchmark.common.files import sha256_file
from benchmark.common.provenance import command_line, git_sha
from envs.vehicle import MAX_CURVATURE

from .dataset import INDEX_COLUMNS, Dataset, DatasetError, DatasetWriter
from .udacity import export_order

EXPORT_FORMAT = "steerbench-minari-export"
EXPORT_VERSION = 1
DATA_FORMAT = "arrow"
CENTER = "center"
INFO_COLUMNS = tuple(c for c in INDEX_COLUMNS if c != "action")
"""The SteerBench index columns stored in infos (the executed action is Minari's `actions`)."""
_STRING_COLUMNS = tuple(c for c, t in INDEX_COLUMNS.items() if t == "string")
_ID_PART = re.compile(r"[^-_\w]+")
FINAL_OBSERVATION = ("Observation N of an N-step episode repeats the last recorded frame (infos.recorded is "
                     "False there): SteerBench stores the state each action was taken in, not the state after "
                     "the last action")
EPISODE_ENDS = ("SteerBench datasets record where an episode ends, not why: every episode ends truncated, none "
                "terminated; a run of consecutive steps of one SteerBench (round, episode) is one Minari episode")


# --- export --------------------------------------------------------------------------------------


@dataclass
class ExportConfig:
    """Export a SteerBench dataset as a Minari dataset (arrow format, frames stored losslessly)."""

    data: Path
    """SteerBench dataset directory to export (recorded, aggregated by DAgger, or imported from Udacity)."""
    out: Path
    """Minari datasets root to write into (what Minari calls MINARI_DATASETS_PATH); the dataset goes to
    OUT/<dataset_id>/."""
    dataset_id: str | None = None
    """Minari dataset id, (namespace/)name-vN; None: steerbench/<name of DATA>-v0."""
    author: str | None = None
    """Author recorded in the Minari metadata."""
    code_permalink: str | None = None
    """Link to the code that made the data, recorded in the Minari metadata."""
    overwrite: bool = False
    """Replace an existing dataset with the same id under OUT."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.dataset_id is not None:
            check_dataset_id(self.dataset_id)


def check_dataset_id(dataset_id: str) -> str:
    """`dataset_id` if Minari accepts it (with a version, no '..' or leading '/'); else ConfigError."""
    from minari.dataset.minari_dataset import parse_dataset_id

    try:
        parse_dataset_id(dataset_id)
    except (ValueError, TypeError):
        raise ConfigError(f"dataset_id {dataset_id!r}: expected (namespace/)name-vN, e.g. steerbench/teacher-v0 "
                          "(letters, digits, '-' and '_'; a version is required)") from None
    if any(part in ("", ".", "..") for part in dataset_id.split("/")):
        raise ConfigError(f"dataset_id {dataset_id!r}: empty or relative path parts are not allowed")
    return dataset_id


def default_dataset_id(data: Path) -> str:
    name = _ID_PART.sub("-", Path(data).resolve().name).strip("-_") or "dataset"
    return f"steerbench/{name}-v0"


def episode_runs(index) -> list[np.ndarray]:
    """Global step numbers of each Minari episode: runs of consecutive steps of one (round,
    episode), in driving order."""
    order = export_order(index)
    rnd, ep, step = (index[c].to_numpy()[order] for c in ("round", "episode", "step"))
    new = np.ones(len(order), bool)
    new[1:] = (rnd[1:] != rnd[:-1]) | (ep[1:] != ep[:-1]) | (step[1:] != step[:-1] + 1)
    return np.split(order, np.flatnonzero(new)[1:])


def track_envs(ds: Dataset) -> dict[str, dict[str, Any] | None]:
    """The gymnasium id and kwargs of the env each track of a simulator dataset was recorded in
    (None for a track no SteerBench id describes); empty for data not made in the simulator."""
    from envs import BUILTIN_TRACKS, ENV_IDS

    m = ds.manifest
    if not isinstance(m.get("env"), dict) or not isinstance(m.get("rig"), dict):
        return {}
    by_track = {kw["track"]: env_id for env_id, kw in ENV_IDS.items() if kw["track"] in BUILTIN_TRACKS}
    common: dict[str, Any] = {"camera": m["rig"], "config": m["env"]}
    if m.get("traffic") is not None:
        common["traffic"] = m["traffic"]
    envs: dict[str, dict[str, Any] | None] = {}
    pairs = ds.index[["track", "track_seed"]].drop_duplicates().itertuples(index=False)
    for track, seed in sorted((str(t), int(s)) for t, s in pairs):
        if m.get("track_file") and track in (m.get("tracks") or []):
            envs[track] = {"id": "SteerBench/CustomTrack-v0", "kwargs": {"track_file": m["track_file"], **common}}
        elif track in by_track:
            envs[track] = {"id": by_track[track], "kwargs": dict(common)}
        elif seed >= 0 and track == f"procedural-{seed}":
            envs[track] = {"id": "SteerBench/Procedural-v0", "kwargs": {"track_seed": seed, **common}}
        else:
            envs[track] = None
    return envs


def _env_spec(env: dict[str, Any]):
    """The gymnasium EnvSpec of a registered SteerBench id with the recording's kwargs."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the SteerBench ids)

    spec = gym.spec(env["id"])
    return dataclasses.replace(spec, kwargs={**spec.kwargs, **env["kwargs"]})


def _episode_buffer(ds: Dataset, steps: np.ndarray, cameras: list[str]):
    """One Minari EpisodeBuffer for the global step numbers `steps` (consecutive, one episode)."""
    from minari.data_collector.episode_buffer import EpisodeBuffer

    n = len(steps)
    rows = ds.index.iloc[steps]
    last = np.append(np.arange(n), n - 1)  # entry N repeats step N - 1 (see FINAL_OBSERVATION)
    frames = {c: ds.frames(steps, ds.camera_index(c))[last] for c in cameras}
    # 1-D infos go in as Python lists: Minari's arrow storage cannot read back 1-D numpy infos.
    infos: dict[str, Any] = {c: rows[c].to_numpy(object if c in _STRING_COLUMNS else INDEX_COLUMNS[c])[last].tolist()
                             for c in INFO_COLUMNS}
    infos["recorded"] = [True] * n + [False]
    for c in cameras:
        if c != CENTER:
            infos[f"frame_{c}"] = frames[c]
    truncations = np.zeros(n, bool)
    truncations[-1] = True
    return EpisodeBuffer(observations=frames[CENTER], actions=rows["action"].to_numpy(np.float64).reshape(n, 1),
                         rewards=np.full(n, math.nan), terminations=np.zeros(n, bool), truncations=truncations,
                         infos=infos)


@contextlib.contextmanager
def _datasets_root(root: Path) -> Iterator[None]:
    """Minari finds its datasets root in MINARI_DATASETS_PATH: point it at `root` for the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _env_note(envs: dict, env: dict | None) -> str:
    """Where the env of the data is described: the dataset's env spec, per track, or nowhere."""
    if env is not None:
        return f"recorded in {env['id']}; recover_environment() rebuilds it"
    if not envs:
        return "not recorded in the SteerBench simulator: exported without an env spec"
    if len(envs) == 1:
        return f"no SteerBench env id describes track {next(iter(envs))!r}: exported without an env spec"
    return ("several tracks: no dataset-wide env spec; each track's env id and kwargs are in "
            "metadata['steerbench']['envs']")


def _describe(m, tracks: list[str], note: str) -> str:
    what = f"SteerBench {m.get('kind', 'dataset')} ({m['steps']} steps; tracks: {', '.join(tracks)}); {note}."
    return (what + " Observations: the centre camera's uint8 frames; actions: the executed curvature [1/m], "
            "positive right; infos: the teacher's labels (label_left, label_center, label_right), the vehicle state, "
            "the side cameras' frames. Rewards are NaN (not recorded). " + EPISODE_ENDS + ". " + FINAL_OBSERVATION + ".")


def _place(staging: Path, out: Path, dataset_id: str, overwrite: bool) -> Path:
    """Move the finished dataset from `staging` to OUT/<id>, and the namespace files Minari wrote for
    its namespaces where OUT has none yet."""
    from minari.namespace import NAMESPACE_METADATA_FILENAME

    target = out / dataset_id
    for f in sorted(staging.rglob(NAMESPACE_METADATA_FILENAME)):
        dest = out / f.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            os.replace(f, dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists; choose another dataset_id or pass overwrite")
        old = staging / ".replaced"
        os.rename(target, old)
    try:
        os.rename(staging / dataset_id, target)
    except OSError:
        if old is not None:
            os.rename(old, target)  # put the earlier export back
        raise
    return target


def export(config: ExportConfig) -> dict:
    import gymnasium as gym
    import minari

    t0 = time.perf_counter()
    ds = Dataset.open(config.data)
    m = ds.manifest
    if CENTER not in ds.cameras:
        raise DatasetError(f"{config.data}: no {CENTER!r} camera (cameras: {', '.join(ds.cameras)})")
    dataset_id = check_dataset_id(config.dataset_id or default_dataset_id(config.data))
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder")
    target = out / dataset_id
    if target.exists() and not config.overwrite:
        raise FileExistsError(f"{target} exists; choose another dataset_id or pass overwrite")

    envs = track_envs(ds)
    env = next(iter(envs.values())) if len(envs) == 1 else None
    note = _env_note(envs, env)
    tracks = sorted(str(t) for t in ds.index["track"].unique())
    spec = _env_spec(env) if env is not None else None
    cameras = list(ds.cameras)
    actions = ds.index["action"].to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(actions))
    if len(bad):
        raise DatasetError(f"{config.data}: step {int(bad[0])} has no executed action ({actions[bad[0]]}); "
                           f"{len(bad)} steps in all")
    # The env's bounds when every action is within them (simulator data is clipped to the car's range).
    bound = MAX_CURVATURE if np.abs(actions).max() <= MAX_CURVATURE else np.inf
    action_space = gym.spaces.Box(-bound, bound, (1,), np.float64)
    observation_space = gym.spaces.Box(0, 255, tuple(ds.frame_shape), np.uint8)
    runs = episode_runs(ds.index)
    source = {k: v for k, v in m.to_json().items() if k not in ("format_version", "shards")}
    steerbench = {
        "format": EXPORT_FORMAT, "version": EXPORT_VERSION, "cameras": cameras, "frame_shape": list(ds.frame_shape),
        "observation": f"the {CENTER} camera's frame", "infos": [*INFO_COLUMNS, "recorded"] + [
            f"frame_{c}" for c in cameras if c != CENTER],
        "actions": "executed curvature [1/m], float64; positive turns right", "rewards": "NaN (not recorded)",
        "episode_ends": EPISODE_ENDS, "final_observation": FINAL_OBSERVATION,
        "envs": envs, "env_spec": None if env is None else env["id"], "env_note": note,
        "source": source, "source_manifest_sha256": sha256_file(Path(config.data) / "manifest.json"),
        "exported_by": {"git_sha": git_sha()},
    }
    requirements = [f"{p}=={_metadata.version(p)}" for p in ("highway-env", "gymnasium")] if envs else None

    out.mkdir(parents=True, exist_ok=True)
    # Hidden from Minari's listing; absolute, as Minari's size count breaks on a relative datasets root.
    staging = Path(tempfile.mkdtemp(prefix=".export-minari-", dir=out)).resolve()
    bar = tqdm(total=len(ds), desc="export-minari", unit="step", disable=not config.progress, leave=False,
               dynamic_ncols=True)
    try:
        with _datasets_root(staging), warnings.catch_warnings():
            # Minari warns about every optional field left unset (eval env, email, ...); not actionable here.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"minari(\.|$)")
            dataset = minari.create_dataset_from_buffers(
                dataset_id, [], env=spec, action_space=action_space, observation_space=observation_space,
                algorithm_name=str(m.get("kind", "unknown")), author=config.author,
                code_permalink=config.code_permalink, description=_describe(m, tracks, note),
                data_format=DATA_FORMAT, requirements=requirements, jpeg_encoding=False)
            dataset.storage.update_metadata({"steerbench": steerbench})
            for steps in runs:  # one episode in memory at a time
                dataset.update_dataset_from_buffer([_episode_buffer(ds, steps, cameras)])
                bar.update(len(steps))
        path = _place(staging, out, dataset_id, config.overwrite)
    finally:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    seconds = time.perf_counter() - t0
    return {"out": str(out), "dataset_id": dataset_id, "path": str(path), "episodes": len(runs), "steps": len(ds),
            "env_spec": steerbench["env_spec"], "note": note,
            "megabytes": round(size / 1e6, 1), "seconds": round(seconds, 1)}


# --- import --------------------------------------------------------------------------------------


@dataclass
class ImportConfig:
    """Import a Minari dataset written by export-minari as a SteerBench dataset."""

    dataset: str
    """The Minari dataset: its directory (ROOT/<dataset_id>, or the data/ folder inside it), or a dataset id
    looked up under datasets_path."""
    out: Path
    """SteerBench dataset directory to create."""
    datasets_path: Path | None = None
    """Minari datasets root for a dataset id; None: MINARI_DATASETS_PATH, else ~/.minari/datasets (as Minari)."""
    shard_size: int = 2000
    """Steps per frame shard."""
    overwrite: bool = False
    """Replace an existing dataset in `out`."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ConfigError(f"shard_size must be positive, got {self.shard_size}")


def resolve_dataset(dataset: str, datasets_path: Path | None = None) -> Path:
    """The data/ folder (holding metadata.json) of a Minari dataset given as a path or an id. Nothing is
    created on the way (Minari's own lookup creates its datasets root)."""
    given = Path(dataset).expanduser()
    tried = []
    if given.exists():
        candidates = [given / "data", given]
    else:
        root = datasets_path or Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets")
        candidates = [Path(root) / dataset / "data"]
    for c in candidates:
        tried.append(str(c))
        if (c / "metadata.json").is_file():
            return c
    raise DatasetError(f"{dataset}: no Minari dataset there (looked for metadata.json in {' and '.join(tried)})")


def _open_minari(path: Path):
    from minari import MinariDataset

    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path / 'metadata.json'}: not readable JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f"{path / 'metadata.json'}: not a Minari metadata object")
    sb = meta.get("steerbench")
    if not isinstance(sb, dict) or sb.get("format") != EXPORT_FORMAT:
        raise DatasetError(f"{path}: not a SteerBench export (metadata.json has no 'steerbench' entry of format "
                           f"{EXPORT_FORMAT!r}); import-minari reads datasets written by export-minari, which carry "
                           "the side cameras' frames and the teacher's labels a SteerBench dataset needs")
    if sb.get("version") != EXPORT_VERSION:
        raise DatasetError(f"{path}: SteerBench export version {sb.get('version')!r}, this code reads {EXPORT_VERSION}")
    if meta.get("data_format") != DATA_FORMAT or meta.get("jpeg_encoding") is not False:
        raise DatasetError(f"{path}: data format {meta.get('data_format')!r} with jpeg_encoding="
                           f"{meta.get('jpeg_encoding')!r}; an export is {DATA_FORMAT!r} without JPEG (lossless)")
    try:
        return MinariDataset(path), sb
    except Exception as exc:  # noqa: BLE001  (Minari raises ValueError, KeyError, AssertionError, pyarrow ...)
        raise DatasetError(f"{path}: Minari cannot open it ({type(exc).__name__}: {exc})") from None


def _check_spaces(path: Path, dataset, sb: dict) -> tuple[tuple[int, int, int], list[str]]:
    import gymnasium as gym

    try:
        shape = tuple(int(v) for v in sb["frame_shape"])
        cameras = [str(c) for c in sb["cameras"]]
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{path}: the 'steerbench' entry lacks a valid frame_shape or cameras") from None
    if len(shape) != 3 or shape[2] != 3 or CENTER not in cameras:
        raise DatasetError(f"{path}: frame_shape {list(shape)} / cameras {cameras}: expected (H, W, 3) and a "
                           f"{CENTER!r} camera")
    obs, act = dataset.observation_space, dataset.action_space
    if not (isinstance(obs, gym.spaces.Box) and obs.dtype == np.uint8 and obs.shape == shape):
        raise DatasetError(f"{path}: observation space {obs}; expected uint8 frames of shape {shape}")
    if not (isinstance(act, gym.spaces.Box) and act.shape == (1,) and np.issubdtype(act.dtype, np.floating)):
        raise DatasetError(f"{path}: action space {act}; expected a Box of shape (1,) (the curvature)")
    return shape, cameras


def _episode_rows(where: str, ep, shape: tuple[int, int, int], cameras: list[str]):
    """Check one Minari episode of an export; yields (frames (cameras, H, W, 3), index row) per step."""
    n = len(ep.rewards)
    if n < 1:
        raise DatasetError(f"{where}: no steps")
    obs = np.asarray(ep.observations)
    if obs.dtype != np.uint8 or obs.shape != (n + 1, *shape):
        raise DatasetError(f"{where}: observations are {obs.dtype} {obs.shape}, expected uint8 {(n + 1, *shape)}")
    actions = np.asarray(ep.actions)
    if actions.shape != (n, 1) or not np.issubdtype(actions.dtype, np.floating) or not np.isfinite(actions).all():
        raise DatasetError(f"{where}: actions are {actions.dtype} {actions.shape}, expected {n} finite curvatures (n, 1)")
    need = [*INFO_COLUMNS, "recorded", *(f"frame_{c}" for c in cameras if c != CENTER)]
    missing = [k for k in need if k not in ep.infos]
    if missing:
        raise DatasetError(f"{where}: infos lack {', '.join(missing)}")
    info = {k: np.asarray(ep.infos[k]) for k in need}
    for k, v in info.items():
        if len(v) != n + 1:
            raise DatasetError(f"{where}: infos[{k!r}] has {len(v)} entries, expected {n + 1} (one per observation)")
    if info["recorded"].dtype != bool or not (info["recorded"][:n].all() and not info["recorded"][n]):
        raise DatasetError(f"{where}: infos['recorded'] must be True for the {n} steps and False for the final "
                           "observation")
    side = {c: info[f"frame_{c}"] for c in cameras if c != CENTER}
    for c, v in side.items():
        if v.dtype != np.uint8 or v.shape != (n + 1, *shape):
            raise DatasetError(f"{where}: infos['frame_{c}'] is {v.dtype} {v.shape}, expected uint8 {(n + 1, *shape)}")
    columns = {}
    for c in INFO_COLUMNS:
        v = info[c][:n]
        if c in _STRING_COLUMNS:
            if v.dtype.kind not in "UO":
                raise DatasetError(f"{where}: infos[{c!r}] is {v.dtype}, expected strings")
            columns[c] = [str(s) for s in v]
        else:
            want = np.dtype(INDEX_COLUMNS[c])
            if want.kind == "i" and v.dtype.kind not in "iu":
                raise DatasetError(f"{where}: infos[{c!r}] is {v.dtype}, expected integers")
            if want.kind == "f" and v.dtype.kind not in "fiu":
                raise DatasetError(f"{where}: infos[{c!r}] is {v.dtype}, expected numbers")
            columns[c] = v.astype(want).tolist()
    columns["action"] = actions[:, 0].astype(np.float64).tolist()
    for t in range(n):
        frames = np.stack([obs[t] if c == CENTER else side[c][t] for c in cameras])
        yield frames, {c: columns[c][t] for c in INDEX_COLUMNS}


def _replace_dir(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished dataset `tmp` to `out` (replacing `out` when overwrite allows it)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty; choose a new directory or pass overwrite")
        old = tmp.with_name(tmp.name + ".old")
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)


def import_dataset(config: ImportConfig) -> dict:
    t0 = time.perf_counter()
    out = Path(config.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not config.overwrite:
        raise FileExistsError(f"{out} is not empty; choose a new directory or pass overwrite")
    path = resolve_dataset(config.dataset, config.datasets_path)
    dataset, sb = _open_minari(path)
    shape, cameras = _check_spaces(path, dataset, sb)
    source = dict(sb.get("source") or {})
    dropped = {k: source.pop(k, None) for k in ("kind", "command", "git_sha", "created", "steps", "cameras",
                                                 "frame_shape")}
    meta = {**source, "kind": "minari-import",
            "minari": {"dataset_id": dataset.id, "path": str(path.resolve()), "episodes": dataset.total_episodes,
                       "source_kind": dropped["kind"], "source_created": dropped["created"],
                       "source_command": dropped["command"], "source_git_sha": dropped["git_sha"],
                       "source_manifest_sha256": sb.get("source_manifest_sha256")},
            "command": command_line(), "git_sha": git_sha()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    bar = tqdm(total=dataset.total_steps, desc="import-minari", unit="step", disable=not config.progress,
               leave=False, dynamic_ncols=True)
    steps = 0
    try:
        with DatasetWriter(tmp, shape, meta, config.shard_size, cameras=cameras, overwrite=True) as writer:
            for k, ep in _episodes(path, dataset):
                for frames, row in _episode_rows(f"{path}: episode {k}", ep, shape, cameras):
                    writer.add(frames, row)
                    steps += 1
                bar.update(len(ep.rewards))
        _replace_dir(tmp, out, config.overwrite)
    finally:
        bar.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "dataset_id": dataset.id, "episodes": dataset.total_episodes, "steps": steps,
            "seconds": round(time.perf_counter() - t0, 1)}


def _episodes(path: Path, dataset):
    """The dataset's episodes, one read at a time (an unreadable one gets a DatasetError naming it)."""
    for k in dataset.episode_indices:
        try:
            ep = next(iter(dataset.iterate_episodes([k])))
        except Exception as exc:  # noqa: BLE001  (pyarrow and decoding errors of a damaged episode)
            raise DatasetError(f"{path}: episode {k} is not readable ({type(exc).__name__}: {exc})") from None
        yield int(k), ep


def run(config: ExportConfig | ImportConfig) -> dict:
    """Entry point of both commands: export-minari (ExportConfig) and import-minari (ImportConfig)."""
    if isinstance(config, ExportConfig):
        return export(config)
    if isinstance(config, ImportConfig):
        return import_dataset(config)
    raise TypeError(f"expected ExportConfig or ImportConfig, got {type(config).__name__}")
