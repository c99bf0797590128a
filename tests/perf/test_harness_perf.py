"""The harness's throughput on the teacher (no network): evaluate() on a small v2 profile in its
worker pool, against the bare env stepped with the teacher's action in one process, times the
number of workers; interleaved in one run. The bare env renders the centre camera (what a step
cost) or not (what the teacher's evaluation steps now cost: a privileged policy is evaluated
without the camera)."""

from pathlib import Path

import pytest

from tests.perf.reference import bare_protocol_steps

pytestmark = pytest.mark.perf

ROOT = Path(__file__).resolve().parents[2]
TINY_V2 = str(ROOT / "tests" / "data" / "protocol-tiny-v2.yaml")
WORKERS = 2


@pytest.mark.parametrize("camera", [True, False])
def test_teacher_evaluation_vs_bare_env_times_workers(compare, tmp_path, camera):
    """Everything evaluate() does for the teacher (groups in the shared worker pool, wrappers,
    traces, records, records.jsonl, results.json with its bootstraps) against the same episodes'
    DrivingEnv + disturbance stepped bare with the teacher's action. The warm-up round starts the
    pool; the timed rounds reuse it, as the evaluations of `make bench` after the first do."""
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.records import read_records

    protocol = load_protocol(TINY_V2)
    episodes = protocol.episodes("quick", teacher=True)  # what the teacher's evaluation runs
    counter = iter(range(1000))

    def evaluation():
        out = tmp_path / f"r{next(counter)}"
        evaluate(EvaluateConfig(policy="teacher", protocol=TINY_V2, out=out, workers=WORKERS, progress=False,
                                resume=False, drift_reference=False))
        return sum(r.steps for r in read_records(out / "records.jsonl").records)

    def bare():
        return bare_protocol_steps(episodes, protocol.policy_hz, camera)

    def bare_times_workers():
        return WORKERS * bare()

    result = compare(evaluation, bare_times_workers, rounds=4, name="teacher_evaluation_steps",
                     reference_name=f"bare_env{'_camera' if camera else ''}_steps_x_workers")
    # reported: per evaluate() ~0.4 s of results (bootstraps, track families) on 1,560 steps, and two
    # workers get two cores only on an idle machine; without the camera the 1,560 steps take ~0.2 s
    # of worker time, so that fixed part is most of an evaluation
    assert result["ratio"] > (0.2 if camera else 0.02)



def test_evaluations_together_vs_one_after_another(compare, tmp_path):
    """Three zoo PilotNets with 2 workers on protocol-tiny-v2 with 12 held-out tracks of 60 steps (more
    tracks than a worker's map cache holds, as in v2's quick profile): `evaluate_many` (what `make
    bench` runs: a track's groups of every model in one task, its map drawn once; no worker idle
    between models) against `evaluate` once per model, interleaved; the same records either way."""
    import yaml

    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate, evaluate_many
    from benchmark.evaluation.records import read_records

    spec = yaml.safe_load(Path(TINY_V2).read_text())
    spec["profiles"]["quick"].update(tracks=["procedural:1000100-1000111"], seen_tracks=[], max_steps=60,
                                     horizons=[10, 30, 60])
    protocol = tmp_path / "protocol-tiny-v2-12-tracks.yaml"
    protocol.write_text(yaml.safe_dump(spec))
    policies = [str(ROOT / "models" / "zoo" / name) for name in ("bc", "dagger", "dart")]
    counter = iter(range(1000))

    def configs():
        out = tmp_path / f"r{next(counter)}"
        return [EvaluateConfig(policy=p, protocol=str(protocol), out=out / Path(p).name, workers=WORKERS,
                               progress=False, resume=False, drift_reference=False) for p in policies]

    def steps(cs):
        return sum(r.steps for c in cs for r in read_records(c.out / "records.jsonl").records)

    def together():
        cs = configs()
        evaluate_many(cs)
        return steps(cs)

    def one_after_another():
        cs = configs()
        for c in cs:
            evaluate(c)
        return steps(cs)

    result = compare(together, one_after_another, rounds=3, name="evaluations_together_steps",
                     reference_name="evaluations_one_after_another_steps")
    assert result["ratio"] > 0.9  # reported; not slower
