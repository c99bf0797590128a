"""The dataset format: shards, index, manifest, checksums, crash safety."""

import json

import numpy as np
import pytest

from benchmark.data.dataset import CAMERAS, INDEX_COLUMNS, Dataset, DatasetError, DatasetWriter


def test_recording_layout_and_manifest(small_dataset):
    ds = Dataset.open(small_dataset)
    m = ds.manifest
    assert len(ds) == m["steps"] == m["labels"] == 4 * 80
    assert [s["rows"] for s in m["shards"]] == [50] * 6 + [20]
    assert m["cameras"] == list(CAMERAS) and m["frame_shape"] == [66, 200, 3]
    assert m["rig"]["side_offset_m"] == 0.8 and "label_rule" in m and m["procedural_seeds"] == [3]
    assert set(INDEX_COLUMNS) <= set(ds.index.columns)
    assert set(ds.index["track"]) == {"oval", "procedural-3"}
    assert all(isinstance(a, np.memmap) for a in ds.shards)  # memory-mapped, not loaded
    frames = ds.frames(np.array([0, 55, 300]), 1)
    assert frames.shape == (3, 66, 200, 3) and frames.dtype == np.uint8
    # left/centre/right labels: a car on the centre line sees positive labels on the left camera
    near_centre = ds.index[np.abs(ds.index["lateral_offset"]) < 0.05]
    assert (near_centre["label_left"] > near_centre["label_center"]).all()
    assert (near_centre["label_right"] < near_centre["label_center"]).all()


def test_corrupt_or_missing_shard_is_named(small_dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    shard = copy / "shard-00002.npy"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="shard-00002.npy: checksum mismatch"):
        Dataset.open(copy)
    shard.unlink()
    with pytest.raises(DatasetError, match="shard-00002.npy: missing"):
        Dataset.open(copy)
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="manifest.json: not valid JSON"):
        Dataset.open(copy)
    with pytest.raises(DatasetError, match="manifest.json: missing"):
        Dataset.open(tmp_path / "nowhere")


def test_unfinished_recording_keeps_its_finished_shards(tmp_path):
    writer = DatasetWriter(tmp_path / "d", (66, 200, 3), {"kind": "test"}, shard_size=10)
    row = {c: 0 for c in INDEX_COLUMNS} | {"track": "oval", "source": "teacher"}
    for i in range(25):
        writer.add(np.full((3, 66, 200, 3), i, np.uint8), {**row, "step": i})
    # killed here: never closed
    ds = Dataset.open(tmp_path / "d")
    assert len(ds) == 20 and ds.index["step"].tolist() == list(range(20))
    assert ds.frames([19], 1)[0, 0, 0, 0] == 19
    assert not list((tmp_path / "d").glob("*.parquet.partial"))


def test_writer_refuses_to_overwrite(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        DatasetWriter(tmp_path / "d", (66, 200, 3), {})


def test_frames_are_never_unpickled(small_dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(small_dataset, copy)
    np.save(copy / "shard-00000.npy", np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    from benchmark.common.files import sha256_file

    manifest["shards"][0]["frames_sha256"] = sha256_file(copy / "shard-00000.npy")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="shard-00000.npy"):
        Dataset.open(copy)
