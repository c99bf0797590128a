"""Where whole evaluations run: one after another in this process ("local"), or as Ray tasks ("ray").

A job is one call `fn(*args)` of a module-level function (importable by name on every node) that
occupies `cpus` cores: for an evaluation, its worker processes (`EvaluateConfig.workers`), which
become the Ray task's `num_cpus`, so the cluster runs as many jobs at once as it has cores for.
The function is the same under both backends (`evaluate()`, `check_entry()`), and so are its
results: a job runs the same code on the same arguments, only somewhere else.

The local backend runs the jobs in order, in this process (an evaluation's shared worker pool is
reused from one to the next). The Ray backend connects to the cluster at `address` (a head
node's HOST:PORT, as `ray start --head` prints it, or "auto"), or starts a local one without it,
submits every job of a `Runner.run` call at once and yields each outcome as it arrives; a
cluster it started is shut down afterwards, and a connection it made is closed. Tasks are not
retried: a job whose worker or node dies is reported as failed (an evaluation resumes when run
again). A process already connected to Ray (it called `ray.init` itself) uses that connection,
and then takes no `address`.

Files, not messages, carry the records: a job runs in the caller's working directory and writes
where the caller would (results folders, the drift references under results/). On a multi-node
cluster those folders must be on a file system shared by every node, at the same path; before a
job starts, it checks that it sees the token files the caller wrote into the `shared` folders, and
fails with a message saying so where it does not (instead of writing records the caller never
sees). Ray is an optional extra (requirements-ray.txt), imported only when the Ray backend is used.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Backend = Literal["local", "ray"]
BACKENDS: tuple[str, ...] = ("local", "ray")
INSTALL_HINT = ("install the optional extra: make ray (or .venv/bin/pip install -r requirements-ray.txt "
                "-c constraints.txt -c constraints-ray.txt)")
TOKEN_PREFIX = ".steerbench-shared-"
CONNECT_TIMEOUT_S = 5.0


class BackendError(RuntimeError):
    """The backend cannot be used: Ray is not installed, no cluster answers at the address, a bad address."""


@dataclass(frozen=True)
class Job:
    """One call `fn(*args)`, on `cpus` cores; `label` names it in progress and error messages."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    cpus: int = 1
    label: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of a job: its value, or the error it raised (`error`: 'Type: message'), where and how long."""

    job: Job
    value: Any = None
    error: str | None = None
    host: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@contextlib.contextmanager
def connect(backend: Backend = "local", address: str = "", shared: Sequence[Path] = ()) -> Iterator[Runner]:
    """A Runner of jobs on the backend, for the block: for Ray, connected to the cluster at `address` (a
    new local cluster when empty) with token files in the `shared` folders, which the jobs check (see
    the module's docstring). Raises BackendError when the backend cannot be used."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; backends are: {', '.join(BACKENDS)}")
    if address and backend != "ray":
        raise BackendError("--address names a Ray cluster: it needs --backend ray")
    if backend == "local":
        yield Runner()
        return
    ray = import_ray()
    with _connected(ray, address), _tokens(shared) as tokens:
        yield Runner(ray, tokens)


class Runner:
    """Runs jobs on a backend (made by `connect`)."""

    def __init__(self, ray: Any = None, tokens: Sequence[tuple[str, str]] = ()):
        self._ray, self._tokens = ray, list(tokens)

    def run(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        """Run the jobs and yield each one's Outcome as it finishes (local: in order, in this process; Ray:
        all submitted at once). A job's exception becomes its Outcome's error, and the others go on."""
        jobs = list(jobs)
        ray = self._ray
        if ray is None:
            for job in jobs:
                yield Outcome(job, *_call(job.fn, job.args, None, ()))
            return
        if not jobs:
            return
        largest = max((n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")), default=0)
        if max(job.cpus for job in jobs) > largest:
            raise BackendError(f"a job needs {max(job.cpus for job in jobs)} CPUs (its evaluation's workers) and "
                               f"the largest node of the Ray cluster has {largest:g}: use fewer --workers")
        remote = ray.remote(_call)
        cwd = os.getcwd()
        refs = {remote.options(num_cpus=max(1, job.cpus), max_retries=0, name=job.label or job.fn.__name__)
                .remote(job.fn, job.args, cwd, self._tokens): job for job in jobs}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    try:
                        yield Outcome(refs[ref], *ray.get(ref))
                    except ray.exceptions.RayError as exc:  # the task never returned: its worker or node died
                        yield Outcome(refs[ref], error=f"{type(exc).__name__}: {_one_line(exc)}")
        finally:
            for ref in pending:  # an interrupted run (or a caller that stops early) leaves nothing running
                ray.cancel(ref, force=True)


def _call(fn: Callable[..., Any], args: tuple[Any, ...], cwd: str | None,
          tokens: Sequence[tuple[str, str]]) -> tuple[Any, str | None, str, float]:
    """The job where it runs, in the caller's working directory once the shared folders check out:
    (value, error, host, seconds)."""
    host, start = socket.gethostname(), time.monotonic()
    try:
        with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
            for folder, token in tokens:
                if not (Path(folder) / token).is_file():
                    raise BackendError(
                        f"{host} does not see {folder} as the machine that submitted the job does: the folders "
                        "that jobs write (results, the drift references under results/, verify's work folder) must "
                        "be on a file system that every node of the cluster shares, at the same path")
            value = fn(*args)
    except Exception as exc:  # noqa: BLE001 - reported as the job's outcome; the other jobs go on
        detail = _one_line(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {_one_line(exc)}"
        return None, detail, host, time.monotonic() - start
    return value, None, host, time.monotonic() - start


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def import_ray():
    """The ray module, or BackendError saying how to install it."""
    try:
        return importlib.import_module("ray")
    except ImportError as exc:
        raise BackendError(f"--backend ray needs Ray, which is not installed here ({exc}); {INSTALL_HINT}") from None


@contextlib.contextmanager
def _tokens(folders: Sequence[Path]) -> Iterator[list[tuple[str, str]]]:
    """A token file in each folder (created if missing), as absolute (folder, name) pairs; removed afterwards."""
    name = f"{TOKEN_PREFIX}{uuid.uuid4().hex}"
    made: list[Path] = []
    try:
        for folder in dict.fromkeys(Path(f).absolute() for f in folders):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("written by the process that submitted the jobs; removed when they end\n")
            made.append(folder / name)
        yield [(str(p.parent), name) for p in made]
    finally:
        for path in made:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _connected(ray, address: str) -> Iterator[None]:
    """Ray connected to the cluster at `address` (a new local one when empty) for the block."""
    if address and address != "auto":
        check_address(address)
    if ray.is_initialized():  # the caller's own connection (it called ray.init)
        if address:
            raise BackendError(f"this process is already connected to the Ray cluster at "
                               f"{ray.get_runtime_context().gcs_address}: leave --address out to use it")
        yield
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    try:
        ray.init(address=address or None, include_dashboard=False if not address else None,
                 configure_logging=True, logging_level="warning")
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"at {address}" if address else "on this machine"
        raise BackendError(f"could not connect to a Ray cluster {where}: {_one_line(exc)}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "://" in address:
        raise BackendError(f"bad Ray address {address!r}: give the head node's HOST:PORT as `ray start --head` "
                           "prints it (or 'auto' for the cluster started on this machine)")
    return host.strip("[]"), int(port)


def check_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """BackendError unless something listens at the HOST:PORT `address` (Ray itself would retry for minutes)."""
    host, port = _parse_address(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendError(f"no Ray cluster answers at {address} ({reason}): start one there with `ray start "
                           "--head`, or leave --address out to start a local cluster") from None
