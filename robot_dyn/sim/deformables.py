"""Deformable-object scenes for MuJoCo: a table, a rope (1-D flex) or a cloth (2-D flex), and a
pusher on the arm's end-effector.

The rope is a MuJoCo 4 ``flexcomp type="grid" dim="1"`` (built with ``MjsBody.make_flex``):
V vertex bodies, each with three slide joints, held at a fixed spacing by the flex edge
equality constraint. It has no bending stiffness: flex elasticity in MuJoCo 4 needs the
Euler/discrete integrator, while the arm runs under ``implicitfast`` (and with Euler,
1-D elasticity was unstable above Young's modulus ~1e5 Pa). Friction with the table is
what keeps the rope's shape, much like a heavy, limp rope. Self-collision is off.

A scene is applied to an ``mujoco.MjSpec`` before it is compiled: pass it as ``scene=`` to
``robot_dyn.sim.mujoco_backend.MujocoBackend`` / ``make_backend("mujoco", ...)``.

Frames and units: world frame (z up, the arm's base at the origin), metres, kilograms.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from robot_dyn.robots.description import RobotDescription

# Arm links use contype 2 / conaffinity 1 and scene objects contype 1 / conaffinity 3
# (robot_dyn.robots.engines): the pusher is part of the arm, the table and rope are scene objects.
ARM_CONTACT = (2, 1)
SCENE_CONTACT = (1, 3)
TABLE_GEOM = "table"
PUSHER_GEOMS = ("pusher_rod", "pusher_tip")


def _positive(name: str, value, allow_zero: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a number, got {value!r}") from None
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"'{name}' must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return value


def _vector(name: str, value, n: int) -> tuple:
    arr = np.asarray(value, dtype=float) if np.ndim(value) == 1 else None
    if arr is None or arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"'{name}' must be {n} finite numbers, got {value!r}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class TableConfig:
    """A fixed box from the floor up to `height` (its top surface, m), centred at `center` (x, y)."""

    center: tuple = (0.5, 0.0)
    half_extents: tuple = (0.3, 0.4)  # m, x and y
    height: float = 0.10  # m, z of the top surface
    friction: float = 0.8
    rgba: tuple = (0.62, 0.47, 0.33, 1.0)

    def __post_init__(self):
        object.__setattr__(self, "center", _vector("table.center", self.center, 2))
        object.__setattr__(self, "half_extents", _vector("table.half_extents", self.half_extents, 2))
        object.__setattr__(self, "rgba", _vector("table.rgba", self.rgba, 4))
        if min(self.half_extents) <= 0:
            raise ValueError(f"'table.half_extents' must be positive, got {self.half_extents}")
        _positive("table.height", self.height)
        _positive("table.friction", self.friction)


@dataclass(frozen=True)
class RopeConfig:
    """A limp rope of `n_vertices` point masses at `spacing` (m) with capsule radius `radius` (m)."""

    name: str = "rope"
    n_vertices: int = 32
    spacing: float = 0.015  # m between neighbouring vertices (rope length = (V - 1) * spacing)
    radius: float = 0.007  # m; must be below spacing / 2 (MuJoCo's rule)
    mass: float = 0.05  # kg, whole rope
    friction: float = 0.8  # sliding; contact uses the larger of rope and table friction
    edge_damping: float = 0.02  # N s/m along edges
    rgba: tuple = (0.85, 0.2, 0.1, 1.0)

    def __post_init__(self):
        if not isinstance(self.n_vertices, (int, np.integer)) or self.n_vertices < 3:
            raise ValueError(f"'rope.n_vertices' must be an integer >= 3, got {self.n_vertices!r}")
        for name in ("spacing", "radius", "mass", "friction"):
            _positive(f"rope.{name}", getattr(self, name))
        _positive("rope.edge_damping", self.edge_damping, allow_zero=True)
        if not self.radius < self.spacing / 2:
            raise ValueError(f"'rope.radius' ({self.radius}) must be below spacing / 2 ({self.spacing / 2})")
        object.__setattr__(self, "rgba", _vector("rope.rgba", self.rgba, 4))

    @property
    def length(self) -> float:
        return (self.n_vertices - 1) * self.spacing


@dataclass(frozen=True)
class ClothConfig:
    """A square cloth (2-D flex grid, no elasticity: edge-equality only), `count` x `count` vertices."""

    name: str = "cloth"
    count: int = 12
    spacing: float = 0.02
    radius: float = 0.004
    mass: float = 0.05
    friction: float = 0.8
    edge_damping: float = 0.02
    rgba: tuple = (0.2, 0.4, 0.85, 1.0)

    def __post_init__(self):
        if not isinstance(self.count, (int, np.integer)) or self.count < 2:
            raise ValueError(f"'cloth.count' must be an integer >= 2, got {self.count!r}")
        for name in ("spacing", "radius", "mass", "friction"):
            _positive(f"cloth.{name}", getattr(self, name))
        if not self.radius < self.spacing / 2:
            raise ValueError(f"'cloth.radius' ({self.radius}) must be below spacing / 2 ({self.spacing / 2})")
        object.__setattr__(self, "rgba", _vector("cloth.rgba", self.rgba, 4))


@dataclass(frozen=True)
class PusherConfig:
    """A massless rod along the end-effector's +z axis ending in a sphere; `length` (m) from the
    end-effector frame origin to the sphere's centre. Set length 0 for no pusher."""

    length: float = 0.10
    rod_radius: float = 0.008
    tip_radius: float = 0.012
    rgba: tuple = (0.25, 0.25, 0.28, 1.0)

    def __post_init__(self):
        _positive("pusher.length", self.length, allow_zero=True)
        _positive("pusher.rod_radius", self.rod_radius)
        _positive("pusher.tip_radius", self.tip_radius)
        object.__setattr__(self, "rgba", _vector("pusher.rgba", self.rgba, 4))

    def tip_position(self, ee_position: np.ndarray, ee_rotation: np.ndarray) -> np.ndarray:
        """World position of the tip sphere's centre given the end-effector pose (world <- ee)."""
        return np.asarray(ee_position) + np.asarray(ee_rotation)[..., :, 2] * self.length


@dataclass
class DeformableScene:
    """Table + rope (+ optional cloth) + pusher. ``apply(spec, robot)`` adds them to a MuJoCo spec.

    The rope is created straight along the world y axis, centred above the table centre and
    resting on it; give it another shape after reset with ``set_flex_vertices``.
    """

    table: TableConfig = field(default_factory=TableConfig)
    rope: RopeConfig | None = field(default_factory=RopeConfig)
    cloth: ClothConfig | None = None
    pusher: PusherConfig | None = field(default_factory=PusherConfig)
    cloth_center: tuple = (0.5, 0.25)  # (x, y) m, where the cloth is laid flat

    @property
    def objects(self) -> tuple[str, ...]:
        """Names of the deformable objects (flexes) in the scene."""
        return tuple(o.name for o in (self.rope, self.cloth) if o is not None)

    def apply(self, spec: mujoco.MjSpec, robot: RobotDescription | None = None) -> None:
        world, t = spec.worldbody, self.table
        h = t.height
        world.add_geom(name=TABLE_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[*t.half_extents, h / 2],
                       pos=[*t.center, h / 2], rgba=list(t.rgba), friction=[t.friction, 0.005, 0.0001],
                       contype=SCENE_CONTACT[0], conaffinity=SCENE_CONTACT[1])
        if self.rope is not None:
            r = self.rope
            # make_flex lays the grid along its local x axis, centred on pos; turn it onto world y.
            flex = world.make_flex(r.name, type="grid", dim=1, count=[r.n_vertices, 1, 1], spacing=[r.spacing] * 3,
                                   radius=r.radius, mass=r.mass, equality=1, pos=[*t.center, h + r.radius + 1e-3],
                                   quat=[np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])
            self._contact(flex, r.friction, r.edge_damping, r.rgba)
        if self.cloth is not None:
            c = self.cloth
            flex = world.make_flex(c.name, type="grid", dim=2, count=[c.count, c.count, 1], spacing=[c.spacing] * 3,
                                   radius=c.radius, mass=c.mass, equality=1,
                                   pos=[*self.cloth_center, h + c.radius + 1e-3])
            self._contact(flex, c.friction, c.edge_damping, c.rgba)
        if self.pusher is not None and self.pusher.length > 0:
            if robot is None:
                raise ValueError("a pusher needs the robot (its end-effector frame)")
            add_pusher(spec, robot.ee_frame, self.pusher)

    @staticmethod
    def _contact(flex, friction: float, edge_damping: float, rgba) -> None:
        flex.friction = [friction, 0.005, 0.0001]
        flex.contype, flex.conaffinity = SCENE_CONTACT
        flex.condim = 3
        flex.selfcollide = mujoco.mjtFlexSelf.mjFLEXSELF_NONE
        flex.edgedamping = edge_damping
        flex.rgba = list(rgba)


def add_pusher(spec: mujoco.MjSpec, body_name: str, pusher: PusherConfig) -> None:
    """Add the pusher's rod and tip geoms to `body_name` (massless: the arm's dynamics are unchanged)."""
    body = spec.body(body_name)
    if body is None:
        raise ValueError(f"pusher: the MuJoCo model has no body '{body_name}'")
    common = dict(contype=ARM_CONTACT[0], conaffinity=ARM_CONTACT[1], rgba=list(pusher.rgba), mass=0.0, density=0.0)
    body.add_geom(name=PUSHER_GEOMS[0], type=mujoco.mjtGeom.mjGEOM_CAPSULE, fromto=[0, 0, 0, 0, 0, pusher.length],
                  size=[pusher.rod_radius, 0, 0], **common)
    body.add_geom(name=PUSHER_GEOMS[1], type=mujoco.mjtGeom.mjGEOM_SPHERE, pos=[0, 0, pusher.length],
                  size=[pusher.tip_radius, 0, 0], **common)


# --- ground truth ----------------------------------------------------------

def flex_id(model: mujoco.MjModel, name: str) -> int:
    fid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_FLEX, name)
    if fid < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_FLEX, i) for i in range(model.nflex)]
        raise ValueError(f"the model has no flex '{name}'; flexes: {names}")
    return fid


def flex_vertices(model: mujoco.MjModel, data: mujoco.MjData, name: str = "rope") -> np.ndarray:
    """Ground-truth vertex positions (V, 3) of the named flex, world frame, m (a copy).

    Valid after mj_forward / mj_step (flexvert_xpos is computed by the position stage)."""
    fid = flex_id(model, name)
    start, count = model.flex_vertadr[fid], model.flex_vertnum[fid]
    return data.flexvert_xpos[start:start + count].copy()


def rope_vertices(model: mujoco.MjModel, data: mujoco.MjData, name: str = "rope") -> np.ndarray:
    """The rope's ground-truth vertex positions (V, 3), world frame, m, in order along the rope."""
    return flex_vertices(model, data, name)


def set_flex_vertices(model: mujoco.MjModel, data: mujoco.MjData, positions: np.ndarray, name: str = "rope",
                      velocities: np.ndarray | None = None) -> None:
    """Place the named flex's vertices at `positions` (V, 3), world frame, m, moving at `velocities`
    (V, 3) m/s (None: at rest); runs mj_forward.

    Each vertex is a body with slide joints; its joint positions (velocities) are set to the offset
    from the body's reference position (the velocity), projected on each slide axis."""
    fid = flex_id(model, name)
    start, count = model.flex_vertadr[fid], model.flex_vertnum[fid]
    positions = np.asarray(positions, float)
    velocities = np.zeros_like(positions) if velocities is None else np.asarray(velocities, float)
    for label, value in (("positions", positions), ("velocities", velocities)):
        if value.shape != (count, 3) or not np.all(np.isfinite(value)):
            raise ValueError(f"flex '{name}' vertex {label} must be finite with shape ({count}, 3), got {value.shape}")
    for body, target, velocity in zip(model.flex_vertbodyid[start:start + count], positions, velocities):
        if model.body_parentid[body] != 0:
            raise ValueError(f"flex '{name}': vertex body {body} is not a child of the world body")
        rot = np.zeros(9)
        mujoco.mju_quat2Mat(rot, model.body_quat[body])
        offset = rot.reshape(3, 3).T @ (target - model.body_pos[body])  # in the body frame
        local_velocity = rot.reshape(3, 3).T @ velocity
        for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_SLIDE:
                raise ValueError(f"flex '{name}': vertex joint {j} is not a slide joint")
            data.qpos[model.jnt_qposadr[j]] = offset @ model.jnt_axis[j]
            data.qvel[model.jnt_dofadr[j]] = local_velocity @ model.jnt_axis[j]
    mujoco.mj_forward(model, data)


def random_rope_shape(rng: np.random.Generator, rope: RopeConfig, table: TableConfig, center_jitter: float = 0.03,
                      yaw_range: tuple = (np.pi / 2 - 0.6, np.pi / 2 + 0.6), max_bend: float = 1.2,
                      margin: float = 0.03, tries: int = 100) -> np.ndarray:
    """A random smooth planar rope shape (V, 3) lying on the table, segment lengths = spacing.

    The heading along the rope is yaw + a random sum of two sinusoids (total turning up to
    about `max_bend` rad each); the curve is centred near the table centre (+- center_jitter)
    and kept `margin` inside the table's edges; raises ValueError if no shape fits."""
    n, s = rope.n_vertices, rope.spacing
    u = np.linspace(0.0, 1.0, n - 1)
    for _ in range(tries):
        yaw = rng.uniform(*yaw_range)
        heading = np.full(n - 1, yaw)
        for k in (1, 2):
            heading += rng.uniform(-max_bend, max_bend) / (2 * k) * np.sin(np.pi * k * u + rng.uniform(0, 2 * np.pi))
        steps = s * np.column_stack([np.cos(heading), np.sin(heading)])
        xy = np.vstack([np.zeros(2), np.cumsum(steps, axis=0)])
        xy += np.asarray(table.center) - xy.mean(axis=0) + rng.uniform(-center_jitter, center_jitter, 2)
        lo = np.asarray(table.center) - np.asarray(table.half_extents) + margin
        hi = np.asarray(table.center) + np.asarray(table.half_extents) - margin
        if np.all((xy >= lo) & (xy <= hi)):
            return np.column_stack([xy, np.full(n, table.height + rope.radius + 5e-4)])
    raise ValueError(f"no random rope shape fits on the table ({tries} tries): table too small for the rope")


def polyline_distance(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Distance (N,) from each point (N, 3) to the polyline through `vertices` (V, 3)."""
    points, vertices = np.asarray(points, float), np.asarray(vertices, float)
    a, b = vertices[:-1], vertices[1:]
    ab = b - a
    t = np.einsum("nsk,sk->ns", points[:, None, :] - a[None], ab) / np.maximum(np.einsum("sk,sk->s", ab, ab), 1e-18)
    closest = a[None] + np.clip(t, 0.0, 1.0)[..., None] * ab[None]
    return np.linalg.norm(points[:, None, :] - closest, axis=-1).min(axis=1)
