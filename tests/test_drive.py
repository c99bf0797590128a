"""`benchmark drive`: a person drives (scripted key events under SDL's offscreen driver) and the
session is recorded in the collector's dataset format."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pygame
import pytest

from benchmark.common.cli import add_arguments, from_arguments
from benchmark.common.config import field_docs
from benchmark.data.dataset import INDEX_COLUMNS, Dataset
from benchmark.data.drive import DriveConfig, Screen, run, scripted_events
from envs import MAX_CURVATURE, ConfigError, DrivingEnv, build_config

# The oval with seed 22: the first episode starts on a long straight (about 80 m), so the scripted
# steering below keeps the car on the road and the run is deterministic.
TRACK, SEED = "oval", 22
RATE = 0.3  # steer and return rate [1/m per second]: 0.03 per 10 Hz step

SCRIPT = [
    (None, 3),                 # frames 0-2: straight
    (pygame.K_RIGHT, 4),       # 3-6: right held (0.03 .. 0.12)
    (None, 4),                 # 7-10: released, back to 0
    (pygame.K_LEFT, 4),        # 11-14: left held
    (None, 4),                 # 15-18: released
    (pygame.K_SPACE, 3),       # 19-21: recording off (three steps skipped)
    (pygame.K_SPACE, 2),       # 22-23: recording on again
    (pygame.K_p, 3),           # 24-26: paused (no steps)
    (pygame.K_p, 1),           # 27: resumed
    (pygame.K_r, 3),           # 28-30: restart: a new episode
    (pygame.K_ESCAPE, 1),      # 31: quit
]


def _config(tmp_path, **kw) -> DriveConfig:
    base = dict(out=tmp_path / "human", track=TRACK, seed=SEED, realtime=False, gamepad=False,
                steer_rate=RATE, return_rate=RATE, shard_size=8)
    base.update(kw)
    return DriveConfig(**base)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drive")
    config = _config(tmp, screenshot=tmp / "window.png")
    result = run(config, events=scripted_events(SCRIPT))
    return config, result, Dataset.open(config.out)


def test_scripted_session_writes_the_collector_format(session):
    config, result, ds = session
    idx = ds.index
    # 19 steps, 3 skipped (recording off), 2 recorded, 3 paused frames, 1, then 3 after the restart
    assert len(ds) == result["steps"] == 19 + 2 + 1 + 3 == 25
    assert result["episodes"] == 2 and result["env_steps"] == 28 and result["failures"] == 0
    assert set(INDEX_COLUMNS) <= set(idx.columns)
    assert (idx["source"] == "human").all() and (idx["round"] == 0).all()
    assert (idx["track"] == TRACK).all() and (idx["track_seed"] == -1).all()
    m = ds.manifest
    assert m["kind"] == "human" and "person" in m["action_rule"] and "label_rule" in m
    assert m["rig"]["side_offset_m"] == 0.8 and m["tracks"] == [TRACK] and m["seed"] == SEED
    assert m["labels"] == 25 and m["teacher_queries"] == 75 and m["env_steps"] == 28 and m["episodes"] == 2
    assert len(m["episode_seeds"]) == 2 and m["env"]["policy_hz"] == 10.0
    # shards of 8: 3 full and the partial last one, finished at quit; no temporary files left
    assert [s["rows"] for s in m["shards"]] == [8, 8, 8, 1]
    assert not list(config.out.glob("*.partial"))
    assert ds.frames(np.arange(len(ds)), 1).shape == (25, 66, 200, 3)


def test_action_follows_the_keys(session):
    _, _, ds = session
    a = ds.index["action"].to_numpy()
    np.testing.assert_allclose(a[:3], 0.0)
    np.testing.assert_allclose(a[3:7], [0.03, 0.06, 0.09, 0.12])          # right held: ramps up
    np.testing.assert_allclose(a[7:11], [0.09, 0.06, 0.03, 0.0], atol=1e-12)  # released: back to 0
    np.testing.assert_allclose(a[11:15], [-0.03, -0.06, -0.09, -0.12], atol=1e-12)  # left held
    assert (np.diff(np.abs(a[14:19])) < 0).all() and abs(a[18]) < 1e-12   # released: back to 0
    assert (np.abs(a) <= MAX_CURVATURE).all()


def test_recording_toggle_pause_and_restart(session):
    _, _, ds = session
    ep, step = ds.index["episode"].to_numpy(), ds.index["step"].to_numpy()
    assert list(ep) == [0] * 22 + [1] * 3
    # steps 19-21 were driven with recording off; the pause consumed no steps; R started episode 1
    assert list(step[:22]) == list(range(19)) + [22, 23, 24]
    assert list(step[22:]) == [0, 1, 2]


def test_labels_are_the_teachers(session):
    config, _, ds = session
    rows = ds.index[ds.index["episode"] == 0].iloc[:19]
    env = DrivingEnv(TRACK, config={"max_steps": config.episode_steps})
    _, info = env.reset(seed=ds.manifest["episode_seeds"][0])
    o = env.camera_config.side_offset_m
    frames = ds.frames(np.arange(19), 1)
    for k, row in enumerate(rows.itertuples()):
        assert row.step == info["step"]
        assert row.label_center == pytest.approx(info["teacher_action"], abs=1e-12)
        assert row.label_left == pytest.approx(env.teacher_action_at(-o), abs=1e-12)
        assert row.label_right == pytest.approx(env.teacher_action_at(o), abs=1e-12)
        assert row.lateral_offset == pytest.approx(info["lateral_offset"], abs=1e-12)
        np.testing.assert_array_equal(frames[k], env.last_frame)
        _, _, _, _, info = env.step(np.array([row.action], np.float32))
    # the person steered hard right then left on a straight: the teacher disagrees
    hard = rows[np.abs(rows["action"]) >= 0.09]
    assert np.isfinite(rows[["label_left", "label_center", "label_right"]].to_numpy()).all()
    assert (np.abs(hard["label_center"] - hard["action"]) > 0.05).all()


def test_window_layout(session):
    config, _, _ = session
    image = pygame.image.load(str(config.screenshot))
    assert image.get_size() == (200 * config.scale + Screen.TOPDOWN,
                                max(66 * config.scale + Screen.HUD_H, Screen.TOPDOWN) + Screen.HELP_H)
    pixels = pygame.surfarray.array3d(image)
    assert pixels[: 200 * config.scale, : 66 * config.scale].std() > 10  # the dashcam view is drawn


def test_episode_end_starts_a_new_episode_and_max_steps_stops(tmp_path):
    # a sharp right turn, then straight on: off the road (past the lanes on the right); again and again
    config = _config(tmp_path, steer_rate=2.0, return_rate=2.0, max_steps=40)
    result = run(config, events=scripted_events([(pygame.K_RIGHT, 3), (None, 30)] * 10))
    ds = Dataset.open(config.out)
    ep, step = ds.index["episode"].to_numpy(), ds.index["step"].to_numpy()
    assert len(ds) == result["steps"] == result["env_steps"] == 40  # stopped at max_steps
    assert result["failures"] >= 1 and ds.manifest["failures"] == result["failures"]
    assert result["episodes"] == ds.manifest["episodes"] == len(set(ep)) >= 2
    assert ep[0] == 0 and (np.diff(ep) >= 0).all()
    first = np.flatnonzero(ep == 1)[0]
    assert step[first] == 0 and step[first - 1] > 0
    assert ds.index["lateral_offset"].iloc[first - 1] > 5.0  # episode 0 ended off the road


def test_truncated_episodes_and_end_of_script(tmp_path):
    config = _config(tmp_path, episode_steps=5)
    result = run(config, events=[[] for _ in range(12)])  # the script ends: the session quits
    ds = Dataset.open(config.out)
    assert list(ds.index["episode"]) == [0] * 5 + [1] * 5 + [2] * 2
    assert list(ds.index["step"]) == [0, 1, 2, 3, 4] * 2 + [0, 1]
    assert result["failures"] == 0 and (ds.index["action"] == 0).all()


def test_gamepad_axis_and_keys(tmp_path):
    def axis(v):
        return [pygame.event.Event(pygame.JOYAXISMOTION, joy=0, instance_id=0, axis=0, value=v)]

    def key(t, k):
        return [pygame.event.Event(t, key=k)]

    events = [axis(0.55), [], axis(-1.0), axis(0.05), [], key(pygame.KEYDOWN, pygame.K_a), [],
              key(pygame.KEYUP, pygame.K_a)]
    config = _config(tmp_path, gamepad=True, dead_zone=0.1)
    run(config, events=events)
    a = Dataset.open(config.out).index["action"].to_numpy()
    half, full = 0.5 * MAX_CURVATURE, MAX_CURVATURE
    # outside the dead zone the stick sets the command; inside it the command returns at return_rate;
    # a held key takes precedence over the stick
    np.testing.assert_allclose(a[:5], [half, half, -full, -full + 0.03, -full + 0.06])
    np.testing.assert_allclose(a[5:], [-full + 0.06 - 0.03, -full + 0.06 - 0.06, -full + 0.06 - 0.06 + 0.03])
    # with the gamepad off, axis events are ignored
    config = _config(tmp_path, out=tmp_path / "keys-only")
    run(config, events=[axis(0.9), []])
    assert (Dataset.open(config.out).index["action"] == 0).all()


def test_quitting_at_once_leaves_no_dataset(tmp_path):
    config = _config(tmp_path)
    result = run(config, events=[[pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q)]])
    assert result["steps"] == 0 and not config.out.exists()


@pytest.mark.parametrize("fields, message", [
    ({"track": "nope"}, "unknown track 'nope'"),
    ({"track": "procedural"}, "needs track_seed"),
    ({"track": "procedural", "track_seed": 1_000_000}, "held-out test seed"),
    ({"track": "custom"}, "needs track_file"),
    ({"scale": 0}, "scale must be 1..8"),
    ({"steer_rate": -1.0}, "steer_rate must be a positive number"),
    ({"return_rate": float("nan")}, "return_rate must be >= 0"),
    ({"dead_zone": 1.0}, r"dead_zone must be in \[0, 1\)"),
    ({"max_steps": -1}, "max_steps must be >= 0"),
    ({"traffic": 100}, "traffic must be 0..64"),
    ({"trak": "oval"}, "unknown key 'trak'"),
])
def test_bad_config_is_a_clear_error(fields, message):
    with pytest.raises(ConfigError, match=message):
        build_config(DriveConfig, fields)


def test_command_line_options_and_errors(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, DriveConfig)
    docs = field_docs(DriveConfig)
    assert all(docs.get(name) for name in DriveConfig.__dataclass_fields__)  # every field has --help
    args = parser.parse_args(["--track", "procedural", "--track-seed", "7", "--no-realtime", "--max-steps", "5",
                              "--out", str(tmp_path / "x")])
    config = from_arguments(DriveConfig, args)
    assert config.track_seed == 7 and config.realtime is False and config.max_steps == 5
    with pytest.raises(ConfigError, match="unknown track 'nope'"):
        from_arguments(DriveConfig, parser.parse_args(["--track", "nope"]))


def test_existing_dataset_is_not_overwritten(tmp_path):
    out = tmp_path / "human"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"keep": True}))
    with pytest.raises(FileExistsError, match="not empty"):
        run(_config(tmp_path), events=[])
    assert json.loads((out / "manifest.json").read_text()) == {"keep": True}


def test_default_event_source_and_interrupt(tmp_path):
    # the CLI's source, pygame.event.get: the offscreen window has no key events; max_steps stops it
    config = _config(tmp_path, max_steps=3)
    assert run(config)["steps"] == 3 and len(Dataset.open(config.out)) == 3

    # Ctrl+C mid-session still finishes the dataset, counts included
    frames = iter([[]] * 5)

    def source():
        try:
            return next(frames)
        except StopIteration:
            raise KeyboardInterrupt from None

    config = _config(tmp_path, out=tmp_path / "interrupted")
    with pytest.raises(KeyboardInterrupt):
        run(config, events=source)
    ds = Dataset.open(config.out)
    assert len(ds) == ds.manifest["labels"] == ds.manifest["env_steps"] == 5
    assert not list(config.out.glob("*.partial"))
