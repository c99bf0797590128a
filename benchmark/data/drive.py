"""`python -m benchmark drive`: a person drives and the rig is recorded in the teacher's dataset format.

A pygame window shows the centre dashcam view scaled up, a heading-up top-down view beside it and a
HUD (the curvature command as a bar, speed, lateral offset, step counts, recording status, the keys).
The simulation advances one policy step per frame at the environment's policy rate (10 Hz) in real
time; `--no-realtime` runs as fast as it can (scripted tests).

Steering: Left/Right arrows (or A/D) move the curvature command at `steer_rate` [1/m per second]
while held (counter-steering adds `return_rate`); released, it returns towards 0 at `return_rate`,
so a tap does not stick. With `gamepad` on, the first axis of a connected gamepad sets the command
directly (full deflection = the car's tightest curvature) outside a dead zone; held keys take
precedence over the stick.

Keys: Esc/Q quit (the dataset is finished cleanly), R restart the episode (a new episode number),
P pause, Space toggle recording. Closing the window quits too. An episode that ends (off road,
collision, or truncation) is followed at once by a new episode, with a message on the HUD; the
session ends when the person quits or after `max_steps` recorded steps.

Every recorded step is stored exactly as the collector stores one (`benchmark.data.collector.record_step`): the
rig's left, centre and right frames, the state, `action` = the person's curvature command (the one
executed), the teacher's curvature at the three camera poses as labels, and `source` = "human".
A step is the state before the command is executed, as in `collect`; the terminal state of an
episode is not recorded. While recording is off the car keeps driving and its steps are skipped
(the `step` column then has a gap within the episode).

Scripted runs: `run(config, events=...)` takes the events of each frame from a callable (called once
per frame, returning an iterable of pygame events) or an iterable of per-frame event lists (when it
is exhausted the session quits); `scripted_events` builds one from (key, frames-held) steps.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from benchmark.common.config import require
from envs import BUILTIN_TRACKS, MAX_CURVATURE, DrivingEnv, check_training_seed
from envs.vehicle import clip_curvature

from .collector import record_step
from .dataset import DatasetWriter, Source, simulator_source

TRACK_CHOICES = (*BUILTIN_TRACKS, "procedural", "custom")
LABEL_RULE = ("teacher: pure-pursuit curvature at each camera's pose (left, center, right); "
              "action: the person's curvature command [1/m], the one executed")
KEY_HELP = "Left/Right or A/D: steer   Space: recording on/off   P: pause   R: restart   Esc/Q: quit"

EventSource = Union[Callable[[], Iterable[Any]], Iterable[Iterable[Any]]]
"""Per frame, the pygame events to handle: a callable (pygame.event.get) or per-frame event lists."""


@dataclass
class DriveConfig:
    """Drive a track yourself (keyboard or gamepad) and record the rig, with the teacher's labels, in
    the same dataset format as `record`; `action` is your curvature command."""

    out: Path = Path("data/human")
    """Dataset directory to create."""
    track: str = "racetrack"
    """Track: a built-in name, 'procedural' (with track_seed) or 'custom' (with track_file)."""
    track_seed: int | None = None
    """Procedural track seed (training seeds only; held-out test seeds are refused)."""
    track_file: Path | None = None
    """Track spec file (.json/.yaml) for track 'custom'."""
    traffic: int = 0
    """Traffic vehicles on the track (0: none); touching one ends the episode."""
    seed: int = 0
    """Seed of the episodes' start states (lane and position), one draw per episode."""
    max_steps: int = 0
    """Stop after this many recorded steps in total (0: until you quit)."""
    episode_steps: int = 3000
    """Policy steps before an episode is truncated and a new one starts."""
    scale: int = 4
    """Window scale of the 200x66 dashcam view (1..8)."""
    smooth: bool = False
    """Smooth (bilinear) scaling of the dashcam view; off: nearest neighbour, the pixels the network sees."""
    steer_rate: float = 0.3
    """How fast a held steering key moves the curvature command [1/m per second]."""
    return_rate: float = 0.2
    """How fast the command returns towards 0 when no steering key is held [1/m per second]."""
    gamepad: bool = True
    """Steer with the first axis of a connected gamepad (held keys take precedence)."""
    dead_zone: float = 0.1
    """Gamepad axis dead zone, as a fraction of full deflection."""
    realtime: bool = True
    """Pace the simulation in real time at the policy rate (off: as fast as possible, for tests)."""
    record_at_start: bool = True
    """Start with recording on (Space toggles it)."""
    show_teacher: bool = False
    """Mark the teacher's curvature on the HUD bar (off: you drive unaided)."""
    screenshot: Path | None = None
    """Write the last window frame to this PNG when the session ends."""
    overwrite: bool = False
    """Replace an existing dataset in `out`."""
    shard_size: int = 2000
    """Steps per frame shard."""

    def __post_init__(self) -> None:
        require(self.track in TRACK_CHOICES,
                f"unknown track {self.track!r}; use one of {', '.join(BUILTIN_TRACKS)}, 'procedural' (with "
                "track_seed) or 'custom' (with track_file)")
        if self.track == "procedural":
            require(self.track_seed is not None and self.track_seed >= 0,
                    "the procedural track needs track_seed=<non-negative integer>")
            try:
                check_training_seed(int(self.track_seed))
            except ValueError as exc:
                require(False, str(exc))
        if self.track == "custom":
            require(self.track_file is not None, "the custom track needs track_file=<path to a .json/.yaml track spec>")
        require(0 <= self.traffic <= 64, f"traffic must be 0..64 vehicles, got {self.traffic}")
        require(self.max_steps >= 0, f"max_steps must be >= 0 (0: until you quit), got {self.max_steps}")
        require(self.episode_steps >= 1, f"episode_steps must be positive, got {self.episode_steps}")
        require(1 <= self.scale <= 8, f"scale must be 1..8, got {self.scale}")
        require(math.isfinite(self.steer_rate) and self.steer_rate > 0,
                f"steer_rate must be a positive number [1/m per second], got {self.steer_rate}")
        require(math.isfinite(self.return_rate) and self.return_rate >= 0,
                f"return_rate must be >= 0 [1/m per second], got {self.return_rate}")
        require(0 <= self.dead_zone < 1, f"dead_zone must be in [0, 1), got {self.dead_zone}")
        require(self.shard_size >= 1, f"shard_size must be positive, got {self.shard_size}")


# --- input --------------------------------------------------------------------------------------
class SteeringInput:
    """The person's curvature command from key and gamepad events (see the module doc)."""

    def __init__(self, steer_rate: float, return_rate: float, dead_zone: float, gamepad: bool):
        import pygame

        self.left_keys = {pygame.K_LEFT, pygame.K_a}
        self.right_keys = {pygame.K_RIGHT, pygame.K_d}
        self.steer_rate, self.return_rate = float(steer_rate), float(return_rate)
        self.dead_zone, self.gamepad = float(dead_zone), bool(gamepad)
        self.held: set[int] = set()
        self.axis = 0.0
        self.command = 0.0

    def handle(self, event: Any) -> None:
        import pygame

        if event.type == pygame.KEYDOWN and event.key in self.left_keys | self.right_keys:
            self.held.add(event.key)
        elif event.type == pygame.KEYUP:
            self.held.discard(event.key)
        elif event.type in (pygame.WINDOWFOCUSLOST, pygame.WINDOWHIDDEN):
            self.held.clear()  # key-up events are lost with the focus: no stuck steering
        elif self.gamepad and event.type == pygame.JOYAXISMOTION and event.axis == 0:
            self.axis = float(event.value)
        elif event.type == pygame.JOYDEVICEREMOVED:
            self.axis = 0.0

    def stick(self) -> float:
        """The gamepad's curvature, 0 inside the dead zone."""
        a = max(-1.0, min(1.0, self.axis)) if self.gamepad else 0.0
        if abs(a) <= self.dead_zone:
            return 0.0
        return math.copysign((abs(a) - self.dead_zone) / (1.0 - self.dead_zone), a) * MAX_CURVATURE

    def update(self, dt: float) -> float:
        """Advance the command by dt seconds of held keys (or the stick, or the return) and return it."""
        direction = int(bool(self.held & self.right_keys)) - int(bool(self.held & self.left_keys))
        c = self.command
        if direction:
            rate = self.steer_rate + (self.return_rate if c * direction < 0 else 0.0)
            c += direction * rate * dt
        elif self.stick() != 0.0:
            c = self.stick()
        else:
            c = math.copysign(max(0.0, abs(c) - self.return_rate * dt), c)
        self.command = clip_curvature(c)
        return self.command

    def reset(self) -> None:
        self.command = 0.0


def _frames_of(events: EventSource | None) -> Iterator[Iterable[Any]]:
    """Per frame, the events to handle; a finite source ends with a quit."""
    import pygame

    if events is None:
        events = pygame.event.get
    if callable(events):
        while True:
            yield events()
    for frame in events:
        pygame.event.pump()  # keep a real window responsive; its own events are not used
        yield [frame] if isinstance(frame, pygame.event.EventType) else frame
    while True:
        yield [pygame.event.Event(pygame.QUIT)]


def scripted_events(script: Sequence[tuple[int | None, int]]) -> list[list[Any]]:
    """Per-frame event lists from steps (key, frames). A steering key (arrows, A, D) is pressed in the
    step's first frame, held for `frames` frames and released at the start of the next frame; another
    key is tapped (down and up) in the first frame; key None gives `frames` frames without events."""
    import pygame

    steer = {pygame.K_LEFT, pygame.K_RIGHT, pygame.K_a, pygame.K_d}
    out: list[list[Any]] = []
    release: list[Any] = []
    for key, frames in script:
        block: list[list[Any]] = [[] for _ in range(max(1, int(frames)))]
        block[0].extend(release)
        release = []
        if key is not None:
            block[0].append(pygame.event.Event(pygame.KEYDOWN, key=key))
            up = pygame.event.Event(pygame.KEYUP, key=key)
            if key in steer:
                release = [up]
            else:
                block[0].append(up)
        out.extend(block)
    if release:
        out.append(release)
    return out


# --- display --------------------------------------------------------------------------------------
class Screen:
    """The window: dashcam view, top-down view, HUD."""

    TOPDOWN = 320
    HUD_H = 118
    HELP_H = 24

    def __init__(self, frame_shape: tuple[int, int, int], scale: int, smooth: bool, caption: str):
        import pygame

        h, w = frame_shape[:2]
        self.dash_size = (w * scale, h * scale)
        self.width = self.dash_size[0] + self.TOPDOWN
        self.height = max(self.dash_size[1] + self.HUD_H, self.TOPDOWN) + self.HELP_H
        try:
            pygame.display.init()
            self.surface = pygame.display.set_mode((self.width, self.height))
        except pygame.error as exc:
            raise RuntimeError(
                f"cannot open a window ({exc}); drive on a desktop session, or set SDL_VIDEODRIVER=offscreen "
                "for a headless scripted run") from exc
        pygame.display.set_caption(caption)
        pygame.font.init()
        self.font = pygame.font.Font(None, 22)
        self.big = pygame.font.Font(None, 30)
        self.small = pygame.font.Font(None, 18)
        self.smooth = smooth
        self.frame = pygame.Surface((w, h))
        self.top = pygame.Surface((self.TOPDOWN, self.TOPDOWN))

    def _text(self, text: str, pos: tuple[int, int], color=(230, 230, 230), big: bool = False) -> None:
        self.surface.blit((self.big if big else self.font).render(text, True, color), pos)

    def draw(self, frame: np.ndarray, topdown: np.ndarray, hud: dict[str, Any]) -> None:
        import pygame

        s = self.surface
        s.fill((24, 24, 28))
        pygame.surfarray.blit_array(self.frame, np.ascontiguousarray(frame.transpose(1, 0, 2)))
        scale = pygame.transform.smoothscale if self.smooth else pygame.transform.scale
        s.blit(scale(self.frame, self.dash_size), (0, 0))
        if topdown.shape[:2] != (self.TOPDOWN, self.TOPDOWN):
            topdown = np.ascontiguousarray(topdown[: self.TOPDOWN, : self.TOPDOWN])
        pygame.surfarray.blit_array(self.top, np.ascontiguousarray(topdown.transpose(1, 0, 2)))
        s.blit(self.top, (self.dash_size[0], 0))

        # curvature bar: centre = straight, right = positive (turning right), full = the tightest turn
        x0, y0, bw, bh = 16, self.dash_size[1] + 10, self.dash_size[0] - 32, 16
        mid = x0 + bw // 2
        pygame.draw.rect(s, (60, 60, 66), (x0, y0, bw, bh))
        c = hud["command"] / MAX_CURVATURE
        fill = int(round(c * bw / 2))
        pygame.draw.rect(s, (70, 170, 250), (min(mid, mid + fill), y0, abs(fill), bh))
        pygame.draw.line(s, (200, 200, 200), (mid, y0 - 3), (mid, y0 + bh + 2), 1)
        for text, x in (("left", x0 + 4), ("right", x0 + bw - 38)):
            self.surface.blit(self.small.render(text, True, (150, 150, 160)), (x, y0 + 2))
        if hud.get("teacher") is not None:
            tx = mid + int(round(hud["teacher"] / MAX_CURVATURE * bw / 2))
            pygame.draw.line(s, (250, 210, 60), (tx, y0 - 4), (tx, y0 + bh + 3), 3)
        radius = f"radius {1 / abs(hud['command']):.0f} m" if abs(hud["command"]) > 1e-4 else "straight"
        side = "right" if hud["command"] > 1e-4 else ("left" if hud["command"] < -1e-4 else "")
        self._text(f"curvature {hud['command']:+.3f} 1/m  {side} {radius}  [{hud['input']}]", (x0, y0 + bh + 6))
        self._text(f"speed {hud['speed']:.1f} m/s   lateral offset {hud['offset']:+.2f} m   "
                   f"heading error {math.degrees(hud['heading_error']):+.1f} deg", (x0, y0 + bh + 26))
        limit = f" / {hud['max_steps']}" if hud["max_steps"] else ""
        self._text(f"{hud['track']}   episode {hud['episode']}  step {hud['step']}   recorded {hud['recorded']}{limit}",
                   (x0, y0 + bh + 46))
        if hud["recording"]:
            pygame.draw.circle(s, (230, 40, 40), (x0 + 8, y0 + bh + 78), 7)
            self._text("REC", (x0 + 22, y0 + bh + 68), (240, 80, 80), big=True)
        else:
            self._text("not recording", (x0, y0 + bh + 68), (170, 170, 170), big=True)
        if hud["paused"]:
            self._text("PAUSED", (x0 + 190, y0 + bh + 68), (250, 210, 60), big=True)
        if hud.get("message"):
            self._text(hud["message"], (x0 + 300, y0 + bh + 68), (250, 150, 60), big=True)
        help_text = KEY_HELP + ("   (yellow mark: the teacher)" if hud.get("teacher") is not None else "")
        self._text(help_text, (8, self.height - self.HELP_H + 4), (160, 160, 170))
        pygame.display.flip()


# --- the session ----------------------------------------------------------------------------------
def _make_env(config: DriveConfig) -> DrivingEnv:
    track_seed = config.track_seed if config.track == "procedural" else None
    track_file = config.track_file if config.track == "custom" else None
    return DrivingEnv(config.track, track_seed=track_seed, track_file=track_file, traffic=config.traffic,
                      config={"max_steps": config.episode_steps})


def _source(config: DriveConfig, env: DrivingEnv) -> Source:
    return simulator_source(
        "human", LABEL_RULE, rig=env.camera_config, env=env.config,
        action_rule="action is the person's curvature command [1/m] (keyboard or gamepad), executed by the car; "
                    "label_left/center/right are the teacher's curvatures at the camera poses",
        tracks=[] if config.track == "procedural" else [env.track.name],
        procedural_seeds=[] if config.track != "procedural" else [int(config.track_seed)],
        track_file=None if config.track_file is None else str(config.track_file), traffic=config.traffic,
        seed=config.seed, input={"steer_rate": config.steer_rate, "return_rate": config.return_rate,
                                 "gamepad": config.gamepad, "dead_zone": config.dead_zone,
                                 "show_teacher": config.show_teacher})


class _Session:
    """The driving state between frames: the env, the person's input, the recording counters."""

    def __init__(self, config: DriveConfig, env: DrivingEnv, writer: DatasetWriter):
        import pygame

        self.pg, self.config, self.env, self.writer = pygame, config, env, writer
        self.steering = SteeringInput(config.steer_rate, config.return_rate, config.dead_zone, config.gamepad)
        self.dt = 1.0 / env.config.policy_hz
        self.rng = np.random.default_rng(config.seed)
        self.episode_seeds: list[int] = []
        self.recorded = self.env_steps = self.failures = 0
        self.recorded_episodes: set[int] = set()
        self.recording, self.paused, self.done = config.record_at_start, False, False
        self.message, self.message_left = "", 0
        self.joysticks: dict[int, Any] = {}
        if config.gamepad:
            try:
                pygame.joystick.init()
                for i in range(pygame.joystick.get_count()):
                    self._open_joystick(i)
            except pygame.error:
                self.joysticks = {}
        self.info = self.new_episode()

    @property
    def episode(self) -> int:
        return len(self.episode_seeds) - 1

    def _open_joystick(self, device_index: int) -> None:
        try:
            js = self.pg.joystick.Joystick(device_index)
            self.joysticks[js.get_instance_id()] = js
        except self.pg.error:
            pass

    def _say(self, text: str) -> None:
        self.message, self.message_left = text, int(2 * self.env.config.policy_hz)  # about 2 s

    def new_episode(self) -> dict:
        seed = int(self.rng.integers(2**31))
        self.episode_seeds.append(seed)
        self.steering.reset()
        return self.env.reset(seed=seed)[1]

    def handle(self, event: Any) -> None:
        pg = self.pg
        self.steering.handle(event)
        if event.type == pg.QUIT:
            self.done = True
        elif event.type == pg.KEYDOWN:
            if event.key in (pg.K_ESCAPE, pg.K_q):
                self.done = True
            elif event.key == pg.K_p:
                self.paused = not self.paused
            elif event.key == pg.K_SPACE:
                self.recording = not self.recording
            elif event.key == pg.K_r:
                self._say(f"episode {self.episode} restarted")
                self.info = self.new_episode()
        elif event.type == pg.JOYDEVICEADDED and self.config.gamepad:
            self._open_joystick(event.device_index)
        elif event.type == pg.JOYDEVICEREMOVED:
            self.joysticks.pop(getattr(event, "instance_id", None), None)

    def advance(self) -> None:
        """One policy step: the person's command is executed from the current state, which is
        recorded first (when recording) exactly as `collect` records a step."""
        env, info = self.env, self.info
        action = self.steering.update(self.dt)
        episode = self.episode
        if self.recording:
            record_step(self.writer, env, info, action, episode, "human", 0)
            self.recorded += 1
            self.recorded_episodes.add(episode)
        _, _, terminated, truncated, self.info = env.step(np.array([action], np.float32))
        self.env_steps += 1
        if terminated or truncated:
            self.failures += int(self.info["failure"] is not None)
            self._say(f"episode {episode} ended: {self.info['failure'] or 'truncated'}")
            self.info = self.new_episode()
        if self.config.max_steps and self.recorded >= self.config.max_steps:
            self.done = True

    def hud(self) -> dict[str, Any]:
        info, config = self.info, self.config
        self.message_left = max(0, self.message_left - 1)
        return {
            "command": self.steering.command, "teacher": info["teacher_action"] if config.show_teacher else None,
            "input": "gamepad + keys" if self.joysticks else "keys",
            "speed": info["speed"], "offset": info["lateral_offset"], "heading_error": info["heading_error"],
            "track": self.env.track.name, "episode": self.episode, "step": info["step"],
            "recorded": self.recorded, "max_steps": config.max_steps, "recording": self.recording,
            "paused": self.paused, "message": self.message if self.message_left else "",
        }

    def finish(self) -> None:
        self.writer.update_metadata(labels=self.recorded, teacher_queries=3 * self.recorded,
                                    env_steps=self.env_steps, episodes=len(self.recorded_episodes),
                                    failures=self.failures, episode_seeds=self.episode_seeds)


def run(config: DriveConfig, events: EventSource | None = None) -> dict:
    """Drive and record; `events` is the event source (default: pygame.event.get). See the module doc."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    env = _make_env(config)  # a bad track or track file fails here, before any window or file
    out = Path(config.out)
    existed = out.exists()
    was_empty = not existed or not any(out.iterdir())
    if not was_empty and not config.overwrite:
        raise FileExistsError(f"{out} is not empty; choose a new directory or pass --overwrite")
    camera = env.camera_config
    frame_shape = (camera.height, camera.width, 3)
    t0 = time.perf_counter()
    try:
        screen = Screen(frame_shape, config.scale, config.smooth, f"SteerBench drive: {env.track.name}")
        clock = pygame.time.Clock()
        with DatasetWriter(out, frame_shape, _source(config, env).metadata, config.shard_size,
                           overwrite=config.overwrite) as writer:
            session = _Session(config, env, writer)
            try:  # Ctrl+C or an error still leaves a finished dataset with its counts
                for frame_events in _frames_of(events):
                    for event in frame_events:
                        session.handle(event)
                    if session.done:
                        break
                    if not session.paused:
                        session.advance()
                    screen.draw(env.last_frame, env.render_topdown(size=Screen.TOPDOWN), session.hud())
                    if session.done:
                        break
                    if config.realtime:
                        clock.tick(env.config.policy_hz)
            finally:
                session.finish()
        if config.screenshot is not None:
            Path(config.screenshot).parent.mkdir(parents=True, exist_ok=True)
            pygame.image.save(screen.surface, str(config.screenshot))
    finally:
        env.close()
        pygame.quit()
    if session.recorded == 0 and was_empty:  # nothing recorded: leave no empty dataset behind
        (out / "manifest.json").unlink(missing_ok=True)
        if not existed:
            try:
                out.rmdir()
            except OSError:
                pass
    return {"out": str(out), "steps": session.recorded, "episodes": len(session.recorded_episodes),
            "env_steps": session.env_steps, "failures": session.failures,
            "seconds": round(time.perf_counter() - t0, 1)}
