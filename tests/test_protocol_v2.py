"""Protocol steerbench-v2: its episodes, the offpolicy and replica modes, the private track list, the
common random numbers, the v2 results, and the synthetic reference policies on the real simulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
from benchmark.evaluation.protocol import ProtocolError, load_protocol
from benchmark.evaluation.records import read_records
from benchmark.evaluation.results import Results, load_result
from benchmark.evaluation.rollouts import run_episodes
from benchmark.evaluation.statistics import power_two_proportions
from benchmark.rollout.policies import DriftingTeacher, NoisyTeacher, TeacherPolicy
from envs import BUILTIN_TRACKS, TEST_SEEDS

TINY = Path(__file__).parent / "data" / "protocol-tiny-v2.yaml"


# --- the protocol file ----------------------------------------------------------------------------


def test_v2_profiles_have_the_held_out_tracks_and_the_power_the_issue_asks_for():
    p = load_protocol("steerbench-v2")
    assert p.version == 2 and p.metrics is not None
    for profile, at_least in (("quick", 24), ("full", 80)):
        held_out = [(t, s) for t, s in p.tracks(profile) if s is not None]
        seen = [t for t, s in p.tracks(profile) if s is None]
        assert len(held_out) >= at_least and all(s in TEST_SEEDS for _, s in held_out)
        assert seen and all(t in BUILTIN_TRACKS for t in seen)
        crash = [e for e in p.episodes(profile) if e.mode == "crash" and e.condition == "disturbed"]
        assert sum(not e.seen for e in crash) == len(held_out)  # one episode per held-out track
        assert all(e.seen == (e.track_seed is None) for e in crash)
    # the documented power: 0.33 against 0.13 with the full profile's 80 held-out tracks
    assert power_two_proportions(0.33, 0.13, 80) >= 0.8 > power_two_proportions(0.33, 0.13, 24)


def test_offpolicy_and_replica_episodes_replay_the_crash_episodes():
    p = load_protocol(str(TINY))
    everyone = p.episodes("quick")
    teacher = p.episodes("quick", teacher=True)
    assert {e.mode for e in everyone} == {"crash", "offpolicy"}  # replicas are the teacher's alone
    assert {e.mode for e in teacher} == {"crash", "offpolicy", "replica"}
    crash = {(e.track, e.track_seed): e for e in teacher if e.mode == "crash"}
    for e in teacher:
        c = crash[(e.track, e.track_seed)]
        assert (e.seed, e.lateral_offset, e.heading_error, e.disturbance) == (
            c.seed, c.lateral_offset, c.heading_error, c.disturbance)
        assert e.disturbance_stream == (1 if e.mode == "replica" else 0)


def test_v1_episodes_are_unchanged_by_v2():
    # v1's episodes still come from the v1 rule (the stored v1 references are tested in test_reference)
    p = load_protocol("steerbench-v1")
    assert {e.mode for e in p.episodes("full", teacher=True)} == {"crash", "intervention"}
    assert not any(e.seen or e.disturbance_stream for e in p.episodes("full"))


def _copy_protocol(tmp_path: Path, text_edit=None) -> Path:
    path = tmp_path / "protocol.yaml"
    text = TINY.read_text()
    path.write_text(text_edit(text) if text_edit else text)
    return path


def test_a_private_track_list_lives_in_its_own_file(tmp_path):
    path = _copy_protocol(tmp_path)
    p = load_protocol(str(path))
    with pytest.raises(ProtocolError, match="private test list"):
        p.episodes("test")
    (tmp_path / "protocol-tiny-v2.test-tracks").write_text("# private\nprocedural:1000500-1000501\n")
    load_protocol.cache_clear()
    p = load_protocol(str(path))
    assert [e.track_seed for e in p.episodes("test")] == [1000500, 1000501]
    assert len(p.tracks_sha256("test")) == 64 and p.tracks_sha256("quick") is None
    (tmp_path / "protocol-tiny-v2.test-tracks").write_text("oval\n")
    load_protocol.cache_clear()
    with pytest.raises(ProtocolError, match="seen_tracks"):
        load_protocol(str(path)).episodes("test")
    load_protocol.cache_clear()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("version: 2\n", ""), "version-2 keys in a version-1 protocol"),
    (lambda t: t.replace("    offpolicy_conditions: [disturbed]\n", "    offpolicy_conditions: [nominal]\n"),
     "not among the profile's crash-mode conditions"),
    (lambda t: t.replace("  mistake_tau_per_m: 0.02\n", "  mistake_tau: 0.02\n"), "unknown key 'mistake_tau'"),
    (lambda t: t.replace("version: 2\n", "version: 3\n"), "unknown version 3"),
])
def test_malformed_v2_protocols_are_refused(tmp_path, edit, message):
    with pytest.raises(ProtocolError, match=message):
        load_protocol(str(_copy_protocol(tmp_path, edit)))
    load_protocol.cache_clear()


# --- common random numbers and the offpolicy mode -------------------------------------------------


def test_the_teacher_driving_for_a_learner_retraces_its_own_episode_exactly():
    """Common random numbers, end to end: in offpolicy mode the teacher drives under the learner's
    disturbance sequence, so the trajectory is the teacher's own crash-mode one, step for step, while
    the recorded actions are the learner's answers; the replica's second sequence differs."""
    p = load_protocol(str(TINY))
    eps = [e for e in p.episodes("quick", teacher=True) if e.track_seed == 1000101]
    by_mode = {e.mode: e for e in eps}
    teacher = {m: r for m, r in zip(by_mode, run_episodes(TeacherPolicy(), list(by_mode.values())))}
    learner = run_episodes(DriftingTeacher(), [by_mode["offpolicy"]])[0]
    assert learner.d == teacher["crash"].d and learner.teacher_action == teacher["crash"].teacher_action
    assert learner.action != learner.teacher_action  # the learner's answers, not executed
    assert teacher["replica"].d != teacher["crash"].d  # another disturbance sequence, another path


# --- v2 results end to end ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_v2(tmp_path_factory):
    """teacher, straight, noisy-teacher and drifting-teacher on the tiny v2 protocol (references
    computed once under ./results of a temporary working directory)."""
    root = tmp_path_factory.mktemp("v2")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    out = {}
    for policy in ("teacher", "noisy-teacher", "drifting-teacher"):
        out[policy] = evaluate(EvaluateConfig(policy=policy, protocol=str(TINY), profile="quick", progress=False))
    out["straight"] = load_result(root / "results" / "steerbench-tiny-v2" / "quick" / "straight").results
    out["root"] = root
    yield out
    mp.undo()


def test_v2_results_round_trip_and_hold_the_paired_metrics(tiny_v2):
    for policy in ("teacher", "straight", "noisy-teacher", "drifting-teacher"):
        results = tiny_v2[policy]
        assert results.schema_version == 2
        text = json.dumps(results.to_json())
        assert Results.from_json(json.loads(text)).to_json() == results.to_json()
        paired = results.metrics.conditions["disturbed"].paired
        assert paired.episodes == 4  # held-out only: the seen oval is a family of its own
        assert [f.family for f in paired.families][0] == "seen" and paired.families[0].crashes.n == 1
    teacher = tiny_v2["teacher"].metrics.conditions["disturbed"].paired
    assert teacher.mistakes.eps_on.k == 0 and teacher.mistakes.eps_on.high > 0  # Wilson: 0/n is not [0, 0]
    assert teacher.drift.floor_m == teacher.drift.gap_m.mean > 0  # the teacher's row is the floor
    assert teacher.regret is None  # against its replica: a floor, not a regret
    straight = tiny_v2["straight"].metrics.conditions["disturbed"].paired
    assert straight.normalised_score == 0.0 and straight.crashes.k >= 3
    from benchmark.evaluation.results import headline

    line = headline(tiny_v2["straight"])  # what `evaluate` prints: v2's main condition
    assert line["disturbed_crashes"] == f"{straight.crashes.k}/4" and line["nominal_survival"] is None


def test_the_synthetic_references_show_their_known_shapes(tiny_v2):
    """noisy-teacher: independent mistakes, the same on and off the teacher's path (ratio exactly 1,
    its noise being a function of track and step), no crash; drifting-teacher: more mistakes on its own
    states than on the teacher's (ratio > 1), a larger paired regret and crashes."""
    noisy = tiny_v2["noisy-teacher"].metrics.conditions["disturbed"].paired
    drifting = tiny_v2["drifting-teacher"].metrics.conditions["disturbed"].paired
    assert noisy.mistakes.covariate_shift_ratio == 1.0 and noisy.crashes.k == 0
    assert 0.4 < noisy.mistakes.eps_on.rate < 0.6  # P(|N(0, 0.03)| > 0.02) = 0.505
    assert drifting.mistakes.covariate_shift_ratio > 1.2
    assert drifting.regret.curve.value[-1] > 3 * noisy.regret.curve.value[-1]
    assert drifting.drift.gap_m.mean > 2 * noisy.drift.gap_m.mean
    assert noisy.normalised_score == 1.0 > drifting.normalised_score
    for m in (noisy, drifting):  # every rate with its interval
        e = m.excursions
        assert e.rate_low <= e.onset_rate_per_km <= e.rate_high and e.onsets > 0
        assert m.regret.slope_low <= m.regret.slope <= m.regret.slope_high


def test_a_learners_v2_records_are_whole_and_its_references_are_reused(tiny_v2):
    root = tiny_v2["root"] / "results" / "steerbench-tiny-v2" / "quick"
    read = read_records(root / "drifting-teacher" / "records.jsonl")
    modes = {r.mode for r in read.records}
    assert modes == {"crash", "offpolicy"} and not read.dropped
    teacher = read_records(root / "teacher" / "records.jsonl").records
    assert sum(r.mode == "replica" for r in teacher) == 4  # the held-out tracks only, not the seen oval
    assert not any(r.mode == "offpolicy" and r.track == "oval" for r in read.records)
    before = (root / "teacher" / "records.jsonl").stat().st_mtime_ns
    evaluate(EvaluateConfig(policy="noisy-teacher", protocol=str(TINY), profile="quick", progress=False,
                            out=tiny_v2["root"] / "again"))
    assert (root / "teacher" / "records.jsonl").stat().st_mtime_ns == before  # computed once, reused


def test_a_reference_evaluated_elsewhere_becomes_the_shared_reference(tmp_path, monkeypatch):
    """The leaderboard evaluates its teacher entry in its own folder: share_reference makes those
    records the protocol's drift reference, so the learners' results do not evaluate it again."""
    import benchmark.evaluation.evaluate as ev

    monkeypatch.chdir(tmp_path)
    config = EvaluateConfig(policy="teacher", name="board-teacher", protocol=str(TINY), profile="quick",
                            drift_reference=False, progress=False, out=tmp_path / "board" / "teacher")
    evaluate(config)
    records = read_records(tmp_path / "board" / "teacher" / "records.jsonl").records
    assert not ev.share_reference("teacher", str(TINY), "quick", records[:-1])  # only whole profiles
    assert ev.share_reference("teacher", str(TINY), "quick", records[::-1])
    assert not ev.share_reference("teacher", str(TINY), "quick", records)  # a complete one is left alone
    shared = read_records(tmp_path / "results" / "steerbench-tiny-v2" / "quick" / "teacher" / "records.jsonl")
    assert shared.meta["policy"]["name"] == "teacher" and not shared.dropped
    order = [str(e.key) for e in load_protocol(str(TINY)).episodes("quick", teacher=True)]
    assert [r.key for r in shared.records] == order  # in the protocol's order
    assert sorted(json.dumps(r.to_json()) for r in shared.records) == sorted(json.dumps(r.to_json()) for r in records)

    def no_second_evaluation(config):
        raise AssertionError(f"evaluated {config.policy} again")

    monkeypatch.setattr(ev, "evaluate", no_second_evaluation)
    again = ev.reference_records("teacher", str(TINY), "quick", config, ["disturbed"])
    assert {r.key for r in again} == {r.key for r in records}


def test_noisy_teacher_noise_depends_on_track_and_step_only():
    a, b = NoisyTeacher(), NoisyTeacher()
    a.reset(2)
    b.reset(5)
    infos = [{"teacher_action": 0.0, "track": "oval", "step": 3}, {"teacher_action": 0.0, "track": "oval", "step": 4}]
    x = a.act_on_state(infos, np.array([0, 1]))
    assert np.array_equal(x, b.act_on_state(infos, np.array([4, 2]))) and x[0] != x[1]


def test_v2_summary_and_figures(tiny_v2, tmp_path):
    from benchmark.reporting.plots import plot_all
    from benchmark.reporting.summary import write_summary

    root = tiny_v2["root"] / "results" / "steerbench-tiny-v2" / "quick"
    dirs = [root / n for n in ("teacher", "straight", "noisy-teacher", "drifting-teacher")]
    text = write_summary(dirs, tmp_path / "summary.md", condition="disturbed").read_text()
    assert "## Calibration: synthetic references" in text and "| drifting-teacher |" in text
    assert "0/4 0.00 [0.00, 0.49]" in text  # the teacher's crashes with their Wilson interval
    assert "## Crashes by track family" in text
    figures = plot_all(dirs, tmp_path / "figures", condition="disturbed")
    assert sorted(f.name for f in figures) == ["compounding.png", "survival.png", "trajectories.png"]
    shutil.rmtree(tmp_path / "figures")
