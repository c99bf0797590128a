"""The disturbed condition: a stochastic disturbance of the vehicle with common random numbers."""

import numpy as np
import pytest

from benchmark.evaluation.protocol import EvalEpisode
from benchmark.evaluation.records import EpisodeKey
from benchmark.evaluation.rollouts import Evaluation
from benchmark.rollout.policies import StraightPolicy, TeacherPolicy
from benchmark.rollout.wrappers import Disturbance
from envs import DrivingEnv

DISTURBANCE = (0.01, 0.5, 0.3, 1.0)


def _episodes(seed: int = 11, steps: int = 80, disturbance=DISTURBANCE) -> list[EvalEpisode]:
    return [EvalEpisode(key=EpisodeKey("oval", "disturbed", "crash", 0), track="oval", track_seed=None, seed=seed,
                        max_steps=steps, disturbance=disturbance)]


class Recording(Evaluation):
    """Keeps each episode's disturbance wrapper, to read the sequence it applied."""

    def start(self, number, ep):
        env, obs, info = super().start(number, ep)
        self.wrapper = env
        return env, obs, info


def _run(policy, episodes):
    run = Recording(policy, episodes, intervention_threshold_m=1.0, policy_hz=10.0, env_kwargs=None)
    run.run()
    return run.records[0], np.array(getattr(run.wrapper, "history", []))


def test_the_teacher_and_a_learner_meet_the_same_disturbances():
    teacher_record, teacher_seq = _run(TeacherPolicy(), _episodes())
    straight_record, straight_seq = _run(StraightPolicy(), _episodes())
    n = min(len(teacher_seq), len(straight_seq))
    assert n >= 20 and np.array_equal(teacher_seq[:n], straight_seq[:n])  # common random numbers
    assert teacher_record.d != straight_record.d  # the policies still drive differently
    _, other_seq = _run(TeacherPolicy(), _episodes(seed=12))
    assert not np.array_equal(other_seq[:n], teacher_seq[:n])  # another episode, another sequence


def test_the_disturbance_is_an_ou_process_of_the_given_size():
    env = Disturbance(DrivingEnv("oval"), 5, 0.02, 0.5, 0.4, 1.0)
    env.reset(seed=0)
    for _ in range(3000):
        env.env.recover() if abs(env.env._d) > 1.0 else None
        env.step(np.array([0.0], np.float32))
    steer, gust = np.array(env.history).T
    assert steer.std() == pytest.approx(0.02, rel=0.15) and gust.std() == pytest.approx(0.4, rel=0.25)
    a = np.exp(-0.1 / 0.5)  # lag-1 autocorrelation of the OU steering noise at 10 Hz
    assert np.corrcoef(steer[:-1], steer[1:])[0, 1] == pytest.approx(a, abs=0.05)


def test_the_disturbance_moves_the_car_off_the_teachers_nominal_path():
    nominal, _ = _run(TeacherPolicy(), _episodes(disturbance=None))
    disturbed, _ = _run(TeacherPolicy(), _episodes())
    assert disturbed.status == "finished"  # the teacher recovers
    assert np.mean(np.abs(disturbed.d)) > 2 * np.mean(np.abs(nominal.d))


def test_the_calibration_command_tabulates_each_level(tmp_path):
    from benchmark.evaluation.calibration import CalibrateConfig, run

    config = CalibrateConfig(tracks=2, steps=40, steering_std=(0.0, 0.02), gust_std_mps=(0.0, 0.5), workers=1,
                             out=tmp_path / "calibration.md")
    text = run(config)
    assert (tmp_path / "calibration.md").read_text() == text
    rows = [line for line in text.splitlines() if line.startswith("| 0")]
    assert len(rows) == 2 and all("| 2/2 |" in line for line in rows)  # the teacher survives 40 steps
    nominal, disturbed = (float(line.split("|")[5].split()[0]) for line in rows)
    assert disturbed > nominal
