"""PilotNet with latent options: hierarchical imitation in the spirit of HVIL (issue 15).

A demonstration is cut into segments of T consecutive steps; each segment has one discrete latent option
z in 1..K, never given its true intent (envs.intents). Three parts share PilotNet's convolutional trunk:

- the low-level policy pi(a | frame, z): one branch of fully connected layers per option, as
  `pilotnet-branched` has per command, with a Gaussian likelihood of fixed std sigma (`option_std`);
- the high-level policy pi(z | frame): fully connected layers to K logits;
- the variational encoder q(z | segment): a bidirectional GRU over the segment's frame features and
  actions, to K logits; used in training (and to read the options off held-out demonstrations), never
  in driving.

Training maximises the evidence lower bound of a segment's actions, exactly over the K options:

    ELBO = sum_z q(z | seg) sum_t log N(a_t; mu_z(o_t), sigma^2) - KL(q(z | seg) || pi(z | o_0)),

the prior being the high-level policy at the segment's first frame (segments start at every step, so it
learns on every frame). `elbo` returns the negative ELBO per step, the KL weighted by `kl_weight` (a
warm-up from 0 lets the options specialise before the prior pulls the posterior in). Driving
(`forward`, the ONNX graph) is frames -> curvature: the high level's most probable option picks the low
level's branch, frame by frame, without memory.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import SteeringModel, activation, he_init
from .conditional import _fc
from .config import ModelConfig
from .pilotnet import FEATURES, PilotNetFeatures

ENCODER_UNITS = 64
"""Width of the encoder's input projection and of each direction of its GRU."""


class PilotNetOptions(SteeringModel):
    """frames (N, 66, 200, 3) -> curvature (N, 1), through the high level's most probable option."""

    segments = True
    """Trained on segments of consecutive steps (benchmark.training.train's BatchPlan), by `elbo`."""

    def __init__(self, config: ModelConfig | None = None):
        config = config or ModelConfig(arch="pilotnet-options")
        if config.arch != "pilotnet-options":
            raise ValueError(f"PilotNetOptions needs a config with arch='pilotnet-options', got {config.arch!r}")
        if config.head != "point":
            raise ValueError(f"pilotnet-options has its own Gaussian likelihood (option_std): head must be 'point', "
                             f"got {config.head!r}")
        super().__init__(config)
        k, act = config.options, config.activation
        self.features = PilotNetFeatures(act)
        self.low = nn.ModuleList(_fc(FEATURES, config) for _ in range(k))
        self.high = nn.Sequential(nn.Linear(FEATURES, 100), activation(act), nn.Linear(100, 50), activation(act),
                                  nn.Linear(50, k))
        self.encoder_in = nn.Sequential(nn.Linear(FEATURES + 1, ENCODER_UNITS), activation(act))
        self.encoder = nn.GRU(ENCODER_UNITS, ENCODER_UNITS, batch_first=True, bidirectional=True)
        self.encoder_out = nn.Linear(2 * ENCODER_UNITS, k)
        he_init([*self.high[:-1].modules(), *self.encoder_in.modules()])

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        return self.features(self._input(frames, self.features[0].weight))

    def actions(self, x: torch.Tensor) -> torch.Tensor:
        """Each option's curvature [1/m] from trunk features (N, 1152): (N, K)."""
        return torch.cat([self._finish(branch(x)) for branch in self.low], dim=1)

    def option_logits(self, frames: torch.Tensor) -> torch.Tensor:
        """The high level's logits of pi(z | frame), (N, K)."""
        return self.high(self._features(frames))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self._features(frames)
        mu = self.actions(x)
        # A one-hot mask picks the option (as pilotnet-branched picks a branch): argmax and a product export
        # to ONNX with the output's width known.
        pick = nn.functional.one_hot(self.high(x).argmax(dim=1), self.config.options).to(mu.dtype)
        return (mu * pick).sum(dim=1, keepdim=True)

    def posterior_logits(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The encoder's logits of q(z | segment) from a segment's trunk features (B, T, 1152) and its
        actions (B, T) [1/m]: (B, K)."""
        a = (actions / self.config.output_scale).unsqueeze(-1).to(x.dtype)  # O(1), like the raw outputs
        _, h = self.encoder(self.encoder_in(torch.cat([x, a], dim=-1)))
        return self.encoder_out(torch.cat([h[0], h[1]], dim=-1))

    def segment_parts(self, frames: torch.Tensor, actions: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For segments of frames (B, T, H, W, 3) and actions (B, T): (the options' curvatures (B, T, K), the
        high level's logits at every frame (B, T, K), the posterior's logits (B, K))."""
        b, t = frames.shape[:2]
        x = self._features(frames.reshape(b * t, *frames.shape[2:]))
        mu = self.actions(x).reshape(b, t, -1)
        prior = self.high(x).reshape(b, t, -1)
        return mu, prior, self.posterior_logits(x.reshape(b, t, -1), actions)

    def elbo(self, frames: torch.Tensor, actions: torch.Tensor, kl_weight: float = 1.0
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The negative ELBO per step of segments (B, T, H, W, 3) with actions (B, T) [1/m], the KL weighted
        by `kl_weight`; returns (loss, {'nll': ..., 'kl': ...} per step, unweighted)."""
        t = actions.shape[1]
        mu, prior, post = self.segment_parts(frames, actions)
        mu, prior, post = mu.float(), prior.float(), post.float()
        sigma = self.config.option_std
        # -log N(a; mu_z, sigma^2) summed over the segment's steps, for each option: (B, K)
        nll = (((actions.float().unsqueeze(-1) - mu) / sigma) ** 2 * 0.5
               + math.log(sigma) + 0.5 * math.log(2 * math.pi)).sum(dim=1)
        q = post.softmax(dim=-1)
        log_q, log_p = post.log_softmax(dim=-1), prior[:, 0].log_softmax(dim=-1)
        rec = (q * nll).sum(dim=-1).mean() / t
        kl = (q * (log_q - log_p)).sum(dim=-1).mean() / t
        return rec + kl_weight * kl, {"nll": float(rec.detach()), "kl": float(kl.detach())}


__all__ = ["ENCODER_UNITS", "PilotNetOptions"]
