"""Lane goals (issue 15): commands to change lane on multi-lane roads, the teacher that follows them,
their outcomes, and the protocol steerbench-lanes-v1."""

from __future__ import annotations

import numpy as np
import pytest

from envs import ConfigError, procedural_track
from envs.driving_env import DrivingEnv
from envs.forks import FOLLOW, LEFT, RIGHT
from envs.lane_goals import LaneGoalConfig, LaneGoals, lane_goal_rng


class FixedRng:
    """Gaps and coins given in order: uniform() returns the next gap [s], random() the next coin."""

    def __init__(self, gaps, coins):
        self.gaps, self.coins = list(gaps), list(coins)

    def uniform(self, lo, hi):
        return self.gaps.pop(0)

    def random(self):
        return self.coins.pop(0)


def test_goals_by_hand_commands_deadlines_and_outcomes():
    cfg = LaneGoalConfig(gap_s=(1.0, 5.0), lead_s=0.5, change_m=20.0, deadline_s=2.0, settle_m=0.5)
    goals = LaneGoals(cfg, lanes=3, lane_width=4.0, speed=10.0, policy_hz=10.0,
                      rng=FixedRng(gaps=[1.0, 3.0, 1.0], coins=[0.7, 0.2, 0.9]))
    assert goals.lead_m == 5.0 and goals.deadline_steps == 20
    goals.update(0, lane=1, offset_m=0.0, progress_m=0.0)
    assert goals.command == FOLLOW and goals.offset_at(1, 0.0) == 0.0
    for t in range(1, 10):
        goals.update(t, 1, 0.0, t * 1.0)
        assert goals.command == FOLLOW  # the first gap: 1 s = 10 steps
    goals.update(10, 1, 0.0, 10.0)  # coin 0.7 on the middle lane: right
    assert goals.command == RIGHT and goals.current.target == 2
    # the teacher's target: the lane centre until the lead (5 m), half way at 15 m, the next lane at 25 m
    assert goals.offset_at(1, 15.0) == 0.0
    assert goals.offset_at(1, 25.0) == pytest.approx(2.0)
    assert goals.offset_at(1, 40.0) == pytest.approx(4.0)
    assert goals.offset_at(2, 40.0) == pytest.approx(0.0)  # measured from the lane the car is in
    goals.update(15, 2, 0.8, 25.0)  # in the target lane, not yet settled
    assert goals.command == RIGHT
    goals.update(16, 2, -0.4, 26.0)  # settled: reached
    assert goals.command == FOLLOW and goals.goals[0].outcome == "passed"
    for t in range(17, 46):  # the next gap: 3 s = 30 steps
        goals.update(t, 2, 0.0, float(t))
        assert goals.command == FOLLOW
    goals.update(46, 2, 0.0, 46.0)  # on the rightmost lane the only side is left (the coin 0.2 is spent)
    assert goals.command == LEFT and goals.current.target == 1
    for t in range(47, 66):
        goals.update(t, 2, 0.0, float(t))
    assert goals.command == LEFT
    goals.update(66, 2, 0.0, 66.0)  # 20 steps after the command, never reached: failed
    assert goals.command == FOLLOW and goals.goals[1].outcome == "failed"
    assert goals.outcomes(failed=False) == ([RIGHT, LEFT], ["passed", "failed"])
    assert goals.sides == (1, -1)
    goals.update(76, 2, 0.0, 76.0)  # a third goal in force when the episode ends
    assert goals.outcomes(failed=False) == ([RIGHT, LEFT], ["passed", "failed"])  # cut off: left out
    assert goals.outcomes(failed=True) == ([RIGHT, LEFT, LEFT], ["passed", "failed", "failed"])


def test_config_is_validated_and_roads_need_two_lanes():
    with pytest.raises(ValueError, match="gap_s"):
        LaneGoalConfig(gap_s=(5.0, 1.0))
    with pytest.raises(ValueError, match="settle_m"):
        LaneGoalConfig(settle_m=0.0)
    one_lane = next(s for s in range(40) if procedural_track(s).lanes == 1)
    with pytest.raises(ConfigError, match="two or more"):
        DrivingEnv("procedural", track_seed=one_lane, lane_goals={})
    with pytest.raises(ConfigError, match="lane_goals"):
        DrivingEnv("procedural", track_seed=1, lane_goals={}, traffic=2)
    with pytest.raises(ConfigError, match="gap_ss"):
        DrivingEnv("procedural", track_seed=1, lane_goals={"gap_ss": 1})


def _drive(env, seed, policy, steps):
    obs, info = env.reset(seed=seed)
    lanes, commands = [info["lane"]], [obs["command"]]
    for _ in range(steps):
        obs, _, term, trunc, info = env.step([policy(env, info)])
        lanes.append(info["lane"])
        commands.append(obs["command"])
        if term or trunc:
            break
    return info, lanes, commands


def _teacher(env, info):
    return info["teacher_action"]


def _lane_keeper(env, info):  # the teacher without its goals: keeps whatever lane it is in
    v = env.vehicle
    return env.teacher.action_from(env.path, env._s, v.position[0], v.position[1], v.heading, v.speed)


HELD_OUT = (1000200, 1000201, 1000202, 1000203)  # the first tracks of steerbench-lanes-v1 (2 and 3 lanes)


@pytest.mark.parametrize("track_seed", HELD_OUT)
def test_the_teacher_reaches_every_goal_and_a_lane_keeper_none(track_seed):
    env = DrivingEnv("procedural", track_seed=track_seed, lane_goals={},
                     config={"max_steps": 800, "render_observation": False})
    assert env.observation_space["command"].n == 3
    info, lanes, commands = _drive(env, 5, _teacher, 800)
    assert info["failure"] is None
    _, o = env.goals.outcomes(False)
    assert len(o) >= 4 and set(o) == {"passed"}
    # one lane change per goal reached, and at most one more for the goal cut off at the step limit
    assert len(o) <= int(np.sum(np.diff(lanes) != 0)) <= len(env.goals.goals)
    assert set(commands) >= {FOLLOW} and len(set(commands)) >= 2
    info, lanes, _ = _drive(env, 5, _lane_keeper, 800)
    assert info["failure"] is None and set(env.goals.outcomes(False)[1]) == {"failed"}
    assert len(set(lanes)) == 1


def test_goals_are_deterministic_per_seed_and_leave_the_other_draws_alone():
    def run(lane_goals):
        env = DrivingEnv("procedural", track_seed=1000202, lane_goals=lane_goals,
                         config={"max_steps": 400, "render_observation": False})
        _, info = env.reset(seed=9)
        start = (info["x"], info["y"], info["lane"])
        if lane_goals is None:
            return start, None
        _drive(env, 9, _teacher, 400)
        return start, [(g.step, g.lane, g.target, g.outcome) for g in env.goals.goals]

    a, b, plain = run({}), run({}), run(None)
    assert a == b and a[0] == plain[0]  # the same goals; the start pose as without goals
    assert run({"gap_s": [6.0, 12.0]}) == a  # the defaults, spelled out
    other = DrivingEnv("procedural", track_seed=1000202, lane_goals={}, config={"render_observation": False})
    other.reset(seed=10)
    rng_a, rng_b = lane_goal_rng(9, "procedural-1000202"), lane_goal_rng(10, "procedural-1000202")
    assert rng_a.random() != rng_b.random()


def test_the_lanes_protocol_is_commanded_on_multi_lane_held_out_tracks():
    from benchmark.evaluation.protocol import load_protocol

    protocol = load_protocol("steerbench-lanes-v1")
    for profile, n in (("quick", 24), ("full", 80)):
        tracks = protocol.tracks(profile)
        assert len(tracks) == n and protocol.commanded(profile)
        assert all(procedural_track(s).lanes >= 2 for _, s in tracks)
    episodes = protocol.episodes("quick", ["lane_goals", "lane_goals_disturbed"])
    assert all(e.lane_goals == LaneGoalConfig() for e in episodes)
    seeds = {c: [e.seed for e in episodes if e.key.condition == c and e.key.mode == "crash"]
             for c in ("lane_goals", "lane_goals_disturbed")}
    assert seeds["lane_goals"] == seeds["lane_goals_disturbed"]  # paired: the same goals


LANES_TINY = """
name: steerbench-lanes-tiny
version: 2
seed: 7
policy_hz: 10
cost_d_max_m: 1.0
intervention_threshold_m: 1.0
intervention_penalty_s: 6.0
drift_bins: {d_m: [-3.25, 3.25, 13], psi_rad: [-0.55, 0.55, 11]}
metrics: {mistake_tau_per_m: 0.02, excursion_onset_m: 0.5, excursion_recover_m: 0.25, regret_t_min: 30,
          regret_min_survival: 0.5, curvature_bins_per_m: [0.043, 0.05]}
conditions:
  lane_goals: {lane_goals: {}}
profiles:
  quick:
    tracks: ["procedural:1000200-1000201"]
    conditions: [lane_goals]
    intervention_conditions: INTERVENTION
    episodes: 1
    max_steps: 300
    horizons: [10, 100, 300]
"""


def test_the_harness_measures_command_success_on_lane_goals(tmp_path, monkeypatch):
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.protocol import ProtocolError, load_protocol
    from models import ModelConfig, build_model, export_onnx

    protocol = tmp_path / "lanes-tiny.yaml"
    protocol.write_text(LANES_TINY.replace("INTERVENTION", "[]"))
    monkeypatch.chdir(tmp_path)
    teacher = evaluate(EvaluateConfig(policy="teacher", protocol=str(protocol), profile="quick", progress=False))
    commands = teacher.metrics.conditions["lane_goals"].commands
    assert commands.all.n >= 2 and commands.all.k == commands.all.n
    straight = evaluate(EvaluateConfig(policy="straight", protocol=str(protocol), profile="quick", progress=False,
                                       drift_reference=False))
    s = straight.metrics.conditions["lane_goals"].commands
    assert straight.metrics.conditions["lane_goals"].paired.crashes.k == 2  # it leaves the road on both tracks
    assert s.all.k < s.all.n or s.all.n == 0  # no goal reached (none given before it left the road: n = 0)
    onnx = export_onnx(build_model(ModelConfig(arch="pilotnet-command")), tmp_path / "command.onnx")
    learner = evaluate(EvaluateConfig(policy=str(onnx), protocol=str(protocol), profile="quick", progress=False,
                                      drift_reference=False))
    assert learner.metrics.conditions["lane_goals"].commands is not None
    bad = tmp_path / "lanes-intervention.yaml"
    bad.write_text(LANES_TINY.replace("INTERVENTION", "[lane_goals]").replace("lanes-tiny", "lanes-bad"))
    with pytest.raises(ProtocolError, match="lane goals"):
        load_protocol(str(bad))


def test_lane_hindsight_by_hand():
    from benchmark.data.hindsight import lane_changes, lane_hindsight_commands

    lanes = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1]
    offsets = [0, 0, 0.5, 1.2, 1.9, -1.9, -1.2, -0.6, -0.3, 0, 0.5, -1.9, -0.4, 0]
    assert lane_changes(lanes) == [(5, 1), (11, -1)]
    got = lane_hindsight_commands(lanes, offsets, horizon=2)
    # right from 2 steps before the crossing until settled (step 8: |d| <= 0.5), then follow, then left
    assert got.tolist() == [FOLLOW, FOLLOW, FOLLOW, RIGHT, RIGHT, RIGHT, RIGHT, RIGHT, FOLLOW, LEFT, LEFT, LEFT,
                            FOLLOW, FOLLOW]
    assert lane_hindsight_commands([0, 0, 0], [0, 0, 0], horizon=5).tolist() == [FOLLOW] * 3
    with pytest.raises(ValueError, match="one value per step"):
        lane_hindsight_commands([0, 1], [0.0], horizon=1)


def test_recorded_lane_goals_relabel_in_hindsight_and_one_lane_tracks_are_refused(tmp_path):
    from benchmark.data.dataset import Dataset
    from benchmark.data.hindsight import dataset_commands
    from benchmark.data.record import RecordConfig
    from benchmark.data.record import run as record

    record(RecordConfig(out=tmp_path / "data", tracks=(), procedural_seeds="1-2", lane_goals=True,
                        episodes_per_track=1, steps=400, progress=False))
    index = Dataset.open(tmp_path / "data").index
    route, hindsight = dataset_commands(index, "route"), dataset_commands(index, "hindsight")
    assert set(route) == {FOLLOW, LEFT, RIGHT} and len(np.unique(index["lane"])) >= 2
    assert np.mean(route == hindsight) > 0.9  # the hindsight commands are read from the lanes alone
    given = route != FOLLOW
    assert np.mean(route[given] == hindsight[given]) > 0.8
    one_lane = next(s for s in range(40) if procedural_track(s).lanes == 1)
    with pytest.raises(ValueError, match=f"procedural-{one_lane}"):
        record(RecordConfig(out=tmp_path / "bad", tracks=(), procedural_seeds=str(one_lane), lane_goals=True,
                            steps=10, progress=False))


def test_the_lanes_study_runs_end_to_end(tmp_path, monkeypatch):
    from benchmark.reporting.forks import LanesConfig, run

    protocol = tmp_path / "lanes-tiny.yaml"
    protocol.write_text(LANES_TINY.replace("INTERVENTION", "[]").replace(
        "conditions: [lane_goals]", "conditions: [lane_goals, lane_goals_disturbed]").replace(
        "  lane_goals: {lane_goals: {}}", "  lane_goals: {lane_goals: {}}\n  lane_goals_disturbed: {lane_goals: {}, "
        "steering_noise_std: 0.02, steering_noise_tau_s: 0.5, gust_std_mps: 0.5, gust_tau_s: 2.0, seeds_of: lane_goals}"))
    monkeypatch.chdir(tmp_path)
    config = LanesConfig(out=tmp_path / "study", report=tmp_path / "docs" / "lanes", lane_seeds="1-2",
                         episodes_per_track=1, steps=200, epochs=1, variants=("bc", "command-hindsight"),
                         protocol=str(protocol), precision="float32", threads=1, progress=False)
    assert run(config)["variants"] == ["bc", "command-hindsight"]
    text = (tmp_path / "docs" / "lanes.md").read_text()
    assert text.startswith("# Lane goals") and "| command-hindsight | lane_goals_disturbed |" in text
    assert (tmp_path / "docs" / "lanes.png").is_file()
    with pytest.raises(ValueError, match="other settings"):
        run(LanesConfig(**{**config.__dict__, "lane_seeds": "1-3"}))
