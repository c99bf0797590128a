"""PilotNet training step (bf16-autocast forward, float32 loss, backward, Adam step; batch of 64 uint8
frames, channels_last, as `fit` runs on the CPU): bf16 vs float32, same weights, interleaved in one run.

The ratio is measured and reported on every CPU; the lower bound is asserted only where the CPU has
native bf16 (AVX512-BF16 or AMX). Elsewhere bf16 is emulated and slower, which is why
precision=auto means float32 there; the test then skips, naming the ratio it measured.
"""

import pytest
import torch

from benchmark.training import precision as P
from benchmark.training.train import train_step
from models import build_model

pytestmark = pytest.mark.perf

BATCH = 64


def trainer(model, frames, target, precision):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: 1.0)

    def step():
        train_step(model, optimizer, scheduler, frames, target, precision)
        return BATCH

    return step


def test_pilotnet_train_step_bf16_vs_float32(compare):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (BATCH, 66, 200, 3), dtype=torch.uint8)
    target = torch.empty(BATCH, 1).uniform_(-0.15, 0.15)
    fp32 = build_model({}).to(memory_format=torch.channels_last)
    bf16 = build_model({})
    bf16.load_state_dict(fp32.state_dict())
    bf16.to(memory_format=torch.channels_last)

    native = P.cpu_has_native_bf16()
    # Emulated bf16 steps take about a second each: fewer rounds there, the ratio is far from 1 anyway.
    result = compare(trainer(bf16, frames, target, P.BF16), trainer(fp32, frames, target, P.FLOAT32),
                     rounds=15 if native else 6, name="bf16_samples", reference_name="float32_samples")
    assert result["bf16_samples_per_s"] > 0 and result["float32_samples_per_s"] > 0
    if not native:
        pytest.skip(f"no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()}, no avx512_bf16/amx_bf16): "
                    f"measured bf16/float32 = {result['ratio']:.2f}, bound not asserted")
    # A bound well under the expected gain: the machine is shared and noisy.
    assert result["ratio"] > 1.2
