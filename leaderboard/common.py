"""Shared pieces of the leaderboard: the rejection error, paths, ids, and small JSON helpers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from benchmark.common.files import dumps, exclusive_lock

from .escape import printable_line

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_ROOT = Path("leaderboard")
"""The leaderboard directory, relative to the repository root (where make runs)."""
ENTRY_SCHEMA_VERSION = 2
REFERENCE_POLICIES = ("teacher", "straight")
DOCS = "leaderboard/README.md"
CONDITIONAL_ROOT = Path("leaderboard/conditional")
"""The board of conditional models (an ONNX input `command`), ranked on their own table."""
CONDITIONAL_PROTOCOL = "steerbench-forks-v1"
"""The protocol of the conditional board: held-out road networks with forks, a command at each."""


class Rejected(Exception):
    """A submission that cannot go on the leaderboard. The message is the one line the user sees:
    'rejected: <what is wrong>. <what to fix>'."""

    def __init__(self, problem: str, fix: str):
        problem = one_line(problem).rstrip(".")
        fix = one_line(fix)
        super().__init__(f"rejected: {problem}. {fix}")
        self.problem = problem
        self.fix = fix


def one_line(text: str, limit: int = 400) -> str:
    """One printable line (messages from onnx or onnxruntime span lines; a submitter's text may hold
    control characters or ANSI escapes meant for the terminal), cut when very long."""
    return printable_line(text, limit)


def slugify(name: str) -> str:
    """Entry id of a name: lower case, runs of other characters to '-' ('PilotNet BC (v2)' -> 'pilotnet-bc-v2')."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def board_lock(root: Path):
    """The leaderboard's lock (root/.lock): held while an entry is added or the pages are built."""
    return exclusive_lock(Path(root) / ".lock", wait=True, what=f"the leaderboard {root}")


def entries_dir(root: Path) -> Path:
    return Path(root) / "entries"


def models_dir(root: Path) -> Path:
    return Path(root) / "models"


def clip_path(root: Path, entry_id: str) -> Path:
    return Path(root) / "clips" / f"{entry_id}.webp"


def entry_path(root: Path, entry_id: str) -> Path:
    return entries_dir(root) / f"{entry_id}.json"


def model_path(root: Path, entry_id: str) -> Path:
    return models_dir(root) / f"{entry_id}.onnx"


def canonical(data: Any) -> Any:
    """`data` as it reads back from JSON (tuples become lists, keys strings)."""
    return json.loads(dumps(data))


def differences(stored: Any, fresh: Any, rtol: float = 0.0, path: str = "") -> list[str]:
    """Where two JSON-like values differ ('conditions.nominal.crash.survival[1]: stored 0.5, now 0.4').

    Floats compare exactly unless `rtol` > 0; NaN equals NaN; ints and floats of equal value are equal.
    """
    where = path or "(root)"
    if isinstance(stored, dict) and isinstance(fresh, dict):
        out: list[str] = []
        for key in sorted(set(stored) | set(fresh), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in fresh:
                out.append(f"{sub}: stored but not reproduced")
            elif key not in stored:
                out.append(f"{sub}: missing from the entry")
            else:
                out += differences(stored[key], fresh[key], rtol, sub)
        return out
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{where}: stored {len(stored)} values, now {len(fresh)}"]
        out = []
        for i, (a, b) in enumerate(zip(stored, fresh)):
            out += differences(a, b, rtol, f"{path}[{i}]")
        return out
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(fresh, numbers) and not isinstance(stored, bool) \
            and not isinstance(fresh, bool):
        a, b = float(stored), float(fresh)
        if a == b or (math.isnan(a) and math.isnan(b)):
            return []
        if rtol > 0 and math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(abs(a), abs(b)):
            return []
        return [f"{where}: stored {stored!r}, now {fresh!r}"]
    return [] if stored == fresh else [f"{where}: stored {stored!r}, now {fresh!r}"]
