"""Udacity-style driving_log.csv: export, import (simulator and sample-data layouts), round trip, errors."""

import argparse
import csv
import datetime
import json

import cv2
import numpy as np
import pytest

from benchmark.data.dataset import Dataset
from benchmark.data.udacity import ExportConfig, ImportConfig, UdacityError, export_order, run
from envs import MAX_CURVATURE

SCALE = 0.05  # curvature [1/m] per unit of steering in the synthetic recordings


@pytest.fixture(scope="module")
def exported(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "udacity"
    result = run(ExportConfig(data=small_dataset, out=out, max_steps=100, progress=False))
    return out, result


def test_export_writes_simulator_columns_pngs_and_sidecar(exported, small_dataset):
    out, result = exported
    assert result["rows"] == 100 and result["images"] == 300
    with open(out / "driving_log.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["center", "left", "right", "steering", "throttle", "brake", "speed"]
    assert len(rows) == 101
    assert rows[1][:3] == ["IMG/center_000000.png", "IMG/left_000000.png", "IMG/right_000000.png"]
    full = Dataset.open(small_dataset).index
    src = full.iloc[export_order(full)[:100]]
    assert list(src["episode"][78:82]) == [0, 0, 1, 1]  # driving order, not the recording's lockstep order
    steering = np.array([float(r[3]) for r in rows[1:]])
    np.testing.assert_allclose(steering * MAX_CURVATURE, src["label_center"], rtol=1e-12, atol=1e-15)
    assert np.abs(steering).max() <= 1.0 + 1e-9  # default scale: full lock is steering +-1
    assert {r[4] for r in rows[1:]} == {"0"} and {r[5] for r in rows[1:]} == {"0"}
    np.testing.assert_allclose([float(r[6]) for r in rows[1:]], src["speed"])  # m/s
    img = cv2.imread(str(out / "IMG" / "center_000042.png"))
    assert img.shape == (66, 200, 3)
    side = json.loads((out / "steerbench.json").read_text())
    assert side["steering_scale"] == MAX_CURVATURE and side["speed_unit"] == "m/s"
    assert side["rig"]["side_offset_m"] == 0.8 and side["source"]["steps"] == 320
    assert [e["rows"] for e in side["episodes"]] == [80, 20]
    with pytest.raises(FileExistsError, match="not empty"):
        run(ExportConfig(data=small_dataset, out=out, max_steps=3, progress=False))


def test_round_trip_keeps_labels_and_frames_exactly(exported, small_dataset, tmp_path):
    out, _ = exported
    ds_out = tmp_path / "imported"
    result = run(ImportConfig(folder=out, out=ds_out, steering_scale=MAX_CURVATURE, crop_top=0, crop_bottom=66,
                              progress=False))
    assert result["steps"] == 100 and result["episodes"] == 2
    src, back = Dataset.open(small_dataset), Dataset.open(ds_out)
    order = export_order(src.index)[:100]
    idx = back.index
    np.testing.assert_allclose(idx["label_center"], src.index["label_center"][order], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(idx["action"], idx["label_center"])
    np.testing.assert_allclose(idx["speed"], src.index["speed"][order])  # unit from steerbench.json
    assert idx["label_left"].isna().all() and idx["label_right"].isna().all() and idx["x"].isna().all()
    assert list(idx["episode"][78:82]) == [0, 0, 1, 1] and list(idx["step"][78:82]) == [78, 79, 0, 1]
    for cam in range(3):
        assert np.array_equal(back.frames(np.arange(100), cam), src.frames(order, cam))
    m = back.manifest
    assert m["kind"] == "udacity-import" and m["resize"] is None and m["rig"] == src.manifest["rig"]
    assert set(idx["source"]) == {"udacity"} and set(idx["track"]) == {"udacity:udacity"}


def _make_recording(folder, rows=12, header=False, windows_paths=True, gap_before=7):
    """A simulator-like recording: 160x320 JPGs (sky, road, hood bands) and driving_log.csv."""
    img_dir = folder / "IMG"
    img_dir.mkdir(parents=True)
    lines = []
    if header:
        lines.append("center,left,right,steering,throttle,brake,speed")
    for i in range(rows):
        t = datetime.datetime(2016, 12, 1, 13, 30, 48, 287000) + datetime.timedelta(
            seconds=0.1 * i + (5.0 if i >= gap_before else 0.0))
        stamp = t.strftime("%Y_%m_%d_%H_%M_%S_") + f"{t.microsecond // 1000:03d}"
        names = []
        for c, cam in enumerate(("center", "left", "right")):
            img = np.zeros((160, 320, 3), np.uint8)
            img[:60] = (230, 200, 150)  # sky (BGR)
            img[60:135] = (20 * i % 256, 40 + 60 * c, 200)  # road band, distinct per row and camera
            img[135:] = (30, 160, 30)  # hood
            name = f"{cam}_{stamp}.jpg"
            cv2.imwrite(str(img_dir / name), img)
            names.append(rf"C:\Users\me\sim\IMG\{name}" if windows_paths else f"IMG/{name}")
        steering = (i - rows / 2) / rows
        lines.append(f"{names[0]}, {names[1]}, {names[2]}, {steering!r}, 0.5, 0, {20.0 + i}")
    (folder / "driving_log.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_import_simulator_log_without_header_and_windows_paths(tmp_path):
    rec = _make_recording(tmp_path / "lake")
    result = run(ImportConfig(folder=rec, out=tmp_path / "ds", steering_scale=SCALE, episode_rows=4, progress=False))
    assert result["steps"] == 12
    ds = Dataset.open(tmp_path / "ds")
    idx = ds.index
    steering = (np.arange(12) - 6) / 12
    np.testing.assert_allclose(idx["label_center"], steering * SCALE)
    np.testing.assert_allclose(idx["action"], steering * SCALE)
    np.testing.assert_allclose(idx["speed"], (20.0 + np.arange(12)) * 0.44704)  # the simulator's mph
    # timestamp gap before row 7, then blocks of 4 rows
    assert list(idx["episode"]) == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3]
    assert list(idx["step"]) == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 0]
    assert set(idx["track"]) == {"udacity:lake"} and set(idx["track_seed"]) == {-1}
    frames = ds.frames(np.arange(12), 1)
    assert frames.shape == (12, 66, 200, 3)
    # same pipeline by hand: crop rows 60..135, INTER_AREA to 66x200, BGR -> RGB
    raw = cv2.imread(str(sorted((rec / "IMG").glob("left_*.jpg"))[5]))
    want = cv2.cvtColor(cv2.resize(raw[60:135], (200, 66), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    assert np.array_equal(ds.frames([5], 0)[0], want)
    # sky and hood are cropped away: the road band's colour everywhere (RGB order)
    mean = frames[3, 10:56, 10:190].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(mean, (200, 40, 60), atol=6)
    assert ds.manifest["label_rule"] == "recorded steering * steering_scale (centre camera only)"
    assert ds.manifest["crop"] == {"top": 60, "bottom": 135} and ds.manifest["steering_scale"] == SCALE


def test_import_sample_data_layout_with_header(tmp_path):
    rec = _make_recording(tmp_path / "sample", rows=5, header=True, windows_paths=False)
    run(ImportConfig(folder=rec / "driving_log.csv", out=tmp_path / "ds", steering_scale=SCALE, progress=False))
    idx = Dataset.open(tmp_path / "ds").index
    np.testing.assert_allclose(idx["label_center"], (np.arange(5) - 2.5) / 5 * SCALE)
    assert list(idx["episode"]) == [0] * 5


def _raises(tmp_path, folder, match, **kw):
    out = tmp_path / "out"
    with pytest.raises(UdacityError, match=match):
        run(ImportConfig(folder=folder, out=out, steering_scale=SCALE, progress=False, **kw))
    assert not (out / "manifest.json").exists()  # nothing half-written left behind


def test_import_errors_name_the_problem(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _raises(tmp_path, empty, r"empty/driving_log.csv: missing")

    rec = _make_recording(tmp_path / "rec", rows=4, header=True, windows_paths=False)
    log = rec / "driving_log.csv"
    lines = log.read_text().splitlines()

    log.write_text("\n".join(["center,left,steering,speed"] + lines[1:]) + "\n")
    _raises(tmp_path, rec, r"no column 'right'; required: center, left, right, steering")

    bad = lines[:]
    bad[2] = bad[2].replace(", -0.25,", ", abc,")
    log.write_text("\n".join(bad) + "\n")
    _raises(tmp_path, rec, r"driving_log.csv line 3: steering 'abc' is not a number")

    log.write_text("\n".join(lines) + "\n")
    left = sorted((rec / "IMG").glob("left_*.jpg"))[2]
    left.rename(left.with_suffix(".moved"))
    _raises(tmp_path, rec, rf"line 4 \(left\): image 'IMG/{left.name}' not found \(tried ")
    left.with_suffix(".moved").rename(left)

    center = sorted((rec / "IMG").glob("center_*.jpg"))[3]
    center.write_bytes(b"not a jpeg")
    _raises(tmp_path, rec, rf"line 5: the center image .*{center.name} is not a readable image")

    _raises(tmp_path, rec, r"line 2: the left image .* is 160x320 .*too small for the crop rows 60..200",
            crop_bottom=200)


def test_configs_work_as_command_line_options(tmp_path):
    from benchmark.common.cli import add_arguments, from_arguments

    for cls, argv in ((ExportConfig, ["--data", "d", "--out", "o", "--no-header", "--steering-scale", "0.1"]),
                      (ImportConfig, ["--folder", "f", "--crop-top", "0", "--crop-bottom", "66",
                                      "--steering-scale", "none", "--speed-unit", "m/s"])):
        p = argparse.ArgumentParser()
        add_arguments(p, cls)
        config = from_arguments(cls, p.parse_args(argv))
        assert isinstance(config, cls)
    assert from_arguments(ExportConfig, p_args(ExportConfig, ["--data", "d", "--out", "o"])).header is True
    with pytest.raises(ValueError, match="crop rows"):
        ImportConfig(folder=tmp_path, crop_top=70, crop_bottom=66)


def p_args(cls, argv):
    from benchmark.common.cli import add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p, cls)
    return p.parse_args(argv)
