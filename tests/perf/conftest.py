"""Side-by-side timing for `make perf`.

The machine is shared and noisy, so every target is a ratio of two things timed in the same run,
interleaved: pytest-benchmark times the SteerBench side (`benchmark.pedantic`) while the reference
runs in each round's untimed set-up and is timed by hand, A B A B ... Results go to
`benchmark.extra_info` (shown in the JSON report) and to a printed summary line.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest


def side_by_side(benchmark, ours: Callable[[], int], reference: Callable[[], int], rounds: int,
                 name: str, reference_name: str) -> dict:
    """Time `ours` and `reference` alternately; each returns the work units it did (e.g. steps).

    Returns units per second of both and the ratio ours / reference.
    """
    ref_times: list[float] = []
    ref_units: list[int] = []
    our_units: list[int] = []

    def setup():
        t = time.perf_counter()
        ref_units.append(reference())
        ref_times.append(time.perf_counter() - t)

    def target():
        our_units.append(ours())

    benchmark.pedantic(target, setup=setup, rounds=rounds, iterations=1, warmup_rounds=1)
    our_rate = statistics.median(our_units) / benchmark.stats.stats.median
    ref_rate = statistics.median(u / t for u, t in zip(ref_units, ref_times))
    result = {f"{name}_per_s": our_rate, f"{reference_name}_per_s": ref_rate, "ratio": our_rate / ref_rate}
    benchmark.extra_info.update(result)
    print(f"\n[perf] {name}: {our_rate:,.0f}/s   {reference_name}: {ref_rate:,.0f}/s   ratio {our_rate / ref_rate:.2f}")
    return result


@pytest.fixture
def compare(benchmark):
    def run(ours, reference, rounds, name, reference_name):
        return side_by_side(benchmark, ours, reference, rounds, name, reference_name)

    return run
