"""The causal-confusion task: the steering gauge in the frames, its training-time twin, and the protocol
whose twin conditions pair with the plain ones episode by episode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.common.files import sha256_file
from benchmark.evaluation.protocol import ProtocolError, load_protocol
from benchmark.rollout.wrappers import Disturbance
from benchmark.training.augment import AugmentConfig, previous_actions
from envs import MAX_CURVATURE, DrivingEnv, IndicatorConfig, draw_indicator
from envs.indicator import BACKGROUND, FILL, TICK, blank_indicator, gauge

from .conftest import twin_pairs

CONFIG = IndicatorConfig()
HAND = IndicatorConfig(full_scale_per_m=0.1, width_px=48, height_px=6, margin_px=2)
"""A small gauge whose pixels are computed by hand below."""


def test_the_gauge_fills_from_the_centre_by_the_curvature_with_a_fractional_last_pixel():
    zero = gauge(0.0, HAND)
    assert zero.shape == (6, 48, 3)
    assert (zero[:2, 23:25] == TICK).all() and (zero[2:] == BACKGROUND).all()  # the tick, nothing filled
    # +0.0525 1/m = 0.525 of full scale = 12.6 of the 24 right-hand columns: 12 full, the 13th at 0.6
    right = gauge(0.0525, HAND)[4]
    assert (right[:24] == BACKGROUND).all() and (right[24:36] == FILL).all()
    assert tuple(right[36]) == tuple(round(b + 0.6 * (f - b)) for b, f in zip(BACKGROUND, FILL))
    assert (right[37:] == BACKGROUND).all()
    left = gauge(-0.0525, HAND)[4]
    assert (left[::-1] == right).all()  # a left turn is the mirror image
    assert (gauge(0.5, HAND)[4] == gauge(0.1, HAND)[4]).all()  # clipped at full scale
    assert (gauge(0.1, HAND)[4, 24:] == FILL).all()
    blank = blank_indicator(np.zeros((66, 200, 3), np.uint8), HAND)
    assert (blank[58:64, 2:50] == BACKGROUND).all() and blank[:58].max() == 0 and blank[:, 50:].max() == 0


def test_a_gauge_that_does_not_fit_the_frame_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        draw_indicator(np.zeros((4, 30, 3), np.uint8), 0.0, CONFIG)
    with pytest.raises(ValueError, match="even"):
        IndicatorConfig(width_px=47)


def test_the_environment_draws_the_previous_executed_curvature_and_changes_nothing_else():
    plain = DrivingEnv("procedural", track_seed=1000101)
    gauged = DrivingEnv("procedural", track_seed=1000101, indicator=True)
    rows, cols = CONFIG.region(66, 200)
    a, _ = plain.reset(seed=3)
    b, _ = gauged.reset(seed=3)
    assert (b[rows, cols] == gauge(0.0, CONFIG)).all()  # after a reset: no previous action
    for action in (0.03, -0.5, 0.01):
        a, *_, info_a = plain.step(np.array([action], np.float32))
        b, *_, info_b = gauged.step(np.array([action], np.float32))
        executed = min(max(float(np.float32(action)), -MAX_CURVATURE), MAX_CURVATURE)  # the env's clip
        assert (b[rows, cols] == gauge(executed, CONFIG)).all()
        outside = np.ones(a.shape[:2], bool)
        outside[rows, cols] = False
        assert (a[outside] == b[outside]).all()  # the camera is the same camera
        assert info_a["lateral_offset"] == info_b["lateral_offset"]  # and the car the same car


def test_under_the_disturbance_the_gauge_shows_what_the_actuator_executed():
    env = Disturbance(DrivingEnv("procedural", track_seed=1000102, indicator=True), seed=9, steering_std=0.02,
                      steering_tau_s=0.5, gust_std_mps=0.5, gust_tau_s=2.0)
    env.reset(seed=9)
    rows, cols = CONFIG.region(66, 200)
    for _ in range(5):
        frame, *_ = env.step(np.array([0.02], np.float32))
        executed = float(np.float32(0.02 + env.history[-1][0]))
        assert (frame[rows, cols] == gauge(executed, CONFIG)).all()


def test_previous_actions_follow_each_episode_through_interleaved_rows():
    index = pd.DataFrame({  # two episodes collected in lockstep, then a second round reusing episode 0
        "episode": [0, 1, 0, 1, 0, 0, 0], "round": [1, 1, 1, 1, 1, 2, 2], "source": ["bc"] * 7,
        "step": [0, 0, 1, 1, 2, 0, 1], "action": [0.1, 0.2, 0.11, 0.21, 0.12, -0.3, -0.31]})
    assert previous_actions(index).tolist() == [0.0, 0.0, 0.1, 0.2, 0.11, 0.0, -0.3]
    with pytest.raises(ValueError, match="missing"):
        previous_actions(index.assign(action=[np.nan] + [0.0] * 6))
    with pytest.raises(ValueError, match="needs steering_indicator"):
        AugmentConfig(indicator_dropout=0.5)


def test_the_causal_protocol_pairs_each_twin_with_its_plain_condition_and_v2():
    for profile in ("quick", "full"):
        for twin, plain in twin_pairs("steerbench-causal-v1", profile, "indicator"):
            assert twin.indicator == CONFIG and plain.indicator is None


@pytest.mark.parametrize("edit, message", [
    ("seeds_of: disturbed\n", "seeds_of must name another condition"),
    ("indicator: yes\n", "must be a mapping of indicator settings"),
])
def test_malformed_indicator_conditions_are_refused(tmp_path, edit, message):
    text = (Path(load_protocol("steerbench-causal-v1").path)).read_text()
    # the disturbed condition names itself, or a gauge is not a mapping
    text = text.replace("  disturbed: {steering_noise_std: 0.02, steering_noise_tau_s: 0.5, gust_std_mps: 0.5, gust_tau_s: 2.0}\n",
                        "  disturbed:\n    steering_noise_std: 0.02\n    " + edit)
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProtocolError, match=message):
        load_protocol(str(path))


# --- the study, end to end on a tiny protocol --------------------------------------------------------

TINY = Path(__file__).parent / "data" / "protocol-tiny-causal.yaml"


def test_the_study_trains_evaluates_and_reports_three_variants(small_dataset, tmp_path, monkeypatch):
    from benchmark.evaluation.records import read_records
    from benchmark.reporting.causal_confusion import CausalConfusionConfig, run, summary_rows, train_config

    monkeypatch.chdir(tmp_path)  # the protocol's references go under ./results
    config = CausalConfusionConfig(data=small_dataset, out=tmp_path / "study", report=tmp_path / "docs" / "cc",
                                   epochs=1, protocol=str(TINY), workers=1, threads=1, progress=False)
    assert train_config("plain", config).augment == AugmentConfig()
    assert train_config("dropout", config).augment == AugmentConfig(steering_indicator=True, indicator_dropout=0.5)
    result = run(config)
    assert result["variants"] == ["plain", "gauge", "dropout"]
    rows = {r["variant"]: r for r in summary_rows(tmp_path / "study")}
    for variant, conditions in (("plain", {"disturbed", "nominal"}), ("gauge", {"indicator_disturbed", "indicator"})):
        records = read_records(tmp_path / "study" / variant / "eval" / "records.jsonl").records
        assert {r.condition for r in records} == conditions  # each model on its own conditions
        row = rows[variant]
        h = row["heldout"]
        assert h["low"] - 1e-12 <= h["mse"] <= h["high"] + 1e-12 and h["episodes"] >= 1
        for c in conditions:
            got = row["conditions"][c]
            assert got["n"] == 3 and got["crashes"] == sum(got["crashed"].values())
            assert got["low"] <= got["crashes"] / 3 <= got["high"]
    card = json.loads((tmp_path / "study" / "gauge" / "card.json").read_text())
    assert card["name"] == "causal-gauge" and card["extra"]["augment"]["steering_indicator"] is True
    assert card["extra"]["onnx_sha256"] == sha256_file(tmp_path / "study" / "gauge" / "model.onnx")
    text = (tmp_path / "docs" / "cc.md").read_text()
    assert "| gauge | yes |" in text and "| dropout | yes, 50% without a reading |" in text and "p = " in text
    assert (tmp_path / "docs" / "cc.png").stat().st_size > 10_000
    before = (tmp_path / "study" / "gauge" / "model.onnx").stat().st_mtime_ns
    run(config)  # resumes: nothing trained or exported again
    assert (tmp_path / "study" / "gauge" / "model.onnx").stat().st_mtime_ns == before
