"""The benchmark's metric definitions (benchmark/evaluation/metrics.py), each against a case computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from benchmark.evaluation import metrics as m

NAN = float("nan")


# ------------------------------------------------------------------------------------------------
# Variable-length episodes
# ------------------------------------------------------------------------------------------------


def test_pad_episodes_pads_with_nan_and_cuts():
    padded = m.pad_episodes([[1.0, 2.0, 3.0], [4.0], []])
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, NAN, NAN], [NAN, NAN, NAN]])
    np.testing.assert_array_equal(m.pad_episodes([[1.0, 2.0, 3.0], [4.0]], length=2), [[1, 2], [4, NAN]])
    np.testing.assert_array_equal(m.pad_episodes([[1.0]], length=3), [[1, NAN, NAN]])
    # (T, 1) actions like the env's Box(1,) are flattened; a padded 2-D array passes through as a copy
    np.testing.assert_array_equal(m.pad_episodes([np.array([[0.1], [0.2]])]), [[0.1, 0.2]])
    a = np.array([[1.0, NAN]])
    b = m.pad_episodes(a)
    np.testing.assert_array_equal(b, a)
    assert b is not a
    # an object array of arrays (a pandas column) is a list of episodes
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = np.array([1.0, 2.0]), np.array([3.0])
    np.testing.assert_array_equal(m.pad_episodes(obj), [[1, 2], [3, NAN]])
    assert m.pad_episodes([]).shape == (0, 0)


def test_pad_episodes_refuses_ambiguous_input():
    with pytest.raises(ValueError, match="wrap a single episode"):
        m.pad_episodes(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="episode 1"):
        m.pad_episodes([[1.0], [[1.0, 2.0], [3.0, 4.0]]])


def test_episode_lengths_are_last_valid_index_plus_one():
    # the NaN at index 1 of the first episode is a missing step, not the end of the episode
    np.testing.assert_array_equal(m.episode_lengths([[1.0, NAN, 2.0], [1.0], []]), [3, 1, 0])
    np.testing.assert_array_equal(m.episode_lengths([[], []]), [0, 0])  # no recorded step anywhere


# ------------------------------------------------------------------------------------------------
# 1. Survival and crash rate
# ------------------------------------------------------------------------------------------------

FAILURES = [None, 2, 5, -1, 0]
TYPES = [None, "off_road", "collision", None, "off_road"]


def test_survival_hand_computed():
    # failed by T <=> f < T.  T=0: none -> 5/5; T=1: {0} -> 4/5; T=3: {0, 2} -> 3/5;
    # T=6: {0, 2, 5} -> 2/5; T=10: same -> 2/5
    np.testing.assert_allclose(m.survival(FAILURES, [0, 1, 3, 6, 10]), [1.0, 0.8, 0.6, 0.4, 0.4])
    np.testing.assert_allclose(m.crash_rate(FAILURES, [0, 1, 3, 6, 10]), [0.0, 0.2, 0.4, 0.6, 0.6])
    # a failure observed at step index 5 has not happened by T=5, it has by T=6
    np.testing.assert_allclose(m.survival([5], [5, 6]), [1.0, 0.0])
    # a scalar horizon gives a 1-element array; NaN and numpy arrays mean the same as None / -1
    np.testing.assert_allclose(m.survival(np.array([NAN, 2.0, -1]), 3), [2 / 3])


def test_survival_edge_cases():
    np.testing.assert_array_equal(m.survival([None, -1, None], [1, 1000]), [1.0, 1.0])  # no failures
    np.testing.assert_array_equal(m.survival([0, 0, 0], [0, 1, 10]), [1.0, 0.0, 0.0])  # all fail at t=0
    # an episode truncated at step 50 without failing is a survivor at T=3000: only failure steps matter
    np.testing.assert_array_equal(m.survival([-1, 100], [3000]), [0.5])
    with pytest.raises(ValueError, match="no episodes"):
        m.survival([], [10])
    with pytest.raises(ValueError, match="failure_steps"):
        m.survival([1.5], [10])
    with pytest.raises(ValueError, match="failure_steps"):
        m.survival([-2], [10])
    with pytest.raises(ValueError, match="horizons"):
        m.survival([1], [-1])


def test_crash_rate_by_type_hand_computed():
    rates = m.crash_rate_by_type(FAILURES, TYPES, [1, 3, 6, 10])
    # off_road at f=2 and f=0: T=1 -> 1/5, T=3.. -> 2/5; collision at f=5: only from T=6 -> 1/5
    np.testing.assert_allclose(rates["off_road"], [0.2, 0.4, 0.4, 0.4])
    np.testing.assert_allclose(rates["collision"], [0.0, 0.0, 0.2, 0.2])
    np.testing.assert_allclose(rates["crash"], [0.2, 0.4, 0.6, 0.6])
    np.testing.assert_allclose(rates["off_road"] + rates["collision"], m.crash_rate(FAILURES, [1, 3, 6, 10]))
    none = m.crash_rate_by_type([-1, -1], [None, NAN], [5])
    assert none["crash"][0] == none["off_road"][0] == none["collision"][0] == 0.0


def test_crash_rate_by_type_rejects_inconsistent_types():
    with pytest.raises(ValueError, match="expected one of"):
        m.crash_rate_by_type([3], [None], [10])
    with pytest.raises(ValueError, match="expected one of"):
        m.crash_rate_by_type([3], ["offroad"], [10])
    with pytest.raises(ValueError, match="no failure step"):
        m.crash_rate_by_type([-1], ["collision"], [10])
    with pytest.raises(ValueError, match="entries for"):
        m.crash_rate_by_type([1, 2], ["collision"], [10])


# ------------------------------------------------------------------------------------------------
# 2. Mean distance between failures
# ------------------------------------------------------------------------------------------------


def test_mean_distance_between_failures_hand_computed():
    # crash mode: (100 + 250 + 50) m / 2 failures = 200 m
    assert m.mean_distance_between_failures([100.0, 250.0, 50.0], [True, False, True]) == pytest.approx(200.0)
    # intervention mode: 400 m / (3 + 1 + 0) interventions = 100 m; a total count works too
    assert m.mean_distance_between_failures([100.0, 250.0, 50.0], [3, 1, 0]) == pytest.approx(100.0)
    assert m.mean_distance_between_failures([100.0, 250.0, 50.0], 8) == pytest.approx(50.0)


def test_mean_distance_between_failures_edge_cases():
    assert m.mean_distance_between_failures([100.0, 250.0], [0, 0]) == math.inf
    assert math.isnan(m.mean_distance_between_failures([0.0], [0]))
    assert m.mean_distance_between_failures([0.0], [1]) == 0.0
    with pytest.raises(ValueError, match="no episodes"):
        m.mean_distance_between_failures([], [])
    with pytest.raises(ValueError, match="entries for"):
        m.mean_distance_between_failures([1.0, 2.0], [1])
    with pytest.raises(ValueError, match=">= 0"):
        m.mean_distance_between_failures([-1.0], [1])


# ------------------------------------------------------------------------------------------------
# 3. Mean absolute lateral offset and heading error
# ------------------------------------------------------------------------------------------------


def test_mean_abs_offset_and_heading_hand_computed():
    offsets = [np.array([0.5, -1.0]), np.array([2.0])]
    # pooled over the 3 valid steps: (0.5 + 1.0 + 2.0) / 3 = 7/6
    assert m.mean_abs_lateral_offset(offsets) == pytest.approx(7 / 6)
    # the same from the padded representation
    assert m.mean_abs_lateral_offset(m.pad_episodes(offsets)) == pytest.approx(7 / 6)
    # per episode: (0.5 + 1.0) / 2 = 0.75 and 2.0
    np.testing.assert_allclose(m.per_episode_mean_abs(offsets), [0.75, 2.0])
    # horizon 1: steps t=0 only: (0.5 + 2.0) / 2 = 1.25
    assert m.mean_abs_lateral_offset(offsets, horizon=1) == pytest.approx(1.25)
    # headings: (0.1 + 0.3 + 0.2) / 3 = 0.2
    assert m.mean_abs_heading_error([[0.1, -0.3], [0.2]]) == pytest.approx(0.2)


def test_mean_abs_edge_cases():
    assert math.isnan(m.mean_abs_lateral_offset([[], []]))  # episodes but no valid step
    np.testing.assert_array_equal(m.per_episode_mean_abs([[], [1.0]]), [NAN, 1.0])
    with pytest.raises(ValueError, match="no episodes"):
        m.mean_abs_lateral_offset([])


# ------------------------------------------------------------------------------------------------
# 4. Teacher disagreement
# ------------------------------------------------------------------------------------------------


def test_teacher_disagreement_hand_computed():
    actions = [[0.01, 0.02, -0.01], [0.0]]
    teacher = [[0.00, 0.05, -0.01], [0.04]]
    # |diffs| = 0.01, 0.03, 0.00, 0.04 -> 0.08 / 4 = 0.02
    assert m.teacher_disagreement(actions, teacher) == pytest.approx(0.02)
    # horizon 1: 0.01 and 0.04 -> 0.025
    assert m.teacher_disagreement(actions, teacher, horizon=1) == pytest.approx(0.025)
    assert m.teacher_disagreement(actions, actions) == 0.0


def test_teacher_disagreement_rejects_mismatched_episodes():
    with pytest.raises(ValueError, match="same episode lengths"):
        m.teacher_disagreement([[0.1, 0.2]], [[0.1]])
    with pytest.raises(ValueError, match="teacher-action episodes"):
        m.teacher_disagreement([[0.1]], [[0.1], [0.2]])
    with pytest.raises(ValueError, match="no episodes"):
        m.teacher_disagreement([], [])


# ------------------------------------------------------------------------------------------------
# 5-6. Cost and cumulative cost
# ------------------------------------------------------------------------------------------------

# A: no failure, 4 steps; B: fails at step 1 (2 recorded steps); C: truncated after 2 steps
OFFSETS = [[0.5, -1.0, 3.0, 1.0], [1.0, 0.2], [-0.4, 0.6]]
COST_FAILURES = [-1, 1, None]


def test_cost_matrix_hand_computed():
    c = m.cost_matrix(OFFSETS, COST_FAILURES, d_max=2.0, horizon=4)
    expected = [
        [0.25, 0.5, 1.0, 0.5],  # |d| / 2, with min(1, 3/2) = 1 at t=2
        [0.5, 1.0, 1.0, 1.0],  # 1/2 at t=0, then 1 from the failure step on (absorbing)
        [0.2, 0.3, NAN, NAN],  # truncated: missing after its end
    ]
    np.testing.assert_allclose(c, expected)
    # a shorter horizon cuts; a longer one extends failures with 1 and truncation with NaN
    np.testing.assert_allclose(m.cost_matrix(OFFSETS, COST_FAILURES, 2.0, 1), [[0.25], [0.5], [0.2]])
    np.testing.assert_allclose(m.cost_matrix(OFFSETS, COST_FAILURES, 2.0, 6)[:, 4:], [[NAN, NAN], [1, 1], [NAN, NAN]])


def test_cost_matrix_edge_cases():
    # all fail at t=0: cost 1 everywhere
    np.testing.assert_array_equal(m.cost_matrix([[0.0], [0.1]], [0, 0], 2.0, 3), np.ones((2, 3)))
    # no failures, all on the centre line: cost 0
    np.testing.assert_array_equal(m.cost_matrix([[0.0, 0.0]], [-1], 2.0, 2), [[0.0, 0.0]])
    assert m.cost_matrix([[0.0]], [-1], 2.0, 0).shape == (1, 0)
    with pytest.raises(ValueError, match="no episodes"):
        m.cost_matrix([], [], 2.0, 10)
    with pytest.raises(ValueError, match="d_max"):
        m.cost_matrix([[0.0]], [-1], 0.0, 1)
    # failure_steps are 0-based: an episode failing at step 2 has 3 recorded steps, not 2
    with pytest.raises(ValueError, match="should have 3 recorded steps"):
        m.cost_matrix([[0.1, 0.2]], [2], 2.0, 5)
    with pytest.raises(ValueError, match="entries for"):
        m.cost_matrix([[0.1]], [-1, -1], 2.0, 5)


def test_cumulative_cost_hand_computed():
    c = m.cost_matrix(OFFSETS, COST_FAILURES, d_max=2.0, horizon=4)
    # per-step means (NaN-aware): t0 (0.25 + 0.5 + 0.2) / 3 = 0.95/3; t1 (0.5 + 1 + 0.3) / 3 = 0.6;
    # t2 (1 + 1) / 2 = 1.0; t3 (0.5 + 1) / 2 = 0.75
    np.testing.assert_allclose(m.mean_cost_per_step(c), [0.95 / 3, 0.6, 1.0, 0.75])
    # J(0) = 0; J(1) = 0.95/3; J(2) = 0.95/3 + 0.6; J(4) = 0.95/3 + 0.6 + 1.0 + 0.75
    np.testing.assert_allclose(
        m.cumulative_cost(c, [0, 1, 2, 4]), [0.0, 0.95 / 3, 0.95 / 3 + 0.6, 0.95 / 3 + 2.35]
    )


def test_cumulative_cost_edge_cases():
    # all fail at t=0: J(T) = T
    c = m.cost_matrix([[0.0], [0.0]], [0, 0], 1.0, 10)
    np.testing.assert_allclose(m.cumulative_cost(c, [1, 3, 10]), [1.0, 3.0, 10.0])
    # a step where no episode has data makes J undefined from there on
    c = m.cost_matrix([[0.5, 0.5]], [-1], 1.0, 4)
    np.testing.assert_array_equal(m.cumulative_cost(c, [2, 3]), [1.0, NAN])
    with pytest.raises(ValueError, match="exceeds"):
        m.cumulative_cost(c, [5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.cumulative_cost([[1.5]], [1])
    with pytest.raises(ValueError, match="no episodes"):
        m.cumulative_cost(np.zeros((0, 3)), [1])


# ------------------------------------------------------------------------------------------------
# 7. Growth exponent
# ------------------------------------------------------------------------------------------------

CHECKPOINTS = [10, 30, 100, 300, 1000]
T_MAX = 1000


def test_log_log_slope_exact():
    t = np.array(CHECKPOINTS)
    assert m.log_log_slope(t, 0.01 * t) == pytest.approx(1.0)
    assert m.log_log_slope(t, 3e-6 * t**2) == pytest.approx(2.0)
    # T = 0 and J <= 0 are left out; fewer than two usable points give NaN
    assert m.log_log_slope([0, 10, 100], [0.0, 0.1, 1.0]) == pytest.approx(1.0)
    assert math.isnan(m.log_log_slope([10, 100], [0.0, 1.0]))


def test_growth_exponent_recovers_1_and_2_exactly():
    rng = np.random.default_rng(0)
    t = np.arange(T_MAX)
    # constant cost 0.1 per step: J(T) = 0.1 T
    linear = np.full((5, T_MAX), 0.1)
    g = m.growth_exponent(linear, CHECKPOINTS, rng=rng, n_boot=50)
    assert g.exponent == pytest.approx(1.0)
    assert g.low == pytest.approx(1.0) and g.high == pytest.approx(1.0)  # identical episodes: collapses
    assert g.horizons_used == tuple(CHECKPOINTS)
    # c_t = (2t + 1) / 2000: J(T) = sum_{t<T} (2t + 1) / 2000 = T^2 / 2000
    quadratic = np.tile((2 * t + 1) / (2 * T_MAX), (5, 1))
    np.testing.assert_allclose(m.cumulative_cost(quadratic, CHECKPOINTS), np.array(CHECKPOINTS) ** 2 / 2000)
    g = m.growth_exponent(quadratic, CHECKPOINTS, rng=rng, n_boot=50)
    assert g.exponent == pytest.approx(2.0)
    assert g.low == pytest.approx(2.0) and g.high == pytest.approx(2.0)


@pytest.mark.parametrize("true_exponent", [1, 2])
def test_growth_exponent_interval_contains_the_truth_on_noisy_data(true_exponent):
    # each c[e, t] is a coin flip with E[c_t] = p_t, so E[J(T)] = 0.1 T (linear) or T^2 / 2000 (quadratic)
    rng = np.random.default_rng(0)
    t = np.arange(T_MAX)
    p = np.full(T_MAX, 0.1) if true_exponent == 1 else (2 * t + 1) / (2 * T_MAX)
    costs = (rng.random((200, T_MAX)) < p).astype(float)
    g = m.growth_exponent(costs, CHECKPOINTS, rng=rng)
    assert g.low < g.exponent < g.high
    assert g.low <= true_exponent <= g.high
    assert g.high - g.low < 0.5


def test_growth_exponent_reproducible_and_degenerate():
    costs = (np.random.default_rng(1).random((30, 300)) < 0.05).astype(float)
    a = m.growth_exponent(costs, [10, 30, 100, 300], rng=np.random.default_rng(7), n_boot=200)
    b = m.growth_exponent(costs, [10, 30, 100, 300], rng=np.random.default_rng(7), n_boot=200)
    assert a == b
    # no cost at all: no usable checkpoint, everything NaN
    g = m.growth_exponent(np.zeros((3, 100)), [10, 100], rng=np.random.default_rng(0))
    assert math.isnan(g.exponent) and math.isnan(g.low) and math.isnan(g.high) and g.horizons_used == ()
    with pytest.raises(TypeError, match="Generator"):
        m.growth_exponent(costs, [10, 30], rng=0)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# 8. Drift
# ------------------------------------------------------------------------------------------------


def test_tv_distance_hand_computed():
    # p = (1/4, 3/4), q = (1/2, 1/2): 0.5 (1/4 + 1/4) = 0.25
    assert m.tv_distance([1, 3], [2, 2]) == pytest.approx(0.25)
    assert m.tv_distance([1, 0], [0, 5]) == 1.0
    with pytest.raises(ValueError, match="sums to zero"):
        m.tv_distance([0, 0], [1, 1])


def test_tv_distance_1d_hand_computed():
    # bins [-1, 0), [0, 1]: x -> (0, 4/4), y -> (2/4, 2/4): TV = 0.5 (1/2 + 1/2) = 0.5
    assert m.tv_distance_1d([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, -0.3, -0.4], [-1.0, 0.0, 1.0]) == pytest.approx(0.5)
    # out-of-range values are clipped into the edge bins: -5 -> [-1, 0), 7 -> [0, 1]
    assert m.tv_distance_1d([-5.0, 7.0], [-0.5, 0.5], [-1.0, 0.0, 1.0]) == 0.0
    assert math.isnan(m.tv_distance_1d([], [1.0]))


def test_drift_tv_hand_computed():
    # d bins [-1, 0), [0, 1] and one psi bin [-1, 1]: 2 state bins + the failed bin
    edges = dict(d_edges=[-1.0, 0.0, 1.0], psi_edges=[-1.0, 1.0])
    learner_d = [[-0.5, -0.5], [0.5, 2.0], [0.5, 0.7]]  # 2.0 is clipped into [0, 1]
    teacher_d = [[-0.5, -0.5], [-0.2, 0.5]]
    zeros_l, zeros_t = np.zeros((3, 2)), np.zeros((2, 2))
    tv = m.drift_tv(learner_d, zeros_l, teacher_d, zeros_t, learner_failure_steps=[-1, -1, 1], **edges)
    # t=0: learner bins (0, 1, 1) -> p = (1/3, 2/3, 0); teacher (0, 0) -> q = (1, 0, 0)
    #      TV = 0.5 (2/3 + 2/3 + 0) = 2/3
    # t=1: learner (0, 1, failed) -> p = (1/3, 1/3, 1/3); teacher (0, 1) -> q = (1/2, 1/2, 0)
    #      TV = 0.5 (1/6 + 1/6 + 1/3) = 1/3
    np.testing.assert_allclose(tv, [2 / 3, 1 / 3])
    # 1-D version on d alone gives the same here (a single psi bin)
    tv1 = m.drift_tv_1d(learner_d, teacher_d, learner_failure_steps=[-1, -1, 1], edges=[-1.0, 0.0, 1.0])
    np.testing.assert_allclose(tv1, [2 / 3, 1 / 3])


def test_drift_tv_heading_bins():
    # same d, headings in different psi bins (default edges: 0.1 rad bins): disjoint -> 1
    d = [[0.0, 0.0]]
    tv = m.drift_tv(d, [[0.3, 0.3]], d, [[-0.3, 0.05]])
    np.testing.assert_array_equal(tv, [1.0, 1.0])


def test_drift_tv_identical_disjoint_and_failed():
    rng = np.random.default_rng(0)
    d, psi = rng.normal(0, 0.5, (20, 30)), rng.normal(0, 0.05, (20, 30))
    np.testing.assert_array_equal(m.drift_tv(d, psi, d, psi), np.zeros(30))  # identical samples
    tv = m.drift_tv(d - 10.0, psi, d + 10.0, psi)  # clipped into opposite edge bins: disjoint
    np.testing.assert_array_equal(tv, np.ones(30))
    # every learner episode fails at t=0 (1 recorded step): maximal drift over the whole horizon
    tv = m.drift_tv(d[:, :1], psi[:, :1], d, psi, learner_failure_steps=np.zeros(20), horizon=30)
    np.testing.assert_array_equal(tv, np.ones(30))


def test_drift_tv_missing_samples_and_errors():
    # the teacher's only episode is truncated after 1 step: no sample at t=1 -> NaN
    tv = m.drift_tv([[0.0, 0.0]], [[0.0, 0.0]], [[0.0]], [[0.0]])
    np.testing.assert_array_equal(tv, [0.0, NAN])
    with pytest.raises(ValueError, match="same episodes and lengths"):
        m.drift_tv([[0.0, 0.0]], [[0.0]], [[0.0]], [[0.0]])
    with pytest.raises(ValueError, match="recorded steps"):
        m.drift_tv([[0.0, 0.0]], [[0.0, 0.0]], [[0.0]], [[0.0]], learner_failure_steps=[0])
    with pytest.raises(ValueError, match="d_edges"):
        m.drift_tv([[0.0]], [[0.0]], [[0.0]], [[0.0]], d_edges=[1.0, 0.0])
    with pytest.raises(ValueError, match="no episodes"):
        m.drift_tv([], [], [[0.0]], [[0.0]])


# ------------------------------------------------------------------------------------------------
# 9. Autonomy
# ------------------------------------------------------------------------------------------------


def test_autonomy_hand_computed():
    # (1 - 2 * 6 / 600) * 100 = (1 - 0.02) * 100 = 98
    assert m.autonomy(2, 600.0) == pytest.approx(98.0)
    assert m.autonomy(0, 600.0) == 100.0
    # per-episode values are pooled: (1 - (1 + 2) * 6 / (100 + 200)) * 100 = 94
    assert m.autonomy([1, 2], [100.0, 200.0]) == pytest.approx(94.0)
    # not clipped: 200 interventions in 600 s -> (1 - 1200 / 600) * 100 = -100
    assert m.autonomy(200, 600.0) == pytest.approx(-100.0)
    with pytest.raises(ValueError, match="no elapsed time"):
        m.autonomy(0, 0.0)
    with pytest.raises(ValueError, match="non-negative integers"):
        m.autonomy(-1, 10.0)


# ------------------------------------------------------------------------------------------------
# 10. Aggregation
# ------------------------------------------------------------------------------------------------


def test_bootstrap_ci_hand_computed():
    # resampled means of [0, 1] are 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so with 1000 resamples
    # the 2.5 % and 97.5 % quantiles are 0 and 1
    point, low, high = m.bootstrap_ci([0.0, 1.0], rng=np.random.default_rng(0))
    assert (point, low, high) == (0.5, 0.0, 1.0)
    # a constant sample: every resample has the same mean
    assert m.bootstrap_ci([3.0, 3.0, 3.0], rng=np.random.default_rng(0)) == (3.0, 3.0, 3.0)
    # other statistics
    point, low, high = m.bootstrap_ci([1.0, 2.0, 3.0, 4.0, 100.0], np.median, rng=np.random.default_rng(0))
    assert point == 3.0 and low <= point <= high


def test_bootstrap_ci_degenerate_and_reproducible():
    assert m.bootstrap_ci([2.5], rng=np.random.default_rng(0)) == (2.5, 2.5, 2.5)
    assert all(math.isnan(v) for v in m.bootstrap_ci([], rng=np.random.default_rng(0)))
    x = np.random.default_rng(3).normal(size=40)
    a = m.bootstrap_ci(x, rng=np.random.default_rng(11))
    assert a == m.bootstrap_ci(x, rng=np.random.default_rng(11))
    assert a != m.bootstrap_ci(x, rng=np.random.default_rng(12))
    assert a[1] < a[0] < a[2]
    with pytest.raises(TypeError, match="Generator"):
        m.bootstrap_ci(x, rng=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        m.bootstrap_ci([1.0, NAN], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="alpha"):
        m.bootstrap_ci(x, alpha=1.5, rng=np.random.default_rng(0))


def test_iqm_hand_computed():
    # n=5: k = floor(5/4) = 1 -> mean(2, 3, 4) = 3
    assert m.iqm([100.0, 1.0, 3.0, 2.0, 4.0]) == pytest.approx(3.0)
    # n=8: k = 2 -> mean(3, 4, 5, 6) = 4.5
    assert m.iqm([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 100.0]) == pytest.approx(4.5)
    assert m.iqm([7.0]) == 7.0
    assert math.isnan(m.iqm([]))
    x = np.random.default_rng(0).normal(size=37)
    assert m.iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


def test_aggregate_hand_computed():
    out = m.aggregate([1.0, 2.0, 3.0, 10.0], np.random.default_rng(0))
    # mean (1 + 2 + 3 + 10) / 4 = 4; IQM: k = 1 -> mean(2, 3) = 2.5
    assert out["mean"] == pytest.approx(4.0) and out["iqm"] == pytest.approx(2.5) and out["n"] == 4
    assert 1.0 <= out["ci_low"] <= 4.0 <= out["ci_high"] <= 10.0
    assert out == m.aggregate([1.0, 2.0, 3.0, 10.0], np.random.default_rng(0))
    single = m.aggregate([5.0], np.random.default_rng(0))
    assert single == {"mean": 5.0, "ci_low": 5.0, "ci_high": 5.0, "iqm": 5.0, "n": 1}
    empty = m.aggregate([], np.random.default_rng(0))
    assert empty["n"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "ci_low", "ci_high", "iqm"))


def test_metrics_leave_global_random_state_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    m.aggregate([1.0, 2.0, 3.0], np.random.default_rng(0))
    m.growth_exponent(np.full((4, 20), 0.5), [5, 10, 20], rng=np.random.default_rng(0), n_boot=10)
    assert np.random.random() == expected
