"""The `pusht` task: push a T-shaped block across the table, with a rod on the flange, onto a fixed
target pose. After the Push-T benchmark (Chi et al., Diffusion Policy): the score is the coverage,
the area of the target covered by the block divided by the target's area, and success is coverage
above 0.95.

Scene (MuJoCo, primitive geoms): the table; the block, a free body of two boxes (the T's bar and
stem) resting on it; the target, the same T drawn flat on the table without collision. Each
episode draws the block's start pose (x, y, yaw) from the seed, away from the target. The pusher is
the flange's tool (robot_dyn/robots/tools.py): a rod along the flange's +z whose tip the expert
and policies keep just above the table.

T frame: origin at the junction of bar and stem, x along the bar, y from the stem to the bar; the
bar spans x in [-bar_length/2, bar_length/2], y in [0, bar_width]; the stem x in [-stem_width/2,
stem_width/2], y in [-stem_length, 0]. Poses (x, y, yaw) are of that frame in the world (= the
arm's base frame), m and rad.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from robot_dyn.robots.tools import Tool
from robot_dyn.sim.deformables import SCENE_CONTACT, TABLE_GEOM, TableConfig

BLOCK_BODY = "pusht_block"
TARGET_PREFIX = "pusht_target"


@dataclass(frozen=True)
class PushTConfig:
    table: TableConfig = field(default_factory=TableConfig)
    pusher: Tool = field(default_factory=lambda: Tool("pusher", length=0.12, width=0.02, mass=0.05))
    bar_length: float = 0.12  # m
    bar_width: float = 0.03
    stem_length: float = 0.09
    stem_width: float = 0.03
    height: float = 0.03  # m, the block's thickness
    mass: float = 0.2  # kg
    friction: float = 0.4  # block on table and on the pusher
    target: tuple = (0.5, 0.0, np.pi / 4)  # (x m, y m, yaw rad) of the target's T frame
    start_x: tuple = (0.38, 0.62)  # m, the block's start is drawn from these ranges
    start_y: tuple = (-0.18, 0.18)
    min_start_distance: float = 0.08  # m between the start's and the target's origins
    success_coverage: float = 0.95

    def validated(self) -> "PushTConfig":
        self.pusher.validated()
        for name in ("bar_length", "bar_width", "stem_length", "stem_width", "height", "mass", "friction",
                     "min_start_distance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"pusht.{name}: must be a positive number, got {value!r}")
        if self.stem_width > self.bar_length:
            raise ValueError("pusht: the stem must be narrower than the bar is long")
        if not 0 < self.success_coverage <= 1:
            raise ValueError(f"pusht.success_coverage: must lie in (0, 1], got {self.success_coverage}")
        for name in ("start_x", "start_y"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"pusht.{name}: expected [low, high], got {getattr(self, name)}")
        return self

    def boxes(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(centre (x, y), half size (x, y)) of the bar and the stem in the T frame, m."""
        return [(np.array([0.0, self.bar_width / 2]), np.array([self.bar_length / 2, self.bar_width / 2])),
                (np.array([0.0, -self.stem_length / 2]), np.array([self.stem_width / 2, self.stem_length / 2]))]

    def outline(self) -> np.ndarray:
        """The T's outline (8, 2) in its own frame, counter-clockwise, m."""
        b, w, s, v = self.bar_length / 2, self.bar_width, self.stem_length, self.stem_width / 2
        return np.array([[-b, 0], [-v, 0], [-v, -s], [v, -s], [v, 0], [b, 0], [b, w], [-b, w]])


def placed(points: np.ndarray, pose) -> np.ndarray:
    """Points (N, 2) of the T frame placed at pose (x, y, yaw): world (N, 2), m."""
    x, y, yaw = pose
    c, s = np.cos(yaw), np.sin(yaw)
    return points @ np.array([[c, s], [-s, c]]) + np.array([x, y])


def coverage(config: PushTConfig, pose) -> float:
    """Area of the target covered by the block at `pose` (x, y, yaw), over the target's area (shapely)."""
    from shapely.geometry import Polygon

    outline = config.outline()
    block, target = Polygon(placed(outline, pose)), Polygon(placed(outline, config.target))
    return float(block.intersection(target).area / target.area)


def draw_start(config: PushTConfig, rng: np.random.Generator) -> np.ndarray:
    """A start pose (x, y, yaw) away from the target (its origin at least min_start_distance off)."""
    for _ in range(1000):
        pose = np.array([rng.uniform(*config.start_x), rng.uniform(*config.start_y), rng.uniform(-np.pi, np.pi)])
        if np.linalg.norm(pose[:2] - np.asarray(config.target[:2])) >= config.min_start_distance:
            return pose
    raise ValueError("pusht: no start pose away from the target within start_x, start_y")


@dataclass
class PushTScene:
    """Table, block at `start` (x, y, yaw) and the target marker; apply(spec, robot) adds them."""

    config: PushTConfig
    start: np.ndarray

    def apply(self, spec: mujoco.MjSpec, robot=None) -> None:
        c, t = self.config, self.config.table
        world = spec.worldbody
        world.add_geom(name=TABLE_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[*t.half_extents, t.height / 2],
                       pos=[*t.center, t.height / 2], rgba=list(t.rgba), friction=[c.friction, 0.005, 0.0001],
                       contype=SCENE_CONTACT[0], conaffinity=SCENE_CONTACT[1])
        x, y, yaw = self.start
        body = world.add_body(name=BLOCK_BODY, pos=[x, y, t.height + c.height / 2 + 1e-4],
                              quat=[np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])
        body.add_freejoint()
        volume = sum(4 * h[0] * h[1] for _, h in c.boxes()) * c.height
        for k, (centre, half) in enumerate(c.boxes()):
            body.add_geom(name=f"{BLOCK_BODY}_{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[*half, c.height / 2],
                          pos=[*centre, 0.0], density=c.mass / volume, friction=[c.friction, 0.005, 0.0001],
                          contype=SCENE_CONTACT[0], conaffinity=SCENE_CONTACT[1], rgba=[0.45, 0.55, 0.75, 1.0])
        tx, ty, tyaw = c.target
        quat = [np.cos(tyaw / 2), 0.0, 0.0, np.sin(tyaw / 2)]
        target = world.add_body(name=TARGET_PREFIX, pos=[tx, ty, t.height + 5e-4], quat=quat)
        for k, (centre, half) in enumerate(c.boxes()):
            target.add_geom(name=f"{TARGET_PREFIX}_{k}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[*half, 5e-4],
                            pos=[*centre, 0.0], contype=0, conaffinity=0, mass=0.0, density=0.0, rgba=[0.3, 0.8, 0.3, 0.6])


def block_pose(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The block's (x, y, yaw) in the world, m and rad."""
    body = model.body(BLOCK_BODY).id
    x, y = data.xpos[body][:2]
    R = data.xmat[body].reshape(3, 3)
    return np.array([x, y, np.arctan2(R[1, 0], R[0, 0])])


@dataclass
class PushTEpisode:
    config: PushTConfig
    start: np.ndarray  # (x, y, yaw)

    @property
    def scene(self) -> PushTScene:
        return PushTScene(self.config, self.start)

    def score(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
        """score: the coverage (0..1); success: coverage above success_coverage; the block's pose; the
        contact force of the block on the pusher (3,), N, world frame."""
        pose = block_pose(model, data)
        value = coverage(self.config, pose)
        return {"score": value, "success": bool(value > self.config.success_coverage), "block_pose": pose,
                "contact_force_n": self.contact_force(model, data)}

    def contact_force(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """The contact force of the block on the pusher (3,), N, world frame."""
        return _pusher_force(model, data)

    def objects(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
        """What an operator sees of the scene besides the arm: {'block_pose': (x, y, yaw)}, m and rad."""
        return {"block_pose": block_pose(model, data)}


def _pusher_force(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """Total contact force (3,) the block exerts on the arm (the pusher), world frame, N."""
    block = model.body(BLOCK_BODY).id
    total, wrench = np.zeros(3), np.zeros(6)
    for i in range(data.ncon):
        contact = data.contact[i]
        b1, b2 = model.geom_bodyid[contact.geom1], model.geom_bodyid[contact.geom2]
        if block not in (b1, b2) or 0 in (b1, b2):  # block-arm contacts only (not the table: world body)
            continue
        mujoco.mj_contactForce(model, data, i, wrench)
        force = contact.frame.reshape(3, 3).T @ wrench[:3]  # on geom2
        total += force if b1 == block else -force  # on the arm
    return total


class PushTTask:
    name = "pusht"
    teleop_rate_hz = 10.0  # Push-T's control rate: the expert's (and a policy's) commands
    object_names = ("block_pose",)  # the episode's objects(): planar poses, on /task/<name> in the graph

    def __init__(self, config: PushTConfig | None = None):
        self.config = (config or PushTConfig()).validated()

    @property
    def tool(self) -> Tool:
        return self.config.pusher

    def episode(self, seed: int) -> PushTEpisode:
        """Seed >= 0 draws the block's start; seed < 0 starts it beside the target, turned by 90 degrees."""
        if seed >= 0:
            return PushTEpisode(self.config, draw_start(self.config, np.random.default_rng(seed)))
        tx, ty, tyaw = self.config.target
        return PushTEpisode(self.config, np.array([tx, ty + 0.12, tyaw + np.pi / 2]))

    def expert(self, seed: int, **settings):
        from robot_dyn.tasks.pusht_expert import PushTExpert, PushTExpertSettings

        return PushTExpert(self.config, self.config.pusher.width / 2, PushTExpertSettings(**settings), seed=seed)


def load_pusht_config(path: str | Path | None = None) -> PushTConfig:
    """configs/tasks/pusht.yaml (or `path`) as a PushTConfig; ValueError names the file and field."""
    from robot_dyn.tasks.config import floats, load_task_config

    return load_task_config(PushTConfig, "pusht", path, {"pusher": lambda v: Tool("pusher", **v),
                                                          "table": lambda v: TableConfig(**v), "target": floats,
                                                          "start_x": floats, "start_y": floats})
