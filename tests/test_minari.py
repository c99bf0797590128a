"""Minari export and import: what minari alone reads, the recovered env, the exact round trip, errors."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark.common.config import ConfigError
from benchmark.data.dataset import INDEX_COLUMNS, Dataset, DatasetError, DatasetWriter
from benchmark.data.minari_io import ExportConfig, ImportConfig, run
from benchmark.data.udacity import export_order

minari = pytest.importorskip("minari")

DATASET_ID = "steerbench/oval-teacher-v0"
COLUMNS = list(INDEX_COLUMNS)


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The teacher on the oval: 3 episodes of 12 steps, shards of 16 (episodes cross shards)."""
    from benchmark.data.record import RecordConfig
    from benchmark.data.record import run as record

    out = tmp_path_factory.mktemp("minari-src") / "teacher"
    record(RecordConfig(out=out, tracks=("oval",), procedural_seeds="", episodes_per_track=3, steps=12, seed=1,
                        shard_size=16, progress=False, start_offset_m=0.5))
    return out


@pytest.fixture(scope="module")
def exported(recording, tmp_path_factory):
    root = tmp_path_factory.mktemp("minari-root")
    result = run(ExportConfig(data=recording, out=root, dataset_id=DATASET_ID, progress=False))
    return root, result


def _load(root, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return minari.load_dataset(DATASET_ID)


def _in_driving_order(ds: Dataset):
    order = export_order(ds.index)
    return order, ds.index.iloc[order][COLUMNS].reset_index(drop=True)


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_minari_alone_reads_frames_actions_labels_and_boundaries(exported, recording, monkeypatch):
    root, result = exported
    assert result["episodes"] == 3 and result["steps"] == 36 and result["env_spec"] == "SteerBench/Oval-v0"
    assert sorted(p.name for p in root.iterdir()) == ["steerbench"]  # no staging folder left behind
    src = Dataset.open(recording)
    order, rows = _in_driving_order(src)
    dataset = _load(root, monkeypatch)
    assert dataset.total_episodes == 3 and dataset.total_steps == 36
    assert dataset.observation_space.shape == (66, 200, 3) and dataset.observation_space.dtype == np.uint8
    assert dataset.storage.metadata["jpeg_encoding"] is False
    start = 0
    for ep in dataset.iterate_episodes():
        n = len(ep)
        sel, want = order[start:start + n], rows.iloc[start:start + n]
        assert set(want["episode"]) == {ep.id} and list(want["step"]) == list(range(12))
        assert ep.observations.shape == (n + 1, 66, 200, 3) and ep.observations.dtype == np.uint8
        assert np.array_equal(ep.observations[:n], src.frames(sel, 1))
        assert np.array_equal(ep.observations[n], ep.observations[n - 1])  # the final observation repeats
        assert np.array_equal(ep.infos["frame_left"][:n], src.frames(sel, 0))
        assert np.array_equal(ep.infos["frame_right"][:n], src.frames(sel, 2))
        assert ep.actions.dtype == np.float64 and np.array_equal(ep.actions[:, 0], want["action"])
        for c in ("label_left", "label_center", "label_right", "lateral_offset", "heading_error", "x", "speed"):
            assert np.array_equal(ep.infos[c][:n], want[c]) and ep.infos[c][n] == ep.infos[c][n - 1]
        assert list(ep.infos["track"][:n]) == ["oval"] * n
        assert list(ep.infos["recorded"]) == [True] * n + [False]
        assert not ep.terminations.any() and list(np.flatnonzero(ep.truncations)) == [n - 1]
        assert np.isnan(ep.rewards).all()
        start += n
    assert start == len(src)
    sb = dataset.storage.metadata["steerbench"]
    assert sb["source"]["rig"] == src.manifest["rig"] and sb["source"]["label_rule"] == src.manifest["label_rule"]


def test_recovered_env_is_the_recording_env_and_steps(exported, recording, monkeypatch):
    from envs import CameraConfig, EnvConfig

    dataset = _load(exported[0], monkeypatch)
    m = Dataset.open(recording).manifest
    assert dataset.env_spec.id == "SteerBench/Oval-v0"
    assert dataset.env_spec.kwargs["camera"] == m["rig"] and dataset.env_spec.kwargs["config"] == m["env"]
    env = dataset.recover_environment()
    try:
        assert env.unwrapped.camera_config == CameraConfig(**m["rig"])
        assert env.unwrapped.config == EnvConfig(**{**m["env"], "teacher": env.unwrapped.config.teacher})
        obs, info = env.reset(seed=0)
        assert obs.shape == dataset.observation_space.shape
        obs, reward, terminated, truncated, info = env.step(np.array([info["teacher_action"]], np.float32))
        assert obs.dtype == np.uint8 and np.isfinite(reward) and not (terminated or truncated) and info["step"] == 1
    finally:
        env.close()


def test_round_trip_is_exact(exported, recording, tmp_path):
    root, _ = exported
    result = run(ImportConfig(dataset=DATASET_ID, datasets_path=root, out=tmp_path / "back", shard_size=10,
                              progress=False))
    assert result["episodes"] == 3 and result["steps"] == 36
    src, back = Dataset.open(recording), Dataset.open(tmp_path / "back")
    (o1, rows1), (o2, rows2) = _in_driving_order(src), _in_driving_order(back)
    pd.testing.assert_frame_equal(rows1, rows2)  # actions, labels, state, episode and step numbers, exactly
    assert list(back.index["episode"]) == list(rows1["episode"])  # imported in driving order
    for cam in range(3):
        assert np.array_equal(src.frames(o1, cam), back.frames(o2, cam))
    m = back.manifest
    assert m["kind"] == "minari-import" and m["minari"]["source_kind"] == "recording"
    assert m["rig"] == src.manifest["rig"] and m["env"] == src.manifest["env"] and m["tracks"] == ["oval"]
    # the directory given as a path works the same; a re-export of the import writes the same episode files
    run(ImportConfig(dataset=str(root / DATASET_ID), out=tmp_path / "again", progress=False))
    assert len(Dataset.open(tmp_path / "again")) == 36
    run(ExportConfig(data=tmp_path / "back", out=tmp_path / "root", dataset_id=DATASET_ID, progress=False))
    first, second = _tree(root / DATASET_ID), _tree(tmp_path / "root" / DATASET_ID)
    assert first.keys() == second.keys()
    assert {k: v for k, v in first.items() if k != "data/metadata.json"} == {
        k: v for k, v in second.items() if k != "data/metadata.json"}


def test_export_is_byte_identical_and_never_overwrites_by_accident(exported, recording, tmp_path):
    root, _ = exported
    run(ExportConfig(data=recording, out=tmp_path / "other", dataset_id=DATASET_ID, progress=False))
    assert _tree(root) == _tree(tmp_path / "other")
    with pytest.raises(FileExistsError, match="exists"):
        run(ExportConfig(data=recording, out=tmp_path / "other", dataset_id=DATASET_ID, progress=False))
    run(ExportConfig(data=recording, out=tmp_path / "other", dataset_id=DATASET_ID, overwrite=True, progress=False))
    assert _tree(root) == _tree(tmp_path / "other")
    with pytest.raises(ConfigError, match="name-vN"):
        ExportConfig(data=recording, out=tmp_path, dataset_id="no version")


def test_udacity_import_exports_without_env_spec(tmp_path, monkeypatch):
    from benchmark.data import udacity
    from tests.test_udacity import _make_recording

    udacity.run(udacity.ImportConfig(folder=_make_recording(tmp_path / "lake"), out=tmp_path / "ds", episode_rows=5,
                                     progress=False))
    monkeypatch.chdir(tmp_path)  # relative paths, as typed on the command line
    result = run(ExportConfig(data=Path("ds"), out=Path("root"), progress=False))
    assert result["dataset_id"] == "steerbench/ds-v0" and result["env_spec"] is None
    assert "without an env spec" in result["note"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "root"))
    dataset = minari.load_dataset("steerbench/ds-v0")
    assert dataset.env_spec is None and dataset.total_steps == 12
    assert [len(ep) for ep in dataset.iterate_episodes()] == [5, 2, 5]  # the import's episodes (a gap after row 7)
    with pytest.raises(ValueError, match="env_spec is None"):
        dataset.recover_environment()
    run(ImportConfig(dataset="steerbench/ds-v0", out=tmp_path / "back", progress=False))
    src, back = Dataset.open(tmp_path / "ds"), Dataset.open(tmp_path / "back")
    pd.testing.assert_frame_equal(_in_driving_order(src)[1], _in_driving_order(back)[1])  # NaN state kept
    for cam in range(3):
        assert np.array_equal(src.frames(np.arange(12), cam), back.frames(np.arange(12), cam))


def test_gap_in_an_episode_splits_it_and_imports_back(tmp_path):
    """HG-DAgger keeps only the teacher's segments: steps 0-2 and 5-6 of one episode are two Minari
    episodes (an observation is followed by its action's successor only within a run)."""
    row = {c: 0 for c in INDEX_COLUMNS} | {"track": "somewhere", "source": "hg-dagger", "round": 1}
    with DatasetWriter(tmp_path / "ds", (66, 200, 3), {"kind": "test"}, shard_size=4) as w:
        for i, (ep, step) in enumerate([(0, 0), (1, 0), (0, 1), (0, 2), (1, 1), (0, 5), (0, 6)]):
            w.add(np.full((3, 66, 200, 3), i, np.uint8), {**row, "episode": ep, "step": step, "action": 0.01 * i,
                                                          "label_center": -0.01 * i})
    result = run(ExportConfig(data=tmp_path / "ds", out=tmp_path / "root", dataset_id="gaps-v1", progress=False))
    assert result["episodes"] == 3 and result["env_spec"] is None
    dataset = minari.MinariDataset(tmp_path / "root" / "gaps-v1" / "data")
    assert [list(ep.infos["step"][:-1]) for ep in dataset.iterate_episodes()] == [[0, 1, 2], [5, 6], [0, 1]]
    run(ImportConfig(dataset=str(tmp_path / "root" / "gaps-v1" / "data"), out=tmp_path / "back", progress=False))
    back = Dataset.open(tmp_path / "back")
    pd.testing.assert_frame_equal(_in_driving_order(Dataset.open(tmp_path / "ds"))[1], _in_driving_order(back)[1])
    assert [int(f[0, 0, 0]) for f in back.frames(np.arange(7), 1)] == [0, 2, 3, 5, 6, 1, 4]


@pytest.mark.filterwarnings("ignore:.*(eval_env|env_spec is None).*:UserWarning")  # the foreign dataset's
def test_malformed_inputs_get_clear_errors(exported, tmp_path, monkeypatch):
    import gymnasium as gym
    from minari.data_collector.episode_buffer import EpisodeBuffer

    root, _ = exported
    with pytest.raises(DatasetError, match="no Minari dataset there"):
        run(ImportConfig(dataset="nobody/nothing-v0", datasets_path=tmp_path, out=tmp_path / "a", progress=False))
    # someone else's Minari dataset: no side cameras or teacher labels
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "foreign"))
    minari.create_dataset_from_buffers(
        "other-v0", [EpisodeBuffer(observations=np.zeros((3, 4), np.float32), actions=np.zeros((2, 1), np.float32),
                                   rewards=[0.0, 0.0], terminations=[False, True], truncations=[False, False])],
        observation_space=gym.spaces.Box(-1, 1, (4,)), action_space=gym.spaces.Box(-1, 1, (1,)),
        data_format="arrow", author="test", algorithm_name="none", code_permalink="none", author_email="none",
        description="a foreign dataset")
    with pytest.raises(DatasetError, match="not a SteerBench export"):
        run(ImportConfig(dataset="other-v0", out=tmp_path / "a", progress=False))
    # an export whose declared frames do not match its observations
    copy = tmp_path / "copy"
    shutil.copytree(root / DATASET_ID, copy)
    meta_path = copy / "data" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["steerbench"]["frame_shape"] = [32, 32, 3]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"observation space .* expected uint8 frames of shape \(32, 32, 3\)"):
        run(ImportConfig(dataset=str(copy), out=tmp_path / "a", progress=False))
    # a damaged episode file: named, and nothing is left in `out`
    meta["steerbench"]["frame_shape"] = [66, 200, 3]
    meta_path.write_text(json.dumps(meta))
    part = copy / "data" / "1" / "part-0.arrow"
    part.write_bytes(part.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="episode 1 is not readable"):
        run(ImportConfig(dataset=str(copy), out=tmp_path / "a", progress=False))
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))
    with pytest.raises(DatasetError, match="manifest.json: missing"):
        run(ExportConfig(data=tmp_path / "nowhere", out=tmp_path / "root", progress=False))
