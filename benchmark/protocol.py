"""The versioned evaluation protocol: which episodes a result is made of.

A protocol file (benchmark/protocols/<name>.yaml) fixes the test tracks (built-ins plus held-out
procedural test seeds), the conditions, the horizon checkpoints, the number of episodes and every
episode's seed, in a `quick` and a `full` profile. `episodes(profile)` expands it into the exact
list of EvalEpisodes, each with a stable key; the same protocol always gives the same list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from envs import BUILTIN_TRACKS, TEST_SEEDS

from .files import sha256_file
from .tracksets import parse_seeds

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
DEFAULT_PROTOCOL = "steerbench-v1"
CONDITIONS = ("nominal", "perturbed", "photometric", "traffic")
MODES = ("crash", "intervention")


class ProtocolError(ValueError):
    """An unknown protocol, profile or condition, or a malformed protocol file."""


@dataclass(frozen=True)
class EvalEpisode:
    """One evaluation episode, identical for every policy evaluated under the protocol."""

    key: str
    """Stable id: track|condition|mode|index."""
    track: str
    track_seed: int | None
    condition: str
    mode: str
    index: int
    seed: int
    max_steps: int
    lateral_offset: float = 0.0
    heading_error: float = 0.0
    traffic: int = 0
    effect: str | None = None
    """Photometric effect applied to the observations (photometric condition)."""

    @property
    def group(self) -> str:
        """Episodes of a group run together in lockstep (and are resumed together)."""
        return "|".join(self.key.split("|")[:3])


@dataclass(frozen=True)
class Protocol:
    name: str
    path: Path
    sha256: str
    data: dict

    @property
    def cost_d_max(self) -> float:
        return float(self.data["cost_d_max_m"])

    @property
    def intervention_threshold(self) -> float:
        return float(self.data["intervention_threshold_m"])

    @property
    def penalty_s(self) -> float:
        return float(self.data["intervention_penalty_s"])

    @property
    def policy_hz(self) -> float:
        return float(self.data["policy_hz"])

    def profile(self, name: str) -> dict:
        profiles = self.data["profiles"]
        if name not in profiles:
            raise ProtocolError(f"unknown profile {name!r} in {self.name}; profiles are: {', '.join(profiles)}")
        return profiles[name]

    def horizons(self, profile: str) -> list[int]:
        return [int(h) for h in self.profile(profile)["horizons"]]

    def drift_edges(self) -> tuple[np.ndarray, np.ndarray]:
        d0, d1, nd = self.data["drift_bins"]["d_m"]
        p0, p1, npsi = self.data["drift_bins"]["psi_rad"]
        return np.linspace(d0, d1, int(nd) + 1), np.linspace(p0, p1, int(npsi) + 1)

    def episodes(self, profile: str, conditions: list[str] | None = None) -> list[EvalEpisode]:
        """Every episode of a profile (optionally only some conditions), in a fixed order."""
        p = self.profile(profile)
        wanted = list(p["conditions"]) if conditions is None else list(conditions)
        for c in wanted:
            if c not in self.data["conditions"]:
                raise ProtocolError(f"unknown condition {c!r}; {self.name} has: {', '.join(self.data['conditions'])}")
        out: list[EvalEpisode] = []
        runs = [(c, "crash") for c in p["conditions"]] + [(c, "intervention") for c in p.get("intervention_conditions", [])]
        for t_index, (track, track_seed) in enumerate(self.tracks(profile)):
            name = track if track_seed is None else f"procedural-{track_seed}"
            for condition, mode in runs:
                if condition not in wanted:
                    continue
                spec = self.data["conditions"][condition] or {}
                c_index, m_index = list(self.data["conditions"]).index(condition), MODES.index(mode)
                for k in range(int(p["episodes"])):
                    rng = np.random.default_rng([int(self.data["seed"]), t_index, c_index, m_index, k])
                    seed = int(rng.integers(2**31))
                    d = psi = 0.0
                    if "lateral_offset_m" in spec:
                        d = float(rng.uniform(-spec["lateral_offset_m"], spec["lateral_offset_m"]))
                        psi = float(rng.uniform(-spec["heading_error_rad"], spec["heading_error_rad"]))
                    effect = None
                    if "effects" in spec:
                        effect = spec["effects"][(k + t_index) % len(spec["effects"])]
                    out.append(EvalEpisode(
                        key=f"{name}|{condition}|{mode}|{k}", track=track, track_seed=track_seed,
                        condition=condition, mode=mode, index=k, seed=seed, max_steps=int(p["max_steps"]),
                        lateral_offset=d, heading_error=psi, traffic=int(spec.get("vehicles", 0)), effect=effect))
        return out

    def tracks(self, profile: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        for entry in self.profile(profile)["tracks"]:
            entry = str(entry)
            if entry.startswith("procedural:"):
                for s in parse_seeds(entry.split(":", 1)[1]):
                    if s not in TEST_SEEDS:
                        raise ProtocolError(f"{self.name}: procedural seed {s} is not a held-out test seed")
                    out.append(("procedural", s))
            elif entry in BUILTIN_TRACKS:
                out.append((entry, None))
            else:
                raise ProtocolError(f"{self.name}: unknown track {entry!r}")
        return out


@functools.lru_cache(maxsize=8)
def load_protocol(name_or_path: str = DEFAULT_PROTOCOL) -> Protocol:
    """A protocol by name (benchmark/protocols/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROTOCOL_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))
        raise ProtocolError(f"unknown protocol {name_or_path!r}; known protocols: {', '.join(known)}")
    data = yaml.safe_load(path.read_text())
    required = {"name", "seed", "policy_hz", "cost_d_max_m", "intervention_threshold_m", "intervention_penalty_s",
                "drift_bins", "conditions", "profiles"}
    missing = sorted(required - set(data or {}))
    if missing:
        raise ProtocolError(f"{path}: missing {', '.join(missing)}")
    for c in data["conditions"]:
        if c not in CONDITIONS:
            raise ProtocolError(f"{path}: unknown condition {c!r}; the harness knows {', '.join(CONDITIONS)}")
    return Protocol(str(data["name"]), path, sha256_file(path), data)
