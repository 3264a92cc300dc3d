"""The `insert` task: a square peg held at the flange goes into a tight hole whose true position is
offset from the nominal one by a random amount.

Scene (MuJoCo, primitive geoms only): the table; on it a fixture, four boxes around a square hole
with a floor, its top `fixture_height` above the table. The hole's side is the peg's plus the
diametral clearance (0.5 mm by default). Each episode draws the hole's centre uniformly in a disc
of `offset_radius` (10 mm) around `nominal_hole`, so the hole must be found by feel: what a person
does with a search motion and what the search-strategy work learns.

The hole's edge has a 45 degree chamfer (3 mm), as a real fixture's has: a peg pushed down within
it slides into the hole. Contact at this clearance (0.25 mm a side) must not chatter or let the peg through a wall: the peg
and fixture geoms use a stiff contact (solref time constant 2 physics steps, near-hard solimp), an
elliptic friction cone, and the peg's corners are chamfered by nothing but the clearance, as a real
peg would be. `contact_force` reads the normal and friction forces between peg and fixture.

A second fixture leans: `tilt` turns it about the base's y axis, about the nominal hole's point on the top
face, so the hole's axis leans by that angle and the search runs on a sloped surface. Everything about the
fixture is said in its frame (InsertConfig.to_fixture): origin at the nominal hole on the top face, x and y
along the face (the base's x, y when level), z out of the face along the hole's axis.

Frames and units: world = the arm's base frame, z up; m, kg, N. The peg is the flange's tool
(robot_dyn/robots/tools.py), so the controller's model and the safety filter know its mass and shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

from robot_dyn.robots.tools import TOOL_LINK, Tool
from robot_dyn.sim.deformables import ARM_CONTACT, SCENE_CONTACT, TABLE_GEOM, TableConfig

FIXTURE_PREFIX = "fixture"
PEG_GEOM = "peg"
MAX_TILT = 0.35  # rad (20 degrees): the arms reach the nominal hole with the peg along a hole's axis leaning that far


@dataclass(frozen=True)
class InsertConfig:
    table: TableConfig = field(default_factory=TableConfig)
    peg: Tool = field(default_factory=lambda: Tool("peg", length=0.10, width=0.02, mass=0.12, shape="box"))
    clearance: float = 0.0005  # m, hole side - peg side (diametral)
    chamfer: float = 0.003  # m, the 45 degree chamfer on the hole's edge (widens its mouth by twice this)
    hole_depth: float = 0.03  # m, from the fixture's top to the hole's floor
    fixture_height: float = 0.04  # m above the table
    fixture_side: float = 0.12  # m, the fixture's outer square
    nominal_hole: tuple = (0.5, 0.0)  # (x, y) m, where the hole is believed to be (base frame)
    tilt: float = 0.0  # rad the fixture leans about the base's y axis (0: level; > 0: its top faces +x)
    offset_radius: float = 0.010  # m: the true hole lies within this of the nominal one
    success_depth: float = 0.02  # m the peg's tip must reach below the fixture's top
    friction: float = 0.3  # peg on fixture (steel on steel, dry)
    solref_timeconst: float = 0.002  # s, contact stiffness time constant (>= 2 physics steps)

    def validated(self) -> "InsertConfig":
        self.peg.validated()
        for name in ("clearance", "chamfer", "hole_depth", "fixture_height", "fixture_side", "success_depth", "friction",
                     "solref_timeconst"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"insert.{name}: must be a positive number, got {value!r}")
        if not 0 <= self.offset_radius < self.fixture_side / 2 - self.hole_side:
            raise ValueError(f"insert.offset_radius: must keep the hole inside the fixture, got {self.offset_radius}")
        if not self.chamfer < self.success_depth <= self.hole_depth <= self.fixture_height:
            raise ValueError("insert: need chamfer < success_depth <= hole_depth <= fixture_height")
        if not (isinstance(self.tilt, (int, float)) and abs(self.tilt) <= MAX_TILT):
            raise ValueError(f"insert.tilt: must be a number of at most {MAX_TILT} rad either way, got {self.tilt!r}")
        return self

    @property
    def hole_side(self) -> float:
        return self.peg.width + self.clearance

    @property
    def top(self) -> float:
        """z of the fixture's top face at the nominal hole, m (base frame)."""
        return self.table.height + self.fixture_height

    @property
    def fixture_rotation(self) -> np.ndarray:
        """base <- fixture (3, 3): the fixture's frame turned by `tilt` about the base's y axis."""
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])

    @property
    def fixture_origin(self) -> np.ndarray:
        """The fixture frame's origin (3,), m, base frame: the nominal hole on the top face."""
        return np.array([*self.nominal_hole, self.top], float)

    def to_fixture(self, points) -> np.ndarray:
        """Points (..., 3) m, base frame -> fixture frame (x, y along the top face from the nominal hole, z
        the height above the face)."""
        return (np.asarray(points, float) - self.fixture_origin) @ self.fixture_rotation

    def from_fixture(self, points) -> np.ndarray:
        """Points (..., 3) m, fixture frame -> base frame."""
        return self.fixture_origin + np.asarray(points, float) @ self.fixture_rotation.T

    def axes_to_fixture(self, vectors) -> np.ndarray:
        """Vectors (..., 3) (velocities, forces), base axes -> fixture axes."""
        return np.asarray(vectors, float) @ self.fixture_rotation

    def axes_from_fixture(self, vectors) -> np.ndarray:
        """Vectors (..., 3), fixture axes -> base axes."""
        return np.asarray(vectors, float) @ self.fixture_rotation.T


def draw_hole(config: InsertConfig, rng: np.random.Generator) -> np.ndarray:
    """The hole's true centre, m: the nominal hole plus an offset along the fixture's top face (x, y of the
    fixture frame; the base's x, y when level), uniform in the disc of offset_radius."""
    radius = config.offset_radius * np.sqrt(rng.uniform())
    angle = rng.uniform(0.0, 2 * np.pi)
    return np.asarray(config.nominal_hole, float) + radius * np.array([np.cos(angle), np.sin(angle)])


@dataclass
class InsertScene:
    """Table + fixture with its hole at `hole` (draw_hole); apply(spec, robot) adds them to a MuJoCo spec
    whose robot carries the peg (robot_dyn.robots.tools.with_tool)."""

    config: InsertConfig
    hole: np.ndarray

    def apply(self, spec: mujoco.MjSpec, robot=None) -> None:
        c = self.config
        if robot is None or robot.tool is None or robot.tool.name != c.peg.name:
            raise ValueError(f"insert: the robot must carry the '{c.peg.name}' tool (robot_dyn.robots.tools.with_tool)")
        t = c.table
        world = spec.worldbody
        contact = dict(contype=SCENE_CONTACT[0], conaffinity=SCENE_CONTACT[1], friction=[c.friction, 0.005, 0.0001],
                       solref=[c.solref_timeconst, 1.0], solimp=[0.99, 0.999, 0.0005, 0.5, 2.0], condim=3,
                       rgba=[0.55, 0.57, 0.6, 1.0])
        world.add_geom(name=TABLE_GEOM, type=mujoco.mjtGeom.mjGEOM_BOX, size=[*t.half_extents, t.height / 2],
                       pos=[*t.center, t.height / 2], rgba=list(t.rgba), friction=[t.friction, 0.005, 0.0001],
                       contype=SCENE_CONTACT[0], conaffinity=SCENE_CONTACT[1])
        # Four walls around the hole, each in two layers, with a 45 degree chamfer on the hole's edge
        # (the top layer steps back by the chamfer width and a tilted box fills the step), and the hole's
        # floor: all static geoms of the world body, laid out in the fixture frame (its top face at z = 0)
        # and placed by `tilt`. The chamfer widens the mouth by 2 * chamfer, as on a real fixture: it is
        # what lets a peg pushed down near the hole slide into it.
        x, y = np.asarray(self.hole, float) - np.asarray(c.nominal_hole, float)
        h, ch, bottom = c.hole_side / 2, c.chamfer, -c.fixture_height
        outer = c.fixture_side / 2

        def add_box(name, half_size, centre, rotation=np.eye(3)):
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, (c.fixture_rotation @ rotation).ravel())
            world.add_geom(name=f"{FIXTURE_PREFIX}_{name}", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(half_size),
                           pos=c.from_fixture(centre), quat=quat, **contact)

        for k, (ux, uy) in enumerate(((1, 0), (-1, 0), (0, 1), (0, -1))):
            along = np.array([-uy, ux])  # along the wall, in the face's plane
            normal = np.array([ux, uy])  # from the hole's axis into the wall
            for layer, (inner, z0, z1) in enumerate(((h, bottom, -ch), (h + ch, -ch, 0.0))):
                thick = (outer - inner) / 2
                # walls on x take the corners (full length), walls on y fit between them
                length = outer if ux else inner
                centre = np.array([x, y]) + normal * (inner + thick)
                size = np.abs(normal) * thick + np.abs(along) * length
                add_box(f"wall{k}_{layer}", [*size, (z1 - z0) / 2], [*centre, (z0 + z1) / 2])
            # the chamfer: a box whose face runs from (h + ch, top) down to (h, top - ch), 45 degrees, and
            # whose body lies in the wall (its corners reach neither above the top nor into the hole)
            slope = np.array([*normal, 1.0]) / np.sqrt(2)  # up the face, away from the hole's axis
            into = np.array([*normal, -1.0]) / np.sqrt(2)  # into the wall's material
            half_face, half_thick = ch / np.sqrt(2), ch / np.sqrt(2)
            centre = np.array([x + normal[0] * (h + ch / 2), y + normal[1] * (h + ch / 2), -ch / 2]) + into * half_thick
            add_box(f"chamfer{k}", [h + ch, half_face, half_thick], centre, np.column_stack([[*along, 0.0], slope, into]))
        floor = c.fixture_height - c.hole_depth
        if floor > 0:
            add_box("floor", [h, h, floor / 2], [x, y, bottom + floor / 2])
        body = spec.body(TOOL_LINK)
        if body is None or not body.geoms:
            raise ValueError("insert: the MuJoCo spec has no tool geom (the robot's URDF lacks the tool)")
        peg = body.geoms[0]
        peg.name = PEG_GEOM
        peg.contype, peg.conaffinity = ARM_CONTACT
        peg.friction = [c.friction, 0.005, 0.0001]
        peg.solref, peg.solimp, peg.condim = [c.solref_timeconst, 1.0], [0.99, 0.999, 0.0005, 0.5, 2.0], 3
        peg.rgba = [0.8, 0.65, 0.2, 1.0]
        spec.option.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
        spec.option.impratio = 10.0  # stiff friction against the stiff normal: no creep in the hole


def peg_tip(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """The centre of the peg's end face (3,), world frame, m."""
    g = model.geom(PEG_GEOM).id
    return data.geom_xpos[g] + data.geom_xmat[g].reshape(3, 3)[:, 2] * model.geom_size[g][2]


def insertion(config: InsertConfig, hole: np.ndarray, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
    """How far in the peg is: depth (m below the fixture's top face, negative above it), its lateral offset
    from the hole's axis (m), and success (inside the hole's outline to success_depth)."""
    tip = config.to_fixture(peg_tip(model, data))
    depth = -tip[2]
    lateral = float(np.linalg.norm(tip[:2] - (np.asarray(hole) - config.nominal_hole)))
    inside = lateral < config.hole_side / 2
    return {"depth_m": float(depth), "lateral_m": lateral, "success": bool(inside and depth >= config.success_depth)}


def contact_force(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """Total contact force (3,) the fixture exerts on the peg, world frame, N."""
    peg = model.geom(PEG_GEOM).id
    total = np.zeros(3)
    wrench = np.zeros(6)
    for i in range(data.ncon):
        contact = data.contact[i]
        if peg not in (contact.geom1, contact.geom2):
            continue
        other = contact.geom2 if contact.geom1 == peg else contact.geom1
        if not model.geom(other).name.startswith(FIXTURE_PREFIX):
            continue
        mujoco.mj_contactForce(model, data, i, wrench)
        force = contact.frame.reshape(3, 3).T @ wrench[:3]  # contact frame -> world; acts on geom2
        total += force if contact.geom2 == peg else -force
    return total


def load_insert_config(path: str | Path | None = None) -> InsertConfig:
    """configs/tasks/insert.yaml (or `path`) as an InsertConfig; ValueError names the file and field."""
    from robot_dyn.tasks.config import floats, load_task_config

    return load_task_config(InsertConfig, "insert", path, {"peg": lambda v: Tool("peg", shape="box", **v),
                                                            "table": lambda v: TableConfig(**v), "nominal_hole": floats})


def save_insert_config(config: InsertConfig, path: str | Path) -> Path:
    """Write `config` as a task config file load_insert_config reads back (a variant for the graph's nodes)."""
    import yaml

    c = config.validated()
    t = c.table
    numbers = ("clearance", "chamfer", "hole_depth", "fixture_height", "fixture_side", "offset_radius", "success_depth",
               "friction", "solref_timeconst", "tilt")
    section = {"peg": {"length": float(c.peg.length), "width": float(c.peg.width), "mass": float(c.peg.mass)},
               "table": {"center": [float(v) for v in t.center], "half_extents": [float(v) for v in t.half_extents],
                         "height": float(t.height), "friction": float(t.friction), "rgba": [float(v) for v in t.rgba]},
               **{name: float(getattr(c, name)) for name in numbers},
               "nominal_hole": [float(v) for v in c.nominal_hole]}
    path = Path(path)
    path.write_text(yaml.safe_dump({"insert": section}, sort_keys=False))
    return path


@dataclass
class InsertEpisode:
    """One episode: its scene (a MuJoCo scene extension) and the score of a state."""

    config: InsertConfig
    hole: np.ndarray  # (x, y) m, the true hole

    @property
    def scene(self) -> InsertScene:
        return InsertScene(self.config, self.hole)

    def score(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
        """score: the depth reached as a fraction of the success depth (0..1); success; depth and lateral
        offset (m); contact force of the fixture on the peg (3,), N, world frame."""
        result = insertion(self.config, self.hole, model, data)
        result["score"] = float(np.clip(result["depth_m"] / self.config.success_depth, 0.0, 1.0))
        result["contact_force_n"] = self.contact_force(model, data)
        return result

    def contact_force(self, model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
        """The contact force of the fixture on the peg (3,), N, world frame."""
        return contact_force(model, data)

    def objects(self, model: mujoco.MjModel, data: mujoco.MjData) -> dict:
        """What an operator sees of the scene besides the arm: nothing here (the fixture is fixed, and
        its hole's offset is what the operator must find)."""
        return {}


class InsertTask:
    name = "insert"
    teleop_rate_hz = 50.0  # the expert's (and a person's device's) command rate
    object_names = ()  # the episode's objects(): none

    def __init__(self, config: InsertConfig | None = None):
        self.config = (config or InsertConfig()).validated()

    @property
    def tool(self) -> Tool:
        return self.config.peg

    def episode(self, seed: int) -> InsertEpisode:
        """Seed >= 0 draws the hole's offset; seed < 0 puts it at the nominal position."""
        hole = draw_hole(self.config, np.random.default_rng(seed)) if seed >= 0 else np.asarray(self.config.nominal_hole, float)
        return InsertEpisode(self.config, hole)

    def expert(self, seed: int, **settings):
        from robot_dyn.tasks.insert_expert import InsertExpert, InsertExpertSettings

        return InsertExpert(self.config, InsertExpertSettings(**settings), seed=seed)
