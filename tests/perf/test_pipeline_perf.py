"""Training pipeline, recording and closed-loop evaluation throughput, each against its bare
reference in the same run; peak memory of a training run."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.perf.reference import bare_protocol_steps

pytestmark = pytest.mark.perf

ROOT = Path(__file__).resolve().parents[2]
BATCH = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from benchmark.data.record import RecordConfig, run

    out = tmp_path_factory.mktemp("perf") / "data"
    run(RecordConfig(out=out, tracks=("racetrack", "oval"), procedural_seeds="0-3", episodes_per_track=1, steps=300,
                     seed=0, progress=False))
    return out


def model_and_optimizer():
    from models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig()).to(memory_format=torch.channels_last)
    return model, torch.optim.Adam(model.parameters(), lr=1e-4)


def test_training_pipeline_vs_bare_forward_backward(compare, dataset):
    """Loading from the memory map, shifted-camera augmentation (side cameras, flat-ground warps,
    return-to-centre labels) in the prefetch thread, then forward and backward; the reference is
    forward and backward alone on one batch already in memory."""
    from benchmark.data.dataset import Dataset
    from benchmark.training.augment import AugmentConfig, SampleMaker
    from benchmark.training.train import Prefetcher

    torch.set_num_threads(2)
    ds = Dataset.open(dataset)
    maker = SampleMaker(ds, AugmentConfig(side_cameras=True, label_rule="return", synthetic_prob=0.3,
                                          synthetic_method="warp"))
    model, opt = model_and_optimizer()
    ref_model, ref_opt = model_and_optimizer()
    batches = 8
    rng = np.random.default_rng(0)
    frames, labels = maker.batch(rng.integers(0, len(ds), BATCH), rng)
    x0, y0 = torch.from_numpy(frames), torch.from_numpy(labels).reshape(-1, 1)

    def step(m, o, x, y):
        loss = m.loss(m(x), y)
        o.zero_grad(set_to_none=True)
        loss.backward()
        o.step()

    def pipeline():
        jobs = [np.random.default_rng([1, b]).integers(0, len(ds), BATCH) for b in range(batches)]
        fetch = Prefetcher(lambda steps: maker.batch(steps, np.random.default_rng(len(steps))), jobs)
        for f, lab in fetch:
            step(model, opt, torch.from_numpy(f), torch.from_numpy(lab).reshape(-1, 1))
        return batches * BATCH

    def bare():
        for _ in range(batches):
            step(ref_model, ref_opt, x0, y0)
        return batches * BATCH

    result = compare(pipeline, bare, rounds=6, name="pipeline_samples", reference_name="bare_fwd_bwd_samples")
    assert result["ratio"] >= 0.85


def test_recording_speed(compare, tmp_path):
    """Frames per second written by the recorder (three cameras a step) against stepping and
    rendering the same three views without recording."""
    import gymnasium as gym

    import envs  # noqa: F401
    from benchmark.data.collector import EpisodeSpec, TeacherBehaviour, collect
    from benchmark.data.dataset import DatasetWriter

    steps = 200
    counter = iter(range(1000))

    def record():
        out = tmp_path / f"d{next(counter)}"
        with DatasetWriter(out, (66, 200, 3), {}, shard_size=1000) as w:
            stats = collect([EpisodeSpec("oval", None, seed=1, steps=steps)], TeacherBehaviour(), w, source="perf",
                            rng=np.random.default_rng(0), progress=False)
        return 3 * stats.labels

    env = gym.make("SteerBench/Oval-v0").unwrapped

    def render_only():
        _, info = env.reset(seed=1)
        o = env.camera_config.side_offset_m
        for _ in range(steps):
            env.render_view(-o), env.render_view(o)
            env.teacher_action_at(-o), env.teacher_action_at(o)
            _, _, _, _, info = env.step(np.array([info["teacher_action"]], np.float32))
        return 3 * steps

    result = compare(record, render_only, rounds=5, name="recorded_frames", reference_name="rendered_frames")
    assert result["ratio"] >= 0.6  # a ratio measured side by side, not frames/s: the machine is shared


def test_closed_loop_evaluation_vs_bare_batched_inference(compare):
    """Closed-loop PilotNet (env step, render, batched inference, records) in one process with one
    torch thread, as a harness worker runs, against inference alone on batches of the same size."""
    from benchmark.evaluation.protocol import EvalEpisode
    from benchmark.evaluation.records import EpisodeKey
    from benchmark.evaluation.rollouts import run_episodes
    from benchmark.rollout.policies import TorchPolicy
    from models import ModelConfig, build_model

    torch.set_num_threads(1)
    policy = TorchPolicy(build_model(ModelConfig()), device="cpu")
    n, steps = 8, 150
    episodes = [EvalEpisode(key=EpisodeKey("oval", "nominal", "intervention", k), track="oval", track_seed=None,
                            seed=k, max_steps=steps) for k in range(n)]
    run_episodes(policy, episodes[:1])  # build the map, warm up
    frames = np.random.default_rng(0).integers(0, 256, (n, 66, 200, 3), dtype=np.uint8)

    def closed_loop():
        return sum(r.steps for r in run_episodes(policy, episodes))

    def bare():
        for _ in range(steps):
            policy.act(frames, np.arange(n))
        return n * steps

    result = compare(closed_loop, bare, rounds=5, name="closed_loop_steps", reference_name="bare_inference_frames")
    torch.set_num_threads(2)
    assert result["ratio"] >= 0.6


def test_closed_loop_evaluation_vs_its_bound(compare):
    """Issue 12's bound for one worker: the zoo's DAgger in closed loop on 8 disturbed episodes of
    steerbench-v2's quick profile (held-out tracks, crash mode, 200 steps), as a harness worker
    runs them (one thread), against the same episodes' env + centre camera + disturbance stepped
    bare with the teacher's action, plus bare inference on as many frames in batches of 8. The
    reference's time is the sum of the two, so its rate is 1 / (1 / env + 1 / inference), the
    bound. The engine is the faster of torch (channels_last) and onnxruntime, measured first."""
    import dataclasses
    import time

    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.rollouts import run_episodes
    from benchmark.rollout.policies import OnnxPolicy, TorchPolicy
    from models import load_model

    torch.set_num_threads(1)
    protocol = load_protocol("steerbench-v2")
    episodes = [dataclasses.replace(ep, max_steps=200) for ep in protocol.episodes("quick")
                if ep.condition == "disturbed" and ep.mode == "crash" and not ep.seen][:8]
    zoo = ROOT / "models" / "zoo" / "dagger"
    engines = {"onnxruntime": OnnxPolicy(zoo / "model.onnx"),
               "torch": TorchPolicy(load_model(zoo), device="cpu")}
    frames = np.random.default_rng(0).integers(0, 256, (len(episodes), 66, 200, 3), dtype=np.uint8)
    numbers = np.arange(len(episodes))

    def infer(policy, batches: int) -> None:
        for _ in range(batches):
            policy.act(frames, numbers)

    def seconds(policy) -> float:
        infer(policy, 5)
        t = time.perf_counter()
        infer(policy, 40)
        return time.perf_counter() - t

    engine = min(engines, key=lambda name: seconds(engines[name]))
    policy = engines[engine]
    run_episodes(policy, episodes[:1], policy_hz=protocol.policy_hz)  # tracks built, warmed up

    def closed_loop():
        records = run_episodes(policy, episodes, policy_hz=protocol.policy_hz)
        assert all(r.status != "invalid" for r in records)
        return sum(r.steps for r in records)

    def bound():
        steps = bare_protocol_steps(episodes, protocol.policy_hz)
        infer(policy, -(-steps // len(episodes)))
        return steps

    result = compare(closed_loop, bound, rounds=5, name=f"closed_loop_steps_{engine}",
                     reference_name="bound_env_camera_plus_inference")
    torch.set_num_threads(2)
    print(f"[perf] closed loop at {result['ratio']:.2f} of its bound ({engine}; issue 12's target: 0.9)")
    assert result["ratio"] >= 0.8  # measured 0.93-0.99; the margin is the shared machine's noise


def test_training_peak_memory_stays_under_dataset_plus_1_5_gb(dataset, tmp_path, benchmark):
    """A training run in its own process; its peak RSS (memory-mapped frames count when touched)
    against the dataset's size plus 1.5 GB."""
    from benchmark.data.dataset import Dataset

    size = Dataset.open(dataset).nbytes
    cmd = [sys.executable, "-m", "benchmark", "train", "bc", "--data", str(dataset), "--out", str(tmp_path / "run"),
           "--epochs", "1", "--side-cameras", "--synthetic-prob", "0.3", "--label-rule", "return", "--no-progress"]
    usage = {}

    def train():
        # this child's own rusage (wait4): RUSAGE_CHILDREN would also hold earlier children's peaks,
        # e.g. the evaluation workers of another perf test
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        stderr = proc.stderr.read()
        _, status, usage["ru"] = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, stderr.decode()[-2000:]

    benchmark.pedantic(train, rounds=1, iterations=1)
    peak = usage["ru"].ru_maxrss * 1024
    benchmark.extra_info.update({"dataset_bytes": size, "peak_rss_bytes": peak, "budget_bytes": size + 1.5e9})
    print(f"\n[perf] training peak RSS {peak / 1e9:.2f} GB; dataset {size / 1e9:.2f} GB; "
          f"budget {(size + 1.5e9) / 1e9:.2f} GB (ratio {peak / (size + 1.5e9):.2f})")
    assert 0 < peak < size + 1.5e9
