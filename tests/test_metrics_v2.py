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


def test_mistake_indicators_rows_are_episodes():
    # the rows of the hand-computed case above: ep0 (F, F, T, F), ep1 (T, F, -, -), ep2 (F, T, -, -)
    mistake, alive = m.mistake_indicators(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15, horizon=4)
    np.testing.assert_array_equal(mistake, [[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(alive, [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])
    np.testing.assert_allclose(m.mistake_rate_of(mistake, alive), [1 / 3, 1 / 3, 1.0, 0.0])
    # a bootstrap draw indexes rows (repeats included) and gets what mistake_rate gives on the drawn episodes
    draw = [2, 0, 2]
    np.testing.assert_array_equal(
        m.mistake_rate_of(mistake[draw], alive[draw]),
        m.mistake_rate([ACTIONS[i] for i in draw], [LABELS[i] for i in draw], [MISTAKE_FAILURES[i] for i in draw],
                       0.15, horizon=4))
    assert (int(mistake[draw].sum()), int(alive[draw].sum())) == (3, 8)  # 1 + 1 + 1 over 2 + 4 + 2
    with pytest.raises(ValueError, match="horizon"):
        m.mistake_indicators(ACTIONS, LABELS, MISTAKE_FAILURES, 0.15, horizon=-1)


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


# ------------------------------------------------------------------------------------------------
# 11.3 Excursions
# ------------------------------------------------------------------------------------------------

EXCURSION_OFFSETS = [
    [0.0, 0.6, 0.4, 0.3, 0.2, 0.7, -0.8, 0.1],  # A, no failure: onset t1, recovered t4, onset t5, recovered t7
    [0.6, 0.1, 0.9, 1.5],  # B, fails at 3: onset t0 (starts outside), recovered t1, onset t2, failed at t3
    [0.0, -0.55, 0.3],  # C, truncated: onset t1, still open (0.3 > 0.25) at its end -> censored
    [0.0, 0.1],  # D, fails at 1 on the centre line (a collision): no excursion at all
    [0.6, 0.3, 0.1],  # E, fails at 2: onset t0; |d_2| < 0.25 at the failure step is no recovery -> failed
]
EXCURSION_FAILURES = [-1, 3, None, 1, 2]
EXCURSION_DISTANCES = [800.0, 300.0, 200.0, 100.0, 100.0]


def _excursions_reference(d, f, onset_m, recover_m):
    """Step-by-step state machine, the plain reading of the definition."""
    counts = {"onsets": 0, "recovered": 0, "failed": 0, "censored": 0}
    for row, fe in zip(d, f, strict=True):
        inside = False
        for t, x in enumerate(row):
            if np.isnan(x):
                continue
            if not inside and abs(x) > onset_m:
                inside = True
                counts["onsets"] += 1
            elif inside and abs(x) < recover_m and t != fe:
                inside = False
                counts["recovered"] += 1
        if inside:
            counts["failed" if fe >= 0 else "censored"] += 1
    return counts["onsets"], counts["recovered"], counts["failed"], counts["censored"]


def test_excursions_hand_computed():
    x = m.excursions(EXCURSION_OFFSETS, EXCURSION_FAILURES, EXCURSION_DISTANCES)
    # onsets 2 + 2 + 1 + 0 + 1 = 6; recovered 2 (A) + 1 (B) = 3; failed 1 (B) + 1 (E) = 2; censored 1 (C)
    assert (x.onsets, x.recovered, x.failed, x.censored) == (6, 3, 2, 1)
    # 1500 m = 1.5 km: 6 / 1.5 = 4 onsets per km; recovery 3 / (3 + 2) = 0.6
    assert x.km == pytest.approx(1.5)
    assert x.onset_rate_per_km == pytest.approx(4.0)
    assert x.recovery_probability == pytest.approx(0.6)
    # the padded representation gives the same
    assert m.excursions(m.pad_episodes(EXCURSION_OFFSETS), EXCURSION_FAILURES, EXCURSION_DISTANCES) == x


def test_excursions_hysteresis_and_thresholds():
    # wobbling around the onset threshold is one excursion, not three: it never comes back below 0.25
    x = m.excursions([[0.55, 0.45, 0.55, 0.45, 0.55]], [-1], [50.0])
    assert (x.onsets, x.recovered, x.censored) == (1, 0, 1)
    assert math.isnan(x.recovery_probability)  # only a censored excursion: 0 / 0
    # |d| = onset_m is not an onset (strictly greater); a missing step keeps the state
    x = m.excursions([[0.5, 0.0], [0.6, NAN, 0.1]], [-1, -1], [10.0, 10.0])
    assert (x.onsets, x.recovered, x.failed, x.censored) == (1, 1, 0, 0)
    # other thresholds: onset 1.0, recover 0.5 -> only B's 1.5 at its failure step starts one
    x = m.excursions(EXCURSION_OFFSETS, EXCURSION_FAILURES, EXCURSION_DISTANCES, onset_m=1.0, recover_m=0.5)
    assert (x.onsets, x.recovered, x.failed, x.censored) == (1, 0, 1, 0)
    assert x.recovery_probability == 0.0


def test_excursions_edge_cases():
    # no failures, on the centre line: nothing
    x = m.excursions([[0.0, 0.1], [0.2]], [-1, None], [100.0, 100.0])
    assert (x.onsets, x.recovered, x.failed, x.censored, x.onset_rate_per_km) == (0, 0, 0, 0, 0.0)
    assert math.isnan(x.recovery_probability)
    # all fail at step 0 off the road: each is an onset at t = 0 that fails; no distance -> NaN rate
    x = m.excursions([[1.2], [-1.5]], [0, 0], [0.0, 0.0])
    assert (x.onsets, x.failed, x.recovery_probability) == (2, 2, 0.0)
    assert x.km == 0.0 and math.isnan(x.onset_rate_per_km)
    # all fail at step 0 on the centre line: no excursion
    assert m.excursions([[0.0], [0.1]], [0, 0], [1.0, 1.0]).onsets == 0
    # episodes without any recorded step
    assert m.excursions(np.zeros((2, 0)), [-1, -1], [0.0, 0.0]).onsets == 0


def test_excursions_match_the_step_by_step_definition():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n_ep = int(rng.integers(1, 6))
        lengths = rng.integers(1, 40, n_ep)
        failed = rng.random(n_ep) < 0.5
        d = [np.cumsum(rng.normal(0, 0.2, n)) for n in lengths]
        for row in d:
            row[rng.random(row.size) < 0.1] = NAN
            row[-1] = 0.0 if np.isnan(row[-1]) else row[-1]  # keep the recorded length
        f = np.where(failed, lengths - 1, -1)
        x = m.excursions(d, f, np.full(n_ep, 10.0))
        assert x.onsets == x.recovered + x.failed + x.censored
        expected = _excursions_reference(m.pad_episodes(d), f, 0.5, 0.25)
        assert (x.onsets, x.recovered, x.failed, x.censored) == expected


def test_excursions_reject_bad_input():
    with pytest.raises(ValueError, match="one entry per episode"):
        m.excursions([[0.0]], [-1], [1.0, 2.0])
    with pytest.raises(ValueError, match="distances_m"):
        m.excursions([[0.0]], [-1], [-1.0])
    with pytest.raises(ValueError, match="recover_m"):
        m.excursions([[0.0]], [-1], [1.0], onset_m=0.5, recover_m=0.6)
    with pytest.raises(ValueError, match="recover_m"):
        m.excursions([[0.0]], [-1], [1.0], recover_m=0.0)
    with pytest.raises(ValueError, match="onset_m"):
        m.excursions([[0.0]], [-1], [1.0], onset_m=-1.0)
    with pytest.raises(ValueError, match="should have 2 recorded steps"):
        m.excursions([[0.0, 0.0, 0.0]], [1], [1.0])
    with pytest.raises(ValueError, match="no episodes"):
        m.excursions([], [], [])


# ------------------------------------------------------------------------------------------------
# 11.4 Route completion and normalised scores
# ------------------------------------------------------------------------------------------------


def test_route_completion_hand_computed():
    failures, lengths = [-1, 4, None, 0], [100, 5, 60, 1]
    # completed steps: 100 (no failure), 4 (steps 0..3 before failing at 4), 60 (truncated), 0 (failed at 0)
    np.testing.assert_allclose(m.route_completion(failures, lengths, 100), [1.0, 0.04, 0.6, 0.0])
    # per-episode intended steps (open roads of different lengths); 60 / 50 is clipped to 1
    np.testing.assert_allclose(m.route_completion(failures, lengths, [100, 10, 50, 10]), [1.0, 0.4, 1.0, 0.0])
    # works with episode_lengths of the recorded offsets
    d = [[0.0] * 3, [0.0] * 2]
    np.testing.assert_allclose(m.route_completion([-1, 1], m.episode_lengths(d), 4), [0.75, 0.25])


def test_route_completion_edge_cases_and_errors():
    np.testing.assert_array_equal(m.route_completion([0, 0], [1, 1], 3000), [0.0, 0.0])  # all fail at t=0
    np.testing.assert_array_equal(m.route_completion([-1, -1], [3000, 3000], 3000), [1.0, 1.0])  # no failures
    with pytest.raises(ValueError, match="should have 5 recorded steps"):
        m.route_completion([4], [4], 100)  # failure steps are 0-based
    with pytest.raises(ValueError, match="intended_steps"):
        m.route_completion([-1], [10], 0)
    with pytest.raises(ValueError, match="intended_steps"):
        m.route_completion([-1, -1], [10, 10], [10, 10, 10])
    with pytest.raises(ValueError, match="lengths"):
        m.route_completion([-1, -1], [10], 10)
    with pytest.raises(ValueError, match="non-negative integers"):
        m.route_completion([-1], [2.5], 10)
    with pytest.raises(ValueError, match="no episodes"):
        m.route_completion([], [], 10)


def test_normalised_score():
    assert m.normalised_score(0.5, 0.0, 1.0) == 0.5
    # a lower-is-better metric (crash rate): (0.3 - 0.9) / (0.1 - 0.9) = -0.6 / -0.8 = 0.75
    assert m.normalised_score(0.3, 0.9, 0.1) == pytest.approx(0.75)
    assert m.normalised_score(1.0, 0.9, 0.1) == pytest.approx(-0.125)  # worse than straight ahead
    assert m.normalised_score(0.05, 0.9, 0.1) == pytest.approx(1.0625)  # better than the teacher
    assert math.isnan(m.normalised_score(0.5, 0.2, 0.2))  # no scale
    assert math.isnan(m.normalised_score(500.0, 100.0, math.inf))  # the teacher never failed: MDBF = inf
    assert math.isnan(m.normalised_score(NAN, 0.0, 1.0))
    assert m.normalised_score(math.inf, 100.0, 1000.0) == math.inf


def test_normalised_score_of_the_references():
    rng = np.random.default_rng(0)
    for straight, teacher in rng.normal(size=(50, 2)):
        assert m.normalised_score(teacher, straight, teacher) == pytest.approx(1.0)
        assert m.normalised_score(straight, straight, teacher) == 0.0


# ------------------------------------------------------------------------------------------------
# 11.5 Paired lateral drift
# ------------------------------------------------------------------------------------------------

D_LEARNER = [[0.1, 0.5, 0.9, 1.2], [0.0, -0.2, 0.4]]  # ep1 fails at step 2 (3 recorded steps)
D_TEACHER = [[0.0, 0.1, 0.2, 0.3], [0.1, 0.1, 0.1, 0.1]]
FAIL_LEARNER, FAIL_TEACHER = [-1, 2], [-1, -1]


def test_paired_offset_gap_hand_computed():
    # t0: (|0.1 - 0| + |0 - 0.1|) / 2 = 0.1; t1: (0.4 + 0.3) / 2 = 0.35;
    # t2: ep1's learner is at its failure step (left out) -> |0.9 - 0.2| = 0.7; t3: |1.2 - 0.3| = 0.9
    gap = m.paired_offset_gap(D_LEARNER, D_TEACHER, FAIL_LEARNER, FAIL_TEACHER)
    np.testing.assert_allclose(gap, [0.1, 0.35, 0.7, 0.9])
    gap = m.paired_offset_gap(D_LEARNER, D_TEACHER, FAIL_LEARNER, FAIL_TEACHER, horizon=6)
    np.testing.assert_allclose(gap, [0.1, 0.35, 0.7, 0.9, NAN, NAN])  # no alive pair after the episodes end
    # the teacher's failure steps count as well: a teacher failing at 1 drops pair 1 from t1 on
    gap = m.paired_offset_gap(D_LEARNER, [[0.0, 0.1, 0.2, 0.3], [0.1, 0.1]], FAIL_LEARNER, [-1, 1])
    np.testing.assert_allclose(gap, [0.1, 0.4, 0.7, 0.9])


def test_wasserstein_1d_hand_computed():
    # F^-1 = 0 on (0, 1/2], 1 on (1/2, 1]; G^-1 = 0.5: 0.5 * 0.5 + 0.5 * 0.5
    assert m.wasserstein_1d([0.0, 1.0], [0.5]) == pytest.approx(0.5)
    # n = 3, m = 2, breakpoints in sixths 2, 3, 4, 6: x-quantiles 0, 1, 1, 2; y-quantiles 0, 0, 3, 3
    # (2 * 0 + 1 * 1 + 1 * 2 + 2 * 1) / 6 = 5/6 (= the area between the two CDFs: 1/6 + 1/6 + 1/2)
    assert m.wasserstein_1d([2.0, 0.0, 1.0], [3.0, 0.0]) == pytest.approx(5 / 6)
    assert m.wasserstein_1d([1.0, 2.0], [1.0, 2.0, NAN]) == 0.0  # NaN dropped
    assert math.isnan(m.wasserstein_1d([], [1.0]))
    assert math.isnan(m.wasserstein_1d([NAN], [1.0]))


def test_wasserstein_1d_matches_scipy_and_shifts():
    from scipy import stats

    rng = np.random.default_rng(0)
    for _ in range(30):
        x, y = rng.normal(size=rng.integers(1, 40)), rng.normal(1.0, 2.0, size=rng.integers(1, 40))
        assert m.wasserstein_1d(x, y) == pytest.approx(stats.wasserstein_distance(x, y))
        assert m.wasserstein_1d(x, x + 0.3) == pytest.approx(0.3)  # a shift by c costs |c|
        assert m.wasserstein_1d(x, y) == pytest.approx(m.wasserstein_1d(y, x))


def test_paired_drift_hand_computed():
    drift = m.paired_drift(D_LEARNER, D_TEACHER, FAIL_LEARNER, FAIL_TEACHER, horizon=4)
    # gaps 0.1, 0.35, 0.7, 0.9 (above): mean 2.05 / 4 = 0.5125, final 0.9
    assert drift.gap_mean == pytest.approx(0.5125)
    assert drift.gap_final == pytest.approx(0.9)
    # W1 on each side's alive set: t0 {0.1, 0} vs {0, 0.1} -> 0; t1 {-0.2, 0.5} vs {0.1, 0.1} -> (0.3 + 0.4) / 2;
    # t2 {0.9} (ep1 at its failure step) vs {0.2, 0.1} -> (0.7 + 0.8) / 2; t3 {1.2} vs {0.3, 0.1} -> (0.9 + 1.1) / 2
    np.testing.assert_allclose(drift.w1, [0.0, 0.35, 0.75, 1.0], atol=1e-12)
    assert drift.failure_fraction == 0.5  # ep1 failed at 2 < 4
    # horizon 2: ep1's failure at 2 is not by the horizon; gaps 0.1, 0.35
    drift = m.paired_drift(D_LEARNER, D_TEACHER, FAIL_LEARNER, FAIL_TEACHER, horizon=2)
    assert (drift.gap_mean, drift.gap_final, drift.failure_fraction) == (pytest.approx(0.225), pytest.approx(0.35), 0.0)
    # a longer horizon: no learner alive after step 3, gap and W1 undefined there; the summary is unchanged
    drift = m.paired_drift(D_LEARNER, D_TEACHER, FAIL_LEARNER, FAIL_TEACHER, horizon=6)
    assert (drift.gap_mean, drift.gap_final) == (pytest.approx(0.5125), pytest.approx(0.9))
    np.testing.assert_array_equal(np.isnan(drift.w1), [0, 0, 0, 0, 1, 1])
    assert not drift.w1.flags.writeable


def test_paired_drift_edge_cases():
    rng = np.random.default_rng(0)
    d = rng.normal(0, 0.3, (5, 20))
    # teacher vs the same teacher run: the floor is exactly 0 here (with two different runs it is not)
    drift = m.paired_drift(d, d, [-1] * 5, [-1] * 5, 20)
    assert (drift.gap_mean, drift.gap_final, drift.failure_fraction) == (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(drift.w1, np.zeros(20))
    # all learner episodes fail at step 0: nothing alive to compare, every episode failed
    drift = m.paired_drift(np.full((5, 1), 2.0), d, [0] * 5, [-1] * 5, 20)
    assert math.isnan(drift.gap_mean) and math.isnan(drift.gap_final) and np.all(np.isnan(drift.w1))
    assert drift.failure_fraction == 1.0
    drift = m.paired_drift(d, d, [-1] * 5, [-1] * 5, 0)
    assert drift.w1.shape == (0,) and math.isnan(drift.gap_mean) and drift.failure_fraction == 0.0


def test_paired_drift_rejects_bad_input():
    with pytest.raises(ValueError, match="teacher episodes"):
        m.paired_drift([[0.0]], [[0.0], [0.0]], [-1], [-1, -1], 1)
    with pytest.raises(ValueError, match=r"\(learner\).*should have 1 recorded steps"):
        m.paired_offset_gap([[0.0, 0.0]], [[0.0, 0.0]], [0], [-1])
    with pytest.raises(ValueError, match="entries for"):
        m.paired_offset_gap([[0.0]], [[0.0]], [-1], [-1, -1])
    with pytest.raises(ValueError, match="horizon"):
        m.paired_drift([[0.0]], [[0.0]], [-1], [-1], -1)
    with pytest.raises(ValueError, match="no episodes"):
        m.paired_offset_gap([], [], [], [])
