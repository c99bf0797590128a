"""Stored results: a small profile evaluated now must give exactly the numbers stored in the repository.

The references in tests/data/reference/ were written by this test (STEERBENCH_WRITE_REFERENCE=1)
from the harness as it stood when they were made; a change to the runner, the env, the metrics or
the JSON that moves any number or any record fails here. Regenerate them only with a protocol
version bump, and say so in the commit.

    STEERBENCH_WRITE_REFERENCE=1 pytest tests/test_reference.py

The env computes the same numbers on every x86-64 CPU (benchmark/common/numerics.py), so the
teacher's and straight-ahead's references hold everywhere. A network's outputs depend on the CPU's
kernels (torch's oneDNN and MKL), so BC has one reference per CPU capability
(`<case>-bc-<capability>.json`, `torch.backends.cpu.get_cpu_capability()`), each exact on its
own; on a capability without one, BC is compared with the AVX2 reference within float32 rounding
carried through the episodes (rel 1e-2), and writing the references adds that capability's.
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
NETWORKS = {"bc"}
"""Policies whose records depend on the CPU's inference kernels."""
CLOSE = {"rel": 1e-2, "abs": 1e-6}
"""A network's metrics on a CPU capability without its own reference, against the AVX2 one: the same
episodes, ulps of float32 inference carried through 40-step episodes and the records' rounding."""


def _far(a, b, path: str = "") -> list[str]:
    """Where nested JSON `a` and `b` differ by more than CLOSE (numbers) or at all (the rest)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in _far(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _far(x, y, f"{path}[{i}]")]
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return [] if a == pytest.approx(b, **CLOSE) else [f"{path}: {a} vs {b}"]
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def _reference(case: str, name: str) -> tuple[Path, bool]:
    """(the reference file, whether it was written on this CPU's capability)."""
    if name not in NETWORKS:
        return REFERENCE / f"{case}-{name}.json", True
    import torch

    own = REFERENCE / f"{case}-{name}-{torch.backends.cpu.get_cpu_capability().lower()}.json"
    if own.is_file() or os.environ.get("STEERBENCH_WRITE_REFERENCE") == "1":
        return own, True
    return REFERENCE / f"{case}-{name}-avx2.json", False


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
    path, exact = _reference(case, name)
    if os.environ.get("STEERBENCH_WRITE_REFERENCE") == "1":
        path.write_text(json.dumps(fresh, indent=1) + "\n")
    stored = json.loads(path.read_text())
    assert fresh["records"] == stored["records"] > 0
    if not exact:
        print(f"[reference] no {name} reference of this CPU capability: compared with {path.name} within {CLOSE}")
        assert _far(fresh["metrics"], stored["metrics"]) == []
        return
    assert fresh["metrics"] == stored["metrics"]
    assert fresh["records_sha256"] == stored["records_sha256"]


def test_the_tolerant_comparison_flags_what_moved():
    stored = {"a": {"s": [1.0, 0.5], "n": 4, "why": "x"}}
    assert _far({"a": {"s": [1.0, 0.5 * (1 + 1e-4)], "n": 4, "why": "x"}}, stored) == []
    assert _far({"a": {"s": [1.0, 0.75], "n": 4, "why": "x"}}, stored) == ["/a/s[1]: 0.75 vs 0.5"]
    assert _far({"a": {"s": [1.0], "n": 5, "why": "y"}}, stored) == ["/a/n: 5 vs 4", "/a/s: [1.0] vs [1.0, 0.5]",
                                                                   "/a/why: 'y' vs 'x'"]
