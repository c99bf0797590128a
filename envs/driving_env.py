"""DrivingEnv: lane keeping from a dashcam on highway-env roads.

The ego car (highway-env's kinematic bicycle) drives at the track's cruise speed; the policy only
steers, with the path curvature as its action. The observation is the centre camera's RGB frame.
Optional traffic is highway-env's IDM vehicles, optional obstacles static boxes on the lane
(envs.obstacles), which the teacher passes on a side drawn per episode; touching either is a
collision. An optional dashboard gauge (envs.indicator) shows the curvature executed at the previous
step along the bottom of each frame: the causal-confusion task. Optional camera dropouts
(envs.dropout) lose the frame for seeded stretches of steps: the memory task. `info` reports the state
a benchmark needs (offset from the lane centre, heading error, the teacher's action, progress,
failures) and a dict of named reward terms.

On a road network with forks (envs.forks: track="fork" with track_seed, or a track file with fork
segments) every reset draws a route from its seed, and the observation is a dict of the frame and the
command (follow, left or right at the next fork); the car must take the route's branch at each fork.
With lane goals (envs.lane_goals) on a road of two lanes or more, the observation is the same dict, the
command being to change to the lane on the left or the right; the car's lane is then the lane it is in.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from benchmark.common.config import ConfigError, build_config, require

from .camera import Box, Camera, CameraConfig, MapTexture, map_texture
from .dropout import DropoutConfig, dropout_rng, dropout_schedule
from .forks import COMMANDS, ROUTE_STREAM, ForkNetwork, Route, fork_network
from .indicator import IndicatorConfig, draw_indicator
from .intents import IntentConfig, Intents, Nearby, intent_rng
from .lane_goals import LaneGoalConfig, LaneGoals, lane_goal_rng
from .obstacles import (
    CAR_RADIUS_M,
    SIDE_STREAM,
    Obstacle,
    ObstacleConfig,
    PassPlan,
    box_corners,
    layout,
    plan_passes,
    rectangles_touch,
)
from .procedural import procedural_track
from .road_network import TrafficRoad
from .teacher import Teacher, TeacherConfig
from .topdown import chase_view, draw_car, map_image
from .tracks import BUILTIN_TRACKS, Track, builtin_track, load_track_file, wrap_angle
from .traffic import TrafficVehicle
from .vehicle import LENGTH_M, MAX_CURVATURE, WIDTH_M, EgoVehicle, curvature_to_steering, lens_position, virtual_pose

RESET_OPTIONS = ("lateral_offset", "heading_error", "lane", "start_s")
TRAFFIC_COLORS = ((40, 90, 180), (230, 200, 60), (225, 225, 225), (40, 40, 45), (120, 160, 90), (150, 90, 170))
"""Traffic vehicle colours; red is kept for the ego car in top-down views."""
EGO_COLOR = (220, 40, 40)


@dataclass(frozen=True)
class TrafficConfig:
    """Other vehicles: highway-env IDM vehicles that keep their lane."""

    vehicles: int = 0
    """Number of traffic vehicles (0: no traffic)."""
    other_lane_speed: tuple[float, float] = (0.5, 0.9)
    """Speed range of the other lanes, as a fraction of the cruise speed (the ego overtakes their
    vehicles). One speed per lane, so that no vehicle closes on another; the ego's lane (used on
    one-lane tracks) drives at the cruise speed."""
    min_gap_m: float = 25.0
    """Smallest gap along the track between spawned vehicles, the ego included [m]."""
    lane_changes: bool = False
    """Vehicles change lane (highway-env's MOBIL). They are then spawned on every lane, the ego's
    included, each with its own speed from other_lane_speed, so that they close on each other (the
    intents task, envs.intents)."""

    def __post_init__(self) -> None:
        require(0 <= self.vehicles <= 64, f"traffic vehicles must be 0..64, got {self.vehicles}")
        lo, hi = self.other_lane_speed
        require(0 < lo <= hi <= 1.5, f"other_lane_speed must satisfy 0 < low <= high <= 1.5, got {self.other_lane_speed}")
        require(self.min_gap_m >= 8, f"min_gap_m must be at least 8 m, got {self.min_gap_m}")


@dataclass(frozen=True)
class EnvConfig:
    """Simulation, episode and rendering settings of a DrivingEnv."""

    policy_hz: float = 10.0
    """Policy steps per second."""
    sim_substeps: int = 2
    """Integration steps of the vehicle dynamics per policy step."""
    cruise_speed: float | None = None
    """Ego speed [m/s]; None uses the track's own cruise speed."""
    max_steps: int = 3000
    """Episode length in policy steps before truncation."""
    terminate_on_failure: bool = True
    """End the episode at the first off-road or collision (False: the caller handles failures)."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The privileged teacher that labels states."""
    render_size: int = 320
    """Side of the square top-down view returned by render() in rgb_array mode [px]."""
    render_ppm: float = 4.0
    """Scale of the top-down view [pixels per metre]."""
    render_observation: bool = True
    """Render the centre camera into each observation. False, for policies that read the state and
    never the camera (the privileged teacher, straight-ahead): reset, step and recover return one
    constant black frame (read-only) and skip the camera, which is most of a step's cost; the
    simulation, the infos and the teacher are the same. render_view and render_rig still render."""

    def __post_init__(self) -> None:
        require(1.0 <= self.policy_hz <= 100.0, f"policy_hz must be 1..100, got {self.policy_hz}")
        require(1 <= self.sim_substeps <= 20, f"sim_substeps must be 1..20, got {self.sim_substeps}")
        require(self.cruise_speed is None or 1.0 <= self.cruise_speed <= 30.0,
                f"cruise_speed must be 1..30 m/s or None, got {self.cruise_speed}")
        require(self.max_steps >= 1, f"max_steps must be positive, got {self.max_steps}")


def resolve_track(track: str | Track | ForkNetwork = "racetrack", track_seed: int | None = None,
                  track_file: str | Path | None = None) -> Track | ForkNetwork:
    """A Track from a built-in name, a procedural seed or a spec file; a ForkNetwork for the procedural
    fork networks ("fork" with a seed) and spec files with forks."""
    if isinstance(track, (Track, ForkNetwork)):
        return track
    if track in ("procedural", "fork"):
        if track_seed is None:
            raise ValueError(f"the {track} track needs track_seed=<non-negative integer>")
        return procedural_track(int(track_seed)) if track == "procedural" else fork_network(int(track_seed))
    if track == "custom":
        if track_file is None:
            raise ValueError("the custom track needs track_file=<path to a .json/.yaml track spec>")
        return load_track_file(track_file)
    if track in BUILTIN_TRACKS:
        return builtin_track(track)
    raise ValueError(
        f"unknown track {track!r}; use one of {', '.join(BUILTIN_TRACKS)}, 'procedural' or 'fork' (with "
        "track_seed) or 'custom' (with track_file)"
    )


def _traffic_config(traffic: Any) -> TrafficConfig:
    if traffic is None or traffic is False:
        return TrafficConfig()
    if traffic is True:
        return TrafficConfig(vehicles=8)
    if isinstance(traffic, (int, np.integer)):
        return TrafficConfig(vehicles=int(traffic))
    return build_config(TrafficConfig, traffic, where="traffic")


def _obstacle_config(obstacles: Any) -> ObstacleConfig | None:
    """None (no obstacles) for None, False or 0; the defaults for True; N obstacles per track for an int."""
    if obstacles is None or obstacles is False:
        return None
    if obstacles is True:
        return ObstacleConfig()
    if isinstance(obstacles, (int, np.integer)):
        return ObstacleConfig(count=int(obstacles)) if obstacles else None
    return build_config(ObstacleConfig, obstacles, where="obstacles")


def _optional_config(cls, value: Any, where: str):
    """An optional feature's config: None (off) for None or False, the defaults for True, else cls's keys."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    return build_config(cls, value, where=where)


class DrivingEnv(gym.Env):
    """Steer a car along its lane from dashcam frames. See the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, track: str | Track | ForkNetwork = "racetrack", *, track_seed: int | None = None,
                 track_file: str | Path | None = None, camera: Any = None, traffic: Any = None,
                 obstacles: Any = None, indicator: Any = None, dropout: Any = None, lane_goals: Any = None,
                 intents: Any = None,
                 config: Any = None, render_mode: str | None = None):
        resolved = resolve_track(track, track_seed, track_file)
        self.network: ForkNetwork | None = resolved if isinstance(resolved, ForkNetwork) else None
        """The road network with forks (None on a plain track); self.track is then the episode's route."""
        self.route: Route | None = None
        """This episode's route through the network (None on a plain track)."""
        self._route_rng: np.random.Generator | None = None
        if self.network is not None:
            if traffic or obstacles:
                raise ConfigError(f"{self.network.name}: traffic and obstacles are not supported on road networks "
                                  "with forks yet")
            self.route = self.network.route((-1,) * len(self.network.forks) * (1 + self.network.closed))
            resolved = self.route.track
        self.track = resolved
        self.track_seed = int(track_seed) if track in ("procedural", "fork") else None
        self.camera_config = build_config(CameraConfig, camera, where="camera")
        self.traffic_config = _traffic_config(traffic)
        self.obstacle_config = _obstacle_config(obstacles)
        if self.obstacle_config is not None and self.obstacle_config.lane is not None \
                and self.obstacle_config.lane >= self.track.lanes:
            raise ConfigError(f"obstacles: lane {self.obstacle_config.lane} is not a lane of {self.track.name} "
                              f"(lanes 0..{self.track.lanes - 1})")
        self.indicator_config: IndicatorConfig | None = _optional_config(IndicatorConfig, indicator, "indicator")
        self._executed = 0.0  # the curvature the gauge shows: executed at the previous step
        self.dropout_config: DropoutConfig | None = _optional_config(DropoutConfig, dropout, "dropout")
        self._dropout_rng: np.random.Generator | None = None
        self._dropped: np.ndarray | None = None  # per step: the observation is lost
        self.lane_goal_config: LaneGoalConfig | None = _optional_config(LaneGoalConfig, lane_goals, "lane_goals")
        if self.lane_goal_config is not None:
            if self.network is not None or traffic or obstacles:
                raise ConfigError("lane_goals: not supported with forks, traffic or obstacles yet")
            if self.track.lanes < 2:
                raise ConfigError(f"lane_goals: {self.track.name} has {self.track.lanes} lane; lane goals need two or "
                                  "more")
        self.goals: LaneGoals | None = None
        """This episode's lane goals (None without)."""
        self.intent_config: IntentConfig | None = _optional_config(IntentConfig, intents, "intents")
        if self.intent_config is not None:
            if self.network is not None or self.lane_goal_config is not None or obstacles:
                raise ConfigError("intents: not supported with forks, lane goals or obstacles")
            if self.track.lanes < 2:
                raise ConfigError(f"intents: {self.track.name} has {self.track.lanes} lane; intents need two or more")
        self.intents: Intents | None = None
        """This episode's intents (None without): the teacher's, hidden from the observation."""
        self._intent_rng: np.random.Generator | None = None
        self._switch_lanes = self.lane_goal_config is not None or self.intent_config is not None
        """The car's lane is the lane it is in (lane goals, intents), not the lane it started in."""
        self._hints: tuple[object, list[int]] | None = None  # traffic vehicles' segments on the car's lane path
        self._goal_rng: np.random.Generator | None = None
        self._delivered: np.ndarray | None = None  # the last frame the camera delivered (freeze mode)
        self._layouts: dict[int, list[Obstacle]] = {}
        self._side_rng: np.random.Generator | None = None
        self.config = build_config(EnvConfig, config, where="config")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"unsupported render_mode {render_mode!r}; supported: 'rgb_array' or None")
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.config.policy_hz}
        self.camera = Camera(self.camera_config)
        self._map: MapTexture | None = None
        self.teacher = Teacher(self.config.teacher)
        self.speed = self.config.cruise_speed or self.track.speed
        self.dt = 1.0 / (self.config.policy_hz * self.config.sim_substeps)
        c = self.camera_config
        self.frame_space = spaces.Box(0, 255, (c.height, c.width, 3), np.uint8)
        """The camera frame's space (the observation's, or its "frame" entry's with a command)."""
        self.commanded = self.network is not None or self.lane_goal_config is not None
        """Whether the observation is a dict of the frame and a command (forks, lane goals)."""
        self.observation_space = self.frame_space if not self.commanded else spaces.Dict(
            {"frame": self.frame_space, "command": spaces.Discrete(len(COMMANDS))})
        self.action_space = spaces.Box(-MAX_CURVATURE, MAX_CURVATURE, (1,), np.float32)
        self.road: TrafficRoad | None = None
        self.vehicle: EgoVehicle | None = None
        self._blank: np.ndarray | None = None
        self.obstacles: list[Obstacle] = []
        """This episode's obstacles (their lane's layout)."""
        self.passes: PassPlan | None = None
        """The teacher's passes of this episode's obstacles (None without obstacles)."""
        self._offset = None
        self._obstacle_boxes: list = []

    @property
    def map(self) -> MapTexture:
        """The track's map texture, drawn on first use: an env that never renders (the teacher's and the
        straight-ahead policy's evaluations) never pays for it, about a second for a large track."""
        if self._map is None:
            self._map = map_texture(self.track.drawing or self.track, self.camera_config.map_ppm)
        return self._map

    # --- episode --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = [k for k in options if k not in RESET_OPTIONS]
        if unknown:
            raise ValueError(f"unknown reset option {unknown[0]!r}; valid options are: {', '.join(RESET_OPTIONS)}")
        rng = self.np_random
        if self.network is not None:
            self._draw_route(seed)
        lane = options.get("lane")
        lane = int(rng.integers(self.track.lanes)) if lane is None else int(lane)
        if not 0 <= lane < self.track.lanes:
            raise ValueError(f"lane must be 0..{self.track.lanes - 1} on {self.track.name}, got {lane}")
        self.lane = lane
        self.path = self.track.paths[lane]
        start_s = options.get("start_s")
        random_start = start_s is None
        if random_start:
            start_s = rng.uniform(0.0, self.path.length) if self.track.closed else rng.uniform(20.0, 80.0)
        if self.obstacle_config is not None:
            self._plan_obstacles(seed)
            if random_start:  # an explicit start_s is honoured, even beside an obstacle
                start_s = self.passes.clear_start(float(start_s))
        d0 = float(options.get("lateral_offset", 0.0))
        psi0 = float(options.get("heading_error", 0.0))
        if not (math.isfinite(d0) and math.isfinite(psi0) and math.isfinite(float(start_s))):
            raise ValueError("reset options lateral_offset, heading_error and start_s must be finite numbers")
        x, y, h = self.path.pose_at(float(start_s), d0)
        self.road = TrafficRoad(network=self.track.network, np_random=rng)
        # lane-changing traffic looks for neighbours across lane segments too (highway-env's option),
        # so that MOBIL and the IDM see the car and each other near the segments' ends
        self.road.neighbour_vehicles_connected_lanes = self.traffic_config.lane_changes
        self.vehicle = EgoVehicle(self.road, np.array([x, y]), heading=h + psi0, speed=self.speed)
        self.road.vehicles.append(self.vehicle)
        self._seg, self._s, _, _ = self.path.project(x, y)
        self._progress = 0.0
        self._steps = 0
        self._spawn_traffic()
        self._update_state()
        self._executed = 0.0
        if self.lane_goal_config is not None:  # its own stream: the reset's other draws are untouched
            if seed is not None or self._goal_rng is None:
                self._goal_rng = lane_goal_rng(seed, self.track.name)
            self.goals = LaneGoals(self.lane_goal_config, self.track.lanes, self.track.lane_width, self.speed,
                                   self.config.policy_hz, self._goal_rng)
            self.goals.update(0, self.lane, self._d, self._progress)
            self._offset = self._goal_offset
        if self.intent_config is not None:  # its own stream: the reset's other draws are untouched
            if seed is not None or self._intent_rng is None:
                self._intent_rng = intent_rng(seed, self.track.name)
            self.intents = Intents(self.intent_config, self.track.lanes, self.track.lane_width, self.speed,
                                   self.config.policy_hz, self._intent_rng)
            self._hints = None
            self.intents.update(0, self.lane, self._d, self._progress, self._nearby())
            self._offset = self._intent_offset
        if self.dropout_config is not None:  # its own stream: the reset's other draws are untouched
            if seed is not None or self._dropout_rng is None:
                self._dropout_rng = dropout_rng(seed, self.track.name)
            self._dropped = dropout_schedule(self.dropout_config, self.config.max_steps, self.config.policy_hz,
                                             self._dropout_rng)
        self.last_frame = self._observation()
        return self._observe(), self._info()

    def _draw_route(self, seed: int | None) -> None:
        """This episode's route: its branches come from the reset seed (and the network's name) on a
        stream of their own, like the obstacles' sides; an unseeded reset continues the stream."""
        if seed is not None or self._route_rng is None:
            name = zlib.crc32(self.network.name.encode())
            self._route_rng = np.random.default_rng(None if seed is None else [ROUTE_STREAM, name, int(seed)])
        # long enough for the whole episode from the farthest start, with the end's margin
        length = self.config.max_steps * self.speed / self.config.policy_hz + 200.0
        self.route = self.network.random_route(self._route_rng, length)
        self.track = self.route.track

    def _observe(self):
        """The observation: the frame, or with a command (forks, lane goals) a dict of the frame and the command."""
        if not self.commanded:
            return self.last_frame
        return {"frame": self.last_frame, "command": self._command()}

    def _command(self) -> int:
        return self.goals.command if self.goals is not None else self.route.command_at(self.lane, self._s)

    def _ahead(self, s: float) -> float:
        """How far arc length s of the car's lane is ahead of the car [m] (negative behind; the nearer
        way round on a closed track)."""
        ds = s - self._s
        if self.track.closed:
            L = self.path.length
            ds = (ds + 0.5 * L) % L - 0.5 * L
        return ds

    def _goal_offset(self, s: float) -> float:
        """The teacher's target offset at arc length s of the car's lane (lane goals: envs.lane_goals)."""
        return self.goals.offset_at(self.lane, self._progress + self._ahead(s))

    def _intent_offset(self, s: float) -> float:
        """The teacher's target offset at arc length s of the car's lane (intents: envs.intents)."""
        return self.intents.offset_at(self.lane, self._progress + self._ahead(s))

    def _nearby(self) -> list[Nearby]:
        """The traffic as the intents see it: each vehicle's lane and distance ahead along the car's
        lane path (its projection there; the lane from its offset), and its speed."""
        path, w = self.path, self.track.lane_width
        if self._hints is None or self._hints[0] is not path:
            self._hints = (path, [None] * len(self.traffic))
        hints = self._hints[1]
        out = []
        for i, v in enumerate(self.traffic):
            seg, s, d, _ = path.project(float(v.position[0]), float(v.position[1]), hints[i])
            hints[i] = seg
            lane = self.lane + round(d / w)
            if not 0 <= lane < self.track.lanes:
                continue
            out.append(Nearby(i, lane, self._ahead(s), float(v.speed)))
        return out

    def _plan_obstacles(self, seed: int | None) -> None:
        """This episode's obstacles and the teacher's passes. The sides come from the reset seed (and the
        track's name) on a stream of their own, never from self.np_random, so the reset's other draws are
        those of the same episode without obstacles; an unseeded reset continues the stream."""
        cfg = self.obstacle_config
        key = self.lane if cfg.lane is None else cfg.lane
        if key not in self._layouts:
            self._layouts[key] = layout(self.track, cfg, self.lane)
        self.obstacles = self._layouts[key]
        if seed is not None or self._side_rng is None:
            name = zlib.crc32(self.track.name.encode())
            self._side_rng = np.random.default_rng(None if seed is None else [SIDE_STREAM, name, int(seed)])
        draws = self._side_rng.random(len(self.obstacles))
        self.passes = plan_passes(self.obstacles, self.track, self.lane, cfg, draws, self.teacher.lookahead(self.speed))
        self._offset = self.passes.target_at
        self._obstacle_boxes = [
            (b.x, b.y, math.hypot(0.5 * b.length, 0.5 * b.width), box_corners(b.x, b.y, b.heading, b.length, b.width))
            for ob in self.obstacles for b in ob.boxes]

    def _hits_obstacle(self) -> bool:
        """Whether the car's rectangle touches an obstacle's box."""
        v = self.vehicle
        x, y = float(v.position[0]), float(v.position[1])
        car = None
        for bx, by, r, corners in self._obstacle_boxes:
            if (bx - x) ** 2 + (by - y) ** 2 > (r + CAR_RADIUS_M) ** 2:
                continue
            car = car or box_corners(x, y, float(v.heading), LENGTH_M, WIDTH_M)
            if rectangles_touch(car, corners):
                return True
        return False

    def _spawn_traffic(self) -> None:
        cfg, track, rng = self.traffic_config, self.track, self.np_random
        self.traffic: list[TrafficVehicle] = []
        self._traffic_colors: list[tuple[int, int, int]] = []
        placed = [(self.lane, self._s)]
        # One speed per lane: with lane changes off, no vehicle ever catches up with another, so
        # the only possible collisions are the ego's.
        lane_speed = {k: self.speed * float(rng.uniform(*cfg.other_lane_speed)) for k in range(track.lanes)}
        lane_speed[self.lane] = self.speed
        for _ in range(cfg.vehicles):
            others = [k for k in range(track.lanes) if k != self.lane]
            if cfg.lane_changes:  # any lane, each vehicle its own speed: they close on each other and change lane
                lane = int(rng.integers(track.lanes))
            else:
                lane = int(rng.choice(others)) if others else self.lane
            path = track.paths[lane]
            for _attempt in range(50):
                s = float(rng.uniform(0.0, path.length) if track.closed else rng.uniform(0.0, path.length - 50.0))
                if all(self._gap(path, s, l2, s2) >= cfg.min_gap_m for l2, s2 in placed):
                    break
            else:
                continue  # the track is full
            placed.append((lane, s))
            x, y, h = path.pose_at(s)
            seg, _ = path.locate(s)
            speed = self.speed * float(rng.uniform(*cfg.other_lane_speed)) if cfg.lane_changes else lane_speed[lane]
            v = TrafficVehicle(self.road, np.array([x, y]), heading=h, speed=speed,
                               target_lane_index=track.lane_index(lane, seg), target_speed=speed,
                               enable_lane_change=cfg.lane_changes)
            self.road.vehicles.append(v)
            self.traffic.append(v)
            self._traffic_colors.append(TRAFFIC_COLORS[int(rng.integers(len(TRAFFIC_COLORS)))])

    def _gap(self, path, s: float, lane2: int, s2: float) -> float:
        """Distance along the track between two spawn points (lanes differ by little in length)."""
        scale = path.length / self.track.paths[lane2].length
        d = abs(s - s2 * scale)
        return min(d, path.length - d) if self.track.closed else d

    def step(self, action):
        if self.vehicle is None:
            raise RuntimeError("call reset() before step()")
        kappa = self._action_value(action)
        self.vehicle.act({"steering": curvature_to_steering(kappa), "acceleration": 0.0})
        for _ in range(self.config.sim_substeps):
            if self.traffic:
                self.road.act()
                self.road.step(self.dt)
                self._update_state()  # IDM vehicles read the ego's lane between substeps
            else:
                self.vehicle.step(self.dt)
            if self._obstacle_boxes and not self.vehicle.crashed and self._hits_obstacle():
                self.vehicle.crashed = True  # as highway-env does on a collision: the car brakes to a stop
        if not self.traffic:
            self._update_state()
        self._steps += 1
        if self.goals is not None:
            self.goals.update(self._steps, self.lane, self._d, self._progress)
        if self.intents is not None:
            self.intents.update(self._steps, self.lane, self._d, self._progress, self._nearby())
        info = self._info()
        terminated = self.config.terminate_on_failure and info["failure"] is not None
        truncated = self._steps >= self.config.max_steps or (
            not self.track.closed and self._s >= self.path.length - 30.0
        )
        self._executed = kappa
        self.last_frame = self._observation()
        reward = info["rewards"]["lane_centering"] * info["rewards"]["on_road"] * info["rewards"]["no_collision"]
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    @staticmethod
    def _action_value(action) -> float:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.size != 1:
            raise ValueError(f"action must hold one curvature value [1/m], got shape {np.shape(action)}")
        k = float(a[0])
        if not math.isfinite(k):
            raise ValueError(f"action must be a finite curvature [1/m], got {k}")
        return min(max(k, -MAX_CURVATURE), MAX_CURVATURE)

    def _update_state(self) -> None:
        v = self.vehicle
        seg, s, d, h_ref = self.path.project(v.position[0], v.position[1], self._seg)
        ds = s - self._s
        if self.track.closed:
            L = self.path.length
            ds = (ds + 0.5 * L) % L - 0.5 * L
        self._progress += ds
        if self._switch_lanes and (
                (d > 0.5 * self.track.lane_width and self.lane < self.track.lanes - 1)
                or (d < -0.5 * self.track.lane_width and self.lane > 0)):
            # across a lane line: the car is in the next lane, and offsets are measured from its centre
            self.lane += 1 if d > 0 else -1
            self.path = self.track.paths[self.lane]
            seg, s, d, h_ref = self.path.project(v.position[0], v.position[1])
        self._seg, self._s, self._d = seg, s, d
        self._psi = float(wrap_angle(v.heading - h_ref))
        v.lane_index = self.track.lane_index(self.lane, seg)
        v.lane = self.track.network.get_lane(v.lane_index)

    def _info(self) -> dict:
        v = self.vehicle
        left, right = self.track.road_edges(self.lane)
        off_road = not (left < self._d < right)
        crashed = bool(v.crashed)
        failure = "collision" if crashed else ("off_road" if off_road else None)
        teacher = self.teacher.action_from(self.path, self._s, v.position[0], v.position[1], v.heading, v.speed,
                                           self._offset)
        half = 0.5 * self.track.lane_width
        info = {
            "lateral_offset": self._d,
            "heading_error": self._psi,
            "teacher_action": teacher,
            "off_road": off_road,
            "crashed": crashed,
            "failure": failure,
            "progress_m": self._progress,
            "s_m": self._s,
            "speed": float(v.speed),
            "lane": self.lane,
            "x": float(v.position[0]),
            "y": float(v.position[1]),
            "heading": float(v.heading),
            "step": self._steps,
            "time_s": self._steps / self.config.policy_hz,
            "track": self.track.name,
            "rewards": {
                "lane_centering": 1.0 - min(1.0, abs(self._d) / half),
                "on_road": float(not off_road),
                "no_collision": float(not crashed),
            },
        }
        if self.passes is not None:
            info.update(self._obstacle_info())
        if self.route is not None:
            j = self.route.passage_at(self.lane, self._s)
            info["command"] = COMMANDS[self.route.command_at(self.lane, self._s)]
            info["fork_passage"] = j
            info["route_sides"] = self.route.sides
        if self.goals is not None:
            goal = self.goals.current
            info["command"] = COMMANDS[self.goals.command]
            info["lane_goal"] = None if goal is None else len(self.goals.goals) - 1
            info["lane_target"] = None if goal is None else goal.target
            info["lane_goal_sides"] = self.goals.sides
        if self.intents is not None:
            info["intent"] = self.intents.intent
        if self._dropped is not None:
            info["camera_dropout"] = bool(self._dropped[min(self._steps, len(self._dropped) - 1)])
        return info

    def _obstacle_info(self) -> dict:
        """The passing side of the obstacle under way or next (None without one in the way), its kind,
        the distance to its centre along the lane (negative once behind), every obstacle's side in order
        along the lane, and the teacher's passing line here (its offset from the lane centre)."""
        current = self.passes.current(self._s)
        p, ds = current if current is not None else (None, None)
        return {
            "obstacle": None if p is None else p.obstacle,
            "obstacle_side": None if p is None else p.side,
            "obstacle_kind": None if p is None else p.kind,
            "obstacle_distance_m": None if p is None else float(ds),
            "obstacle_sides": self.passes.sides,
            "pass_offset_m": self.passes.line_at(self._s),
        }

    # --- privileged queries ---------------------------------------------------------------------
    def _virtual_pose(self, shift_m: float, yaw_rad: float) -> tuple[float, float, float]:
        """The car displaced shift_m to its right and rotated yaw_rad (right) about its centre."""
        if not (math.isfinite(shift_m) and math.isfinite(yaw_rad)):
            raise ValueError(f"shift_m and yaw_rad must be finite, got {shift_m}, {yaw_rad}")
        x, y = self.vehicle.position
        return virtual_pose(x, y, self.vehicle.heading, shift_m, yaw_rad)

    def render_view(self, shift_m: float = 0.0, yaw_rad: float = 0.0) -> np.ndarray:
        """Centre-camera frame of the car at a virtual pose (shift right [m], yaw right [rad]).

        render_view(-side_offset_m) and render_view(+side_offset_m) are the rig's left and right
        cameras; any other shift or yaw is rendered exactly from the same state.
        """
        x, y, h = self._virtual_pose(float(shift_m), float(yaw_rad))
        cx, cy = lens_position(x, y, h, self.camera_config.forward_offset_m)
        return self.camera.render(self.map, cx, cy, h, self._boxes())

    def _observation(self) -> np.ndarray:
        """The centre camera's frame (with the steering gauge, if any; black or the last delivered one
        in a dropout), or the constant black frame without render_observation."""
        if self.config.render_observation:
            if self._dropped is not None and self._dropped[min(self._steps, len(self._dropped) - 1)]:
                if self.dropout_config.mode == "freeze" and self._delivered is not None:
                    return self._delivered.copy()
                return np.zeros(self.frame_space.shape, np.uint8)
            frame = self.render_view()
            if self.indicator_config is not None:
                draw_indicator(frame, self._executed, self.indicator_config)
            if self._dropped is not None and self.dropout_config.mode == "freeze":
                self._delivered = frame.copy()
            return frame
        if self._blank is None:
            self._blank = np.zeros(self.frame_space.shape, np.uint8)
            self._blank.flags.writeable = False
        return self._blank

    def render_rig(self) -> dict[str, np.ndarray]:
        """The rig's left, centre and right frames at the current state."""
        o = self.camera_config.side_offset_m
        return {"left": self.render_view(-o), "center": self.render_view(), "right": self.render_view(o)}

    def teacher_action_at(self, shift_m: float = 0.0, yaw_rad: float = 0.0) -> float:
        """The teacher's curvature [1/m] for the car at a virtual pose (see render_view)."""
        x, y, h = self._virtual_pose(float(shift_m), float(yaw_rad))
        _, s, _, _ = self.path.project(x, y, self._seg)
        return self.teacher.action_from(self.path, s, x, y, h, self.vehicle.speed, self._offset)

    def recover(self):
        """Put the car back on its lane centre, aligned with the lane, where it is now (NVIDIA's
        intervention); beside an obstacle, on the teacher's passing line. Returns (observation, info)
        like reset."""
        x, y, h = self.path.pose_at(self._s) if self.passes is None else self.path.pose_at(
            self._s, self.passes.line_at(self._s))
        self.vehicle.position = np.array([x, y])
        self.vehicle.heading = h
        self.vehicle.crashed = False
        self.vehicle.impact = None
        self._update_state()
        self.last_frame = self._observation()
        return self._observe(), self._info()

    def _boxes(self) -> list[Box]:
        return [
            Box(float(v.position[0]), float(v.position[1]), float(v.heading), v.LENGTH, v.WIDTH, col)
            for v, col in zip(self.traffic, self._traffic_colors)
        ] + [b for ob in self.obstacles for b in ob.boxes]

    # --- human-facing rendering ----------------------------------------------------------------
    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        return self.render_topdown()

    def render_topdown(self, size: int | None = None, ppm: float | None = None) -> np.ndarray:
        """A heading-up, top-down view around the car, with every vehicle drawn."""
        v = self.vehicle
        img, M = chase_view(self.map, v.position[0], v.position[1], v.heading,
                            size or self.config.render_size, ppm or self.config.render_ppm)
        self._draw_cars(img, M)
        return img

    def render_map(self, max_size: int = 900) -> np.ndarray:
        """The whole track top-down (world axes), with every vehicle drawn."""
        img, M = map_image(self.map, max_size, (self.track.drawing or self.track).bounds(margin=10.0))
        self._draw_cars(img, M, min_px=10.0)
        return img

    def _draw_cars(self, img: np.ndarray, M: np.ndarray, min_px: float = 0.0) -> None:
        for b in (b for ob in self.obstacles for b in ob.boxes):  # cones grown less, so a row stays a row
            draw_car(img, M, b.x, b.y, b.heading, b.color, b.length, b.width,
                     min_px=min_px * min(1.0, 4.0 * b.length / LENGTH_M))
        for v, col in list(zip(self.traffic, self._traffic_colors)) + [(self.vehicle, EGO_COLOR)]:
            draw_car(img, M, v.position[0], v.position[1], v.heading, col, min_px=min_px)

    def close(self) -> None:
        self.road = None
        self.vehicle = None


__all__ = ["ConfigError", "DrivingEnv", "EnvConfig", "ObstacleConfig", "TrafficConfig", "resolve_track"]
