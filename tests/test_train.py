"""Behaviour cloning: the loss falls, resume is exact, a trained policy out-drives going straight;
the same in bf16, and 'auto' precision follows the hardware."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.common.config import ConfigError
from benchmark.data.dataset import Dataset
from benchmark.training import precision as P
from benchmark.training.augment import AugmentConfig
from benchmark.training.train import TrainConfig, evaluate_loss, evaluate_nll, fit, split_episodes

CPU = torch.device("cpu")


def config(tmp_path, **kw):
    base = dict(out=tmp_path / "run", epochs=2, batch_size=32, val_fraction=0.25, threads=2, progress=False)
    return TrainConfig(**{**base, **kw})


def test_validation_split_is_by_whole_episodes(small_dataset):
    ds = Dataset.open(small_dataset)
    train, val = split_episodes(ds, 0.25, seed=0)
    eps = ds.index["episode"].to_numpy()
    assert len(val) and set(eps[train]).isdisjoint(eps[val]) and len(train) + len(val) == len(ds)


def test_a_killed_training_run_resumes_to_identical_weights(small_dataset, tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from models import load_model

    root = Path(__file__).resolve().parents[1]
    args = ["--data", str(small_dataset), "--epochs", "3", "--batch-size", "32", "--val-fraction", "0.25",
            "--threads", "1", "--no-progress"]
    whole = tmp_path / "whole"
    subprocess.run([sys.executable, "-m", "benchmark", "train", "bc", "--out", str(whole), *args], cwd=root,
                   check=True, capture_output=True)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "benchmark", "train", "bc", "--out", str(killed), *args]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    state = killed / "checkpoint" / "state.json"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if state.exists() and json.loads(state.read_text())["epoch"] >= 1:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["epoch"] < 3, "the run should have been killed part-way"
    subprocess.run(cmd, cwd=root, check=True, capture_output=True)  # same command: resumes
    for sub in ("model", "checkpoint/model"):
        a, b = load_model(whole / sub).state_dict(), load_model(killed / sub).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), sub
    assert (whole / "train_log.csv").read_text().count("\n") == (killed / "train_log.csv").read_text().count("\n")


def test_recurrent_and_gaussian_models_train(small_dataset, tmp_path):
    ds = Dataset.open(small_dataset)
    gru = fit(config(tmp_path / "gru", data=small_dataset, arch="pilotnet-gru", epochs=1, seq_len=4), ds)
    gauss = fit(config(tmp_path / "g", data=small_dataset, head="gaussian", epochs=1), ds)
    assert np.isfinite(gru.best_val_loss) and np.isfinite(gauss.best_val_loss)


def test_mixture_and_categorical_heads_train_resume_and_give_a_heldout_nll(small_dataset, tmp_path):
    from models import ModelConfig, build_model, heads, load_model

    ds = Dataset.open(small_dataset)
    augment = AugmentConfig(side_cameras=True, label_rule="return", synthetic_prob=0.5, photometric=True)
    mixture = fit(config(tmp_path / "m", data=small_dataset, head="mixture", mixture_components=3, epochs=1,
                         augment=augment), ds)
    categorical = fit(config(tmp_path / "c", data=small_dataset, head="categorical", categorical_bins=41, epochs=1,
                             augment=augment), ds)
    gru = fit(config(tmp_path / "g", data=small_dataset, arch="pilotnet-gru", head="categorical", epochs=1,
                     seq_len=4), ds)
    cfg = config(tmp_path)
    _, val = split_episodes(ds, cfg.val_fraction, cfg.seed)
    for result in (mixture, categorical, gru):
        assert np.isfinite(result.best_val_loss)
        saved = load_model(result.out / "model")
        assert saved.config == result.model.config
        nll = evaluate_nll(saved, ds, val, cfg, torch, CPU)
        assert np.isfinite(nll)
        offset = math.log(heads.bin_width(saved.config)) if saved.config.head == "categorical" else 0.0
        assert nll == pytest.approx(evaluate_loss(saved, ds, val, cfg, torch, CPU) + offset, rel=1e-5)
    assert mixture.model.config.mixture_components == 3 and categorical.model.config.categorical_bins == 41
    resumed = fit(config(tmp_path / "m", data=small_dataset, head="mixture", mixture_components=3, epochs=2,
                         augment=augment), ds)
    assert list(resumed.log["epoch"]) == [1, 2] and resumed.log["val_loss"].notna().all()
    with pytest.raises(ValueError, match="point head predicts no distribution"):
        evaluate_nll(build_model(ModelConfig()), ds, val, cfg, torch, CPU)
    with pytest.raises(ConfigError, match="categorical_bins must be at least 2"):
        TrainConfig(head="categorical", categorical_bins=1)


def test_help_comes_from_the_field_docs(capsys):
    from benchmark.__main__ import main

    with pytest.raises(SystemExit):
        main(["train", "bc", "--help"])
    text = capsys.readouterr().out
    assert "Fraction of episodes held out for validation." in text
    assert "--side-cameras" in text and "--label-rule {fixed,return,teacher}" in text
    assert "--head {point,gaussian,mixture,categorical}" in text and "--mixture-components" in text


@pytest.fixture(scope="module")
def oval_dataset(tmp_path_factory):
    """Teacher driving on the oval from displaced starts: 8 episodes of 250 steps."""
    from benchmark.data.record import RecordConfig, run

    out = tmp_path_factory.mktemp("oval") / "data"
    run(RecordConfig(out=out, tracks=("oval",), procedural_seeds="", episodes_per_track=8, steps=250, seed=3,
                     start_offset_m=1.0, start_heading_rad=0.1, progress=False))
    return out


@pytest.fixture(scope="module")
def oval_run(oval_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("oval-run")
    # Side cameras labelled to return to the centre in 2 s: with this little data, centre-camera BC
    # drives the whole run for some seeds only, shifted cameras for every seed tried.
    cfg = TrainConfig(data=oval_dataset, out=out / "run", epochs=6, batch_size=32, val_fraction=0.25, threads=2,
                      progress=False, augment=AugmentConfig(side_cameras=True, label_rule="return"))
    return cfg, fit(cfg)


def untrained_val_loss(dataset_dir, cfg) -> float:
    """The validation loss of the run's initial weights (same seed, same split)."""
    from models import ModelConfig, build_model

    ds = Dataset.open(dataset_dir)
    torch.manual_seed(cfg.seed)
    _, val = split_episodes(ds, cfg.val_fraction, cfg.seed)
    return evaluate_loss(build_model(ModelConfig()), ds, val, cfg, torch, CPU)


def drives_farther_than_straight_ahead(model) -> tuple[float, float]:
    """Mean distance driven on the oval in closed loop (4 episodes of 300 steps): the model's, going straight."""
    from benchmark.evaluation.protocol import EvalEpisode
    from benchmark.evaluation.records import EpisodeKey
    from benchmark.evaluation.rollouts import run_episodes
    from benchmark.rollout.policies import StraightPolicy, TorchPolicy

    episodes = [EvalEpisode(key=EpisodeKey("oval", "nominal", "crash", k), track="oval", track_seed=None,
                            seed=100 + k, max_steps=300) for k in range(4)]
    dist = lambda records: float(np.mean([r.distance_m for r in records]))  # noqa: E731
    return dist(run_episodes(TorchPolicy(model, device="cpu"), episodes)), dist(run_episodes(StraightPolicy(), episodes))


def test_a_short_training_run_lowers_the_validation_loss(oval_dataset, oval_run):
    cfg, result = oval_run
    assert result.best_val_loss < 0.5 * untrained_val_loss(oval_dataset, cfg)
    assert result.precision == P.resolve("auto", CPU)  # the default follows the hardware
    assert list(result.log["epoch"]) == list(range(1, 7))
    for name in ("train_log.csv", "train_config.json", "model/model.safetensors", "checkpoint/state.json"):
        assert (cfg.out / name).exists()


def test_a_policy_trained_on_a_small_dataset_drives_farther_than_straight_ahead(oval_run):
    _, result = oval_run
    learned, straight = drives_farther_than_straight_ahead(result.model)
    assert learned > 2.0 * straight


# --- bf16 ---------------------------------------------------------------------------------------


def test_auto_precision_follows_the_hardware_detection():
    native = torch.backends.cpu.get_cpu_capability() == "AVX512" and bool(
        P.cpu_flags(Path("/proc/cpuinfo").read_text()) & {"avx512_bf16", "amx_bf16"})
    assert P.cpu_has_native_bf16() == native
    assert P.resolve("auto", CPU) == ("bf16" if native else "float32")
    assert P.resolve("float32", CPU) == "float32"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert P.resolve("bf16", CPU) == "bf16"  # runs even where emulated, with a warning there
    assert any("emulated" in str(w.message) for w in caught) == (not native)
    if torch.cuda.is_available():
        cuda = torch.device("cuda")
        assert P.resolve("auto", cuda) == ("bf16" if torch.cuda.is_bf16_supported(including_emulation=False)
                                           else "float32")


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\nbugs\t\t: none\n"
    assert {"avx512f", "avx512_bf16"} <= P.cpu_flags(text) and "none" not in P.cpu_flags(text)


def test_a_bf16_run_is_repeatable_records_its_precision_and_refuses_a_float32_resume(small_dataset, tmp_path):
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # emulated bf16 on this CPU is expected here
        for name in ("a", "b"):
            runs.append(fit(config(tmp_path / name, data=small_dataset, epochs=1, precision="bf16")))
    a, b = (r.model.state_dict() for r in runs)
    assert all(a[k].dtype == torch.float32 and torch.equal(a[k], b[k]) for k in a)  # float32 weights, same bits
    out = tmp_path / "a" / "run"
    assert json.loads((out / "train_config.json").read_text())["precision"] == "bf16"
    assert json.loads((out / "checkpoint" / "state.json").read_text())["precision"] == "bf16"
    assert list(runs[0].log["precision"]) == ["bf16"]
    with pytest.raises(ValueError, match="trained in bf16"):
        fit(config(tmp_path / "a", data=small_dataset, epochs=2, precision="float32"))


def test_a_bf16_run_still_learns_to_drive(oval_dataset, tmp_path):
    # A tenth of the float32 run's updates (bf16 is emulated, ~7x slower, on CPUs without it), at a
    # higher rate; at this budget float32 and bf16 reach the same closed-loop bar for seed 0.
    cfg = TrainConfig(data=oval_dataset, out=tmp_path / "bf16", epochs=1, max_updates=32, warmup_updates=5, lr=2e-3,
                      batch_size=32, val_fraction=0.25, threads=2, progress=False, precision="bf16",
                      augment=AugmentConfig(side_cameras=True, label_rule="return"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = fit(cfg)
    assert result.precision == "bf16" and result.updates == 32
    assert result.best_val_loss < 0.5 * untrained_val_loss(oval_dataset, cfg)
    learned, straight = drives_farther_than_straight_ahead(result.model)
    assert learned > 2.0 * straight, (learned, straight)


def test_pinned_git_sha_keeps_the_commit_a_run_started_from(monkeypatch):
    """make baselines writes tracked files (models/zoo) while it runs; its later model cards must still
    name the tree it started from, not a '-dirty' one."""
    from benchmark.common import provenance

    start = provenance.git_sha()
    with provenance.pinned_git_sha() as pinned:
        assert pinned == start
        def no_git(*args, **kwargs):
            raise AssertionError("git was asked again inside the pinned block")
        monkeypatch.setattr(provenance.subprocess, "run", no_git)
        assert provenance.git_sha() == start
        monkeypatch.undo()
    assert provenance._PINNED is None
