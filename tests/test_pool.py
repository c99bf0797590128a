"""The worker pool that the evaluations of one process share (issue 12): reused across evaluate()
calls with the same workers and memory limit, never after a failure, and the records it gives are
those of a fresh process."""

import subprocess
import sys
from pathlib import Path

import pytest

import benchmark.evaluation.evaluate as E
from benchmark.evaluation.evaluate import EvaluateConfig, EvaluationTimeout, evaluate, shutdown_pool

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "protocol-tiny.yaml")


def _records(out: Path) -> list[str]:
    return sorted((out / "records.jsonl").read_text().splitlines()[1:])


def _workers() -> set[int]:
    return {p.pid for p in E._SHARED.pool._processes.values()}


def test_evaluations_in_one_process_share_the_pool_and_match_a_fresh_process(tmp_path, untrained_model):
    shutdown_pool()
    kwargs = {"protocol": TINY, "conditions": ("nominal",), "progress": False, "drift_reference": False, "workers": 2}
    evaluate(EvaluateConfig(policy="straight", out=tmp_path / "straight", **kwargs))
    pool, workers = E._SHARED.pool, _workers()
    assert workers and not E._SHARED.busy
    evaluate(EvaluateConfig(policy=str(untrained_model), out=tmp_path / "model", **kwargs))
    assert E._SHARED.pool is pool and _workers() == workers, "the second evaluation started new workers"

    fresh = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "benchmark", "evaluate", "--policy", str(untrained_model), "--protocol",
                    TINY, "--conditions", "nominal", "--out", str(fresh), "--no-drift-reference", "--workers", "2",
                    "--no-progress"], cwd=ROOT, check=True, capture_output=True)
    assert _records(tmp_path / "model") == _records(fresh)

    # another memory limit (or worker count) is another pool
    evaluate(EvaluateConfig(policy="straight", out=tmp_path / "limited", memory_limit_mb=65536, **kwargs))
    assert E._SHARED.pool is not pool and E._SHARED.key == (2, 65536)
    assert _records(tmp_path / "limited") == _records(tmp_path / "straight")
    shutdown_pool()
    assert E._SHARED is None


def test_a_failed_evaluation_kills_the_pool_and_the_next_one_starts_afresh(tmp_path):
    shutdown_pool()
    kwargs = {"policy": "straight", "protocol": TINY, "conditions": ("nominal",), "progress": False,
              "drift_reference": False, "workers": 2}
    with pytest.raises(EvaluationTimeout):
        evaluate(EvaluateConfig(out=tmp_path / "a", time_limit_s=1e-6, **kwargs))
    assert E._SHARED is None
    evaluate(EvaluateConfig(out=tmp_path / "b", resume=False, **kwargs))
    assert E._SHARED is not None and not E._SHARED.busy
    shutdown_pool()
