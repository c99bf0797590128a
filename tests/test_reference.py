"""Stored results: a small profile evaluated now must give exactly the numbers stored in the repository.

The references in tests/data/reference/ were written by this test (STEERBENCH_WRITE_REFERENCE=1)
from the harness as it stood when they were made; a change to the runner, the env, the metrics or
the JSON that moves any number or any record fails here. Regenerate them only with a protocol
version bump, and say so in the commit.

    STEERBENCH_WRITE_REFERENCE=1 pytest tests/test_reference.py
"""

import hashlib
import json
import os
from pathlib import Path

import pytest

from benchmark.evaluation.evaluate import EvaluateConfig, evaluate

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "protocol-tiny.yaml")
TINY_V2 = str(ROOT / "tests" / "data" / "protocol-tiny-v2.yaml")
CASES = {"tiny-quick": (TINY, "quick"), "tiny-full": (TINY, "full"), "tiny-v2-quick": (TINY_V2, "quick")}
"""Reference name -> protocol and profile (v2's paired metrics, regret and bootstraps included)."""
REFERENCE = ROOT / "tests" / "data" / "reference"
POLICIES = {"teacher": "teacher", "straight": "straight", "bc": str(ROOT / "models" / "zoo" / "bc")}


def _fingerprint(out: Path, results) -> dict:
    lines = sorted((out / "records.jsonl").read_text().splitlines()[1:])
    return {"policy": results.policy.name, "records_sha256": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "records": len(lines), "metrics": json.loads(json.dumps(results.metrics.to_json()))}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", list(POLICIES))
def test_small_profile_reproduces_the_stored_results(tmp_path, monkeypatch, name, case):
    monkeypatch.chdir(tmp_path)  # the teacher's drift reference goes under ./results
    protocol, profile = CASES[case]
    out = tmp_path / name
    results = evaluate(EvaluateConfig(policy=POLICIES[name], name=name, protocol=protocol, profile=profile, out=out,
                                      workers=2, progress=False))
    fresh = _fingerprint(out, results)
    path = REFERENCE / f"{case}-{name}.json"
    if os.environ.get("STEERBENCH_WRITE_REFERENCE") == "1":
        path.write_text(json.dumps(fresh, indent=1) + "\n")
    stored = json.loads(path.read_text())
    assert fresh["records"] == stored["records"] > 0
    assert fresh["metrics"] == stored["metrics"]
    assert fresh["records_sha256"] == stored["records_sha256"]
