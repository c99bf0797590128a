"""`python -m leaderboard verify`: check that every entry is what it claims to be.

Per entry, in order:

1. TAMPERED: the entry's own parts disagree: the kept ONNX file (models/<id>.onnx) or the clip
   (clips/<id>.webp) is missing or its sha256 differs from the entry's, or the stored score differs
   from the score computed from the stored metrics and outcomes.
2. MISMATCH: the entry was evaluated under another protocol file than the current one (name,
   profile, sha256), or a fresh evaluation (same protocol, profile, group size and drift setting;
   a new records directory, nothing resumed) gives metrics or outcomes that differ from the stored ones. The
   harness is deterministic, so on the same software every number reproduces exactly; `--rtol`
   allows a relative tolerance for other machines.
3. ERROR: the fresh evaluation failed.
4. OK otherwise.

The command exits non-zero unless every checked entry is OK.

With `--backend ray` each entry's whole check (`check_entry`) is one Ray task on as many CPUs as the
evaluation has workers (benchmark/evaluation/backends.py); the drift references it needs are
evaluated first, where missing, so that no two tasks evaluate the same one. The task runs the same
code as the local check, so a submitted model is checked and evaluated in the sandbox of the node
that runs the task (bubblewrap must be installed there; where it cannot be used the entry is an
ERROR, as locally), never outside it. Statuses and details are those of a local run.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from benchmark.common.config import require
from benchmark.common.files import sha256_file, write_bytes_atomic

from .board import EvaluationOptions, entry_outcomes, evaluate_entry, load_entries
from .clips import clip_file
from .common import Rejected, canonical, differences
from .modelcheck import ModelLimits, check_model_file
from .ranking import score_of

OK, TAMPERED, MISMATCH, ERROR = "OK", "TAMPERED", "MISMATCH", "ERROR"


@dataclass(frozen=True, kw_only=True)
class VerifyConfig(EvaluationOptions):
    """Re-evaluate the leaderboard's entries and check that their stored metrics and model hashes reproduce."""

    entries: tuple[str, ...] = ()
    """Only these entry ids (default: all)."""
    reevaluate: bool = True
    """Re-run the evaluations (--no-reevaluate: only the hashes and the entries' consistency, in seconds)."""
    rtol: float = 0.0
    """Relative tolerance of the metric comparison (0: exact)."""
    details: int = 5
    """Most differences listed per entry."""
    backend: Literal["local", "ray"] = "local"
    """Where the checks run: local (this process, one entry after another) or ray (one Ray task per entry; needs
    the optional extra requirements-ray.txt). Submitted models are evaluated in the sandbox either way."""
    address: str = ""
    """Ray cluster to use, its head node's HOST:PORT (or 'auto'); empty: start a local Ray cluster on this machine.
    A multi-node cluster needs --work-dir and results/ on a file system every node shares, at the same path."""

    def __post_init__(self) -> None:
        require(not self.address or self.backend == "ray", "--address names a Ray cluster: it needs --backend ray")


def check_entry(entry: dict[str, Any], config: VerifyConfig, scratch: Path) -> tuple[str, list[str]]:
    """(status, details) of one entry."""
    root = Path(config.root)
    problems: list[str] = []
    model = entry.get("model")
    policy = entry.get("policy")
    if entry["kind"] == "submission" or model is not None:
        if not model or not model.get("file") or not model.get("sha256"):
            return TAMPERED, ["the entry names no model file and sha256"]
        path = root / model["file"]
        if not path.is_file():
            return TAMPERED, [f"the model file {model['file']} is missing"]
        digest = sha256_file(path)
        if digest != model["sha256"]:
            return TAMPERED, [f"{model['file']} has sha256 {digest[:16]}..., the entry says {model['sha256'][:16]}..."]
        policy_arg = str(path)
    elif policy in ("teacher", "straight"):
        policy_arg = policy
    else:
        return TAMPERED, [f"the entry's policy {policy!r} is neither a model file nor a reference policy"]
    clip = entry.get("clip")
    if clip:
        path = root / clip_file(entry["id"])
        if clip.get("file") != clip_file(entry["id"]) or not path.is_file():
            return TAMPERED, [f"the clip {clip_file(entry['id'])} is missing"]
        if sha256_file(path) != clip.get("sha256"):
            return TAMPERED, [f"{clip_file(entry['id'])} has sha256 {sha256_file(path)[:16]}..., the entry says "
                              f"{str(clip.get('sha256'))[:16]}..."]
    stored_score = canonical(entry.get("score"))
    try:
        fresh_score = canonical(score_of(entry["metrics"], entry.get("outcomes")))
    except ValueError as exc:
        return TAMPERED, [f"the stored outcomes are malformed: {exc}"]
    problems = differences(stored_score, fresh_score, 0.0, "score")
    if problems:
        return TAMPERED, ["the stored score does not follow from the stored metrics: " + problems[0]]

    from benchmark.evaluation.protocol import ProtocolError, load_protocol

    try:
        protocol = load_protocol(config.protocol)
    except ProtocolError as exc:
        return ERROR, [str(exc)]
    stored = entry["protocol"]
    if (stored["name"], stored["sha256"], stored["profile"]) != (protocol.name, protocol.sha256, config.profile):
        return MISMATCH, [f"evaluated under {stored['name']} ({stored['profile']}, sha256 {stored['sha256'][:12]}), "
                          f"verifying under {protocol.name} ({config.profile}, {protocol.sha256[:12]})"]
    if not config.reevaluate:
        return OK, ["hashes and score consistent (not re-evaluated)"]
    settings = entry.get("evaluation", {})
    out = scratch / entry["id"]
    if policy_arg not in ("teacher", "straight"):  # the stored file goes through every check again
        try:
            data, _ = check_model_file(policy_arg, ModelLimits(), memory_limit_mb=config.memory_limit_mb,
                                       unsafe=not config.sandbox)
        except Rejected as exc:
            return ERROR, [f"the stored model fails the checks now: {str(exc).removeprefix('rejected: ')}"]
        policy_arg = str(out / "model.onnx")  # exactly the bytes checked, inside the evaluation's folder
        write_bytes_atomic(Path(policy_arg), data)
    try:
        results, _ = evaluate_entry(policy_arg, f"verify-{entry['id']}", config, out, resume=False,
                                    group_size=int(settings.get("group_size", config.group_size)),
                                    drift_reference=bool(settings.get("drift_reference", config.drift_reference)))
    except Rejected as exc:
        return ERROR, [str(exc).removeprefix("rejected: ")]
    diffs = differences(canonical(entry["metrics"]), canonical(results.metrics.to_json()), config.rtol, "metrics")
    if "outcomes" in entry:  # whole episodes: exact whatever the tolerance
        diffs += differences(canonical(entry["outcomes"]), canonical(entry_outcomes(out, config)), 0.0, "outcomes")
    if diffs:
        return MISMATCH, [f"{len(diffs)} metric(s) differ from a fresh evaluation", *diffs[: config.details]]
    return OK, ["metrics reproduce" + (" exactly" if config.rtol == 0 else f" within rtol {config.rtol:g}")]


def verify(config: VerifyConfig) -> dict[str, Any]:
    entries = load_entries(config.root)
    if config.entries:
        unknown = sorted(set(config.entries) - {e["id"] for e in entries})
        if unknown:
            raise ValueError(f"no entries {', '.join(unknown)} in {config.root}")
        entries = [e for e in entries if e["id"] in config.entries]
    report: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        scratch = Path(config.work_dir)  # fresh evaluations go to a new directory in it, removed afterwards
        if config.reevaluate and entries:
            scratch.mkdir(parents=True, exist_ok=True)
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="verify-", dir=scratch)))
        if config.backend == "local":
            for entry in entries:
                status, details = check_entry(entry, config, scratch)
                report[entry["id"]] = {"status": status, "details": details}
        else:
            checked = _check_on_cluster(entries, config, scratch)
            report = {e["id"]: {"status": checked[e["id"]][0], "details": checked[e["id"]][1]} for e in entries}
    return {"ok": all(r["status"] == OK for r in report.values()), "checked": len(report), "entries": report}


def _check_on_cluster(entries: list[dict[str, Any]], config: VerifyConfig,
                      scratch: Path) -> dict[str, tuple[str, list[str]]]:
    """check_entry of every entry as jobs of the Ray backend, the missing drift references first."""
    from tqdm import tqdm

    from benchmark.evaluation.backends import Job, connect
    from benchmark.evaluation.evaluate import RESULTS_ROOT

    inside = replace(config, progress=False)
    references = _reference_jobs(entries, config)
    checks = {id(job): (entry["id"], job) for entry in entries
              for job in [Job(check_entry, (entry, inside, scratch), config.workers, f"verify {entry['id']}")]}
    drift = config.reevaluate and any(bool(e.get("evaluation", {}).get("drift_reference", config.drift_reference))
                                      and e.get("policy") != "teacher" for e in entries)
    shared = [scratch] + ([RESULTS_ROOT] if drift else [])  # the records written there are read back elsewhere
    report: dict[str, tuple[str, list[str]]] = {}
    with connect(config.backend, config.address, shared) as runner, \
            tqdm(total=len(entries), desc=f"verify ({config.backend})", unit="entry", disable=not config.progress,
                 dynamic_ncols=True) as bar:
        for job in references:  # one after another; one that fails fails the entries that need it, as locally
            list(runner.run([job]))
        for outcome in runner.run([job for _, job in checks.values()]):
            entry_id = checks[id(outcome.job)][0]
            report[entry_id] = outcome.value if outcome.ok else (
                ERROR, [f"the check failed on {outcome.host or 'the cluster'}: {outcome.error}"])
            bar.update(1)
    return report


def _reference_jobs(entries: list[dict[str, Any]], config: VerifyConfig) -> list:
    """Jobs for the drift references (teacher, then under a version-2 protocol straight-ahead) that a local run
    would evaluate on its way, with the settings of the first entry to need each, where they are missing."""
    from benchmark.evaluation.backends import Job
    from benchmark.evaluation.protocol import ProtocolError, load_protocol
    from benchmark.evaluation.sweep import reference_job, reference_missing

    if not config.reevaluate:
        return []
    try:
        protocol = load_protocol(config.protocol)
    except ProtocolError:
        return []  # every entry reports it
    jobs = []
    for kind in ("teacher", "straight") if protocol.version >= 2 else ("teacher",):
        for entry in entries:
            settings = entry.get("evaluation", {})
            needs = entry.get("policy") != "teacher" and (kind == "teacher" or entry.get("policy") != "straight")
            if needs and bool(settings.get("drift_reference", config.drift_reference)):
                if reference_missing(kind, config.protocol, config.profile):
                    group_size = int(settings.get("group_size", config.group_size))
                    jobs.append(Job(reference_job, (kind, config.protocol, config.profile, config.workers, group_size),
                                    config.workers, f"reference {kind}"))
                break
    return jobs


def format_report(result: dict[str, Any]) -> str:
    lines = []
    for entry_id, r in result["entries"].items():
        lines.append(f"{r['status']:<9}{entry_id}: {r['details'][0] if r['details'] else ''}")
        lines += [f"{'':<11}{d}" for d in r["details"][1:]]
    bad = sum(r["status"] != OK for r in result["entries"].values())
    lines.append(f"{result['checked']} entries checked, {bad} with problems" if bad else
                 f"{result['checked']} entries checked, all OK")
    return "\n".join(lines)


def run(config: VerifyConfig) -> dict[str, Any]:
    return verify(config)
