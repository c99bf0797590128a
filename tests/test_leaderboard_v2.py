"""The leaderboard on a version-2 protocol: per-episode outcomes in every entry, the score's cluster
bootstrap interval over tracks, the paired comparison of neighbours, the track-family table, and
verification of the outcomes.

The board runs on tests/data/leaderboard/tiny-protocol-v2.yaml (four held-out procedural tracks and
the oval as a seen track, the disturbed and nominal conditions, 40-step episodes), with one worker,
in temporary directories.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest

from leaderboard.__main__ import main as leaderboard_main
from leaderboard.board import BoardError, load_entries, read_entry
from leaderboard.outcomes import compare, outcomes_of, score_interval, separable, survived
from leaderboard.ranking import ranked, score_of
from leaderboard.submit import BaselinesConfig, baselines

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "leaderboard"
TINY_V2 = DATA / "tiny-protocol-v2.yaml"
HELD_OUT = [f"procedural-{s}" for s in range(1000100, 1000104)]
ZOO_ID = "tiny-pilotnet-untrained"


def options(root: Path, work: Path, **overrides) -> dict:
    return {"root": root, "protocol": str(TINY_V2), "profile": "full", "workers": 1, "drift_reference": True,
            "progress": False, "work_dir": work, "time_limit_s": 300.0, **overrides}


@pytest.fixture(scope="module")
def board(tmp_path_factory, untrained_model) -> Path:
    import yaml

    from models import load_model
    from models.onnx_export import export_onnx

    base = tmp_path_factory.mktemp("board-v2")
    zoo = base / "zoo" / "tiny-pilotnet"
    zoo.mkdir(parents=True)
    export_onnx(load_model(untrained_model), zoo / "model.onnx")
    card = {**yaml.safe_load((DATA / "card.yaml").read_text()), "name": "Tiny PilotNet (untrained)"}
    (zoo / "card.json").write_text(json.dumps(card))
    root = base / "leaderboard"
    result = baselines(BaselinesConfig(zoo=base / "zoo", **options(root, base / "work")))
    assert result == {"added": ["teacher", "straight", ZOO_ID], "already_present": [], "rejected": {}}
    return root


def _edit_entry(root: Path, entry_id: str, edit) -> None:
    path = root / "entries" / f"{entry_id}.json"
    entry = json.loads(path.read_text())
    edit(entry)
    path.write_text(json.dumps(entry, indent=2))


# ------------------------------------------------------------------------------------------------
# The statistics, by hand
# ------------------------------------------------------------------------------------------------


def test_survived_counts_a_failure_before_t_max_only():
    outcomes = {"disturbed": {"a": [None], "b": [39]}, "nominal": {"a": [3], "b": [None]}}
    values, clusters = survived(outcomes, 40)
    assert values.tolist() == [1.0, 0.0, 0.0, 1.0] and clusters.tolist() == ["a", "b", "a", "b"]
    assert survived({"nominal": {"a": [40]}}, 40)[0].tolist() == [1.0]  # a failure at step 40 is after T = 40


def test_score_interval_is_a_cluster_bootstrap_over_tracks():
    everyone = {"disturbed": {t: [None] for t in "abcdefgh"}, "nominal": {t: [None] for t in "abcdefgh"}}
    assert score_interval(everyone, 100) == (1.0, 1.0, 1.0)
    half = {"disturbed": {t: [None if i % 2 else 5] for i, t in enumerate("abcdefgh")},
            "nominal": {t: [None] for t in "abcdefgh"}}
    value, low, high = score_interval(half, 100)
    assert value == 0.75 and 0.5 <= low < 0.75 < high <= 1.0
    assert score_interval(half, 100) == (value, low, high)  # a fixed seed: the same interval every time


def test_compare_pairs_by_track_and_says_when_two_do_not_separate():
    tracks = [f"t{i}" for i in range(40)]
    good = {"disturbed": {t: [None] for t in tracks}}
    bad = {"disturbed": {t: [7] for t in tracks}}
    same = compare(good, good, 100)
    assert same.difference == 0.0 and same.p_value == 1.0 and not separable(same)
    diff = compare(good, bad, 100)
    assert diff.difference == 1.0 and diff.p_value == 0.0 and separable(diff)
    one_track = {"disturbed": {t: [7 if t == "t0" else None] for t in tracks}}
    close = compare(good, one_track, 100)
    assert close.difference == pytest.approx(1 / 40) and not separable(close)
    with pytest.raises(ValueError, match="not of the same episodes"):
        compare(good, {"disturbed": {t: [None] for t in tracks[:-1]}}, 100)


# ------------------------------------------------------------------------------------------------
# A board on the tiny version-2 protocol
# ------------------------------------------------------------------------------------------------


def test_entries_hold_outcomes_of_the_held_out_episodes_and_scores_with_intervals(board):
    entries = {e["id"]: e for e in load_entries(board)}
    assert set(entries) == {"teacher", "straight", ZOO_ID}
    for entry in entries.values():
        assert entry["schema_version"] == 2
        outcomes = entry["outcomes"]
        assert sorted(outcomes) == ["disturbed", "nominal"]
        for condition in outcomes:  # held-out tracks only: the seen oval is reported apart, never scored
            assert sorted(outcomes[condition]) == HELD_OUT and all(len(v) == 1 for v in outcomes[condition].values())
        score = entry["score"]
        assert score == score_of(entry["metrics"], outcomes)
        assert score["low"] <= score["value"] <= score["high"] and score["main_condition"] == "disturbed"
        values, _ = survived(outcomes, 40)
        assert score["value"] == pytest.approx(values.mean())  # the score is the outcomes' mean survival
        for condition, (low, high) in score["survival_interval"].items():
            assert 0.0 <= low <= score["survival_t_max"][condition] <= high <= 1.0
    assert entries["teacher"]["score"]["value"] == 1.0 and entries["teacher"]["score"]["low"] == 1.0
    assert entries["straight"]["score"]["value"] < 1.0
    # Clips are of the main condition.
    clip = entries["straight"]["clip"]
    assert clip["condition"] == "disturbed" and "|disturbed|crash|" in clip["episode"]


def test_outcomes_follow_from_the_records(board):
    from benchmark.evaluation.records import read_records

    work = board.parent / "work" / "leaderboard-tiny-v2" / "full" / "leaderboard-straight"
    records = read_records(work / "records.jsonl").records
    assert {r.track for r in records if r.mode == "crash"} == {*HELD_OUT, "oval"}
    assert outcomes_of(records, ["oval"]) == read_entry(board / "entries" / "straight.json")["outcomes"]


def test_pages_show_intervals_separability_and_families(board):
    entries = ranked(load_entries(board))
    readme = (board / "README.md").read_text().split("<!-- BEGIN LEADERBOARD")[1]
    assert "Score [95% CI]" in readme and "vs. the entry above" in readme
    assert "cluster bootstrap over the held-out tracks" in readme
    rows = {int(m.group(1)): line for line in readme.splitlines() if (m := re.match(r"^\|\s+(\d+) \|", line))}
    assert sorted(rows) == [1, 2, 3]
    assert "| teacher " in rows[1] and r"1.000 \[1.000, 1.000\]" in rows[1]  # markdown-escaped brackets
    for rank in (2, 3):
        assert re.search(r"[+-]\d\.\d{3} \\\[[+-]\d\.\d{3}, [+-]\d\.\d{3}\\\], p [\d.e-]+: (not )?separable",
                         rows[rank])
    # The family table: the seen oval and the held-out tracks by their sharpest turn.
    families = readme.split("Crashes in the disturbed condition by track family")[1]
    header = next(line for line in families.splitlines() if line.startswith("| Name"))
    assert "seen" in header
    for e in entries:
        assert f"| {e['card']['name']} " in families
    html = (board / "index.html").read_text()
    assert 'id="families-table"' in html and "vs. the entry above" in html
    assert "First disturbed failure" in html


def test_build_refuses_entries_of_other_episodes(board, tmp_path):
    root = tmp_path / "leaderboard"
    shutil.copytree(board, root)
    _edit_entry(root, "straight", lambda e: e["outcomes"]["nominal"].pop(HELD_OUT[0]))
    with pytest.raises(BoardError, match="not of the same episodes"):
        from leaderboard.publish import build_pages
        build_pages(root)


def test_a_malformed_outcomes_block_is_refused(board, tmp_path):
    root = tmp_path / "leaderboard"
    shutil.copytree(board, root)
    _edit_entry(root, "straight", lambda e: e["outcomes"]["nominal"].__setitem__(HELD_OUT[0], ["soon"]))
    with pytest.raises(BoardError, match="not a list of failure steps"):
        load_entries(root)


def test_verify_checks_the_outcomes(board, tmp_path, capsys):
    root = tmp_path / "leaderboard"
    shutil.copytree(board, root)

    def survive_everywhere(entry):  # consistent with the score? no: the score's interval moves
        for tracks in entry["outcomes"].values():
            for track in tracks:
                tracks[track] = [None]

    _edit_entry(root, "straight", survive_everywhere)
    args = ["verify", "--root", str(root), "--protocol", str(TINY_V2), "--workers", "1", "--no-progress",
            "--work-dir", str(tmp_path / "work")]
    assert leaderboard_main(args) == 1
    out = capsys.readouterr().out
    assert re.search(r"^TAMPERED +straight: the stored score does not follow", out, re.M)
    assert re.search(r"^OK +teacher: metrics reproduce exactly$", out, re.M)
    assert re.search(rf"^OK +{ZOO_ID}: metrics reproduce exactly$", out, re.M)
    assert math.isfinite(read_entry(root / "entries" / "teacher.json")["score"]["low"])


def test_clips_are_made_again_byte_for_byte_without_the_records(board, tmp_path, capsys):
    root = tmp_path / "leaderboard"
    shutil.copytree(board, root)
    entries = {e["id"]: e for e in load_entries(root)}
    with_clips = sorted(i for i, e in entries.items() if e["clip"])
    assert ZOO_ID in with_clips and "straight" in with_clips  # the zoo model's replay runs in the sandbox
    kept = {i: (root / entries[i]["clip"]["file"]).read_bytes() for i in with_clips}
    for i in with_clips:
        (root / entries[i]["clip"]["file"]).unlink()
    work = tmp_path / "work"  # no records: the board's evaluation folders are not in it
    args = ["clips", "--root", str(root), "--protocol", str(TINY_V2), "--work-dir", str(work)]
    assert leaderboard_main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"written": with_clips, "rehashed": [], "present": [], "no_clip": ["teacher"], "failed": {}}
    assert all((root / entries[i]["clip"]["file"]).read_bytes() == kept[i] for i in with_clips)
    assert list(work.iterdir()) == []  # the replays' folders are gone
    # A clip that is present is left alone; another episode's failure step is refused, and nothing is written.
    _edit_entry(root, "straight", lambda e: e["clip"].__setitem__("failure_step", e["clip"]["failure_step"] - 1))
    (root / "clips" / "straight.webp").unlink()
    assert leaderboard_main(args) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["present"] == [ZOO_ID] and report["written"] == []
    assert "the entry's clip failed by" in report["failed"]["straight"]
    assert not (root / "clips" / "straight.webp").exists()
    # Bytes other than the entry's (as another CPU's inference makes them) are refused, or kept with --rehash.
    _edit_entry(root, "straight", lambda e: e["clip"].update(failure_step=e["clip"]["end_step"], sha256="0" * 64))
    assert leaderboard_main(args) == 1
    assert "came out as another WebP" in json.loads(capsys.readouterr().out)["failed"]["straight"]
    assert not (root / "clips" / "straight.webp").exists()
    assert leaderboard_main([*args, "--rehash"]) == 0
    assert json.loads(capsys.readouterr().out)["rehashed"] == ["straight"]
    clip = read_entry(root / "entries" / "straight.json")["clip"]
    assert clip == {**entries["straight"]["clip"], "sha256": hashlib.sha256(kept["straight"]).hexdigest()}
    assert (root / "clips" / "straight.webp").read_bytes() == kept["straight"]
