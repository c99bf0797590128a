"""Each entry's clip: its first crash-mode failure in the main condition (disturbed from protocol
version 2 on, nominal before), replayed from its records.

    leaderboard/clips/<id>.webp   an animated WebP (the dashcam at native size, the top-down view,
                                  the offset and curvature chart), the 5 s up to the failure

The clip is made right after the entry's evaluation, from the records in its work folder
(benchmark.reporting.video: the episode run again in its lockstep group, which must reproduce the
recorded offsets exactly). A reference policy (our own code) is replayed here; a submitted model
only ever runs inside the sandbox, so its replay does too: the sandbox reads the work folder (the
records, the staged model) and writes only into a fresh `clip/` folder in it. What comes out is
JSON and a file that must look like a WebP of bounded size; the page shows it with an <img>, which
runs no code. An entry that never fails in that condition has `clip: null`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmark.common.files import sha256_bytes

from .common import REFERENCE_POLICIES, Rejected

CONDITION = "nominal"
"""The condition whose first failure an entry's clip shows under a version-1 protocol."""
MAIN_CONDITION = "disturbed"
"""... and from version 2 on, where the profile has it (its main condition)."""


def clip_condition(protocol, profile: str) -> str:
    """The condition of the entries' clips under this protocol and profile."""
    if protocol.version >= 2 and MAIN_CONDITION in protocol.profile(profile).conditions:
        return MAIN_CONDITION
    return CONDITION
WINDOW_S = 5.0
"""Seconds of driving up to the failure."""
MAX_BYTES = 8 * 2**20
"""Largest clip accepted from the sandbox (a 5 s clip is a few hundred kB)."""


def clip_file(entry_id: str) -> str:
    """The clip's path relative to the leaderboard directory."""
    return f"clips/{entry_id}.webp"


def render_clip(request: dict[str, Any]) -> dict[str, Any]:
    """The replay and the WebP, from JSON data (the sandbox side for a submitted model)."""
    from benchmark.evaluation.results import load_result
    from benchmark.reporting.video import checked_policy, checked_protocol, clip_of, teacher_record

    result = load_result(request["results"])
    protocol = checked_protocol(result, request["protocol"])
    spec = checked_policy(request["policy"], result)
    key = request["key"]
    teacher = None
    if request.get("teacher"):
        teacher = teacher_record(Path(request["teacher"]), key, protocol, result.profile)
    clip = clip_of(result, spec, protocol, key, Path(request["out"]), teacher=teacher, window_s=WINDOW_S, scale=1,
                   group_size=int(request["group_size"]), formats=("webp",), name=request["name"])
    return {k: clip[k] for k in ("key", "frames", "start_step", "end_step")}


def _teacher_records(options, protocol) -> Path | None:
    """The teacher's records of this protocol and profile, for its path beside the entry's: the
    drift reference's (results/<protocol>/<profile>/teacher), else the teacher entry's work folder."""
    from benchmark.evaluation.evaluate import default_out

    for folder in (default_out(protocol.name, options.profile, "teacher"),
                   Path(options.work_dir) / protocol.name / options.profile / "leaderboard-teacher"):
        if (folder / "records.jsonl").is_file():
            return (folder / "records.jsonl").absolute()
    return None


def make_clip(policy: str, entry_id: str, options, out: Path) -> tuple[dict[str, Any] | None, bytes | None]:
    """(the entry's `clip`, the WebP's bytes) of the evaluation whose records and results.json are
    in `out`; (None, None) when it never fails in the clip condition. Raises Rejected when the replay fails."""
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.results import load_result
    from benchmark.reporting.video import first_failure

    from .board import _absolute, _protocol_dirs
    from .sandbox import IsolationError, SandboxUnavailable, run_isolated

    out = Path(out).absolute()
    protocol = load_protocol(options.protocol)
    result = load_result(out)  # written outside the sandbox, from the records read through the validating reader
    condition = clip_condition(protocol, options.profile)
    failure = first_failure(result, condition, protocol)
    if failure is None:
        return None, None
    folder = out / "clip"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    teacher = _teacher_records(options, protocol) if policy != "teacher" else None
    sandboxed = policy not in REFERENCE_POLICIES
    request = {"results": str(out), "policy": str(Path(policy).absolute()) if sandboxed else policy,
               "protocol": _absolute(options.protocol), "key": failure.key, "group_size": options.group_size,
               "teacher": str(teacher) if teacher else "", "out": str(folder / "clip"), "name": entry_id}
    try:
        if sandboxed:
            readable = [out, *_protocol_dirs(options.protocol), *([teacher.parent] if teacher else [])]
            answer = run_isolated(render_clip, (request,), time_limit_s=options.time_limit_s or 86400.0,
                                  memory_limit_mb=options.memory_limit_mb, processes=32, readable=readable,
                                  writable=folder, unsafe=not options.sandbox)
        else:
            answer = render_clip(request)
    except SandboxUnavailable as exc:
        raise exc.rejection() from None
    except (IsolationError, ValueError) as exc:
        fix = ("A model must give the same output for the same frames every time (no randomness, no state kept "
               "between calls other than state_in)") if sandboxed else "Report this to the leaderboard's maintainers"
        raise Rejected(f"the replay of the first {condition} failure ({failure.key}) for the entry's clip failed "
                       f"({exc})", fix) from None
    start, end = max(0, failure.failure_step - round(WINDOW_S * protocol.policy_hz)), failure.failure_step
    path = folder / "clip.webp"
    ok = path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_BYTES
    data = path.read_bytes() if ok else b""
    if not (answer == {"key": failure.key, "frames": end - start + 1, "start_step": start, "end_step": end}
            and data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        raise Rejected(f"the clip of the first {condition} failure ({failure.key}) did not come back as a WebP of "
                       "that episode", "Report this to the leaderboard's maintainers")
    clip = {"file": clip_file(entry_id), "sha256": sha256_bytes(data), "bytes": len(data), "condition": condition,
            "episode": failure.key,
            "failure_type": failure.failure_type, "failure_step": failure.failure_step, "start_step": start,
            "end_step": end, "frames": end - start + 1}
    return clip, data
