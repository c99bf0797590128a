"""`python -m benchmark evaluate`: a policy on the versioned protocol -> records and results.

The protocol's episodes are split into groups (one track, condition and mode; at most
`group_size` episodes) that run in lockstep in worker processes, one per core, a track's groups
one after the other in one task (`bundles_of`: its map texture is drawn once). `evaluate_many` runs
several evaluations on one pool, a track's groups of every policy in one task. Each finished
group's records are appended to `records.jsonl` (one line per episode, fsync'ed) as soon as its
task ends, so a killed run loses at most the tasks in flight; a rerun resumes with the groups that
are missing. Groups are the unit of resumption because batched inference is only bit-identical
for the same batch composition: resuming whole groups keeps the final results identical.

`results.json` holds the metrics (benchmark/evaluation/results.py) with the schema and protocol
versions, the git commit, package versions, hardware, and the policy's sha256. Failures that stop
an evaluation are typed (EvaluationTimeout, WorkerDied, WorkerOutOfMemory), so callers map them to
messages by type, never by text.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from benchmark.common.files import LockedError, exclusive_lock, sha256_file, write_json_atomic
from benchmark.common.limits import limit_memory
from benchmark.common.provenance import git_sha, hardware, package_versions
from benchmark.rollout.policies import BUILTIN_KINDS, PolicySpec

from .protocol import DEFAULT_PROTOCOL, EvalEpisode, Protocol, load_protocol
from .records import EpisodeRecord, RecordsMeta, RecordsRead, append_records, read_records, write_records
from .results import SCHEMA_VERSION, SCHEMA_VERSION_V2, PolicyRef, ProtocolRef, Results

RESULTS_ROOT = Path("results")


class EvaluationError(RuntimeError):
    """The evaluation could not complete."""


class EvaluationTimeout(EvaluationError):
    """The evaluation ran past its wall-clock limit."""

    def __init__(self, limit_s: float):
        super().__init__(f"the evaluation exceeded its time limit of {limit_s:.0f} s")
        self.limit_s = limit_s


class WorkerDied(EvaluationError):
    """A worker process died (a crash of the runtime, or killed for memory by the system)."""


class WorkerOutOfMemory(EvaluationError):
    """A worker raised MemoryError (its address-space limit)."""


class RecordsMismatch(EvaluationError):
    """The results folder holds records of another policy, protocol or condition set."""


class FolderInUse(EvaluationError):
    """Another evaluation is writing to the same results folder."""


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluate a policy on the versioned protocol: per-episode records and a results JSON."""

    policy: str = "teacher"
    """'teacher', 'straight', a synthetic reference ('noisy-teacher', 'drifting-teacher'), a model directory
    (config.json + model.safetensors) or an .onnx file."""
    name: str = ""
    """Name of the results (default: derived from the policy)."""
    protocol: str = DEFAULT_PROTOCOL
    """Protocol name (benchmark/protocols/<name>.yaml) or path."""
    profile: Literal["quick", "full"] = "quick"
    """Protocol profile: quick (make bench) or full (leaderboard)."""
    conditions: tuple[str, ...] = ()
    """Only these conditions (default: all of the profile)."""
    out: Path | None = None
    """Results directory (default: results/<protocol>/<profile>/<name>)."""
    workers: int = 2
    """Worker processes (episodes groups run in parallel, one torch thread each)."""
    group_size: int = 8
    """Most episodes stepped in lockstep in one group."""
    resume: bool = True
    """Keep the finished groups of an earlier, interrupted run."""
    drift_reference: bool = True
    """Compare with the teacher's records for the drift metric (evaluating the teacher if needed)."""
    memory_limit_mb: int = 0
    """Address-space limit of each worker process (0: none)."""
    time_limit_s: float = 0.0
    """Wall-clock limit of the whole evaluation (0: none)."""
    progress: bool = True
    """Show a progress bar."""


def policy_spec(policy: str, name: str = "") -> PolicySpec:
    """Turn the `policy` argument into a PolicySpec (benchmark.rollout.policies.make_policy), with its sha256."""
    if policy in BUILTIN_KINDS:
        return PolicySpec(kind=policy, name=name or policy)
    path = Path(policy)
    if path.is_dir():
        if (path / "model").is_dir():  # a zoo entry or a training run directory
            path = path / "model"
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{policy}: not a model directory (no config.json) and not an .onnx file")
        label = name or (path.parent.name if path.name == "model" else path.name)
        return PolicySpec(kind="torch", name=label, path=str(path), sha256=sha256_file(path / "model.safetensors"))
    if path.suffix == ".onnx":
        if not path.is_file():
            raise FileNotFoundError(f"{policy}: no such ONNX file")
        return PolicySpec(kind="onnx", name=name or path.stem, path=str(path), sha256=sha256_file(path))
    raise ValueError(f"unknown policy {policy!r}: use {', '.join(BUILTIN_KINDS)}, a model directory or an .onnx file")


def _exit_with_parent(parent: int, period_s: float = 1.0) -> None:
    """A killed evaluation (SIGTERM, SIGKILL) must not leave its workers running on: exit once the
    parent is gone (this process is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(period_s)
    os._exit(1)


def _worker_init(memory_limit_mb: int, parent: int) -> None:
    import threading

    import torch

    # `parent` comes from the parent: read here, it may already be init's pid if the parent died early
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    limit_memory(memory_limit_mb)


_POLICY_CACHE: dict[PolicySpec, object] = {}


def _run_group(spec: PolicySpec, episodes: list[EvalEpisode], threshold: float, hz: float) -> list[EpisodeRecord]:
    from benchmark.rollout.policies import make_policy

    from .rollouts import run_episodes

    if spec not in _POLICY_CACHE:
        # A worker outlives one evaluation (the pool is reused): it holds the current policy only,
        # so earlier ones do not count against its memory limit.
        _POLICY_CACHE.clear()
        _POLICY_CACHE[spec] = make_policy(spec)
    return run_episodes(_POLICY_CACHE[spec], episodes, intervention_threshold_m=threshold, policy_hz=hz)


@dataclass
class _SharedPool:
    pool: cf.ProcessPoolExecutor
    key: tuple[int, int]
    """(workers, memory_limit_mb): a pool serves only evaluations with the same of both."""
    owner: int
    """The pid that started it (a forked child must not use its parent's pool)."""
    busy: bool = False


_SHARED: _SharedPool | None = None
_SHARED_LOCK = threading.Lock()


def _new_pool(workers: int, memory_limit_mb: int) -> cf.ProcessPoolExecutor:
    # spawn workers start on demand (one per submitted task while none is idle), up to `workers`
    return cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                                  initargs=(memory_limit_mb, os.getpid()))


def _kill(pool: cf.ProcessPoolExecutor) -> None:
    for p in list((getattr(pool, "_processes", None) or {}).values()):
        p.kill()  # a hung or runaway worker must not outlive the evaluation
    pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _pool(workers: int, memory_limit_mb: int):
    """A pool of `workers` spawn workers with the memory limit: the process's shared one when it
    is free and was started for the same workers and limit (its workers have imported torch and
    built their tracks already), a new one otherwise. After a failure of any kind (a worker died,
    ran out of memory, the time limit, an interrupt) the pool is killed, never reused."""
    global _SHARED
    key = (workers, memory_limit_mb)
    with _SHARED_LOCK:
        shared = _SHARED
        if shared is not None and shared.owner != os.getpid():
            shared = _SHARED = None  # inherited through fork: the workers are the parent's
        if shared is not None and not shared.busy and (shared.key != key or getattr(shared.pool, "_broken", False)):
            shared.pool.shutdown(wait=False, cancel_futures=True)
            shared = _SHARED = None
        if shared is None:
            shared = _SHARED = _SharedPool(_new_pool(workers, memory_limit_mb), key, os.getpid())
        elif shared.busy:  # another thread's evaluation holds it: a private pool, shut down after
            shared = _SharedPool(_new_pool(workers, memory_limit_mb), key, os.getpid())
        shared.busy = True
    try:
        yield shared.pool
    except BaseException:
        _kill(shared.pool)
        with _SHARED_LOCK:
            if _SHARED is shared:
                _SHARED = None
        raise
    with _SHARED_LOCK:
        shared.busy = False
        if _SHARED is not shared:
            shared.pool.shutdown(wait=True)


def shutdown_pool() -> None:
    """Stop the process's shared worker pool, if any (the next evaluation starts a new one); the
    pool also ends with the process."""
    global _SHARED
    with _SHARED_LOCK:
        shared, _SHARED = _SHARED, None
    if shared is not None and shared.owner == os.getpid():
        shared.pool.shutdown(wait=not shared.busy, cancel_futures=True)


# at exit, while the modules are still there (the pool's finaliser needs them)
atexit.register(shutdown_pool)


def groups_of(episodes: list[EvalEpisode], size: int) -> list[list[EvalEpisode]]:
    by_group: dict[str, list[EvalEpisode]] = {}
    for ep in episodes:
        by_group.setdefault(ep.group, []).append(ep)
    out = []
    for eps in by_group.values():
        out += [eps[i: i + size] for i in range(0, len(eps), size)]
    return out


def default_out(protocol: str, profile: str, name: str) -> Path:
    return RESULTS_ROOT / protocol / profile / name


_Item = tuple[int, PolicySpec, list[EvalEpisode], float, float]
"""One group of a task: (the evaluation it belongs to, policy, episodes, intervention threshold, policy Hz)."""


def _run_items(items: list[_Item]) -> list[tuple[int, list[EpisodeRecord]]]:
    """Groups of one track, one after the other in one worker: its map texture is drawn once."""
    return [(tag, _run_group(spec, g, threshold, hz)) for tag, spec, g, threshold, hz in items]


LAST_TRACKS_PER_WORKER = 2
"""The tracks that come last, this many per worker, go out in small tasks so that the workers finish together."""


def bundles_of(groups: list[list[EvalEpisode]], workers: int) -> list[list[list[EvalEpisode]]]:
    """The groups as the workers' tasks: consecutive groups of one track together (the track's map, drawn
    by the first, is cached for the rest; with one episode per track and condition, as in v2, a task per
    group drew every map once per condition and mode), at most a quarter of the groups per worker's
    share in one task, so that the workers stay busy to the end; the groups of the last tracks, 2 per
    worker, go out one at a time, so that the workers finish together (one full-profile track's groups
    take a worker about 40 s). Results do not depend on the tasks."""
    most = max(1, len(groups) // (4 * max(1, workers)))
    by_track: dict[tuple, list[list[EvalEpisode]]] = {}
    for g in groups:
        by_track.setdefault((g[0].track, g[0].track_seed), []).append(g)
    tracks = list(by_track.values())
    split = max(0, len(tracks) - LAST_TRACKS_PER_WORKER * max(1, workers))
    return [gs[i: i + most] for gs in tracks[:split] for i in range(0, len(gs), most)] + \
        [[g] for gs in tracks[split:] for g in gs]


def _run_groups(todo: list[list[EvalEpisode]], spec: PolicySpec, protocol, config: EvaluateConfig,
                on_done: Callable[[list[EpisodeRecord]], None]) -> None:
    """Run the groups in worker processes, bundled by track (`bundles_of`); each finished group goes
    to `on_done` as its bundle ends."""
    threshold, hz = protocol.intervention_threshold_m, protocol.policy_hz
    tasks = [[(0, spec, g, threshold, hz) for g in b] for b in bundles_of(todo, max(1, config.workers))]
    _run_tasks(tasks, config, lambda _tag, records: on_done(records))


def _run_tasks(tasks: list[list[_Item]], config: EvaluateConfig, on_done: Callable[[int, list[EpisodeRecord]], None]
               ) -> None:
    """Run the tasks in the pool of config's workers (its memory and time limits); each finished group
    goes to `on_done(tag, records)` as its task ends."""
    start = time.monotonic()
    with _pool(max(1, config.workers), config.memory_limit_mb) as pool:
        futures = {pool.submit(_run_items, task): task for task in tasks}
        pending = set(futures)
        while pending:
            timeout = None
            if config.time_limit_s:
                timeout = config.time_limit_s - (time.monotonic() - start)
                if timeout <= 0:
                    raise EvaluationTimeout(config.time_limit_s)
            finished, pending = cf.wait(pending, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                group = futures[fut][0][2][0].group
                try:
                    results = fut.result()
                except cf.process.BrokenProcessPool as exc:
                    raise WorkerDied(f"a worker process died (crash or out of memory) while evaluating {group}") \
                        from exc
                except MemoryError as exc:
                    raise WorkerOutOfMemory(f"a worker ran out of memory evaluating {group}") from exc
                for tag, records in results:
                    on_done(tag, records)


def evaluate(config: EvaluateConfig, on_group: Callable[[list[EpisodeRecord]], None] | None = None) -> Results:
    """Run (or resume) the evaluation and return the Results (also written to results.json).

    One evaluation at a time writes a results folder: a second one into the same folder fails at
    once with EvaluationError (the lock is the folder's `.lock`, released when the process ends)."""
    with _folder(config) as (protocol, spec, out):
        return _evaluate(config, protocol, spec, out, on_group)


@contextlib.contextmanager
def _folder(config: EvaluateConfig):
    """(protocol, policy spec, results folder) of an evaluation, the folder locked for the block;
    FolderInUse when another evaluation holds it."""
    protocol = load_protocol(config.protocol)
    spec = policy_spec(config.policy, config.name)
    out = Path(config.out) if config.out else default_out(protocol.name, config.profile, spec.name)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(exclusive_lock(out / ".lock", wait=False, what=f"the results folder {out}"))
        except LockedError as exc:
            raise FolderInUse(str(exc)) from None
        yield protocol, spec, out


@dataclass
class _Pending:
    """An evaluation between its start (records read, resumable groups kept) and its results."""

    config: EvaluateConfig
    protocol: Protocol
    spec: PolicySpec
    out: Path
    episodes: list[EvalEpisode]
    records: list[EpisodeRecord]
    todo: list[list[EvalEpisode]]
    """The groups still to run."""

    def done(self, group_records: list[EpisodeRecord]) -> None:
        append_records(self.out / "records.jsonl", group_records)
        self.records.extend(group_records)

    def results(self) -> Results:
        return _results(self.config, self.protocol, self.spec, self.out, self.episodes, self.records)


def _start(config: EvaluateConfig, protocol: Protocol, spec: PolicySpec, out: Path) -> _Pending:
    """Read the folder's records (resume) and keep the complete groups; what is left to run."""
    episodes = protocol.episodes(config.profile, list(config.conditions) or None, teacher=spec.kind == "teacher")
    conditions = sorted({e.condition for e in episodes})
    meta = _meta(protocol, config.profile, spec, conditions)
    records_path = out / "records.jsonl"
    old = read_records(records_path) if config.resume else RecordsRead(None, [], [])
    for problem in old.dropped:
        print(f"resume: {problem}", file=sys.stderr)
    if old.meta is not None and old.meta != meta.to_json():
        raise RecordsMismatch(f"{records_path} holds records of another policy, protocol or condition set; "
                              "pass --no-resume or choose another --out")
    groups = groups_of(episodes, config.group_size)
    wanted = {str(e.key) for e in episodes}
    done_keys = {r.key for r in old.records if r.key in wanted}
    complete = [g for g in groups if all(str(e.key) in done_keys for e in g)]
    keep = {str(e.key) for g in complete for e in g}
    records = [r for r in old.records if r.key in keep]
    # Rewrite the records with the complete groups only (atomic), then append as groups finish.
    write_records(records_path, meta, records)
    todo = [g for g in groups if not all(str(e.key) in keep for e in g)]
    return _Pending(config, protocol, spec, out, episodes, records, todo)


def _evaluate(config: EvaluateConfig, protocol, spec: PolicySpec, out: Path,
              on_group: Callable[[list[EpisodeRecord]], None] | None) -> Results:
    run = _start(config, protocol, spec, out)
    bar = tqdm(total=len(run.episodes), initial=len(run.records), desc=f"evaluate {spec.name} ({config.profile})",
               unit="episode", disable=not config.progress, dynamic_ncols=True)

    def done(group_records: list[EpisodeRecord]) -> None:
        run.done(group_records)
        bar.update(len(group_records))
        if on_group:
            on_group(group_records)

    if run.todo:
        _run_groups(run.todo, spec, protocol, config, done)
    bar.close()
    return run.results()


def evaluate_many(configs: Sequence[EvaluateConfig]) -> list[Results]:
    """Several evaluations at once, on one pool of workers (the first config's workers, memory and time
    limits, progress): a track's groups of every policy go out as one task, so its map texture is drawn
    once for all of them, and no worker idles between one policy's last groups and the next policy's
    first. Each evaluation's folder, records, resume and results are those of `evaluate(config)` alone
    (the groups, and so the batches, are the same). Every rollout ends before the first results are
    computed, so a drift reference (the teacher, straight-ahead) evaluated in the same call is complete
    when the others' results read it. The configs must agree on workers and memory limit (one pool)."""
    configs = list(configs)
    if not configs:
        return []
    first = configs[0]
    if len({(c.workers, c.memory_limit_mb) for c in configs}) > 1:
        raise ValueError("evaluate_many: every evaluation runs on one pool, so all need the same workers and "
                         "memory_limit_mb")
    with contextlib.ExitStack() as stack:
        runs = []
        for config in configs:
            protocol, spec, out = stack.enter_context(_folder(config))
            runs.append(_start(config, protocol, spec, out))
        total = sum(len(r.episodes) for r in runs)
        bar = tqdm(total=total, initial=sum(len(r.records) for r in runs), unit="episode", dynamic_ncols=True,
                   desc=f"evaluate {len(runs)} policies ({', '.join(sorted({c.profile for c in configs}))})",
                   disable=not first.progress)

        def done(tag: int, group_records: list[EpisodeRecord]) -> None:
            runs[tag].done(group_records)
            bar.update(len(group_records))

        tasks = shared_tasks(runs, max(1, first.workers))
        if tasks:
            _run_tasks(tasks, first, done)
        bar.close()
        return [run.results() for run in runs]


def shared_tasks(runs: Sequence[_Pending], workers: int) -> list[list[_Item]]:
    """The groups of several evaluations as the workers' tasks: a track's groups of every evaluation
    in one task (the map drawn once; one evaluation's groups after the other, so a worker loads each
    policy once per task), except the tracks that come last, 2 per worker, whose groups go out one
    evaluation at a time, so that the workers finish together. Results do not depend on the tasks."""
    by_track: dict[tuple, list[_Item]] = {}
    for tag, run in enumerate(runs):
        threshold, hz = run.protocol.intervention_threshold_m, run.protocol.policy_hz
        for g in run.todo:
            by_track.setdefault((g[0].track, g[0].track_seed), []).append((tag, run.spec, g, threshold, hz))
    tracks = list(by_track.values())
    split = max(0, len(tracks) - LAST_TRACKS_PER_WORKER * max(1, workers))
    tasks = tracks[:split]
    for items in tracks[split:]:
        for tag in dict.fromkeys(item[0] for item in items):
            tasks.append([item for item in items if item[0] == tag])
    return tasks


def _results(config: EvaluateConfig, protocol, spec: PolicySpec, out: Path, episodes: list[EvalEpisode],
             records: list[EpisodeRecord]) -> Results:
    """The Results of a finished set of records (the drift against the teacher's), written to results.json."""
    from .results import compute_results

    conditions = sorted({e.condition for e in episodes})
    records_path = out / "records.jsonl"
    teacher = straight = None
    if config.drift_reference and spec.kind != "teacher":
        teacher = reference_records("teacher", config.protocol, config.profile, config, conditions)
    if config.drift_reference and protocol.version >= 2 and spec.kind != "teacher":
        straight = records if spec.kind == "straight" else reference_records(
            "straight", config.protocol, config.profile, config, conditions)
    order = {str(e.key): i for i, e in enumerate(episodes)}
    records.sort(key=lambda r: order[r.key])
    results = Results(
        schema_version=SCHEMA_VERSION if protocol.version < 2 else SCHEMA_VERSION_V2,
        protocol=ProtocolRef(protocol.name, protocol.sha256, config.profile, protocol.horizons(config.profile)),
        policy=PolicyRef(**spec.ref()), git_sha=git_sha(), packages=package_versions(), hardware=hardware(),
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        records=records_path.name,  # beside results.json
        metrics=compute_results(records, protocol, config.profile, teacher, straight))
    write_json_atomic(out / "results.json", results.to_json())
    return results


def results_from_records(config: EvaluateConfig) -> Results:
    """The Results of an evaluation whose records were written elsewhere (the leaderboard's sandbox):
    records.jsonl in config.out is read through the validating reader, must belong to this policy
    and protocol and hold every episode, and the metrics are computed here."""
    protocol = load_protocol(config.protocol)
    spec = policy_spec(config.policy, config.name)
    out = Path(config.out)
    episodes = protocol.episodes(config.profile, list(config.conditions) or None, teacher=spec.kind == "teacher")
    conditions = sorted({e.condition for e in episodes})
    meta = _meta(protocol, config.profile, spec, conditions)
    read = read_records(out / "records.jsonl")
    if read.meta != meta.to_json():
        raise RecordsMismatch(f"{out / 'records.jsonl'} does not hold the records of this evaluation")
    wanted = {str(e.key) for e in episodes}
    records = [r for r in read.records if r.key in wanted]
    missing = len(wanted - {r.key for r in records})
    if missing or read.dropped:
        problems = "; ".join(read.dropped[:3])
        raise EvaluationError(f"the evaluation's records are incomplete ({missing} of {len(wanted)} episodes "
                              f"missing{'; ' + problems if problems else ''})")
    return _results(config, protocol, spec, out, episodes, records)


def finished_results(config: EvaluateConfig) -> Results | None:
    """The Results of an evaluation that is complete in its folder (records.jsonl of this policy,
    protocol and conditions with every episode, and results.json), else None: what a sweep skips."""
    protocol = load_protocol(config.protocol)
    spec = policy_spec(config.policy, config.name)
    out = Path(config.out) if config.out else default_out(protocol.name, config.profile, spec.name)
    episodes = protocol.episodes(config.profile, list(config.conditions) or None, teacher=spec.kind == "teacher")
    meta = _meta(protocol, config.profile, spec, sorted({e.condition for e in episodes}))
    keys: set[str] = set()
    read = read_records(out / "records.jsonl", keep=lambda key: keys.add(key) or False)  # keys only, no parsing
    if read.meta != meta.to_json() or not {str(e.key) for e in episodes} <= keys:
        return None
    try:
        results = Results.from_json(json.loads((out / "results.json").read_text()), str(out / "results.json"))
    except (OSError, ValueError):
        return None
    if (results.protocol.sha256, results.protocol.profile) != (protocol.sha256, config.profile) or \
            results.policy != PolicyRef(**spec.ref()):
        return None
    return results


def reference_records(kind: str, protocol_ref: str, profile: str, config: EvaluateConfig,
                      conditions: list[str]) -> list[EpisodeRecord]:
    """The teacher's (or straight-ahead's) records on the same protocol episodes, from its results
    folder; it is evaluated there first, on the whole profile, when any of them is missing, so the
    reference of a protocol is computed once and shared by every policy. `protocol_ref` is a
    protocol name or path."""
    protocol = load_protocol(protocol_ref)
    path = default_out(protocol.name, profile, kind) / "records.jsonl"
    meta, records = (read := read_records(path)).meta, read.records
    needed = {str(e.key) for e in protocol.episodes(profile, conditions, teacher=kind == "teacher")}
    if not needed <= {r.key for r in records}:
        everything = sorted({e.condition for e in protocol.episodes(profile)})
        # straight-ahead's own results pair it with the teacher (the teacher needs no reference)
        evaluate(EvaluateConfig(policy=kind, protocol=protocol_ref, profile=profile, workers=config.workers,
                                group_size=config.group_size, progress=config.progress,
                                drift_reference=kind == "straight",
                                resume=meta is None or meta.get("conditions") == everything))
        records = read_records(path).records
    return [r for r in records if r.key in needed]


def share_reference(kind: str, protocol_ref: str, profile: str, records: list[EpisodeRecord]) -> bool:
    """Make the records of a reference policy evaluated elsewhere (the leaderboard's work folder) the
    protocol's shared reference, so that `reference_records` does not evaluate it a second time.

    A reference policy's records do not depend on its run's name (it acts on the state, with no
    rng of its own), so they are the reference's own. Only whole profiles are shared, and an existing
    complete reference is left alone. Returns whether the reference folder was written."""
    protocol = load_protocol(protocol_ref)
    episodes = protocol.episodes(profile, teacher=kind == "teacher")
    path = default_out(protocol.name, profile, kind) / "records.jsonl"
    needed = {str(e.key) for e in episodes}
    if not needed <= {r.key for r in records}:
        return False
    order = {str(e.key): i for i, e in enumerate(episodes)}
    keep = sorted((r for r in records if r.key in needed), key=lambda r: order[r.key])
    meta = _meta(protocol, profile, policy_spec(kind), sorted({e.condition for e in episodes}))
    try:  # an evaluation running in that folder now is left to finish it
        with exclusive_lock(path.parent / ".lock", wait=False):
            if needed <= {r.key for r in read_records(path).records}:
                return False
            write_records(path, meta, keep)
    except LockedError:
        return False
    return True


def _meta(protocol, profile: str, spec: PolicySpec, conditions: list[str]) -> RecordsMeta:
    """The records' header; a profile with a separate track list adds that list's sha256."""
    return RecordsMeta(protocol.name, protocol.sha256, profile, spec.ref(), conditions,
                       tracks_sha256=protocol.tracks_sha256(profile))


def run(config: EvaluateConfig) -> dict:
    from .results import headline

    results = evaluate(config)
    out = config.out or default_out(results.protocol.name, config.profile, results.policy.name)
    return {"results": str(Path(out) / "results.json"), **headline(results)}
