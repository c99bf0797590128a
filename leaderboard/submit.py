"""`python -m leaderboard submit` (and add-reference, baselines): validate, evaluate, write the entry.

A submission goes through, in order, stopping at the first problem with one `Rejected` message:

1. the model card (schema, a unique name);
2. the protocol of the board (every entry is evaluated under the same protocol and profile);
3. the ONNX file, in a sandboxed child process (leaderboard/modelcheck.py): size, format, external
   data, opsets and operators, onnx.checker, signature, and a smoke inference; a conditional model
   (a `command` input) only on a protocol of road networks with forks (the conditional board,
   leaderboard/conditional, on steerbench-forks-v1);
4. the evaluation on the protocol, in worker processes with a memory and a time limit; an episode
   made invalid by the model (NaN, wrong shape, an onnxruntime error) rejects the submission;
5. the clip of its first nominal failure, replayed in the sandbox (leaderboard/clips.py).

Only then are `models/<id>.onnx`, `clips/<id>.webp` and `entries/<id>.json` written (the entry
last), and README.md and index.html rebuilt. A rejected submission writes nothing under the leaderboard directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from benchmark.common.files import create_exclusive, dumps, write_bytes_atomic
from benchmark.evaluation.results import Results

from .board import EvaluationOptions, entry_outcomes, evaluate_entry, load_entries, make_entry, protocol_of
from .card import load_card, reference_card
from .clips import make_clip
from .common import (
    CONDITIONAL_PROTOCOL,
    CONDITIONAL_ROOT,
    DOCS,
    REFERENCE_POLICIES,
    Rejected,
    board_lock,
    clip_path,
    entry_path,
    model_path,
    slugify,
)
from .modelcheck import ModelLimits, check_model_file

CARD_NAMES = ("card.yaml", "card.yml", "card.json")


@dataclass(frozen=True, kw_only=True)
class SubmitConfig(EvaluationOptions):
    """Validate an ONNX model and its card, evaluate it on the protocol, and add it to the leaderboard."""

    model: Path
    """The ONNX file, or a directory holding model.onnx and card.json/card.yaml (a models/zoo/<name> entry)."""
    card: Path | None = None
    """The model card, YAML or JSON (default: the card beside model.onnx in a model directory)."""
    max_model_mb: float = 50.0
    """Largest accepted ONNX file [MB]."""
    min_opset: int = 13
    """Oldest accepted opset of the standard ONNX domain."""
    max_opset: int = 23
    """Newest accepted opset of the standard ONNX domain."""
    check_time_limit_s: float = 60.0
    """Wall-clock limit of the sandboxed check and smoke inference [s]."""
    build: bool = True
    """Regenerate README.md and index.html after adding the entry."""


@dataclass(frozen=True, kw_only=True)
class AddReferenceConfig(EvaluationOptions):
    """Evaluate a reference policy (the privileged teacher or the straight-ahead policy) as an entry."""

    policy: Literal["teacher", "straight"]
    """The reference policy."""
    build: bool = True
    """Regenerate README.md and index.html after adding the entry."""


@dataclass(frozen=True, kw_only=True)
class BaselinesConfig(EvaluationOptions):
    """Add the references (teacher, straight) and every model of the zoo that is not on the leaderboard yet."""

    zoo: Path = Path("models/zoo")
    """The model zoo: one directory per model with model.onnx and card.json."""
    references: bool = True
    """Add the teacher and the straight-ahead policy."""
    max_model_mb: float = 50.0
    """Largest accepted ONNX file [MB]."""
    min_opset: int = 13
    """Oldest accepted opset of the standard ONNX domain."""
    max_opset: int = 23
    """Newest accepted opset of the standard ONNX domain."""
    check_time_limit_s: float = 60.0
    """Wall-clock limit of the sandboxed check and smoke inference [s]."""
    build: bool = True
    """Regenerate README.md and index.html at the end."""


def resolve_model(model: Path, card: Path | None) -> tuple[Path, Path]:
    """(ONNX file, card) from the --model and --card arguments; a directory holds model.onnx and a card."""
    model = Path(model)
    if model.is_dir():
        directory = model
        model = directory / "model.onnx"
        if not model.is_file():
            raise Rejected(f"the directory {directory} holds no model.onnx",
                           "Export the model there (models.export_onnx) or pass the .onnx file")
        if card is None:
            card = next((directory / n for n in CARD_NAMES if (directory / n).is_file()), None)
    if card is None:
        raise Rejected("no model card was given", f"Pass --card with your card, YAML or JSON ('Model card' in {DOCS})")
    return model, Path(card)


def check_name(card: dict[str, Any], entries: list[dict[str, Any]], reference: bool = False) -> str:
    """The entry id of `card`; rejects a name that is taken or reserved."""
    entry_id = slugify(card["name"])
    if entry_id in REFERENCE_POLICIES and not reference:
        raise Rejected(f"the name '{card['name']}' is reserved for a reference policy",
                       "Choose another name in the model card")
    for entry in entries:
        if entry["id"] == entry_id or entry["card"]["name"].casefold() == card["name"].casefold():
            raise Rejected(f"an entry named '{entry['card']['name']}' is already on the leaderboard "
                           f"(entries/{entry['id']}.json)",
                           "Choose another name in the model card (names must be unique, ignoring case and "
                           "punctuation)")
    return entry_id


def check_protocol(options: EvaluationOptions, entries: list[dict[str, Any]]) -> None:
    """Reject an evaluation under another protocol or profile than the board's."""
    from benchmark.evaluation.protocol import ProtocolError, load_protocol

    try:
        protocol = load_protocol(options.protocol)
        protocol.profile(options.profile)
    except ProtocolError as exc:
        raise Rejected(str(exc), "Pass a known --protocol and --profile") from None
    board = protocol_of(entries)
    if board is not None and (board["name"], board["sha256"], board["profile"]) != (
            protocol.name, protocol.sha256, options.profile):
        raise Rejected(f"this leaderboard holds results of protocol {board['name']} ({board['profile']} profile, "
                       f"sha256 {board['sha256'][:12]}), not of {protocol.name} ({options.profile}, "
                       f"{protocol.sha256[:12]})",
                       f"Submit with --protocol {board['name']} --profile {board['profile']}")


def check_conditional(info: dict[str, Any], options: EvaluationOptions) -> None:
    """Reject a conditional model (a command input) on a protocol without commands: it is ranked on the
    conditional board. A model without a command may go on either board (on forks it is the baseline
    that cannot follow a command)."""
    from benchmark.evaluation.protocol import load_protocol

    protocol = load_protocol(options.protocol)
    if info.get("conditional") and not protocol.commanded(options.profile):
        raise Rejected(f"the model has a command input (a conditional model), and protocol {protocol.name} gives "
                       "no command (no fork, no lane goal): conditional models are ranked on their own table",
                       f"Submit it to the conditional board: make submit-conditional MODEL=... CARD=... "
                       f"(--root {CONDITIONAL_ROOT} --protocol {CONDITIONAL_PROTOCOL})")


def _limits(config: SubmitConfig | BaselinesConfig) -> ModelLimits:
    return ModelLimits(max_model_mb=config.max_model_mb, min_opset=config.min_opset, max_opset=config.max_opset)


def submit(config: SubmitConfig) -> dict[str, Any]:
    """The whole submission; returns a summary. Raises Rejected (nothing written) on any problem."""
    model_file, card_file = resolve_model(config.model, config.card)
    card = load_card(card_file)
    entries = load_entries(config.root)
    entry_id = check_name(card, entries)
    check_protocol(config, entries)
    data, info = check_model_file(model_file, _limits(config), memory_limit_mb=config.memory_limit_mb,
                                  time_limit_s=config.check_time_limit_s, unsafe=not config.sandbox)
    check_conditional(info, config)
    from benchmark.evaluation.protocol import load_protocol

    protocol = load_protocol(config.protocol)
    out = Path(config.work_dir) / protocol.name / config.profile / f"leaderboard-{entry_id}-{info['sha256'][:12]}"
    staged = out / "model.onnx"  # exactly the bytes that were checked
    write_bytes_atomic(staged, data)
    results, seconds = evaluate_entry(str(staged), f"leaderboard-{entry_id}", config, out)
    reject_invalid(results)
    clip, clip_bytes = make_clip(str(staged), entry_id, config, out)
    model = {"file": f"models/{entry_id}.onnx", **info}
    entry = make_entry(entry_id=entry_id, kind="submission", card=card, policy="onnx", model=model, results=results,
                       options=config, seconds=seconds, clip=clip, outcomes=entry_outcomes(out, config))
    write_entry(config.root, entry, data, clip_bytes)
    return summary(config.root, entry_id, build=config.build)


def reject_invalid(results: Results) -> None:
    metrics = results.metrics
    if metrics.invalid:
        reasons = "; ".join(metrics.invalid_reasons) or "no reason recorded"
        raise Rejected(f"the model produced invalid output in {metrics.invalid} of {metrics.episodes} "
                       f"evaluation episodes ({reasons})",
                       "Make it return one finite curvature per frame for every input, then submit again")


def write_entry(root: Path, entry: dict[str, Any], model_bytes: bytes | None, clip_bytes: bytes | None = None) -> None:
    """The model file and the clip first, then the entry, under the board's lock; the entry file is
    created exclusively, so of two submissions of one name only the first is added, the other rejected."""
    with board_lock(root):
        check_name(entry["card"], load_entries(root), reference=entry["kind"] == "reference")
        path = entry_path(root, entry["id"])
        files = [(target, data) for target, data in ((model_path(root, entry["id"]), model_bytes),
                                                     (clip_path(root, entry["id"]), clip_bytes)) if data is not None]
        for target, data in files:
            write_bytes_atomic(target, data)
        try:
            create_exclusive(path, (dumps(entry, indent=2) + "\n").encode("utf-8"))
        except FileExistsError:
            raise Rejected(f"an entry with the id '{entry['id']}' was added while this one was evaluated",
                           "Choose another name in the model card") from None
        except BaseException:
            for target, _ in files:
                target.unlink(missing_ok=True)
            raise


def summary(root: Path, entry_id: str, build: bool) -> dict[str, Any]:
    from .ranking import ranked

    entries = ranked(load_entries(root))
    if build:
        from .publish import build_pages

        build_pages(root)
    rank = next(i for i, e in enumerate(entries, 1) if e["id"] == entry_id)
    entry = entries[rank - 1]
    return {"id": entry_id, "entry": str(entry_path(root, entry_id)), "score": entry["score"]["value"],
            "rank": rank, "entries": len(entries)}


def add_reference(config: AddReferenceConfig | BaselinesConfig, policy: str, build: bool) -> dict[str, Any]:
    card = reference_card(policy)
    entries = load_entries(config.root)
    entry_id = check_name(card, entries, reference=True)
    check_protocol(config, entries)
    from benchmark.evaluation.protocol import load_protocol

    protocol = load_protocol(config.protocol)
    out = Path(config.work_dir) / protocol.name / config.profile / f"leaderboard-{entry_id}"
    results, seconds = evaluate_entry(policy, f"leaderboard-{entry_id}", config, out)
    reject_invalid(results)
    clip, clip_bytes = make_clip(policy, entry_id, config, out)
    entry = make_entry(entry_id=entry_id, kind="reference", card=card, policy=policy, model=None, results=results,
                       options=config, seconds=seconds, clip=clip, outcomes=entry_outcomes(out, config))
    write_entry(config.root, entry, None, clip_bytes)
    return summary(config.root, entry_id, build=build)


def baselines(config: BaselinesConfig) -> dict[str, Any]:
    """The references and the zoo: adds what is missing; a zoo model that is rejected is reported."""
    added: list[str] = []
    present: list[str] = []
    rejected: dict[str, str] = {}
    if config.references:
        for policy in REFERENCE_POLICIES:
            if any(e["id"] == policy for e in load_entries(config.root)):
                present.append(policy)
            else:
                add_reference(config, policy, build=False)
                added.append(policy)
    zoo = Path(config.zoo)
    for directory in sorted(p for p in zoo.iterdir() if p.is_dir()) if zoo.is_dir() else []:
        try:
            model_file, card_file = resolve_model(directory, None)
            card = load_card(card_file)
            if any(e["id"] == slugify(card["name"]) for e in load_entries(config.root)):
                present.append(slugify(card["name"]))
                continue
            fields = {k: getattr(config, k) for k in EvaluationOptions.__dataclass_fields__}
            result = submit(SubmitConfig(**fields, model=model_file, card=card_file, max_model_mb=config.max_model_mb,
                                         min_opset=config.min_opset, max_opset=config.max_opset,
                                         check_time_limit_s=config.check_time_limit_s, build=False))
            added.append(result["id"])
        except Rejected as exc:
            rejected[directory.name] = str(exc)
    if config.build:
        from .publish import build_pages

        build_pages(config.root)
    return {"added": added, "already_present": present, "rejected": rejected}


def run(config: SubmitConfig) -> dict[str, Any]:
    return submit(config)


def run_reference(config: AddReferenceConfig) -> dict[str, Any]:
    return add_reference(config, config.policy, build=config.build)


def run_baselines(config: BaselinesConfig) -> dict[str, Any]:
    return baselines(config)
