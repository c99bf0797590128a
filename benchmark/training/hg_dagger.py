"""`python -m benchmark train hg-dagger`: HG-DAgger (Kelly et al. 2019).

After a round of teacher demonstrations, the learner drives and the teacher takes over while the
car is more than `threshold_m` off the lane centre (until it is back within `release_m`); only the
teacher's segments are aggregated. A learner that rarely drifts asks for few labels, so a round
also stops after `max_env_steps_factor` environment steps per label it was to collect.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.data.collector import GatedBehaviour, TeacherBehaviour
from benchmark.rollout.policies import TorchPolicy

from .imitation import AlgorithmBase, ImitationConfig, Limits, command_result, run_imitation


@dataclass(frozen=True)
class HGDaggerConfig(ImitationConfig):
    """HG-DAgger: the learner drives, the teacher takes over when the car is too far off centre."""

    out: Path = Path("runs/hg-dagger")
    """Run directory."""
    threshold_m: float = 1.0
    """The teacher takes over beyond this lateral offset [m]."""
    release_m: float = 0.3
    """... and hands back once the car is within this offset [m]."""
    max_env_steps_factor: float = 10.0
    """Stop a round after this many environment steps per label it was to collect."""


class HGDAgger(AlgorithmBase):
    name = "hg-dagger"

    def behaviour(self, round_, learner):
        if learner is None:
            return TeacherBehaviour(), {"gated": False}
        c = self.config
        return GatedBehaviour(TorchPolicy(learner, device="cpu"), c.threshold_m, c.release_m), {"gated": True}

    def limits(self) -> Limits:
        factor = self.config.max_env_steps_factor
        return Limits(episodes_per_label=factor, max_env_steps_per_label=factor)


def hg_dagger(config: HGDaggerConfig) -> dict:
    return run_imitation(config, HGDAgger(config))


def run(config: HGDaggerConfig) -> dict:
    return command_result(hg_dagger(config))
