"""Protocol steerbench-tasks-v1: the obstacle conditions on the held-out tracks, their validation, a tiny
teacher evaluation on them, and (slow) the teacher over every obstacle episode of the quick profile."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
from benchmark.evaluation.protocol import PROTOCOL_DIR, ProtocolError, load_protocol
from benchmark.evaluation.records import read_records
from benchmark.evaluation.rollouts import Evaluation, run_episodes
from benchmark.rollout.policies import TeacherPolicy
from envs import ObstacleConfig

TINY = Path(__file__).parent / "data" / "protocol-tiny-tasks.yaml"


def test_the_tasks_protocol_runs_the_obstacle_conditions_on_v2s_held_out_tracks():
    tasks, v2 = load_protocol("steerbench-tasks-v1"), load_protocol("steerbench-v2")
    assert tasks.version == 2 and tasks.metrics == v2.metrics
    for profile in ("quick", "full"):
        held_out = [t for t in v2.tracks(profile) if t[1] is not None]
        assert tasks.tracks(profile) == held_out
    obstacles, disturbed = tasks.conditions["obstacles"], tasks.conditions["obstacles_disturbed"]
    assert obstacles.obstacles == disturbed.obstacles == ObstacleConfig()  # written out, today's defaults
    assert obstacles.disturbance is None and disturbed.disturbance == v2.conditions["disturbed"].disturbance
    episodes = tasks.episodes("quick", teacher=True)
    assert {e.mode for e in episodes} == {"crash", "offpolicy", "replica"}
    assert all(e.obstacles == ObstacleConfig() for e in episodes)


def test_the_tasks_episodes_are_the_same_every_time():
    a = load_protocol("steerbench-tasks-v1").episodes("full", teacher=True)
    load_protocol.cache_clear()
    b = load_protocol("steerbench-tasks-v1").episodes("full", teacher=True)
    assert a == b and len({e.seed for e in a if e.mode == "crash"}) == 160  # 80 tracks, 2 conditions


def test_v1_and_v2_are_the_files_their_stored_results_were_made_with():
    digest = {p: hashlib.sha256((PROTOCOL_DIR / f"{p}.yaml").read_bytes()).hexdigest()
              for p in ("steerbench-v1", "steerbench-v2")}
    assert digest == {"steerbench-v1": "8a2d070a24686ae205801397001c79533dc9f88ad31676b49e6c3ed0a8eb45ea",
                      "steerbench-v2": "4d425a322e43f6c271468e53f6086b63bf9d68eda7a6e71294870b391b767e49"}


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("{per_km: 8.0, min_spacing_m: 100.0}}", "{per_km: 8.0, spacing_m: 100.0}}"),
     r"conditions.obstacles.obstacles: unknown key 'spacing_m'; valid keys are: clearance_m"),
    (lambda t: t.replace("{obstacles: {per_km: 8.0, min_spacing_m: 100.0}}", "{obstacles: null}"),
     "must be a mapping of obstacle settings"),
    (lambda t: t.replace("{per_km: 8.0, min_spacing_m: 100.0}}", "{kinds: [car, truck]}}"), "obstacle kinds must be"),
    (lambda t: t.replace("    offpolicy_conditions: [obstacles]\n",
                         "    offpolicy_conditions: [obstacles]\n    intervention_conditions: [obstacles]\n"),
     "has obstacles, whose passes exceed the safety driver's offset"),
])
def test_malformed_obstacle_conditions_are_refused(tmp_path, edit, message):
    path = tmp_path / "protocol.yaml"
    path.write_text(edit(TINY.read_text()))
    with pytest.raises(ProtocolError, match=message):
        load_protocol(str(path))
    load_protocol.cache_clear()


def test_a_tiny_teacher_evaluation_on_the_obstacle_conditions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = evaluate(EvaluateConfig(policy="teacher", protocol=str(TINY), profile="quick", progress=False))
    records = read_records(tmp_path / "results" / "steerbench-tiny-tasks" / "quick" / "teacher" / "records.jsonl")
    assert {(r.condition, r.mode) for r in records.records} == {
        ("obstacles", "crash"), ("obstacles", "offpolicy"), ("obstacles_disturbed", "crash"),
        ("obstacles_disturbed", "replica")}
    assert all(r.status == "finished" for r in records.records)  # no collision, no off-road
    for condition in ("obstacles", "obstacles_disturbed"):
        paired = results.metrics.conditions[condition].paired
        assert paired.episodes == 2 and paired.crashes.k == 0
    # the teacher met obstacles: it left the lane centre by more than a pass needs
    assert max(abs(d) for r in records.records for d in r.d if d is not None) > 2.0


def test_run_episodes_with_obstacles_is_deterministic():
    protocol = load_protocol("steerbench-tasks-v1")
    eps = [dataclasses.replace(e, max_steps=120) for e in protocol.episodes("quick")
           if e.mode == "crash" and e.track_seed == 1000105]
    a, b = run_episodes(TeacherPolicy(), eps), run_episodes(TeacherPolicy(), eps)
    assert [r.to_json() for r in a] == [r.to_json() for r in b] and all(r.status == "finished" for r in a)


class Passes(Evaluation):
    """Also notes each obstacle the car drives past (its centre within a metre), with the side taken."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.met: set[tuple[str, str, int, str]] = set()

    def after_step(self, number, env, info, terminated):
        super().after_step(number, env, info, terminated)
        if info["obstacle_distance_m"] is not None and abs(info["obstacle_distance_m"]) < 1.0:
            ep = self.episodes[number]
            self.met.add((ep.condition, ep.key.track, info["obstacle"], info["obstacle_side"]))


@pytest.mark.slow
def test_the_teacher_drives_every_obstacle_episode_of_the_tasks_protocol_quick():
    """The protocol's own crash episodes (24 held-out tracks, 1,000 steps, with and without the
    disturbance): no collision and no off-road, obstacles passed on both sides in each condition."""
    episodes = [e for e in load_protocol("steerbench-tasks-v1").episodes("quick") if e.mode == "crash"]
    assert len(episodes) == 48
    run = Passes(TeacherPolicy(), episodes, intervention_threshold_m=1.0, policy_hz=10.0, env_kwargs=None)
    run.run()
    failures = [(r.key, r.failure_type) for r in run.records if r.status != "finished"]
    assert failures == [] and all(r.steps == 1000 for r in run.records)
    for condition in ("obstacles", "obstacles_disturbed"):
        sides = [side for c, _, _, side in run.met if c == condition]
        assert len(sides) >= 30 and 0.3 < sides.count("left") / len(sides) < 0.7
