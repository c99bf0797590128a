"""Attacks on the leaderboard and the data paths, each with its exact outcome.

Cards that blow up or inject text, concurrent writers, records files that lie, data files that
point outside their folder: every case is rejected with its message (or made harmless), the
leaderboard is unchanged, and nothing is written outside the work folder.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from benchmark.common.files import LockedError, create_exclusive, exclusive_lock
from benchmark.common.numerics import PORTABLE_ENV
from benchmark.data.dataset import Dataset, DatasetError
from benchmark.evaluation.records import read_records
from leaderboard.card import MAX_CARD_BYTES, load_card
from leaderboard.common import Rejected
from leaderboard.escape import html, markdown, printable_line
from leaderboard.publish import END, build_pages, readme_text

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "tests" / "data" / "leaderboard" / "card.yaml"


def _card(tmp_path: Path, text: str, name: str = "card.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------
# Model cards
# ------------------------------------------------------------------------------------------------

ALIAS_BOMB = """name: bomb
authors: [x]
method: m
training: {tracks: [oval], seeds: [0]}
label_budget: 0
env_steps: 0
licence: MIT
code: x
extra:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_an_alias_bomb_card_is_rejected_before_it_expands(tmp_path):
    assert len(ALIAS_BOMB) < 700
    with pytest.raises(Rejected, match=r"not valid YAML .*anchors \(&name\) are not allowed"):
        load_card(_card(tmp_path, ALIAS_BOMB))


def test_a_single_alias_is_refused_too(tmp_path):
    text = CARD.read_text() + "extra: {a: &x 1, b: *x}\n"
    with pytest.raises(Rejected, match="anchors"):
        load_card(_card(tmp_path, text))


def test_an_oversized_card_is_rejected_by_its_size(tmp_path):
    text = CARD.read_text() + "description: " + "x" * (MAX_CARD_BYTES + 10) + "\n"
    with pytest.raises(Rejected, match=f"over the {MAX_CARD_BYTES:,}-byte limit"):
        load_card(_card(tmp_path, text))


def test_extra_is_bounded_in_size_and_depth(tmp_path):
    wide = CARD.read_text() + "extra: {" + ", ".join(f"k{i}: {'v' * 300}" for i in range(80)) + "}\n"
    with pytest.raises(Rejected, match="extra is larger than 16,384 bytes"):
        load_card(_card(tmp_path, wide))
    deep = CARD.read_text() + "extra: " + "{a: " * 12 + "1" + "}" * 12 + "\n"
    with pytest.raises(Rejected, match="nested deeper than 8 levels"):
        load_card(_card(tmp_path, deep))


def test_a_name_with_a_trailing_newline_is_rejected(tmp_path):
    card = json.loads(json.dumps(__import__("yaml").safe_load(CARD.read_text())))
    card["name"] = "Fine name\n"
    with pytest.raises(Rejected, match="is not allowed"):
        load_card(_card(tmp_path, json.dumps(card), "card.json"))


def test_text_fields_become_one_printable_line(tmp_path):
    import yaml

    card = yaml.safe_load(CARD.read_text())
    card["authors"] = ["Eve\r\n| injected | row |", "\x1b[31mred\x1b[0m"]
    card["method"] = "line one\nline two\x07"
    loaded = load_card(_card(tmp_path, json.dumps(card), "card.json"))
    assert loaded["authors"] == ["Eve | injected | row |", "red"]
    assert loaded["method"] == "line one line two"


def test_rejection_messages_carry_no_control_characters(tmp_path):
    import yaml

    card = yaml.safe_load(CARD.read_text())
    card["\x1b[2J\x1b[Hlicense"] = "MIT"
    with pytest.raises(Rejected) as exc:
        load_card(_card(tmp_path, json.dumps(card), "card.json"))
    assert "\x1b" not in str(exc.value) and "unknown field 'license' (did you mean 'licence'?)" in str(exc.value)


def test_escaping_for_markdown_and_html():
    evil = '<img src=x onerror=alert(1)> [x](javascript:alert(1)) a|b\r\n<!-- END LEADERBOARD -->'
    md = markdown(evil)
    assert "\n" not in md and "\r" not in md
    assert not re.search(r"(?<!\\)[<>\[\]|&`*_]", md)  # every character Markdown would interpret is escaped
    assert html(evil).startswith("&lt;img") and "<" not in html(evil) and '"' not in html('"')
    assert printable_line("a\x00b\x1b[1mc\u200bd") == "abcd"


# ------------------------------------------------------------------------------------------------
# The generated README section
# ------------------------------------------------------------------------------------------------


def _board_with_author(board_dir: Path, author: str) -> None:
    entries = board_dir / "entries"
    entries.mkdir(parents=True, exist_ok=True)
    for p in (ROOT / "leaderboard" / "entries").glob("*.json"):
        entry = json.loads(p.read_text())
        if entry["id"] == "bc":
            entry["card"]["authors"] = [author]
        (entries / p.name).write_text(json.dumps(entry))
    shutil.copy(ROOT / "leaderboard" / "README.md", board_dir / "README.md")


@pytest.mark.parametrize("author", [
    "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "Eve\r| x | y |",
    "Mallory <!-- END LEADERBOARD -->",
])
def test_injections_through_authors_stay_text_and_rebuilds_are_stable(tmp_path, author):
    _board_with_author(tmp_path, author)
    hand_written = (ROOT / "leaderboard" / "README.md").read_text().split("<!-- BEGIN LEADERBOARD")[0]
    build_pages(tmp_path)
    first = (tmp_path / "README.md").read_text()
    build_pages(tmp_path)
    build_pages(tmp_path)
    assert (tmp_path / "README.md").read_text() == first  # no growth or corruption at every rebuild
    assert first.startswith(hand_written) and first.count(END) == 1
    assert not re.search(r"(?<!\\)<img|(?<!\\)\]\(javascript", first)
    section = first.split("<!-- BEGIN LEADERBOARD")[1]
    # the ranking and (on a version-2 board) the track families: no extra row, no extra column
    tables = [list(rows) for is_row, rows in itertools.groupby(section.splitlines(), lambda s: s.startswith("|"))
              if is_row]
    entries = len(list((tmp_path / "entries").glob("*.json")))
    assert tables and all(len(table) == 2 + entries for table in tables)  # header, rule, one row an entry
    for table in tables:
        assert len({line.count("|") - line.count("\\|") for line in table}) == 1
    assert "<img" not in (tmp_path / "index.html").read_text().split("<script")[0].replace("&lt;img", "")


def test_a_marker_inside_the_text_is_not_a_marker(tmp_path):
    text = "# Board\n\nA line that mentions <!-- END LEADERBOARD --> in passing.\n\n" \
           "<!-- BEGIN LEADERBOARD: x -->\nold\n<!-- END LEADERBOARD -->\ntail\n"
    (tmp_path / "README.md").write_text(text)
    out = readme_text(tmp_path, [])
    assert out.startswith("# Board\n\nA line that mentions <!-- END LEADERBOARD --> in passing.\n\n")
    assert out.endswith("<!-- END LEADERBOARD -->\ntail\n") and "old" not in out


def test_concurrent_builds_both_succeed(tmp_path):
    _board_with_author(tmp_path, "A. Author")
    errors = []

    def build():
        try:
            for _ in range(3):
                build_pages(tmp_path)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------------------
# Writers
# ------------------------------------------------------------------------------------------------


def test_an_entry_is_created_exclusively(tmp_path):
    path = tmp_path / "entries" / "x.json"
    create_exclusive(path, b"first")
    with pytest.raises(FileExistsError):
        create_exclusive(path, b"second")
    assert path.read_bytes() == b"first" and sorted(p.name for p in path.parent.iterdir()) == ["x.json"]


def test_a_held_lock_refuses_a_second_writer(tmp_path):
    with exclusive_lock(tmp_path / ".lock", wait=False):
        with pytest.raises(LockedError, match="in use by another process"):
            with exclusive_lock(tmp_path / ".lock", wait=False):
                pass
    with exclusive_lock(tmp_path / ".lock", wait=False):  # released: free again
        pass


# ------------------------------------------------------------------------------------------------
# records.jsonl
# ------------------------------------------------------------------------------------------------


def _record(key: str) -> dict:
    track, condition, mode, index = key.split("|")
    return {"key": key, "group": "|".join(key.split("|")[:3]), "track": track, "condition": condition,
            "mode": mode, "index": int(index), "seed": 1, "effect": None, "status": "finished", "reason": None,
            "steps": 2, "failure_step": -1, "failure_type": None, "interventions": 0, "intervention_steps": [],
            "elapsed_s": 0.2, "distance_m": 2.0, "start_offset_m": 0.0, "start_heading_rad": 0.0,
            "d": [0.0, 0.1], "psi": [0.0, 0.0], "action": [0.0, 0.0], "teacher_action": [0.0, 0.0],
            "x": [0.0, 1.0], "y": [0.0, 0.0]}


META = {"_meta": {"protocol": "p", "protocol_sha256": "s", "profile": "quick",
                  "policy": {"kind": "teacher", "name": "teacher", "sha256": None}, "conditions": ["nominal"]}}


def _write(path: Path, items: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items))
    return path


def test_records_without_their_meta_line_are_not_trusted(tmp_path):
    read = read_records(_write(tmp_path / "r.jsonl", [_record("oval|nominal|crash|0")]))
    assert read.meta is None and read.records == []
    assert "does not start with its _meta line" in read.dropped[0]


@pytest.mark.parametrize("bad, why", [
    ("null", "not a JSON object"),
    (json.dumps({**_record("oval|nominal|crash|1"), "stauts": "finished"}), "unknown key 'stauts'"),
    ('{"key": "oval|nominal|crash|1"', "Expecting"),
    (json.dumps(META), "unknown key '_meta'"),
])
def test_the_first_malformed_record_ends_the_trusted_part(tmp_path, bad, why):
    path = _write(tmp_path / "r.jsonl", [META, _record("oval|nominal|crash|0"), bad, _record("oval|nominal|crash|2")])
    read = read_records(path)
    assert [r.key for r in read.records] == ["oval|nominal|crash|0"]
    assert len(read.dropped) == 1 and why in read.dropped[0] and "1 line(s) after it" in read.dropped[0]


@pytest.mark.parametrize("series, ok", [
    ([0.0, 1, None], True), ([], True),
    ([0.0, True], False), ([0.0, "1.0"], False), ([0.0, [1.0]], False), ([0.0, {"x": 1}], False),
])
def test_a_series_holds_numbers_and_nulls_only(tmp_path, series, ok):
    path = _write(tmp_path / "r.jsonl", [META, {**_record("oval|nominal|crash|0"), "d": series}])
    read = read_records(path)
    assert len(read.records) == int(ok)
    assert ok or "d has the wrong type" in read.dropped[0]


def test_duplicate_records_are_dropped_and_reported(tmp_path):
    path = _write(tmp_path / "r.jsonl", [META, _record("oval|nominal|crash|0"), _record("oval|nominal|crash|0")])
    read = read_records(path)
    assert len(read.records) == 1 and "a second record of oval|nominal|crash|0" in read.dropped[0]


# ------------------------------------------------------------------------------------------------
# Datasets
# ------------------------------------------------------------------------------------------------


def test_a_manifest_pointing_outside_its_folder_is_refused(small_dataset, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    np.save(tmp_path / "x.npy", np.zeros((1,), np.uint8))
    manifest["shards"][0]["frames"] = "../x.npy"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"shard file '\.\./x\.npy' is not a file of this directory"):
        Dataset.open(copy)


def test_a_corrupt_parquet_index_is_a_dataset_error(small_dataset, tmp_path):
    copy = tmp_path / "ds"
    shutil.copytree(small_dataset, copy)
    (copy / "shard-00000.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    with pytest.raises(DatasetError, match=r"shard-00000\.parquet: not a readable parquet index"):
        Dataset.open(copy, verify=False)


# ------------------------------------------------------------------------------------------------
# The sandbox
# ------------------------------------------------------------------------------------------------


def test_the_sandbox_has_no_network_no_home_and_writes_only_its_folder(tmp_path):
    from leaderboard.sandbox import NOBODY, boundary_report, run_isolated

    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o777)
    (tmp_path / "secret.txt").write_text("of the caller")
    outside = tmp_path / "outside.txt"
    report = run_isolated(boundary_report, ([str(ROOT / "escaped.txt"), str(outside), str(work / "ok.txt")],
                                            [str(Path.home()), str(tmp_path)]), time_limit_s=60, writable=work)
    assert report["uid"] == NOBODY
    assert report["network"].startswith("OSError") and "unreachable" in report["network"]
    python = Path(sys.base_prefix).resolve()
    home = report["listed"][str(Path.home())]  # of the home folder only the path to Python exists
    assert home == ([python.relative_to(Path.home()).parts[0]] if python.is_relative_to(Path.home()) else
                    "FileNotFoundError: No such file or directory")
    assert "secret.txt" not in report["listed"][str(tmp_path)]  # the caller's files are not there
    assert report["writes"][str(ROOT / "escaped.txt")] == "OSError: Read-only file system"
    assert report["writes"][str(work / "ok.txt")] == "written" and (work / "ok.txt").read_text() == "x"
    # what it wrote anywhere else went to its private /tmp, which is gone with it
    assert not (ROOT / "escaped.txt").exists() and not outside.exists()
    # the sandbox's environment only (PWD from bwrap, LC_CTYPE set by Python's own locale coercion, the portable
    # numerics set by `import benchmark` inside it)
    assert set(report["environment"]) <= {"PATH", "HOME", "SDL_VIDEODRIVER", "SDL_AUDIODRIVER", "PWD", "LC_CTYPE",
                                          "PYGAME_HIDE_SUPPORT_PROMPT", "PYTHONDONTWRITEBYTECODE", "OMP_NUM_THREADS",
                                          "MPLBACKEND", "PYTHONPATH", *PORTABLE_ENV}


def test_a_lower_hard_address_space_limit_is_respected_not_an_error(tmp_path):
    import subprocess
    import sys

    code = ("from leaderboard.sandbox import run_isolated; "
            "print(run_isolated(sum, ([1, 2],), time_limit_s=60, memory_limit_mb=16384))")
    out = subprocess.run(["bash", "-c", f"ulimit -v 12000000 && {sys.executable} -c '{code}'"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


def test_without_bubblewrap_a_submission_is_refused_unless_unsafe(tmp_path, monkeypatch):
    from leaderboard import sandbox
    from leaderboard.modelcheck import ModelLimits, check_model_file
    from models import build_model, export_onnx

    model = export_onnx(build_model({}), tmp_path / "m.onnx")
    monkeypatch.setattr(sandbox, "sandbox_problem", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(Rejected, match="the sandbox for untrusted models cannot be created on this machine: "
                                       "bubblewrap .bwrap. is not installed. Install bubblewrap"):
        check_model_file(model, ModelLimits())
    data, info = check_model_file(model, ModelLimits(), unsafe=True)  # the operator's explicit choice
    assert info["opset"] == 17 and len(data) == info["bytes"]


# ------------------------------------------------------------------------------------------------
# Evaluations into one folder, and resuming from records that lie
# ------------------------------------------------------------------------------------------------

TINY = str(ROOT / "tests" / "data" / "protocol-tiny.yaml")


def test_a_second_evaluation_into_a_folder_in_use_fails_at_once(tmp_path):
    from benchmark.evaluation.evaluate import EvaluateConfig, FolderInUse, evaluate

    out = tmp_path / "r"
    with exclusive_lock(out / ".lock", wait=False):
        with pytest.raises(FolderInUse, match="is in use by another process"):
            evaluate(EvaluateConfig(policy="straight", protocol=TINY, conditions=("nominal",), out=out,
                                    drift_reference=False, progress=False, workers=1))
    assert not (out / "records.jsonl").exists()


def test_records_without_meta_do_not_count_for_another_policy(tmp_path, capsys):
    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate

    kwargs = dict(protocol=TINY, conditions=("nominal",), drift_reference=False, progress=False, workers=1)
    teacher = evaluate(EvaluateConfig(policy="teacher", out=tmp_path / "t", **kwargs))
    assert teacher.metrics.crash("nominal").final_survival == 1.0
    out = tmp_path / "s"
    out.mkdir()
    lines = (tmp_path / "t" / "records.jsonl").read_text().splitlines()[1:]  # the teacher's, without _meta
    (out / "records.jsonl").write_text("\n".join(lines) + "\n")
    straight = evaluate(EvaluateConfig(policy="straight", out=out, **kwargs))
    assert straight.metrics.crash("nominal").final_survival < 1.0  # its own episodes, not the teacher's
    assert "does not start with its _meta line" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# ONNX files
# ------------------------------------------------------------------------------------------------


def _graph_model(tmp_path: Path, edit=None, initializers: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("Cast", ["frames"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["m", "shape"], ["curvature"])]
    inits = [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1])]
    inits += [helper.make_tensor(f"unused{i}", TensorProto.FLOAT, [1], [0.0]) for i in range(initializers)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("frames", TensorProto.UINT8,
                                                                         ["N", 66, 200, 3])],
                              [helper.make_tensor_value_info("curvature", TensorProto.FLOAT, ["N", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    if edit:
        edit(model)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return path


def _training_info(model):
    from onnx import helper

    model.training_info.add().algorithm.CopyFrom(helper.make_graph([], "train", [], []))


@pytest.mark.parametrize("edit, message", [
    (_training_info, "the model carries training_info"),
    (lambda m: m.opset_import.append(__import__("onnx").helper.make_opsetid("", 17)),
     "imports the operator set of ai.onnx more than once"),
    (lambda m: setattr(m, "producer_name", "p" * 20_000), "producer_name is 20,000 characters long"),
])
def test_odd_onnx_files_are_rejected(tmp_path, edit, message):
    from leaderboard.modelcheck import ModelLimits, check_model_file

    with pytest.raises(Rejected, match=message):
        check_model_file(_graph_model(tmp_path, edit), ModelLimits())


def test_unused_initializers_do_not_flood_the_terminal(tmp_path, capfd):
    from benchmark.rollout.policies import OnnxPolicy

    policy = OnnxPolicy(_graph_model(tmp_path, initializers=20_000))
    policy.reset(1)
    assert policy.act(np.zeros((1, 66, 200, 3), np.uint8), np.array([0])).shape == (1,)
    captured = capfd.readouterr()
    assert len(captured.err) + len(captured.out) < 10_000


# ------------------------------------------------------------------------------------------------
# The Udacity sidecar
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update(steering_scale=float("nan")), "steering_scale must be a positive curvature"),
    (lambda s: s.update(steering_scale=-1e9), "steering_scale must be a positive curvature"),
    (lambda s: s.update(steering_scale="0.2"), "steering_scale must be a positive curvature"),
    (lambda s: s["episodes"][0].update(first_row=5), "episode run 0 is"),
    (lambda s: s.update(rows=s["rows"] + 1), "the episode runs cover"),
])
def test_a_bad_sidecar_is_refused_like_a_bad_option(small_dataset, tmp_path, edit, message):
    from benchmark.data.udacity import SIDECAR_NAME, ExportConfig, ImportConfig, UdacityError, run

    folder = tmp_path / "export"
    run(ExportConfig(data=small_dataset, out=folder, progress=False))
    sidecar = json.loads((folder / SIDECAR_NAME).read_text())
    edit(sidecar)
    (folder / SIDECAR_NAME).write_text(json.dumps(sidecar))
    with pytest.raises(UdacityError, match=message):
        run(ImportConfig(folder=folder, out=tmp_path / "back", progress=False))


# ------------------------------------------------------------------------------------------------
# Fuzzing: random and mutated inputs give the documented errors, never a crash
# ------------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    return bytes(out)


@FUZZ
@given(st.binary(max_size=2000) | st.text(max_size=2000).map(str.encode))
def test_the_card_parser_takes_any_bytes(tmp_path, data):
    path = tmp_path / "card.yaml"
    path.write_bytes(data)
    try:
        card = load_card(path)
    except Rejected as exc:
        assert str(exc).startswith("rejected: ") and "\n" not in str(exc)
    else:
        assert isinstance(card, dict) and set(card) >= {"name", "authors"}


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12), st.sampled_from(["yaml", "json"]))
def test_the_card_parser_takes_mutated_cards(tmp_path, edits, kind):
    import yaml

    text = CARD.read_text() if kind == "yaml" else json.dumps(yaml.safe_load(CARD.read_text()))
    path = tmp_path / f"card.{kind}"
    path.write_bytes(_mutate(text.encode(), edits))
    try:
        load_card(path)
    except Rejected as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
       st.lists(st.sampled_from(["", "null", "[]", "{}", '{"_meta": 1}', "x" * 50]), max_size=3))
def test_the_records_reader_takes_mutated_files(tmp_path, edits, extra_lines):
    items = [META, _record("oval|nominal|crash|0"), _record("oval|nominal|crash|1")]
    text = "".join(json.dumps(x) + "\n" for x in items)
    path = tmp_path / "r.jsonl"
    path.write_bytes(_mutate(text.encode(), edits) + "\n".join(extra_lines).encode())
    read = read_records(path)
    assert all(r.status in ("finished", "crashed", "invalid") for r in read.records)
    assert len({r.key for r in read.records}) == len(read.records)
    assert read.meta is not None or read.records == []


def test_the_sandbox_caps_its_processes(tmp_path):
    from leaderboard.sandbox import _Cgroup, boundary_report, run_isolated

    probe = _Cgroup(64, 4)
    probe.remove()
    if not probe.pids:
        pytest.fail("this machine lets SteerBench create no pids cgroup, so the process cap is not enforced")
    report = run_isolated(boundary_report, ([], [], 40), time_limit_s=60, processes=12)
    assert 0 < report["spawned"] < 12
