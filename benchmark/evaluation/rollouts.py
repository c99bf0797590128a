"""Closed-loop rollouts of a policy on protocol episodes, on the lockstep runner -> EpisodeRecords.

All episodes of a group run together: at each step the centre frames of the active episodes (after
the episode's photometric shift, if any) go through one batched decision. Crash mode ends an
episode at its first off-road or collision; intervention mode wraps the environment in NVIDIA's
safety driver (benchmark/rollout/wrappers.py); offpolicy mode lets the teacher drive and records
the policy's answers (`action`) beside the teacher's labels; replica mode is the teacher under the
episode's second disturbance stream. A policy that raises, returns the wrong shape or a
non-finite curvature makes the group's running episodes `invalid`, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmark.rollout.policies import Policy, PrivilegedPolicy
from benchmark.rollout.runner import Lockstep
from benchmark.rollout.wrappers import Disturbance, Intervention, ObservationShift, TeacherDriven
from envs import DrivingEnv
from envs.intents import INTENT_TRAFFIC

from .conditions import photometric_effect
from .protocol import EvalEpisode
from .records import EpisodeRecord

TRACED = ("d", "psi", "action", "teacher", "x", "y")


class Evaluation(Lockstep[EvalEpisode]):
    """The harness's hooks: run the policy, trace every step, make one record per episode.

    A policy that never reads the frames (a privileged one, or one whose `reads_frames` is False)
    runs without the camera: its environments skip rendering (EnvConfig.render_observation) and the
    photometric shift, neither of which reaches the records."""

    frames_wanted = False
    """Render the frames even for a policy that does not read them (a subclass that keeps them)."""

    def __init__(self, policy: Policy | PrivilegedPolicy, episodes: Sequence[EvalEpisode], *,
                 intervention_threshold_m: float, policy_hz: float, env_kwargs: dict | None):
        super().__init__(episodes, slots=len(episodes))
        self.policy, self.threshold, self.hz = policy, intervention_threshold_m, policy_hz
        # checked once: isinstance on a runtime-checkable Protocol costs ~45 us, ~5% of a teacher step
        self.privileged = isinstance(policy, PrivilegedPolicy)
        reads_frames = not self.privileged and getattr(policy, "reads_frames", True)
        self.render = reads_frames or self.frames_wanted
        self.env_kwargs = env_kwargs or {}
        self.traces: list[dict[str, list[float]]] = [{k: [] for k in TRACED} for _ in episodes]
        self.failure: list[tuple[int, str | None]] = [(-1, None)] * len(episodes)
        self.steps = [0] * len(episodes)
        self.records: list[EpisodeRecord | None] = [None] * len(episodes)
        policy.reset(len(episodes))

    def start(self, number, ep):
        config = {"max_steps": ep.max_steps, "terminate_on_failure": ep.mode != "intervention", "policy_hz": self.hz}
        if not self.render:
            config["render_observation"] = False
        traffic = ep.traffic if ep.intents is None else dict(INTENT_TRAFFIC)  # intents bring their own traffic
        env = DrivingEnv(ep.track, track_seed=ep.track_seed, traffic=traffic, obstacles=ep.obstacles,
                         indicator=ep.indicator, dropout=ep.dropout, lane_goals=ep.lane_goals, intents=ep.intents,
                         config=config, **self.env_kwargs)
        if ep.disturbance is not None:  # innermost: the safety driver and the policy see its effect
            env = Disturbance(env, ep.seed, *ep.disturbance, stream=ep.disturbance_stream)
        if ep.mode == "offpolicy":
            env = TeacherDriven(env)
        if ep.mode == "intervention":
            env = Intervention(env, self.threshold)
        if ep.effect and self.render:
            env = ObservationShift(env, _transform(ep.effect, ep.seed))
        options = {"lateral_offset": ep.lateral_offset, "heading_error": ep.heading_error} if (
            ep.lateral_offset or ep.heading_error) else None
        obs, info = env.reset(seed=ep.seed, options=options)
        return env, obs, info

    def decide(self, frames, numbers, infos):
        if self.privileged:
            return self.policy.act_on_state(infos, numbers)
        if getattr(self.policy, "conditional", False):
            return self.policy.act(frames, numbers, self.commands)
        return self.policy.act(frames, numbers)

    def before_step(self, number, env, info, j, action):
        trace = self.traces[number]
        for key, value in (("d", info["lateral_offset"]), ("psi", info["heading_error"]), ("x", info["x"]),
                           ("y", info["y"]), ("teacher", info["teacher_action"]), ("action", action)):
            trace[key].append(value)

    def after_step(self, number, env, info, terminated):
        self.steps[number] += 1
        if terminated:  # crash mode: keep the failure state, with no action taken there
            trace = self.traces[number]
            self.failure[number] = (self.steps[number], info["failure"])
            for key, value in (("d", info["lateral_offset"]), ("psi", info["heading_error"]), ("x", info["x"]),
                               ("y", info["y"]), ("teacher", math.nan), ("action", math.nan)):
                trace[key].append(value)

    def end(self, number, env, info, status, reason):
        ep = self.episodes[number]
        failure_step, failure_type = self.failure[number] if status == "crashed" else (-1, None)
        self.records[number] = EpisodeRecord.build(
            key=ep.key, track=env.track.name, seed=ep.seed, effect=ep.effect, status=status, reason=reason,
            steps=self.steps[number], failure_step=failure_step,
            failure_type=failure_type, intervention_steps=list(getattr(env, "intervention_steps", [])),
            policy_hz=self.hz, speed=env.speed, start_offset_m=ep.lateral_offset,
            start_heading_rad=ep.heading_error, trace=self.traces[number], forks=_command_outcomes(env, info, status))


def _command_outcomes(env, info: dict, status: str) -> dict | None:
    """The record's command passages: fork passages (envs.forks.Route.outcomes) or lane goals
    (envs.lane_goals.LaneGoals.outcomes); None without commands."""
    goals = getattr(env, "goals", None)
    if goals is not None:
        commands, outcomes = goals.outcomes(status == "crashed")
        return {"commands": commands, "outcomes": outcomes}
    route = getattr(env, "route", None)
    if route is None:
        return None
    commands, outcomes = route.outcomes(info["lane"], info["s_m"], status == "crashed")
    return {"commands": commands, "outcomes": outcomes}


def _transform(effect: str, seed: int):
    shift = photometric_effect(effect, seed)
    return lambda frame: shift(image=frame)["image"]


def run_episodes(policy: Policy | PrivilegedPolicy, episodes: Sequence[EvalEpisode], *,
                 intervention_threshold_m: float = 1.0, policy_hz: float = 10.0,
                 env_kwargs: dict | None = None) -> list[EpisodeRecord]:
    """Run `episodes` in lockstep with `policy`; one record per episode, in input order."""
    run = Evaluation(policy, episodes, intervention_threshold_m=intervention_threshold_m, policy_hz=policy_hz,
                     env_kwargs=env_kwargs)
    run.run()
    return list(run.records)
