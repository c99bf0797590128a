"""The leaderboard (leaderboard/): submissions and their rejections, ranking, pages, verification.

Everything runs on a tiny protocol (tests/data/leaderboard/tiny-protocol.yaml: the oval, two crash
conditions and one intervention condition, two 30-step episodes each) in temporary directories,
with one evaluation worker and no drift reference, so that an evaluation takes a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from leaderboard.__main__ import main as leaderboard_main
from leaderboard.board import load_entries
from leaderboard.card import validate_card
from leaderboard.common import Rejected, differences
from leaderboard.modelcheck import ModelLimits, check_model_file
from leaderboard.ranking import ranked, score_of
from leaderboard.sandbox import CRASHED, MEMORY, TIMEOUT, IsolationError, run_isolated
from leaderboard.submit import BaselinesConfig, SubmitConfig, baselines, submit
from leaderboard.verify import MISMATCH, OK, TAMPERED, VerifyConfig, _reference_jobs, verify

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "leaderboard"
TINY = DATA / "tiny-protocol.yaml"
CARD = DATA / "card.yaml"
ZOO_NAME = "Tiny PilotNet (untrained)"
ZOO_ID = "tiny-pilotnet-untrained"


def options(root: Path, work: Path, **overrides) -> dict:
    """Evaluation options for a fast, hermetic test board."""
    return {"root": root, "protocol": str(TINY), "profile": "full", "workers": 1, "drift_reference": False,
            "progress": False, "work_dir": work, "time_limit_s": 300.0, **overrides}


# ------------------------------------------------------------------------------------------------
# ONNX files for the tests
# ------------------------------------------------------------------------------------------------


def pilotnet_onnx(path: Path, **config) -> Path:
    import torch

    from models import build_model, export_onnx

    torch.manual_seed(0)
    return export_onnx(build_model(config), path)


def tiny_graph(path: Path, *, frames_dims=("batch", 66, 200, 3), frames_type=TensorProto.UINT8, scale=0.01,
               opset=17, nan_at_batch: int | None = None, loop: bool = False, hang_at_batch: int | None = None,
               custom_domain: bool = False, external: bool = False) -> Path:
    """A hand-made ONNX graph: curvature = scale * mean(frames), (N, 1); variants for the rejections."""
    nodes = [helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["f"]),
             helper.make_node("Mul", ["f", "scale"], ["y"])]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
             helper.make_tensor("scale", TensorProto.FLOAT, [1], [scale])]
    out = "y"
    if nan_at_batch is not None:  # 0 / (N - k): NaN for a batch of k frames only
        nodes += [helper.make_node("Shape", ["frames"], ["s"]),
                  helper.make_node("Gather", ["s", "zero_i"], ["n"], axis=0),
                  helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
                  helper.make_node("Sub", ["nf", "k"], ["d"]),
                  helper.make_node("Mul", ["y", "zero_f"], ["z"]),
                  helper.make_node("Div", ["z", "d"], ["q"]),
                  helper.make_node("Add", ["y", "q"], ["yq"])]
        inits += [helper.make_tensor("zero_i", TensorProto.INT64, [], [0]),
                  helper.make_tensor("k", TensorProto.FLOAT, [], [float(nan_at_batch)]),
                  helper.make_tensor("zero_f", TensorProto.FLOAT, [], [0.0])]
        out = "yq"
    if loop or hang_at_batch is not None:  # a loop of 10^15 iterations: the model never answers
        body = helper.make_graph(
            [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v", "eps"], ["v_out"])],
            "body",
            [helper.make_tensor_value_info("i", TensorProto.INT64, []),
             helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
            [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
             helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)],
            [helper.make_tensor("eps", TensorProto.FLOAT, [], [0.0])])
        trips = "trips"
        if hang_at_batch is not None:  # 1 iteration, or 10^15 for a batch of k frames
            nodes += [helper.make_node("Shape", ["frames"], ["hs"]),
                      helper.make_node("Gather", ["hs", "h0"], ["hn"], axis=0),
                      helper.make_node("Equal", ["hn", "hk"], ["heq"]),
                      helper.make_node("Cast", ["heq"], ["hi"], to=TensorProto.INT64),
                      helper.make_node("Mul", ["hi", "trips"], ["hm"]),
                      helper.make_node("Add", ["hm", "h1"], ["htrips"])]
            inits += [helper.make_tensor("h0", TensorProto.INT64, [], [0]),
                      helper.make_tensor("hk", TensorProto.INT64, [], [hang_at_batch]),
                      helper.make_tensor("h1", TensorProto.INT64, [], [1])]
            trips = "htrips"
        nodes.append(helper.make_node("Loop", [trips, "cond", out], ["looped"], body=body))
        inits += [helper.make_tensor("trips", TensorProto.INT64, [], [10**15]),
                  helper.make_tensor("cond", TensorProto.BOOL, [], [True])]
        out = "looped"
    opsets = [helper.make_opsetid("", opset)]
    if custom_domain:
        nodes.append(helper.make_node("FastSteer", [out], ["steered"], domain="com.example"))
        opsets.append(helper.make_opsetid("com.example", 1))
        out = "steered"
    nodes.append(helper.make_node("Identity", [out], ["curvature"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("frames", frames_type, list(frames_dims))],
                              [helper.make_tensor_value_info("curvature", TensorProto.FLOAT, ["batch", 1])], inits)
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8, producer_name="steerbench-tests")
    if external:
        scale_tensor = next(t for t in model.graph.initializer if t.name == "scale")
        scale_tensor.ClearField("float_data")
        scale_tensor.data_location = TensorProto.EXTERNAL
        entry = scale_tensor.external_data.add()
        entry.key, entry.value = "location", "weights.bin"
    path.write_bytes(model.SerializeToString())
    return path


class _Exploit:
    """Unpickling this creates a file: proof that a submitted pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


# ------------------------------------------------------------------------------------------------
# A board with the two references and one zoo model, built through `baselines`
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("models")
    return {"pilotnet": pilotnet_onnx(d / "pilotnet.onnx")}


@pytest.fixture(scope="module")
def board(tmp_path_factory, files) -> Path:
    base = tmp_path_factory.mktemp("board")
    zoo = base / "zoo"
    (zoo / "tiny-pilotnet").mkdir(parents=True)
    shutil.copy(files["pilotnet"], zoo / "tiny-pilotnet" / "model.onnx")
    import yaml

    card = {**yaml.safe_load(CARD.read_text()), "name": ZOO_NAME}
    (zoo / "tiny-pilotnet" / "card.json").write_text(json.dumps(card))
    root = base / "leaderboard"
    result = baselines(BaselinesConfig(zoo=zoo, **options(root, base / "work")))
    assert result == {"added": ["teacher", "straight", ZOO_ID], "already_present": [], "rejected": {}}
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def copy_board(board: Path, tmp_path: Path) -> Path:
    target = tmp_path / "leaderboard"
    shutil.copytree(board, target)
    return target


def test_baselines_write_complete_entries(board, files):
    entries = {e["id"]: e for e in load_entries(board)}
    assert set(entries) == {"teacher", "straight", ZOO_ID}
    zoo = entries[ZOO_ID]
    assert zoo["kind"] == "submission" and zoo["policy"] == "onnx"
    assert zoo["card"]["name"] == ZOO_NAME and zoo["card"]["training"]["tracks"][0] == "racetrack"
    data = files["pilotnet"].read_bytes()
    assert zoo["model"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert (board / zoo["model"]["file"]).read_bytes() == data
    assert zoo["model"]["opset"] == 17 and zoo["model"]["recurrent"] is False
    assert zoo["protocol"]["name"] == "leaderboard-tiny" and zoo["protocol"]["profile"] == "full"
    assert zoo["protocol"]["horizons"] == [10, 30]
    for key in ("git_sha", "packages", "hardware", "date"):
        assert zoo[key]
    assert zoo["packages"]["onnxruntime"] and zoo["hardware"]["cpus"]
    for entry in entries.values():
        assert entry["metrics"]["invalid"] == 0 and entry["evaluation"]["group_size"] == 8
        assert entry["score"] == score_of(entry["metrics"])
        for condition in ("nominal", "perturbed"):  # the curves the page plots are in the entry
            crash = entry["metrics"]["conditions"][condition]["crash"]
            assert len(crash["survival"]) == len(crash["cumulative_cost"]) == 2
        assert "autonomy_pct" in entry["metrics"]["conditions"]["nominal"]["intervention"]
    assert entries["teacher"]["kind"] == entries["straight"]["kind"] == "reference"
    assert entries["teacher"]["model"] is None
    # Clips: the first nominal failure, replayed (the zoo model's in the sandbox); none for the teacher.
    assert entries["teacher"]["clip"] is None
    for entry in (entries["straight"], zoo):
        clip = entry["clip"]
        assert clip["file"] == f"clips/{entry['id']}.webp" and clip["episode"].startswith("oval|nominal|crash|")
        assert clip["end_step"] == clip["failure_step"] and clip["frames"] == clip["end_step"] - clip["start_step"] + 1
        data = (board / clip["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == clip["sha256"] and len(data) == clip["bytes"] < 300_000
    assert entries["teacher"]["score"]["value"] == 1.0
    # The README's table is ranked and states the formula.
    readme = (board / "README.md").read_text()
    table = readme.split("<!-- BEGIN LEADERBOARD")[1]
    assert "score = (1/|C|) · Σ_{c∈C} S_c(T_max)" in table
    order = [table.index(f"| {name} ") for name in [e["card"]["name"] for e in ranked(list(entries.values()))]]
    assert order == sorted(order)
    assert "## Submitting a model" in readme  # the hand-written documentation is kept


def test_baselines_skip_what_is_on_the_board(board, tmp_path):
    root = copy_board(board, tmp_path)
    before = snapshot(root)
    zoo = tmp_path / "zoo"
    (zoo / "again").mkdir(parents=True)
    (zoo / "again" / "model.onnx").write_bytes((root / "models" / f"{ZOO_ID}.onnx").read_bytes())
    (zoo / "again" / "card.yaml").write_text(CARD.read_text().replace("Example PilotNet", "Tiny PilotNet"))
    result = baselines(BaselinesConfig(zoo=zoo, **options(root, tmp_path / "work")))
    assert result == {"added": [], "already_present": ["teacher", "straight", ZOO_ID], "rejected": {}}
    assert snapshot(root) == before  # the rebuild of an unchanged board changes no byte


# ------------------------------------------------------------------------------------------------
# The rejection matrix: one message each, and nothing on the board changes
# ------------------------------------------------------------------------------------------------


def _not_onnx(d: Path, files) -> tuple[Path, Path, dict]:
    (d / "model.onnx").write_text("These are my weights, honest.\n")
    return d / "model.onnx", CARD, {}


def _pickle(d: Path, files) -> tuple[Path, Path, dict]:
    (d / "model.onnx").write_bytes(pickle.dumps({"weights": _Exploit(str(d / "UNPICKLED"))}, protocol=4))
    return d / "model.onnx", CARD, {}


def _truncated(d: Path, files) -> tuple[Path, Path, dict]:
    data = files["pilotnet"].read_bytes()
    (d / "model.onnx").write_bytes(data[: len(data) // 2])
    return d / "model.onnx", CARD, {}


def _wrong_input_shape(d: Path, files) -> tuple[Path, Path, dict]:
    return tiny_graph(d / "model.onnx", frames_dims=("batch", 3, 66, 200)), CARD, {}


def _nan_output(d: Path, files) -> tuple[Path, Path, dict]:
    return tiny_graph(d / "model.onnx", scale=float("nan")), CARD, {}


def _card_missing_fields(d: Path, files) -> tuple[Path, Path, dict]:
    return files["pilotnet"], DATA / "card-missing-fields.yaml", {}


def _duplicate_name(d: Path, files) -> tuple[Path, Path, dict]:
    card = CARD.read_text().replace("name: Example PilotNet (untrained)", "name: tiny pilotnet - UNTRAINED")
    (d / "card.yaml").write_text(card)
    return files["pilotnet"], d / "card.yaml", {}


def _oversized(d: Path, files) -> tuple[Path, Path, dict]:
    return files["pilotnet"], CARD, {"max_model_mb": 0.5}


REJECTIONS = {
    "not-onnx": (_not_onnx, "rejected: the model file is not an ONNX model (it cannot be parsed as an ONNX "
                            "protobuf). Export the network with torch.onnx.export"),
    "pickle-renamed-onnx": (_pickle, "rejected: the model file is a Python pickle (for example torch.save output), "
                                     "not an ONNX model; pickles are never loaded because loading one runs code."),
    "truncated": (_truncated, "rejected: the model file is truncated or corrupted: it starts like an ONNX model but "
                              "cannot be parsed as one. Submit the complete file again"),
    "wrong-input-shape": (_wrong_input_shape, "rejected: the input 'frames' has shape (N, 3, 66, 200); it must be "
                                              "(N, 66, 200, 3), a batch of 66x200 RGB frames with channels last "
                                              "(channels first: permute them inside the model"),
    "nan-output": (_nan_output, "rejected: the model's output 'curvature' is NaN or infinite on test frames (batch "
                                "of 1, step 1). Make every output finite"),
    "card-missing-fields": (_card_missing_fields, "rejected: the model card is missing the fields method, training, "
                                                  "label_budget, env_steps, licence, code. Add them"),
    "duplicate-name": (_duplicate_name, f"rejected: an entry named '{ZOO_NAME}' is already on the leaderboard "
                                        f"(entries/{ZOO_ID}.json). Choose another name in the model card"),
    "oversized": (_oversized, "rejected: the model file is 1.0 MB, over the 0.5 MB limit. Make the model smaller"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_rejection_matrix(case, board, files, tmp_path):
    make, expected = REJECTIONS[case]
    model, card, extra = make(tmp_path, files)
    before = snapshot(board)
    with pytest.raises(Rejected) as info:
        submit(SubmitConfig(model=model, card=card, **options(board, tmp_path / "work", **extra)))
    message = str(info.value)
    assert message.startswith(expected), message
    assert "\n" not in message and message.count("rejected:") == 1
    assert snapshot(board) == before  # no entry, no model file, README and index.html unchanged
    assert not (tmp_path / "UNPICKLED").exists()  # the pickle was recognised, never loaded


def _reject(board: Path, tmp_path: Path, model: Path, card: Path = CARD, **extra) -> str:
    before = snapshot(board)
    with pytest.raises(Rejected) as info:
        submit(SubmitConfig(model=model, card=card, **options(board, tmp_path / "work", **extra)))
    assert snapshot(board) == before
    return str(info.value)


def test_more_rejections_of_the_file(board, files, tmp_path):
    cases = {
        "custom-domain": (tiny_graph(tmp_path / "a.onnx", custom_domain=True),
                          "rejected: the model imports the operator set of domain 'com.example'"),
        "external-data": (tiny_graph(tmp_path / "b.onnx", external=True),
                          "rejected: the model keeps the tensor 'scale' in an external data file"),
        "old-opset": (tiny_graph(tmp_path / "c.onnx", opset=11),
                      "rejected: the model uses opset 11; the leaderboard accepts opsets 13 to 23"),
        "fixed-batch": (tiny_graph(tmp_path / "d.onnx", frames_dims=(1, 66, 200, 3)),
                        "rejected: the input 'frames' has a fixed batch size of 1; the batch dimension must be "
                        "dynamic"),
        "float-frames": (tiny_graph(tmp_path / "e.onnx", frames_type=TensorProto.FLOAT),
                         "rejected: the input 'frames' has element type float; it must be uint8"),
    }
    import torch

    torch.save({"weights": torch.zeros(3)}, tmp_path / "f.onnx")
    cases["torch-checkpoint"] = (tmp_path / "f.onnx", "rejected: the model file is a zip archive (for example a "
                                                      "torch.save checkpoint), not an ONNX model")
    for name, (model, expected) in cases.items():
        message = _reject(board, tmp_path, model)
        assert message.startswith(expected), (name, message)


def test_more_rejections_of_the_card(board, files, tmp_path):
    good = CARD.read_text().replace("name: Example PilotNet (untrained)", "name: Another model")
    cases = {
        "licence spelled license": (good.replace("licence:", "license:"),
                                    "rejected: the model card has the unknown field 'license' (did you mean "
                                    "'licence'?)"),
        "trained on a test seed": (good.replace('"procedural:0-99"', '"procedural:999990-1000002"'),
                                   "rejected: the card says the model was trained on the held-out test track "
                                   "procedural:1000000"),
        "reserved name": (good.replace("name: Another model", "name: Teacher"),
                          "rejected: the name 'Teacher' is reserved for a reference policy"),
        "authors not a list": (good.replace("authors: [SteerBench tests]", "authors: SteerBench tests"),
                               "rejected: the card's authors must be a list of 1 to 50 names"),
        "negative budget": (good.replace("label_budget: 0", "label_budget: -5"),
                            "rejected: the card's label_budget must be a whole number >= 0"),
        "not YAML": ("name: [unclosed\n", "rejected: the model card card.yaml is not valid YAML"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / "card.yaml").write_text(text)
        message = _reject(board, tmp_path, files["pilotnet"], tmp_path / "card.yaml")
        assert message.startswith(expected), (name, message)
    assert validate_card(json.loads((DATA / "card.json").read_text()))["label_budget"] == 12000


def test_a_hanging_model_is_rejected_at_its_time_limit(board, tmp_path):
    model = tiny_graph(tmp_path / "loop.onnx", loop=True)
    start = time.monotonic()
    message = _reject(board, tmp_path, model, check_time_limit_s=4.0)
    assert message.startswith("rejected: the model did not finish a test inference on 3 frames within 4 s")
    assert time.monotonic() - start < 15


def test_a_model_hanging_in_the_evaluation_is_rejected_at_its_time_limit(board, tmp_path):
    # It answers on the smoke test's batches of 1 and 3 frames, and never on the protocol's groups of 2.
    model = tiny_graph(tmp_path / "hang2.onnx", hang_at_batch=2)
    start = time.monotonic()
    message = _reject(board, tmp_path, model, time_limit_s=6.0)
    assert message == ("rejected: the evaluation did not finish within its time limit of 6 s. Make inference faster "
                       "(one batch of up to 8 frames per step, single-threaded on the CPU)")
    assert time.monotonic() - start < 30


def test_nan_during_the_evaluation_is_rejected_with_the_reason(board, tmp_path):
    # Finite on the smoke test's batches of 1 and 3 frames, NaN on the protocol's groups of 2.
    model = tiny_graph(tmp_path / "nan2.onnx", nan_at_batch=2)
    message = _reject(board, tmp_path, model)
    assert message == ("rejected: the model produced invalid output in 6 of 6 evaluation episodes (policy returned "
                       "a non-finite curvature (NaN or inf)). Make it return one finite curvature per frame for every "
                       "input, then submit again")


def test_running_out_of_memory_in_the_evaluation_is_rejected(board, files, tmp_path):
    # The sandboxed check (onnx + onnxruntime) fits in 1.5 GiB of address space, an evaluation
    # worker (torch + the simulator) does not.
    message = _reject(board, tmp_path, files["pilotnet"], memory_limit_mb=1536)
    assert message.startswith("rejected: the model crashed or ran out of memory during the evaluation ("), message
    assert "memory limit 1536 MiB per process). Check that it runs" in message


def test_the_sandbox_reports_crashes_hangs_and_memory():
    with pytest.raises(IsolationError) as info:
        run_isolated(os.abort, time_limit_s=30)
    assert info.value.kind == CRASHED and "SIGABRT" in info.value.detail
    with pytest.raises(IsolationError) as info:
        run_isolated(time.sleep, (60,), time_limit_s=2)
    assert info.value.kind == TIMEOUT
    with pytest.raises(IsolationError) as info:
        run_isolated(bytearray, (8 * 1024**3,), time_limit_s=30, memory_limit_mb=1024)
    assert info.value.kind == MEMORY
    assert run_isolated(sum, ([1, 2, 3],), time_limit_s=30) == 6


def test_recurrent_and_gaussian_models_pass_the_checks(tmp_path):
    gru = pilotnet_onnx(tmp_path / "gru.onnx", arch="pilotnet-gru", gru_hidden=16)
    _, info = check_model_file(gru, ModelLimits())
    assert info["recurrent"] is True and info["state_size"] == 16
    assert info["outputs"] == ["curvature", "state_out"]
    gaussian = pilotnet_onnx(tmp_path / "gaussian.onnx", head="gaussian")
    _, info = check_model_file(gaussian, ModelLimits())
    assert info["recurrent"] is False and info["outputs"] == ["curvature", "log_std"]
    assert "conditional" not in info  # the description of every model without a command is as before


def test_a_command_conditioned_model_passes_and_a_bad_command_input_is_rejected(tmp_path):
    import torch

    conditional = pilotnet_onnx(tmp_path / "command.onnx", arch="pilotnet-command")
    _, info = check_model_file(conditional, ModelLimits())
    assert info["conditional"] is True and info["inputs"]["command"] == {"dtype": "int64", "shape": "(N,)"}

    class FloatCommand(torch.nn.Module):  # the command as a float: refused, with what to fix
        def forward(self, frames, command):
            return frames.float().mean(dim=(1, 2, 3)).unsqueeze(1) * 0.0 + command.unsqueeze(1) * 0.01

    path = tmp_path / "float-command.onnx"
    torch.onnx.export(FloatCommand(), (torch.zeros(2, 66, 200, 3, dtype=torch.uint8), torch.zeros(2)), str(path),
                      dynamo=False, opset_version=17, input_names=["frames", "command"], output_names=["curvature"],
                      dynamic_axes={"frames": {0: "batch"}, "command": {0: "batch"}, "curvature": {0: "batch"}})
    with pytest.raises(Rejected, match="the input 'command' is float of shape"):
        check_model_file(path, ModelLimits())


def test_the_readme_export_example_makes_a_valid_submission(tmp_path, monkeypatch):
    text = (ROOT / "leaderboard" / "README.md").read_text()
    code = re.search(r"<!-- example: export -->\n```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "leaderboard/README.md", "exec"), {"__name__": "readme_example"})
    _, info = check_model_file(tmp_path / "my-model.onnx", ModelLimits())
    assert info["inputs"]["frames"] == {"dtype": "uint8", "shape": "(N, 66, 200, 3)"}


# ------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leaderboard", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_cli_rejection_is_one_line_and_status_1(board, tmp_path):
    before = snapshot(board)
    (tmp_path / "model.onnx").write_bytes(pickle.dumps({"state_dict": [1, 2, 3]}))
    done = _cli("submit", "--model", str(tmp_path / "model.onnx"), "--card", str(CARD), "--root", str(board),
                "--protocol", str(TINY), "--work-dir", str(tmp_path / "work"), "--no-progress")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "rejected: the model file is a Python pickle (for example torch.save output), not an ONNX model; pickles are "
        "never loaded because loading one runs code. Export the network with torch.onnx.export as shown in "
        "leaderboard/README.md"]
    assert snapshot(board) == before


def test_cli_build_is_deterministic(board, tmp_path):
    root = copy_board(board, tmp_path)
    before = snapshot(root)
    (root / "index.html").unlink()
    done = _cli("build", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ranking"] == ["teacher", "straight", ZOO_ID]
    assert snapshot(root) == before


# ------------------------------------------------------------------------------------------------
# Ranking
# ------------------------------------------------------------------------------------------------


def _synthetic(entry_id: str, survival: tuple[float, float], offset: float, autonomy: float | None,
               date: str) -> dict:
    interval = {"mean": offset, "ci_low": None, "ci_high": None, "iqm": None, "n": 2}
    conditions = {name: {"crash": {"episodes": 2, "invalid": 0, "horizons": [10, 30], "survival": [1.0, s],
                                   "cumulative_cost": [1.0, 3.0], "mean_abs_offset_m": interval}}
                  for name, s in zip(("nominal", "perturbed"), survival)}
    if autonomy is not None:
        conditions["nominal"]["intervention"] = {"episodes": 2, "invalid": 0, "autonomy_pct": autonomy}
    metrics = {"episodes": 4, "invalid": 0, "invalid_reasons": [], "conditions": conditions}
    return {"id": entry_id, "date": date, "metrics": metrics}


def test_ranking_formula_and_tie_breaks():
    entries = [
        _synthetic("f-lowest", (0.0, 0.5), 0.1, 99.0, "2026-01-01"),
        _synthetic("e-later", (1.0, 0.5), 0.2, 50.0, "2026-03-01"),
        _synthetic("d-earlier", (1.0, 0.5), 0.2, 50.0, "2026-02-01"),
        _synthetic("c-no-autonomy", (1.0, 0.5), 0.2, None, "2026-01-01"),
        _synthetic("b-autonomy", (1.0, 0.5), 0.2, 80.0, "2026-04-01"),
        _synthetic("a-offset", (0.5, 1.0), 0.1, 0.0, "2026-05-01"),
        _synthetic("g-best", (1.0, 1.0), 0.9, 0.0, "2026-06-01"),
    ]
    assert score_of(entries[0]["metrics"])["value"] == 0.25  # mean of S(T_max) over the crash conditions
    assert [e["id"] for e in ranked(entries)] == [
        "g-best",         # highest score
        "a-offset",       # score 0.75, lowest nominal offset
        "b-autonomy",     # score 0.75, offset 0.2, highest autonomy
        "d-earlier",      # same autonomy: the earlier date
        "e-later",
        "c-no-autonomy",  # no autonomy comes after those with one
        "f-lowest",
    ]


def test_differences_are_exact_and_named():
    stored = {"a": [1.0, 0.5], "b": {"c": float("nan")}, "d": 3}
    assert differences(stored, {"a": [1.0, 0.5], "b": {"c": float("nan")}, "d": 3.0}) == []
    assert differences(stored, {"a": [1.0, 0.5000001], "b": {"c": float("nan")}, "d": 3}, path="m") == [
        "m.a[1]: stored 0.5, now 0.5000001"]
    assert differences(stored, {"a": [1.0, 0.5000001], "b": {"c": float("nan")}, "d": 3}, rtol=1e-6) == []


# ------------------------------------------------------------------------------------------------
# verify
# ------------------------------------------------------------------------------------------------


def _edit_entry(root: Path, entry_id: str, edit) -> None:
    path = root / "entries" / f"{entry_id}.json"
    entry = json.loads(path.read_text())
    edit(entry)
    path.write_text(json.dumps(entry, indent=2))


def test_verify_reproduces_every_entry_and_flags_a_tampered_metric(board, tmp_path, capsys):
    root = copy_board(board, tmp_path)

    def tamper(entry):  # a metric outside the score: only a fresh evaluation can tell
        entry["metrics"]["conditions"]["nominal"]["crash"]["mean_abs_heading_rad"]["mean"] += 0.01

    _edit_entry(root, ZOO_ID, tamper)
    args = ["verify", "--root", str(root), "--protocol", str(TINY), "--workers", "1", "--no-drift-reference",
            "--no-progress", "--work-dir", str(tmp_path / "work")]
    assert leaderboard_main(args) == 1
    out = capsys.readouterr().out
    assert re.search(r"^OK +teacher: metrics reproduce exactly$", out, re.M)
    assert re.search(r"^OK +straight: metrics reproduce exactly$", out, re.M)
    assert re.search(rf"^MISMATCH +{ZOO_ID}: 1 metric\(s\) differ from a fresh evaluation$", out, re.M)
    assert "metrics.conditions.nominal.crash.mean_abs_heading_rad.mean: stored" in out
    assert out.rstrip().endswith("3 entries checked, 1 with problems")
    # On Ray (a local cluster that verify starts and stops): one task per entry, the zoo model evaluated in the
    # sandbox of the node that runs it, and the same report, line for line (two entries: one round on 2 CPUs).
    assert leaderboard_main([*args[:-1], str(tmp_path / "work-ray"), "--backend", "ray",
                             "--entries", "teacher", ZOO_ID]) == 1
    ray_out = capsys.readouterr().out
    assert _report_blocks(ray_out) == {k: v for k, v in _report_blocks(out).items() if k != "straight"}
    assert ray_out.rstrip().endswith("2 entries checked, 1 with problems")


def _report_blocks(text: str) -> dict[str, str]:
    """verify's report by entry id: each entry's line with its indented details (the summary line left out)."""
    return {re.match(r"\S+ +([^:]+):", b).group(1): b for b in re.split(r"\n(?=\S)", text.strip())[:-1]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_verify_on_ray_errors_and_references(board, tmp_path, monkeypatch, capsys):
    root = copy_board(board, tmp_path)
    args = ["verify", "--root", str(root), "--protocol", str(TINY), "--no-reevaluate", "--backend", "ray"]
    nowhere = f"127.0.0.1:{_free_port()}"
    assert leaderboard_main([*args, "--address", nowhere]) == 1
    assert capsys.readouterr().err.startswith(f"error: no Ray cluster answers at {nowhere} (Connection refused)")
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the optional extra is not installed
    assert leaderboard_main(args) == 1
    assert capsys.readouterr().err.startswith("error: --backend ray needs Ray, which is not installed here")
    # The drift references a local run would evaluate on its way are evaluated first, once, where missing.
    monkeypatch.chdir(tmp_path)
    entries = load_entries(root)
    for entry in entries:
        entry["evaluation"]["drift_reference"] = True
    config = VerifyConfig(backend="ray", **{**options(root, tmp_path / "work"), "group_size": 4})
    jobs = _reference_jobs(entries, config)
    assert [(j.fn.__name__, j.args) for j in jobs] == [("reference_job", ("teacher", str(TINY), "full", 1, 8))]
    assert _reference_jobs(entries, replace(config, reevaluate=False)) == []


def test_verify_on_ray_never_evaluates_a_submission_outside_the_sandbox(board, tmp_path, monkeypatch):
    """On a node where bubblewrap cannot be found (here: the cluster started with a PATH without it) the
    submitted model's entry is an ERROR, as in a local run there: its check does not go on without the sandbox."""
    root = copy_board(board, tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    config = VerifyConfig(backend="ray", entries=(ZOO_ID,), **options(root, tmp_path / "work"))
    result = verify(config)["entries"]
    assert result[ZOO_ID]["status"] == "ERROR"
    assert "the sandbox for untrusted models cannot be created on this machine: bubblewrap (bwrap) is not " \
        "installed" in result[ZOO_ID]["details"][0]
    assert verify(replace(config, backend="local"))["entries"] == result


def test_verify_flags_a_changed_model_file_and_an_edited_score(board, tmp_path):
    root = copy_board(board, tmp_path)
    config = VerifyConfig(reevaluate=False, **options(root, tmp_path / "work"))
    assert {k: r["status"] for k, r in verify(config)["entries"].items()} == {
        "straight": OK, "teacher": OK, ZOO_ID: OK}
    model = root / "models" / f"{ZOO_ID}.onnx"
    model.write_bytes(model.read_bytes() + b"\0")

    def edit(entry):  # better survival than measured: the stored score no longer follows
        entry["metrics"]["conditions"]["nominal"]["crash"]["survival"][-1] = 1.0

    _edit_entry(root, "straight", edit)
    result = verify(config)
    assert not result["ok"]
    assert result["entries"]["teacher"]["status"] == OK
    assert result["entries"][ZOO_ID]["status"] == TAMPERED
    assert "has sha256" in result["entries"][ZOO_ID]["details"][0]
    assert result["entries"]["straight"]["status"] == TAMPERED
    assert "stored score does not follow from the stored metrics" in result["entries"]["straight"]["details"][0]
    # Under another protocol file every entry is a mismatch.
    other = tmp_path / "other.yaml"
    other.write_text(TINY.read_text().replace("seed: 7", "seed: 8"))
    result = verify(VerifyConfig(reevaluate=False, entries=("teacher",), **{**options(root, tmp_path / "w"),
                                                                           "protocol": str(other)}))
    assert result["entries"]["teacher"]["status"] == MISMATCH
    # A changed clip is flagged, and the page no longer shows it.
    root = copy_board(board, tmp_path / "again")
    clip = root / "clips" / "straight.webp"
    clip.write_bytes(clip.read_bytes()[:-1])
    result = verify(VerifyConfig(reevaluate=False, entries=("straight",), **options(root, tmp_path / "work")))
    assert result["entries"]["straight"]["status"] == TAMPERED
    assert result["entries"]["straight"]["details"][0].startswith("clips/straight.webp has sha256")
    assert leaderboard_main(["build", "--root", str(root)]) == 0
    page = (root / "index.html").read_text()
    assert 'src="clips/straight.webp"' not in page and "clips/straight.webp is missing or is not the entry" in page


# ------------------------------------------------------------------------------------------------
# The page, in headless Chromium
# ------------------------------------------------------------------------------------------------


def find_chromium() -> str:
    for name in (os.environ.get("STEERBENCH_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    reason = ("headless Chromium is needed for the page test: install Debian's chromium package "
              "(apt-get install chromium) or set STEERBENCH_CHROMIUM to the browser")
    if os.environ.get("STEERBENCH_ALLOW_NO_BROWSER") == "1":
        pytest.skip(reason + " (skipped: STEERBENCH_ALLOW_NO_BROWSER=1)")
    pytest.fail(reason + "; STEERBENCH_ALLOW_NO_BROWSER=1 skips this test instead")


class Chromium:
    """Headless Chromium driven through the DevTools protocol over a pipe (--remote-debugging-pipe):
    JSON messages separated by NUL bytes on file descriptors 3 (commands) and 4 (replies)."""

    def __init__(self, binary: str, profile: Path):
        commands_r, self._commands = os.pipe()
        self._replies, replies_w = os.pipe()

        def child_fds():  # runs in the child before exec: the pipe ends become fds 3 and 4
            a, b = os.dup(commands_r), os.dup(replies_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                "--window-size=1400,900", f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(args, pass_fds=(3, 4), preexec_fn=child_fds, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(commands_r)
        os.close(replies_w)
        self._buffer = b""
        self._id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable", session=True)

    def _read(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = False, timeout: float = 30) -> dict:
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._read(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) in the middle of the element."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView(); "
                      "const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1}, session=True)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._commands)
        os.close(self._replies)


ROWS = "Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.dataset.id)"


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def test_the_page_loads_shows_every_entry_and_sorts(chromium, board, tmp_path):
    html_text = (board / "index.html").read_text()
    # Self-contained: no external scripts, styles, fonts or images.
    assert not re.search(r"<script[^>]+src=|<link\b|@import|(?<![a-z])url\(|@font-face", html_text, re.I)
    entries = {e["id"]: e for e in load_entries(board)}
    ranking = [e["id"] for e in ranked(list(entries.values()))]
    score = {i: entries[i]["score"]["value"] for i in entries}
    # The page breaks ties of the sorted column by rank.
    score_asc = sorted(entries, key=lambda i: (score[i], ranking.index(i)))
    score_desc = sorted(entries, key=lambda i: (-score[i], ranking.index(i)))
    assert score_asc != ranking  # the teacher, first, has the highest score
    by_name = sorted(entries, key=lambda i: entries[i]["card"]["name"].lower())
    url = (board / "index.html").resolve().as_uri()
    browser = Chromium(chromium, Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path)))
    try:
        browser.open(url)
        assert browser.js("document.body.dataset.ready") == "1"  # the script ran to its end
        assert browser.js(ROWS) == ranking
        text = browser.js("document.body.innerText")
        for entry in entries.values():
            assert entry["card"]["name"] in text
            assert browser.js(f"document.querySelectorAll('#entry-{entry['id']} svg').length") == 2
        # Every clip beside its plots has loaded (the load event waits for images).
        clips = browser.js("Array.from(document.querySelectorAll('section.entry .plots img.clip')).map(i => "
                           "[i.closest('section').dataset.id, i.getAttribute('src'), i.complete, i.naturalWidth])")
        with_clips = sorted(i for i, e in entries.items() if e["clip"])
        assert with_clips and sorted(c[0] for c in clips) == with_clips
        assert all(src == f"clips/{i}.webp" and done and width == 400 for i, src, done, width in clips), clips
        # A sorted view from the URL (query or hash).
        browser.open(url + "?sort=score&dir=asc")
        assert browser.js(ROWS) == score_asc
        assert browser.js("document.getElementById('board').dataset.sortKey") == "score"
        browser.open(url + "#sort=score&dir=desc")
        assert browser.js(ROWS) == score_desc
        # Clicking a header sorts by it; clicking again reverses; the URL keeps the state.
        browser.click("th[data-key=name] button")
        assert browser.js(ROWS) == by_name
        assert browser.js("location.hash") == "#sort=name&dir=asc"
        browser.click("th[data-key=name] button")
        assert browser.js(ROWS) == by_name[::-1]
        assert browser.js("document.querySelector('th[data-key=name]').getAttribute('aria-sort')") == "descending"
        browser.click("th[data-key=rank] button")
        assert browser.js(ROWS) == ranking
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"
                  or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))]
        assert errors == []
        requested = [e["params"]["request"]["url"] for e in browser.events
                     if e.get("method") == "Network.requestWillBeSent"]
        assert all(u.startswith(("file:", "data:", "about:")) for u in requested), requested
    finally:
        browser.close()
