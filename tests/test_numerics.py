"""Portable numerics (benchmark/common/numerics.py): on an AVX-512 CPU numpy runs without its AVX-512
kernels once SteerBench is imported first, so the env computes what an AVX2 CPU computes."""

import os
import subprocess
import sys

from benchmark.common.numerics import PORTABLE_ENV, _cpu_flags, portable
from envs.lane_geometry import EXACT

AVX512 = "avx512f" in _cpu_flags()


def test_numpy_runs_portably_here():
    assert portable()
    assert EXACT  # numpy's functions give math's numbers: the traffic's float path is on
    if AVX512:  # what made it so (elsewhere numpy has no such kernels to turn off)
        assert {k: os.environ.get(k) for k in PORTABLE_ENV} == PORTABLE_ENV


def _child(code: str, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True)


def test_numpy_imported_first_is_flagged_where_it_matters():
    ran = _child("import numpy, benchmark; from benchmark.common.numerics import portable; print(portable())")
    assert ran.stdout.split() == [str(not AVX512)]
    assert ("numpy runs its AVX-512 kernels" in ran.stderr) == AVX512
    ran = _child("import benchmark, numpy; from benchmark.common.numerics import portable; print(portable())")
    assert ran.stdout.split() == ["True"] and "AVX-512" not in ran.stderr
    # a setting of the user's own is kept (here: every kernel allowed)
    ran = _child("import benchmark, os; print(repr(os.environ['NPY_DISABLE_CPU_FEATURES']))", NPY_DISABLE_CPU_FEATURES="")
    assert ran.stdout.split() == ["''"]
