"""Static obstacles and the bimodal teacher: the layout per track, the passing sides per episode,
collisions, drawing, determinism, today's env untouched without obstacles, and the teacher getting
round the obstacles (over the held-out test tracks of the tasks protocol: tests/test_protocol_tasks.py)."""

import hashlib
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import ConfigError, DrivingEnv, ObstacleConfig, procedural_track
from envs.obstacles import CONE_COLOR, car_extents, footprint, in_the_way, layout, pass_half_length, pass_offsets

from .conftest import drive_teacher

TRACK_SEED = 1000101
"""3 lanes of 5 m; lane 1 has a stopped car on a straight, centred on the lane, at s ~ 347 m."""
CAR_S = 347.3


def _env(**kwargs) -> DrivingEnv:
    return DrivingEnv("procedural", track_seed=TRACK_SEED, **kwargs)


def _step(env, info):
    return env.step(np.array([info["teacher_action"]], np.float32))


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize("obstacles, message", [
    ({"kind": ["car"]}, "unknown key 'kind'; valid keys are: clearance_m, count"),
    ({"kinds": ["truck"]}, "obstacle kinds must be"),
    ({"per_km": 0}, "per_km"),
    ({"ramp_m": 60, "min_spacing_m": 100}, "two passes would overlap"),
    ({"lane": 3}, "lane 3 is not a lane of procedural-1000101"),
])
def test_bad_obstacle_settings_are_named(obstacles, message):
    with pytest.raises(ConfigError, match=message):
        gym.make("SteerBench/Procedural-v0", track_seed=1000101, obstacles=obstacles)


def test_obstacles_kwarg_forms():
    assert _env().obstacle_config is None and _env(obstacles=False).obstacle_config is None
    assert _env(obstacles=0).obstacle_config is None
    assert _env(obstacles=True).obstacle_config == ObstacleConfig()
    assert _env(obstacles=2).obstacle_config == ObstacleConfig(count=2)
    assert _env(obstacles={"kinds": ["cones"]}).obstacle_config.kinds == ("cones",)  # a YAML list becomes a tuple


def test_an_env_with_obstacles_passes_check_env_and_runs_vectorised():
    check_env(_env(obstacles=True), skip_render_check=True)
    vec = gym.make_vec("SteerBench/Procedural-v0", num_envs=2, vectorization_mode="sync",
                       track_seed=TRACK_SEED, obstacles=True)
    _, infos = vec.reset(seed=0)
    _, _, _, _, infos = vec.step(infos["teacher_action"].reshape(2, 1).astype(np.float32))
    assert infos["obstacle_side"].shape == (2,) and set(infos["obstacle_side"]) <= {"left", "right"}
    vec.close()


# --- without obstacles, today's env ---------------------------------------------------------------


def _fingerprint(**kwargs) -> str:
    """Frames, infos, virtual-pose labels and top-down views of two short teacher episodes with traffic."""
    h = hashlib.sha256()
    for track, extra in (("procedural", {"track_seed": 1000101}), ("oval", {})):
        env = DrivingEnv(track, traffic=4, **extra, **kwargs)
        obs, info = env.reset(seed=3)
        for _ in range(40):
            h.update(obs.tobytes())
            h.update(repr(sorted(info.items())).encode())
            h.update(repr(env.teacher_action_at(0.5, 0.05)).encode())
            obs, _, _, _, info = env.step(np.array([info["teacher_action"]], np.float32))
        h.update(env.render_topdown().tobytes())
        h.update(env.render_map(300).tobytes())
        h.update(env.recover()[0].tobytes())
    return h.hexdigest()


MAIN_FINGERPRINT = "3952116366827025eea1a68b495d3963c151bcc95e45ae81771f3c26df47c06e"
"""_fingerprint() computed with the env of main before obstacles existed (at 5df9c21 and at a230d65)."""


def test_without_obstacles_the_env_is_bit_identical_to_before():
    assert _fingerprint() == MAIN_FINGERPRINT
    assert _fingerprint(obstacles=None) == _fingerprint(obstacles=False) == MAIN_FINGERPRINT


def test_the_passing_sides_do_not_disturb_the_resets_other_draws():
    plain, obstructed = _env(), _env(obstacles=True)
    for seed in range(12):
        _, a = plain.reset(seed=seed)
        _, b = obstructed.reset(seed=seed)
        assert a["lane"] == b["lane"]
        moved = a["s_m"] != b["s_m"]  # a random start inside a pass is moved past it
        assert not moved or obstructed.passes.clear_start(a["s_m"]) == pytest.approx(b["s_m"])
        assert plain.np_random.random() == obstructed.np_random.random()  # the same generator state


# --- the layout -------------------------------------------------------------------------------------


def test_every_episode_on_a_lane_meets_the_same_obstacles():
    env = _env(obstacles=True)
    env.reset(seed=0, options={"lane": 1})
    first = [(ob.kind, ob.s, ob.offset, [(b.x, b.y) for b in ob.boxes]) for ob in env.obstacles]
    env.reset(seed=99, options={"lane": 1})
    again = [(ob.kind, ob.s, ob.offset, [(b.x, b.y) for b in ob.boxes]) for ob in env.obstacles]
    assert first == again and len(first) == 4  # ~1.2 km at 3 per km
    other = _env(obstacles={"layout": 1})
    other.reset(seed=0, options={"lane": 1})
    assert [ob.s for ob in other.obstacles] != [s for _, s, _, _ in first]


@pytest.mark.parametrize("seed", [1000100, 1000101, 1000105, 1000109, 1000111, 1000123])
def test_every_obstacle_can_be_passed_on_both_sides(seed):
    track, config = procedural_track(seed), ObstacleConfig()
    for lane in range(track.lanes):
        obstacles = layout(track, config, lane)
        assert bool(obstacles) == (track.lanes > 1)  # one-lane roads have no room for both passes
        for i, ob in enumerate(obstacles):
            fp = footprint(ob.boxes, track.paths[lane])
            car = car_extents(track.paths[lane], fp.s, pass_half_length(fp))
            left, right = pass_offsets(fp, car, track.road_edges(lane), config)
            assert left is not None and right is not None and in_the_way(fp, car, config)
            if i:  # min_spacing_m apart along the track (lanes differ in length by a little)
                assert ob.s - obstacles[i - 1].s > 0.95 * config.min_spacing_m


def test_random_starts_are_never_on_a_pass():
    env = _env(obstacles=True)
    for seed in range(30):
        _, info = env.reset(seed=seed)
        for p in env.passes.passes:
            ds = (info["s_m"] - p.s + 0.5 * env.path.length) % env.path.length - 0.5 * env.path.length
            assert not -(p.half_length + env.passes.ramp) < ds < p.half_length


# --- determinism, drawing, collisions -------------------------------------------------------------


def test_same_seed_same_obstacles_sides_and_frames():
    runs = []
    for _ in range(2):
        env = _env(obstacles=True)
        obs, info = env.reset(seed=4)
        frames, infos = [obs], [info]
        for _ in range(60):
            obs, _, _, _, info = _step(env, info)
            frames.append(obs)
            infos.append(info)
        runs.append((frames, infos, env.passes.sides))
    (fa, ia, sa), (fb, ib, sb) = runs
    assert sa == sb and all(np.array_equal(a, b) for a, b in zip(fa, fb)) and ia == ib
    env = _env(obstacles=True)
    sides = set()
    for seed in range(8):
        env.reset(seed=seed)
        sides.add(env.passes.sides)
    assert len(sides) > 1  # the sides change with the episode


def test_obstacles_are_drawn_on_the_dashcam_and_the_maps():
    env, plain = _env(obstacles={"kinds": ["cones"]}), _env()
    options = {"lane": 1, "start_s": 150.0}  # 27 m before a row of cones
    obs, info = env.reset(seed=0, options=options)
    bare, _ = plain.reset(seed=0, options=options)
    assert env.obstacles[0].kind == "cones" and 20 < info["obstacle_distance_m"] < 30
    orange = np.all(np.abs(obs.astype(int) - np.array(CONE_COLOR)) < 60, axis=-1)
    assert orange.sum() >= 10 and not np.array_equal(obs, bare)
    for view in (env.render_topdown(), env.render_map()):
        assert np.all(view == np.array(CONE_COLOR, np.uint8), axis=-1).any()


def test_touching_an_obstacle_is_a_collision_and_obstacles_do_not_move():
    env = _env(obstacles=True, config={"max_steps": 100})
    _, info = env.reset(seed=0, options={"lane": 1, "start_s": CAR_S - 30.0})
    boxes = [b for ob in env.obstacles for b in ob.boxes]
    for _ in range(100):  # keep the lane centre (the teacher without its pass): straight into the car
        v = env.vehicle
        action = env.teacher.action(env.path, v.position[0], v.position[1], v.heading, v.speed, env._seg)
        _, _, terminated, _, info = env.step(np.array([action], np.float32))
        if terminated:
            break
    assert terminated and info["failure"] == "collision" and info["crashed"]
    assert abs(info["obstacle_distance_m"]) < 8.0 and info["rewards"]["no_collision"] == 0.0
    assert [b for ob in env.obstacles for b in ob.boxes] == boxes
    assert not env.road.objects and env.road.vehicles == [env.vehicle]  # not highway-env objects
    _, info = env.recover()  # back on the teacher's passing line, beside the car: clear of it
    assert info["failure"] is None and abs(info["lateral_offset"]) > 2.5


# --- the bimodal teacher ----------------------------------------------------------------------------


def _side_seeds(env, index: int) -> dict[str, int]:
    """A reset seed for each side of obstacle `index` (lane 1, start before the stopped car)."""
    found: dict[str, int] = {}
    for seed in range(40):
        env.reset(seed=seed, options={"lane": 1, "start_s": 0.0})
        found.setdefault(env.passes.passes[index].side, seed)
        if len(found) == 2:
            return found
    raise AssertionError("one side never drawn in 40 episodes")


def test_the_same_image_is_labelled_both_ways_and_both_passes_get_round():
    env = _env(obstacles=True)
    env.reset(seed=0, options={"lane": 1})
    index = next(p.obstacle for p in env.passes.passes if abs(p.s - CAR_S) < 1.0)
    seeds = _side_seeds(env, index)
    start = {"lane": 1, "start_s": CAR_S - 8.0 - 20.0}  # on the approach ramp, 28 m before the car
    out = {}
    for side, seed in seeds.items():
        obs, info = env.reset(seed=seed, options=start)
        label, virtual = info["teacher_action"], env.teacher_action_at(0.3, -0.02)
        assert info["obstacle_side"] == side and info["obstacle_kind"] == "car"
        assert env.teacher_action_at() == label
        d_at_car = None
        for _ in range(60):
            _, _, terminated, _, info = _step(env, info)
            assert not terminated, info["failure"]
            if info["obstacle_distance_m"] is not None and abs(info["obstacle_distance_m"]) < 1.0:
                d_at_car = info["lateral_offset"]
        out[side] = (obs, label, virtual, d_at_car)
    (fl, al, vl, dl), (fr, ar, vr, dr) = out["left"], out["right"]
    assert np.array_equal(fl, fr)  # one image ...
    assert al < -0.01 and ar > 0.01  # ... two labels: steer left, steer right
    assert vl < 0 < vr  # and so at a virtual pose (the shifted cameras' labels)
    assert dl < -2.8 and dr > 2.8  # alongside the car: 3 m left or right of the lane centre (1 m of clearance)


def test_infos_record_the_passing_sides():
    env = _env(obstacles=True)
    _, info = env.reset(seed=2)
    infos = drive_teacher(env, 800, info)  # 640 m: the longest gap between obstacles here is 460 m
    sides = env.passes.sides
    assert info["obstacle_sides"] == sides and len(sides) == len(env.obstacles) and set(sides) <= {"left", "right"}
    met = {(i["obstacle"], i["obstacle_side"]) for i in infos if abs(i["obstacle_distance_m"]) < 2.0}
    assert met and all(sides[k] == side for k, side in met)
    for i in (i for i in infos if abs(i["obstacle_distance_m"]) < 2.0):  # the line clears the obstacle
        centre = env.obstacles[i["obstacle"]].offset
        assert (i["pass_offset_m"] - centre) * (1 if i["obstacle_side"] == "right" else -1) > 2.0


def test_the_teacher_gets_round_the_obstacles_of_a_few_test_tracks():
    passes = 0
    for seed in (1000101, 1000105, 1000123):
        env = DrivingEnv("procedural", track_seed=seed, obstacles=True, config={"max_steps": 600})
        _, info = env.reset(seed=1)
        infos = drive_teacher(env, 600, info)
        assert len(infos) == 600 and not any(i["failure"] for i in infos)
        passes += len({i["obstacle"] for i in infos if abs(i["obstacle_distance_m"]) < 1.0})
    assert passes >= 4


def test_distances_are_signed_along_the_lane():
    env = _env(obstacles=True)
    _, info = env.reset(seed=0, options={"lane": 1, "start_s": CAR_S - 60.0})
    assert math.isclose(info["obstacle_distance_m"], env.passes.passes[1].s - info["s_m"], abs_tol=1e-9)


def test_the_obstacle_figure_shows_one_image_labelled_both_ways(tmp_path):
    from benchmark.reporting.obstacle_figure import ObstacleFigureConfig, run

    out = run(ObstacleFigureConfig(out=tmp_path / "obstacles.png", steps=80))
    assert out.stat().st_size > 50_000  # it raises unless both passes start from the same image and get round


def test_obstacles_on_another_lane_are_drawn_but_not_passed():
    env, plain = _env(obstacles={"lane": 0}), _env()
    _, info = env.reset(seed=1, options={"lane": 2, "start_s": 100.0})
    _, ref = plain.reset(seed=1, options={"lane": 2, "start_s": 100.0})
    assert env.obstacles and all(ob.lane == 0 for ob in env.obstacles)
    assert set(env.passes.sides) == {None} and info["obstacle_side"] is None
    for _ in range(400):  # past the stopped car of lane 0 at ~356 m: the lane-centre teacher, exactly
        assert info["teacher_action"] == ref["teacher_action"]
        _, _, terminated, _, info = _step(env, info)
        _, _, _, _, ref = _step(plain, ref)
        assert not terminated


def test_recording_with_obstacles_records_the_teachers_passes(tmp_path):
    """`record --obstacles`: the teacher's passes are in the labels (its centre labels leave the plain
    recording's at the obstacles), the manifest names the obstacle settings, and a seed reproduces it."""
    import json

    from benchmark.data.dataset import Dataset
    from benchmark.data.record import RecordConfig, run

    common = dict(tracks=(), procedural_seeds="3", steps=250, progress=False)
    run(RecordConfig(out=tmp_path / "plain", **common))
    run(RecordConfig(out=tmp_path / "obstacles", obstacles=True, **common))
    run(RecordConfig(out=tmp_path / "again", obstacles=True, **common))
    plain, obstacles, again = (Dataset.open(tmp_path / n) for n in ("plain", "obstacles", "again"))
    manifest = json.loads((tmp_path / "obstacles" / "manifest.json").read_text())
    assert manifest["obstacles"]["per_km"] == 3.0 and json.loads((tmp_path / "plain" / "manifest.json").read_text())[
        "obstacles"] is None
    a, b = (d.index["label_center"].to_numpy() for d in (plain, obstacles))
    assert len(a) == len(b) and np.abs(a - b).max() > 0.005  # the passes move the labels
    assert (obstacles.index["label_center"].to_numpy() == again.index["label_center"].to_numpy()).all()
    assert (obstacles.frames(np.arange(0, 250, 25), 1) == again.frames(np.arange(0, 250, 25), 1)).all()


def test_obstacle_approaches_start_on_the_centre_before_an_obstacle_and_are_labelled_both_ways(tmp_path):
    """`record --obstacle-approaches`: short episodes from the lane centre on the approach to each obstacle
    in the way; their first labels (the same kind of image: centre, obstacle ahead) go left in some
    episodes and right in others, and a seed reproduces them."""
    import json

    from benchmark.data.dataset import Dataset
    from benchmark.data.record import RecordConfig, run
    from benchmark.data.tracksets import obstacle_approach_episodes

    episodes = obstacle_approach_episodes((), "3", 6, 4, seed=1)
    assert episodes and episodes == obstacle_approach_episodes((), "3", 6, 4, seed=1)
    env = DrivingEnv("procedural", track_seed=3, obstacles=ObstacleConfig())
    for e in episodes:
        options = dict(e.options)
        _, info = env.reset(seed=e.seed, options=options)
        assert abs(info["lateral_offset"]) < 1e-9
        p, ds = env.passes.current(options["start_s"])
        assert 0 < ds - p.half_length <= ObstacleConfig().ramp_m + env.teacher.lookahead(env.speed) + 1e-6
    with pytest.raises(ValueError, match="needs obstacles"):
        run(RecordConfig(out=tmp_path / "x", tracks=(), procedural_seeds="3", obstacle_approaches=2, progress=False))
    common = dict(tracks=(), procedural_seeds="3", steps=30, obstacles=True, obstacle_approaches=6, approach_steps=4,
                  seed=1, progress=False)
    run(RecordConfig(out=tmp_path / "a", **common))
    run(RecordConfig(out=tmp_path / "b", **common))
    a, b = Dataset.open(tmp_path / "a"), Dataset.open(tmp_path / "b")
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["obstacle_approaches"] == 6
    assert len(a.index) == 30 + 4 * len(episodes)
    assert (a.index["label_center"].to_numpy() == b.index["label_center"].to_numpy()).all()
    first = a.index[(a.index["step"] == 0) & (a.index["episode"] > 0)]["label_center"].to_numpy()  # approaches
    assert (first < -0.02).sum() >= 2 and (first > 0.02).sum() >= 2
