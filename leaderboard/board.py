"""The leaderboard's storage and its evaluation step.

    leaderboard/entries/<id>.json   one entry per model (the only input of `build`)
    leaderboard/models/<id>.onnx    the submitted ONNX file, kept so that `verify` can re-evaluate it
    leaderboard/clips/<id>.webp     the entry's clip: its first nominal failure (leaderboard/clips.py)

An entry (ENTRY_SCHEMA_VERSION 2; an entry of a version-1 protocol is of schema 1, without outcomes):

    schema_version  2
    id              slug of the card's name; the file name
    kind            "submission" (an ONNX file) or "reference" (the teacher, the straight-ahead policy)
    card            the validated model card (leaderboard/card.py)
    policy          "onnx", "teacher" or "straight"
    model           the ONNX file: file (relative to the leaderboard directory), sha256, bytes,
                    ir_version, opset, producer, recurrent, state_size, inputs, outputs; null for references
    protocol        name, sha256 (of the protocol file), profile, horizons
    evaluation      the settings that fix the numbers (group_size, drift_reference) and how it ran
                    (episodes, seconds, workers, memory_limit_mb, time_limit_s)
    clip            the clip of the first crash-mode failure in the main condition (disturbed from
                    protocol version 2 on, nominal before): file (relative to the
                    leaderboard directory), sha256, bytes, episode, failure_type, failure_step, start_step,
                    end_step, frames; null when the entry never fails there (absent in older entries)
    score           value, survival_t_max per crash condition, the tie-break values (leaderboard/ranking.py);
                    from version 2 on also the score's 95% interval (low, high) and each survival's
    outcomes        per crash condition and held-out track, each episode's failure step or null
                    (leaderboard/outcomes.py; schema 2)
    metrics         benchmark/evaluation/results.py's metrics: per condition survival S(T) and cumulative cost J(T)
                    at the horizons, crash rates, offsets, growth exponent, drift, autonomy, ...
    git_sha, packages, hardware, date    provenance of the evaluation (date: ISO 8601, UTC)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from benchmark.common.files import to_jsonable
from benchmark.evaluation.evaluate import (
    EvaluateConfig,
    EvaluationError,
    EvaluationTimeout,
    WorkerDied,
    WorkerOutOfMemory,
    evaluate,
    results_from_records,
    share_reference,
)
from benchmark.evaluation.records import read_records
from benchmark.evaluation.results import Results

from .common import ENTRY_SCHEMA_VERSION, REFERENCE_POLICIES, Rejected, entries_dir
from .outcomes import check_outcomes, outcomes_of
from .ranking import score_of
from .sandbox import CRASHED, MEMORY, TIMEOUT, IsolationError, SandboxUnavailable, run_isolated

LEADERBOARD_PROTOCOL = "steerbench-v2"
"""The protocol of the checked-in board, and so the default of `make submit`, `make verify` and
`leaderboard clips`: a board's entries share one protocol and profile (submit refuses another)."""


class BoardError(RuntimeError):
    """A leaderboard directory whose entries cannot be read or do not belong together."""


@dataclass(frozen=True, kw_only=True)
class EvaluationOptions:
    """How entries are evaluated (shared by submit, add-reference, baselines and verify)."""

    root: Path = Path("leaderboard")
    """Leaderboard directory: entries/, models/, README.md, index.html."""
    protocol: str = LEADERBOARD_PROTOCOL
    """Protocol name (benchmark/evaluation/protocols/<name>.yaml) or path."""
    profile: Literal["quick", "full"] = "full"
    """Protocol profile; the leaderboard uses full."""
    workers: int = 2
    """Evaluation worker processes."""
    group_size: int = 8
    """Most episodes stepped in lockstep in one group (stored in the entry: it fixes the numbers)."""
    drift_reference: bool = True
    """Compute the drift metric against the teacher (evaluates the teacher on the profile once, under results/)."""
    memory_limit_mb: int = 8192
    """Memory limit of a submission's evaluation [MiB]: the address space of each of its processes and,
    where cgroups can be made, the resident memory of the whole sandbox."""
    sandbox: bool = True
    """Check and evaluate submitted models in the bubblewrap sandbox (--no-sandbox: without it; unsafe)."""
    time_limit_s: float = 3600.0
    """Wall-clock limit of one evaluation [s]."""
    work_dir: Path = Path("results/leaderboard")
    """Where evaluation records are written (an interrupted submission resumes from them)."""
    progress: bool = True
    """Show a progress bar."""


def read_entry(path: Path) -> dict[str, Any]:
    try:
        entry = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BoardError(f"{path}: not a readable entry ({exc})") from None
    for key in ("schema_version", "id", "kind", "card", "protocol", "metrics", "date"):
        if key not in entry:
            raise BoardError(f"{path}: not a leaderboard entry (no '{key}')")
    if entry["schema_version"] not in (1, ENTRY_SCHEMA_VERSION):
        raise BoardError(f"{path}: entry schema version {entry['schema_version']}, expected 1 or {ENTRY_SCHEMA_VERSION}")
    if entry["schema_version"] >= 2:
        try:
            check_outcomes(entry.get("outcomes"), f"{path}: outcomes")
        except ValueError as exc:
            raise BoardError(str(exc)) from None
    if entry["id"] != Path(path).stem:
        raise BoardError(f"{path}: the entry's id {entry['id']!r} does not match its file name")
    return entry


def load_entries(root: Path) -> list[dict[str, Any]]:
    """Every entry of the leaderboard at `root`, in file-name order."""
    directory = entries_dir(root)
    if not directory.is_dir():
        return []
    return [read_entry(p) for p in sorted(directory.glob("*.json"))]


def protocol_of(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The protocol (name, sha256, profile, horizons) shared by all entries; BoardError if they differ."""
    seen = {(e["protocol"]["name"], e["protocol"]["sha256"], e["protocol"]["profile"]) for e in entries}
    if len(seen) > 1:
        listing = "; ".join(f"{n} ({p}, sha256 {s[:12]})" for n, s, p in sorted(seen))
        raise BoardError(f"the entries were evaluated under different protocols: {listing}")
    return entries[0]["protocol"] if entries else None


def run_evaluation(policy: str, run_name: str, options: EvaluationOptions, out: Path, *, resume: bool = True,
                   group_size: int | None = None, drift_reference: bool | None = None) -> tuple[Results, float]:
    """Evaluate `policy` through benchmark.evaluation.evaluate; returns (results, seconds).

    A reference policy (our own teacher or straight-ahead code) is evaluated directly. A submitted
    model is evaluated in the sandbox (leaderboard.sandbox), which writes only the records into
    `out`; the metrics are then computed here, from those records read through the validating
    reader, against the teacher's records (evaluated here, outside the sandbox). A reference's
    evaluation of the whole profile becomes the protocol's shared drift reference
    (benchmark.evaluation.evaluate.share_reference), which is then not evaluated a second time."""
    config = EvaluateConfig(
        policy=policy, name=run_name, protocol=options.protocol, profile=options.profile, out=out,
        workers=options.workers, group_size=options.group_size if group_size is None else group_size,
        resume=resume, drift_reference=options.drift_reference if drift_reference is None else drift_reference,
        memory_limit_mb=options.memory_limit_mb, time_limit_s=options.time_limit_s, progress=options.progress)
    start = time.monotonic()
    try:
        if policy in REFERENCE_POLICIES:
            results = evaluate(config)
            # the protocol's drift reference is this very evaluation: the learners reuse it
            share_reference(policy, options.protocol, options.profile, read_records(Path(out) / "records.jsonl").records)
        else:
            out = Path(out).absolute()
            out.mkdir(parents=True, exist_ok=True)
            inside = replace(config, policy=str(Path(policy).absolute()), out=out, protocol=_absolute(options.protocol),
                             drift_reference=False, progress=False)
            run_isolated(evaluate_records, (to_jsonable(inside),),
                         time_limit_s=options.time_limit_s or 86400.0, memory_limit_mb=options.memory_limit_mb,
                         processes=8 * (options.workers + 2), writable=out,
                         readable=_protocol_dirs(options.protocol), unsafe=not options.sandbox)
            results = results_from_records(config)
    except BaseException:
        _close_progress_bars()  # so that the message starts on a line of its own
        raise
    return results, time.monotonic() - start


def evaluate_records(config: dict[str, Any]) -> dict[str, Any]:
    """Sandbox side: the evaluation's records (no drift reference, no results of ours to trust)."""
    from benchmark.common.config import build_config

    data = {**config, "out": Path(config["out"]), "conditions": tuple(config["conditions"])}
    results = evaluate(build_config(EvaluateConfig, data))
    return {"episodes": results.metrics.episodes}


def _absolute(protocol: str) -> str:
    """A protocol path made absolute (the sandbox starts in another folder); a name as it is."""
    path = Path(protocol)
    return str(path.absolute()) if path.suffix else protocol


def _protocol_dirs(protocol: str) -> list[Path]:
    """A protocol given by path may live outside the project: the sandbox may read its folder."""
    path = Path(protocol)
    return [path.absolute().parent] if path.suffix and path.is_file() else []


def _close_progress_bars() -> None:
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", [])):
        bar.close()


# Why an evaluation stopped -> (problem, fix) shown to the submitter; `{limit_s}` and `{memory_mb}`
# are the options' limits, `{detail}` the error's own message.
_CRASH = ("the model crashed or ran out of memory during the evaluation ({detail}; memory limit {memory_mb} MiB "
          "per process)", "Check that it runs with onnxruntime on the CPU within that memory")
FAILURE_MESSAGES: dict[type, tuple[str, str]] = {
    EvaluationTimeout: ("the evaluation did not finish within its time limit of {limit_s:g} s",
                        "Make inference faster (one batch of up to 8 frames per step, single-threaded on the CPU)"),
    WorkerDied: _CRASH,
    WorkerOutOfMemory: _CRASH,
    EvaluationError: ("the evaluation failed ({detail})", "Check that the model runs with onnxruntime on the CPU"),
}


SANDBOXED_FAILURES: dict[str | None, type[EvaluationError]] = {
    cls.__name__: cls for cls in (WorkerDied, WorkerOutOfMemory, EvaluationError)}
"""Typed evaluation failures raised inside the sandbox, by the name the sandbox reports."""


def rejection(exc: EvaluationError, options: EvaluationOptions) -> Rejected:
    """The Rejected of a failed evaluation, by the failure's type (the most specific in FAILURE_MESSAGES)."""
    kind = next(k for k in type(exc).__mro__ if k in FAILURE_MESSAGES)
    problem, fix = FAILURE_MESSAGES[kind]
    return Rejected(problem.format(limit_s=options.time_limit_s, memory_mb=options.memory_limit_mb, detail=exc), fix)


def evaluate_entry(policy: str, run_name: str, options: EvaluationOptions, out: Path, *, resume: bool = True,
                   group_size: int | None = None, drift_reference: bool | None = None) -> tuple[Results, float]:
    """run_evaluation with its failures turned into a Rejected saying why."""
    try:
        return run_evaluation(policy, run_name, options, out, resume=resume, group_size=group_size,
                              drift_reference=drift_reference)
    except EvaluationError as exc:
        raise rejection(exc, options) from None
    except SandboxUnavailable as exc:
        raise exc.rejection() from None
    except IsolationError as exc:  # the sandbox's own failure, or a typed evaluation failure inside it
        if exc.kind == TIMEOUT or exc.type_name == EvaluationTimeout.__name__:
            failure: EvaluationError = EvaluationTimeout(options.time_limit_s)
        elif exc.kind in (CRASHED, MEMORY):
            failure = WorkerDied(exc.detail)
        else:
            failure = SANDBOXED_FAILURES.get(exc.type_name, EvaluationError)(exc.detail)
        raise rejection(failure, options) from None
    except Exception as exc:  # an error raised in a worker (e.g. onnxruntime refusing the file) comes back here
        raise Rejected(f"the evaluation failed ({type(exc).__name__}: {exc})",
                       "Check that the model runs with onnxruntime on the CPU") from None


def entry_outcomes(out: Path, options: EvaluationOptions) -> dict[str, Any] | None:
    """The outcomes block (leaderboard/outcomes.py) of the evaluation whose records are in `out`, read
    through the validating reader; None under a version-1 protocol."""
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.records import read_records

    protocol = load_protocol(options.protocol)
    if protocol.version < 2:
        return None
    records = read_records(Path(out) / "records.jsonl").records
    return outcomes_of(records, protocol.profile(options.profile).seen_tracks)


def make_entry(*, entry_id: str, kind: str, card: dict[str, Any], policy: str, model: dict[str, Any] | None,
               results: Results, options: EvaluationOptions, seconds: float,
               clip: dict[str, Any] | None = None, outcomes: dict[str, Any] | None = None) -> dict[str, Any]:
    """An entry; with `outcomes` (protocol version 2 on) of ENTRY_SCHEMA_VERSION, else of version 1."""
    document = results.to_json()
    extra = {} if outcomes is None else {"outcomes": outcomes}
    return {
        "schema_version": ENTRY_SCHEMA_VERSION if outcomes is not None else 1,
        "id": entry_id,
        "kind": kind,
        "card": card,
        "policy": policy,
        "model": model,
        "protocol": document["protocol"],
        "evaluation": {"group_size": options.group_size, "drift_reference": options.drift_reference,
                       "episodes": results.metrics.episodes, "seconds": round(seconds, 1), "workers": options.workers,
                       "memory_limit_mb": options.memory_limit_mb, "time_limit_s": options.time_limit_s},
        "clip": clip,
        "score": score_of(results.metrics, outcomes),
        "metrics": document["metrics"],
        **extra,
        "git_sha": results.git_sha,
        "packages": results.packages,
        "hardware": results.hardware,
        "date": results.date,
    }
