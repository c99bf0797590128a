"""Protocol steerbench-v2 metrics (section 11 of benchmark/evaluation/metrics.py), each against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.evaluation import metrics as m

NAN = float("nan")


# ------------------------------------------------------------------------------------------------
# 11.1 Paired regret and its slope
# ------------------------------------------------------------------------------------------------


def test_paired_regret_hand_computed():
    learner = [[0.5, 1.0, 1.0], [0.2, 0.4, NAN]]  # episode 1 truncated on the learner side only
    teacher = [[0.1, 0.2, 0.3], [0.2, 0.0, 0.1]]
    # t0: (0.4 + 0.0) / 2 = 0.2; t1: (0.8 + 0.4) / 2 = 0.6; t2: only pair 0 has both -> 0.7
    # dJ = 0, 0.2, 0.2 + 0.6, 0.2 + 0.6 + 0.7
    np.testing.assert_allclose(m.paired_regret(learner, teacher), [0.0, 0.2, 0.8, 1.5])
    # unpaired means would give 1.0 - 0.2 = 0.8 at t2 (episode 1's teacher cost compared with nothing)
    unpaired = m.cumulative_cost(learner, 3) - m.cumulative_cost(teacher, 3)
    assert unpaired[0] == pytest.approx(1.6)
    # negative when the learner beats the teacher
    np.testing.assert_allclose(m.paired_regret(teacher, learner), [0.0, -0.2, -0.8, -1.5])


def test_paired_regret_edge_cases():
    # a step without any pair makes dJ undefined from there on
    np.testing.assert_array_equal(m.paired_regret([[0.5, NAN, 0.5]], [[0.5, 0.5, 0.5]]), [0.0, 0.0, NAN, NAN])
    # all fail at step 0 on both sides: cost 1 everywhere, no regret
    c = m.cost_matrix([[0.0], [0.0]], [0, 0], 1.0, 4)
    np.testing.assert_array_equal(m.paired_regret(c, c), np.zeros(5))
    # learner fails at t=0, teacher drives on the centre line: dJ(T) = T
    learner = m.cost_matrix([[0.0]], [0], 1.0, 3)
    teacher = m.cost_matrix([[0.0, 0.0, 0.0]], [-1], 1.0, 3)
    np.testing.assert_array_equal(m.paired_regret(learner, teacher), [0.0, 1.0, 2.0, 3.0])
    assert m.paired_regret(np.zeros((2, 0)), np.zeros((2, 0))).tolist() == [0.0]
    with pytest.raises(ValueError, match="same shape"):
        m.paired_regret(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.paired_regret([[2.0]], [[0.0]])
    with pytest.raises(ValueError, match="no episodes"):
        m.paired_regret(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="2-D"):
        m.paired_regret([0.1, 0.2], [0.1, 0.2])


def test_paired_regret_properties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        e, h = rng.integers(1, 6), rng.integers(1, 30)
        cl, ct = rng.random((e, h)), rng.random((e, h))
        nan = rng.random((e, h)) < 0.2
        cl[nan], ct[nan] = NAN, NAN
        # identical inputs: no regret wherever it is defined
        same = m.paired_regret(cl, cl)
        assert np.all((same == 0.0) | np.isnan(same))
        # same NaN pattern: the difference of the two cumulative costs
        np.testing.assert_allclose(
            m.paired_regret(cl, ct), m.cumulative_cost(cl, np.arange(h + 1)) - m.cumulative_cost(ct, np.arange(h + 1))
        )
        # antisymmetric
        np.testing.assert_allclose(m.paired_regret(cl, ct), -m.paired_regret(ct, cl))


def test_regret_slope_exact_exponents():
    t = np.arange(101, dtype=float)
    alive = np.ones(101)
    s = m.regret_slope(1e-3 * t**2, alive)
    # window [30, 100]; rint(30 (100/30)^(k/11)), k = 0..11: 30 33 37 42 46 52 58 64 72 80 89 100, all distinct
    assert s == m.RegretSlope(slope=pytest.approx(2.0), t_lo=30, t_hi=100, n_points=12)
    assert m.regret_slope(0.01 * t, alive).slope == pytest.approx(1.0)


def test_regret_slope_hand_computed_window():
    # points=2, window [2, 4]: dJ(2) = 1, dJ(4) = 8 -> slope log 8 / log 2 = 3
    s = m.regret_slope([0.0, 0.5, 1.0, 3.0, 8.0], np.ones(5), t_min=2, points=2)
    assert (s.slope, s.t_lo, s.t_hi, s.n_points) == (pytest.approx(3.0), 2, 4, 2)
    # grid geomspace(1, 4, 3) = 1, 2, 4; dJ(1) = -0.5 <= 0 is dropped: log 4 / log 2 = 2 from T = 2, 4
    s = m.regret_slope([0.0, -0.5, 1.0, 2.0, 4.0], np.ones(5), t_min=1, points=3)
    assert (s.slope, s.n_points) == (pytest.approx(2.0), 2)


def test_regret_slope_stops_where_survival_drops():
    t = np.arange(201, dtype=float)
    # quadratic up to T = 60, then linear with the same derivative 2 * 60 (saturated: most episodes failed)
    regret = np.where(t <= 60, t**2, 3600.0 + 120.0 * (t - 60))
    survival = np.where(t <= 60, 0.9, 0.4)
    s = m.regret_slope(regret, survival)
    assert (s.t_lo, s.t_hi) == (30, 60)
    assert s.slope == pytest.approx(2.0)
    # min_survival = 0.3 lets the saturated part in and pulls the slope towards 1
    assert 1.0 < m.regret_slope(regret, survival, min_survival=0.3).slope < 1.9


def test_regret_slope_empty_window_and_errors():
    t = np.arange(101, dtype=float)
    # survival below 0.5 from T = 20 on: window [30, 19] is empty
    s = m.regret_slope(t**2, np.where(t < 20, 1.0, 0.2))
    assert math.isnan(s.slope) and (s.t_lo, s.t_hi, s.n_points) == (30, 19, 0)
    # never alive enough: t_hi = -1
    assert m.regret_slope(t**2, np.full(101, 0.1)).t_hi == -1
    # horizon shorter than t_min
    assert math.isnan(m.regret_slope(t[:11] ** 2, np.ones(11)).slope)
    # the learner beats the teacher everywhere: no point with dJ > 0
    s = m.regret_slope(-t, np.ones(101))
    assert math.isnan(s.slope) and s.n_points == 0
    with pytest.raises(ValueError, match=r"\(H \+ 1,\)"):
        m.regret_slope(t, np.ones(100))  # S(T) for T = 1..H is refused: index it by T = 0..H
    with pytest.raises(ValueError, match="t_min"):
        m.regret_slope(t, np.ones(101), t_min=0)
    with pytest.raises(ValueError, match="min_survival"):
        m.regret_slope(t, np.ones(101), min_survival=1.5)
    with pytest.raises(ValueError, match="points"):
        m.regret_slope(t, np.ones(101), points=1)
    with pytest.raises(ValueError, match="1-D"):
        m.regret_slope([], [])


# ------------------------------------------------------------------------------------------------
# 11.2 Mistake rate and covariate shift
# ------------------------------------------------------------------------------------------------

# ep0: no failure, 4 steps; ep1: fails at step 2 (3 recorded steps); ep2: truncated after 2 steps
ACTIONS = [[0.0, 0.1, 0.3, 0.0], [0.2, 0.0, 0.5], [0.0, 0.4]]
LABELS = [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0]]
MISTAKE_FAILURES = [-1, 2, None]


def test_mistake_rate_hand_computed():
    # |a - a*| > 0.15: ep0 (F, F, T, F); ep1 (T, F, [T at the failure step: left out]); ep2 (F, T)
    # alive: t0 {0, 1, 2}, t1 {0, 1, 2}, t2 {0} (ep1 failed there, ep2 ended), t3 {0}
    # eps = 1/3, 1/3, 1/1, 0/1
    eps = m.mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15)
    np.testing.assert_allclose(eps, [1 / 3, 1 / 3, 1.0, 0.0])
    # pooled: k = 1 (ep0 t2) + 1 (ep1 t0) + 1 (ep2 t1) = 3 over n = 4 + 2 + 2 = 8 alive steps
    assert m.pooled_mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15) == (3, 8)
    # the threshold is strict: ep0 t1 has |0.1 - 0| = 0.1, not > 0.1, so tau = 0.1 still gives 3; tau = 0.05 adds it
    assert m.pooled_mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.1) == (3, 8)
    assert m.pooled_mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.05) == (4, 8)
    # horizon cuts or pads with NaN (no episode alive)
    np.testing.assert_allclose(m.mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15, horizon=2), [1 / 3, 1 / 3])
    np.testing.assert_array_equal(
        np.isnan(m.mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15, horizon=6)), [0, 0, 0, 0, 1, 1]
    )
    assert m.pooled_mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15, horizon=1) == (1, 3)


def test_mistake_rate_edge_cases():
    # all fail at step 0: no step is alive
    eps = m.mistake_rate([[0.5], [0.5]], [[0.0], [0.0]], [0, 0], 0.1, horizon=3)
    np.testing.assert_array_equal(eps, [NAN, NAN, NAN])
    assert m.pooled_mistake_rate([[0.5], [0.5]], [[0.0], [0.0]], [0, 0], 0.1) == (0, 0)
    # no failures: every recorded step counts; a missing step inside an episode is left out
    eps = m.mistake_rate([[0.3, NAN, 0.3], [0.0, 0.0, 0.0]], [[0.0, NAN, 0.0], [0.0, 0.0, 0.0]], [-1, -1], 0.1)
    np.testing.assert_allclose(eps, [0.5, 0.0, 0.5])
    # the learner equals the teacher: no mistakes
    np.testing.assert_array_equal(m.mistake_rate(ACTIONS, ACTIONS, MISTAKE_FAILURES, 0.0), [0.0] * 4)
    # (T, 1) actions like the env's Box(1,)
    eps = m.mistake_rate([np.array([[0.3], [0.0]])], [np.array([[0.0], [0.0]])], [None], 0.1)
    np.testing.assert_allclose(eps, [1.0, 0.0])


def test_mistake_rate_rejects_bad_input():
    with pytest.raises(ValueError, match="same episode lengths"):
        m.mistake_rate([[0.1, 0.2]], [[0.1]], [-1], 0.1)
    with pytest.raises(ValueError, match="teacher-action episodes"):
        m.mistake_rate([[0.1]], [[0.1], [0.2]], [-1], 0.1)
    with pytest.raises(ValueError, match="should have 2 recorded steps"):
        m.mistake_rate([[0.1, 0.2, 0.3]], [[0.1, 0.2, 0.3]], [1], 0.1)
    with pytest.raises(ValueError, match="entries for"):
        m.pooled_mistake_rate([[0.1]], [[0.1]], [-1, -1], 0.1)
    with pytest.raises(ValueError, match="tau"):
        m.mistake_rate([[0.1]], [[0.1]], [-1], -0.1)
    with pytest.raises(ValueError, match="no episodes"):
        m.pooled_mistake_rate([], [], [], 0.1)


def test_mistake_rate_slope_hand_computed():
    # points=2 from t=10 to the last finite step 100: (0.3 - 0.1) / (log10 100 - log10 10) = 0.2 per decade
    eps = np.full(101, 0.2)
    eps[10], eps[100] = 0.1, 0.3
    assert m.mistake_rate_slope(eps, points=2) == pytest.approx(0.2)
    # grid geomspace(1, 4, 3) = 1, 2, 4; eps_2 is NaN and dropped: (0.3 - 0.1) / log10 4
    assert m.mistake_rate_slope([NAN, 0.1, NAN, 0.2, 0.3], t_min=1, points=3) == pytest.approx(0.2 / math.log10(4))


def test_mistake_rate_slope_flat_and_rising():
    t = np.arange(1000, dtype=float)
    with np.errstate(divide="ignore"):
        rising = 0.1 + 0.05 * np.log10(t)  # eps_0 = -inf is below t_min anyway
    assert m.mistake_rate_slope(rising) == pytest.approx(0.05)
    assert m.mistake_rate_slope(np.full(1000, 0.07)) == pytest.approx(0.0, abs=1e-12)
    # no episode alive after t = 300 (NaN tail): the grid ends at 300, same slope
    tail = rising.copy()
    tail[301:] = NAN
    assert m.mistake_rate_slope(tail) == pytest.approx(0.05)


def test_mistake_rate_slope_edge_cases():
    assert math.isnan(m.mistake_rate_slope(np.full(50, NAN)))
    assert math.isnan(m.mistake_rate_slope([0.1] * 10))  # no finite step >= t_min = 10
    assert math.isnan(m.mistake_rate_slope([0.1] * 11))  # only t = 10: one point
    assert math.isnan(m.mistake_rate_slope([]))
    with pytest.raises(ValueError, match="t_min"):
        m.mistake_rate_slope([0.1, 0.2], t_min=0)
    with pytest.raises(ValueError, match="1-D"):
        m.mistake_rate_slope([[0.1, 0.2]])
    with pytest.raises(ValueError, match="points"):
        m.mistake_rate_slope([0.1] * 20, points=1)


def test_covariate_shift_ratio():
    assert m.covariate_shift_ratio(0.3, 0.1) == pytest.approx(3.0)  # behaviour-cloning-like
    assert m.covariate_shift_ratio(0.1, 0.1) == 1.0  # DAgger-like
    assert m.covariate_shift_ratio(0.0, 0.2) == 0.0
    assert m.covariate_shift_ratio(0.2, 0.0) == math.inf  # eps_off = 0 < eps_on
    assert math.isnan(m.covariate_shift_ratio(0.0, 0.0))
    assert math.isnan(m.covariate_shift_ratio(NAN, 0.1))
    assert math.isnan(m.covariate_shift_ratio(0.1, NAN))
    # from pooled counts: on 3/8, off 1/8 -> 3
    k_on, n_on = m.pooled_mistake_rate(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15)
    assert m.covariate_shift_ratio(k_on / n_on, 1 / 8) == pytest.approx(3.0)
    with pytest.raises(ValueError, match=">= 0"):
        m.covariate_shift_ratio(-0.1, 0.1)
    with pytest.raises(ValueError, match="finite"):
        m.covariate_shift_ratio(math.inf, 0.1)
