"""The memory task: camera dropouts seeded per episode, and the protocol whose dropout conditions pair
with the plain ones episode by episode."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from envs import DrivingEnv, DropoutConfig
from envs.dropout import dropout_rng, dropout_schedule

from .conftest import twin_pairs


def _drive(env, seed: int, steps: int):
    frames, infos = [], []
    obs, info = env.reset(seed=seed)
    frames.append(obs)
    infos.append(info)
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(np.array([info["teacher_action"]], np.float32))
        frames.append(obs)
        infos.append(info)
        if terminated or truncated:
            break
    return frames, infos


def test_the_schedule_has_the_configured_rate_and_durations():
    config = DropoutConfig(rate_per_s=0.2, min_s=0.5, max_s=1.5)
    lost = dropout_schedule(config, 50_000, 10.0, dropout_rng(3, "procedural-1000100"))
    assert not lost[0]  # the reset's frame is always delivered
    edges = np.flatnonzero(np.diff(lost.astype(int)))
    starts, ends = edges[::2] + 1, edges[1::2] + 1
    lengths = ends - starts[: len(ends)]
    assert lengths.min() >= 5 and lengths.max() <= 15  # 0.5..1.5 s at 10 Hz
    seconds_driving = (~lost).sum() / 10.0
    assert len(starts) / seconds_driving == pytest.approx(0.2, rel=0.1)
    again = dropout_schedule(config, 50_000, 10.0, dropout_rng(3, "procedural-1000100"))
    other = dropout_schedule(config, 50_000, 10.0, dropout_rng(4, "procedural-1000100"))
    assert (again == lost).all() and not (other == lost).all()  # a function of the seed (and track)
    with pytest.raises(ValueError, match="min_s <= max_s"):
        DropoutConfig(min_s=2.0, max_s=1.0)


@pytest.mark.parametrize("mode", ["black", "freeze"])
def test_dropouts_lose_the_frame_and_change_nothing_else(mode):
    config = {"rate_per_s": 0.5, "min_s": 0.5, "max_s": 1.0, "mode": mode}
    plain, plain_infos = _drive(DrivingEnv("procedural", track_seed=1000101), 7, 150)
    lost, infos = _drive(DrivingEnv("procedural", track_seed=1000101, dropout=config), 7, 150)
    dropped = [i["camera_dropout"] for i in infos]
    assert any(dropped) and not dropped[0]
    assert [i["x"] for i in infos] == [i["x"] for i in plain_infos]  # the same car, the same teacher
    for t, (a, b) in enumerate(zip(plain, lost)):
        if not dropped[t]:
            assert (a == b).all()  # delivered frames are the camera's
        elif mode == "black":
            assert b.max() == 0
        else:  # a stuck feed: the last delivered frame
            last = max(k for k in range(t) if not dropped[k])
            assert (b == plain[last]).all()
    again, _ = _drive(DrivingEnv("procedural", track_seed=1000101, dropout=config), 7, 150)
    assert all((a == b).all() for a, b in zip(again, lost))  # deterministic per seed


def test_the_memory_protocol_pairs_each_twin_with_its_plain_condition_and_v2():
    for profile in ("quick", "full"):
        for twin, plain in twin_pairs("steerbench-memory-v1", profile, "dropout"):
            assert twin.dropout == DropoutConfig(rate_per_s=0.1, min_s=1.0, max_s=2.0, mode="black")
            assert plain.dropout is None


# --- training dropouts and the study, end to end on a tiny protocol ----------------------------------

TINY = Path(__file__).parent / "data" / "protocol-tiny-memory.yaml"


def test_training_dropouts_black_out_stretches_of_sequences_and_a_share_of_single_frames():
    from benchmark.training.augment import AugmentConfig, black_out

    config = AugmentConfig(camera_dropout_rate=1.0, camera_dropout_s=(0.3, 0.5))
    seqs = np.full((200, 32, 4, 4, 3), 7, np.uint8)
    black_out(seqs, config, np.random.default_rng(0))
    lost = seqs.reshape(200, 32, -1).max(axis=2) == 0
    assert not lost[:, 0].any() and lost.any()  # a sequence starts delivered
    for row in lost:  # stretches of 3..5 steps, never merged (the last one may run past the sequence's end)
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        for start, end in zip(edges[::2], edges[1::2]):
            assert end - start <= 5 and (end - start >= 3 or end == 32)
    frames = np.full((20_000, 2, 2, 3), 7, np.uint8)
    black_out(frames, config, np.random.default_rng(1))
    share = (frames.reshape(20_000, -1).max(axis=1) == 0).mean()
    assert share == pytest.approx(0.4 / 1.4, abs=0.02)  # rate x mean duration / (1 + rate x mean duration)
    untouched = np.full((3, 2, 2, 3), 7, np.uint8)
    black_out(untouched, AugmentConfig(), np.random.default_rng(2))
    assert (untouched == 7).all()


def test_the_memory_study_trains_memory_models_and_compares_them_on_the_same_episodes(small_dataset, untrained_model, tmp_path,
                                                                            monkeypatch):
    from benchmark.evaluation.records import read_records
    from benchmark.reporting.memory import MemoryConfig, run
    from models import load_model
    from models.onnx_export import export_onnx

    monkeypatch.chdir(tmp_path)
    ff = tmp_path / "ff"
    ff.mkdir()
    export_onnx(load_model(untrained_model), ff / "model.onnx")
    config = MemoryConfig(data=small_dataset, feedforward=ff, out=tmp_path / "study", report=tmp_path / "docs" / "mem",
                          epochs=1, seq_len=8, dropout_rate=1.0, protocol=str(TINY), workers=1, threads=1,
                          progress=False)
    run(config)
    for variant in ("feedforward", "gru", "stack"):
        records = read_records(tmp_path / "study" / variant / "eval" / "records.jsonl").records
        assert {r.condition for r in records} == {"disturbed", "nominal", "dropout_disturbed", "dropout"}
    summary = json.loads((tmp_path / "study" / "gru" / "summary.json").read_text())
    lag = summary["conditions"]["dropout_disturbed"]["lag"]
    assert 0 <= lag["lag"] <= 10 and len(lag["correlations"]) == 11
    assert lag["lag"] == int(np.nanargmax(lag["correlations"]))
    assert lag["lag_interval"][0] <= lag["lag_interval"][1] and lag["margin_low"] <= lag["margin_high"]
    card = json.loads((tmp_path / "study" / "gru" / "card.json").read_text())
    assert card["name"] == "memory-gru" and card["extra"]["config"]["arch"] == "pilotnet-gru"
    card = json.loads((tmp_path / "study" / "stack" / "card.json").read_text())
    assert card["name"] == "memory-stack" and card["extra"]["config"]["arch"] == "pilotnet-stack"
    text = (tmp_path / "docs" / "mem.md").read_text()
    assert "| dropout_disturbed |" in text and "only feed-forward / only frame stack, McNemar p" in text
    with pytest.raises(ValueError, match="at least one memory model"):
        run(MemoryConfig(variants=("feedforward",)))
    assert (tmp_path / "docs" / "mem.png").stat().st_size > 10_000
