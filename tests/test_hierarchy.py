"""Hierarchical imitation (issue 15): the latent-option model, its ELBO, reading options off demonstrations, the
NMI, and the intents protocol."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.reporting.hierarchy import confusion, episode_segments, lane_changes, nmi, nmi_statistics
from models import ModelConfig, build_model


def test_nmi_by_hand():
    a = np.array([0, 0, 1, 1])
    assert nmi(a, a) == pytest.approx(1.0)
    assert nmi(a, 1 - a) == pytest.approx(1.0)  # a renaming of the options
    assert nmi(a, np.array([0, 1, 0, 1])) == pytest.approx(0.0)  # independent
    assert nmi(a, np.zeros(4, int)) == 0.0  # a constant labelling carries nothing
    # a = (0, 0, 1, 1), b = (0, 0, 0, 1): I = H(b) - H(b | a) = h(1/4) - 1/2 h(1/2), h in nats
    h = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p))
    want = (h(0.25) - 0.5 * h(0.5)) / (0.5 * (h(0.5) + h(0.25)))
    assert nmi(a, np.array([0, 0, 0, 1])) == pytest.approx(want)
    with pytest.raises(ValueError):
        nmi(a, a[:3])


def test_nmi_statistics_separate_a_true_labelling_from_shuffles():
    rng = np.random.default_rng(0)
    intents = np.repeat(rng.integers(0, 4, 60), 8)  # 60 segments of 8 steps
    units = np.repeat(np.arange(60), 8)
    episodes = units // 6
    s = nmi_statistics(intents, intents, episodes, units, n_boot=100, n_perm=100)
    assert s["nmi"] == pytest.approx(1.0) and s["p"] == pytest.approx(1 / 101) and s["null_mean"] < 0.2
    noise = np.repeat(rng.integers(0, 4, 60), 8)
    s = nmi_statistics(noise, intents, episodes, units, n_boot=100, n_perm=100)
    assert s["p"] > 0.05 and s["low"] <= s["high"] and s["nmi"] < 0.1  # (resampled MI is biased up near 0)
    assert confusion(np.array([0, 1, 1]), np.array([3, 0, 0]), 2).tolist() == [[0, 0, 0, 1], [2, 0, 0, 0]]


def test_segments_are_consecutive_steps_of_one_episode():
    # two interleaved episodes (as recordings write them in lockstep), of 7 and 5 steps
    rows = [(e, s) for s in range(7) for e in (0, 1) if not (e == 1 and s >= 5)]
    index = pd.DataFrame(rows, columns=["episode", "step"])
    seg = episode_segments(index, 3)
    assert seg.shape == (3, 3)  # 2 of episode 0 (the 7th step left out), 1 of episode 1
    for r in seg:
        assert len(set(index["episode"][r])) == 1 and np.all(np.diff(index["step"].to_numpy()[r]) == 1)


def test_lane_changes_count_jumps_of_the_offset():
    assert lane_changes([0.1, 1.5, -1.9, -0.5, 0.0, None, 0.2], lane_width=4.0) == 1
    assert lane_changes([0.0, 1.9, -1.9, -1.0, 0.5, 1.9, -1.8], lane_width=4.0) == 2


def test_options_model_drives_its_high_levels_option_and_learns_by_the_elbo():
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="pilotnet-options", options=3))
    frames = torch.randint(0, 256, (4, 6, 66, 200, 3)).float()
    actions = torch.randn(4, 6) * 0.02
    mu, prior, post = model.segment_parts(frames, actions)
    assert mu.shape == (4, 6, 3) and prior.shape == (4, 6, 3) and post.shape == (4, 3)
    x = frames[:, 0]
    picked = mu[:, 0].gather(1, prior[:, 0].argmax(1, keepdim=True))
    assert torch.allclose(model(x), picked, atol=1e-6)  # driving: the most probable option's branch
    # the loss is the negative ELBO: reconstruction plus KL; with the KL weight 0 only the reconstruction
    loss, parts = model.elbo(frames, actions, kl_weight=0.0)
    assert loss.item() == pytest.approx(parts["nll"], rel=1e-5) and parts["kl"] >= 0.0
    full, _ = model.elbo(frames, actions, kl_weight=1.0)
    assert full.item() == pytest.approx(parts["nll"] + parts["kl"], rel=1e-5)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    first = None
    for _ in range(15):
        loss, _ = model.elbo(frames, actions)
        first = first if first is not None else loss.item()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert loss.item() < first
    with pytest.raises(ValueError, match="head"):
        build_model(ModelConfig(arch="pilotnet-options", head="gaussian"))


def test_options_model_exports_to_onnx_with_the_same_choice(tmp_path):
    import onnxruntime as ort

    from models import export_onnx

    torch.manual_seed(1)
    model = build_model(ModelConfig(arch="pilotnet-options")).eval()
    path = export_onnx(model, tmp_path / "options.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frames = np.random.default_rng(0).integers(0, 256, (5, 66, 200, 3)).astype(np.uint8)
    (out,) = session.run(None, {session.get_inputs()[0].name: frames})
    with torch.inference_mode():
        want = model(torch.from_numpy(frames)).numpy()
    assert out.shape == (5, 1) and np.allclose(out, want, atol=1e-5)


def test_the_intents_protocol_pairs_its_conditions_on_multi_lane_held_out_tracks(tmp_path):
    from benchmark.evaluation.protocol import ProtocolError, load_protocol
    from envs import procedural_track
    from envs.intents import IntentConfig

    protocol = load_protocol("steerbench-intents-v1")
    for profile, n in (("quick", 24), ("full", 80)):
        tracks = protocol.tracks(profile)
        assert len(tracks) == n and not protocol.commanded(profile)  # the policy sees the frames alone
        assert all(procedural_track(s).lanes >= 2 for _, s in tracks)
    episodes = protocol.episodes("quick", ["intents", "intents_disturbed"])
    assert all(e.intents == IntentConfig() and e.traffic == 0 for e in episodes)
    seeds = {c: [e.seed for e in episodes if e.key.condition == c and e.key.mode == "crash"]
             for c in ("intents", "intents_disturbed")}
    assert seeds["intents"] == seeds["intents_disturbed"]
    text = protocol.path.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("  intents:\n    intents: {}", "  intents:\n    intents: {}\n    vehicles: 2"))
    with pytest.raises(ProtocolError, match="own traffic"):
        load_protocol(str(bad))
    bad.write_text(text.replace("    conditions: [intents, intents_disturbed]\n",
                                "    conditions: [intents, intents_disturbed]\n    intervention_conditions: [intents]\n", 1))
    with pytest.raises(ProtocolError, match="intents, whose lane changes"):
        load_protocol(str(bad))


def test_the_harness_drives_the_intents_condition_with_its_traffic():
    from dataclasses import replace

    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.rollouts import run_episodes
    from benchmark.rollout.policies import TeacherPolicy
    from envs import procedural_track

    protocol = load_protocol("steerbench-intents-v1")
    episodes = [replace(e, max_steps=300) for e in protocol.episodes("quick", ["intents"])[:2]]
    records = run_episodes(TeacherPolicy(), episodes)
    assert [r.steps for r in records if r.status != "crashed"] and all(r.steps > 0 for r in records)
    # the teacher changes lane (intents) within 30 s on at least one of the tracks
    assert sum(lane_changes(r.d, procedural_track(e.track_seed).lane_width) for r, e in zip(records, episodes)) >= 1
