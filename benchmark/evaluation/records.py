"""Episode records: what the harness keeps of every evaluation episode, and the one reader of them.

`records.jsonl` (beside each `results.json`) holds a `{"_meta": ...}` line saying which policy,
protocol and conditions the records belong to, then one JSON object per episode, appended as each
group of episodes ends. An `EpisodeRecord` is one such line; `read_records` is the only reader.

Per-step arrays hold the state at t = 0, 1, ...: lateral offset d, heading error psi, the action
taken and the teacher's action there, the car's x, y. When the episode failed, the state at which
the failure was observed is their last entry (`failure_step` is its index; its actions are null).
Non-finite numbers are stored as null. An episode on a road network with forks also has `forks`: the
commands of the fork passages it attempted and their outcomes ("passed" or "failed"; see
envs.forks.Route.outcomes); other records have no such key.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from benchmark.common.files import append_line, write_text_atomic

Status = Literal["finished", "crashed", "invalid"]
STATUSES: tuple[str, ...] = ("finished", "crashed", "invalid")


class RecordsError(ValueError):
    """A records file or record that is not what the harness writes."""


@dataclass(frozen=True, order=True)
class EpisodeKey:
    """The stable id of an evaluation episode: `track|condition|mode|index`."""

    track: str
    condition: str
    mode: str
    index: int

    def __str__(self) -> str:
        return f"{self.track}|{self.condition}|{self.mode}|{self.index}"

    @property
    def group(self) -> str:
        """`track|condition|mode`: the episodes that run in lockstep and resume together."""
        return f"{self.track}|{self.condition}|{self.mode}"

    @classmethod
    def parse(cls, text: str) -> EpisodeKey:
        parts = str(text).split("|")
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise RecordsError(f"bad episode key {text!r}: expected track|condition|mode|index")
        return cls(parts[0], parts[1], parts[2], int(parts[3]))


def _rounded(values: Iterable[float | None], digits: int) -> list[float | None]:
    return [None if (v is None or not math.isfinite(v)) else round(float(v), digits) for v in values]


def as_array(values: Sequence[float | None]) -> np.ndarray:
    """A stored series as a float array, null as NaN."""
    return np.array([np.nan if v is None else v for v in values], float)


@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluation episode as stored in records.jsonl (the fields in their on-disk order)."""

    key: str
    """The episode's EpisodeKey as text."""
    group: str
    track: str
    """The track's name (built-in name or procedural-<seed>)."""
    condition: str
    mode: str
    """crash or intervention."""
    index: int
    seed: int
    """The reset seed."""
    effect: str | None
    """The photometric effect, if any."""
    status: Status
    reason: str | None
    """Why the episode is invalid (the policy's problem), else null."""
    steps: int
    """Policy steps taken."""
    failure_step: int
    """Index of the failure state in the per-step arrays; -1 without a failure."""
    failure_type: str | None
    """off_road or collision."""
    interventions: int
    intervention_steps: list[int]
    elapsed_s: float
    distance_m: float
    start_offset_m: float
    start_heading_rad: float
    d: list[float | None]
    psi: list[float | None]
    action: list[float | None]
    teacher_action: list[float | None]
    x: list[float | None]
    y: list[float | None]
    forks: dict[str, list] | None = None
    """On a road network with forks: {"commands": [...], "outcomes": [...]} of the passages attempted."""

    OPTIONAL: ClassVar[tuple[str, ...]] = ("forks",)
    """Fields stored only when set: the records of every other episode read as before."""

    @property
    def episode_key(self) -> EpisodeKey:
        return EpisodeKey.parse(self.key)

    @property
    def crashed(self) -> bool:
        return self.status == "crashed"

    @property
    def valid(self) -> bool:
        return self.status != "invalid"

    def series(self, name: str) -> np.ndarray:
        """A per-step series (d, psi, action, teacher_action, x, y) as floats, null as NaN."""
        return as_array(getattr(self, name))

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (its lists shared, not copied: dataclasses.asdict's deep copy
        of every per-step series was most of the cost of writing a teacher's records)."""
        out = {f.name: getattr(self, f.name) for f in _FIELDS}
        for name in self.OPTIONAL:
            if out[name] is None:
                del out[name]
        return out

    @classmethod
    def from_json(cls, item: Any, where: str = "record") -> EpisodeRecord:
        """A record from its JSON object; RecordsError naming what is wrong."""
        if not isinstance(item, dict):
            raise RecordsError(f"{where}: not a JSON object")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in item and n not in cls.OPTIONAL]
        unknown = [k for k in item if k not in names]
        if missing or unknown:
            what = f"unknown key {unknown[0]!r}" if unknown else f"missing {', '.join(missing)}"
            raise RecordsError(f"{where}: not an episode record ({what})")
        if item["status"] not in STATUSES:
            raise RecordsError(f"{where}: unknown status {str(item['status'])[:40]!r}")
        for name, ok in _FIELD_TYPES.items():
            if name in item and not ok(item[name]):
                raise RecordsError(f"{where}: {name} has the wrong type ({type(item[name]).__name__})")
        EpisodeKey.parse(item["key"])
        return cls(**item)

    @classmethod
    def build(cls, *, key: EpisodeKey, track: str, seed: int, effect: str | None, status: Status,
              reason: str | None, steps: int, failure_step: int, failure_type: str | None,
              intervention_steps: list[int], policy_hz: float, speed: float, start_offset_m: float,
              start_heading_rad: float, trace: dict[str, list[float]],
              forks: dict[str, list] | None = None) -> EpisodeRecord:
        """A record from a finished episode's trace, rounding the per-step series as stored."""
        return cls(
            key=str(key), group=key.group, track=track, condition=key.condition, mode=key.mode, index=key.index,
            seed=seed, effect=effect, status=status, reason=reason, steps=steps, failure_step=failure_step,
            failure_type=failure_type, interventions=len(intervention_steps), intervention_steps=intervention_steps,
            elapsed_s=steps / policy_hz, distance_m=speed * steps / policy_hz, start_offset_m=start_offset_m,
            start_heading_rad=start_heading_rad, d=_rounded(trace["d"], 4), psi=_rounded(trace["psi"], 4),
            action=_rounded(trace["action"], 5), teacher_action=_rounded(trace["teacher"], 5),
            x=_rounded(trace["x"], 2), y=_rounded(trace["y"], 2), forks=forks)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_SERIES_TYPES = frozenset({float, int, type(None)})


def _is_series(v) -> bool:
    # the exact types JSON gives, checked at C speed (about 8x faster than item by item); a list
    # holding anything else (a bool, a float subclass) gets the item-by-item check
    return isinstance(v, list) and (set(map(type, v)) <= _SERIES_TYPES or all(x is None or _is_number(x) for x in v))


_FIELDS = fields(EpisodeRecord)

_FIELD_TYPES = {
    **{k: lambda v: isinstance(v, str) for k in ("key", "group", "track", "condition", "mode")},
    **{k: lambda v: v is None or isinstance(v, str) for k in ("effect", "reason", "failure_type")},
    **{k: _is_int for k in ("index", "seed", "steps", "failure_step", "interventions")},
    **{k: _is_number for k in ("elapsed_s", "distance_m", "start_offset_m", "start_heading_rad")},
    **{k: _is_series for k in ("d", "psi", "action", "teacher_action", "x", "y")},
    "intervention_steps": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "forks": lambda v: isinstance(v, dict) and set(v) == {"commands", "outcomes"}
    and isinstance(v["commands"], list) and all(_is_int(x) for x in v["commands"])
    and isinstance(v["outcomes"], list) and all(x in ("passed", "failed") for x in v["outcomes"])
    and len(v["commands"]) == len(v["outcomes"]),
}
"""What each field of a stored record must be (the reader refuses anything else)."""


@dataclass(frozen=True)
class RecordsMeta:
    """The first line of records.jsonl: whose records these are."""

    protocol: str
    protocol_sha256: str
    profile: str
    policy: dict[str, Any]
    """kind, name and sha256 of the policy."""
    conditions: list[str]
    tracks_sha256: str | None = None
    """sha256 of the profile's separate track list (a private test list); absent otherwise."""

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.tracks_sha256 is None:  # the header of every profile without a track file is unchanged
            out.pop("tracks_sha256")
        return out


_KEY_RE = re.compile(r'"key":\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class RecordsRead:
    """What `read_records` trusts of a records.jsonl, and what it dropped and why."""

    meta: dict | None
    """The `_meta` object of the first line; None when the file is missing or does not start with one."""
    records: list[EpisodeRecord]
    dropped: list[str]
    """One message per problem: lines ignored, duplicates dropped."""


def read_records(path: Path, keep: Callable[[str], bool] | None = None) -> RecordsRead:
    """The trusted part of a records.jsonl (nothing when the file is missing).

    The first line must be the `{"_meta": {...}}` line, else nothing is trusted. Then every line
    must be one episode record of the schema: the first line that is not (cut off by a killed
    evaluation, edited, another `_meta`) ends the trusted part. A record whose key was seen before
    is dropped. `dropped` says what was left out. With `keep`, only the records whose key passes it
    are parsed (plots read a few of many)."""
    path = Path(path)
    if not path.exists():
        return RecordsRead(None, [], [])
    meta, records, dropped, seen = None, [], [], set()
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [(n, line) for n, line in enumerate(f, start=1) if line.strip()]
    for i, (number, line) in enumerate(lines):
        where = f"{path}:{number}"
        if meta is None:
            try:
                item = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                item = None
            if not (isinstance(item, dict) and set(item) == {"_meta"} and isinstance(item["_meta"], dict)):
                dropped.append(f"{where}: the file does not start with its _meta line; its {len(lines)} lines "
                               "are not trusted")
                return RecordsRead(None, [], dropped)
            meta = item["_meta"]
            continue
        if keep is not None:
            m = _KEY_RE.search(line, 0, 400)
            if m is not None and not keep(json.loads(f'"{m.group(1)}"')):
                continue
        try:
            record = EpisodeRecord.from_json(json.loads(line), where)
        except (json.JSONDecodeError, RecursionError, RecordsError, TypeError) as exc:
            rest = len(lines) - i - 1
            dropped.append(f"{where}: not an episode record ({str(exc)[:200]}); it and the {rest} line(s) after it "
                           "are ignored")
            break
        if record.key in seen:
            dropped.append(f"{where}: a second record of {record.key} (dropped)")
            continue
        seen.add(record.key)
        if keep is None or keep(record.key):
            records.append(record)
    return RecordsRead(meta, records, dropped)


def write_records(path: Path, meta: RecordsMeta, records: Sequence[EpisodeRecord]) -> None:
    """Replace `path` with the meta line and `records` (atomically)."""
    lines = [{"_meta": meta.to_json()}, *(r.to_json() for r in records)]
    write_text_atomic(path, "".join(json.dumps(x) + "\n" for x in lines))


def append_records(path: Path, records: Sequence[EpisodeRecord]) -> None:
    """Append finished records (each line fsync'ed, so a crash right after keeps them)."""
    for r in records:
        append_line(path, json.dumps(r.to_json()))
