"""Scripted rope pushes in MuJoCo, recorded as RGB-D episodes with ground truth.

A rope (robot_dyn.sim.deformables) lies on a table in a random smooth shape; the arm, with a
pusher on its end-effector, moves its tip above a point beside the rope, lowers it to just
above the table, pushes through the rope along a random direction and lifts it again. The arm
is driven in-process by the project's control cores -- OuterLoop pose goals (min-jerk
Cartesian moves with differential IK) and SimulatedArm (the 1 kHz impedance robot layer) --
so recording is fast and deterministic for a given seed. A rig of calibrated cameras
(robot_dyn.perception.cameras) renders RGB, depth and the rope's mask at a fixed frame rate.

Episode format (version 1)
--------------------------
One folder per episode, ``episode_000/``, ``episode_001/``, ...::

    meta.json                     format, version, robot, cameras, frame rate, push, scene
    states.npz                    per-frame ground truth (numpy .npz, no pickled objects)
    <camera>/rgb/000000.png       8-bit RGB
    <camera>/depth/000000.png     16-bit grey: z-depth along the optical axis in millimetres
                                  (1 mm resolution, max 65.535 m); 0 = no depth
    <camera>/mask/000000.png      8-bit grey: 255 = rope, 0 = not rope (visible pixels only)

Frames are numbered 000000 .. n_frames-1 and sampled every 1 / fps seconds of sim time, the
first one with the rope at rest and the pusher hovering above the push's start.

meta.json fields: ``format`` ("robot_dyn.rope_push"), ``version`` (1), ``robot``,
``joint_names``, ``ee_frame``, ``fps``, ``n_frames``, ``image_size`` ([width, height] when all
cameras share it), ``depth`` ({"encoding": "png_uint16", "scale": 0.001 m per unit,
"invalid": 0}), ``cameras`` (list of {name, K (3x3), world_to_cam (4x4, OpenCV convention:
x right, y down, z forward; p_cam = R p_world + t), width, height}; see cameras.py),
``object`` (rope: name, n_vertices, spacing, radius, mass, friction), ``table``, ``pusher``,
``push`` (seed, contact_vertex, contact, direction, length, start, end -- tip-centre positions,
world frame), ``sim`` (backend, physics dt, outer-loop rate, mujoco version), ``summary``
(max_vertex_displacement m, record_seconds).

states.npz arrays (F frames, V rope vertices, n joints; world frame = the arm's base frame,
SI units): ``time`` (F,) s of sim time; ``joint_positions`` (F, n) rad; ``joint_velocities``
(F, n) rad/s; ``ee_position`` (F, 3) m and ``ee_rotation`` (F, 3, 3) (world <- ee) of the
end-effector frame from forward kinematics of the measured joints (pinocchio, URDF);
``pusher_tip`` (F, 3) m, the tip sphere's centre; ``rope_vertices`` (F, V, 3) m, ground truth.

``load_episode(path)`` checks everything above and raises ValueError naming the file and field.
"""
from __future__ import annotations

import json
import math
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path

import mujoco
import numpy as np

from robot_dyn import paths
from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.outer_loop import OuterLoop, OuterLoopConfig
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.perception.cameras import CameraCalibration, CameraRig, RigRenderer
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.deformables import (DeformableScene, PusherConfig, RopeConfig, TableConfig, polyline_distance,
                                       random_rope_shape, rope_vertices, set_flex_vertices)
from robot_dyn.sim.simulated_arm import SimulatedArm

FORMAT = "robot_dyn.rope_push"
VERSION = 1
DEPTH_SCALE = 0.001  # m per unit of the 16-bit depth PNGs
IMAGE_KINDS = ("rgb", "depth", "mask")
STATE_FIELDS = ("time", "joint_positions", "joint_velocities", "ee_position", "ee_rotation", "pusher_tip", "rope_vertices")


# --- configuration -------------------------------------------------------------

@dataclass(frozen=True)
class RopeShapeConfig:
    """Random initial rope shape: centre jitter (m), direction range (deg from +x), bend (rad)."""

    center_jitter: float = 0.03
    yaw_range_deg: tuple = (55.0, 125.0)
    max_bend: float = 1.2

    def __post_init__(self):
        yaw = _floats("rope.shape.yaw_range_deg", self.yaw_range_deg, 2)
        if not yaw[0] <= yaw[1]:
            raise ValueError(f"'rope.shape.yaw_range_deg' must be [low, high], got {self.yaw_range_deg}")
        object.__setattr__(self, "yaw_range_deg", yaw)
        _number("rope.shape.center_jitter", self.center_jitter, minimum=0.0)
        _number("rope.shape.max_bend", self.max_bend, minimum=0.0)


@dataclass(frozen=True)
class RigConfig:
    """Cameras on a circle around `center` (see CameraRig.around)."""

    n: int = 4
    center: tuple = (0.5, 0.0, 0.10)
    distance: float = 0.5
    height: float = 0.45
    azimuth0_deg: float = 45.0
    fovy: float = 45.0
    width: int = 160
    height_px: int = 120
    shadow_size: int = 2048

    def __post_init__(self):
        object.__setattr__(self, "center", _floats("cameras.center", self.center, 3))
        for name in ("distance", "height"):
            _number(f"cameras.{name}", getattr(self, name), minimum=0.0)
        _number("cameras.azimuth0_deg", self.azimuth0_deg)
        self.build()  # checks n, fovy, image size

    def build(self) -> CameraRig:
        return CameraRig.around(self.center, self.n, self.distance, self.height, self.fovy, self.width, self.height_px,
                                self.azimuth0_deg, shadow_size=self.shadow_size)


@dataclass(frozen=True)
class PushConfig:
    """How pushes are drawn and executed (m, s, deg); see configs/perception.yaml."""

    length_range: tuple = (0.05, 0.15)
    approach: float = 0.04
    angle_jitter_deg: float = 30.0
    contact_fraction: tuple = (0.2, 0.8)
    hover: float = 0.06
    clearance: float = 0.003
    speed: float = 0.12
    transit_speed: float = 0.4
    workspace_x: tuple = (0.3, 0.72)
    workspace_y: tuple = (-0.32, 0.32)
    settle: float = 0.5

    def __post_init__(self):
        for name in ("length_range", "contact_fraction", "workspace_x", "workspace_y"):
            value = _floats(f"push.{name}", getattr(self, name), 2)
            if not value[0] <= value[1]:
                raise ValueError(f"'push.{name}' must be [low, high], got {getattr(self, name)}")
            object.__setattr__(self, name, value)
        if self.length_range[0] <= 0:
            raise ValueError(f"'push.length_range' must be positive, got {self.length_range}")
        if not 0 <= self.contact_fraction[0] <= self.contact_fraction[1] <= 1:
            raise ValueError(f"'push.contact_fraction' must lie in [0, 1], got {self.contact_fraction}")
        for name in ("approach", "hover", "speed", "transit_speed"):
            _number(f"push.{name}", getattr(self, name), minimum=0.0, strict=True)
        for name in ("clearance", "settle", "angle_jitter_deg"):
            _number(f"push.{name}", getattr(self, name), minimum=0.0)


@dataclass(frozen=True)
class EpisodeConfig:
    """Everything that defines a recording (configs/perception.yaml)."""

    robot: str = "panda"
    table: TableConfig = field(default_factory=TableConfig)
    rope: RopeConfig = field(default_factory=RopeConfig)
    shape: RopeShapeConfig = field(default_factory=RopeShapeConfig)
    pusher: PusherConfig = field(default_factory=PusherConfig)
    cameras: RigConfig = field(default_factory=RigConfig)
    push: PushConfig = field(default_factory=PushConfig)
    fps: float = 10.0
    outer_rate_hz: float = 500.0

    def __post_init__(self):
        _number("recording.fps", self.fps, minimum=0.0, strict=True)
        _number("recording.outer_rate_hz", self.outer_rate_hz, minimum=0.0, strict=True)
        if self.fps > self.outer_rate_hz:
            raise ValueError(f"'recording.fps' ({self.fps}) must not exceed the outer-loop rate ({self.outer_rate_hz})")
        if self.pusher.length <= 0:
            raise ValueError("'pusher.length' must be positive: the pushes need a pusher")

    def with_images(self, width: int | None = None, height: int | None = None, shadow_size: int | None = None,
                    fps: float | None = None) -> "EpisodeConfig":
        """A copy with another image size, shadow map size (0: no shadows) or frame rate."""
        cams = self.cameras
        cams = replace(cams, width=width or cams.width, height_px=height or cams.height_px,
                       shadow_size=cams.shadow_size if shadow_size is None else shadow_size)
        return replace(self, cameras=cams, fps=fps or self.fps)


def _number(name: str, value, minimum: float | None = None, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"'{name}' must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (strict and value <= minimum)):
        raise ValueError(f"'{name}' must be {'>' if strict else '>='} {minimum}, got {value!r}")
    return float(value)


def _floats(name: str, value, n: int) -> tuple:
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != n:
        raise ValueError(f"'{name}' must be a list of {n} numbers, got {value!r}")
    return tuple(_number(name, v) for v in value)


def load_config(path: str | Path | None = None) -> EpisodeConfig:
    """Read configs/perception.yaml (or `path`); ValueError names the file and the bad key."""
    path = Path(path) if path is not None else paths.config_path("perception.yaml")
    data = paths.read_yaml_mapping(path)
    known = {"robot", "table", "rope", "pusher", "cameras", "push", "recording",
             "tracking"}  # tracking: read by robot_dyn.perception.tracking.load_tracking_config
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key '{unknown[0]}'; known: {sorted(known)}")
    try:
        rope = dict(data.get("rope") or {})
        shape = paths.dataclass_from_mapping(RopeShapeConfig, rope.pop("shape", None), "rope.shape")
        recording = data.get("recording") or {}
        if not isinstance(recording, dict) or set(recording) - {"fps", "outer_rate_hz"}:
            raise ValueError("'recording' may hold only 'fps' and 'outer_rate_hz'")
        robot = data.get("robot", "panda")
        if not isinstance(robot, str):
            raise ValueError(f"'robot' must be a robot name, got {robot!r}")
        return EpisodeConfig(
            robot=robot,
            table=paths.dataclass_from_mapping(TableConfig, data.get("table"), "table"),
            rope=paths.dataclass_from_mapping(RopeConfig, rope, "rope"),
            shape=shape,
            pusher=paths.dataclass_from_mapping(PusherConfig, data.get("pusher"), "pusher"),
            cameras=paths.dataclass_from_mapping(RigConfig, data.get("cameras"), "cameras"),
            push=paths.dataclass_from_mapping(PushConfig, data.get("push"), "push"),
            **recording,
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


# --- pushes --------------------------------------------------------------------

@dataclass(frozen=True)
class Push:
    """A straight push of the pusher tip (centre positions, world frame, m) across the rope."""

    contact_vertex: int
    contact: np.ndarray  # the rope vertex aimed at
    direction: np.ndarray  # unit, horizontal
    length: float  # travel past the contact point
    start: np.ndarray  # tip centre where it is lowered (approach before the rope)
    end: np.ndarray

    def to_json(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}


def plan_push(rng: np.random.Generator, vertices: np.ndarray, config: EpisodeConfig, tries: int = 200) -> Push:
    """Draw a push across the rope (vertices (V, 3), world): a contact vertex from the middle of
    the rope, the rope's normal there turned by up to +-angle_jitter, a random side and length.
    The tip is lowered `approach` before the contact point, clear of the rope, and the whole
    path stays inside the workspace box. Raises ValueError when no push fits."""
    p, rope, pusher = config.push, config.rope, config.pusher
    n = len(vertices)
    lo_k = max(1, int(np.floor(p.contact_fraction[0] * (n - 1))))
    hi_k = min(n - 2, int(np.ceil(p.contact_fraction[1] * (n - 1))))
    tip_z = config.table.height + pusher.tip_radius + p.clearance
    clear = pusher.tip_radius + rope.radius + 0.005
    for _ in range(tries):
        k = int(rng.integers(lo_k, hi_k + 1))
        tangent = vertices[k + 1, :2] - vertices[k - 1, :2]
        tangent /= np.linalg.norm(tangent)
        angle = np.arctan2(tangent[0], -tangent[1]) + (np.pi if rng.random() < 0.5 else 0.0)
        angle += np.radians(rng.uniform(-p.angle_jitter_deg, p.angle_jitter_deg))
        direction = np.array([np.cos(angle), np.sin(angle), 0.0])
        length = float(rng.uniform(*p.length_range))
        contact = np.array([*vertices[k, :2], tip_z])
        start, end = contact - p.approach * direction, contact + length * direction
        xy = np.array([start[:2], end[:2]])
        inside = np.all((xy[:, 0] >= p.workspace_x[0]) & (xy[:, 0] <= p.workspace_x[1])
                        & (xy[:, 1] >= p.workspace_y[0]) & (xy[:, 1] <= p.workspace_y[1]))
        flat = np.column_stack([vertices[:, :2], np.zeros(n)])
        if inside and polyline_distance(np.array([[*start[:2], 0.0]]), flat)[0] > clear:
            return Push(k, contact, direction, length, start, end)
    raise ValueError(f"no push fits the workspace box in {tries} tries: check push.workspace_x/y and the table")


# --- simulation ----------------------------------------------------------------

@dataclass
class FrameRecord:
    time: float
    q: np.ndarray
    qd: np.ndarray
    ee_position: np.ndarray
    ee_rotation: np.ndarray
    pusher_tip: np.ndarray
    rope_vertices: np.ndarray
    frames: list  # CameraFrame per camera; empty when not rendering


class RopePushSim:
    """The arm, the rope scene and the camera rig, built once and reused across episodes.

    render=False skips the cameras (ground truth only; no OpenGL needed)."""

    def __init__(self, config: EpisodeConfig | None = None, render: bool = True):
        self.config = config or EpisodeConfig()
        self.robot = load_robot(self.config.robot)
        c = self.config
        self.scene = DeformableScene(table=c.table, rope=c.rope, pusher=c.pusher)
        self.rig = c.cameras.build()
        self.backend = make_backend("mujoco", self.robot, scene=[self.scene, self.rig])
        self.model, self.data = self.backend.model, self.backend.data
        self.kinematics = RigidBody(self.robot)
        self.renderer = RigRenderer(self.model, self.rig, objects=(c.rope.name,)) if render else None
        self.calibrations = self.rig.calibration(self.model)
        self.arm = self.loop = None

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()

    def reset(self, rng: np.random.Generator) -> np.ndarray:
        """Arm at home, rope in a random shape at rest; returns the rope's vertices (V, 3)."""
        c = self.config
        self.arm = SimulatedArm(self.robot, self.backend, ImpedanceSettings.from_robot(self.robot), self.robot.home)
        shape = random_rope_shape(rng, c.rope, c.table, c.shape.center_jitter, tuple(np.radians(c.shape.yaw_range_deg)),
                                  c.shape.max_bend)
        set_flex_vertices(self.model, self.data, shape, c.rope.name)
        self.loop = OuterLoop(self.robot, OuterLoopConfig(cartesian_speed=c.push.transit_speed))
        self.loop.start(self.arm.time, self.backend.joint_state()[0])
        return rope_vertices(self.model, self.data, c.rope.name)

    def _tip_down(self) -> np.ndarray:
        """End-effector orientation for the push: the home orientation (pusher pointing down at home)."""
        return self.kinematics.ee_pose(self.robot.home)[1]

    def move_tip(self, target, speed: float, on_tick=None, extra: float = 0.05) -> None:
        """Pose goal putting the pusher tip's centre at `target` (world) with the push orientation."""
        R = self._tip_down()
        flange = np.asarray(target, float) - R[:, 2] * self.config.pusher.length
        self.loop.config.cartesian_speed = speed
        duration = self.loop.command_pose_goal(self.arm.time, flange, R)
        self.arm.follow(self.loop.tick, duration + extra, self.config.outer_rate_hz, after_tick=on_tick)

    def snapshot(self, render: bool = True) -> FrameRecord:
        """State, ground truth and (if rendering) the camera frames, now."""
        mujoco.mj_forward(self.model, self.data)  # derived quantities (flex vertices, cameras) for the current qpos
        q, qd = self.backend.joint_state()
        p, R = self.kinematics.ee_pose(q)
        frames = self.renderer.render(self.data) if (render and self.renderer is not None) else []
        return FrameRecord(self.arm.time, q, qd, p, R, self.config.pusher.tip_position(p, R),
                           rope_vertices(self.model, self.data, self.config.rope.name), frames)

    def run_push(self, push: Push, on_frame) -> None:
        """Transit above the start (not recorded), then record: lower, push, lift, settle.
        on_frame(FrameRecord) is called every 1/fps s of sim time from the hover on."""
        c = self.config
        hover = np.array([0.0, 0.0, c.push.hover])
        self.move_tip(push.start + hover, c.push.transit_speed, extra=0.3)  # the rope settles meanwhile
        period, t0 = 1.0 / c.fps, self.arm.time
        state = {"next": 0}

        def tick(t, q):
            if t >= t0 + state["next"] * period - 1e-9:
                on_frame(self.snapshot())
                state["next"] += 1

        tick(self.arm.time, None)
        self.move_tip(push.start, c.push.speed, tick)
        self.move_tip(push.end, c.push.speed, tick)
        self.move_tip(push.end + hover, c.push.speed, tick)
        self.arm.follow(self.loop.tick, c.push.settle, c.outer_rate_hz, after_tick=tick)


# --- writing -------------------------------------------------------------------

def _cv2():
    import cv2

    return cv2


def image_path(episode: Path, camera: str, kind: str, frame: int) -> Path:
    return Path(episode) / camera / kind / f"{frame:06d}.png"


def _write_frames(episode: Path, index: int, frames) -> None:
    cv2 = _cv2()
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    for f in frames:
        depth_mm = np.clip(np.round(f.depth / DEPTH_SCALE), 0, 65535).astype(np.uint16)
        for kind, image in (("rgb", cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR)), ("depth", depth_mm),
                            ("mask", f.mask.astype(np.uint8) * 255)):
            path = image_path(episode, f.name, kind, index)
            if not cv2.imwrite(str(path), image, png):
                raise OSError(f"could not write {path}")


def record_episode(sim: RopePushSim, out: str | Path, seed, push_index: int = 0) -> dict:
    """Record one push into folder `out` (created; must not hold an episode). Returns meta."""
    out = Path(out)
    if (out / "meta.json").exists():
        raise ValueError(f"{out}: already holds an episode (meta.json); choose an empty folder")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    vertices = sim.reset(rng)
    push = plan_push(rng, vertices, sim.config)
    for cam in sim.rig.names:
        for kind in IMAGE_KINDS:
            (out / cam / kind).mkdir(parents=True, exist_ok=True)
    records: list[FrameRecord] = []

    def on_frame(rec: FrameRecord):
        _write_frames(out, len(records), rec.frames)
        rec.frames = []
        records.append(rec)

    sim.run_push(push, on_frame)
    states = {
        "time": np.array([r.time for r in records]),
        "joint_positions": np.array([r.q for r in records]),
        "joint_velocities": np.array([r.qd for r in records]),
        "ee_position": np.array([r.ee_position for r in records]),
        "ee_rotation": np.array([r.ee_rotation for r in records]),
        "pusher_tip": np.array([r.pusher_tip for r in records]),
        "rope_vertices": np.array([r.rope_vertices for r in records]),
    }
    np.savez(out / "states.npz", **states)
    rv = states["rope_vertices"]
    c = sim.config
    sizes = {(cal.width, cal.height) for cal in sim.calibrations}
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "robot": sim.robot.name,
        "joint_names": list(sim.robot.joint_names),
        "ee_frame": sim.robot.ee_frame,
        "fps": c.fps,
        "n_frames": len(records),
        "image_size": list(next(iter(sizes))) if len(sizes) == 1 else None,
        "depth": {"encoding": "png_uint16", "scale": DEPTH_SCALE, "invalid": 0},
        "cameras": [cal.to_json() for cal in sim.calibrations],
        "object": {"type": "rope", "name": c.rope.name, "n_vertices": c.rope.n_vertices, "spacing": c.rope.spacing,
                   "radius": c.rope.radius, "mass": c.rope.mass, "friction": c.rope.friction},
        "table": _jsonable(c.table),
        "pusher": _jsonable(c.pusher),
        "push": {"seed": _jsonable(seed), "index": push_index, **push.to_json()},
        "sim": {"backend": "mujoco", "dt": sim.backend.dt, "outer_rate_hz": c.outer_rate_hz,
                "mujoco_version": mujoco.__version__},
        "summary": {"max_vertex_displacement": float(np.max(np.linalg.norm(rv - rv[:1], axis=-1))),
                    "record_seconds": round(time.perf_counter() - start, 3)},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def _jsonable(value):
    if is_dataclass(value):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def record_episodes(out_dir: str | Path, n: int, seed: int = 0, config: EpisodeConfig | str | Path | None = None,
                    width: int | None = None, height: int | None = None, fps: float | None = None,
                    shadow_size: int | None = None, progress: bool = True) -> list[Path]:
    """Record n episodes into out_dir/episode_000, ... (episode i uses seed (seed, i)).

    config: an EpisodeConfig, a YAML path, or None for configs/perception.yaml; width, height,
    fps and shadow_size override it. Prints one progress line per episode when `progress`."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"'n' must be a positive integer, got {n!r}")
    if not isinstance(config, EpisodeConfig):
        config = load_config(config)
    config = config.with_images(width, height, shadow_size, fps)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = RopePushSim(config)
    written, start = [], time.perf_counter()
    try:
        for i in range(n):
            path = out_dir / f"episode_{i:03d}"
            meta = record_episode(sim, path, (seed, i), i)
            written.append(path)
            if progress:
                s = meta["summary"]
                print(f"[record] episode {i + 1}/{n}: {meta['n_frames']} frames x {len(meta['cameras'])} cameras "
                      f"{config.cameras.width}x{config.cameras.height_px}, push {meta['push']['length'] * 100:.1f} cm, "
                      f"rope moved up to {s['max_vertex_displacement'] * 100:.1f} cm, {s['record_seconds']:.1f} s "
                      f"(total {time.perf_counter() - start:.0f} s) -> {path}", file=sys.stderr, flush=True)
    finally:
        sim.close()
    return written


# --- reading -------------------------------------------------------------------

@dataclass
class Episode:
    """A loaded episode. Image lists hold one array per camera (same order as `cameras`):
    rgb (F, H, W, 3) uint8, depth (F, H, W) float32 m (0 = invalid), mask (F, H, W) bool;
    they are None when loaded with images=False."""

    path: Path
    meta: dict
    cameras: list[CameraCalibration]
    fps: float
    time: np.ndarray
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    ee_position: np.ndarray
    ee_rotation: np.ndarray
    pusher_tip: np.ndarray
    rope_vertices: np.ndarray
    rgb: list | None = None
    depth: list | None = None
    mask: list | None = None

    @property
    def n_frames(self) -> int:
        return len(self.time)

    @property
    def camera_names(self) -> list[str]:
        return [c.name for c in self.cameras]


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; ValueError if it is not a PNG."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _read_image(path: Path, kind: str, width: int, height: int) -> np.ndarray:
    cv2 = _cv2()
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: unreadable or corrupt image")
    expected = {"rgb": ((height, width, 3), np.uint8), "depth": ((height, width), np.uint16),
                "mask": ((height, width), np.uint8)}[kind]
    if image.shape != expected[0] or image.dtype != expected[1]:
        raise ValueError(f"{path}: {kind} image is {image.shape} {image.dtype}, expected {expected[0]} {np.dtype(expected[1])}")
    if kind == "rgb":
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if kind == "depth":
        return image.astype(np.float32) * np.float32(DEPTH_SCALE)
    return image > 127


def _load_meta(path: Path) -> dict:
    file = path / "meta.json"
    if not file.is_file():
        raise ValueError(f"{file}: missing")
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{file}: unreadable or malformed JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{file}: expected a JSON object")
    for key in ("format", "version", "robot", "joint_names", "fps", "n_frames", "cameras", "object", "depth"):
        if key not in meta:
            raise ValueError(f"{file}: missing field '{key}'")
    if meta["format"] != FORMAT:
        raise ValueError(f"{file}: 'format' is {meta['format']!r}, expected {FORMAT!r}")
    if meta["version"] != VERSION:
        raise ValueError(f"{file}: 'version' {meta['version']!r} is not supported (this reader: {VERSION})")
    if not isinstance(meta["n_frames"], int) or meta["n_frames"] < 1:
        raise ValueError(f"{file}: 'n_frames' must be a positive integer, got {meta['n_frames']!r}")
    if not isinstance(meta["fps"], (int, float)) or not meta["fps"] > 0:
        raise ValueError(f"{file}: 'fps' must be a positive number, got {meta['fps']!r}")
    if not isinstance(meta["joint_names"], list) or not meta["joint_names"]:
        raise ValueError(f"{file}: 'joint_names' must be a non-empty list")
    if not isinstance(meta["cameras"], list) or not meta["cameras"]:
        raise ValueError(f"{file}: 'cameras' must be a non-empty list")
    obj = meta["object"]
    if not isinstance(obj, dict) or not isinstance(obj.get("n_vertices"), int) or obj["n_vertices"] < 2:
        raise ValueError(f"{file}: 'object.n_vertices' must be an integer >= 2")
    depth = meta["depth"]
    if not isinstance(depth, dict) or depth.get("encoding") != "png_uint16" or depth.get("scale") != DEPTH_SCALE:
        raise ValueError(f"{file}: 'depth' must be {{'encoding': 'png_uint16', 'scale': {DEPTH_SCALE}}}, got {depth!r}")
    return meta


def _load_states(path: Path, meta: dict) -> dict:
    file = path / "states.npz"
    if not file.is_file():
        raise ValueError(f"{file}: missing")
    try:
        with np.load(file, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{file}: unreadable or truncated: {exc}") from None
    F, V, n = meta["n_frames"], meta["object"]["n_vertices"], len(meta["joint_names"])
    shapes = {"time": (F,), "joint_positions": (F, n), "joint_velocities": (F, n), "ee_position": (F, 3),
              "ee_rotation": (F, 3, 3), "pusher_tip": (F, 3), "rope_vertices": (F, V, 3)}
    for key, shape in shapes.items():
        if key not in arrays:
            raise ValueError(f"{file}: missing array '{key}'")
        a = arrays[key]
        if a.shape != shape:
            raise ValueError(f"{file}: '{key}' has shape {a.shape}, expected {shape} "
                             f"(meta.json: {F} frames, {V} rope vertices, {n} joints)")
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(f"{file}: '{key}' must be floating point, got {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{file}: '{key}' holds NaN or infinite values")
    if F > 1 and np.any(np.diff(arrays["time"]) <= 0):
        raise ValueError(f"{file}: 'time' must be strictly increasing")
    return {k: arrays[k] for k in shapes}


def load_episode(path: str | Path, images: bool = True) -> Episode:
    """Read and check one episode folder (format in this module's docstring).

    images=False checks that every image exists with the right size (from the PNG header)
    without decoding them. Raises ValueError naming the file and field of any problem:
    missing files, malformed meta, mismatched image sizes, wrong shapes, NaNs."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: not an episode folder")
    meta = _load_meta(path)
    cameras = [CameraCalibration.from_json(c, f"{path / 'meta.json'}: cameras[{i}]") for i, c in enumerate(meta["cameras"])]
    names = [c.name for c in cameras]
    if len(set(names)) != len(names):
        raise ValueError(f"{path / 'meta.json'}: duplicate camera names {names}")
    states = _load_states(path, meta)
    F = meta["n_frames"]
    loaded = {kind: [] for kind in IMAGE_KINDS}
    for cam in cameras:
        for kind in IMAGE_KINDS:
            stack = []
            for frame in range(F):
                file = image_path(path, cam.name, kind, frame)
                if not file.is_file():
                    raise ValueError(f"{file}: missing ({kind} frame {frame} of camera '{cam.name}')")
                if images:
                    stack.append(_read_image(file, kind, cam.width, cam.height))
                elif _png_size(file) != (cam.width, cam.height):
                    raise ValueError(f"{file}: image is {_png_size(file)[0]}x{_png_size(file)[1]}, "
                                     f"camera '{cam.name}' is {cam.width}x{cam.height}")
            if images:
                loaded[kind].append(np.stack(stack))
            extra = image_path(path, cam.name, kind, F)
            if extra.exists():
                raise ValueError(f"{extra}: more {kind} frames than meta.json's n_frames ({F})")
    return Episode(path, meta, cameras, float(meta["fps"]), *(states[k] for k in STATE_FIELDS),
                   *((loaded[k] if images else None) for k in IMAGE_KINDS))
