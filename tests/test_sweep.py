"""Evaluation sweeps (benchmark/evaluation/sweep.py) on the local backend and on Ray (a local cluster of 2
CPUs, started for this module), and the backends' errors (benchmark/evaluation/backends.py).

The sweeps run on the tiny version-2 protocol (4 held-out tracks and a seen one, 120 steps), where a
learner's drift metrics need two references (the teacher's and straight-ahead's), with one worker per
evaluation so that the cluster runs two at once.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from benchmark.__main__ import main as benchmark_main
from benchmark.common.config import ConfigError
from benchmark.evaluation.backends import BackendError, Job, connect
from benchmark.evaluation.sweep import SweepConfig, SweepError, plan, read_index, sweep

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "tests" / "data" / "protocol-tiny.yaml")
TINY_V2 = str(ROOT / "tests" / "data" / "protocol-tiny-v2.yaml")


def _records(folder: Path) -> list[str]:
    """records.jsonl's lines in key order (groups are appended as they finish, in any order)."""
    lines = (folder / "records.jsonl").read_text().splitlines()
    return [lines[0], *sorted(lines[1:])]


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())["metrics"]


def test_plan_lays_out_one_folder_per_evaluation_and_refuses_what_does_not_exist(tmp_path, untrained_model):
    config = SweepConfig(models=("teacher", f"pilot={untrained_model}"),
                         conditions=("nominal", "perturbed+photometric"), protocols=(TINY,), out=tmp_path / "sweep")
    planned = plan(config)
    assert [(p.name, p.label) for p in planned] == [("teacher", "nominal"), ("teacher", "perturbed+photometric"),
                                                   ("pilot", "nominal"), ("pilot", "perturbed+photometric")]
    assert planned[3].out == tmp_path / "sweep" / "steerbench-tiny" / "quick" / "pilot" / "perturbed+photometric"
    assert planned[3].config.conditions == ("perturbed", "photometric")
    assert planned[3].config.policy == str(untrained_model) and planned[3].config.workers == 2
    assert plan(SweepConfig(models=("straight",), protocols=(TINY,), out=tmp_path))[0].out.name == "all"
    with pytest.raises(SweepError, match="unknown condition 'snow'"):
        plan(SweepConfig(conditions=("snow",), protocols=(TINY,)))
    with pytest.raises(SweepError, match="condition 'traffic' has no episodes in steerbench-tiny's quick profile"):
        plan(SweepConfig(conditions=("nominal+traffic",), protocols=(TINY,)))
    with pytest.raises(SweepError, match="share the folder"):
        plan(SweepConfig(models=("straight", "teacher", "straight"), protocols=(TINY,)))
    with pytest.raises(SweepError, match="no such ONNX file"):
        plan(SweepConfig(models=(str(tmp_path / "missing.onnx"),), protocols=(TINY,)))
    with pytest.raises(ConfigError, match="it needs --backend ray"):
        SweepConfig(address="127.0.0.1:6379")


def test_a_sweep_on_ray_gives_the_records_and_results_of_the_local_backend(tmp_path, monkeypatch, ray_cluster,
                                                                           untrained_model):
    monkeypatch.chdir(tmp_path)  # the drift references go under ./results
    models = ("straight", f"pilot={untrained_model}")
    common = {"protocols": (TINY_V2,), "workers": 1, "progress": False}
    start = time.monotonic()
    on_ray = sweep(SweepConfig(backend="ray", models=models, out=Path("ray"), **common))
    ray_s = time.monotonic() - start
    assert on_ray["done"] == 2 and on_ray["failed"] == 0
    assert on_ray["references"] == ["results/steerbench-tiny-v2/quick/teacher",
                                    "results/steerbench-tiny-v2/quick/straight"]
    start = time.monotonic()
    local = sweep(SweepConfig(backend="local", models=("teacher", *models), out=Path("local"), **common))
    local_s = time.monotonic() - start
    assert local["done"] == 3 and local["references"] == []  # evaluated by the Ray sweep, read here
    print(f"ray: 2 references, 2 evaluations {ray_s:.1f} s; local: 3 evaluations {local_s:.1f} s")
    for name in ("straight", "pilot"):
        a = Path("ray/steerbench-tiny-v2/quick") / name / "all"
        b = Path("local/steerbench-tiny-v2/quick") / name / "all"
        assert _records(a) == _records(b), name
        assert _metrics(a) == _metrics(b), name
    # The references made on Ray are what a local evaluation of the same policy records.
    for name in ("teacher", "straight"):
        assert _records(Path("results/steerbench-tiny-v2/quick") / name) == \
            _records(Path("local/steerbench-tiny-v2/quick") / name / "all")
    assert _metrics(Path("ray/steerbench-tiny-v2/quick/pilot/all"))["conditions"]["disturbed"]["paired"]["drift"]
    rows = read_index(Path("ray/index.csv"))
    assert [(r["role"], r["name"], r["status"]) for r in rows] == [
        ("reference", "teacher", "done"), ("reference", "straight", "done"),
        ("evaluation", "straight", "done"), ("evaluation", "pilot", "done")]
    assert all(r["host"] == socket.gethostname() and float(r["seconds"]) > 0 for r in rows)
    pilot = rows[-1]
    assert pilot["out"] == "ray/steerbench-tiny-v2/quick/pilot/all" and pilot["episodes"] == "9"
    assert pilot["disturbed_crashes"].endswith("/4")
    assert not list(Path("ray").glob(".steerbench-shared-*")) and not list(Path("results").glob(".steerbench-*"))
    # Resumable: a second run skips every complete evaluation (and starts no cluster for nothing).
    again = sweep(SweepConfig(backend="ray", models=models, out=Path("ray"), **common))
    assert (again["done"], again["skipped"]) == (0, 2)
    assert [r["status"] for r in read_index(Path("ray/index.csv"))] == ["skipped"] * 2
    assert read_index(Path("ray/index.csv"))[1]["seconds"] == pilot["seconds"]  # where and how long it ran, kept


def test_an_interrupted_evaluation_resumes_and_failures_are_reported(tmp_path, monkeypatch, ray_cluster):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    config = SweepConfig(models=("straight", f"broken={bad}"), protocols=(TINY,), conditions=("nominal",), workers=1,
                         drift_reference=False, progress=False, backend="ray", out=Path("out"))
    with pytest.raises(SweepError, match=r"1 evaluation\(s\) failed \(see out/index.csv\): out/steerbench-tiny/quick/"
                                         r"broken/nominal: "):
        sweep(config)
    rows = {r["name"]: r for r in read_index(Path("out/index.csv"))}
    assert rows["straight"]["status"] == "done" and rows["broken"]["status"] == "failed" and rows["broken"]["error"]
    # A half-written records file (a killed run): the missing groups are evaluated, the results are the same.
    folder = Path("out/steerbench-tiny/quick/straight/nominal")
    whole, metrics = _records(folder), _metrics(folder)
    lines = (folder / "records.jsonl").read_text().splitlines()
    (folder / "records.jsonl").write_text("\n".join(lines[:3]) + "\n")
    (folder / "results.json").unlink()
    with pytest.raises(SweepError):
        sweep(config)
    assert read_index(Path("out/index.csv"))[0]["status"] == "done"
    assert _records(folder) == whole and _metrics(folder) == metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_clear_errors_without_ray_and_for_an_address_where_no_cluster_answers(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["sweep", "--models", "straight", "--protocols", TINY, "--conditions", "nominal", "--workers", "1",
            "--no-drift-reference", "--no-progress", "--out", "out", "--backend", "ray"]
    nowhere = f"127.0.0.1:{_free_port()}"
    start = time.monotonic()
    assert benchmark_main([*args, "--address", nowhere]) == 1
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"error: no Ray cluster answers at {nowhere} (Connection refused): start one there with `ray start --head`" \
        in err and "Traceback" not in err
    with pytest.raises(BackendError, match="bad Ray address 'ray://head:10001'"), connect("ray", "ray://head:10001"):
        pass
    monkeypatch.setitem(sys.modules, "ray", None)  # as where the optional extra is not installed
    assert benchmark_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --backend ray needs Ray, which is not installed here") and "make ray" in err
    assert not Path("out/steerbench-tiny").exists()  # nothing was evaluated
    # The local backend needs no Ray.
    assert benchmark_main([*args[:-2]]) == 0
    assert json.loads(capsys.readouterr().out)["done"] == 1


def test_the_local_backend_runs_jobs_in_order_and_reports_their_errors():
    with connect("local") as runner:
        outcomes = list(runner.run([Job(int, ("7",)), Job(int, ("x",)), Job(abs, (-2,))]))
    assert [o.value for o in outcomes] == [7, None, 2]
    assert outcomes[1].error == "ValueError: invalid literal for int() with base 10: 'x'"
    assert all(o.host == socket.gethostname() for o in outcomes)
    with pytest.raises(BackendError, match="it needs --backend ray"), connect("local", "127.0.0.1:6379"):
        pass
