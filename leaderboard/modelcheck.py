"""Validation of a submitted ONNX file, before the evaluation runs.

`check_model_file` reads the file's bytes (after checking its size) and hands a copy of them to the
sandbox (leaderboard.sandbox: bubblewrap, no network, another user, limits) that

1. recognises files that are not ONNX at all by their first bytes (a pickle, a zip archive such as a
   torch.save checkpoint, a safetensors file) -- recognised, never loaded;
2. parses the bytes as an ONNX protobuf (onnx.ModelProto.ParseFromString: data only, no code);
3. refuses external data (every tensor, in subgraphs and attributes too, must be embedded) and
   model-local functions;
4. requires the standard operator set (domain '' / 'ai.onnx') at an opset in [min_opset, max_opset],
   no other domain, and every node a standard operator that exists at that opset;
5. runs onnx.checker.check_model(full_check=True);
6. checks the signature: input frames uint8 (N, 66, 200, 3) with a dynamic batch N (plus state_in
   float32 (N, H) for recurrent models, and command int64 (N,) for conditional ones: envs.forks'
   0 follow, 1 left, 2 right); outputs curvature float32 (N, 1), optionally log_std
   float32 (N, 1), and state_out float32 (N, H) exactly when there is a state_in;
7. smoke-tests the model in onnxruntime (CPU, one thread): three steps on batches of 1 and 3 random
   frames (state carried from step to step; commands drawn from 0..2); every output must have its
   declared shape and be finite.

Each failure is a `Rejected` with one line saying what is wrong and what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.common.files import sha256_bytes

from .common import DOCS, Rejected
from .sandbox import CRASHED, MEMORY, TIMEOUT, IsolationError, SandboxUnavailable, run_isolated

FRAME_SHAPE = (66, 200, 3)
INPUTS = ("frames", "state_in", "command")
OUTPUTS = ("curvature", "log_std", "state_out")
EXPORT_HINT = f"Export the network with torch.onnx.export as shown in {DOCS}"
SMOKE_BATCHES = (1, 3)
SMOKE_STEPS = 3
MAX_METADATA_CHARS = 256
"""Longest producer name, producer version or domain of a model (they are shown on the page)."""


@dataclass(frozen=True)
class ModelLimits:
    """What a submitted model may be."""

    max_model_mb: float = 50.0
    """Largest accepted ONNX file [MB, 10^6 bytes]."""
    min_opset: int = 13
    """Oldest accepted opset of the standard ONNX domain."""
    max_opset: int = 23
    """Newest accepted opset of the standard ONNX domain."""


def check_model_file(path: str | Path, limits: ModelLimits, *, memory_limit_mb: int = 0,
                     time_limit_s: float = 60.0, unsafe: bool = False) -> tuple[bytes, dict[str, Any]]:
    """Validate the ONNX file at `path` (in the sandbox); returns its bytes and a description.

    The description: sha256, bytes, ir_version, opset, producer, recurrent, state_size, inputs,
    outputs, and conditional: true for a model with a command input. Raises Rejected.
    """
    path = Path(path)
    if not path.is_file():
        raise Rejected(f"there is no model file at {path}", "Pass --model with the path of your .onnx file")
    size = path.stat().st_size
    if size == 0:
        raise Rejected("the model file is empty", "Submit the complete .onnx file")
    max_bytes = int(limits.max_model_mb * 1e6)
    if size > max_bytes:
        raise Rejected(f"the model file is {size / 1e6:.1f} MB, over the {limits.max_model_mb:g} MB limit",
                       "Make the model smaller (fewer parameters, or float16 weights) and export it again")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew between stat and read
        raise Rejected(f"the model file is over the {limits.max_model_mb:g} MB limit",
                       "Make the model smaller and export it again")
    with tempfile.TemporaryDirectory(prefix="steerbench-check-") as staging:
        staged = Path(staging) / "model.onnx"  # the sandbox sees exactly these bytes, and nothing else of ours
        staged.write_bytes(data)
        os.chmod(staging, 0o755)
        os.chmod(staged, 0o644)
        try:
            outcome = run_isolated(inspect_model, (str(staged), dataclasses.asdict(limits)), time_limit_s=time_limit_s,
                                   memory_limit_mb=memory_limit_mb, readable=[Path(staging)], unsafe=unsafe)
        except SandboxUnavailable as exc:
            raise exc.rejection() from None
        except IsolationError as exc:
            if exc.kind == TIMEOUT:
                raise Rejected(f"the model did not finish a test inference on {max(SMOKE_BATCHES)} frames within "
                               f"{time_limit_s:g} s (it hangs or is far too slow)",
                               "Make inference fast: the whole evaluation has a time limit too") from None
            if exc.kind == MEMORY:
                raise Rejected(f"the model ran out of memory (limit {memory_limit_mb} MB) in a test inference "
                               f"({exc.detail})", "Reduce the memory the model needs") from None
            if exc.kind == CRASHED:
                raise Rejected(f"the model crashed onnxruntime in a test inference ({exc.detail})",
                               "Check that it runs with onnxruntime on the CPU before submitting") from None
            raise Rejected(f"the model could not be checked ({exc.detail})",
                           "Check that it loads with onnx and runs with onnxruntime before submitting") from None
    if not isinstance(outcome, dict) or not ("rejected" in outcome or "info" in outcome):
        raise Rejected("the model check returned no verdict", "Check that the model loads with onnx")
    if "rejected" in outcome:
        problem, fix = outcome["rejected"]
        raise Rejected(problem, fix)
    return data, outcome["info"]


def inspect_model(path: str, limits: dict[str, Any]) -> dict[str, Any]:
    """Sandbox side: static checks, then the smoke inference. Returns {'info': ...} or
    {'rejected': [problem, fix]} (JSON data: the answer leaves the sandbox as JSON)."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        info = static_check(data, ModelLimits(**limits))
        smoke_test(data, info)
    except Rejected as exc:
        return {"rejected": [exc.problem, exc.fix]}
    return {"info": info}


# ------------------------------------------------------------------------------------------------
# Static checks
# ------------------------------------------------------------------------------------------------


def sniff(data: bytes) -> None:
    """Recognise common files that are not ONNX by their first bytes; they are never loaded."""
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        raise Rejected("the model file is a Python pickle (for example torch.save output), not an ONNX model; "
                       "pickles are never loaded because loading one runs code", EXPORT_HINT)
    if data[:4] == b"PK\x03\x04":
        raise Rejected("the model file is a zip archive (for example a torch.save checkpoint), not an ONNX model",
                       EXPORT_HINT)
    if len(data) > 9 and data[8:10] in (b'{"', b"{'") and int.from_bytes(data[:8], "little") < len(data):
        raise Rejected("the model file is a safetensors weights file, not an ONNX model", EXPORT_HINT)


def parse_model(data: bytes):
    """The ONNX ModelProto of `data` (protobuf parsing only)."""
    import onnx
    from google.protobuf.message import DecodeError

    sniff(data)
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        # Serialised ONNX models start with field 1 (ir_version, a varint): tag byte 0x08.
        if data[:1] == b"\x08":
            raise Rejected("the model file is truncated or corrupted: it starts like an ONNX model but cannot be "
                           "parsed as one", "Submit the complete file again (compare its size and sha256 with "
                           "the file you exported)") from None
        raise Rejected("the model file is not an ONNX model (it cannot be parsed as an ONNX protobuf)",
                       EXPORT_HINT) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.output:
        raise Rejected("the model file is not an ONNX model (it holds no ir_version or no graph with outputs)",
                       EXPORT_HINT)
    return model


def _subgraphs(graph):
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _subgraphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _subgraphs(g)


def _tensors(graph):
    for g in _subgraphs(graph):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("sparse_tensor"):
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices


def static_check(data: bytes, limits: ModelLimits) -> dict[str, Any]:
    """Every check but the inference; returns the model's description. Raises Rejected."""
    import onnx

    model = parse_model(data)
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise Rejected(f"the model keeps the tensor '{tensor.name}' in an external data file; only "
                           "self-contained files are accepted",
                           "Export with the weights inside the file: torch.onnx.export(..., external_data=False), "
                           "or onnx.save_model(onnx.load(path), path, save_as_external_data=False)")
    if len(model.functions):
        names = ", ".join(sorted({f.name for f in model.functions}))
        raise Rejected(f"the model defines local functions ({names}); only standard ONNX operators are accepted",
                       "Inline them (onnx.inliner.inline_local_functions) or export without custom functions")
    if len(model.training_info):
        raise Rejected("the model carries training_info (training graphs, which are not checked or used)",
                       "Submit an inference-only model: export it in eval mode, without training graphs")
    for field in ("producer_name", "producer_version", "domain"):
        if len(getattr(model, field)) > MAX_METADATA_CHARS:
            raise Rejected(f"the model's {field} is {len(getattr(model, field)):,} characters long (at most "
                           f"{MAX_METADATA_CHARS})", "Export with a short producer name and version")
    domains = [item.domain or "ai.onnx" for item in model.opset_import]
    if len(domains) != len(set(domains)):
        repeated = sorted({d for d in domains if domains.count(d) > 1})
        raise Rejected(f"the model imports the operator set of {', '.join(repeated)} more than once",
                       "Declare each operator set once (one opset_import entry per domain)")
    opset = None
    for item in model.opset_import:
        domain = item.domain or "ai.onnx"
        if domain != "ai.onnx":
            raise Rejected(f"the model imports the operator set of domain '{item.domain}'; only the standard ONNX "
                           "operators (domain ai.onnx) are accepted",
                           "Export without custom or contrib operators (for example no com.microsoft fusions)")
        opset = int(item.version)
    allowed = f"opsets {limits.min_opset} to {limits.max_opset}"
    if opset is None:
        raise Rejected("the model declares no standard ONNX opset", f"Export with an opset_version in {allowed}")
    if not limits.min_opset <= opset <= limits.max_opset:
        raise Rejected(f"the model uses opset {opset}; the leaderboard accepts {allowed}",
                       "Export with torch.onnx.export(..., opset_version=17)")
    for graph in _subgraphs(model.graph):
        for node in graph.node:
            label = f"node '{node.name}'" if node.name else "a node"
            if node.domain not in ("", "ai.onnx"):
                raise Rejected(f"{label} uses the operator '{node.op_type}' of domain '{node.domain}', which is not "
                               "a standard ONNX operator", "Export with standard ONNX operators only")
            if not onnx.defs.has(node.op_type):
                raise Rejected(f"{label} uses '{node.op_type}', which is not a standard ONNX operator",
                               "Export with standard ONNX operators only")
            try:
                onnx.defs.get_schema(node.op_type, opset, "")
            except onnx.defs.SchemaError:
                raise Rejected(f"{label} uses '{node.op_type}', which does not exist in opset {opset}",
                               "Export with an opset that has every operator you use") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, ...
        raise Rejected(f"onnx.checker finds the model invalid ({exc})", "Fix the graph and export it again") from None
    return {
        "sha256": sha256_bytes(data),
        "bytes": len(data),
        "ir_version": int(model.ir_version),
        "opset": opset,
        "producer": " ".join(f"{model.producer_name} {model.producer_version}".split()),
        **check_signature(model),
    }


def _describe(value_info) -> tuple[str, list[int | str | None]] | None:
    """(element type name, dims) of a tensor value, dims as int, symbolic name or None."""
    import onnx

    t = value_info.type
    if not t.HasField("tensor_type"):
        return None
    tt = t.tensor_type
    elem = onnx.TensorProto.DataType.Name(tt.elem_type) if tt.elem_type else "undefined"
    if not tt.HasField("shape"):
        return elem.lower(), None  # type: ignore[return-value]
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return elem.lower(), dims


def _shape_text(dims) -> str:
    if dims is None:
        return "no shape"
    return "(" + ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in dims) + ")"


def _fixed(d) -> bool:
    return isinstance(d, int)


def check_signature(model) -> dict[str, Any]:
    """The input and output signature of the graph. Raises Rejected."""
    graph = model.graph
    weights = {t.name for t in graph.initializer} | {t.values.name for t in graph.sparse_initializer}
    inputs = {i.name: i for i in graph.input if i.name not in weights}
    outputs = {o.name: o for o in graph.output}
    io_fix = ("Name them with torch.onnx.export(..., input_names=['frames'], output_names=['curvature']) "
              "(recurrent: input_names=['frames', 'state_in'], output_names=['curvature', 'state_out'])")
    if "frames" not in inputs or set(inputs) - set(INPUTS):
        raise Rejected(f"the model's inputs are {', '.join(repr(n) for n in inputs) or 'none'}; expected 'frames' "
                       "(and 'state_in' for recurrent models, 'command' for conditional ones)", io_fix)
    if "curvature" not in outputs:
        raise Rejected(f"the model has no output 'curvature' (its outputs are {', '.join(map(repr, outputs))})",
                       io_fix)
    extra = [n for n in outputs if n not in OUTPUTS]
    if extra:
        raise Rejected(f"the model has the unexpected output '{extra[0]}'; allowed outputs are curvature, log_std "
                       "and state_out", io_fix)
    frames = _describe(inputs["frames"])
    if frames is None:
        raise Rejected("the input 'frames' is not a tensor", "Make it a uint8 tensor of shape (N, 66, 200, 3)")
    elem, dims = frames
    if elem != "uint8":
        raise Rejected(f"the input 'frames' has element type {elem}; it must be uint8 (raw RGB values 0-255)",
                       "Take uint8 frames and convert and normalise them inside the model")
    if dims is None or len(dims) != 4 or tuple(dims[1:]) != FRAME_SHAPE:
        hint = ""
        if dims is not None and len(dims) == 4 and tuple(dims[1:]) == (3, 66, 200):
            hint = " (channels first: permute them inside the model, frames.permute(0, 3, 1, 2))"
        raise Rejected(f"the input 'frames' has shape {_shape_text(dims)}; it must be (N, 66, 200, 3), a batch of "
                       f"66x200 RGB frames with channels last{hint}",
                       "Export with a (N, 66, 200, 3) uint8 example input")
    if _fixed(dims[0]):
        raise Rejected(f"the input 'frames' has a fixed batch size of {dims[0]}; the batch dimension must be dynamic",
                       "Export with dynamic_axes={'frames': {0: 'batch'}, 'curvature': {0: 'batch'}}")
    described = {"frames": {"dtype": elem, "shape": _shape_text(dims)}}
    for name in OUTPUTS:
        if name not in outputs:
            continue
        d = _describe(outputs[name])
        if d is None or d[0] != "float":
            raise Rejected(f"the output '{name}' is {d[0] if d else 'not a tensor'}; it must be float32",
                           "Cast it to float32 inside the model")
        out_dims = d[1]
        if out_dims is not None and (len(out_dims) != 2 or (_fixed(out_dims[0]) and out_dims[0] != 1)
                                     or (name != "state_out" and _fixed(out_dims[1]) and out_dims[1] != 1)):
            raise Rejected(f"the output '{name}' has shape {_shape_text(out_dims)}; it must be (N, "
                           f"{'H' if name == 'state_out' else 1})", "Reshape it to (N, 1): one value per frame")
    recurrent = "state_in" in inputs
    state_size = None
    if recurrent != ("state_out" in outputs):
        have, lack = ("state_in", "state_out") if recurrent else ("state_out", "state_in")
        raise Rejected(f"the model has the {'input' if recurrent else 'output'} '{have}' but no "
                       f"{'output' if recurrent else 'input'} '{lack}'",
                       "A recurrent model takes state_in (N, H) and returns state_out (N, H), both float32")
    if recurrent:
        s_in, s_out = _describe(inputs["state_in"]), _describe(outputs["state_out"])
        if s_in is None or s_in[0] != "float" or s_in[1] is None or len(s_in[1]) != 2 or not _fixed(s_in[1][1]) \
                or s_in[1][1] <= 0 or _fixed(s_in[1][0]):
            raise Rejected(f"the input 'state_in' is {s_in[0] if s_in else 'not a tensor'} of shape "
                           f"{_shape_text(s_in[1] if s_in else None)}; it must be float32 (N, H) with a dynamic "
                           "batch N and a fixed state size H",
                           "Export with dynamic_axes={'state_in': {0: 'batch'}, 'state_out': {0: 'batch'}}")
        state_size = int(s_in[1][1])
        if s_out is not None and s_out[1] is not None and _fixed(s_out[1][1]) and s_out[1][1] != state_size:
            raise Rejected(f"the output 'state_out' has {s_out[1][1]} state values per frame and 'state_in' "
                           f"{state_size}", "Return the new state with the same size as the state input")
        described["state_in"] = {"dtype": "float32", "shape": f"(N, {state_size})"}
    conditional = "command" in inputs
    if conditional:
        c = _describe(inputs["command"])
        if c is None or c[0] != "int64" or c[1] is None or len(c[1]) != 1 or _fixed(c[1][0]):
            raise Rejected(f"the input 'command' is {c[0] if c else 'not a tensor'} of shape "
                           f"{_shape_text(c[1] if c else None)}; it must be int64 (N,), one command per frame "
                           "(0 follow, 1 left, 2 right) with a dynamic batch N",
                           "Export with an int64 (N,) example command and dynamic_axes={'command': {0: 'batch'}}")
        described["command"] = {"dtype": "int64", "shape": "(N,)"}
    out = {"recurrent": recurrent, "state_size": state_size, "inputs": described,
           "outputs": [n for n in OUTPUTS if n in outputs]}
    if conditional:  # only then: the description of every other model is as before
        out["conditional"] = True
    return out


# ------------------------------------------------------------------------------------------------
# Smoke inference
# ------------------------------------------------------------------------------------------------


def smoke_test(data: bytes, info: dict[str, Any]) -> None:
    """Run the model in onnxruntime on a few random frames; every output must be finite and of the
    right shape. Raises Rejected."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    ort.set_default_logger_severity(3)
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise Rejected(f"onnxruntime {ort.__version__} cannot load the model ({exc})",
                       "Check that the model loads with onnxruntime on the CPU before submitting") from None
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(0)
    for n in SMOKE_BATCHES:
        state = np.zeros((n, info["state_size"]), np.float32) if info["recurrent"] else None
        for step in range(SMOKE_STEPS):
            frames = rng.integers(0, 256, (n, *FRAME_SHAPE), dtype=np.uint8)
            feeds = {"frames": frames}
            if state is not None:
                feeds["state_in"] = state
            if info.get("conditional"):
                feeds["command"] = rng.integers(0, 3, n).astype(np.int64)
            try:
                result = dict(zip(names, session.run(None, feeds)))
            except Exception as exc:
                raise Rejected(f"onnxruntime fails to run the model on a batch of {n} frames ({exc})",
                               "Check that the model runs with onnxruntime on the CPU before submitting") from None
            for name in names:
                value = np.asarray(result[name])
                expected = (n, info["state_size"]) if name == "state_out" else (n, 1)
                if value.shape != expected:
                    raise Rejected(f"for a batch of {n} frames the model returns '{name}' of shape {value.shape}; "
                                   f"it must be {expected}", "Return one value per frame, shape (N, 1)")
                if not np.isfinite(value).all():
                    raise Rejected(f"the model's output '{name}' is NaN or infinite on test frames (batch of {n}, "
                                   f"step {step + 1})", "Make every output finite for any input frame (look for NaN "
                                   "weights, divisions by zero, log or sqrt of values <= 0)")
            if state is not None:
                state = np.asarray(result["state_out"], np.float32)
