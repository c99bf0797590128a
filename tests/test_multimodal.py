"""The multimodal study end to end on a tiny protocol: the recording with obstacles, the heads, the
report with collisions and NLL, and the figure of each head's distribution at one obstacle frame."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

TINY = Path(__file__).parent / "data" / "protocol-tiny-tasks.yaml"


def test_the_multimodal_study_trains_each_head_and_reports_collisions(tmp_path, monkeypatch):
    from benchmark.evaluation.records import read_records
    from benchmark.reporting.multimodal import MultimodalConfig, run

    monkeypatch.chdir(tmp_path)
    config = MultimodalConfig(out=tmp_path / "study", report=tmp_path / "docs" / "mm", variants=("point", "mixture"),
                              tracks=(), procedural_seeds="3-4", steps=120, approaches=2, approach_steps=3, epochs=1, protocol=str(TINY), workers=1,
                              threads=1, progress=False)
    run(config)
    manifest = json.loads((tmp_path / "study" / "data" / "manifest.json").read_text())
    assert manifest["obstacles"] is not None  # the demonstrations pass obstacles
    assert manifest["obstacle_approaches"] == 2 and manifest["approach_steps"] == 3
    for variant in ("point", "mixture"):
        summary = json.loads((tmp_path / "study" / variant / "summary.json").read_text())
        records = read_records(tmp_path / "study" / variant / "eval" / "records.jsonl").records
        for c in ("obstacles", "obstacles_disturbed"):
            crash = [r for r in records if r.condition == c and r.mode == "crash"]
            got = summary["conditions"][c]
            assert got["n"] == len(crash) == 2
            assert got["collisions"] == sum(r.failure_type == "collision" for r in crash) <= got["crashes"]
    point = json.loads((tmp_path / "study" / "point" / "summary.json").read_text())
    mixture = json.loads((tmp_path / "study" / "mixture" / "summary.json").read_text())
    assert point["nll"] is None and mixture["nll"]["low"] <= mixture["nll"]["nll"] + 1e-9
    text = (tmp_path / "docs" / "mm.md").read_text()
    assert "| mixture |" in text and "p = " in text
    assert (tmp_path / "docs" / "mm.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="other settings"):  # a resume never reuses another recording
        run(replace(config, approaches=3))
    with pytest.raises(ValueError, match="other settings .log_std_max"):  # nor a model trained otherwise
        run(replace(config, mixture_log_std_max=-3.0))
    mixture_model = json.loads((tmp_path / "study" / "mixture" / "train" / "model" / "config.json").read_text())
    assert mixture_model["log_std_max"] == config.mixture_log_std_max == -3.5
