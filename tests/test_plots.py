"""Figures (benchmark/reporting/plots.py) and the results table (benchmark/reporting/summary.py) from synthetic results.

The results directories are built here: fake but consistent episode records for a teacher, a
behaviour-cloning-like learner whose offset grows until it leaves the road, and a DAgger-like one
with a constant small offset, turned into results.json by benchmark.evaluation.results.compute_results with
the real protocol, exactly as `benchmark evaluate` does. Nothing under results/ is needed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmark.common.cli import add_arguments, from_arguments
from benchmark.evaluation import results as results_module
from benchmark.evaluation.protocol import CONDITIONS, load_protocol
from benchmark.evaluation.records import EpisodeRecord
from benchmark.evaluation.results import compute_results
from benchmark.reporting import plots, summary

PROFILE = "quick"
TRACKS = ("racetrack", "procedural-1000000")
STEPS = 1000
# bc: offset slope per episode (m/step); it fails when |d| > 1.5 m (steps 375 and 750, the third survives)
BC_SLOPES = (0.004, 0.002, 0.001)
INTERVENTIONS = {"teacher": (0, 0, 0), "bc": (5, 8, 3), "dagger": (1, 0, 2)}


def _episode(method: str, track: str, condition: str, mode: str, k: int) -> dict:
    t = np.arange(STEPS, dtype=float)
    wiggle = np.sin(0.05 * t + k)
    if method == "teacher":
        d = 0.1 * wiggle
    elif method == "bc":
        d = BC_SLOPES[k] * t * (1 if k % 2 == 0 else -1) + 0.05 * wiggle
    else:
        d = 0.2 + 0.05 * wiggle
    psi = 0.02 * np.cos(0.05 * t + k)
    teacher_action = 0.01 * np.sin(0.01 * t)
    noise = {"teacher": 0.0, "bc": 0.02, "dagger": 0.005}[method]
    action = teacher_action + noise * np.cos(0.3 * t + k)
    fail = int(np.argmax(np.abs(d) > 1.5)) if mode == "crash" and np.any(np.abs(d) > 1.5) else -1
    n = fail + 1 if fail >= 0 else STEPS
    x = 50 + 40 * np.cos(2 * np.pi * t / 400) + d * np.cos(2 * np.pi * t / 400)
    y = -20 + 25 * np.sin(2 * np.pi * t / 400)
    key = f"{track}|{condition}|{mode}|{k}"
    inter = INTERVENTIONS[method][k] if mode == "intervention" else 0
    r = lambda a: [round(float(v), 5) for v in a[:n]]  # noqa: E731
    return {
        "key": key, "group": "|".join(key.split("|")[:3]), "track": track, "condition": condition, "mode": mode,
        "index": k, "seed": 1000 + k, "effect": None, "status": "crashed" if fail >= 0 else "finished",
        "reason": None, "steps": n, "failure_step": fail, "failure_type": "off_road" if fail >= 0 else None,
        "interventions": inter, "intervention_steps": list(range(0, 10 * inter, 10)), "elapsed_s": n / 10.0,
        "distance_m": n * 1.0, "start_offset_m": 0.0, "start_heading_rad": 0.0,
        "d": r(d), "psi": r(psi), "action": r(action), "teacher_action": r(teacher_action), "x": r(x), "y": r(y),
    }


def _records(method: str, intervention: bool = True) -> list[dict]:
    runs = [("nominal", "crash"), ("perturbed", "crash")] + ([("nominal", "intervention")] if intervention else [])
    return [_episode(method, tr, c, m, k) for tr in TRACKS for c, m in runs for k in range(3)]


def write_results(root: Path, method: str, records: list[dict], teacher: list[dict] | None) -> Path:
    """A results directory like `benchmark evaluate` writes: records.jsonl and results.json."""
    protocol = load_protocol("steerbench-v1")
    out = root / method
    out.mkdir(parents=True)
    meta = {"protocol": protocol.name, "protocol_sha256": protocol.sha256, "profile": PROFILE,
            "policy": {"kind": method if method == "teacher" else "torch", "name": method, "sha256": None},
            "conditions": sorted({r["condition"] for r in records})}
    (out / "records.jsonl").write_text("".join(json.dumps(x) + "\n" for x in [{"_meta": meta}, *records]))
    results = {
        "schema_version": 1,
        "protocol": {"name": protocol.name, "sha256": protocol.sha256, "profile": PROFILE,
                     "horizons": protocol.horizons(PROFILE)},
        "policy": meta["policy"], "git_sha": "test", "packages": {}, "hardware": {},
        "date": "2026-01-01T00:00:00+00:00",
        "records": str(out / "records.jsonl"),
        "metrics": compute_results([EpisodeRecord.from_json(r) for r in records], protocol, PROFILE,
                                   teacher and [EpisodeRecord.from_json(r) for r in teacher]).to_json(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return out


@pytest.fixture(scope="module")
def results_dirs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("results")
    teacher = _records("teacher")
    return [write_results(root, "teacher", teacher, None),
            write_results(root, "bc", _records("bc"), teacher),
            write_results(root, "dagger", _records("dagger"), teacher)]


@pytest.fixture(scope="module")
def plotted(results_dirs, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("figures")
    return plots.run(plots.PlotConfig(results=tuple(results_dirs), out=out)), out


def _check_png(path: Path) -> None:
    import matplotlib.image

    assert path.is_file() and path.stat().st_size > 20_000, f"{path} missing or tiny"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 600, img.shape
    rgb = (img[..., :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert rgb.std() > 10, f"{path} is (nearly) a single colour"
    assert len(np.unique(rgb[:: max(1, len(rgb) // 50_000)], axis=0)) > 30, f"{path} has too few colours"


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------


def test_plot_run_writes_every_figure_and_the_summary(plotted):
    result, out = plotted
    names = [Path(p).name for p in result["figures"]]
    assert names == [f"{n}.png" for n in plots.FIGURES]
    assert names == ["error_growth.png", "drift.png", "survival.png", "autonomy.png", "trajectories.png"]
    for p in result["figures"]:
        _check_png(Path(p))
    assert result["methods"] == ["teacher", "bc", "dagger"]
    text = Path(result["summary"]).read_text()
    assert Path(result["summary"]) == out / "summary.md"
    assert "steerbench-v1" in text and "quick" in text


def test_error_growth_legend_has_each_exponent_and_the_guides(results_dirs):
    fig = plots.error_growth_figure(results_dirs)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    for d in results_dirs:
        g = json.loads((d / "results.json").read_text())["metrics"]["conditions"]["nominal"]["crash"]["growth_exponent"]
        assert f"{d.name}: slope {g['exponent']:.2f} [{g['low']:.2f}, {g['high']:.2f}]" in texts
    assert any(t.startswith("∝ T ") for t in texts) and any(t.startswith("∝ T²") for t in texts)
    assert any("J(T) = T" in t for t in texts)
    # the learner whose offset grows linearly has the steeper cost growth than the constant-offset one
    exps = {d.name: json.loads((d / "results.json").read_text())["metrics"]["conditions"]["nominal"]["crash"]
            ["growth_exponent"]["exponent"] for d in results_dirs}
    assert exps["bc"] > exps["dagger"]


def test_colours_are_consistent_across_figures(results_dirs):
    loaded = results_module.load_results(results_dirs)
    colors = plots.method_colors(loaded)
    assert len(set(colors.values())) == 3
    import matplotlib.colors as mcolors

    fig = plots.survival_figure(results_dirs)
    lines = {ln.get_label(): mcolors.to_hex(ln.get_color()) for ln in fig.axes[0].get_lines()}
    drift = plots.drift_figure(results_dirs)
    dlines = {ln.get_label(): mcolors.to_hex(ln.get_color()) for ln in drift.axes[0].get_lines()}
    for label in ("bc", "dagger"):
        assert lines[label] == dlines[label] == mcolors.to_hex(colors[label])
    assert "teacher" not in dlines  # the teacher is the drift reference
    assert len(fig.axes) == 2  # nominal and perturbed panels


def test_figures_without_their_data_are_skipped_with_a_note(tmp_path, capsys):
    teacher = _records("teacher", intervention=False)
    only = write_results(tmp_path, "teacher", teacher, None)
    written = plots.plot_all([only], tmp_path / "fig", tracks=1)
    assert [p.name for p in written] == ["error_growth.png", "survival.png", "trajectories.png"]
    printed = capsys.readouterr().out
    assert "skipped drift.png" in printed and "drift" in printed
    assert "skipped autonomy.png: no intervention-mode episodes" in printed
    with pytest.raises(plots.MissingData):
        plots.autonomy_figure([only])
    with pytest.raises(results_module.ResultsError, match="no results for the 'traffic' condition"):
        plots.plot_all([only], tmp_path / "fig2", condition="traffic")


def test_trajectories_without_records_are_skipped(tmp_path, results_dirs, capsys):
    import shutil

    d = tmp_path / "dagger"
    d.mkdir()
    data = json.loads((results_dirs[2] / "results.json").read_text())
    data["records"] = str(tmp_path / "nowhere" / "records.jsonl")
    (d / "results.json").write_text(json.dumps(data))
    with pytest.raises(plots.MissingData, match="no records.jsonl"):
        plots.trajectories_figure([d])
    shutil.rmtree(d)


# ------------------------------------------------------------------------------------------------
# Summary table
# ------------------------------------------------------------------------------------------------


def test_summary_table_has_one_row_per_method_with_the_inputs_values(results_dirs):
    df = summary.summary_table(results_dirs)
    assert list(df.index) == ["teacher", "bc", "dagger"] and df.index.name == "method"
    expected = ["survival", "crash_rate", "crash_rate_low", "crash_rate_high", "mean_abs_offset_m",
                "teacher_disagreement", "growth_exponent", "growth_low", "growth_high", "drift_tv_final",
                "autonomy_pct", "autonomy_low", "autonomy_high", "survival_perturbed", "survival_photometric",
                "survival_traffic"]
    assert all(c in df.columns for c in expected)
    for c in expected:
        assert df[c].dtype.kind == "f", c
    # by construction: per track, bc fails in 2 of 3 episodes (|d| > 1.5 m at steps 375 and 750)
    assert df.loc["teacher", "survival"] == 1.0 and df.loc["dagger", "survival"] == 1.0
    assert df.loc["bc", "survival"] == pytest.approx(1 / 3)
    assert df.loc["bc", "crash_rate"] == pytest.approx(2 / 3)
    assert df.loc["bc", "crash_rate_low"] <= 2 / 3 <= df.loc["bc", "crash_rate_high"]
    # autonomy = 100 (1 - 6 s * n / elapsed): 100 s per episode, 6 episodes
    assert df.loc["bc", "autonomy_pct"] == pytest.approx(100 * (1 - 6 * 2 * 16 / 600))
    assert df.loc["dagger", "autonomy_pct"] == pytest.approx(100 * (1 - 6 * 2 * 3 / 600))
    assert df.loc["teacher", "autonomy_pct"] == 100.0
    assert math.isnan(df.loc["teacher", "drift_tv_final"]) and df.loc["bc", "drift_tv_final"] > 0
    assert df.loc["teacher", "teacher_disagreement"] == 0.0
    assert math.isnan(df.loc["bc", "survival_traffic"])  # not evaluated
    assert df.loc["dagger", "survival_perturbed"] == 1.0
    for d in results_dirs:
        crash = json.loads((d / "results.json").read_text())["metrics"]["conditions"]["nominal"]["crash"]
        row = df.loc[d.name]
        assert row["mean_abs_offset_m"] == pytest.approx(crash["mean_abs_offset_m"]["mean"])
        assert row["growth_exponent"] == pytest.approx(crash["growth_exponent"]["exponent"])
        assert row["growth_low"] == pytest.approx(crash["growth_exponent"]["low"])
        assert row["episodes"] == 6
    assert df.loc["dagger", "mean_abs_offset_m"] == pytest.approx(0.2, abs=0.01)


def test_write_summary_markdown(results_dirs, tmp_path):
    path = summary.write_summary(results_dirs, tmp_path / "sub" / "summary.md")
    text = path.read_text()
    assert text.startswith("# SteerBench results: steerbench-v1, quick profile")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 3  # header, separator, one row per method
    assert "crash rate [95% CI]" in table[0] and "growth exponent [95% CI]" in table[0]
    df = summary.summary_table(results_dirs)
    bc = next(line for line in table if line.startswith("| bc"))
    cr = df.loc["bc"]
    assert f"0.67 [{cr['crash_rate_low']:.2f}, {cr['crash_rate_high']:.2f}]" in bc
    assert f"{cr['autonomy_pct']:.1f} [" in bc
    teacher = next(line for line in table if line.startswith("| teacher"))
    assert "–" in teacher  # no drift for the teacher, no traffic condition evaluated


# ------------------------------------------------------------------------------------------------
# Loading and checks
# ------------------------------------------------------------------------------------------------


def _variant(src: Path, dst: Path, change) -> Path:
    dst.mkdir(parents=True)
    data = json.loads((src / "results.json").read_text())
    change(data)
    (dst / "results.json").write_text(json.dumps(data))
    return dst


def test_mixing_protocols_or_profiles_is_refused(results_dirs, tmp_path):
    full = _variant(results_dirs[1], tmp_path / "bc-full", lambda d: d["protocol"].update(profile="full"))
    with pytest.raises(results_module.ResultsError, match="different profiles") as exc:
        plots.plot_all([results_dirs[0], full], tmp_path / "fig")
    assert "quick" in str(exc.value) and "full" in str(exc.value) and "bc-full" in str(exc.value)
    other = _variant(results_dirs[1], tmp_path / "bc-v2", lambda d: d["protocol"].update(name="steerbench-v2"))
    with pytest.raises(results_module.ResultsError, match="different protocols.*steerbench-v2"):
        summary.summary_table([results_dirs[0], other])
    edited = _variant(results_dirs[1], tmp_path / "bc-edit", lambda d: d["protocol"].update(sha256="0" * 64))
    with pytest.raises(results_module.ResultsError, match="different versions of the protocol file"):
        summary.write_summary([results_dirs[0], edited], tmp_path / "s.md")


def test_unknown_schema_version_and_missing_files(results_dirs, tmp_path):
    v2 = _variant(results_dirs[0], tmp_path / "v2", lambda d: d.update(schema_version=3))
    with pytest.raises(results_module.ResultsError, match="unknown schema_version 3"):
        plots.plot_all([v2], tmp_path / "fig")
    with pytest.raises(results_module.ResultsError, match="unknown schema_version None"):
        results_module.load_results([_variant(results_dirs[0], tmp_path / "v0", lambda d: d.pop("schema_version"))])
    with pytest.raises(FileNotFoundError, match="no results.json"):
        results_module.load_results([tmp_path])
    with pytest.raises(FileNotFoundError, match="no such results"):
        results_module.load_results([tmp_path / "missing" / "results.json"])
    with pytest.raises(results_module.ResultsError, match="no results given"):
        results_module.load_results([])


def test_results_json_paths_and_duplicate_names(results_dirs, tmp_path):
    copy_dir = _variant(results_dirs[1], tmp_path / "bc-rerun", lambda d: None)
    loaded = results_module.load_results([results_dirs[1] / "results.json", copy_dir])
    assert [r.label for r in loaded] == ["bc (bc)", "bc (bc-rerun)"]
    df = summary.summary_table(loaded)
    assert list(df.index) == ["bc (bc)", "bc (bc-rerun)"]


def test_plot_config_from_the_command_line(results_dirs, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser, plots.PlotConfig)
    args = parser.parse_args(["--results", str(results_dirs[0]), str(results_dirs[1]), "--out", str(tmp_path),
                              "--condition", "perturbed", "--tracks", "1", "--no-summary"])
    config = from_arguments(plots.PlotConfig, args)
    assert config.results == (results_dirs[0], results_dirs[1]) and config.out == tmp_path
    assert config.condition == "perturbed" and config.tracks == 1 and config.summary is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", str(tmp_path)])  # --results is required
    help_text = " ".join(parser.format_help().split())
    assert "results.json" in help_text and "(default: nominal)" in help_text
    assert "{" + ",".join(CONDITIONS) + "}" in help_text and "{nominal,perturbed,photometric," in help_text
    with pytest.raises(ValueError, match="at least one"):
        plots.PlotConfig(results=())
    with pytest.raises(ValueError, match="unknown condition"):
        plots.PlotConfig(results=(tmp_path,), condition="rainy")
    assert copy.copy(config) == config


def test_compare_pairs_identical_episodes_with_mcnemar_and_a_paired_bootstrap(results_dirs):
    from benchmark.reporting.compare import CompareConfig, compare, markdown

    table = compare(CompareConfig(a=results_dirs[1], b=results_dirs[2]))  # bc against dagger
    nominal = table[table["condition"] == "nominal"].set_index("metric")
    crash = nominal.loc["crash rate by T=1000"]
    # bc fails in 2 of its 3 episodes on each of the 2 tracks, dagger never: b = 4, c = 0
    assert crash["episodes"] == 6 and crash["A"] == pytest.approx(4 / 6) and crash["B"] == 0.0
    assert crash["test"] == "McNemar exact (b=4, c=0)" and crash["p"] == pytest.approx(0.125)
    assert crash["verdict"] == "not separable at this sample"  # 6 pairs cannot show it at 5%
    offset = nominal.loc["mean abs offset (m)"]
    assert offset["A - B"] > 0 and offset["p"] < 0.05 and offset["verdict"] == "A > B"
    text = markdown(table)
    assert text.startswith("A = bc, B = dagger;") and "not separable at this sample" in text


def test_a_replayed_episode_reproduces_its_records_and_makes_a_video(tmp_path, monkeypatch):
    import imageio.v3 as iio
    from PIL import Image

    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.reporting.video import VideoConfig, replay, run

    monkeypatch.chdir(tmp_path)  # the teacher's records (for its path) go under ./results
    tiny = str(Path(__file__).resolve().parent / "data" / "protocol-tiny.yaml")
    evaluate(EvaluateConfig(policy="straight", protocol=tiny, conditions=("nominal",), out=tmp_path / "s",
                            progress=False, workers=1))
    key = "oval|nominal|crash|1"
    config = VideoConfig(results=tmp_path / "s", policy="straight", key=key, protocol=tiny, full=True,
                         out=tmp_path / "v")
    record, seen, teacher = replay(config)
    stored = {r.key: r for r in __import__("benchmark.evaluation.records", fromlist=["x"]).read_records(
        tmp_path / "s" / "records.jsonl").records}[key]
    assert record == stored and len(seen) == stored.steps and teacher is not None and teacher.key == key
    result = run(config)
    mp4, webp = (Path(f) for f in result["files"])
    expected = stored.failure_step + 1 if stored.crashed else stored.steps  # a crash shows its failure state too
    assert result["frames"] == expected == len(iio.imread(mp4)) and Image.open(webp).n_frames == expected
    assert mp4.stat().st_size < 2_000_000
    with pytest.raises(ValueError, match="is not the policy of"):
        replay(VideoConfig(results=tmp_path / "s", policy="teacher", key=key, protocol=tiny))


def test_failure_clips_show_each_methods_first_failure_and_the_teacher_on_it(tmp_path, capsys):
    import imageio.v3 as iio
    import torch
    from PIL import Image

    from benchmark.evaluation.evaluate import EvaluateConfig, evaluate
    from benchmark.evaluation.protocol import load_protocol
    from benchmark.evaluation.results import load_result
    from benchmark.reporting.video import failure_clips, first_failure
    from models import ModelConfig, build_model, save_model

    tiny = str(Path(__file__).resolve().parent / "data" / "protocol-tiny.yaml")
    torch.manual_seed(0)
    untrained = save_model(build_model(ModelConfig()), tmp_path / "untrained")
    dirs = []
    for policy, name in (("teacher", "teacher"), ("straight", "straight"), (str(untrained), "untrained")):
        evaluate(EvaluateConfig(policy=policy, name=name, protocol=tiny, conditions=("nominal",),
                                out=tmp_path / name, drift_reference=False, progress=False, workers=1))
        dirs.append(tmp_path / name)
    out = tmp_path / "clips"
    out.mkdir()
    (out / "teacher-oval-nominal-0.webp").write_bytes(b"an earlier run's clip")
    files = failure_clips(dirs, out, "nominal", [untrained], window_s=1.5, protocol=tiny)
    # the teacher never fails: no clip of its own (an earlier one is removed), a line saying so
    assert "teacher: no crash-mode failure in the nominal condition; no clip" in capsys.readouterr().out
    assert not list(out.glob("teacher-*"))
    protocol = load_protocol(tiny)
    expected = []
    for name in ("straight", "untrained"):
        failure = first_failure(load_result(tmp_path / name), "nominal", protocol)
        assert failure is not None, name  # both leave the road within 40 steps
        frames = failure.failure_step - max(0, failure.failure_step - 15) + 1  # 1.5 s at 10 Hz, and the failure
        stem = f"{name}-{failure.episode_key.track}-nominal-{failure.index}"
        for clip in (stem, f"{stem}-teacher"):
            mp4, webp = out / f"{clip}.mp4", out / f"{clip}.webp"
            assert len(iio.imread(mp4)) == frames and Image.open(webp).n_frames == frames
            assert Image.open(webp).size == (400, 320)  # the dashcam at its native 200x66
            assert webp.stat().st_size < 300_000
            expected += [mp4, webp]
    assert sorted(files) == sorted(expected)
    assert not list(out.glob(".*"))  # no temporary files left
    # made by two worker processes: the same files, byte for byte, and the same report
    made = {f: f.read_bytes() for f in files}
    capsys.readouterr()
    assert failure_clips(dirs, out, "nominal", [untrained], window_s=1.5, protocol=tiny, workers=2) == files
    assert {f: f.read_bytes() for f in files} == made
    assert "teacher: no crash-mode failure in the nominal condition; no clip" in capsys.readouterr().out
    with pytest.raises(ValueError, match="none of the policies given has the sha256"):
        failure_clips(dirs, out, "nominal", [], protocol=tiny)  # the model's files are needed
