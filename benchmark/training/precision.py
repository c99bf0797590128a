"""Training precision: bf16 autocast where the hardware computes bf16 natively, float32 elsewhere.

Only the forward pass runs under autocast; the weights, Adam's state, the gradients' accumulation
and the loss (computed on the head output cast back to float32) stay float32, so a bf16 run saves
float32 weights that load, export and evaluate exactly like a float32 run's.

Native bf16 means a CUDA GPU that supports it (Ampere and later) or an x86 CPU whose ATen kernels
run AVX-512 and that has the AVX512-BF16 or AMX-BF16 instructions. Elsewhere oneDNN emulates bf16:
on the 2-core AMD EPYC (AVX2) this project is developed on, an emulated bf16 PilotNet step is about
ten times slower than float32, so "auto" means float32 there.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from pathlib import Path

BF16, FLOAT32 = "bf16", "float32"


@functools.cache
def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this CPU has AVX512-BF16 or AMX-BF16 and torch's kernels use AVX-512.

    Both are needed: torch reports its own dispatch level (ATEN_CPU_CAPABILITY can lower it), and
    AVX-512 alone (Skylake, Cascade Lake) has no bf16 arithmetic. Without /proc/cpuinfo (macOS,
    Windows) the answer is False: float32 is the safe default.
    """
    import torch

    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    try:
        return bool(cpu_flags(cpuinfo.read_text()) & BF16_FLAGS)
    except OSError:
        return False


BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo_text: str) -> set[str]:
    """The x86 feature flags listed in /proc/cpuinfo's text."""
    flags: set[str] = set()
    for line in cpuinfo_text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return flags


def native_bf16(device) -> bool:
    """Whether `device` (a torch.device) computes bf16 natively."""
    import torch

    if device.type == "cuda":
        # including_emulation=False: pre-Ampere GPUs emulate bf16, slower than float32.
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and cpu_has_native_bf16()


def resolve(precision: str, device) -> str:
    """The precision a run on `device` uses for the requested 'auto', 'bf16' or 'float32'.

    Explicit bf16 on a CUDA GPU without it is an error (autocast would silently fall back to
    float32, and the run would claim a precision it did not use). On a CPU without native bf16 it
    runs, emulated and slow, with a warning: the numbers are bf16's, and tests on such CPUs need it.
    """
    if precision == FLOAT32:
        return FLOAT32
    native = native_bf16(device)
    if precision == "auto":
        return BF16 if native else FLOAT32
    if precision != BF16:
        raise ValueError(f"precision must be auto, bf16 or float32, got {precision!r}")
    if not native:
        if device.type == "cuda":
            raise RuntimeError("precision=bf16, but this CUDA device has no native bf16 (Ampere or later); "
                               "use precision=float32 or auto")
        warnings.warn("precision=bf16 on a CPU without AVX512-BF16 or AMX: bf16 is emulated and much slower "
                      "than float32 (precision=auto picks float32 here)", RuntimeWarning, stacklevel=2)
    return BF16


def autocast(precision: str, device):
    """The forward pass's context: bf16 autocast for 'bf16', nothing for 'float32'."""
    import torch

    if precision == BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
