"""One collector for every algorithm; DAgger's schedules, DART's noise, HG-DAgger's gate; tiny runs."""

import json

import numpy as np
import pytest

from benchmark.data.collector import EpisodeSpec, GatedBehaviour, MixtureBehaviour, TeacherBehaviour, collect
from benchmark.data.dataset import Dataset, DatasetWriter
from benchmark.rollout.policies import StraightPolicy
from benchmark.training.dagger import DaggerConfig, beta_schedule, dagger
from benchmark.training.dart import DartConfig, dart, dart_noise_variance
from benchmark.training.hg_dagger import HGDaggerConfig, hg_dagger
from benchmark.training.imitation import ImitationConfig, behaviour_cloning
from envs import Teacher, builtin_track


def record(tmp_path, behaviour, budget=None, steps=60):
    episodes = [EpisodeSpec("oval", None, seed=s, steps=steps) for s in range(3)]
    with DatasetWriter(tmp_path / "d", (66, 200, 3), {"kind": "test"}, shard_size=64) as w:
        stats = collect(episodes, behaviour, w, source="test", rng=np.random.default_rng(0), label_budget=budget,
                        progress=False)
    return Dataset.open(tmp_path / "d"), stats


def teacher_at(row) -> float:
    path = builtin_track(row.track).paths[int(row.lane)]
    return Teacher().action(path, row.x, row.y, row.heading, row.speed)


@pytest.mark.parametrize("behaviour", [TeacherBehaviour(noise_std=0.05), MixtureBehaviour(StraightPolicy(), 0.0)])
def test_collector_stores_the_teachers_label_even_when_the_executed_action_differs(tmp_path, behaviour):
    ds, stats = record(tmp_path, behaviour)
    idx = ds.index
    assert stats.labels == len(ds) > 30 and stats.teacher_queries == 3 * len(ds)
    assert (np.abs(idx["action"] - idx["label_center"]) > 1e-4).mean() > 0.9
    for row in idx.sample(20, random_state=0).itertuples():
        assert row.label_center == pytest.approx(teacher_at(row), abs=1e-9)


def test_collector_stops_at_its_label_budget(tmp_path):
    ds, stats = record(tmp_path, TeacherBehaviour(), budget=77)
    assert len(ds) == stats.labels == 77


def test_gated_behaviour_aggregates_only_the_teachers_segments(tmp_path):
    class Veer(StraightPolicy):
        def act(self, frames, episodes):
            return np.full(len(frames), 0.03)

    ds, stats = record(tmp_path, GatedBehaviour(Veer(), threshold_m=0.6, release_m=0.2), steps=150)
    assert 0 < stats.labels < stats.env_steps and stats.learner_steps > 0
    assert (np.abs(ds.index["lateral_offset"]) > 0.2 - 1e-9).all()  # labelled only while the teacher drove


def test_beta_schedules():
    assert [beta_schedule("indicator", i, 4) for i in range(1, 5)] == [1.0, 0.0, 0.0, 0.0]
    assert [beta_schedule("exponential", i, 4, p=0.5) for i in range(1, 5)] == [1.0, 0.5, 0.25, 0.125]
    assert [beta_schedule("linear", i, 4) for i in range(1, 5)] == [1.0, 0.75, 0.5, 0.25]
    with pytest.raises(ValueError):
        beta_schedule("cosine", 1, 4)


def test_dart_variance_estimate_on_synthetic_data_with_a_known_answer():
    teacher = np.linspace(-0.1, 0.1, 101)
    assert dart_noise_variance(teacher + 0.02, teacher) == pytest.approx(0.02**2)
    assert dart_noise_variance(teacher + 0.02, teacher, scale=2.0) == pytest.approx(2 * 0.02**2)
    rng = np.random.default_rng(0)
    noisy = teacher.repeat(400) + rng.normal(0.0, 0.03, 101 * 400)
    assert dart_noise_variance(noisy, teacher.repeat(400)) == pytest.approx(0.03**2, rel=0.02)


TINY = dict(label_budget=90, steps=60, tracks=("oval",), procedural_seeds="0", epochs=1, batch_size=32,
            validation_tracks=("oval",), validation_seeds="90000", validation_steps=40, threads=2, progress=False)


@pytest.mark.parametrize("run, cfg", [
    (behaviour_cloning, lambda out: ImitationConfig(out=out, rounds=1, **TINY)),
    (dagger, lambda out: DaggerConfig(out=out, rounds=2, beta_schedule="exponential", **TINY)),
    (dart, lambda out: DartConfig(out=out, rounds=2, **TINY)),
    (hg_dagger, lambda out: HGDaggerConfig(out=out, rounds=2, threshold_m=0.3, release_m=0.1, **TINY)),
])
def test_tiny_end_to_end_run_of_each_algorithm(tmp_path, run, cfg):
    config = cfg(tmp_path / "run")
    result = run(config)
    out = tmp_path / "run"
    for name in ("model/model.safetensors", "model.onnx", "card.json", "rounds.csv", "data/manifest.json"):
        assert (out / name).exists(), name
    from leaderboard.card import validate_card

    card = validate_card(json.loads((out / "card.json").read_text()))  # the leaderboard accepts it
    extra = card["extra"]
    assert extra["label_budget_requested"] == 90 and card["label_budget"] == result["labels"] <= 90
    assert extra["algorithm"] in ("bc", "dagger", "dart", "hg-dagger") and len(extra["data_sha256"]) == 64
    assert "command" in extra and extra["rounds"] == config.rounds and len(extra["rounds_log"]) == config.rounds
    rounds = __import__("pandas").read_csv(out / "rounds.csv")
    assert list(rounds["round"]) == list(range(1, config.rounds + 1))
    assert {"labels", "env_steps", "train_loss", "val_crash_rate", "val_offset_m", "precision"} <= set(rounds.columns)
    assert extra["precision"] in ("bf16", "float32") and extra["config"]["precision"] == "auto"  # used vs asked


def test_validation_seeds_must_not_be_training_seeds():
    with pytest.raises(ValueError, match="also training seeds"):
        ImitationConfig(procedural_seeds="0-10", validation_seeds="5")
