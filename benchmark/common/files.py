"""File IO shared by every package: one checksum, one atomic writer, one JSON encoder, one lock.

Atomic writes go to a uniquely named temporary file beside the target (two writers never share
one), are fsync'ed, and then renamed over the target, so a reader sees the old file or the new
one, never half of either.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """`obj` as plain JSON data: dataclasses and mappings to dicts, tuples to lists, paths to
    strings, numpy scalars and arrays to numbers and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return str(obj)
    if hasattr(obj, "tolist") and type(obj).__module__ == "numpy":
        return obj.tolist()
    return obj


def dumps(data: Any, **kwargs: Any) -> str:
    """json.dumps of to_jsonable(data)."""
    return json.dumps(to_jsonable(data), **kwargs)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A unique temporary path beside `path` to write to; renamed over `path` when the block ends
    without an error (and removed when it raises)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a unique temporary file beside `path`, fsync it, then rename it over `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def create_exclusive(path: str | os.PathLike, data: bytes) -> None:
    """Create `path` with `data`, complete or not at all; FileExistsError when it exists already
    (the file appears by a hard link of a finished temporary file, which fails if the name is taken)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, 0o644)
        os.link(name, path)
    finally:
        Path(name).unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """`data` as indented JSON (through to_jsonable), written atomically, with a final newline."""
    write_text_atomic(path, dumps(data, indent=2) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and fsync, so a record written survives a crash right after."""
    with open(path, "a") as f:
        f.write(line.rstrip("\n") + "\n")
        f.flush()
        os.fsync(f.fileno())


class LockedError(RuntimeError):
    """Another process holds the lock."""


@contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = True, what: str = "") -> Iterator[None]:
    """Hold an exclusive advisory lock on the file `path` (created if missing) for the block. The
    system drops it when the process ends, so a killed holder never leaves it stuck. Without `wait`,
    a lock held elsewhere raises LockedError at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise LockedError(f"{what or path.parent} is in use by another process (lock {path})") from None
            raise
        yield
    finally:
        os.close(fd)
