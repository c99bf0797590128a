"""Shifted cameras and label rules, synthetic views, photometric augmentation, balanced sampling."""

import numpy as np
import pytest

from benchmark.data.dataset import Dataset
from benchmark.training.augment import AugmentConfig, SampleMaker, ViewRenderer, ViewWarper, curvature_balanced_weights
from envs import CameraConfig


@pytest.fixture(scope="module")
def ds(small_dataset):
    return Dataset.open(small_dataset)


def centred_steps(ds, tol=0.05):
    idx = ds.index
    ok = (np.abs(idx["lateral_offset"]) < tol) & (np.abs(idx["heading_error"]) < 0.02)
    return np.flatnonzero(ok.to_numpy())


@pytest.mark.parametrize("rule", ["fixed", "return", "teacher"])
def test_a_camera_left_of_the_lane_centre_gets_a_right_turning_label(ds, rule):
    maker = SampleMaker(ds, AugmentConfig(side_cameras=True, label_rule=rule))
    o = maker.side_offset
    steps = centred_steps(ds)
    assert len(steps) > 20
    for i in steps[::5]:
        centre = maker.label(i, 0.0, 0.0, 1, False)
        for synthetic, shift, cam in ((False, -o, 0), (True, -0.5, 1), (True, -1.0, 1)):
            assert maker.label(i, shift, 0.0, cam, synthetic) > centre + 1e-3
            assert maker.label(i, -shift, 0.0, 2 - cam if cam != 1 else 1, synthetic) < centre - 1e-3
        # rotated right, steer left; rotated left, steer right
        assert maker.label(i, 0.0, 0.08, 1, True) < centre
        assert maker.label(i, 0.0, -0.08, 1, True) > centre


def test_zero_shift_reproduces_the_frame(ds):
    frame = ds.frames([10], 1)[0]
    assert np.array_equal(ViewWarper(CameraConfig()).warp(frame, 0.0, 0.0), frame)
    row = ds.index.iloc[10]
    rendered = ViewRenderer(CameraConfig()).render(row.track, row.x, row.y, row.heading, 0.0, 0.0)
    assert np.array_equal(rendered, frame)


@pytest.mark.parametrize("shift, yaw", [(0.6, 0.0), (-1.0, 0.0), (0.0, 0.08), (0.8, -0.06)])
def test_warp_of_a_recorded_frame_agrees_with_the_exact_render_on_the_road(ds, shift, yaw):
    warper, renderer = ViewWarper(CameraConfig()), ViewRenderer(CameraConfig())
    diffs = []
    for i in range(0, len(ds), 37):
        row = ds.index.iloc[i]
        warped = warper.warp(ds.frames([i], 1)[0], shift, yaw)
        exact = renderer.render(row.track, row.x, row.y, row.heading, shift, yaw)
        road = slice(40, 66)  # near rows: road surface within the recorded view
        diffs.append(np.abs(warped[road].astype(int) - exact[road].astype(int)).mean())
        assert not np.array_equal(warped, ds.frames([i], 1)[0])
    assert np.mean(diffs) < 4.0 and np.max(diffs) < 8.0


def test_side_camera_warp_uses_its_own_position(ds):
    """Warping the left camera's frame by +o lands on the centre view."""
    warper = ViewWarper(CameraConfig())
    o = CameraConfig().side_offset_m
    i = 42
    left, centre = ds.frames([i], 0)[0], ds.frames([i], 1)[0]
    moved = warper.warp(left, o, 0.0, base_shift_m=-o)
    assert np.abs(moved[40:].astype(int) - centre[40:].astype(int)).mean() < 4.0


def test_batches_are_reproducible_and_shaped(ds):
    cfg = AugmentConfig(side_cameras=True, synthetic_prob=0.5, synthetic_method="render", photometric=True)
    a = SampleMaker(ds, cfg, seed=3).batch(np.arange(16), np.random.default_rng(5))
    b = SampleMaker(ds, cfg, seed=3).batch(np.arange(16), np.random.default_rng(5))
    assert a[0].shape == (16, 66, 200, 3) and a[0].dtype == np.uint8 and a[1].shape == (16,)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    plain = SampleMaker(ds, AugmentConfig()).batch(np.arange(16), np.random.default_rng(5))
    assert np.array_equal(plain[0], ds.frames(np.arange(16), 1))
    assert np.allclose(plain[1], ds.index["label_center"].to_numpy()[:16])
    assert not np.array_equal(a[0], plain[0])


def test_curvature_balanced_sampling_oversamples_curves(ds):
    labels = ds.index["label_center"].to_numpy()
    w = curvature_balanced_weights(labels)
    assert w.sum() == pytest.approx(1.0)
    assert (np.abs(labels) * w).sum() > np.abs(labels).mean() * 1.2


def test_rebuilding_an_unknown_track_for_synthetic_views_fails_clearly(ds):
    from envs import track_by_name

    with pytest.raises(ValueError, match="cannot be rebuilt"):
        track_by_name("udacity:lake")
