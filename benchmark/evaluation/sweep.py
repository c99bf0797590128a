"""`python -m benchmark sweep`: many evaluations (policies x protocols x profiles x condition sets),
one after another in this process or as Ray tasks on a cluster, and an index of what ran where.

One evaluation (one policy, protocol, profile and condition set) is the unit of distribution: it
is one `evaluate()` call (benchmark/evaluation/evaluate.py) into its own results folder,

    <out>/<protocol>/<profile>/<name>/<conditions>    conditions: 'all', or the set's names joined by '+'

run whole by one job of the backend (benchmark/evaluation/backends.py; on Ray, a task with as
many CPUs as the evaluation has workers). Records and results are those of `python -m benchmark
evaluate` with the same options, wherever the job runs: the same code on the same episodes, with
the same worker count and group size (the only settings that fix the batches). The drift
references (the teacher's records, and under a version-2 protocol straight-ahead's) are evaluated
first, where missing, under results/ as `evaluate` keeps them, so that no two jobs evaluate the
same reference at once.

An evaluation that is complete in its folder is skipped; an interrupted one resumes with its
missing groups (`evaluate`'s resume). `<out>/index.csv` lists every evaluation of the sweep: its
folder, status (done, skipped, failed, or pending while the sweep runs), the host that ran it, its
seconds and the headline numbers (benchmark/evaluation/results.py `headline`); it is rewritten as
each job ends.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from benchmark.common.config import require
from benchmark.common.files import write_text_atomic

from .backends import Job, connect
from .evaluate import RESULTS_ROOT, EvaluateConfig, default_out, evaluate, finished_results, policy_spec
from .protocol import DEFAULT_PROTOCOL, ProtocolError, load_protocol
from .records import read_records
from .results import Results, headline

INDEX_NAME = "index.csv"
HEADLINE = ("episodes", "invalid", "nominal_survival", "nominal_mean_abs_offset_m", "nominal_autonomy_pct",
            "disturbed_crashes", "disturbed_route_completion")
COLUMNS = ("role", "name", "policy", "protocol", "profile", "conditions", "out", "status", "host", "seconds",
           *HEADLINE, "error")


class SweepError(RuntimeError):
    """The sweep cannot be planned (a policy, protocol, profile or condition that does not exist), or some
    of its evaluations failed (the index says which and why)."""


@dataclass(frozen=True)
class SweepConfig:
    """Evaluate many policies on protocols, profiles and condition sets, locally or on a Ray cluster; one results
    folder per evaluation and an index of what ran where."""

    models: tuple[str, ...] = ("teacher", "straight")
    """Policies: 'teacher', 'straight', a synthetic reference, a model directory or an .onnx file; NAME=POLICY
    gives one a name (default: as `evaluate` derives it)."""
    conditions: tuple[str, ...] = ()
    """Condition sets, one evaluation each: a condition ('nominal') or several joined by '+' ('nominal+perturbed')
    (default: one set, every condition of the profile)."""
    protocols: tuple[str, ...] = (DEFAULT_PROTOCOL,)
    """Protocol names (benchmark/evaluation/protocols/<name>.yaml) or paths."""
    profiles: tuple[str, ...] = ("quick",)
    """Protocol profiles."""
    out: Path = Path("results/sweep")
    """Root of the results folders (<out>/<protocol>/<profile>/<name>/<conditions>) and of index.csv."""
    backend: Literal["local", "ray"] = "local"
    """Where the evaluations run: local (this process, one after another) or ray (Ray tasks; needs the optional
    extra requirements-ray.txt)."""
    address: str = ""
    """Ray cluster to use, its head node's HOST:PORT (or 'auto'); empty: start a local Ray cluster on this machine.
    A multi-node cluster needs --out and results/ on a file system every node shares, at the same path."""
    workers: int = 2
    """Worker processes of each evaluation (the CPUs of its Ray task)."""
    group_size: int = 8
    """Most episodes stepped in lockstep in one group."""
    drift_reference: bool = True
    """Compare with the teacher's records for the drift metric (evaluated first under results/ where missing)."""
    memory_limit_mb: int = 0
    """Address-space limit of each worker process (0: none)."""
    time_limit_s: float = 0.0
    """Wall-clock limit of each evaluation (0: none)."""
    resume: bool = True
    """Skip the evaluations that are complete and resume interrupted ones (--no-resume: evaluate all afresh)."""
    progress: bool = True
    """Show a progress bar (one step per evaluation)."""

    def __post_init__(self) -> None:
        require(self.workers >= 1, f"workers must be at least 1, not {self.workers}")
        require(bool(self.models), "give at least one policy (--models)")
        require(not self.address or self.backend == "ray", "--address names a Ray cluster: it needs --backend ray")


@dataclass(frozen=True)
class Planned:
    """One evaluation of the sweep (role 'evaluation'), or a drift reference it needs first (role 'reference')."""

    role: str
    policy: str
    name: str
    protocol: str
    protocol_name: str
    profile: str
    conditions: tuple[str, ...]
    out: Path
    config: EvaluateConfig = field(repr=False)

    @property
    def label(self) -> str:
        return "+".join(self.conditions) or "all"


def _split_model(item: str) -> tuple[str, str]:
    """'NAME=POLICY' -> (NAME, POLICY); a policy alone (also a path that holds '=') -> ('', policy)."""
    name, sep, policy = item.partition("=")
    if sep and name and policy and not Path(item).exists():
        return name, policy
    return "", item


def plan(config: SweepConfig) -> list[Planned]:
    """Every evaluation of the sweep, in order: protocols, profiles, policies, condition sets."""
    planned: list[Planned] = []
    specs = []
    for item in config.models:
        name, policy = _split_model(item)
        try:
            specs.append((policy, policy_spec(policy, name).name))
        except (FileNotFoundError, ValueError) as exc:
            raise SweepError(str(exc)) from None
    sets = [tuple(c for c in s.split("+") if c) for s in config.conditions] or [()]
    for protocol_ref in dict.fromkeys(config.protocols):
        try:
            protocol = load_protocol(protocol_ref)
        except ProtocolError as exc:
            raise SweepError(str(exc)) from None
        for profile in dict.fromkeys(config.profiles):
            for conditions in dict.fromkeys(sets):
                try:
                    profile_conditions = {e.condition for e in protocol.episodes(profile, list(conditions) or None)}
                except ProtocolError as exc:
                    raise SweepError(str(exc)) from None
                missing = [c for c in conditions if c not in profile_conditions]
                if missing:
                    raise SweepError(f"condition {missing[0]!r} has no episodes in {protocol.name}'s {profile} profile "
                                     f"(its conditions: {', '.join(sorted(profile_conditions))})")
            for policy, name in specs:
                for conditions in dict.fromkeys(sets):
                    out = Path(config.out) / protocol.name / profile / name / ("+".join(conditions) or "all")
                    evaluation = EvaluateConfig(
                        policy=policy, name=name, protocol=protocol_ref, profile=profile,  # type: ignore[arg-type]
                        conditions=conditions, out=out, workers=config.workers, group_size=config.group_size,
                        resume=config.resume, drift_reference=config.drift_reference,
                        memory_limit_mb=config.memory_limit_mb, time_limit_s=config.time_limit_s, progress=False)
                    planned.append(Planned("evaluation", policy, name, protocol_ref, protocol.name, profile,
                                           conditions, out, evaluation))
    folders = [p.out for p in planned]
    if len(set(folders)) < len(folders):
        twice = next(f for f in folders if folders.count(f) > 1)
        raise SweepError(f"two evaluations of the sweep would share the folder {twice}: give the policies distinct "
                         "names (NAME=POLICY)")
    return planned


def references(planned: list[Planned], config: SweepConfig) -> list[list[Planned]]:
    """The drift references that the evaluations need and that are missing, in stages that run one after the
    other: the teacher's, then (version-2 protocols) straight-ahead's, whose own evaluation needs the teacher's."""
    if not config.drift_reference:
        return []
    stages: list[dict[tuple[str, str], Planned]] = [{}, {}]
    checked: set[tuple[str, str, str]] = set()
    for p in planned:
        kind = policy_spec(p.policy, p.name).kind
        if kind == "teacher":
            continue
        version = load_protocol(p.protocol).version
        for stage, ref in enumerate(["teacher"] + (["straight"] if version >= 2 and kind != "straight" else [])):
            key = (p.protocol_name, p.profile)
            if (ref, *key) in checked:
                continue
            checked.add((ref, *key))
            if reference_missing(ref, p.protocol, p.profile):
                stages[stage][key] = Planned("reference", ref, ref, p.protocol, p.protocol_name, p.profile, (),
                                             default_out(p.protocol_name, p.profile, ref),
                                             replace(p.config, policy=ref, name="", conditions=(), out=None))
    return [list(s.values()) for s in stages if s]


def reference_missing(kind: str, protocol_ref: str, profile: str) -> bool:
    """Whether results/<protocol>/<profile>/<kind> lacks any episode of the profile (evaluate() then
    evaluates it there the first time it needs it)."""
    protocol = load_protocol(protocol_ref)
    keys: set[str] = set()
    read_records(default_out(protocol.name, profile, kind) / "records.jsonl", keep=lambda k: keys.add(k) or False)
    return not {str(e.key) for e in protocol.episodes(profile, teacher=kind == "teacher")} <= keys


def reference_job(kind: str, protocol_ref: str, profile: str, workers: int, group_size: int) -> dict[str, Any]:
    """A job: the teacher's (or straight-ahead's) reference records of a profile, evaluated as evaluate() does the
    first time it needs them (benchmark/evaluation/evaluate.py `reference_records`); its headline numbers."""
    from .evaluate import reference_records

    protocol = load_protocol(protocol_ref)
    conditions = sorted({e.condition for e in protocol.episodes(profile)})
    reference_records(kind, protocol_ref, profile, EvaluateConfig(workers=workers, group_size=group_size,
                                                                  progress=False), conditions)
    return _headline(finished_results(EvaluateConfig(policy=kind, protocol=protocol_ref, profile=profile)))


def evaluation_job(config: EvaluateConfig) -> dict[str, Any]:
    """A job: one whole evaluation; its headline numbers."""
    return _headline(evaluate(config))


def _headline(results: Results | None) -> dict[str, Any]:
    return {} if results is None else headline(results)


def _job(p: Planned) -> Job:
    c = p.config
    if p.role == "reference":
        return Job(reference_job, (p.policy, p.protocol, p.profile, c.workers, c.group_size), c.workers,
                   f"reference {p.name} {p.protocol_name}/{p.profile}")
    return Job(evaluation_job, (c,), c.workers, f"evaluate {p.name} {p.protocol_name}/{p.profile}/{p.label}")


# ------------------------------------------------------------------------------------------------
# The index
# ------------------------------------------------------------------------------------------------


def _row(p: Planned, status: str, host: str = "", seconds: float | None = None, numbers: dict | None = None,
         error: str = "") -> dict[str, Any]:
    numbers = numbers or {}
    return {"role": p.role, "name": p.name, "policy": p.policy, "protocol": p.protocol_name, "profile": p.profile,
            "conditions": p.label, "out": str(p.out), "status": status, "host": host,
            "seconds": "" if seconds is None else f"{seconds:.1f}",
            **{k: "" if numbers.get(k) is None else numbers[k] for k in HEADLINE}, "error": error}


def read_index(path: Path) -> list[dict[str, str]]:
    """The rows of an index.csv (none when it is missing)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        return []


def _write_index(path: Path, rows: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


# ------------------------------------------------------------------------------------------------
# The command
# ------------------------------------------------------------------------------------------------


def sweep(config: SweepConfig) -> dict[str, Any]:
    """Run the sweep (see the module's docstring); returns a summary, raises SweepError when any evaluation failed."""
    start = time.monotonic()
    evaluations = plan(config)
    stages = references(evaluations, config)
    index = Path(config.out) / INDEX_NAME
    earlier = {r["out"]: r for r in read_index(index) if r.get("status") in ("done", "skipped")}
    rows: dict[Path, dict[str, Any]] = {p.out: _row(p, "pending") for stage in stages for p in stage}
    todo: list[Planned] = []
    for p in evaluations:
        results = finished_results(p.config) if config.resume else None
        if results is None:
            rows[p.out] = _row(p, "pending")
            todo.append(p)
        else:  # done before: keep where and how long it ran then
            before = earlier.get(str(p.out), {})
            seconds = float(before["seconds"]) if before.get("seconds") else None
            rows[p.out] = _row(p, "skipped", before.get("host", ""), seconds, headline(results))
    Path(config.out).mkdir(parents=True, exist_ok=True)
    _write_index(index, list(rows.values()))
    shared = [Path(config.out)] + ([RESULTS_ROOT] if config.drift_reference else [])
    failed: list[str] = []
    bar = tqdm(total=len(evaluations) + sum(len(s) for s in stages), initial=len(evaluations) - len(todo),
               desc=f"sweep ({config.backend})", unit="evaluation", disable=not config.progress, dynamic_ncols=True)
    try:
        if stages or todo:
            with connect(config.backend, config.address, shared) as runner:
                for stage in [*stages, todo]:
                    jobs = {id(job): (job, p) for p in stage for job in [_job(p)]}
                    for outcome in runner.run([job for job, _ in jobs.values()]):
                        p = jobs[id(outcome.job)][1]
                        if outcome.ok:
                            rows[p.out] = _row(p, "done", outcome.host, outcome.seconds, outcome.value)
                        else:
                            rows[p.out] = _row(p, "failed", outcome.host, outcome.seconds, error=outcome.error or "")
                            failed.append(f"{p.out}: {outcome.error}")
                        _write_index(index, list(rows.values()))
                        bar.update(1)
                        bar.set_postfix_str(f"{p.name} {p.label}: {rows[p.out]['status']}", refresh=True)
                    if failed:  # a missing reference would be evaluated by every job that needs it, all at once
                        break
    finally:
        bar.close()
    statuses = [r["status"] for r in rows.values() if r["role"] == "evaluation"]
    summary = {"index": str(index), "backend": config.backend, "evaluations": len(evaluations),
               "done": statuses.count("done"), "skipped": statuses.count("skipped"), "failed": len(failed),
               "references": [r["out"] for r in rows.values() if r["role"] == "reference"],
               "seconds": round(time.monotonic() - start, 1)}
    if failed:
        pending = sum(r["status"] == "pending" for r in rows.values())
        raise SweepError(f"{len(failed)} evaluation(s) failed" + (f", {pending} not run" if pending else "")
                         + f" (see {index}): " + "; ".join(failed[:5]))
    return summary


def run(config: SweepConfig) -> dict[str, Any]:
    return sweep(config)
