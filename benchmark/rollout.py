"""Closed-loop rollouts of a policy: episodes in lockstep, batched inference, per-episode records.

`run_episodes` steps a group of EvalEpisodes together: at each step the centre frames of the
active episodes (after the episode's photometric shift, if any) go through one `policy.act` call.
Crash mode ends an episode at its first off-road or collision; intervention mode (NVIDIA's
simulator rule) counts an intervention whenever the car is more than the threshold off the lane
centre (or fails), puts it back on the centre line and goes on.

A policy that raises, returns the wrong shape or a non-finite curvature makes the group's running
episodes `invalid`, with the reason; the caller's run goes on with the other groups.

Each record holds the per-step state at t = 0, 1, ... (lateral offset d, heading error psi, the
action taken and the teacher's action there, the car's x, y), and, when the episode failed, the
state at which the failure was observed as its last entry (`failure_step` is its index).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs import DrivingEnv

from .conditions import ObservationShift
from .policies import OnnxPolicy, Policy, StraightPolicy, TeacherPolicy, TorchPolicy
from .protocol import EvalEpisode


def make_policy(spec: dict[str, Any]) -> Policy:
    """A policy from a small JSON-able spec: {'kind': teacher|straight|torch|onnx, 'path': ..., 'name': ...}."""
    kind = spec.get("kind")
    name = spec.get("name")
    if kind == "teacher":
        return TeacherPolicy()
    if kind == "straight":
        return StraightPolicy()
    if kind == "torch":
        from models import load_model

        return TorchPolicy(load_model(spec["path"]), name=name or Path(spec["path"]).parent.name, device="cpu")
    if kind == "onnx":
        return OnnxPolicy(spec["path"], name=name, threads=int(spec.get("threads", 1)))
    raise ValueError(f"unknown policy kind {kind!r}; kinds are teacher, straight, torch, onnx")


def _round(values: list[float], digits: int = 4) -> list[float | None]:
    return [None if (v is None or not math.isfinite(v)) else round(float(v), digits) for v in values]


def _check_actions(actions: Any, n: int) -> tuple[np.ndarray | None, str | None]:
    try:
        a = np.asarray(actions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        return None, f"returned something that is not an array of numbers ({exc})"
    if a.shape not in ((n,), (n, 1)):
        return None, f"returned shape {a.shape} for {n} frames (expected ({n},) or ({n}, 1))"
    a = a.reshape(n)
    if not np.isfinite(a).all():
        return None, "returned a non-finite curvature (NaN or inf)"
    return a, None


def run_episodes(policy: Policy, episodes: Sequence[EvalEpisode], *, intervention_threshold_m: float = 1.0,
                 policy_hz: float = 10.0, env_kwargs: dict | None = None) -> list[dict[str, Any]]:
    """Run `episodes` in lockstep with `policy`; returns one record per episode (input order)."""
    n = len(episodes)
    policy.reset(n)
    slots: list[dict[str, Any]] = []
    for k, ep in enumerate(episodes):
        config = {"max_steps": ep.max_steps, "terminate_on_failure": ep.mode == "crash", "policy_hz": policy_hz}
        env = DrivingEnv(ep.track, track_seed=ep.track_seed, traffic=ep.traffic, config=config, **(env_kwargs or {}))
        options = {}
        if ep.lateral_offset or ep.heading_error:
            options = {"lateral_offset": ep.lateral_offset, "heading_error": ep.heading_error}
        obs, info = env.reset(seed=ep.seed, options=options or None)
        shift = ObservationShift(ep.effect, ep.seed) if ep.effect else None
        slots.append({
            "env": env, "obs": shift(obs) if shift else obs, "info": info, "shift": shift, "done": False,
            "status": "finished", "reason": None, "failure_step": -1, "failure_type": None,
            "interventions": [], "d": [], "psi": [], "action": [], "teacher": [], "x": [], "y": [], "steps": 0,
        })
    while True:
        active = [k for k in range(n) if not slots[k]["done"]]
        if not active:
            break
        frames = np.stack([slots[k]["obs"] for k in active])
        infos = [slots[k]["info"] for k in active]
        try:
            raw = policy.act(frames, np.array(active), infos)
            actions, problem = _check_actions(raw, len(active))
        except Exception as exc:  # any failure of the policy is a result, not a crash of the harness
            actions, problem = None, f"raised {type(exc).__name__}: {exc}"
        if problem is not None:
            for k in active:
                s = slots[k]
                s.update(done=True, status="invalid", reason=f"policy {problem}")
            break
        for j, k in enumerate(active):
            s = slots[k]
            info = s["info"]
            s["d"].append(info["lateral_offset"])
            s["psi"].append(info["heading_error"])
            s["x"].append(info["x"])
            s["y"].append(info["y"])
            s["teacher"].append(info["teacher_action"])
            s["action"].append(float(actions[j]))
            obs, _, terminated, truncated, info = s["env"].step(np.array([actions[j]], np.float32))
            s["steps"] += 1
            ep = episodes[k]
            if ep.mode == "intervention" and (abs(info["lateral_offset"]) > intervention_threshold_m
                                              or info["failure"] is not None):
                s["interventions"].append(s["steps"])
                obs, info = s["env"].recover()
            elif terminated:  # crash mode: record the failure state and stop
                s.update(status="crashed", failure_step=s["steps"], failure_type=info["failure"])
                for key, value in (("d", info["lateral_offset"]), ("psi", info["heading_error"]), ("x", info["x"]),
                                   ("y", info["y"]), ("teacher", math.nan), ("action", math.nan)):
                    s[key].append(value)
            s["info"] = info
            s["obs"] = s["shift"](obs) if s["shift"] else obs
            if terminated or truncated or s["steps"] >= ep.max_steps:
                s["done"] = True
    records = []
    for ep, s in zip(episodes, slots):
        speed = s["env"].speed
        records.append({
            "key": ep.key, "group": ep.group, "track": s["env"].track.name, "condition": ep.condition,
            "mode": ep.mode, "index": ep.index, "seed": ep.seed, "effect": ep.effect, "status": s["status"],
            "reason": s["reason"], "steps": s["steps"], "failure_step": s["failure_step"],
            "failure_type": s["failure_type"], "interventions": len(s["interventions"]),
            "intervention_steps": s["interventions"], "elapsed_s": s["steps"] / policy_hz,
            "distance_m": speed * s["steps"] / policy_hz, "start_offset_m": ep.lateral_offset,
            "start_heading_rad": ep.heading_error,
            "d": _round(s["d"]), "psi": _round(s["psi"]), "action": _round(s["action"], 5),
            "teacher_action": _round(s["teacher"], 5), "x": _round(s["x"], 2), "y": _round(s["y"], 2),
        })
        s["env"].close()
    return records
