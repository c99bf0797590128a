"""Output heads: the raw last layer to curvature [1/m], and the matching training losses.

A head output `out` is (N, k): column 0 is the curvature kappa in 1/m (the mean for the gaussian
head); the gaussian head's column 1 is the log of the standard deviation of kappa in 1/m. Losses are
in those physical units (MSE in 1/m^2), so they compare across output scales.
"""

from __future__ import annotations

import math

import torch

from .config import ModelConfig

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def finish(raw: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The last layer's raw (N, k) output -> the head output in physical units (no parameters)."""
    mean = raw[..., :1] * config.output_scale
    if config.head == "point":
        return mean
    # std = output_scale * exp(raw): the raw log-std is O(1) like the raw mean.
    log_std = (raw[..., 1:2] + math.log(config.output_scale)).clamp(config.log_std_min, config.log_std_max)
    return torch.cat([mean, log_std], dim=-1)


def curvature(out: torch.Tensor) -> torch.Tensor:
    """The curvature [1/m] (the mean for gaussian heads) of a head output: (..., 1)."""
    return out[..., :1]


def loss(out: torch.Tensor, target: torch.Tensor, head: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """MSE (point) or Gaussian negative log-likelihood (gaussian) of `target` curvatures, a scalar.

    `out` is (N, k) or (N, T, k); `target` has out's shape with k = 1 (a missing trailing 1 is
    accepted). `weight`, per sample (shape of target, or without its trailing 1), gives a weighted
    mean; weights must be non-negative and not all zero.
    """
    mean = curvature(out)
    target = _like(target, mean, "target")
    if head == "point":
        per_sample = (mean - target).square()
    elif head == "gaussian":
        log_std = out[..., 1:2]
        per_sample = 0.5 * ((target - mean) * torch.exp(-log_std)).square() + log_std + _HALF_LOG_2PI
    else:
        raise ValueError(f"unknown head {head!r}")
    if weight is None:
        return per_sample.mean()
    weight = _like(weight, mean, "weight")
    return (per_sample * weight).sum() / weight.sum()


def _like(t: torch.Tensor, ref: torch.Tensor, name: str) -> torch.Tensor:
    """`t` reshaped to `ref`'s shape, refusing anything that would silently broadcast."""
    t = torch.as_tensor(t, device=ref.device)
    if t.shape == ref.shape[:-1]:
        t = t.unsqueeze(-1)
    if t.shape != ref.shape:
        raise ValueError(f"{name} must have shape {tuple(ref.shape)}, got {tuple(t.shape)}")
    return t.to(ref.dtype)
