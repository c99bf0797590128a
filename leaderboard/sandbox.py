"""Run a function on untrusted input behind a boundary: bubblewrap, limits, JSON in and out.

Everything a submission can influence (parsing and checking its ONNX graph, running it in
onnxruntime, evaluating it on the protocol) runs through `run_isolated`, in a fresh Python started
by bubblewrap (`bwrap`, Debian's package, installed by `make sandbox`) with:

- no network (a network namespace of its own, with only a loopback device);
- another user: uid/gid 65534 in a user namespace of its own, so nothing of the caller's is its;
- a read-only view of what it needs: the system's /usr, the Python installation, the virtual
  environment and the project; nothing else of the file system (no home directory, no other data);
- a private, empty /tmp, and one writable folder (the evaluation's work folder) when asked;
- an empty environment (only PATH, HOME=/tmp and the headless SDL settings are set);
- limits: wall-clock time (the process group is killed), CPU time, address space per process,
  file size, and, where the machine lets SteerBench create cgroups (v1 or v2), the total memory
  and the number of processes of the whole sandbox.

The request (function and arguments) goes in as JSON on stdin; the result comes back as JSON in a
file of the private folder: nothing is ever unpickled. When bubblewrap is missing or cannot create
its namespaces, `run_isolated` raises SandboxUnavailable, unless the caller passes unsafe=True,
which runs the same child without the boundary (the limits still apply).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmark.common.limits import limit_memory, lower_limit

from .common import Rejected

# The kinds of IsolationError: the limit or failure that stopped the function.
TIMEOUT, CRASHED, MEMORY, ERROR = "timeout", "crashed", "memory", "error"
PROJECT = Path(__file__).resolve().parents[1]
NOBODY = 65534
RESULT_NAME = "result.json"


class IsolationError(RuntimeError):
    """The isolated function did not return: it timed out, crashed, ran out of memory or raised
    (then `type_name` is the name of the exception it raised)."""

    def __init__(self, kind: str, detail: str, type_name: str | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.type_name = type_name


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be created on this machine (the message says why)."""

    def rejection(self) -> Rejected:
        """What a submitter is told."""
        return Rejected(f"the sandbox for untrusted models cannot be created on this machine: {self}",
                        "Install bubblewrap (make sandbox), or pass --no-sandbox to check and evaluate without "
                        "isolation (unsafe: only for models you trust)")


class _Cgroup:
    """A cgroup (v2, else v1 memory and pids controllers) that holds the sandbox's processes, for a
    total memory and process limit; unavailable where the machine does not let us create one."""

    def __init__(self, memory_mb: int, processes: int):
        self.paths: list[Path] = []
        name = f"steerbench-{uuid.uuid4().hex[:12]}"
        candidates = [(Path("/sys/fs/cgroup/unified"), {"memory.max": memory_mb * 2**20, "pids.max": processes}),
                      (Path("/sys/fs/cgroup/memory"), {"memory.limit_in_bytes": memory_mb * 2**20}),
                      (Path("/sys/fs/cgroup/pids"), {"pids.max": processes})]
        v2 = Path("/sys/fs/cgroup/cgroup.controllers")
        if v2.is_file() and {"memory", "pids"} <= set(v2.read_text().split()):
            candidates = [(Path("/sys/fs/cgroup"), {"memory.max": memory_mb * 2**20, "pids.max": processes})]
        for base, settings in candidates:
            try:
                path = base / name
                path.mkdir()
            except OSError:
                continue
            try:
                for key, value in settings.items():
                    (path / key).write_text(str(int(value)))
            except OSError:
                path.rmdir()
                continue
            self.paths.append(path)
        self.pids = any((p / "pids.max").exists() for p in self.paths)
        """Whether the process cap is enforced (the memory one is checked by `out_of_memory`)."""

    def join(self) -> None:  # in the child, before exec
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(os.getpid()))

    def out_of_memory(self) -> bool:
        for path in self.paths:
            for key, marker in (("memory.events", "oom_kill "), ("memory.failcnt", "")):
                f = path / key
                if f.exists():
                    text = f.read_text()
                    if marker and any(line.startswith(marker) and line.split()[1] != "0" for line in text.splitlines()):
                        return True
                    if not marker and text.strip() not in ("", "0"):
                        return True
        return False

    def remove(self) -> None:
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except OSError:
                    time.sleep(0.05)


def _bwrap_prefix(private: Path, writable: Path | None, readable: Sequence[Path]) -> list[str]:
    binds = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            binds += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            binds += ["--ro-bind", str(target), str(target)]
    for path in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime"):
        binds += ["--ro-bind-try", path, path]
    python = {Path(os.path.realpath(sys.base_prefix)), Path(sys.prefix).absolute(), PROJECT}
    for path in sorted(python | {Path(p).absolute() for p in readable}):
        binds += ["--ro-bind", str(path), str(path)]
    binds += ["--bind", str(private), str(private)]
    if writable is not None:
        binds += ["--bind", str(writable), str(writable)]
    # /tmp first: the binds below (the private folder lives in the caller's /tmp) go on top of it
    # --clearenv empties the environment inside: set the sandbox's own variables there again
    setenv = [arg for name, value in ENVIRONMENT.items() for arg in ("--setenv", name, value)]
    return ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--clearenv", *setenv,
            "--uid", str(NOBODY), "--gid", str(NOBODY), "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/dev/shm", *binds, "--chdir", str(writable or private)]


# PYTHONPATH: the child imports this project (PROJECT), also where the environment's editable install
# points at another checkout (a git worktree)
ENVIRONMENT = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "SDL_VIDEODRIVER": "offscreen", "SDL_AUDIODRIVER": "dummy",
               "PYGAME_HIDE_SUPPORT_PROMPT": "1", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "PYTHONPATH": str(PROJECT)}


def sandbox_problem() -> str | None:
    """Why the sandbox cannot be created here, or None when it can."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap; `make sandbox`)"
    with tempfile.TemporaryDirectory(prefix="steerbench-probe-") as d:
        probe = subprocess.run([*_bwrap_prefix(Path(d), None, ()), "/usr/bin/true"], capture_output=True, text=True,
                               timeout=60)
    if probe.returncode != 0:
        return f"bubblewrap cannot create its namespaces here ({' '.join(probe.stderr.split())[:200]})"
    return None


def run_isolated(fn: Callable[..., Any], args: Sequence[Any] = (), *, time_limit_s: float, memory_limit_mb: int = 0,
                 cpu_limit_s: float | None = None, file_limit_mb: int = 2048, processes: int = 64,
                 readable: Sequence[Path] = (), writable: Path | None = None, unsafe: bool = False) -> Any:
    """`fn(*args)` in a fresh, sandboxed Python; returns its (JSON) result or raises IsolationError.

    `fn` must be importable by name and its arguments and result JSON data. `memory_limit_mb`
    caps each process's address space and, with a cgroup, the sandbox's total memory;
    `processes` caps its processes (cgroup); `readable` paths are bound read-only, `writable` is
    the one folder it may write (besides its private /tmp). Raises SandboxUnavailable when
    bubblewrap cannot be used, unless `unsafe`.
    """
    if not unsafe and (problem := sandbox_problem()) is not None:
        raise SandboxUnavailable(problem)
    request = json.dumps({"module": fn.__module__, "name": fn.__qualname__, "args": list(args)})
    cpu = int(cpu_limit_s if cpu_limit_s is not None else max(10 * time_limit_s, 60))
    with tempfile.TemporaryDirectory(prefix="steerbench-sandbox-") as private_dir:
        private = Path(private_dir)
        os.chmod(private, 0o777)  # the sandbox's user writes its answer here
        cgroup = _Cgroup(memory_limit_mb or 1 << 20, processes)
        command = [sys.executable, "-m", "leaderboard.sandbox", str(private / RESULT_NAME)]
        if not unsafe:
            command = [*_bwrap_prefix(private, writable, readable), *command]

        def limits() -> None:  # in the child, before it runs bwrap (inherited by every process in the sandbox)
            cgroup.join()
            limit_memory(memory_limit_mb)
            lower_limit(resource.RLIMIT_CPU, cpu)
            lower_limit(resource.RLIMIT_FSIZE, file_limit_mb * 2**20)
            lower_limit(resource.RLIMIT_CORE, 0)

        env = ENVIRONMENT if not unsafe else {**ENVIRONMENT, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=env, preexec_fn=limits, start_new_session=True,
                                cwd=str(writable or private))
        try:
            _, stderr = proc.communicate(request.encode(), timeout=time_limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            cgroup.remove()
            raise IsolationError(TIMEOUT, f"no answer within {time_limit_s:g} s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        oom = cgroup.out_of_memory()
        cgroup.remove()
        answer = _read_answer(private / RESULT_NAME)
    return _outcome(answer, proc.returncode, stderr.decode(errors="replace"), oom)


def _read_answer(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            answer = json.loads(f.read(64 * 2**20))
    except (OSError, ValueError):
        return None
    return answer if isinstance(answer, dict) else None


def _outcome(answer: dict | None, code: int, stderr: str, oom: bool) -> Any:
    if answer is None:
        tail = " ".join(stderr.split())[-300:]
        if oom:
            raise IsolationError(MEMORY, f"the sandbox ran out of its total memory ({tail})")
        if code < 0 or code > 128:
            number = -code if code < 0 else code - 128
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            raise IsolationError(CRASHED, f"the process was killed by {name}")
        raise IsolationError(CRASHED, f"the process exited with status {code} without an answer ({tail})")
    if "ok" in answer:
        return answer["ok"]
    type_name, message = (list(answer.get("error") or ["Error", "no message"]) + ["", ""])[:2]
    # onnxruntime reports a failed allocation as a RuntimeException: its text is all there is to go by
    if type_name == "MemoryError" or "bad_alloc" in message or "Failed to allocate" in message:
        raise IsolationError(MEMORY, f"{type_name}: {message}", type_name)
    raise IsolationError(ERROR, f"{type_name}: {message}", type_name)


def _child(result_path: str) -> None:
    """The sandbox side: read the request from stdin, run it, write the answer as JSON."""
    request = json.loads(sys.stdin.read())
    try:
        target: Any = importlib.import_module(request["module"])
        for part in request["name"].split("."):
            target = getattr(target, part)
        answer: dict[str, Any] = {"ok": target(*request["args"])}
    except MemoryError as exc:
        answer = {"error": ["MemoryError", str(exc) or "out of memory"]}
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
        answer = {"error": [type(exc).__name__, str(exc)]}
    text = json.dumps(answer, default=str)
    with open(result_path, "w", encoding="utf-8") as f:
        f.write(text)



def boundary_report(paths: Sequence[str], listed: Sequence[str] = (), spawn: int = 0) -> dict[str, Any]:
    """What a process in the sandbox can do (run it through run_isolated to check the boundary):
    its uid, its environment's names, whether it reaches the network, what writing each of `paths`
    gives, what it sees in each folder of `listed`, and how many of `spawn` child processes it
    can start at once."""
    import socket

    try:
        socket.create_connection(("1.1.1.1", 53), timeout=3).close()
        network = "connected"
    except OSError as exc:
        network = f"{type(exc).__name__}: {exc}"
    writes = {}
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("x")
            writes[path] = "written"
        except OSError as exc:
            writes[path] = f"{type(exc).__name__}: {exc.strerror}"
    seen = {}
    for folder in listed:
        try:
            seen[folder] = sorted(os.listdir(folder))
        except OSError as exc:
            seen[folder] = f"{type(exc).__name__}: {exc.strerror}"
    children = []
    for _ in range(spawn):
        try:
            children.append(subprocess.Popen(["/usr/bin/sleep", "10"]))
        except OSError:
            break
    for child in children:
        child.kill()
        child.wait()
    return {"uid": os.getuid(), "environment": sorted(os.environ), "network": network, "writes": writes,
            "listed": seen, "spawned": len(children)}


if __name__ == "__main__":
    _child(sys.argv[1])
