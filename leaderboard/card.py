"""The model card of a submission: who made the model, how, and under which licence.

A card is a YAML or JSON mapping of at most MAX_CARD_BYTES, read into plain data without running
code: YAML through a safe loader that also refuses anchors and aliases (a few hundred bytes of
nested aliases expand to gigabytes). Every text field is reduced to one printable line
(leaderboard.escape.printable_line) and bounded in length; `extra` is bounded in depth, items and
size. Required fields:

    name          unique display name, 1-64 characters (letters, digits, space and . _ + - ( ));
                  the entry id is its slug ('PilotNet BC (v2)' -> pilotnet-bc-v2)
    authors       non-empty list of names
    method        how it was trained, one line (e.g. 'behaviour cloning, 3 cameras')
    training      {tracks: [...], seeds: [...]}: the training tracks (built-in names,
                  'procedural:0-99', or free text for other data) and the training run seeds
    label_budget  teacher labels (labelled frames) used for training, integer >= 0
    env_steps     environment steps simulated for training (collection and rollouts), integer >= 0
    licence       the model's licence (an SPDX id such as MIT or CC-BY-4.0)
    code          where the training code is: a URL or a path in this repository

Optional: description, paper, contact (strings) and extra (a free-form mapping). Any other key is
an error that names it (so that 'license' is caught as a misspelling of 'licence').
"""

from __future__ import annotations

import difflib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from .common import DOCS, REFERENCE_POLICIES, Rejected, slugify
from .escape import printable_line

REQUIRED = ("name", "authors", "method", "training", "label_budget", "env_steps", "licence", "code")
OPTIONAL = ("description", "paper", "contact", "extra")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._+()-]{0,63}")
FIX = f"Fix the model card (the fields are described under 'Model card' in {DOCS})"
MAX_CARD_BYTES = 64 * 1024
"""Largest accepted card file."""
MAX_TEXT = 400
"""Longest text field (characters, after reduction to one line); descriptions get MAX_DESCRIPTION."""
MAX_DESCRIPTION = 2000
MAX_AUTHORS = 50
MAX_LIST = 200
"""Most training tracks or seeds."""
MAX_EXTRA_BYTES = 16 * 1024
"""Largest `extra`, as compact JSON."""
MAX_EXTRA_DEPTH = 8


class _NoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases (the 'billion laughs' of YAML)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a model card",
                                              event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(None, None, "anchors (&name) are not allowed in a model card",
                                              event.start_mark)
        return super().compose_node(parent, index)


def load_card(path: str | Path) -> dict[str, Any]:
    """Read and validate the card at `path`; returns the normalised card (fields in schema order)."""
    path = Path(path)
    if not path.is_file():
        raise Rejected(f"there is no model card at {path}", "Pass --card with the path of your card (YAML or JSON)")
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise Rejected(f"the model card is {size:,} bytes, over the {MAX_CARD_BYTES:,}-byte limit",
                       "Shorten it (long details belong in the linked code or paper)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CARD_BYTES + 1)
        if len(raw) > MAX_CARD_BYTES:  # it grew between stat and read
            raise Rejected(f"the model card is over the {MAX_CARD_BYTES:,}-byte limit", "Shorten it")
        text = raw.decode("utf-8")
        data = json.loads(text) if kind == "JSON" else yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError, RecursionError) as exc:
        raise Rejected(f"the model card {printable_line(path.name, 80)} is not valid {kind} "
                       f"({printable_line(exc, 200)})", "Fix its syntax (YAML anchors and aliases are not allowed)") \
            from None
    return validate_card(data, path.name)


def validate_card(data: Any, where: str = "the model card") -> dict[str, Any]:
    """Check a card's fields and types; returns a normalised copy. Raises Rejected."""
    if not isinstance(data, dict):
        raise Rejected(f"the model card must be a mapping of fields, got {type(data).__name__}",
                       f"Write it as 'field: value' lines (see the example in {DOCS})")
    unknown = [k for k in data if k not in REQUIRED + OPTIONAL]
    if unknown:
        key = printable_line(unknown[0], 64)
        close = difflib.get_close_matches(key, REQUIRED + OPTIONAL, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise Rejected(f"the model card has the unknown field '{key}'{hint}",
                       f"Use only the fields {', '.join(REQUIRED + OPTIONAL)}")
    missing = [k for k in REQUIRED if data.get(k) in (None, "", [], {})]
    if missing:
        raise Rejected(f"the model card is missing the field{'s' if len(missing) > 1 else ''} {', '.join(missing)}",
                       f"Add {'them' if len(missing) > 1 else 'it'} ('Model card' in {DOCS} lists every field)")
    card: dict[str, Any] = {}
    name = data["name"]
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or not slugify(name):
        raise Rejected(f"the card's name {printable_line(repr(name), 80)} is not allowed",
                       "Use 1 to 64 characters: letters, digits, spaces and . _ + - ( ), starting with a letter "
                       "or digit")
    card["name"] = name
    authors = data["authors"]
    if isinstance(authors, str) or not isinstance(authors, list) or not 0 < len(authors) <= MAX_AUTHORS or not all(
            isinstance(a, str) and printable_line(a) for a in authors):
        raise Rejected(f"the card's authors must be a list of 1 to {MAX_AUTHORS} names, got "
                       f"{printable_line(repr(authors), 120)}",
                       "Write them as a list, e.g. authors: [Ada Lovelace, Alan Turing]")
    card["authors"] = [printable_line(a, MAX_TEXT) for a in authors]
    card["method"] = _text(data, "method")
    card["training"] = _training(data["training"])
    for key in ("label_budget", "env_steps"):
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise Rejected(f"the card's {key} must be a whole number >= 0, got {value!r}",
                           f"{FIX}: {key} counts {'teacher labels' if key == 'label_budget' else 'environment steps'}"
                           " used in training")
        card[key] = int(value)
    card["licence"] = _text(data, "licence")
    card["code"] = _text(data, "code")
    for key in ("description", "paper", "contact"):
        if data.get(key) is not None:
            card[key] = _text(data, key, MAX_DESCRIPTION if key == "description" else MAX_TEXT)
    if data.get("extra") is not None:
        card["extra"] = _extra(data["extra"])
    return card


def _text(data: dict, key: str, limit: int = MAX_TEXT) -> str:
    value = data[key]
    if not isinstance(value, str) or not printable_line(value):
        raise Rejected(f"the card's {key} must be a non-empty string, got {printable_line(repr(value), 80)}", FIX)
    if len(printable_line(value, limit + 1)) > limit:
        raise Rejected(f"the card's {key} is longer than {limit} characters", f"{FIX}: shorten it")
    return printable_line(value, limit)


def _extra(value: Any) -> dict[str, Any]:
    """`extra` as plain JSON data, bounded: a mapping, at most MAX_EXTRA_DEPTH deep and
    MAX_EXTRA_BYTES as compact JSON; strings become printable lines, other leaves numbers,
    booleans or null."""
    if not isinstance(value, dict):
        raise Rejected(f"the card's extra must be a mapping, got {type(value).__name__}", FIX)
    budget = [MAX_EXTRA_BYTES]

    def walk(v: Any, depth: int) -> Any:
        if depth > MAX_EXTRA_DEPTH:
            raise Rejected(f"the card's extra is nested deeper than {MAX_EXTRA_DEPTH} levels", f"{FIX}: flatten it")
        budget[0] -= 8
        if budget[0] < 0:
            raise Rejected(f"the card's extra is larger than {MAX_EXTRA_BYTES:,} bytes", f"{FIX}: shorten it")
        if isinstance(v, dict):
            return {printable_line(k, 100): walk(x, depth + 1) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, depth + 1) for x in v]
        if v is None or isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(v)):
            budget[0] -= len(str(v))
            return v
        text = printable_line(v, MAX_TEXT)
        budget[0] -= len(text)
        return text

    extra = walk(value, 1)
    if budget[0] < 0:
        raise Rejected(f"the card's extra is larger than {MAX_EXTRA_BYTES:,} bytes", f"{FIX}: shorten it")
    return extra


def _training(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"tracks", "seeds"}:
        raise Rejected(f"the card's training must be a mapping with the keys tracks and seeds, got {value!r}",
                       "Write e.g. training: {tracks: [racetrack, 'procedural:0-99'], seeds: [0, 1, 2]}")
    tracks, seeds = value.get("tracks"), value.get("seeds")
    if not isinstance(tracks, list) or not 0 < len(tracks) <= MAX_LIST or not all(
            isinstance(t, str) and printable_line(t) for t in tracks):
        raise Rejected(f"the card's training.tracks must be a non-empty list of track names, got {tracks!r}",
                       "List the training tracks, e.g. tracks: [racetrack, oval, 'procedural:0-99']")
    if not isinstance(seeds, list) or not 0 < len(seeds) <= MAX_LIST or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise Rejected(f"the card's training.seeds must be a non-empty list of integers, got {seeds!r}",
                       "List the random seeds of the training runs, e.g. seeds: [0, 1, 2]")
    for track in tracks:
        if track.strip().startswith("procedural:"):
            from benchmark.common.config import parse_seeds
            from envs import TEST_SEEDS

            try:
                used = parse_seeds(track.split(":", 1)[1])
            except ValueError as exc:
                raise Rejected(f"the card's training track {track!r} is malformed ({exc})", FIX) from None
            held_out = [s for s in used if s in TEST_SEEDS]
            if held_out:
                raise Rejected(f"the card says the model was trained on the held-out test track "
                               f"procedural:{held_out[0]}",
                               f"Seeds {TEST_SEEDS.start}-{TEST_SEEDS.stop - 1} are for evaluation only; retrain on "
                               "training seeds (0-99999)")
    return {"tracks": [printable_line(t, MAX_TEXT) for t in tracks], "seeds": [int(s) for s in seeds]}


def reference_card(policy: str) -> dict[str, Any]:
    """The built-in card of a reference policy (teacher or straight)."""
    if policy not in REFERENCE_POLICIES:
        raise ValueError(f"unknown reference policy {policy!r}; references are {', '.join(REFERENCE_POLICIES)}")
    if policy == "teacher":
        method = "privileged pure-pursuit teacher (reads the simulator's lane geometry, not the camera)"
        description = "The expert every learner imitates: an upper reference, not a camera policy."
    else:
        method = "straight ahead: curvature 0 whatever it sees"
        description = "The trivial lower reference."
    return {"name": policy, "authors": ["SteerBench"], "method": method, "training": {"tracks": [], "seeds": []},
            "label_budget": 0, "env_steps": 0, "licence": "same as SteerBench", "code": "benchmark/rollout/policies.py",
            "description": description}
