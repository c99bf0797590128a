"""The versioned evaluation protocol: which episodes a result is made of.

A protocol file (benchmark/evaluation/protocols/<name>.yaml) fixes the test tracks (built-ins plus
held-out procedural test seeds), the conditions, the horizon checkpoints, the number of episodes
and every episode's seed, in a `quick` and a `full` profile. It is read strictly into a typed
`Protocol` (a misspelled key is an error that names it); `episodes(profile)` expands it into the
exact list of EvalEpisodes, each with a stable EpisodeKey; the same protocol always gives the same
list.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from benchmark.common.config import ConfigError, build_config, parse_seeds
from benchmark.common.files import sha256_file
from envs import BUILTIN_TRACKS, TEST_SEEDS

from .records import EpisodeKey

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
DEFAULT_PROTOCOL = "steerbench-v1"
CONDITIONS = ("nominal", "perturbed", "photometric", "traffic", "disturbed")
MODES = ("crash", "intervention")


class ProtocolError(ValueError):
    """An unknown protocol, profile or condition, or a malformed protocol file."""


@dataclass(frozen=True)
class EvalEpisode:
    """One evaluation episode, identical for every policy evaluated under the protocol."""

    key: EpisodeKey
    """Stable id: track|condition|mode|index."""
    track: str
    track_seed: int | None
    seed: int
    """The environment's reset seed."""
    max_steps: int
    lateral_offset: float = 0.0
    """Start offset from the lane centre [m] (perturbed condition)."""
    heading_error: float = 0.0
    """Start heading error [rad] (perturbed condition)."""
    traffic: int = 0
    """Other vehicles on the road (traffic condition)."""
    effect: str | None = None
    """Photometric effect applied to the observations (photometric condition)."""
    disturbance: tuple[float, float, float, float] | None = None
    """(steering noise std [1/m], its correlation time [s], lateral gust std [m/s], its correlation
    time [s]) of the vehicle disturbance (disturbed condition), seeded by the episode's seed."""

    @property
    def condition(self) -> str:
        return self.key.condition

    @property
    def mode(self) -> str:
        return self.key.mode

    @property
    def index(self) -> int:
        return self.key.index

    @property
    def group(self) -> str:
        """Episodes of a group run together in lockstep (and are resumed together)."""
        return self.key.group

    @property
    def steps(self) -> int:
        return self.max_steps


@dataclass(frozen=True)
class ConditionSpec:
    """One condition of the protocol file; an empty mapping is the nominal condition."""

    lateral_offset_m: float = 0.0
    """Largest |lateral offset| at reset (uniform in +-)."""
    heading_error_rad: float = 0.0
    """Largest |heading error| at reset (uniform in +-)."""
    effects: tuple[str, ...] = ()
    """Photometric effects, one per episode in turn (observation only)."""
    vehicles: int = 0
    """Other vehicles on the road."""
    steering_noise_std: float = 0.0
    """Disturbance: std of the steering-actuator noise added to the executed curvature [1/m]."""
    steering_noise_tau_s: float = 0.0
    """... its correlation time [s] (0: white noise)."""
    gust_std_mps: float = 0.0
    """Disturbance: std of the lateral gust speed that pushes the car sideways [m/s]."""
    gust_tau_s: float = 0.0
    """... its correlation time [s] (0: white noise)."""

    @property
    def disturbance(self) -> tuple[float, float, float, float] | None:
        if not (self.steering_noise_std or self.gust_std_mps):
            return None
        return (float(self.steering_noise_std), float(self.steering_noise_tau_s), float(self.gust_std_mps),
                float(self.gust_tau_s))


@dataclass(frozen=True)
class ProfileSpec:
    """A profile: tracks, conditions, episodes per track and condition, horizon checkpoints."""

    tracks: tuple[str, ...]
    """Built-in track names and `procedural:<seeds>` entries of held-out test seeds."""
    conditions: tuple[str, ...]
    """Conditions run in crash mode."""
    episodes: int
    max_steps: int
    horizons: tuple[int, ...]
    intervention_conditions: tuple[str, ...] = ()
    """Conditions also run in intervention mode."""


@dataclass(frozen=True)
class DriftBins:
    """Histogram bins of the drift metric: (low, high, count) for d [m] and psi [rad]."""

    d_m: tuple[float, float, int]
    psi_rad: tuple[float, float, int]


@dataclass(frozen=True)
class ProtocolSpec:
    """The keys of a protocol file."""

    name: str
    seed: int
    """Root of every episode's reset seed."""
    policy_hz: float
    cost_d_max_m: float
    """c_t = min(1, |d_t| / d_max), 1 from a failure on."""
    intervention_threshold_m: float
    intervention_penalty_s: float
    drift_bins: DriftBins
    conditions: dict[str, ConditionSpec]
    profiles: dict[str, ProfileSpec]

    def __post_init__(self) -> None:  # YAML writes 10 for 10.0: numbers get their declared types
        for name in ("policy_hz", "cost_d_max_m", "intervention_threshold_m", "intervention_penalty_s"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "seed", int(self.seed))


@dataclass(frozen=True)
class Protocol(ProtocolSpec):
    """A loaded protocol: the file's keys, where it came from and the sha256 of the file."""

    path: Path = Path()
    sha256: str = ""

    def condition_index(self, condition: str) -> int:
        """The condition's position in the protocol file (it seeds the condition's rngs)."""
        return list(self.conditions).index(condition)

    def profile(self, name: str) -> ProfileSpec:
        if name not in self.profiles:
            raise ProtocolError(f"unknown profile {name!r} in {self.name}; profiles are: {', '.join(self.profiles)}")
        return self.profiles[name]

    def horizons(self, profile: str) -> list[int]:
        return [int(h) for h in self.profile(profile).horizons]

    def drift_edges(self) -> tuple[np.ndarray, np.ndarray]:
        d0, d1, nd = self.drift_bins.d_m
        p0, p1, npsi = self.drift_bins.psi_rad
        return np.linspace(d0, d1, int(nd) + 1), np.linspace(p0, p1, int(npsi) + 1)

    def episodes(self, profile: str, conditions: list[str] | None = None) -> list[EvalEpisode]:
        """Every episode of a profile (optionally only some conditions), in a fixed order."""
        p = self.profile(profile)
        wanted = list(p.conditions) if conditions is None else list(conditions)
        for c in wanted:
            if c not in self.conditions:
                raise ProtocolError(f"unknown condition {c!r}; {self.name} has: {', '.join(self.conditions)}")
        out: list[EvalEpisode] = []
        runs = [(c, "crash") for c in p.conditions] + [(c, "intervention") for c in p.intervention_conditions]
        for t_index, (track, track_seed) in enumerate(self.tracks(profile)):
            name = track if track_seed is None else f"procedural-{track_seed}"
            for condition, mode in runs:
                if condition not in wanted:
                    continue
                spec = self.conditions[condition]
                c_index, m_index = self.condition_index(condition), MODES.index(mode)
                for k in range(int(p.episodes)):
                    rng = np.random.default_rng([self.seed, t_index, c_index, m_index, k])
                    seed = int(rng.integers(2**31))
                    d = psi = 0.0
                    if spec.lateral_offset_m or spec.heading_error_rad:
                        d = float(rng.uniform(-spec.lateral_offset_m, spec.lateral_offset_m))
                        psi = float(rng.uniform(-spec.heading_error_rad, spec.heading_error_rad))
                    effect = spec.effects[(k + t_index) % len(spec.effects)] if spec.effects else None
                    out.append(EvalEpisode(
                        key=EpisodeKey(name, condition, mode, k), track=track, track_seed=track_seed, seed=seed,
                        max_steps=int(p.max_steps), lateral_offset=d, heading_error=psi,
                        traffic=int(spec.vehicles), effect=effect, disturbance=spec.disturbance))
        return out

    def tracks(self, profile: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        for entry in self.profile(profile).tracks:
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
    """A protocol by name (benchmark/evaluation/protocols/<name>.yaml) or by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROTOCOL_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml"))
        raise ProtocolError(f"unknown protocol {name_or_path!r}; known protocols: {', '.join(known)}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ProtocolError(f"{path}: not a protocol file (expected a mapping)")
    missing = [f for f in ProtocolSpec.__dataclass_fields__ if f not in data]
    if missing:
        raise ProtocolError(f"{path}: missing {', '.join(missing)}")
    for c in data["conditions"] or {}:
        if c not in CONDITIONS:
            raise ProtocolError(f"{path}: unknown condition {c!r}; the harness knows {', '.join(CONDITIONS)}")
    try:
        spec = build_config(ProtocolSpec, {
            **data, "drift_bins": {k: tuple(v) for k, v in (data["drift_bins"] or {}).items()},
            "conditions": {c: _tuples(build_config(ConditionSpec, s or {}, where=f"{path}: conditions.{c}"))
                           for c, s in (data["conditions"] or {}).items()},
            "profiles": {p: _tuples(build_config(ProfileSpec, s, where=f"{path}: profiles.{p}"))
                         for p, s in (data["profiles"] or {}).items()}}, where=str(path))
    except ConfigError as exc:
        raise ProtocolError(str(exc)) from None
    return Protocol(**vars(spec), path=path, sha256=sha256_file(path))


def _tuples(obj):
    """A spec whose list fields (from YAML) are tuples, so the protocol is hashable and immutable."""
    changes = {k: tuple(v) for k, v in vars(obj).items() if isinstance(v, list)}
    return type(obj)(**{**vars(obj), **changes})
