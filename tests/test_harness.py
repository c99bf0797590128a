"""The evaluation harness: protocol, invalid policies, crash-safe resume, determinism."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from benchmark.evaluation.evaluate import (EvaluateConfig, RecordsMismatch, _start, bundles_of, evaluate, evaluate_many,
                                          groups_of, policy_spec, shared_tasks)
from benchmark.evaluation.protocol import ProtocolError, load_protocol
from benchmark.evaluation.results import Results
from benchmark.evaluation.rollouts import run_episodes
from benchmark.rollout.policies import StraightPolicy, TeacherPolicy

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "protocol-tiny.yaml")


def nan_onnx(path: Path) -> Path:
    """An ONNX policy with the right signature whose curvature is always NaN."""
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, ["N", 66, 200, 3])
    out = helper.make_tensor_value_info("curvature", TensorProto.FLOAT, ["N", 1])
    nodes = [
        helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "axis"], ["u"]),
        helper.make_node("Mul", ["u", "nan"], ["curvature"]),
    ]
    inits = [helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
             helper.make_tensor("nan", TensorProto.FLOAT, [1], [float("nan")])]
    model = helper.make_model(helper.make_graph(nodes, "nan", [frames], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_protocol_is_versioned_and_episodes_are_fixed():
    assert load_protocol().name == "steerbench-v2"  # the default
    p = load_protocol("steerbench-v1")
    assert p.name == "steerbench-v1" and len(p.sha256) == 64
    a, b = p.episodes("quick"), p.episodes("quick")
    assert a == b and len({e.key for e in a}) == len(a)
    assert max(p.horizons("full")) >= 3000
    from envs import TEST_SEEDS

    assert all(e.track_seed in TEST_SEEDS for e in p.episodes("full") if e.track == "procedural")
    perturbed = [e for e in a if e.condition == "perturbed"]
    assert all(e.lateral_offset != 0 for e in perturbed)
    assert {e.mode for e in a} == {"crash", "intervention"}


def test_unknown_protocol_profile_or_condition_is_a_clear_error():
    with pytest.raises(ProtocolError, match="unknown protocol 'steerbench-v9'"):
        load_protocol("steerbench-v9")
    with pytest.raises(ProtocolError, match="unknown profile 'medium'"):
        load_protocol().episodes("medium")
    with pytest.raises(ProtocolError, match="unknown condition 'snow'"):
        load_protocol().episodes("quick", ["snow"])


class Flaky:
    """Raises on its 5th call, returns the wrong shape on its 8th: invalid, with reasons."""

    name = "flaky"

    def __init__(self):
        self.calls = 0

    def reset(self, n):
        pass

    def act(self, frames, episodes):
        self.calls += 1
        if self.calls == 5:
            raise RuntimeError("boom")
        if self.calls == 8:
            return np.zeros((len(frames), 2))
        return np.zeros(len(frames))


def test_invalid_policy_is_recorded_with_its_reason_and_the_run_goes_on():
    eps = load_protocol(TINY).episodes("quick", ["nominal"])
    policy = Flaky()
    first = run_episodes(policy, eps[:2])
    second = run_episodes(policy, eps[2:4])
    third = run_episodes(policy, eps[:2])
    assert {r.status for r in first} == {"invalid"} and "raised RuntimeError: boom" in first[0].reason
    assert {r.status for r in second} == {"invalid"} and "shape (2, 2)" in second[0].reason
    assert {r.status for r in third} <= {"finished", "crashed"}  # later groups run normally


def test_nan_policy_through_the_harness_is_invalid_not_fatal(tmp_path):
    path = nan_onnx(tmp_path / "nan.onnx")
    results = evaluate(EvaluateConfig(policy=str(path), protocol=TINY, conditions=("nominal",), out=tmp_path / "r",
                                      drift_reference=False, progress=False, workers=1))
    m = results.metrics
    assert m.invalid == m.episodes == 8  # 2 tracks x (crash, intervention) x 2 episodes
    assert any("non-finite" in r for r in m.invalid_reasons)


def test_results_carry_provenance_and_numbers(tmp_path, untrained_model):
    results = evaluate(EvaluateConfig(policy=str(untrained_model), protocol=TINY, conditions=("nominal",),
                                      out=tmp_path / "r", drift_reference=False, progress=False, workers=1))
    assert results.schema_version == 1
    assert results.protocol.name == "steerbench-tiny" and len(results.protocol.sha256) == 64
    assert len(results.policy.sha256) == 64 and results.packages["torch"]
    assert results.git_sha and results.hardware["cpus"] >= 1
    crash = results.metrics.crash("nominal")
    assert isinstance(crash.survival[0], float) and isinstance(crash.mean_abs_offset_m.mean, float)
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results.to_json()))
    assert Results.from_json(on_disk) == results  # the reader gives back what was written


def test_two_runs_give_identical_metrics(tmp_path, untrained_model):
    kwargs = dict(policy=str(untrained_model), protocol=TINY, progress=False, drift_reference=False, workers=2)
    a = evaluate(EvaluateConfig(out=tmp_path / "a", **kwargs))
    b = evaluate(EvaluateConfig(out=tmp_path / "b", **kwargs))
    assert a.metrics == b.metrics


def test_workers_get_a_tracks_groups_together_and_every_group_once():
    protocol = load_protocol(str(ROOT / "tests" / "data" / "protocol-tiny-v2.yaml"))
    groups = groups_of(protocol.episodes("quick"), 8)
    for workers, most in ((1, len(groups) // 4), (2, len(groups) // 8), (64, 1)):
        bundles = bundles_of(groups, workers)
        assert sorted(g[0].group for b in bundles for g in b) == sorted(g[0].group for g in groups)
        assert all(len({(g[0].track, g[0].track_seed) for g in b}) == 1 and 1 <= len(b) <= max(1, most)
                   for b in bundles)
    assert max(len(b) for b in bundles_of(groups, 1)) > 1  # a track's conditions and modes share a task
    tracks = list(dict.fromkeys((g[0].track, g[0].track_seed) for g in groups))
    last = [b for b in bundles_of(groups, 1) if (b[0][0].track, b[0][0].track_seed) in tracks[-2:]]
    assert all(len(b) == 1 for b in last) and len(last) == sum(
        (g[0].track, g[0].track_seed) in tracks[-2:] for g in groups)  # the last 2 tracks: a group a task


TINY_V2 = str(ROOT / "tests" / "data" / "protocol-tiny-v2.yaml")


def test_evaluations_run_together_give_each_the_records_and_results_it_gets_alone(tmp_path, untrained_model):
    policies = ("teacher", "straight", str(untrained_model))
    configs = {side: [EvaluateConfig(policy=p, protocol=TINY_V2, out=tmp_path / side / Path(p).name, progress=False,
                                     drift_reference=False, workers=2) for p in policies] for side in ("alone", "together")}
    alone = [evaluate(c) for c in configs["alone"]]
    together = evaluate_many(configs["together"])
    for policy, a, b, ca, cb in zip(policies, alone, together, configs["alone"], configs["together"]):
        assert a.metrics == b.metrics and a.policy == b.policy
        # the same records (appended in the order the groups finished)
        lines = [sorted((c.out / "records.jsonl").read_text().splitlines()) for c in (ca, cb)]
        assert lines[0] == lines[1]
        assert len(lines[0]) == 1 + len(load_protocol(TINY_V2).episodes("quick", teacher=policy == "teacher"))
    # run again, every folder is complete: nothing runs, the same results
    assert [r.metrics for r in evaluate_many(configs["together"])] == [r.metrics for r in together]


def test_evaluations_run_together_share_a_tracks_task_and_split_the_last_tracks(tmp_path):
    protocol = load_protocol(TINY_V2)
    runs = []
    for p in ("teacher", "straight"):
        (tmp_path / p).mkdir()
        runs.append(_start(EvaluateConfig(policy=p, protocol=TINY_V2), protocol, policy_spec(p), tmp_path / p))
    tracks = list(dict.fromkeys((g[0].track, g[0].track_seed) for g in runs[0].todo))
    assert len(tracks) == 5
    tasks = shared_tasks(runs, workers=1)
    assert sorted((tag, g[0].group) for t in tasks for tag, _, g, _, _ in t) == \
        sorted((tag, g[0].group) for tag, r in enumerate(runs) for g in r.todo)  # every group, once
    assert all(len({(g[0].track, g[0].track_seed) for _, _, g, _, _ in t}) == 1 for t in tasks)  # one track a task
    assert all({tag for tag, *_ in t} == {0, 1} for t in tasks[:3])  # both policies' groups of a track together
    assert len(tasks) == 3 + 4 and all(len({tag for tag, *_ in t}) == 1 for t in tasks[3:])  # the last 2 split
    with pytest.raises(ValueError, match="same workers"):  # one pool for all
        evaluate_many([EvaluateConfig(workers=1, out=tmp_path / "a"), EvaluateConfig(workers=2, out=tmp_path / "b")])


def test_a_killed_run_resumes_and_ends_with_the_same_results(tmp_path, untrained_model):
    kwargs = dict(policy=str(untrained_model), protocol=TINY, progress=False, drift_reference=False, workers=1,
                  group_size=2)
    reference = evaluate(EvaluateConfig(out=tmp_path / "ref", **kwargs))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "benchmark", "evaluate", "--policy", str(untrained_model), "--protocol", TINY,
           "--out", str(out), "--no-drift-reference", "--workers", "1", "--group-size", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    records = out / "records.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if records.exists() and len(records.read_text().splitlines()) >= 3:  # meta + a finished group
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = [json.loads(line) for line in records.read_text().splitlines()[1:] if line.strip()]
    total = len(load_protocol(TINY).episodes("quick"))
    assert 0 < len(partial) < total, "the run should have been killed part-way"
    resumed = evaluate(EvaluateConfig(out=out, **kwargs))
    assert resumed.metrics == reference.metrics
    keys = [json.loads(line)["key"] for line in records.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == total


def _session_members(sid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    members.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return members


def test_workers_exit_when_the_evaluation_is_killed(tmp_path, untrained_model):
    cmd = [sys.executable, "-m", "benchmark", "evaluate", "--policy", str(untrained_model), "--protocol", TINY,
           "--out", str(tmp_path / "run"), "--no-drift-reference", "--workers", "2", "--group-size", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(_session_members(proc.pid)) < 3:  # the parent, its resource tracker, a worker
            time.sleep(0.05)
        assert len(_session_members(proc.pid)) >= 3, "the evaluation never started its workers"
        os.kill(proc.pid, signal.SIGKILL)  # the parent only, as `kill PID` would
        proc.wait()
        deadline = time.time() + 20
        while time.time() < deadline and _session_members(proc.pid):
            time.sleep(0.1)
        assert _session_members(proc.pid) == [], "workers outlived the killed evaluation"
    finally:
        for pid in _session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_resume_refuses_records_of_another_policy(tmp_path, untrained_model):
    evaluate(EvaluateConfig(policy="straight", protocol=TINY, conditions=("nominal",), out=tmp_path / "r",
                            drift_reference=False, progress=False, workers=1))
    with pytest.raises(RecordsMismatch, match="another policy"):
        evaluate(EvaluateConfig(policy=str(untrained_model), protocol=TINY, conditions=("nominal",),
                                out=tmp_path / "r", drift_reference=False, progress=False, workers=1))


def test_teacher_and_straight_policies_behave_as_references():
    eps = load_protocol(TINY).episodes("quick", ["nominal"])[:2]
    teacher = run_episodes(TeacherPolicy(), eps)
    straight = run_episodes(StraightPolicy(), eps)
    assert all(r.status == "finished" for r in teacher)
    assert max(abs(v) for r in teacher for v in r.d) < 1.0
    assert np.mean([max(abs(v) for v in r.d) for r in straight]) > np.mean([max(abs(v) for v in r.d) for r in teacher])


class Veering(StraightPolicy):
    name = "veering"

    def act(self, frames, episodes):
        return np.full(len(frames), 0.04)


def test_intervention_mode_counts_and_recovers():
    eps = [e for e in load_protocol(TINY).episodes("quick") if e.mode == "intervention"][:2]
    records = run_episodes(Veering(), eps)
    for r in records:
        assert r.status == "finished" and r.steps == eps[0].max_steps
        assert r.interventions >= 1 and r.intervention_steps == sorted(r.intervention_steps)
        assert max(abs(v) for v in r.d) < 2.0  # put back on the centre line after each excursion
