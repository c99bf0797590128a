"""Run a function in a separate, limited process: a wall-clock limit and an address-space limit.

Everything a submission can influence (parsing and checking its ONNX graph, running it in
onnxruntime) runs in such a child, so a model that crashes the runtime, hangs, or allocates without
bound costs a child process, not the leaderboard command. The child is started with the `spawn`
method (a fresh interpreter: nothing of the parent is inherited but the function's arguments).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable
from typing import Any

# The kinds of IsolationError: the limit or failure that stopped the function.
TIMEOUT, CRASHED, MEMORY, ERROR = "timeout", "crashed", "memory", "error"


class IsolationError(RuntimeError):
    """The isolated function did not return: it timed out, crashed, ran out of memory or raised."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def limit_memory(memory_limit_mb: int) -> None:
    """Cap this process's address space (RLIMIT_AS) at `memory_limit_mb` MiB (0: no cap)."""
    if memory_limit_mb:
        import resource

        limit = int(memory_limit_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _child(conn, fn: Callable[..., Any], args: tuple, memory_limit_mb: int) -> None:
    try:
        limit_memory(memory_limit_mb)
        result = ("ok", fn(*args))
    except MemoryError as exc:
        result = ("error", "MemoryError", str(exc) or "out of memory")
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as data
        result = ("error", type(exc).__name__, str(exc))
    try:
        conn.send(result)
    finally:
        conn.close()


def run_isolated(fn: Callable[..., Any], args: tuple = (), *, time_limit_s: float, memory_limit_mb: int = 0) -> Any:
    """`fn(*args)` in a fresh child process; returns its result or raises IsolationError.

    `fn` must be importable by name (a module-level function) and its arguments and result
    picklable. The child is killed when it runs past `time_limit_s` seconds (start-up included).
    """
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, fn, args, memory_limit_mb), daemon=True,
                       name="leaderboard-sandbox")
    proc.start()
    sender.close()
    result = None
    try:
        if not receiver.poll(time_limit_s):  # True on data and on end of file (the child died)
            raise IsolationError(TIMEOUT, f"no answer within {time_limit_s:g} s")
        try:
            result = receiver.recv()
        except (EOFError, OSError):
            result = None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        receiver.close()
    if result is None:
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            raise IsolationError(CRASHED, f"the process was killed by {name}")
        raise IsolationError(CRASHED, f"the process exited with status {code} without an answer")
    status, *rest = result
    if status == "ok":
        return rest[0]
    type_name, message = rest
    if type_name == "MemoryError" or "bad_alloc" in message or "Failed to allocate" in message:
        raise IsolationError(MEMORY, f"{type_name}: {message}")
    raise IsolationError(ERROR, f"{type_name}: {message}")
