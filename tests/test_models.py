"""The steering policies of models/: architecture, heads, memory formats, save/load, ONNX export."""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
import pytest
import torch

from benchmark.common.config import ConfigError
from models import (
    ModelConfig,
    ModelFileError,
    PilotNet,
    PilotNetGRU,
    PilotNetStack,
    ResNet18Steer,
    build_model,
    export_onnx,
    load_model,
    model_sha256,
    onnx_parity,
    save_model,
)

torch.set_num_threads(2)


def frames(n: int, *, t: int | None = None, seed: int = 0, h: int = 66, w: int = 200) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, h, w, 3) if t is None else (n, t, h, w, 3)
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)


def model(seed: int = 0, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(config)


# --- PilotNet -------------------------------------------------------------------------------------


def test_pilotnet_has_the_papers_252219_parameters():
    net = model()
    assert isinstance(net, PilotNet)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 252_219
    # The fixed preprocessing and output scale add nothing; the gaussian head adds 10 + 1 weights.
    assert model(output_scale=1.0).num_parameters() == 252_219
    assert model(head="gaussian").num_parameters() == 252_219 + 11
    assert list(net.state_dict()) == [name for name, _ in net.named_parameters()]


def test_pilotnet_maps_uint8_frames_to_float32_curvature():
    net = model().eval()
    x = frames(3)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (3, 1) and out.dtype == torch.float32
        assert torch.equal(net.curvature(out), out)
        assert torch.allclose(net(x.float()), out, atol=1e-6)
        assert torch.allclose(net(x.double()), out, atol=1e-6)


def test_output_scale_is_a_fixed_factor():
    a, b = model(seed=1).eval(), model(seed=1, output_scale=0.05).eval()
    with torch.no_grad():
        assert torch.allclose(b(frames(2)), 0.5 * a(frames(2)), atol=1e-7)


def test_preprocessing_is_fixed_yuv_in_about_minus_one_to_one():
    net = model()
    pre = net.preprocess
    assert not list(pre.parameters()) and not any(k.startswith("preprocess") for k in net.state_dict())
    colours = torch.tensor([[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.uint8)
    yuv = pre(colours.view(5, 1, 1, 3).expand(5, 66, 200, 3))[:, :, 0, 0]
    assert yuv.shape == (5, 3)
    assert torch.allclose(yuv[0], torch.tensor([-1.0, 0.0, 0.0]), atol=1e-6)
    assert torch.allclose(yuv[1], torch.tensor([1.0, 0.0, 0.0]), atol=1e-4)
    assert yuv.abs().max() <= 1.0 + 1e-4
    assert yuv[2, 2] > 0.9 and yuv[4, 1] > 0.9  # red is V, blue is U


def test_channels_last_gives_the_same_outputs_and_gradients():
    seen = []

    def record(module, inputs):
        seen.append(inputs[0].is_contiguous(memory_format=torch.channels_last))

    nchw = model(seed=2)
    nhwc = model(seed=2).to(memory_format=torch.channels_last)
    x, target = frames(4), torch.full((4, 1), 0.05)
    grads = []
    for net in (nchw, nhwc):
        net.features[0].register_forward_pre_hook(record)
        net.loss(net(x), target).backward()
        grads.append(net.features[0].weight.grad)
    assert seen == [False, True]  # each runs the convolutions in its own memory format
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)
    with torch.no_grad():
        assert torch.allclose(nchw(x), nhwc(x), atol=1e-6)


def test_bad_frames_and_sizes_fail_clearly():
    net = model()
    with pytest.raises(ValueError, match=r"\(N, 66, 200, 3\)"):
        net(torch.zeros(2, 3, 66, 200, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8 or floating"):
        net(torch.zeros(2, 66, 200, 3, dtype=torch.int64))
    with pytest.raises(ConfigError, match="pilotnet requires 66x200"):
        ModelConfig(input_height=64, input_width=64)
    with pytest.raises(ConfigError, match="unknown key 'hiden'"):
        build_model({"arch": "pilotnet-gru", "hiden": 32})
    with pytest.raises(ConfigError, match="head must be one of point, gaussian, mixture, categorical"):
        ModelConfig(head="mdn")
    with pytest.raises(ConfigError, match="log_std_min"):
        ModelConfig(log_std_min=1.0, log_std_max=0.0)


# --- Heads and losses ----------------------------------------------------------------------------


def test_point_loss_is_mse_and_weights_give_a_weighted_mean():
    net = model()
    out, target = torch.tensor([[0.01], [0.03], [-0.02]]), torch.tensor([[0.0], [0.0], [0.01]])
    assert torch.allclose(net.loss(out, target), torch.nn.functional.mse_loss(out, target))
    assert torch.allclose(net.loss(out, target.squeeze(1)), torch.nn.functional.mse_loss(out, target))
    w = torch.tensor([1.0, 0.0, 3.0])
    assert torch.isclose(net.loss(out, target, w), torch.tensor((1e-4 + 3 * 9e-4) / 4))
    with pytest.raises(ValueError, match=r"target must have shape \(3, 1\)"):
        net.loss(out, target[:2])


def test_gaussian_nll_falls_as_the_mean_nears_the_target():
    net = model(head="gaussian")
    target = torch.tensor([[0.05]])
    log_std = torch.tensor([[-3.0]])
    losses = [float(net.loss(torch.cat([torch.tensor([[m]]), log_std], 1), target)) for m in (-0.1, 0.0, 0.03, 0.05)]
    assert losses == sorted(losses, reverse=True) and losses[0] > losses[-1]
    out = torch.tensor([[0.02, -3.0], [-0.01, -4.0]])
    y = torch.tensor([[0.05], [0.0]])
    ref = torch.nn.GaussianNLLLoss(full=True)(out[:, :1], y, torch.exp(2 * out[:, 1:]))
    assert torch.allclose(net.loss(out, y), ref, atol=1e-5)
    assert torch.equal(net.curvature(out), out[:, :1])


def test_gaussian_head_outputs_mean_and_clamped_log_std():
    net = model(head="gaussian", log_std_min=-5.0, log_std_max=-1.0).eval()
    with torch.no_grad():
        out = net(frames(3))
        assert out.shape == (3, 2)
        assert (out[:, 1] >= -5.0).all() and (out[:, 1] <= -1.0).all()
        with torch.no_grad():
            net.fc[-1].bias[1] = 100.0
        assert torch.all(net(frames(3))[:, 1] == -1.0)


# --- Variants ------------------------------------------------------------------------------------


def test_gru_steps_match_its_sequence_forward():
    net = model(arch="pilotnet-gru", gru_hidden=16).eval()
    assert isinstance(net, PilotNetGRU) and net.recurrent
    x = frames(2, t=3)
    assert torch.equal(net.initial_state(2), torch.zeros(2, 16))
    with torch.no_grad():
        seq, last = net.forward_sequence(x)
        assert seq.shape == (2, 3, 1) and last.shape == (2, 16)
        state = None
        for t in range(3):
            out, state = net(x[:, t], state)
            assert out.shape == (2, 1)
            assert torch.allclose(out, seq[:, t], atol=1e-6)
        assert torch.allclose(state, last, atol=1e-6)
    loss = net.loss(seq, torch.zeros(2, 3, 1))
    assert loss.ndim == 0
    with pytest.raises(ValueError, match="state must have shape"):
        net(x[:, 0], torch.zeros(3, 16))


def test_frame_stack_sees_exactly_its_window_and_steps_match_its_sequence_forward():
    net = model(arch="pilotnet-stack", stack_frames=3, stack_stride=2, stack_channels=8).eval()
    assert isinstance(net, PilotNetStack) and net.recurrent and net.span == 4
    assert torch.equal(net.initial_state(2), torch.zeros(2, 4 * 8))
    x = frames(2, t=7)
    with torch.no_grad():
        seq, last = net.forward_sequence(x)
        assert seq.shape == (2, 7, 1) and last.shape == (2, 32)
        state = None
        for t in range(7):
            out, state = net(x[:, t], state)
            assert torch.allclose(out, seq[:, t], atol=1e-6)
        assert torch.allclose(state, last, atol=1e-6)
        # Step 6 reads frames 6, 4 and 2: changing frame 5 leaves it, changing frame 2 moves it.
        for t, moves in ((5, False), (2, True), (1, False)):
            y = x.clone()
            y[:, t] = 255 - y[:, t]
            got = net.forward_sequence(y)[0][:, 6]
            assert torch.equal(got, seq[:, 6]) != moves, t
        # A sequence split in two, the state carried, gives the same answers.
        first, mid = net.forward_sequence(x[:, :3])
        second, end = net.forward_sequence(x[:, 3:], mid)
        assert torch.allclose(torch.cat([first, second], 1), seq, atol=1e-6) and torch.allclose(end, last, atol=1e-6)
    with pytest.raises(ValueError, match="state must have shape"):
        net(x[:, 0], torch.zeros(2, 16))
    with pytest.raises(ConfigError, match="stack_frames must be at least 2"):
        model(arch="pilotnet-stack", stack_frames=1)


def test_conditional_models_follow_their_command():
    x = frames(3, seed=7)
    same = x[:1].expand(3, -1, -1, -1).contiguous()
    command = torch.tensor([0, 1, 2])
    for arch in ("pilotnet-command", "pilotnet-branched"):
        net = model(arch=arch).eval()
        assert net.conditional and not net.recurrent
        with torch.no_grad():
            out = net(same, command)
        assert len({float(v) for v in out[:, 0]}) == 3  # one frame, three commands, three answers
        with pytest.raises(ValueError, match="one command per frame"):
            net(x, torch.tensor([0, 1]))
        with pytest.raises(TypeError, match="integer codes"):
            net(x, torch.tensor([0.0, 1.0, 2.0]))
    # a branch learns only from its command's samples
    net = model(arch="pilotnet-branched")
    net.loss(net(x, torch.tensor([1, 1, 1])), torch.full((3, 1), 0.05)).backward()
    grads = [sum(float(p.grad.abs().sum()) for p in b.parameters() if p.grad is not None) for b in net.branches]
    assert grads[1] > 0 and grads[0] == grads[2] == 0
    # the command-input model is PilotNet with 3 more inputs to its first fully connected layer
    assert model(arch="pilotnet-command").num_parameters() == 252_219 + 3 * 100


def test_resnet18_is_from_scratch_and_takes_other_sizes():
    net = model(arch="resnet18", head="gaussian")
    assert isinstance(net, ResNet18Steer) and not net.recurrent and net.initial_state(4) is None
    assert net.num_parameters() == 11_177_538
    small = model(arch="resnet18", input_height=48, input_width=64).eval()
    with torch.no_grad():
        assert small(frames(2, h=48, w=64)).shape == (2, 1)


# --- ONNX ----------------------------------------------------------------------------------------

ONNX_CASES = {
    "pilotnet-point": {},
    "pilotnet-gaussian": {"head": "gaussian"},
    "pilotnet-gru": {"arch": "pilotnet-gru", "head": "gaussian", "gru_hidden": 32},
    "pilotnet-mixture": {"head": "mixture", "mixture_components": 3},
    "pilotnet-categorical": {"head": "categorical"},
    "pilotnet-gru-mixture": {"arch": "pilotnet-gru", "head": "mixture", "gru_hidden": 16},
    "pilotnet-stack": {"arch": "pilotnet-stack", "stack_frames": 3, "stack_stride": 2, "stack_channels": 8},
    "resnet18": {"arch": "resnet18"},
    "pilotnet-command": {"arch": "pilotnet-command"},
    "pilotnet-branched-gaussian": {"arch": "pilotnet-branched", "head": "gaussian"},
}


@pytest.mark.parametrize("case", ONNX_CASES)
def test_onnx_export_matches_torch_with_a_dynamic_batch(case, tmp_path):
    import onnxruntime as ort

    net = model(**ONNX_CASES[case])
    if case == "resnet18":
        # zero_init_residual starts every residual branch switched off (BatchNorm weight 0); switch
        # them on, and give BatchNorm running statistics of its own, so the whole graph is compared.
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
        with torch.no_grad():
            net(frames(8, seed=3))
    assert net.training
    path = export_onnx(net, tmp_path / "policy.onnx")  # traced with batch 2
    assert os.listdir(tmp_path) == ["policy.onnx"]  # self-contained: no external data file

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    k_hidden = net.initial_state(1).shape[1] if net.recurrent else None
    ins = {i.name: (i.type, i.shape) for i in session.get_inputs()}
    outs = {o.name: o.shape for o in session.get_outputs()}
    expected_in = {"frames": ("tensor(uint8)", ["batch", 66, 200, 3])}
    expected_out = {"curvature": ["batch", 1]}
    if net.config.head == "gaussian":
        expected_out["log_std"] = ["batch", 1]
    if net.recurrent:
        expected_in["state_in"] = ("tensor(float)", ["batch", k_hidden])
        expected_out["state_out"] = ["batch", k_hidden]
    if net.conditional:
        expected_in["command"] = ("tensor(int64)", ["batch"])
    assert ins == expected_in and outs == expected_out

    x = frames(5, t=3, seed=4) if net.recurrent else frames(5, seed=4)
    if net.conditional:  # every command, and each frame under two of them
        assert onnx_parity(net, path, x, command=np.array([0, 1, 2, 2, 0])) < 1e-4
        assert onnx_parity(net, path, x, command=np.array([1, 2, 0, 1, 1])) < 1e-4
        with pytest.raises(ValueError, match="needs command"):
            onnx_parity(net, path, x)
        return
    assert onnx_parity(net, path, x) < 1e-4
    if net.recurrent:
        assert onnx_parity(net, path, x[:, 0].numpy(), state=torch.randn(5, k_hidden)) < 1e-4
    assert net.training  # export and parity use eval mode and restore the caller's


# --- Save and load -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [{}, {"arch": "pilotnet-gru", "head": "gaussian"}, {"arch": "resnet18"},
                                    {"arch": "pilotnet-branched"},
                                    {"head": "mixture", "mixture_components": 3},
                                    {"head": "categorical", "categorical_bins": 21, "categorical_max": 0.1}])
def test_save_load_round_trip_is_exact(config, tmp_path):
    net = model(**config).to(memory_format=torch.channels_last)
    if net.config.arch == "resnet18":
        with torch.no_grad():
            net(frames(4, seed=5))  # BatchNorm running statistics must travel too
    net.eval()
    save_model(net, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["format"] == 1 and saved["arch"] == net.config.arch
    loaded = load_model(tmp_path)
    assert loaded.config == net.config and not loaded.training
    # Weights are stored in the standard layout; same memory format, same kernels, same numbers.
    loaded.to(memory_format=torch.channels_last)
    x = frames(3, seed=6)
    with torch.no_grad():
        if net.recurrent:
            assert torch.equal(loaded(x)[0], net(x)[0])
        elif net.conditional:
            c = torch.tensor([0, 1, 2])
            assert torch.equal(loaded(x, c), net(x, c))
        else:
            assert torch.equal(loaded(x), net(x))


class _Payload:
    """Unpickling this creates a directory: the proof that something was unpickled."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_a_pickled_weights_file_is_refused_without_unpickling(writer, tmp_path, monkeypatch):
    save_model(model(), tmp_path)
    weights, marker = tmp_path / "model.safetensors", tmp_path / "unpickled"
    payload = {"features.0.weight": _Payload(str(marker))}
    if writer == "torch.save":
        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload))

    def forbidden(*args, **kwargs):
        raise AssertionError("load_model must never unpickle")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    with pytest.raises(ModelFileError, match=f"{weights}: not a valid safetensors file"):
        load_model(tmp_path)
    assert not marker.exists()


def test_unknown_config_key_is_named_with_the_file(tmp_path):
    save_model(model(), tmp_path)
    path = tmp_path / "config.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "dropout": 0.5}))
    with pytest.raises(ConfigError, match=f"{path}: unknown key 'dropout'"):
        load_model(tmp_path)
    path.write_text(json.dumps({**data, "gru_hidden": 0}))
    with pytest.raises(ConfigError, match=f"{path}: gru_hidden must be a positive integer"):
        load_model(tmp_path)
    path.write_text(json.dumps({**data, "format": 2}))
    with pytest.raises(ModelFileError, match=f"{path}: unsupported format 2"):
        load_model(tmp_path)


def test_missing_mismatched_and_corrupt_files_are_named(tmp_path):
    save_model(model(), tmp_path)
    config, weights = tmp_path / "config.json", tmp_path / "model.safetensors"
    data = json.loads(config.read_text())

    config.write_text(json.dumps({**data, "head": "gaussian"}))
    with pytest.raises(ModelFileError, match=rf"{weights}: weights do not match .*fc\.6\.weight"):
        load_model(tmp_path)
    config.write_text(json.dumps(data))

    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelFileError, match=f"{weights}: not a valid safetensors file"):
        load_model(tmp_path)

    config.write_text("{not json")
    with pytest.raises(ModelFileError, match=f"{config}: not valid JSON"):
        load_model(tmp_path)

    weights.unlink()
    with pytest.raises(FileNotFoundError, match=f"{weights}: missing"):
        load_model(tmp_path)


def test_model_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    assert model_sha256(path) == hashlib.sha256(data).hexdigest()


# --- Training sanity -----------------------------------------------------------------------------


def test_pilotnet_overfits_a_tiny_batch():
    net = model(seed=7).to(memory_format=torch.channels_last)
    x = frames(16, seed=8)
    y = torch.from_numpy(np.random.default_rng(9).uniform(-0.15, 0.15, (16, 1)).astype(np.float32))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = net.loss(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]
