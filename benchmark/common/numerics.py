"""Portable floating point: the environment computes the same numbers on every x86-64 CPU.

numpy dispatches some functions to AVX-512 kernels where the CPU has them (tan, arcsin, arctan,
arctan2, power, among those highway-env and the tracks call; sin and cos agree), and OpenBLAS picks
its dot-product kernel by CPU. Those kernels are within an ulp or two of libm's but not equal, and
highway-env's vehicles and lanes and SteerBench's procedural tracks call them, so an AVX-512 machine
drove other trajectories than one without (by ulps that grow: on an Intel Xeon with AVX-512, 3 of
the stored small-profile references, `tests/test_reference.py`, and the env's fingerprints failed,
and the traffic's float path, `envs/lane_geometry.EXACT`, was off). Before numpy is first imported
(`benchmark/__init__.py`, which every SteerBench package imports first), SteerBench turns numpy's
AVX-512 dispatch off and asks OpenBLAS for its Haswell kernels, on AVX-512 CPUs only: such a CPU then
computes what an AVX2 one does (there, every one of those references reproduces). A variable the
user has set is kept.

Neural-network inference still picks its kernels by CPU (torch's oneDNN and MKL, onnxruntime's
MLAS), so a model's outputs, and the records of a policy that runs one, are bit-identical on CPUs
of the same capability (`torch.backends.cpu.get_cpu_capability()`) and within float32 rounding
across them; the teacher's and straight-ahead's records are bit-identical everywhere.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

AVX512_DISPATCH = ("X86_V4", "AVX512_ICL", "AVX512_SPR")
"""numpy 2.4's dispatch targets above AVX2 (`numpy._core._multiarray_umath.__cpu_dispatch__`)."""
PORTABLE_ENV = {"NPY_DISABLE_CPU_FEATURES": " ".join(AVX512_DISPATCH), "OPENBLAS_CORETYPE": "Haswell"}
"""What an AVX-512 CPU is given before numpy loads."""


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def make_portable() -> bool:
    """Set PORTABLE_ENV (where unset) on an AVX-512 x86 CPU, if numpy has not been imported yet;
    returns whether numpy computes portably (see `portable`), with a warning where it does not."""
    if "numpy" not in sys.modules:
        flags = _cpu_flags()
        if "avx512f" in flags and "avx2" in flags:
            for key, value in PORTABLE_ENV.items():
                os.environ.setdefault(key, value)
    ok = portable()
    if not ok:
        warnings.warn("numpy runs its AVX-512 kernels (it was imported before SteerBench, or NPY_DISABLE_CPU_FEATURES "
                      "is set otherwise): the environment's numbers differ from other machines' by ulps that grow. "
                      f"Import benchmark first, or set {' '.join(f'{k}={v!r}' for k, v in PORTABLE_ENV.items())}",
                      RuntimeWarning, stacklevel=2)
    return ok


def portable() -> bool:
    """numpy runs none of its AVX-512 kernels (imported after make_portable, or a CPU without them)."""
    from numpy._core import _multiarray_umath

    return not any(_multiarray_umath.__cpu_features__.get(target) for target in AVX512_DISPATCH)
