"""Policies that never read the frames are evaluated without the camera, with the same records."""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.evaluation.protocol import load_protocol
from benchmark.evaluation.rollouts import Evaluation, run_episodes
from benchmark.rollout.policies import StraightPolicy, TeacherPolicy
from envs import DrivingEnv
from envs.camera import Camera

DATA = Path(__file__).resolve().parent / "data"


class Rendered(Evaluation):
    frames_wanted = True


def _episodes():
    """Every mode and condition the harness has: crash, intervention, offpolicy, replica; nominal,
    perturbed, photometric (rain, dark), traffic, disturbed."""
    tiny, v2 = load_protocol(str(DATA / "protocol-tiny.yaml")), load_protocol(str(DATA / "protocol-tiny-v2.yaml"))
    quick = tiny.episodes("quick")
    full = [e for e in tiny.episodes("full") if e.traffic]
    v2_quick = v2.episodes("quick", teacher=True)
    modes = {}
    for e in v2_quick:
        modes.setdefault(e.key.mode, e)
    return quick[::3] + [e for e in quick if e.effect][:2] + full[:1] + list(modes.values())


def _records(run_class, policy, episodes):
    run = run_class(policy, episodes, intervention_threshold_m=1.0, policy_hz=10.0, env_kwargs=None)
    run.run()
    return [json.dumps(r.to_json(), sort_keys=True) for r in run.records]


@pytest.mark.parametrize("policy", [TeacherPolicy, StraightPolicy])
def test_records_are_the_same_without_the_camera(policy, monkeypatch):
    episodes = _episodes()
    assert {e.key.mode for e in episodes} >= {"crash", "intervention", "offpolicy", "replica"}
    assert any(e.effect for e in episodes) and any(e.traffic for e in episodes)
    rendered = _records(Rendered, policy(), episodes)
    calls = []
    render = Camera.render
    monkeypatch.setattr(Camera, "render", lambda self, *a, **k: (calls.append(1), render(self, *a, **k))[1])
    skipped = _records(Evaluation, policy(), episodes)
    assert calls == []  # no frame was rendered
    assert skipped == rendered


def test_a_policy_that_reads_frames_gets_them():
    class Reads:
        name = "reads"

        def __init__(self):
            self.seen = []

        def reset(self, n):
            pass

        def act(self, frames, episodes):
            self.seen.append(int(frames.max()))
            return np.zeros(len(frames))

    policy = Reads()
    run_episodes(policy, _episodes()[:1])
    assert min(policy.seen) > 0


def test_env_without_render_observation_steps_the_same():
    def run(render):
        env = DrivingEnv("procedural", track_seed=7, traffic=3, config={"render_observation": render})
        obs, info = env.reset(seed=1)
        out = [(obs.shape, repr(info))]
        for _ in range(30):
            obs, r, term, trunc, info = env.step(np.array([info["teacher_action"]], np.float32))
            out.append((obs.shape, repr(info), r, term, trunc))
        obs, info = env.recover()
        out.append((obs.shape, repr(info)))
        return out, obs, env

    with_camera, _, _ = run(True)
    without, obs, env = run(False)
    assert without == with_camera
    assert not obs.any() and not obs.flags.writeable and obs.shape == env.observation_space.shape
    assert env._map is None  # the map texture is never drawn for an env that never renders
    assert env.render_view().any()  # on request, frames are still rendered
    assert env._map is env.map
