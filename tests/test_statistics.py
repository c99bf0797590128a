"""Intervals, paired tests and survival estimates (benchmark/evaluation/statistics.py), each
against a case computed by hand or a published table."""

import math

import numpy as np
import pytest

from benchmark.evaluation import statistics as s


def test_wilson_interval_against_hand_computation():
    # 0/15: the upper bound is 2 * (z^2 / 2n) / (1 + z^2 / n) = 0.2039, not 0 as a bootstrap says
    low, high = s.wilson_interval(0, 15)
    assert low == 0.0 and high == pytest.approx(0.20391, abs=1e-4)
    # 5/15: center (1/3 + z^2/30) / (1 + z^2/15) = 0.36732, half-width 0.21555
    assert s.wilson_interval(5, 15) == pytest.approx((0.15183, 0.58287), abs=1e-4)
    assert s.wilson_interval(15, 15)[1] == 1.0 and s.wilson_interval(15, 15)[0] == pytest.approx(0.79609, abs=1e-4)
    assert all(math.isnan(v) for v in s.wilson_interval(0, 0))
    with pytest.raises(ValueError):
        s.wilson_interval(3, 2)


def test_clopper_pearson_interval():
    low, high = s.clopper_pearson_interval(0, 10)  # upper = 1 - 0.025^(1/10)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** 0.1, abs=1e-9)
    low, high = s.clopper_pearson_interval(10, 10)
    assert high == 1.0 and low == pytest.approx(0.025 ** 0.1, abs=1e-9)
    wl, wh = s.wilson_interval(5, 15)
    cl, ch = s.clopper_pearson_interval(5, 15)
    assert cl < wl and ch > wh  # exact intervals are the conservative ones


def test_mcnemar_exact():
    assert s.mcnemar_exact(5, 0) == pytest.approx(2 * 0.5**5)  # 0.0625
    assert s.mcnemar_exact(3, 1) == pytest.approx(2 * (1 + 4) / 16)  # 0.625
    assert s.mcnemar_exact(0, 0) == 1.0 and s.mcnemar_exact(4, 4) == 1.0
    assert s.paired_discordance([1, 1, 0, 0, 1], [0, 1, 1, 0, 0]) == (2, 1)


def test_paired_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.normal(size=50)
    r = s.paired_bootstrap(y + 0.1, y, rng)
    assert r.difference == pytest.approx(0.1) and r.low == pytest.approx(0.1) and r.high == pytest.approx(0.1)
    assert r.p_value == 0.0 and r.n == 50
    noise = s.paired_bootstrap(rng.normal(size=40), rng.normal(size=40), np.random.default_rng(1))
    assert noise.low < 0 < noise.high and noise.p_value > 0.05
    shifted = s.paired_bootstrap(rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40), np.random.default_rng(2))
    assert shifted.low > 0 and shifted.p_value < 0.01


def test_paired_bootstrap_counts_ties_with_the_observed_difference():
    # 80 tracks, one of two episodes lost on 2 of them (differences 0 x 78, -0.5 x 2; mean -0.0125). Under the
    # null (d - mean resampled) a draw that holds k of the two losses has mean 0.0125 - k / 160: as extreme as the observed above it
    # exactly when k = 0 (probability (39/40)^80 = 0.132; its float sum lands a hair under 0.0125), below it
    # when k >= 4 (0.140); so p = 2 x 0.132. Before ties counted, the k = 0 draws were missed and p was 0.
    x, y = [1.0] * 78 + [0.5] * 2, [1.0] * 80
    r = s.paired_bootstrap(x, y, np.random.default_rng(0), n_boot=20000)
    assert r.difference == pytest.approx(-0.0125) and r.high == 0.0
    assert r.p_value == pytest.approx(2 * (39 / 40) ** 80, abs=0.02)
    assert s.paired_bootstrap([0.0, 1.0], [1.0, 0.0], np.random.default_rng(0)).p_value == 1.0  # mean 0

def test_sign_flip_test_by_hand():
    # 3 pairs, differences 1, 2, 3: of the 8 sign patterns only +++ and --- reach |mean| = 2
    assert s.sign_flip_test([1, 2, 3], [0, 0, 0]) == pytest.approx(2 / 8)
    # differences 1, -1: every pattern has |mean| 0 or 1 >= 0
    assert s.sign_flip_test([1, 0], [0, 1]) == 1.0
    assert s.sign_flip_test([-1.0] * 6, [0.0] * 6) == pytest.approx(2 / 64)  # the smallest p of 6 pairs
    assert math.isnan(s.sign_flip_test([], []))
    with pytest.raises(ValueError, match="max_pairs"):
        s.sign_flip_test(np.ones(21), np.zeros(21))


def test_cluster_bootstrap_resamples_whole_tracks():
    values = [1, 1, 1, 0, 0, 0]  # two tracks, their episodes identical within a track
    clusters = ["a", "a", "a", "b", "b", "b"]
    mean, low, high = s.cluster_bootstrap(values, clusters, np.random.default_rng(0))
    assert mean == 0.5 and low == 0.0 and high == 1.0  # two clusters: the mean is 0, 0.5 or 1
    per_episode = s.cluster_bootstrap(values, list(range(6)), np.random.default_rng(0))
    assert per_episode[2] - per_episode[1] < high - low  # pretending independence understates it


def test_kaplan_meier_with_greenwood_against_hand_computation():
    # durations 2, 3, 3(censored), 5, 8(censored): S = 0.8, 0.6, 0.3 at t = 2, 3, 5
    km = s.kaplan_meier([2, 3, 3, 5, 8], [True, True, False, True, False])
    assert list(km.times) == [2, 3, 5]
    assert km.survival == pytest.approx([0.8, 0.6, 0.3])
    # Greenwood: 1/(5*4); + 1/(4*3); + 1/(2*1)
    assert km.std_error == pytest.approx([0.8 * math.sqrt(0.05), 0.6 * math.sqrt(0.05 + 1 / 12),
                                          0.3 * math.sqrt(0.05 + 1 / 12 + 0.5)])
    assert all(lo <= sv <= hi for lo, sv, hi in zip(km.low, km.survival, km.high))
    assert km.at(1) == 1.0 and km.at(4) == pytest.approx(0.6) and km.at(100) == pytest.approx(0.3)
    everyone = s.kaplan_meier([10, 10, 10], [False, False, False])
    assert len(everyone.times) == 0 and everyone.at(10) == 1.0


def test_power_of_the_full_profile_comparison():
    # 0.33 against 0.13 with 80 episodes each: z = (0.2 - 1.96 * 0.06654) / 0.06463 = 1.0765
    assert s.power_two_proportions(0.33, 0.13, 80) == pytest.approx(0.859, abs=0.002)
    assert s.power_two_proportions(0.33, 0.13, 15) < 0.3  # v1's quick profile: hopeless
    assert s.power_two_proportions(0.2, 0.2, 50) == pytest.approx(0.05, abs=1e-9)


def test_loglog_slope():
    T = np.array([10, 30, 100, 300, 1000])
    assert s.loglog_slope(T, 3 * T**2.0) == pytest.approx(2.0)
    assert s.loglog_slope(T, 0.5 * T) == pytest.approx(1.0)
    assert math.isnan(s.loglog_slope([10, 30], [0.0, 5.0]))
