"""Road networks with forks: specs, routes and commands, the teacher at every fork, hindsight relabelling."""

import json
import math

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401  (registers the gymnasium ids)
from benchmark.data.hindsight import branch_runs, branches_driven, hindsight_commands, horizon_steps
from envs import TEST_SEEDS, DrivingEnv
from envs.forks import FOLLOW, LEFT, RIGHT, ForkNetwork, fork_network, fork_network_from_spec, fork_spec
from envs.procedural import procedural_spec
from envs.tracks import TrackSpecError, fork_chord, load_track_file, track_from_spec

FORK_FILE = "envs/track_specs/forks.yaml"
TEST_NETWORKS = [s for s in TEST_SEEDS[100:106]]


def _straight_with_fork(**fork):
    fork = {"radius": 40, "angle_deg": 25, "length": 30, **fork}
    return {"lanes": 1, "closed": False, "segments": [
        {"type": "straight", "length": 50}, {"type": "fork", **fork}, {"type": "straight", "length": 50}]}


def test_fork_spec_file_is_a_network_and_plain_specs_refuse_forks(example_track):
    from tests.conftest import ROOT

    net = load_track_file(ROOT / FORK_FILE)
    assert isinstance(net, ForkNetwork) and net.forks == [1, 7] and net.closed
    assert not isinstance(load_track_file(example_track), ForkNetwork)
    with pytest.raises(TrackSpecError, match="has forks"):
        track_from_spec(net.spec)
    # both branches end where the fork's chord does
    for i in net.forks:
        ends = [net.network.get_lane((*net.branches[i][side][-1], 0)) for side in (-1, 1)]
        a, b = (ln.position(ln.length, 0.0) for ln in ends)
        assert np.hypot(*(a - b)) < 1e-6


@pytest.mark.parametrize("fork, message", [
    ({"angle_deg": 60}, "'angle_deg' must be 5..45"),
    ({"radius": 8}, "radius 8"),
    ({"length": 1}, "at least 5 m"),
    ({"radius": 20, "angle_deg": 10}, "branches run 1.2 m apart"),
])
def test_bad_forks_are_named(fork, message):
    fork_network_from_spec(_straight_with_fork())  # the unmodified road is valid
    with pytest.raises(TrackSpecError, match=message):
        fork_network_from_spec(_straight_with_fork(**fork))


def test_a_fork_whose_branch_meets_the_road_elsewhere_is_rejected():
    spec = {"lanes": 1, "closed": False, "segments": [
        {"type": "straight", "length": 200}, {"type": "arc", "radius": 12, "angle_deg": 90},
        {"type": "arc", "radius": 12, "angle_deg": 90}, {"type": "straight", "length": 20},
        {"type": "fork", "radius": 60, "angle_deg": 40, "length": 20}, {"type": "straight", "length": 40}]}
    with pytest.raises(TrackSpecError, match="intersect itself"):
        fork_network_from_spec(spec)


def test_procedural_fork_networks_are_deterministic_and_keep_the_plain_tracks():
    assert fork_spec(1000100) == json.loads(json.dumps(fork_spec(1000100)))
    fork_spec.cache_clear()
    a = fork_spec(1000100)
    fork_spec.cache_clear()
    assert fork_spec(1000100) == a and fork_spec(1000101) != a
    # the generator's new shape arguments leave the procedural tracks as they were
    assert procedural_spec(7) == procedural_spec(7, corners=(5, 11), length_m=(300.0, 1500.0))
    net = fork_network(1000100)
    assert net.lanes == 1 and len(net.forks) >= 1 and net.name == "fork-1000100"


def test_routes_share_the_road_outside_forks_and_commands_follow_the_route():
    net = fork_network(1000100)
    n = len(net.forks)
    left, right = net.route((-1,) * n), net.route((1,) * n)
    for a, b in zip(left.passages, right.passages):
        assert a.split_s == pytest.approx(b.split_s) and a.side == -1 and b.side == 1
        s0 = a.split_s[0]
        assert left.track.paths[0].pose_at(s0 - 5.0) == pytest.approx(right.track.paths[0].pose_at(s0 - 5.0))
        mid = 0.5 * (a.split_s[0] + a.merge_s[0])
        apart = np.hypot(*(np.array(left.track.paths[0].pose_at(mid)[:2]) - right.track.paths[0].pose_at(mid)[:2]))
        assert apart > net.lane_width + 4.0
        assert left.command_at(0, s0 - 50.0) == FOLLOW
        assert left.command_at(0, s0 - 30.0) == LEFT and right.command_at(0, s0 + 10.0) == RIGHT
        assert left.command_at(0, a.merge_s[0] + 1.0) == FOLLOW
    with pytest.raises(ValueError, match="multiple of"):
        net.route((-1,) * (n + 1))
    with pytest.raises(ValueError, match="-1 \\(left\\) or \\+1"):
        net.route((0,) * n)


def test_the_env_observes_frame_and_command_and_is_deterministic_per_seed():
    env = gym.make("SteerBench/Forks-v0", track_seed=1000101, config={"max_steps": 120}).unwrapped
    assert isinstance(env.observation_space, gym.spaces.Dict)
    obs, info = env.reset(seed=5)
    assert env.observation_space.contains(obs) and info["command"] in ("follow", "left", "right")
    sides = info["route_sides"]
    frames = [obs["frame"]]
    for _ in range(20):
        obs, *_, info = env.step([info["teacher_action"]])
        frames.append(obs["frame"])
    obs2, info2 = env.reset(seed=5)
    assert info2["route_sides"] == sides and np.array_equal(obs2["frame"], frames[0])
    for k in range(1, 21):
        obs2, *_, info2 = env.step([info2["teacher_action"]])
        assert np.array_equal(obs2["frame"], frames[k])
    other = [env.reset(seed=s)[1]["route_sides"] for s in range(6, 12)]
    assert any(o != sides for o in other)  # routes are drawn per episode


def test_plain_tracks_keep_their_frame_observation():
    env = DrivingEnv("oval")
    obs, _ = env.reset(seed=0)
    assert isinstance(obs, np.ndarray) and env.observation_space is env.frame_space


def test_traffic_and_obstacles_are_refused_on_networks_with_forks():
    from benchmark.common.config import ConfigError

    with pytest.raises(ConfigError, match="not supported on road networks with forks"):
        DrivingEnv("fork", track_seed=1000100, traffic=4)


def _drive(env, seed):
    obs, info = env.reset(seed=seed)
    infos, commands = [info], [obs["command"]]
    while True:
        obs, _, terminated, truncated, info = env.step([info["teacher_action"]])
        infos.append(info)
        commands.append(obs["command"])
        if terminated or truncated:
            return infos, np.array(commands)


@pytest.mark.parametrize("seed", TEST_NETWORKS)
def test_the_teacher_takes_its_routes_branch_at_every_fork(seed):
    net = fork_network(seed)
    env = DrivingEnv(net, config={"max_steps": 1200, "render_observation": False})
    infos, commands = _drive(env, seed)
    assert infos[-1]["failure"] is None and len(infos) == 1201
    driven = branches_driven(net, [i["x"] for i in infos], [i["y"] for i in infos], [i["heading"] for i in infos])
    runs = branch_runs(driven)
    passed = [p for p in env.route.passages if p.merge_s[0] < infos[-1]["s_m"]]
    assert len(passed) >= 2 and len(runs) >= len(passed)
    assert [side for *_, side in runs[: len(passed)]] == [p.side for p in passed]
    # hindsight relabelling from the positions alone gives back the route's commands
    h = horizon_steps(40.0, env.speed, 10.0)
    relabelled = hindsight_commands(driven, h)
    assert (relabelled == commands).mean() > 0.97
    for p in passed:
        on = [k for k, i in enumerate(infos) if p.split_s[0] + 5 < i["s_m"] < p.merge_s[0] - 5]
        assert set(relabelled[on]) == {p.command} == set(commands[on])


@pytest.mark.parametrize("on_branch, horizon, expected", [
    # F = follow, L = left, R = right
    ([0, 0, 0, 0, -1, -1, 0, 0], 2, "FFLLLLFF"),
    ([0, 0, 1, 1, 0, 0, -1, -1, 0], 1, "FRRRFLLLF"),
    ([0, 0, 1, 1, 0, 0, -1, -1, 0], 3, "RRRRLLLLF"),   # the nearest fork ahead wins; a run keeps its own
    ([0, -1, 1, 1, 1, 0], 0, "FRRRRF"),                  # a run takes its majority side
    ([0, 1, -1, 0], 0, "FRRF"),                          # a tie goes to the right
    ([0, 0, 0], 5, "FFF"),
    ([], 3, ""),
])
def test_hindsight_commands_on_hand_built_episodes(on_branch, horizon, expected):
    code = {"F": FOLLOW, "L": LEFT, "R": RIGHT}
    assert hindsight_commands(on_branch, horizon).tolist() == [code[c] for c in expected]


def test_hindsight_horizon_and_bad_input():
    assert horizon_steps(40.0, 10.0, 10.0) == 40
    with pytest.raises(ValueError):
        hindsight_commands([0, 1], -1)
    with pytest.raises(ValueError):
        horizon_steps(40.0, 0.0, 10.0)
    assert math.isclose(fork_chord({"radius": 40, "angle_deg": 25, "length": 30}), 97.619, abs_tol=1e-3)


# --- recording, hindsight commands and conditional training ------------------------------------


@pytest.fixture(scope="module")
def fork_recording(tmp_path_factory):
    """The teacher on fork networks 1 and 2 (2 episodes each, 300 steps) and the oval (1 episode)."""
    from benchmark.data.record import RecordConfig, run

    out = tmp_path_factory.mktemp("forks") / "teacher"
    run(RecordConfig(out=out, tracks=("oval",), procedural_seeds="", fork_seeds="1-2", episodes_per_track=2,
                     steps=300, seed=3, shard_size=400, progress=False))
    return out


def test_a_recording_on_forks_stores_the_route_and_hindsight_gives_it_back(fork_recording):
    from benchmark.data.dataset import Dataset
    from benchmark.data.hindsight import dataset_commands

    ds = Dataset.open(fork_recording)
    idx = ds.index
    assert ds.manifest["fork_seeds"] == [1, 2]
    forks = idx["track"].str.startswith("fork-").to_numpy()
    assert forks.sum() == 1200 and (idx.loc[~forks, "command"] == FOLLOW).all()  # the oval: follow
    route = dataset_commands(idx, "route")
    assert set(route[forks]) == {FOLLOW, LEFT, RIGHT}
    hindsight = dataset_commands(idx.drop(columns="command"), "hindsight")  # never reads the stored command
    assert (hindsight[~forks] == FOLLOW).all() and (hindsight[forks] == route[forks]).mean() > 0.97
    with pytest.raises(ValueError, match="'route' or 'hindsight'"):
        dataset_commands(idx, "oracle")


@pytest.mark.parametrize("arch, source", [("pilotnet-command", "hindsight"), ("pilotnet-branched", "route")])
def test_conditional_models_train_export_and_drive_with_commands(fork_recording, tmp_path, arch, source):
    from benchmark.rollout.policies import OnnxPolicy, act
    from benchmark.training.train import TrainConfig, fit
    from models import export_onnx

    result = fit(TrainConfig(data=fork_recording, out=tmp_path / "run", arch=arch, command_source=source, epochs=1,
                             max_updates=6, batch_size=16, progress=False, precision="float32", threads=1))
    assert result.model.conditional and math.isfinite(result.best_val_loss) and result.updates == 6
    policy = OnnxPolicy(export_onnx(result.model, tmp_path / "model.onnx"))
    assert policy.conditional
    env = DrivingEnv("fork", track_seed=1, config={"max_steps": 30})
    obs, info = env.reset(seed=0)
    policy.reset(1)
    for _ in range(30):
        frames = obs["frame"][None]
        kappa = act(policy, frames, np.array([0]), [info], np.array([obs["command"]]))
        answers = {c: float(policy.act(frames, np.array([0]), np.array([c]))[0]) for c in (FOLLOW, LEFT, RIGHT)}
        assert kappa[0] == answers[obs["command"]] and len(set(answers.values())) == 3
        obs, _, terminated, truncated, info = env.step(kappa)
        if terminated or truncated:
            break


# --- the forks protocol: command success at forks ---------------------------------------------


def test_command_success_counts_on_hand_built_passages():
    from benchmark.evaluation.metrics import command_success

    counts = command_success([[1, 2, 1], [], [2]], [["passed", "failed", "passed"], [], ["passed"]])
    assert counts == {"follow": (0, 0), "left": (2, 2), "right": (1, 2), "all": (3, 4)}
    with pytest.raises(ValueError, match="2 commands and 1 outcomes"):
        command_success([[1, 2]], [["passed"]])
    with pytest.raises(ValueError, match="not 'passed' or 'failed'"):
        command_success([[1]], [["censored"]])
    with pytest.raises(ValueError, match="not a code"):
        command_success([[3]], [["passed"]])


def test_route_outcomes_count_attempted_passages_only():
    route = fork_network(1000100).route((-1,) * len(fork_network(1000100).forks) * 3)
    p0, p1 = route.passages[:2]
    assert route.outcomes(0, p0.split_s[0] - 1.0, failed=True) == ([], [])
    assert route.outcomes(0, 0.5 * (p0.split_s[0] + p0.merge_s[0]), failed=True) == ([LEFT], ["failed"])
    assert route.outcomes(0, 0.5 * (p0.split_s[0] + p0.merge_s[0]), failed=False) == ([], [])  # cut off
    assert route.outcomes(0, p1.merge_s[0] + 1.0, failed=False) == ([LEFT, LEFT], ["passed", "passed"])


FORKS_TINY = """
name: steerbench-forks-tiny
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
  nominal: {}
profiles:
  quick:
    tracks: ["fork:1000100-1000102"]
    conditions: [nominal]
    episodes: 1
    max_steps: 400
    horizons: [10, 100, 400]
"""


def test_the_harness_measures_command_success_on_forks(tmp_path, monkeypatch):
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.records import read_records
    from models import ModelConfig, build_model, export_onnx

    protocol = tmp_path / "forks-tiny.yaml"
    protocol.write_text(FORKS_TINY)
    assert [t for t, _ in load_protocol(str(protocol)).tracks("quick")] == ["fork"] * 3
    monkeypatch.chdir(tmp_path)
    teacher = evaluate(EvaluateConfig(policy="teacher", protocol=str(protocol), profile="quick", progress=False))
    commands = teacher.metrics.conditions["nominal"].commands
    assert commands.all.n >= 3 and commands.all.k == commands.all.n and commands.all.low < 1.0  # Wilson, not [1, 1]
    straight = evaluate(EvaluateConfig(policy="straight", protocol=str(protocol), profile="quick", progress=False,
                                       drift_reference=False))
    assert straight.metrics.conditions["nominal"].commands.all.k < straight.metrics.conditions["nominal"].commands.all.n
    records = read_records(tmp_path / "results" / "steerbench-forks-tiny" / "quick" / "teacher" / "records.jsonl")
    assert all(r.track.startswith("fork-") and r.forks is not None for r in records.records)
    # a conditional ONNX model runs through the harness, and its records round-trip
    onnx = export_onnx(build_model(ModelConfig(arch="pilotnet-command")), tmp_path / "command.onnx")
    learner = evaluate(EvaluateConfig(policy=str(onnx), protocol=str(protocol), profile="quick", progress=False,
                                      drift_reference=False))
    assert learner.metrics.conditions["nominal"].commands is not None


def test_the_forks_study_runs_end_to_end_and_resumes(tmp_path, monkeypatch):
    from benchmark.reporting.forks import ForksConfig, paired_passages, run

    assert paired_passages({"a": ["passed", "failed"], "b": ["passed"]}, {"a": ["failed"], "b": ["passed", "x"]}) \
        == (2, 1, 0)
    protocol = tmp_path / "forks-tiny.yaml"
    protocol.write_text(FORKS_TINY.replace("conditions: [nominal]", "conditions: [nominal, disturbed]").replace(
        "  nominal: {}", "  nominal: {}\n  disturbed: {steering_noise_std: 0.02, steering_noise_tau_s: 0.5, "
        "gust_std_mps: 0.5, gust_tau_s: 2.0}"))
    monkeypatch.chdir(tmp_path)
    config = ForksConfig(out=tmp_path / "study", report=tmp_path / "docs" / "forks", fork_seeds="1-2",
                         episodes_per_track=1, steps=200, epochs=1, variants=("bc", "command-hindsight"),
                         protocol=str(protocol), precision="float32", threads=1, progress=False)
    assert run(config)["variants"] == ["bc", "command-hindsight"]
    text = (tmp_path / "docs" / "forks.md").read_text()
    assert "| command-hindsight | nominal |" in text and "McNemar" in text and (tmp_path / "docs" / "forks.png").is_file()
    from leaderboard.card import load_card

    card = load_card(tmp_path / "study" / "command-hindsight" / "card.json")  # the leaderboard's schema
    assert card["name"] == "forks-command-hindsight" and card["extra"]["command_source"] == "hindsight"
    before = (tmp_path / "study" / "bc" / "model.onnx").read_bytes()
    run(config)  # resumes: nothing is trained or recorded again
    assert (tmp_path / "study" / "bc" / "model.onnx").read_bytes() == before
    with pytest.raises(ValueError, match="other settings"):
        run(ForksConfig(**{**config.__dict__, "fork_seeds": "1-3"}))
