"""Output heads: the raw last layer to a predictive distribution of the curvature kappa [1/m], the
training losses, the held-out NLL, and the one curvature a policy drives.

A head output `out` is (N, k) or (N, T, k), in physical units (curvatures in 1/m, log-stds as the
log of 1/m), k = ModelConfig.outputs:

    point        k = 1    kappa                                loss: MSE [1/m^2]
    gaussian     k = 2    mean, log-std                        loss: Gaussian NLL
    mixture      k = 3K   K logits, K means, K log-stds        loss: NLL under the mixture of K Gaussians
    categorical  k = B    one logit per curvature bin          loss: cross-entropy of the label's bin

The categorical head's B equal bins cover [-R, R] (R = categorical_max); the edge bins are open, so a
label beyond R counts as the edge bin's. Log-stds are clamped to [log_std_min, log_std_max], which
bounds a component's density (no collapse onto single labels) and keeps exp(-log_std) finite.

The curvature a policy drives (`curvature`) is deterministic: point kappa; gaussian the mean;
mixture the mean of the most probable component (the largest weight: argmax of the logits, the first
on a tie); categorical the centre of the most probable bin. With two modes (an obstacle passed left
or right) this picks one of them, never their average, which would drive into the obstacle. The
choice is made per frame, without memory of the previous frame's. It is argmax and gather, so the
ONNX export computes it inside the graph. `sample` draws from the predictive distribution with a
seeded generator instead; it is a torch-side option only, never exported.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ModelConfig

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MIXTURE_INIT_SPREAD = 0.5
"""The mixture's component means start spread over +-this raw value (+-0.05 1/m at output_scale 0.1)."""


def finish(raw: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The last layer's raw (N, k) output -> the head output in physical units (no parameters)."""
    head, scale = config.head, config.output_scale
    if head == "point":
        return raw[..., :1] * scale
    if head == "gaussian":
        return torch.cat([raw[..., :1] * scale, _log_std(raw[..., 1:2], config)], dim=-1)
    if head == "mixture":
        logits, means, log_stds = raw.split(config.mixture_components, dim=-1)
        return torch.cat([logits, means * scale, _log_std(log_stds, config)], dim=-1)
    return raw  # categorical: the logits are already what the loss and the argmax need


def _log_std(raw: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    # std = output_scale * exp(raw): the raw log-std is O(1) like the raw mean.
    return (raw + math.log(config.output_scale)).clamp(config.log_std_min, config.log_std_max)


def init_output(layer: nn.Linear, config: ModelConfig) -> None:
    """Head-specific start of the output layer (after its default init; draws no random numbers).

    Mixture: the component means' biases start spread apart. Components that start alike get
    nearly the same gradients and stay alike for long, a mixture of one mode.
    """
    if config.head != "mixture" or config.mixture_components == 1:
        return
    k = config.mixture_components
    with torch.no_grad():
        layer.bias[k: 2 * k] = torch.linspace(-MIXTURE_INIT_SPREAD, MIXTURE_INIT_SPREAD, k)


def bin_width(config: ModelConfig) -> float:
    """Width [1/m] of the categorical head's bins."""
    return 2 * config.categorical_max / config.categorical_bins


def bin_centres(config: ModelConfig) -> torch.Tensor:
    """The categorical head's B bin centres [1/m], ascending."""
    return -config.categorical_max + (torch.arange(config.categorical_bins) + 0.5) * bin_width(config)


def bin_index(kappa: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The bin (int64, 0..B-1) of each curvature; the edge bins take everything beyond +-R."""
    index = torch.floor((kappa + config.categorical_max) / bin_width(config))
    return index.clamp(0, config.categorical_bins - 1).long()


def mixture_parts(out: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A mixture head output -> (logits, means, log-stds), each (..., K)."""
    return out.split(config.mixture_components, dim=-1)


def curvature(out: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The curvature [1/m] a policy drives for a head output, (..., 1): see the module docstring."""
    head = config.head
    if head in ("point", "gaussian"):
        return out[..., :1]
    if head == "mixture":
        logits, means, _ = mixture_parts(out, config)
        return means.gather(-1, logits.argmax(dim=-1, keepdim=True))
    index = out.argmax(dim=-1, keepdim=True).to(out.dtype)
    return -config.categorical_max + (index + 0.5) * bin_width(config)


def sample(out: torch.Tensor, config: ModelConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """A curvature (..., 1) drawn from the predictive distribution, reproducible with a seeded `generator`.

    Gaussian: mean + std * noise; mixture: a component by its weight, then its Gaussian; categorical:
    a bin by its probability, then uniformly within it. The point head has no distribution: its
    curvature. Torch only; the ONNX export always returns `curvature`.
    """
    head = config.head
    if head == "point":
        return out[..., :1]

    def normal(like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)

    if head == "gaussian":
        return out[..., :1] + torch.exp(out[..., 1:2]) * normal(out[..., :1])
    logits = mixture_parts(out, config)[0] if head == "mixture" else out
    flat = torch.softmax(logits.float(), dim=-1).reshape(-1, logits.shape[-1])
    pick = torch.multinomial(flat, 1, generator=generator).reshape(*logits.shape[:-1], 1)
    if head == "mixture":
        _, means, log_stds = mixture_parts(out, config)
        mean, log_std = means.gather(-1, pick), log_stds.gather(-1, pick)
        return mean + torch.exp(log_std) * normal(mean)
    within = torch.rand(pick.shape, generator=generator, dtype=out.dtype, device=out.device)
    return -config.categorical_max + (pick.to(out.dtype) + within) * bin_width(config)


def _per_sample_loss(out: torch.Tensor, target: torch.Tensor, config: ModelConfig) -> torch.Tensor:
    """The training loss of each sample, (..., 1); `target` has that shape already."""
    head = config.head
    if head == "point":
        return (out - target).square()
    if head == "gaussian":
        mean, log_std = out[..., :1], out[..., 1:2]
        return 0.5 * ((target - mean) * torch.exp(-log_std)).square() + log_std + _HALF_LOG_2PI
    if head == "mixture":
        logits, means, log_stds = mixture_parts(out, config)
        z = (target - means) * torch.exp(-log_stds)  # the target broadcasts over the K components
        log_joint = torch.log_softmax(logits, dim=-1) - 0.5 * z.square() - log_stds - _HALF_LOG_2PI
        return -torch.logsumexp(log_joint, dim=-1, keepdim=True)  # stable: no exp of large log-densities
    if head == "categorical":
        return -torch.log_softmax(out, dim=-1).gather(-1, bin_index(target, config))
    raise ValueError(f"unknown head {head!r}")


def loss(out: torch.Tensor, target: torch.Tensor, config: ModelConfig,
         weight: torch.Tensor | None = None) -> torch.Tensor:
    """The training loss of `target` curvatures, a scalar: MSE (point), Gaussian NLL (gaussian),
    mixture NLL (mixture) or cross-entropy of the label's bin (categorical), in nats for the last three.

    `out` is (N, k) or (N, T, k); `target` has out's shape with k = 1 (a missing trailing 1 is
    accepted). `weight`, per sample (shape of target, or without its trailing 1), gives a weighted
    mean; weights must be non-negative and not all zero.
    """
    ref = out[..., :1]
    return _mean(_per_sample_loss(out, _like(target, ref, "target"), config), weight, ref)


def nll(out: torch.Tensor, target: torch.Tensor, config: ModelConfig,
        weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean negative log-likelihood [nats] of `target` curvatures under the predictive density [per 1/m].

    Gaussian and mixture: their loss. Categorical: the bins as a piecewise-constant density,
    p(bin) / bin width, so -log p(bin) + log(bin width); it compares with the others' NLL on labels
    within +-R (the open edge bins have no true width). The point head has no distribution: ValueError.
    Shapes and `weight` as for `loss`.
    """
    if config.head == "point":
        raise ValueError("the point head predicts no distribution, so it has no NLL; use gaussian, mixture "
                         "or categorical")
    value = loss(out, target, config, weight)
    return value + math.log(bin_width(config)) if config.head == "categorical" else value


def _mean(per_sample: torch.Tensor, weight: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor:
    if weight is None:
        return per_sample.mean()
    weight = _like(weight, ref, "weight")
    return (per_sample * weight).sum() / weight.sum()


def _like(t: torch.Tensor, ref: torch.Tensor, name: str) -> torch.Tensor:
    """`t` reshaped to `ref`'s shape, refusing anything that would silently broadcast."""
    t = torch.as_tensor(t, device=ref.device)
    if t.shape == ref.shape[:-1]:
        t = t.unsqueeze(-1)
    if t.shape != ref.shape:
        raise ValueError(f"{name} must have shape {tuple(ref.shape)}, got {tuple(t.shape)}")
    return t.to(ref.dtype)
