"""The versioned evaluation protocol: which episodes a result is made of.

A protocol file (benchmark/evaluation/protocols/<name>.yaml) fixes the test tracks (built-ins plus
held-out procedural test seeds), the conditions, the horizon checkpoints, the number of episodes
and every episode's seed, in a `quick` and a `full` profile. It is read strictly into a typed
`Protocol` (a misspelled key is an error that names it); `episodes(profile)` expands it into the
exact list of EvalEpisodes, each with a stable EpisodeKey; the same protocol always gives the same
list.

Version 2 (steerbench-v2.yaml) adds, per profile:
- `seen_tracks`: built-in tracks, which training uses, run like the others but reported apart as
  "seen tracks", never pooled with the held-out `tracks`;
- `offpolicy_conditions`: the held-out tracks' crash-mode episodes once more in mode `offpolicy`:
  the teacher drives (under the same disturbance) and the learner is only queried, so its mistakes
  on the teacher's own trajectories (eps_off) can be set against those on its own (eps_on);
- `floor_conditions`: the teacher's evaluation (only the teacher's) runs each held-out crash episode
  once more in mode `replica`, under a second, independent disturbance stream: the
  teacher-vs-teacher floor of the paired drift;
- `tracks_file`: the held-out tracks listed in a separate file next to the protocol (one entry per
  line), so that a leaderboard can keep a private test list beside the public development list;
  the file's sha256 is part of the profile's identity.

A condition may place static obstacles on the lane (`obstacles:`, envs.ObstacleConfig's keys, `{}` for
the defaults), which the teacher passes on a side drawn from the episode's seed (steerbench-tasks-v1.yaml:
the obstacle task, its own protocol so that v1 and v2 stay as their stored results were made).
Intervention mode is refused for such a condition: it measures the offset from the lane centre, which
every pass exceeds.

A condition may draw a steering gauge into the frames (`indicator:`, envs.IndicatorConfig's keys),
showing the curvature executed at the previous step: the causal-confusion task
(steerbench-causal-v1.yaml); `dropout:` (envs.DropoutConfig's keys) loses the frame for seeded
stretches of steps: the memory task (steerbench-memory-v1.yaml); `lane_goals:` (envs.lane_goals'
LaneGoalConfig keys) commands lane changes on roads of two lanes or more: the lane-goal task
(steerbench-lanes-v1.yaml); `intents:` (envs.intents' IntentConfig keys) has the teacher drive with
hidden intents (keep, change lane, overtake) in its own lane-changing traffic (envs.intents.INTENT_TRAFFIC),
while the policy sees the frames alone: the hierarchical task (steerbench-intents-v1.yaml). `seeds_of: <condition>` gives a
condition the episode seeds of another one, so that the two pair episode by episode (the same start
states and disturbances, with and without the gauge or the dropouts).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from benchmark.common.config import ConfigError, build_config, parse_seeds
from benchmark.common.files import sha256_file
from envs import BUILTIN_TRACKS, TEST_SEEDS, DropoutConfig, IndicatorConfig, ObstacleConfig
from envs.intents import IntentConfig
from envs.lane_goals import LaneGoalConfig

from .records import EpisodeKey

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
DEFAULT_PROTOCOL = "steerbench-v2"
CONDITIONS = ("nominal", "perturbed", "photometric", "traffic", "disturbed", "obstacles", "obstacles_disturbed",
              "indicator", "indicator_disturbed", "dropout", "dropout_disturbed", "lane_goals", "lane_goals_disturbed", "intents",
              "intents_disturbed")
MODES = ("crash", "intervention", "offpolicy", "replica")
"""crash: the policy drives until its first failure; intervention: NVIDIA's safety driver takes over;
offpolicy: the teacher drives the crash episode and the policy is only queried; replica: the teacher
(only) drives the crash episode under a second disturbance stream (the drift floor)."""
SEED_MODE = {"offpolicy": "crash", "replica": "crash"}
"""Modes that replay another mode's episodes: the same reset seed and start state."""


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
    disturbance_stream: int = 0
    """Which of the episode's disturbance sequences: 0 for every policy, 1 for the teacher's replica."""
    obstacles: ObstacleConfig | None = None
    """Static obstacles on the lane (obstacle conditions); the teacher's passing sides come from `seed`."""
    indicator: IndicatorConfig | None = None
    """The steering gauge drawn into the frames (causal-confusion conditions)."""
    dropout: DropoutConfig | None = None
    """Camera dropouts (memory conditions), their schedule drawn from `seed`."""
    lane_goals: LaneGoalConfig | None = None
    """Commands to change lane (lane-goal conditions), drawn from `seed`."""
    intents: IntentConfig | None = None
    """The teacher's hidden intents in their lane-changing traffic (intents conditions), drawn from `seed`."""
    seen: bool = False
    """A built-in track that training uses (reported apart from the held-out tracks)."""

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
    obstacles: ObstacleConfig | None = None
    """Static obstacles on the episode's lane (envs.ObstacleConfig keys; {} for the defaults)."""
    indicator: IndicatorConfig | None = None
    """A steering gauge in each frame showing the previous executed curvature (envs.IndicatorConfig
    keys; {} for the defaults)."""
    dropout: DropoutConfig | None = None
    """Camera dropouts: stretches of lost frames drawn from the episode's seed (envs.DropoutConfig keys)."""
    lane_goals: LaneGoalConfig | None = None
    """Commands to change to the lane on the left or right, drawn from the episode's seed (envs.lane_goals'
    LaneGoalConfig keys; {} for the defaults); the tracks need two lanes or more."""
    intents: IntentConfig | None = None
    """The teacher drives with hidden intents (keep, change lane, overtake; envs.intents' IntentConfig keys, {}
    for the defaults) in the intents' own traffic (envs.intents.INTENT_TRAFFIC: `vehicles` must be 0); the
    tracks need two lanes or more, and the policy sees the frames alone."""
    seeds_of: str | None = None
    """Another condition whose episode seeds (so its start states and disturbances) this one reuses,
    so that the two pair episode by episode (a task against its plain twin). None: its own."""

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
    """Built-in track names and `procedural:<seeds>` (or `fork:<seeds>`, road networks with forks) entries of
    held-out test seeds."""
    conditions: tuple[str, ...]
    """Conditions run in crash mode."""
    episodes: int
    max_steps: int
    horizons: tuple[int, ...]
    intervention_conditions: tuple[str, ...] = ()
    """Conditions also run in intervention mode."""
    seen_tracks: tuple[str, ...] = ()
    """Built-in tracks that training uses: run like `tracks`, reported apart as seen tracks (v2)."""
    offpolicy_conditions: tuple[str, ...] = ()
    """Conditions whose crash episodes are also run with the teacher driving, the policy queried (v2)."""
    floor_conditions: tuple[str, ...] = ()
    """Conditions whose crash episodes the teacher also drives under a second disturbance stream (v2)."""
    tracks_file: str = ""
    """A file of held-out tracks (one entry per line, # comments), relative to the protocol file,
    used instead of `tracks`: a leaderboard's private test list (v2)."""


@dataclass(frozen=True)
class DriftBins:
    """Histogram bins of the drift metric: (low, high, count) for d [m] and psi [rad]."""

    d_m: tuple[float, float, int]
    psi_rad: tuple[float, float, int]


@dataclass(frozen=True)
class MetricSpec:
    """Parameters of the version-2 metrics (benchmark/evaluation/metrics.py)."""

    mistake_tau_per_m: float
    """A step is a mistake when |a - a*| > tau [1/m] (eps_t, eps_on, eps_off)."""
    excursion_onset_m: float
    """An excursion starts when |d| rises above this [m] ..."""
    excursion_recover_m: float
    """... and has recovered when |d| falls back under this [m] without a failure."""
    regret_t_min: int
    """Regret slope window: from this horizon [steps] ..."""
    regret_min_survival: float
    """... to the last horizon at which the learner's survival is at least this."""
    curvature_bins_per_m: tuple[float, ...]
    """Edges of the held-out tracks' families by their sharpest turn, 1 / (smallest arc radius) [1/m]."""

    def __post_init__(self) -> None:
        for name in ("mistake_tau_per_m", "excursion_onset_m", "excursion_recover_m", "regret_min_survival"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "regret_t_min", int(self.regret_t_min))
        object.__setattr__(self, "curvature_bins_per_m", tuple(float(v) for v in self.curvature_bins_per_m))


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
    version: int = 1
    """1: the v1 metrics only; 2: seen tracks apart, paired metrics against the teacher, intervals."""
    metrics: MetricSpec | None = None
    """The version-2 metrics' parameters (required from version 2 on)."""

    def __post_init__(self) -> None:  # YAML writes 10 for 10.0: numbers get their declared types
        for name in ("policy_hz", "cost_d_max_m", "intervention_threshold_m", "intervention_penalty_s"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "version", int(self.version))


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

    def episodes(self, profile: str, conditions: list[str] | None = None, teacher: bool = False) -> list[EvalEpisode]:
        """Every episode of a profile (optionally only some conditions), in a fixed order; `teacher`
        adds the replica episodes that only the teacher's (reference) evaluation runs."""
        p = self.profile(profile)
        wanted = list(p.conditions) if conditions is None else list(conditions)
        for c in wanted:
            if c not in self.conditions:
                raise ProtocolError(f"unknown condition {c!r}; {self.name} has: {', '.join(self.conditions)}")
        out: list[EvalEpisode] = []
        runs = [(c, "crash") for c in p.conditions] + [(c, "intervention") for c in p.intervention_conditions]
        runs += [(c, "offpolicy") for c in p.offpolicy_conditions]
        if teacher:
            runs += [(c, "replica") for c in p.floor_conditions]
        seen = {str(t) for t in p.seen_tracks}
        for t_index, (track, track_seed) in enumerate(self.tracks(profile)):
            name = track if track_seed is None else f"{track}-{track_seed}"
            is_seen = track_seed is None and track in seen
            for condition, mode in runs:
                if condition not in wanted or (is_seen and mode in SEED_MODE):
                    continue  # offpolicy and replica serve the held-out tracks' metrics only
                spec = self.conditions[condition]
                c_index = self.condition_index(spec.seeds_of or condition)
                m_index = MODES.index(SEED_MODE.get(mode, mode))
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
                        traffic=int(spec.vehicles), effect=effect, disturbance=spec.disturbance,
                        disturbance_stream=int(mode == "replica"), obstacles=spec.obstacles,
                        indicator=spec.indicator, dropout=spec.dropout, lane_goals=spec.lane_goals,
                        intents=spec.intents, seen=is_seen))
        return out

    def tracks_path(self, profile: str) -> Path | None:
        """The profile's separate track list, if it has one (it must exist)."""
        name = self.profile(profile).tracks_file
        if not name:
            return None
        path = self.path.parent / name
        if not path.is_file():
            raise ProtocolError(f"{self.name}: the track list of profile {profile!r} ({path.name}) is not here; it is "
                                f"kept apart (a leaderboard's private test list): put it next to {self.path.name}")
        return path

    def tracks_sha256(self, profile: str) -> str | None:
        """The sha256 of the profile's separate track list (part of its identity), else None."""
        path = self.tracks_path(profile)
        return sha256_file(path) if path else None

    def tracks(self, profile: str) -> list[tuple[str, int | None]]:
        """The profile's (track, procedural seed or None) in order: held-out tracks, then seen tracks."""
        p = self.profile(profile)
        entries = [str(t) for t in p.tracks]
        if (path := self.tracks_path(profile)) is not None:
            entries = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
            entries = [e for e in entries if e]
            if not entries:
                raise ProtocolError(f"{path}: no tracks")
        if self.version >= 2:
            for e in entries:
                if not e.startswith(("procedural:", "fork:")):
                    raise ProtocolError(f"{self.name}: profile {profile!r} lists {e!r} among its held-out tracks; "
                                        "built-in tracks are seen in training: list them under seen_tracks")
        out = self._parse_tracks(entries)
        for name in p.seen_tracks:
            if str(name) not in BUILTIN_TRACKS:
                raise ProtocolError(f"{self.name}: seen track {name!r} is not a built-in track")
        out += [(str(name), None) for name in p.seen_tracks]
        if len(set(out)) != len(out):
            raise ProtocolError(f"{self.name}: profile {profile!r} lists a track twice")
        return out

    def commanded(self, profile: str) -> bool:
        """Whether the profile's observations carry a command: road networks with forks, or a condition with
        lane goals (the protocols of conditional models: the leaderboard ranks them on their own table)."""
        p = self.profile(profile)
        return any(track == "fork" for track, _ in self.tracks(profile)) or any(
            self.conditions[c].lane_goals is not None for c in p.conditions)

    def _parse_tracks(self, entries: list[str]) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []
        for entry in entries:
            if entry.startswith("procedural:"):
                for s in parse_seeds(entry.split(":", 1)[1]):
                    if s not in TEST_SEEDS:
                        raise ProtocolError(f"{self.name}: procedural seed {s} is not a held-out test seed")
                    out.append(("procedural", s))
            elif entry.startswith("fork:"):  # procedural road networks with forks (envs.forks)
                for s in parse_seeds(entry.split(":", 1)[1]):
                    if s not in TEST_SEEDS:
                        raise ProtocolError(f"{self.name}: fork seed {s} is not a held-out test seed")
                    out.append(("fork", s))
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
    required = [f.name for f in dataclasses.fields(ProtocolSpec)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [f for f in required if f not in data]
    if missing:
        raise ProtocolError(f"{path}: missing {', '.join(missing)}")
    for c, s in (data["conditions"] or {}).items():
        if c not in CONDITIONS:
            raise ProtocolError(f"{path}: unknown condition {c!r}; the harness knows {', '.join(CONDITIONS)}")
        for key, what in (("obstacles", "obstacle"), ("indicator", "indicator"), ("dropout", "dropout"),
                          ("lane_goals", "lane goal"), ("intents", "intent")):
            if isinstance(s, dict) and key in s and not isinstance(s[key], dict):
                raise ProtocolError(f"{path}: conditions.{c}.{key} must be a mapping of {what} settings ({{}} for "
                                    f"the defaults), got {s[key]!r}; leave the key out for no {key}")
        if isinstance(s, dict) and "intents" in s and s.get("vehicles"):
            raise ProtocolError(f"{path}: conditions.{c}: intents bring their own traffic (envs.intents.INTENT_TRAFFIC); "
                                f"leave vehicles out, got {s['vehicles']!r}")
        twin = s.get("seeds_of") if isinstance(s, dict) else None
        if twin is not None and (twin not in (data["conditions"] or {}) or twin == c):
            raise ProtocolError(f"{path}: conditions.{c}.seeds_of must name another condition of this protocol, "
                                f"got {twin!r}")
    try:
        spec = build_config(ProtocolSpec, {
            **data, "drift_bins": {k: tuple(v) for k, v in (data["drift_bins"] or {}).items()},
            "conditions": {c: _tuples(build_config(ConditionSpec, s or {}, where=f"{path}: conditions.{c}"))
                           for c, s in (data["conditions"] or {}).items()},
            "profiles": {p: _tuples(build_config(ProfileSpec, s, where=f"{path}: profiles.{p}"))
                         for p, s in (data["profiles"] or {}).items()},
            **({"metrics": build_config(MetricSpec, data["metrics"], where=f"{path}: metrics")}
               if data.get("metrics") is not None else {})}, where=str(path))
    except ConfigError as exc:
        raise ProtocolError(str(exc)) from None
    if spec.version not in (1, 2):
        raise ProtocolError(f"{path}: unknown version {spec.version} (this SteerBench runs versions 1 and 2)")
    if spec.version >= 2 and spec.metrics is None:
        raise ProtocolError(f"{path}: a version-2 protocol needs its metrics parameters (metrics:)")
    for name, prof in spec.profiles.items():
        for key in ("conditions", "intervention_conditions", "offpolicy_conditions", "floor_conditions"):
            for c in getattr(prof, key):
                if c not in spec.conditions:
                    raise ProtocolError(f"{path}: profiles.{name}.{key} names {c!r}, which is not a condition")
        for key, why in (("obstacles", "obstacles, whose passes"), ("lane_goals", "lane goals, whose lane changes"),
                         ("intents", "intents, whose lane changes")):
            blocked = [c for c in prof.intervention_conditions if getattr(spec.conditions[c], key) is not None]
            if blocked:
                raise ProtocolError(f"{path}: profiles.{name}.intervention_conditions: {blocked[0]!r} has {why} "
                                    "exceed the safety driver's offset from the lane centre")
        for key in ("offpolicy_conditions", "floor_conditions"):
            extra = [c for c in getattr(prof, key) if c not in prof.conditions]
            if extra:
                raise ProtocolError(f"{path}: profiles.{name}.{key}: {extra[0]!r} is not among the profile's "
                                    "crash-mode conditions, whose episodes it replays")
        if (prof.offpolicy_conditions or prof.floor_conditions or prof.seen_tracks or prof.tracks_file) \
                and spec.version < 2:
            raise ProtocolError(f"{path}: profiles.{name} uses version-2 keys in a version-1 protocol")
    return Protocol(**vars(spec), path=path, sha256=sha256_file(path))


def _tuples(obj):
    """A spec whose list fields (from YAML) are tuples, so the protocol is hashable and immutable."""
    changes = {k: tuple(v) for k, v in vars(obj).items() if isinstance(v, list)}
    return type(obj)(**{**vars(obj), **changes})
