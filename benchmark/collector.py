"""One rollout collector for every algorithm.

Episodes run in lockstep (several environments stepped together, so a learner's frames are batched
into one forward pass). At every step a *behaviour* decides the executed action and whether the
step is aggregated into the dataset:

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from envs import DrivingEnv
from envs.vehicle import clip_curvature

from .dataset import DatasetWriter
from .policies import Policy


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
        for name in ("labels", "teacher_queries", "env_steps", "episodes", "failures", "learner_steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.abs_offsets += other.abs_offsets


class TeacherBehaviour:
    """The teacher drives, optionally with Gaussian noise on the executed curvature (DART)."""

    def __init__(self, noise_std: float = 0.0):
        self.noise_std = float(noise_std)

    def reset(self, n: int) -> None:
        pass

    def reset_slot(self, slot: int) -> None:
        pass

    def act(self, frames, slots, infos, rng: np.random.Generator):
        a = np.array([i["teacher_action"] for i in infos])
        if self.noise_std > 0:
            a = a + rng.normal(0.0, self.noise_std, len(a))
        return a, np.ones(len(a), bool), np.zeros(len(a), bool)


class MixtureBehaviour:
    """Per step, the teacher's action with probability beta, else the learner's (DAgger)."""

    def __init__(self, learner: Policy, beta: float):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.learner, self.beta = learner, float(beta)

    def reset(self, n: int) -> None:
        self.learner.reset(n)

    def reset_slot(self, slot: int) -> None:
        self.learner.reset_slots([slot])

    def act(self, frames, slots, infos, rng: np.random.Generator):
        teacher = np.array([i["teacher_action"] for i in infos])
        use_teacher = rng.random(len(infos)) < self.beta
        if self.beta >= 1.0:  # the teacher alone: no need to run the learner
            return teacher, np.ones(len(infos), bool), np.zeros(len(infos), bool)
        learner = self.learner.act(frames, slots, infos)  # every frame, so recurrent learners keep state
        return np.where(use_teacher, teacher, learner), np.ones(len(infos), bool), ~use_teacher


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

    def reset_slot(self, slot: int) -> None:
        self.learner.reset_slots([slot])
        self.in_control[slot] = False

    def act(self, frames, slots, infos, rng: np.random.Generator):
        d = np.abs([i["lateral_offset"] for i in infos])
        gate = self.in_control[slots]
        gate = np.where(gate, d > self.release, d > self.threshold)
        self.in_control[slots] = gate
        learner = self.learner.act(frames, slots, infos)
        teacher = np.array([i["teacher_action"] for i in infos])
        return np.where(gate, teacher, learner), gate, ~gate


def dataset_row(info: dict[str, Any], env: DrivingEnv, labels: Sequence[float], action: float, episode: int,
                source: str, round_: int) -> dict[str, Any]:
    """The dataset index row of one step: state from `info`, labels (left, centre, right), action."""
    return {
        "episode": episode, "step": info["step"], "track": info["track"],
        "track_seed": -1 if env.track_seed is None else env.track_seed, "lane": info["lane"],
        "source": source, "round": round_, "x": info["x"], "y": info["y"], "heading": info["heading"],
        "speed": info["speed"], "s_m": info["s_m"], "progress_m": info["progress_m"],
        "lateral_offset": info["lateral_offset"], "heading_error": info["heading_error"],
        "road_curvature": env.path.curvature_at(info["s_m"]), "action": action,
        "label_left": labels[0], "label_center": labels[1], "label_right": labels[2],
    }


def collect(episodes: Sequence[EpisodeSpec], behaviour, writer: DatasetWriter | None, *, source: str,
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
    env_kwargs = dict(env_kwargs or {})
    stats = CollectStats()
    queue = list(enumerate(episodes, start=first_episode))
    total = label_budget if label_budget is not None else sum(e.steps for e in episodes)
    bar = tqdm(total=total, desc=desc, unit="label" if label_budget else "step", disable=not progress,
               leave=False, dynamic_ncols=True)
    n_slots = min(lockstep, len(queue))
    behaviour.reset(n_slots)
    slots: list[dict | None] = [None] * n_slots
    budget_left = label_budget

    def start(slot: int) -> None:
        if not queue:
            slots[slot] = None
            return
        number, spec = queue.pop(0)
        env = DrivingEnv(spec.track, track_seed=spec.track_seed, **env_kwargs)
        behaviour.reset_slot(slot)
        _, info = env.reset(seed=spec.seed, options=dict(spec.options) or None)
        slots[slot] = {"env": env, "info": info, "spec": spec, "episode": number, "steps": 0, "offsets": []}

    for k in range(n_slots):
        start(k)
    while any(slots) and (budget_left is None or budget_left > 0) and (
            max_env_steps is None or stats.env_steps < max_env_steps):
        active = [k for k, s in enumerate(slots) if s is not None]
        frames = np.stack([slots[k]["env"].last_frame for k in active])
        infos = [slots[k]["info"] for k in active]
        actions, record, by_learner = behaviour.act(frames, np.array(active), infos, rng)
        for j, k in enumerate(active):
            s = slots[k]
            env, info = s["env"], s["info"]
            action = clip_curvature(float(actions[j]))
            if record[j] and writer is not None and (budget_left is None or budget_left > 0):
                o = env.camera_config.side_offset_m
                rig = np.stack([env.render_view(-o), env.last_frame, env.render_view(o)])
                labels = (env.teacher_action_at(-o), info["teacher_action"], env.teacher_action_at(o))
                writer.add(rig, dataset_row(info, env, labels, action, s["episode"], source, round_))
                stats.labels += 1
                stats.teacher_queries += 3
                bar.update(1 if label_budget else 0)
                if budget_left is not None:
                    budget_left -= 1
            stats.learner_steps += int(by_learner[j])
            _, _, terminated, truncated, info = env.step(np.array([action], np.float32))
            s["info"] = info
            s["steps"] += 1
            s["offsets"].append(abs(info["lateral_offset"]))
            stats.env_steps += 1
            if not label_budget:
                bar.update(1)
            too_far = max_offset_m is not None and abs(info["lateral_offset"]) > max_offset_m
            if terminated or truncated or too_far or s["steps"] >= s["spec"].steps:
                stats.episodes += 1
                stats.failures += int(info["failure"] is not None or too_far)
                stats.abs_offsets.append(float(np.mean(s["offsets"])))
                env.close()
                start(k)
    for s in slots:
        if s is not None:
            s["env"].close()
    bar.close()
    return stats
