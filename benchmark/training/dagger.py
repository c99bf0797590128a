"""`python -m benchmark train dagger`: DAgger (Ross, Gordon and Bagnell 2011).

Round i executes the per-step mixture beta_i * teacher + (1 - beta_i) * learner_i and aggregates
every visited state with the teacher's label. Schedules: indicator (beta_1 = 1, then 0),
exponential (beta_i = p^(i-1)) and linear (beta_i = 1 - (i-1)/N). Retraining is from scratch or
warm-started from the previous round (ImitationConfig.warm_start).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.common.config import require
from benchmark.data.collector import MixtureBehaviour, TeacherBehaviour
from benchmark.rollout.policies import TorchPolicy

from .imitation import AlgorithmBase, ImitationConfig, command_result, run_imitation


@dataclass(frozen=True)
class DaggerConfig(ImitationConfig):
    """DAgger: learner rollouts labelled by the teacher, aggregated with all earlier data, retrained."""

    out: Path = Path("runs/dagger")
    """Run directory."""
    beta_schedule: Literal["indicator", "exponential", "linear"] = "indicator"
    """Mixture weight of the teacher per round: indicator (1 then 0), exponential p^(i-1), linear."""
    beta_p: float = 0.5
    """p of the exponential schedule."""


def beta_schedule(kind: str, round_index: int, rounds: int, p: float = 0.5) -> float:
    """Teacher mixture weight beta_i of round i = 1..rounds."""
    if round_index < 1:
        raise ValueError("rounds are numbered from 1")
    if kind == "indicator":
        return 1.0 if round_index == 1 else 0.0
    if kind == "exponential":
        return float(p ** (round_index - 1))
    if kind == "linear":
        return float(max(0.0, 1.0 - (round_index - 1) / rounds))
    raise ValueError(f"unknown beta schedule {kind!r}; use indicator, exponential or linear")


class DAgger(AlgorithmBase):
    name = "dagger"

    def behaviour(self, round_, learner):
        c = self.config
        beta = beta_schedule(c.beta_schedule, round_, c.rounds, c.beta_p)
        require(learner is not None or beta >= 1.0, "the first DAgger round needs beta = 1 (no learner yet)")
        if beta >= 1.0:
            return TeacherBehaviour(), {"beta": beta}
        return MixtureBehaviour(TorchPolicy(learner, device="cpu"), beta), {"beta": beta}

    def details(self) -> dict[str, Any]:
        return {"beta_schedule": self.config.beta_schedule}


def dagger(config: DaggerConfig) -> dict:
    return run_imitation(config, DAgger(config))


def run(config: DaggerConfig) -> dict:
    return command_result(dagger(config))
