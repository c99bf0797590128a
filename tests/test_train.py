"""Behaviour cloning: the loss falls, resume is exact, a trained policy out-drives going straight."""

import numpy as np
import pytest
import torch

from benchmark.augment import AugmentConfig
from benchmark.dataset import Dataset
from benchmark.train import TrainConfig, evaluate_loss, fit, split_episodes


def config(tmp_path, **kw):
    base = dict(out=tmp_path / "run", epochs=2, batch_size=32, val_fraction=0.25, threads=2, progress=False)
    return TrainConfig(**{**base, **kw})


def test_validation_split_is_by_whole_episodes(small_dataset):
    ds = Dataset.open(small_dataset)
    train, val = split_episodes(ds, 0.25, seed=0)
    eps = ds.index["episode"].to_numpy()
    assert len(val) and set(eps[train]).isdisjoint(eps[val]) and len(train) + len(val) == len(ds)


def test_a_short_training_run_lowers_the_validation_loss(small_dataset, tmp_path):
    from models import ModelConfig, build_model

    ds = Dataset.open(small_dataset)
    cfg = config(tmp_path, data=small_dataset, epochs=3, augment=AugmentConfig(side_cameras=True))
    torch.manual_seed(cfg.seed)
    untrained = build_model(ModelConfig())
    _, val = split_episodes(ds, cfg.val_fraction, cfg.seed)
    before = evaluate_loss(untrained, ds, val, cfg, torch, torch.device("cpu"))
    result = fit(cfg, ds)
    assert result.best_val_loss < 0.5 * before
    assert list(result.log["epoch"]) == [1, 2, 3]
    for name in ("train_log.csv", "train_config.json", "model/model.safetensors", "checkpoint/state.json"):
        assert (tmp_path / "run" / name).exists()


def test_resume_after_an_interruption_gives_identical_weights(small_dataset, tmp_path):
    ds = Dataset.open(small_dataset)
    whole = fit(config(tmp_path / "a", data=small_dataset, epochs=2), ds)
    fit(config(tmp_path / "b", data=small_dataset, epochs=1), ds)  # "interrupted" after one epoch
    resumed = fit(config(tmp_path / "b", data=small_dataset, epochs=2), ds)
    assert resumed.updates == whole.updates
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_recurrent_and_gaussian_models_train(small_dataset, tmp_path):
    ds = Dataset.open(small_dataset)
    gru = fit(config(tmp_path / "gru", data=small_dataset, arch="pilotnet-gru", epochs=1, seq_len=4), ds)
    gauss = fit(config(tmp_path / "g", data=small_dataset, head="gaussian", epochs=1), ds)
    assert np.isfinite(gru.best_val_loss) and np.isfinite(gauss.best_val_loss)


def test_help_comes_from_the_field_docs(capsys):
    from benchmark.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "bc", "--help"])
    text = capsys.readouterr().out
    assert "Fraction of episodes held out for validation." in text
    assert "--side-cameras" in text and "--label-rule {fixed,return,teacher}" in text


@pytest.fixture(scope="module")
def oval_dataset(tmp_path_factory):
    from benchmark.record import RecordConfig, run

    out = tmp_path_factory.mktemp("oval") / "data"
    run(RecordConfig(out=out, tracks=("oval",), procedural_seeds="", episodes_per_track=8, steps=250, seed=3,
                     start_offset_m=1.0, start_heading_rad=0.1, progress=False))
    return out


def test_a_policy_trained_on_a_small_dataset_drives_farther_than_straight_ahead(oval_dataset, tmp_path):
    from benchmark.policies import StraightPolicy, TorchPolicy
    from benchmark.protocol import EvalEpisode
    from benchmark.rollout import run_episodes

    result = fit(config(tmp_path, data=oval_dataset, epochs=6, val_fraction=0.125,
                        augment=AugmentConfig(side_cameras=True)))
    episodes = [EvalEpisode(key=f"oval|nominal|crash|{k}", track="oval", track_seed=None, condition="nominal",
                            mode="crash", index=k, seed=100 + k, max_steps=300) for k in range(4)]
    learned = run_episodes(TorchPolicy(result.model, device="cpu"), episodes)
    straight = run_episodes(StraightPolicy(), episodes)
    dist = lambda records: np.mean([r["distance_m"] for r in records])  # noqa: E731
    assert dist(learned) > 1.5 * dist(straight)
