"""The mixture-density and categorical heads: losses on hand-computed values, the run-time choice of
one curvature, two modes learnt where the point head averages, sampling, config checks, and the ONNX
files a submission would be (the leaderboard's checks, onnxruntime against torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.common.config import ConfigError
from models import ModelConfig, build_model, export_onnx, heads

torch.set_num_threads(2)


def frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 66, 200, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def normal_pdf(x: float, mean: float, std: float) -> float:
    return math.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


# --- Losses and the run-time choice, by hand ---------------------------------------------------------


def test_mixture_nll_of_two_components_at_a_point():
    cfg = ModelConfig(head="mixture", mixture_components=2)
    # weights 1/4 and 3/4, means -0.1 and 0.1, stds 0.05 and 0.1; the label 0.05.
    out = torch.tensor([[0.0, math.log(3.0), -0.1, 0.1, math.log(0.05), math.log(0.1)]])
    density = 0.25 * normal_pdf(0.05, -0.1, 0.05) + 0.75 * normal_pdf(0.05, 0.1, 0.1)  # 2.66265
    assert heads.loss(out, torch.tensor([[0.05]]), cfg).item() == pytest.approx(-math.log(density), abs=1e-5)
    assert heads.nll(out, torch.tensor([0.05]), cfg).item() == pytest.approx(-0.979318, abs=1e-5)
    assert heads.curvature(out, cfg).item() == pytest.approx(0.1)  # the heavier component's mean, not 0.05


def test_a_one_component_mixture_is_the_gaussian():
    out, y = torch.tensor([[0.02, -3.0], [-0.01, -4.0]]), torch.tensor([[0.05], [0.0]])
    gaussian = heads.loss(out, y, ModelConfig(head="gaussian"))
    mixture = heads.loss(torch.cat([torch.zeros(2, 1), out], 1), y, ModelConfig(head="mixture", mixture_components=1))
    assert mixture.item() == pytest.approx(gaussian.item(), abs=1e-6)


def test_mixture_nll_stays_finite_far_from_narrow_components():
    cfg = ModelConfig(head="mixture", mixture_components=2)
    out = torch.tensor([[0.0, 0.0, -0.1, 0.0, -9.0, -9.0]], requires_grad=True)  # stds at the clamp, e^-9
    value = heads.loss(out, torch.tensor([[0.18]]), cfg)
    value.backward()
    assert torch.isfinite(value) and value.item() > 1e5 and torch.isfinite(out.grad).all()


def test_categorical_cross_entropy_of_a_bin_and_the_open_edges():
    cfg = ModelConfig(head="categorical", categorical_bins=5, categorical_max=0.25)  # bins 0.1 wide
    assert heads.bin_width(cfg) == pytest.approx(0.1)
    assert torch.allclose(heads.bin_centres(cfg), torch.tensor([-0.2, -0.1, 0.0, 0.1, 0.2]))
    labels = torch.tensor([[-0.9], [-0.25], [-0.04], [0.12], [0.9]])
    assert heads.bin_index(labels, cfg).flatten().tolist() == [0, 0, 2, 3, 4]
    out = torch.tensor([[0.0, 0.0, 0.0, math.log(2.0), 0.0]])  # p = 1/6, 1/6, 1/6, 2/6, 1/6
    assert heads.loss(out, torch.tensor([[0.12]]), cfg).item() == pytest.approx(math.log(3.0), abs=1e-6)
    assert heads.loss(out, torch.tensor([[0.9]]), cfg).item() == pytest.approx(math.log(6.0), abs=1e-6)
    # As a density, p(bin) / width: -log(1/3 / 0.1).
    assert heads.nll(out, torch.tensor([[0.12]]), cfg).item() == pytest.approx(-math.log(10 / 3), abs=1e-6)
    assert heads.curvature(out, cfg).item() == pytest.approx(0.1)  # the most probable bin's centre
    two = out.expand(2, 5)
    assert torch.isclose(heads.loss(two, torch.tensor([0.12, 0.9]), cfg, torch.tensor([3.0, 1.0])),
                         torch.tensor((3 * math.log(3.0) + math.log(6.0)) / 4))


def test_the_point_head_has_no_nll():
    with pytest.raises(ValueError, match="point head predicts no distribution"):
        heads.nll(torch.zeros(2, 1), torch.zeros(2, 1), ModelConfig())


def test_sequences_of_outputs_take_every_head():
    for cfg in (ModelConfig(head="mixture", mixture_components=3), ModelConfig(head="categorical")):
        out = torch.randn(2, 4, cfg.outputs)
        assert heads.curvature(out, cfg).shape == (2, 4, 1)
        assert heads.loss(out, torch.zeros(2, 4), cfg).ndim == 0


# --- The models ------------------------------------------------------------------------------------


def test_pilotnet_takes_the_new_heads():
    torch.manual_seed(0)
    mixture = build_model({"head": "mixture", "mixture_components": 3})
    categorical = build_model({"head": "categorical"})
    # PilotNet's last layer widens from 10 -> 1 to 10 -> 3K and 10 -> B.
    assert mixture.num_parameters() == 252_219 - 11 + 11 * 9
    assert categorical.num_parameters() == 252_219 - 11 + 11 * 61
    assert torch.equal(mixture.fc[-1].bias[3:6].detach(), torch.tensor([-0.5, 0.0, 0.5]))  # means start apart
    mixture.fc[-1].bias.data[6:] = 100.0
    with torch.no_grad():
        out = mixture.eval()(frames(3))
        assert out.shape == (3, 9) and torch.all(out[:, 6:] == 0.0)  # log-stds clamped at log_std_max
        kappa = mixture.curvature(out)
        assert kappa.shape == (3, 1) and (kappa == out[:, 3:6]).any(-1).all()
        kappa = categorical.eval().curvature(categorical(frames(3)))
        assert ((kappa - heads.bin_centres(categorical.config)).abs() < 1e-7).any(-1).all()


def test_the_config_refuses_bad_head_sizes():
    with pytest.raises(ConfigError, match="mixture_components must be a positive integer, got 0"):
        ModelConfig(head="mixture", mixture_components=0)
    with pytest.raises(ConfigError, match="mixture_components must be a positive integer, got 2.5"):
        build_model({"head": "mixture", "mixture_components": 2.5})
    with pytest.raises(ConfigError, match="categorical_bins must be at least 2, got 1"):
        ModelConfig(head="categorical", categorical_bins=1)
    with pytest.raises(ConfigError, match="categorical_max must be positive"):
        ModelConfig(head="categorical", categorical_max=0.0)


def test_the_default_bins_cover_every_curvature_the_car_can_drive():
    from envs import MAX_CURVATURE

    cfg = ModelConfig(head="categorical")
    assert MAX_CURVATURE <= cfg.categorical_max < 1.05 * MAX_CURVATURE
    assert cfg.categorical_bins % 2 == 1 and heads.bin_centres(cfg)[cfg.categorical_bins // 2] == pytest.approx(0.0)


# --- Two modes -------------------------------------------------------------------------------------

K = 0.1  # the two modes, +-K 1/m


def fit_bimodal(cfg: ModelConfig, steps: int = 400) -> tuple[nn.Module, torch.Tensor]:
    """A linear layer on 4 random features that say nothing about the label, which is +K or -K by a
    coin flip (plus 0.01 1/m of noise): p(label | input) has two modes whatever the input."""
    torch.manual_seed(0)
    layer = nn.Linear(4, cfg.outputs)
    heads.init_output(layer, cfg)
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(layer.parameters(), lr=0.02)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ops this small run 10-30x slower split over threads on a busy machine
    try:
        for _ in range(steps):
            x = torch.randn(256, 4, generator=g)
            y = K * (2 * torch.randint(0, 2, (256, 1), generator=g) - 1) + 0.01 * torch.randn(256, 1, generator=g)
            opt.zero_grad()
            heads.loss(heads.finish(layer(x), cfg), y, cfg).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        return layer, heads.finish(layer(torch.randn(64, 4, generator=g)), cfg)


def test_the_point_head_averages_two_modes():
    cfg = ModelConfig(head="point")
    _, out = fit_bimodal(cfg)
    assert heads.curvature(out, cfg).abs().max() < 0.02  # ~0: between the modes


def test_the_mixture_head_learns_both_modes_and_drives_one():
    cfg = ModelConfig(head="mixture", mixture_components=2)
    _, out = fit_bimodal(cfg)
    logits, means, log_stds = heads.mixture_parts(out, cfg)
    weights = torch.softmax(logits, -1)
    assert torch.allclose(means.sort(-1).values, torch.tensor([-K, K]).expand(64, 2), atol=0.01)
    assert (weights > 0.35).all() and (log_stds.exp() < 0.03).all()
    assert torch.allclose(heads.curvature(out, cfg).abs(), torch.tensor(K), atol=0.01)  # one mode, never ~0


def test_the_categorical_head_learns_both_modes_and_drives_one():
    cfg = ModelConfig(head="categorical")
    _, out = fit_bimodal(cfg, steps=600)
    p = torch.softmax(out, -1)
    centres = heads.bin_centres(cfg)
    assert torch.allclose(p[:, centres > 0].sum(-1), torch.tensor(0.5), atol=0.15)
    for side in (centres < 0, centres > 0):  # each side's most probable bin is near its mode
        best = centres[side][p[:, side].argmax(-1)]
        assert torch.allclose(best.abs(), torch.tensor(K), atol=0.015)
    assert torch.allclose(heads.curvature(out, cfg).abs(), torch.tensor(K), atol=0.015)


def test_sampling_is_seeded_and_covers_both_modes():
    cfg = ModelConfig(head="mixture", mixture_components=2)
    out = torch.tensor([[0.0, 0.0, -K, K, math.log(0.01), math.log(0.01)]]).expand(2000, 6)
    draws = heads.sample(out, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(draws, heads.sample(out, cfg, torch.Generator().manual_seed(3)))
    assert draws.shape == (2000, 1) and 0.45 < (draws > 0).float().mean() < 0.55
    assert ((draws.abs() - K).abs() < 0.05).all()
    cat = ModelConfig(head="categorical", categorical_bins=5, categorical_max=0.25)
    logits = torch.tensor([[0.0, -50.0, -50.0, 0.0, -50.0]]).expand(2000, 5)
    draws = heads.sample(logits, cat, torch.Generator().manual_seed(4))
    low, high = ((draws > -0.25) & (draws < -0.15)), ((draws > 0.05) & (draws < 0.15))  # bins 0 and 3
    assert (low | high).all() and 0.45 < high.float().mean() < 0.55
    gauss = heads.sample(torch.tensor([[0.05, math.log(0.02)]]).expand(4000, 2), ModelConfig(head="gaussian"),
                         torch.Generator().manual_seed(5))
    assert gauss.mean().item() == pytest.approx(0.05, abs=0.002) and gauss.std().item() == pytest.approx(0.02, rel=0.1)


# --- As submissions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{"head": "mixture", "mixture_components": 3}, {"head": "categorical"}])
def test_exported_heads_pass_the_leaderboard_checks_and_drive_like_torch(config, tmp_path):
    from benchmark.rollout.policies import OnnxPolicy, TorchPolicy
    from leaderboard.modelcheck import ModelLimits, check_model_file

    torch.manual_seed(0)
    net = build_model(config)
    path = export_onnx(net, tmp_path / "model.onnx")
    _, info = check_model_file(path, ModelLimits())
    assert info["opset"] == 17 and info["outputs"] == ["curvature"] and not info["recurrent"]
    x = frames(6, seed=2).numpy()
    episodes = np.arange(6)
    ours, theirs = TorchPolicy(net, device="cpu"), OnnxPolicy(path)
    ours.reset(6), theirs.reset(6)
    assert np.abs(ours.act(x, episodes) - theirs.act(x, episodes)).max() < 1e-6
