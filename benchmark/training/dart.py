"""`python -m benchmark train dart`: DART (Laskey et al. 2017).

The teacher drives with Gaussian noise on the executed curvature; labels stay its clean actions.
After each round the noise variance is set to the learner's own mean squared error against the
teacher on held-out states of the noisy demonstrations (times `noise_scale`), or kept fixed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark.data.collector import TeacherBehaviour
from benchmark.data.dataset import Dataset

from .imitation import AlgorithmBase, ImitationConfig, command_result, run_imitation
from .train import split_episodes


@dataclass(frozen=True)
class DartConfig(ImitationConfig):
    """DART: noisy teacher demonstrations, noise set from the learner's own error each round."""

    out: Path = Path("runs/dart")
    """Run directory."""
    noise: Literal["optimized", "fixed"] = "optimized"
    """optimized: variance = learner's error after each round; fixed: noise_std throughout."""
    noise_std: float = 0.01
    """Noise standard deviation of the first round (and of every round when fixed) [1/m]."""
    noise_scale: float = 1.0
    """Multiplier of the estimated variance (alpha in Laskey et al.)."""


def dart_noise_variance(learner_actions: np.ndarray, teacher_actions: np.ndarray, scale: float = 1.0) -> float:
    """DART's noise for a one-dimensional action: scale * E[(learner(s) - teacher(s))^2] over the
    states of the demonstrations (Laskey et al. 2017, the isotropic Gaussian case)."""
    a = np.asarray(learner_actions, float).reshape(-1)
    b = np.asarray(teacher_actions, float).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("learner and teacher actions must be non-empty and of the same length")
    return float(scale * np.mean((a - b) ** 2))


def predict(model, dataset: Dataset, steps: np.ndarray, batch: int = 256) -> np.ndarray:
    """The model's curvatures on the centre frames of `steps`."""
    from models import infer

    model.eval()
    return np.concatenate([infer(model, dataset.frames(steps[i: i + batch], 1))[0]
                           for i in range(0, len(steps), batch)])


class DART(AlgorithmBase):
    name = "dart"

    def __init__(self, config: DartConfig):
        super().__init__(config)
        self.std = config.noise_std

    def behaviour(self, round_, learner):
        return TeacherBehaviour(noise_std=self.std), {"noise_std": self.std}

    def after_round(self, round_, learner, dataset, last) -> None:
        """Set the next round's noise to the learner's error on held-out demonstration states."""
        if self.config.noise != "optimized" or last:
            return
        train, val = split_episodes(dataset, 0.2, self.config.seed)
        steps = val if len(val) else train
        labels = dataset.index["label_center"].to_numpy()[steps]
        self.std = math.sqrt(dart_noise_variance(predict(learner, dataset, steps), labels, self.config.noise_scale))

    def details(self) -> dict[str, Any]:
        return {"noise": self.config.noise}


def dart(config: DartConfig) -> dict:
    return run_imitation(config, DART(config))


def run(config: DartConfig) -> dict:
    return command_result(dart(config))
