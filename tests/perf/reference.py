"""Reference sides that several benchmarks share."""

from __future__ import annotations


def bare_protocol_steps(episodes, policy_hz: float, camera: bool = True) -> int:
    """The protocol episodes' DrivingEnv + disturbance stepped bare with the teacher's action, in this
    process (the harness's reference side): the steps taken."""
    import numpy as np

    from benchmark.rollout.wrappers import Disturbance
    from envs import DrivingEnv

    steps = 0
    for ep in episodes:
        env = DrivingEnv(ep.track, track_seed=ep.track_seed,
                         config={"max_steps": ep.max_steps, "terminate_on_failure": True,
                                 "policy_hz": policy_hz, "render_observation": camera})
        if ep.disturbance is not None:
            env = Disturbance(env, ep.seed, *ep.disturbance, stream=ep.disturbance_stream)
        _, info = env.reset(seed=ep.seed)
        for _ in range(ep.max_steps):
            _, _, term, trunc, info = env.step(np.array([info["teacher_action"]], np.float32))
            steps += 1
            if term or trunc:
                break
        env.close()
    return steps
