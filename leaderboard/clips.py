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

`python -m leaderboard clips` makes the clips of entries again when their records are gone (a
fresh clone, another machine): it runs only the clip's episode, in its lockstep group, with the
entry's kept model (in the sandbox, as above) and the teacher beside it, and writes the clip only
when the replay fails at the entry's step, in its way, and the WebP comes out byte for byte the
entry's (its sha256): a clip is made again, never replaced by another. A network's inference picks
its kernels by CPU (benchmark/common/numerics.py), so on a CPU of another capability the replay
fails at the same step while the curvature chart moves by a pixel here and there: `--rehash` then
writes that clip and records its sha256 and size in the entry (nothing else of it changes).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.common.files import sha256_bytes, sha256_file, write_bytes_atomic, write_json_atomic

from .board import LEADERBOARD_PROTOCOL, load_entries
from .common import REFERENCE_POLICIES, Rejected, board_lock, entries_dir

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


def render_entry_clip(request: dict[str, Any]) -> dict[str, Any]:
    """The replay of one protocol episode and its WebP, from JSON data, without the evaluation's
    records (the sandbox side for a submitted model): the policy's record of the episode run again
    in its lockstep group, the teacher's beside it when asked."""
    from benchmark.evaluation.evaluate import policy_spec
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.reporting.video import frames_of, replay_protocol_episode, write_video

    protocol = load_protocol(request["protocol"])
    key, profile, group_size = request["key"], request["profile"], int(request["group_size"])
    start, end = int(request["start_step"]), int(request["end_step"])
    record, seen = replay_protocol_episode(policy_spec(request["policy"]), protocol, profile, key, group_size,
                                           first=start)
    answer = {"key": key, "crashed": record.crashed, "failure_type": record.failure_type,
              "failure_step": record.failure_step}
    if not (record.crashed and record.failure_step == end):
        return answer  # another episode than the entry's: no clip of it
    teacher = None
    if request["teacher"]:  # the teacher's path on the same episode (its records, where it was first made)
        teacher, _ = replay_protocol_episode(policy_spec("teacher"), protocol, profile, key, group_size,
                                             first=record.steps + 1)
    frames = frames_of(record, seen, teacher, start, end, protocol.policy_hz, scale=1, name=request["name"])
    write_video(frames, Path(request["out"]), protocol.policy_hz, ("webp",))
    return {**answer, "frames": len(frames)}


def remake_clip(entry: dict[str, Any], options, rehash: bool = False) -> bytes:
    """The bytes of `entry`'s clip, made again from its kept model (see the module's docstring);
    Rejected when the replay is not the entry's episode and failure, or (unless `rehash`) the WebP
    is not the entry's bytes."""
    from benchmark.evaluation.protocol import load_protocol

    from .board import _absolute, _protocol_dirs
    from .sandbox import IsolationError, SandboxUnavailable, run_isolated

    clip, root = entry["clip"], Path(options.root).absolute()
    what = f"{entry['id']}'s clip ({clip['episode']})"
    protocol = load_protocol(options.protocol)
    stored = entry["protocol"]
    if (stored["name"], stored["sha256"], stored["profile"]) != (protocol.name, protocol.sha256, options.profile):
        raise Rejected(f"{what} was made under {stored['name']} ({stored['profile']}, sha256 {stored['sha256'][:12]}), "
                       f"not {protocol.name} ({options.profile}, {protocol.sha256[:12]})",
                       "Pass the entry's --protocol and --profile")
    if entry.get("policy") in REFERENCE_POLICIES:
        policy, readable = entry["policy"], []
    else:
        model = root / entry["model"]["file"]
        if not model.is_file() or sha256_file(model) != entry["model"]["sha256"]:
            raise Rejected(f"{what}: the kept model {entry['model']['file']} is missing or not the entry's",
                           "Put the entry's ONNX file back first (`verify --no-reevaluate` checks it)")
        policy, readable = str(model), [model.parent]
    sandboxed = policy not in REFERENCE_POLICIES
    group_size = int(entry.get("evaluation", {}).get("group_size", options.group_size))
    Path(options.work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-", dir=options.work_dir) as scratch:
        folder = Path(scratch).absolute()
        request = {"protocol": _absolute(options.protocol), "profile": options.profile, "policy": policy,
                   "key": clip["episode"], "group_size": group_size, "start_step": clip["start_step"],
                   "end_step": clip["end_step"], "teacher": entry.get("policy") != "teacher",
                   "out": str(folder / "clip"), "name": entry["id"]}
        try:
            if sandboxed:
                answer = run_isolated(render_entry_clip, (request,), time_limit_s=options.time_limit_s,
                                      memory_limit_mb=options.memory_limit_mb, processes=32,
                                      readable=[*readable, *_protocol_dirs(options.protocol)], writable=folder,
                                      unsafe=not options.sandbox)
            else:
                answer = render_entry_clip(request)
        except SandboxUnavailable as exc:
            raise exc.rejection() from None
        except (IsolationError, ValueError) as exc:
            raise Rejected(f"the replay of {what} failed ({exc})", "Report this to the leaderboard's maintainers") from None
        want = {"key": clip["episode"], "crashed": True, "failure_type": clip["failure_type"],
                "failure_step": clip["failure_step"], "frames": clip["frames"]}
        if answer != want:
            got = (f"failed by {answer.get('failure_type')} at step {answer.get('failure_step')}"
                   if answer.get("crashed") else "did not fail")
            raise Rejected(f"the replay of {what} {got}; the entry's clip failed by {clip['failure_type']} at step "
                           f"{clip['failure_step']}", "Run it on the software the entry names (its packages)")
        path = folder / "clip.webp"
        data = path.read_bytes() if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_BYTES else b""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise Rejected(f"{what} did not come back as a WebP", "Report this to the leaderboard's maintainers")
    if sha256_bytes(data) != clip["sha256"] and not rehash:
        raise Rejected(f"{what} came out as another WebP (sha256 {sha256_bytes(data)[:16]}..., {len(data)} bytes; "
                       f"the entry's is {clip['sha256'][:16]}..., {clip['bytes']} bytes), with the same failure",
                       "Run it on the software and CPU capability the entry was made on, or pass --rehash to keep "
                       "this one (a network's inference moves by ulps across CPUs; the episode is the entry's)")
    return data


@dataclass(frozen=True, kw_only=True)
class ClipsConfig:
    """Make the entries' clips again from their kept models, where the clip files are missing (the evaluation
    records they were first made from are gone). Each comes back byte for byte or is not written."""

    root: Path = Path("leaderboard")
    """Leaderboard directory: entries/, models/, clips/."""
    protocol: str = LEADERBOARD_PROTOCOL
    """The entries' protocol (name or path)."""
    profile: Literal["quick", "full"] = "full"
    """The entries' protocol profile."""
    entries: tuple[str, ...] = ()
    """Only these entry ids (default: every entry with a clip)."""
    force: bool = False
    """Make present clips again too (they must come out the same bytes; a check that they reproduce)."""
    rehash: bool = False
    """Keep a clip whose replay fails at the entry's step, in its way, but whose bytes differ (another CPU's
    inference kernels), recording its sha256 and size in the entry."""
    group_size: int = 8
    """Lockstep group size for entries that do not store theirs."""
    memory_limit_mb: int = 8192
    """Memory limit of a submitted model's replay in the sandbox [MiB]."""
    sandbox: bool = True
    """Replay submitted models in the bubblewrap sandbox (--no-sandbox: without it; unsafe)."""
    time_limit_s: float = 1800.0
    """Wall-clock limit of one clip's replay [s]."""
    work_dir: Path = Path("results/leaderboard")
    """Where the replays write (a temporary folder in it, removed afterwards)."""


def run_clips(config: ClipsConfig) -> dict[str, Any]:
    """{"written": ids, "rehashed": ids (written with a new sha256), "present": ids, "no_clip": ids,
    "failed": {id: why}}."""
    entries = load_entries(config.root)
    unknown = sorted(set(config.entries) - {e["id"] for e in entries})
    if unknown:
        raise ValueError(f"no entries {', '.join(unknown)} in {config.root}")
    report: dict[str, Any] = {"written": [], "rehashed": [], "present": [], "no_clip": [], "failed": {}}
    for entry in entries:
        if config.entries and entry["id"] not in config.entries:
            continue
        clip = entry.get("clip")
        if not clip:
            report["no_clip"].append(entry["id"])
            continue
        path = Path(config.root) / clip_file(entry["id"])
        if path.is_file() and not config.force:
            report["present"].append(entry["id"])
            continue
        try:
            data = remake_clip(entry, config, rehash=config.rehash)
        except Rejected as exc:
            report["failed"][entry["id"]] = str(exc).removeprefix("rejected: ")
            continue
        same = sha256_bytes(data) == clip["sha256"]
        with board_lock(config.root):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, data)
            if not same:
                entry["clip"] = {**clip, "sha256": sha256_bytes(data), "bytes": len(data)}
                write_json_atomic(entries_dir(config.root) / f"{entry['id']}.json", entry)
        report["written" if same else "rehashed"].append(entry["id"])
    return report
