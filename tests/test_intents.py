"""The intents task (envs.intents): the teacher's hidden intents in lane-changing traffic."""

import numpy as np
import pytest

from benchmark.common.config import ConfigError
from envs import INTENTS, DrivingEnv, IntentConfig, Intents
from envs.intents import KEEP, LEFT, OVERTAKE, RIGHT, Nearby, intent_rng
from envs.procedural import procedural_track

TRAFFIC = {"vehicles": 4, "lane_changes": True, "other_lane_speed": [0.55, 0.8]}


def test_config_is_checked():
    with pytest.raises(ConfigError, match="keep_s"):
        IntentConfig(keep_s=(3.0, 1.0))
    with pytest.raises(ConfigError, match="p_change"):
        IntentConfig(p_change=1.5)
    with pytest.raises(ConfigError, match="urgent_s"):
        IntentConfig(urgent_s=9.0)
    one = next(s for s in range(1000100, 1000300) if procedural_track(s).lanes == 1)
    with pytest.raises(ConfigError, match="two or more"):
        DrivingEnv("procedural", track_seed=one, intents={})
    seed = next(s for s in range(1000200, 1000300) if procedural_track(s).lanes >= 2)
    with pytest.raises(ConfigError, match="lane goals"):
        DrivingEnv("procedural", track_seed=seed, intents={}, lane_goals={})


def test_overtake_goes_out_passes_and_comes_back():
    """Hand-built traffic on two lanes, the car at 10 m/s: a slower car 20 m ahead in lane 1."""
    it = Intents(IntentConfig(keep_s=(60.0, 60.0)), lanes=2, lane_width=4.0, speed=10.0, policy_hz=10.0,
                 rng=intent_rng(0, "t"))
    slow = Nearby(vehicle=7, lane=1, ahead_m=20.0, speed=6.0)
    it.update(0, lane=1, offset_m=0.0, progress_m=0.0, nearby=[slow])
    assert it.intent == OVERTAKE and it.history == [(0, KEEP), (0, OVERTAKE)]
    # out to the left lane on the raised cosine: 0 at the start, half way at 25 m, across at 50 m
    assert it.offset_at(1, 0.0) == 0.0
    assert it.offset_at(1, 25.0) == pytest.approx(-2.0)
    assert it.offset_at(1, 50.0) == pytest.approx(-4.0)
    it.update(10, lane=0, offset_m=0.1, progress_m=50.0, nearby=[Nearby(7, 1, 5.0, 6.0)])
    assert it._phase == "pass"
    it.update(20, lane=0, offset_m=0.0, progress_m=90.0, nearby=[Nearby(7, 1, -10.0, 6.0)])  # not far enough
    assert it._phase == "pass"
    it.update(30, lane=0, offset_m=0.0, progress_m=130.0, nearby=[Nearby(7, 1, -16.0, 6.0)])
    assert it._phase == "back" and it.offset_at(0, 130.0) == 0.0 and it.offset_at(0, 180.0) == pytest.approx(4.0)
    it.update(40, lane=1, offset_m=-0.2, progress_m=180.0, nearby=[Nearby(7, 1, -30.0, 6.0)])
    assert it.intent == KEEP and [i for _, i in it.history] == [KEEP, OVERTAKE, KEEP]
    assert it.counts == {"keep": 2, "left": 0, "right": 0, "overtake": 1}


def test_blocked_side_waits_and_a_faster_car_is_no_reason_to_overtake():
    it = Intents(IntentConfig(keep_s=(60.0, 60.0)), lanes=2, lane_width=4.0, speed=10.0, policy_hz=10.0,
                 rng=intent_rng(0, "t"))
    it.update(0, 1, 0.0, 0.0, [Nearby(1, 1, 20.0, 12.0)])  # faster: pulls away
    assert it.intent == KEEP
    it.update(1, 1, 0.0, 1.0, [Nearby(1, 1, 20.0, 6.0), Nearby(2, 0, 10.0, 6.0)])  # the left lane is taken
    assert it.intent == KEEP
    # nothing free to the left: the right lane of a middle lane is taken instead
    it3 = Intents(IntentConfig(keep_s=(60.0, 60.0)), lanes=3, lane_width=4.0, speed=10.0, policy_hz=10.0,
                  rng=intent_rng(0, "t"))
    it3.update(0, 1, 0.0, 0.0, [Nearby(1, 1, 20.0, 6.0), Nearby(2, 0, 10.0, 6.0)])
    assert it3.intent == OVERTAKE and it3.offset_at(1, 50.0) == pytest.approx(4.0)


def test_voluntary_changes_after_a_stretch_of_keep():
    it = Intents(IntentConfig(keep_s=(1.0, 1.0), p_change=1.0), lanes=2, lane_width=4.0, speed=10.0,
                 policy_hz=10.0, rng=intent_rng(3, "t"))
    for step in range(10):
        it.update(step, 0, 0.0, float(step), [])
        assert it.intent == KEEP
    it.update(10, 0, 0.0, 10.0, [])  # the stretch is over: lane 0 has one side, the right
    assert it.intent == RIGHT
    it.update(11, 1, 0.3, 60.0, [])
    assert it.intent == KEEP
    it.update(21, 1, 0.0, 70.0, [])
    assert it.intent == LEFT
    assert INTENTS[LEFT] == "left"


def _run(seed: int, steps: int):
    env = DrivingEnv("procedural", track_seed=seed, intents={}, traffic=TRAFFIC,
                     config={"render_observation": False, "max_steps": steps})
    _, info = env.reset(seed=seed)
    lanes = [v.target_lane_index[2] for v in env.traffic]
    changes, trace = 0, []
    for _ in range(steps):
        _, _, term, trunc, info = env.step(np.array([info["teacher_action"]], np.float32))
        trace.append((info["intent"], info["lane"], info["x"], info["y"]))
        new = [v.target_lane_index[2] for v in env.traffic]
        changes += sum(a != b for a, b in zip(lanes, new))
        lanes = new
        if term or trunc:
            break
    return env, info, trace, changes


def test_intents_are_deterministic_per_seed_and_hidden_from_the_observation():
    seed = next(s for s in range(1000200, 1000300) if procedural_track(s).lanes >= 2)
    a, info, trace_a, _ = _run(seed, 300)
    b, _, trace_b, _ = _run(seed, 300)
    assert trace_a == trace_b and a.intents.history == b.intents.history
    assert info["intent"] in (KEEP, LEFT, RIGHT, OVERTAKE)
    assert a.observation_space.shape == (66, 200, 3)  # the frame alone: the intent is not observed


def test_the_teacher_drives_every_intent_in_lane_changing_traffic():
    """Four held-out multi-lane tracks, 1,000 steps each: no failure, every intent, traffic that
    changes lane (see docs: the car cannot brake, so a slow car beside and one ahead can trap it)."""
    seeds = [s for s in range(1000200, 1000212) if procedural_track(s).lanes >= 2][:4]
    counts, changes = dict.fromkeys(INTENTS, 0), 0
    for seed in seeds:
        env, info, _, c = _run(seed, 1000)
        assert info["failure"] is None, (seed, info["failure"], env.intents.history[-3:])
        changes += c
        for k, v in env.intents.counts.items():
            counts[k] += v
    assert all(counts[k] > 0 for k in INTENTS), counts
    assert changes > 0  # MOBIL moved some traffic


def test_record_stores_the_hidden_intent(tmp_path):
    from benchmark.data.dataset import Dataset
    from benchmark.data.record import RecordConfig, run

    seed = next(s for s in range(100) if procedural_track(s).lanes >= 2)  # a training track
    run(RecordConfig(out=tmp_path / "d", tracks=(), procedural_seeds=str(seed), steps=200, intents=True,
                     progress=False))
    ds = Dataset.open(tmp_path / "d")
    intents = ds.index["intent"].to_numpy()
    assert len(intents) > 0 and set(intents.tolist()) <= {KEEP, LEFT, RIGHT, OVERTAKE}
    assert ds.manifest.source["intents"]["change_m"] == IntentConfig().change_m
    with pytest.raises(ValueError, match="intents need tracks of two lanes"):
        one = next(s for s in range(100) if procedural_track(s).lanes == 1)
        run(RecordConfig(out=tmp_path / "e", tracks=(), procedural_seeds=str(one), steps=10, intents=True,
                         progress=False))
