"""The conditional board: models with a command input ranked on their own table, on road networks with
forks, with the command success rate beside the score; and the main board refusing such a model.

The board runs on a tiny forks protocol (two held-out fork networks, nominal and disturbed, 200-step
episodes), with one worker, in temporary directories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from leaderboard.board import load_entries
from leaderboard.common import CONDITIONAL_PROTOCOL, CONDITIONAL_ROOT, Rejected
from leaderboard.publish import build_pages
from leaderboard.submit import BaselinesConfig, SubmitConfig, baselines, submit

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "leaderboard"

FORKS_TINY = """
name: leaderboard-forks-tiny
version: 2
seed: 11
policy_hz: 10
cost_d_max_m: 1.0
intervention_threshold_m: 1.0
intervention_penalty_s: 6.0
drift_bins: {d_m: [-3.25, 3.25, 13], psi_rad: [-0.55, 0.55, 11]}
metrics: {mistake_tau_per_m: 0.02, excursion_onset_m: 0.5, excursion_recover_m: 0.25, regret_t_min: 10,
          regret_min_survival: 0.5, curvature_bins_per_m: [0.043, 0.05]}
conditions:
  nominal: {}
  disturbed: {steering_noise_std: 0.02, steering_noise_tau_s: 0.5, gust_std_mps: 0.5, gust_tau_s: 2.0}
profiles:
  full:
    tracks: ["fork:1000100-1000101"]
    conditions: [disturbed, nominal]
    offpolicy_conditions: [disturbed]
    floor_conditions: [disturbed]
    episodes: 1
    max_steps: 200
    horizons: [10, 100, 200]
"""
CONDITIONAL_ID = "tiny-command-pilotnet-untrained"


def options(root: Path, work: Path, protocol: Path) -> dict:
    return {"root": root, "protocol": str(protocol), "profile": "full", "workers": 1, "drift_reference": True,
            "progress": False, "work_dir": work, "time_limit_s": 600.0}


def conditional_zoo(base: Path) -> Path:
    """A zoo of one untrained command-conditioned PilotNet (seeded weights), with its card."""
    import torch

    from models import ModelConfig, build_model, export_onnx

    torch.manual_seed(0)
    folder = base / "zoo" / "tiny-command"
    folder.mkdir(parents=True)
    export_onnx(build_model(ModelConfig(arch="pilotnet-command")), folder / "model.onnx")
    card = {**yaml.safe_load((DATA / "card.yaml").read_text()), "name": "Tiny command PilotNet (untrained)"}
    (folder / "card.json").write_text(json.dumps(card))
    return base / "zoo"


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("board-conditional")
    protocol = base / "forks-tiny.yaml"
    protocol.write_text(FORKS_TINY)
    root = base / "conditional"
    root.mkdir()
    shutil.copy(ROOT / CONDITIONAL_ROOT / "README.md", root / "README.md")
    result = baselines(BaselinesConfig(zoo=conditional_zoo(base), **options(root, base / "work", protocol)))
    assert result == {"added": ["teacher", "straight", CONDITIONAL_ID], "already_present": [], "rejected": {}}
    return root, base


def test_the_conditional_board_ranks_by_routes_and_shows_command_success(board):
    root, _ = board
    entries = {e["id"]: e for e in load_entries(root)}
    model = entries[CONDITIONAL_ID]
    assert model["model"]["conditional"] is True and model["model"]["inputs"]["command"]["dtype"] == "int64"
    teacher = entries["teacher"]["metrics"]["conditions"]["disturbed"]["commands"]["all"]
    assert teacher["n"] >= 2 and teacher["k"] == teacher["n"]  # the teacher takes every commanded branch
    straight = entries["straight"]["metrics"]["conditions"]["disturbed"]["commands"]["all"]
    assert straight["k"] < max(straight["n"], 1)
    assert entries["teacher"]["score"]["value"] > entries["straight"]["score"]["value"]
    readme = (root / "README.md").read_text()
    assert "Command success disturbed" in readme and "The board of conditional models" in readme
    lines = readme.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|   # | Name"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    header, _, *rows = lines[start:end]  # the board's table, not the track families' below it
    cells = {r.split("|")[2].strip(): [c.strip() for c in r.split("|")[1:-1]] for r in rows}
    column = [c.strip() for c in header.split("|")[1:-1]].index("Command success disturbed")
    # the teacher's cell: the rate with its Wilson interval, never [1, 1]
    assert teacher["rate"] == 1.0 and teacher["low"] < 1.0
    assert cells["teacher"][column] == f"1.00 \\[{teacher['low']:.2f}, 1.00\\]"
    page = (root / "index.html").read_text()
    assert 'data-key="commands-all"' in page and 'data-key="commands-left"' in page
    assert build_pages(root)["ranking"][0] == "teacher"


def test_the_main_board_refuses_a_conditional_model_and_names_the_conditional_board(board, tmp_path):
    _, base = board
    zoo = base / "zoo" / "tiny-command"
    main = tmp_path / "main"
    with pytest.raises(Rejected, match="conditional") as caught:
        submit(SubmitConfig(model=zoo, **options(main, tmp_path / "work", DATA / "tiny-protocol-v2.yaml")))
    assert "make submit-conditional" in str(caught.value) and CONDITIONAL_PROTOCOL in str(caught.value)
    assert not (main / "entries").exists()  # nothing written


def test_the_conditional_protocol_is_the_forks_protocol():
    from benchmark.evaluation.protocol import load_protocol

    assert load_protocol(CONDITIONAL_PROTOCOL).commanded("full")
    assert load_protocol(CONDITIONAL_PROTOCOL).commanded("quick")
    assert not load_protocol("steerbench-v2").commanded("full")
