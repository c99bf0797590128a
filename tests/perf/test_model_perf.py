"""PilotNet on CPU: the training step (forward + backward, batch of 64 uint8 frames), channels_last vs
plain NCHW-contiguous memory format; inference with the mixture and categorical heads vs the point
head. Same weights, interleaved in one run."""

import numpy as np
import pytest
import torch

from models import build_model

pytestmark = pytest.mark.perf

BATCH = 64


def trainer(model, frames, target):
    def step():
        model.zero_grad(set_to_none=True)
        model.loss(model(frames), target).backward()
        return BATCH

    return step


def test_pilotnet_train_step_channels_last_vs_contiguous(compare):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (BATCH, 66, 200, 3), dtype=torch.uint8)
    target = torch.empty(BATCH, 1).uniform_(-0.15, 0.15)
    contiguous = build_model({})
    channels_last = build_model({})
    channels_last.load_state_dict(contiguous.state_dict())
    channels_last.to(memory_format=torch.channels_last)
    assert contiguous.features[0].weight.is_contiguous()
    assert channels_last.features[0].weight.is_contiguous(memory_format=torch.channels_last)

    result = compare(trainer(channels_last, frames, target), trainer(contiguous, frames, target), rounds=15,
                     name="channels_last_samples", reference_name="contiguous_samples")
    assert result["channels_last_samples_per_s"] > 0 and result["contiguous_samples_per_s"] > 0
    # Measured about 2x on 2 cores; the bound leaves room for a noisy shared machine.
    assert result["ratio"] > 1.2


INFER_BATCH, INFER_CALLS = 8, 30  # a harness worker's batch: one frame per running episode


def _policy(head: str, runtime: str, tmp_path, point_state: dict | None):
    """A PilotNet policy with `head`, sharing the point model's trunk weights (returned as the state)."""
    from benchmark.rollout.policies import OnnxPolicy, TorchPolicy
    from models import export_onnx

    torch.manual_seed(0)
    model = build_model({"head": head})
    if point_state is not None:  # same trunk: only the output layer differs
        model.load_state_dict({k: v for k, v in point_state.items() if not k.startswith("fc.6.")}, strict=False)
    state = model.state_dict()
    if runtime == "onnx":
        return OnnxPolicy(export_onnx(model, tmp_path / f"{head}.onnx"), threads=1), state
    return TorchPolicy(model, device="cpu"), state


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
@pytest.mark.parametrize("head", ["mixture", "categorical"])
def test_pilotnet_inference_with_a_new_head_vs_the_point_head(compare, head, runtime, tmp_path):
    """Batched inference of PilotNet, one thread as in a harness worker (torch: TorchPolicy, channels_last,
    no gradients; onnx: OnnxPolicy, onnxruntime), the head's run-time choice included, against the point
    head with the same trunk weights, interleaved."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    point, point_state = _policy("point", runtime, tmp_path, None)
    new, _ = _policy(head, runtime, tmp_path, point_state)
    frames = torch.randint(0, 256, (INFER_BATCH, 66, 200, 3), dtype=torch.uint8).numpy()
    episodes = np.arange(INFER_BATCH)

    def inference(policy):
        def run():
            for _ in range(INFER_CALLS):
                policy.act(frames, episodes)
            return INFER_BATCH * INFER_CALLS

        return run

    try:
        result = compare(inference(new), inference(point), rounds=8, name=f"{head}_{runtime}_frames",
                         reference_name=f"point_{runtime}_frames")
    finally:
        torch.set_num_threads(threads)
    # The heads add one small layer and an argmax to a network of 250k weights: about 1.
    assert result["ratio"] > 0.8
