"""Resource limits of the current process, lowered only: a lower hard limit the operator set
(`ulimit -v`, a container) always wins over the one asked for."""

from __future__ import annotations

import resource


def lower_limit(kind: int, value: int) -> None:
    """Set the soft and hard limit `kind` (resource.RLIMIT_*) to `value`, or to the hard limit
    when that is lower (raising a hard limit is not allowed, and not wanted)."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def limit_memory(memory_limit_mb: int) -> None:
    """Cap this process's address space (RLIMIT_AS) at `memory_limit_mb` MiB (0: no cap)."""
    if memory_limit_mb:
        lower_limit(resource.RLIMIT_AS, int(memory_limit_mb) * 1024 * 1024)
