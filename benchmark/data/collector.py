"""One rollout collector for every algorithm, on the lockstep runner (benchmark/rollout/runner.py).

At every step a *behaviour* decides the executed action and whether the step is aggregated into
the dataset:

- `TeacherBehaviour`: the teacher drives (behaviour cloning); with `noise_std > 0` Gaussian noise
  is added to the executed curvature (DART, Laskey et al. 2017);
- `MixtureBehaviour`: per step, the teacher with probability beta, else the learner (DAgger, Ross,
  Gordon and Bagnell 2011);
- `GatedBehaviour`: the learner drives and the teacher takes over while the car is more than a
  threshold off the lane centre; only the teacher's segments are aggregated (HG-DAgger).

Whatever was executed, the stored labels are the teacher's clean actions at the visited state: for
the centre camera and for the left and right camera poses of the rig. Every run counts its label
budget (`labels`: labelled states stored; each costs three teacher queries, one per camera) and its
environment steps, and stops at `label_budget` when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from benchmark.rollout.policies import Policy, teacher_actions
from benchmark.rollout.runner import Lockstep
from benchmark.rollout.wrappers import SafetyReset
from envs import COMMANDS, DrivingEnv
from envs.vehicle import clip_curvature

from .dataset import DatasetWriter

TEACHER_LABELS = "teacher: pure-pursuit curvature at each camera's pose (left, center, right)"
"""The label rule of every recording the collector makes (the manifest's label_rule)."""


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to collect: track, reset seed, length and reset options."""

    track: str
    track_seed: int | None = None
    seed: int = 0
    steps: int = 500
    options: tuple[tuple[str, float], ...] = ()


@dataclass
class CollectStats:
    labels: int = 0
    """Labelled states stored (the label budget spent)."""
    teacher_queries: int = 0
    """Teacher calls made for stored labels (three per labelled state: left, centre, right)."""
    env_steps: int = 0
    episodes: int = 0
    failures: int = 0
    learner_steps: int = 0
    """Steps whose executed action came from the learner."""
    abs_offsets: list[float] = field(default_factory=list)
    """Mean |lateral offset| of each finished episode [m]."""

    def add(self, other: CollectStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class Decision:
    """A behaviour's choice for the active episodes."""

    actions: np.ndarray
    """Executed curvatures [1/m]."""
    record: np.ndarray
    """Whether each step is aggregated into the dataset."""
    by_learner: np.ndarray
    """Whether each executed action is the learner's."""


class Behaviour(Protocol):
    def reset(self, n: int) -> None: ...

    def act(self, frames: np.ndarray, episodes: np.ndarray, infos: Sequence[dict],
            rng: np.random.Generator) -> Decision: ...


class TeacherBehaviour:
    """The teacher drives, optionally with Gaussian noise on the executed curvature (DART)."""

    def __init__(self, noise_std: float = 0.0):
        self.noise_std = float(noise_std)

    def reset(self, n: int) -> None:
        pass

    def act(self, frames, episodes, infos, rng: np.random.Generator) -> Decision:
        a = teacher_actions(infos)
        if self.noise_std > 0:
            a = a + rng.normal(0.0, self.noise_std, len(a))
        return Decision(a, np.ones(len(a), bool), np.zeros(len(a), bool))


class MixtureBehaviour:
    """Per step, the teacher's action with probability beta, else the learner's (DAgger)."""

    def __init__(self, learner: Policy | None, beta: float):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if learner is None and beta < 1.0:
            raise ValueError("a mixture with beta < 1 needs a learner")
        self.learner, self.beta = learner, float(beta)

    def reset(self, n: int) -> None:
        if self.learner is not None:
            self.learner.reset(n)

    def act(self, frames, episodes, infos, rng: np.random.Generator) -> Decision:
        teacher = teacher_actions(infos)
        use_teacher = rng.random(len(infos)) < self.beta
        everyone = np.ones(len(infos), bool)
        if self.beta >= 1.0:  # the teacher alone: no need to run the learner
            return Decision(teacher, everyone, ~everyone)
        learner = self.learner.act(frames, episodes)  # every frame, so recurrent learners keep state
        return Decision(np.where(use_teacher, teacher, learner), everyone, ~use_teacher)


class GatedBehaviour:
    """The learner drives; the teacher takes over beyond `threshold_m` off centre until the car is
    back within `release_m`. Only teacher-driven steps are aggregated (HG-DAgger, Kelly et al. 2019)."""

    def __init__(self, learner: Policy, threshold_m: float = 1.0, release_m: float = 0.3):
        if not 0 < release_m < threshold_m:
            raise ValueError("need 0 < release_m < threshold_m")
        self.learner, self.threshold, self.release = learner, threshold_m, release_m

    def reset(self, n: int) -> None:
        self.learner.reset(n)
        self.in_control = np.zeros(n, bool)

    def act(self, frames, episodes, infos, rng: np.random.Generator) -> Decision:
        d = np.abs([i["lateral_offset"] for i in infos])
        gate = self.in_control[episodes]
        gate = np.where(gate, d > self.release, d > self.threshold)
        self.in_control[episodes] = gate
        learner = self.learner.act(frames, episodes)
        return Decision(np.where(gate, teacher_actions(infos), learner), gate, ~gate)


def dataset_row(info: dict[str, Any], env: DrivingEnv, labels: Sequence[float], action: float, episode: int,
                source: str, round_: int) -> dict[str, Any]:
    """The dataset index row of one step: state from `info`, labels (left, centre, right), action; on a
    road network with forks also the route's command (its code: 0 follow, 1 left, 2 right); with intents
    the teacher's intent (envs.intents)."""
    row = {
        "episode": episode, "step": info["step"], "track": info["track"],
        "track_seed": -1 if env.track_seed is None else env.track_seed, "lane": info["lane"],
        "source": source, "round": round_, "x": info["x"], "y": info["y"], "heading": info["heading"],
        "speed": info["speed"], "s_m": info["s_m"], "progress_m": info["progress_m"],
        "lateral_offset": info["lateral_offset"], "heading_error": info["heading_error"],
        "road_curvature": env.path.curvature_at(info["s_m"]), "action": action,
        "label_left": labels[0], "label_center": labels[1], "label_right": labels[2],
    }
    if "command" in info:
        row["command"] = COMMANDS.index(info["command"])
    if "intent" in info:  # the teacher's, for analysis and the hierarchical task's evaluation: never an input
        row["intent"] = info["intent"]
    return row


def record_step(writer: DatasetWriter, env: DrivingEnv, info: dict[str, Any], action: float, episode: int,
                source: str, round_: int) -> None:
    """Store the state `info` of `env`: the rig's three frames, the teacher's label at each camera
    pose, and the executed `action` (three teacher queries)."""
    o = env.camera_config.side_offset_m
    rig = np.stack([env.render_view(-o), env.last_frame, env.render_view(o)])
    labels = (env.teacher_action_at(-o), info["teacher_action"], env.teacher_action_at(o))
    writer.add(rig, dataset_row(info, env, labels, action, episode, source, round_))


class Collection(Lockstep[EpisodeSpec]):
    """The collector as the runner's hooks: a behaviour drives, aggregated steps go to the writer."""

    def __init__(self, episodes: Sequence[EpisodeSpec], behaviour: Behaviour, writer: DatasetWriter | None, *,
                 source: str, round_: int, rng: np.random.Generator, env_kwargs: dict, label_budget: int | None,
                 lockstep: int, first_episode: int, max_env_steps: int | None, max_offset_m: float | None,
                 bar: tqdm):
        super().__init__(episodes, lockstep)
        self.behaviour, self.writer, self.source, self.round = behaviour, writer, source, round_
        self.rng, self.env_kwargs, self.first_episode = rng, env_kwargs, first_episode
        self.label_budget, self.budget_left = label_budget, label_budget
        self.max_env_steps, self.max_offset_m, self.bar = max_env_steps, max_offset_m, bar
        self.stats = CollectStats()
        self.offsets: dict[int, list[float]] = {}
        self.decision: Decision | None = None
        behaviour.reset(len(episodes))

    def start(self, number, episode):
        env = DrivingEnv(episode.track, track_seed=episode.track_seed, **self.env_kwargs)
        obs, info = env.reset(seed=episode.seed, options=dict(episode.options) or None)
        self.offsets[number] = []
        if self.max_offset_m is not None:
            env = SafetyReset(env, self.max_offset_m)
        return env, obs, info

    def stop(self) -> bool:
        return (self.budget_left is not None and self.budget_left <= 0) or (
            self.max_env_steps is not None and self.stats.env_steps >= self.max_env_steps)

    def decide(self, frames, numbers, infos):
        self.decision = self.behaviour.act(frames, numbers, infos, self.rng)
        return self.decision.actions

    def action_for_env(self, action: float) -> float:
        return clip_curvature(action)

    def before_step(self, number, env, info, j, action):
        if self.decision.record[j] and self.writer is not None and (self.budget_left is None or self.budget_left > 0):
            record_step(self.writer, env, info, action, self.first_episode + number, self.source, self.round)
            self.stats.labels += 1
            self.stats.teacher_queries += 3
            if self.label_budget:
                self.bar.update(1)
            if self.budget_left is not None:
                self.budget_left -= 1
        self.stats.learner_steps += int(self.decision.by_learner[j])

    def after_step(self, number, env, info, terminated):
        self.offsets[number].append(abs(info["lateral_offset"]))
        self.stats.env_steps += 1
        if not self.label_budget:
            self.bar.update(1)

    def end(self, number, env, info, status, reason):
        too_far = bool(getattr(env, "too_far", False))
        self.stats.episodes += 1
        self.stats.failures += int(info["failure"] is not None or too_far)
        self.stats.abs_offsets.append(float(np.mean(self.offsets.pop(number))))


def collect(episodes: Sequence[EpisodeSpec], behaviour: Behaviour, writer: DatasetWriter | None, *, source: str,
            round_: int = 0, rng: np.random.Generator, env_kwargs: dict | None = None,
            label_budget: int | None = None, lockstep: int = 8, first_episode: int = 0,
            progress: bool = True, desc: str = "collect", max_env_steps: int | None = None,
            max_offset_m: float | None = None) -> CollectStats:
    """Run `episodes` with `behaviour`, store aggregated steps in `writer`; see the module doc.

    Stops when the episodes run out, `label_budget` labels are stored, or `max_env_steps`
    environment steps were taken (a gated learner may drive long without asking for labels).
    An episode also ends when the car is more than `max_offset_m` off its lane centre (a safety
    driver's reset: labels far outside the lane are saturated and teach little).
    """
    total = label_budget if label_budget is not None else sum(e.steps for e in episodes)
    with tqdm(total=total, desc=desc, unit="label" if label_budget else "step", disable=not progress,
              leave=False, dynamic_ncols=True) as bar:
        run = Collection(episodes, behaviour, writer, source=source, round_=round_, rng=rng,
                         env_kwargs=dict(env_kwargs or {}), label_budget=label_budget, lockstep=lockstep,
                         first_episode=first_episode, max_env_steps=max_env_steps, max_offset_m=max_offset_m,
                         bar=bar)
        run.run()
    return run.stats
