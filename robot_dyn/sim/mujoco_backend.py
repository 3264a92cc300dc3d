"""MuJoCo backend (the default): the URDF arm through MjSpec, a floor, lights and a scene camera.

Optional scene extensions (``scene=``) add more to the spec before it is compiled: anything
with ``apply(spec: mujoco.MjSpec, robot: RobotDescription) -> None``, e.g.
``robot_dyn.sim.deformables.DeformableScene`` (table, rope, pusher) and
``robot_dyn.perception.cameras.CameraRig`` (calibrated cameras), alone or in a sequence.
"""
from __future__ import annotations

from typing import Iterable, Protocol

import mujoco
import numpy as np

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots.description import RobotDescription
from robot_dyn.robots.engines import mujoco_arm_spec
from robot_dyn.sim.backend import SceneObject
from robot_dyn.sim.effects import UnmodelledEffects
from robot_dyn.sim.friction import lugre_step

SCENE_CAMERA = "scene"


class SceneExtension(Protocol):
    def apply(self, spec: mujoco.MjSpec, robot: RobotDescription) -> None:
        """Add bodies, geoms, flexes, cameras... to `spec` (world frame, SI units)."""


def _extensions(scene) -> tuple:
    if scene is None:
        return ()
    items = tuple(scene) if isinstance(scene, (list, tuple)) else (scene,)
    for item in items:
        if not callable(getattr(item, "apply", None)):
            raise ValueError(f"scene: {type(item).__name__} has no apply(spec, robot) method")
    return items


def look_at_quat(position, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Quaternion (w, x, y, z) of a MuJoCo camera at `position` looking at `target` (world frame).

    MuJoCo cameras look along their -z with y up; 'up' falls back to the world x axis when
    looking along `up`."""
    z = np.asarray(position, float) - np.asarray(target, float)
    norm = np.linalg.norm(z)
    if norm == 0:
        raise ValueError("camera position and target coincide")
    z /= norm
    x = np.cross(up, z)
    if np.linalg.norm(x) < 1e-6:
        x = np.cross([1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x, np.cross(z, x), z]).reshape(-1))
    return quat


def build_scene_spec(robot: RobotDescription, effects: UnmodelledEffects, dt: float,
                     scene: SceneExtension | Iterable[SceneExtension] | None = None) -> mujoco.MjSpec:
    """Arm + floor + light + scene camera, with the unmodelled effects written into the model,
    then each scene extension applied in order."""
    spec = mujoco_arm_spec(robot)
    spec.option.timestep = dt
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.visual.global_.offwidth, spec.visual.global_.offheight = 1280, 960
    world = spec.worldbody
    world.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 0.05], rgba=[0.55, 0.57, 0.6, 1], contype=1, conaffinity=3
    )
    world.add_light(pos=[0, 0, 3], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8])
    world.add_light(pos=[1.5, -1.5, 2], dir=[-1, 1, -1], diffuse=[0.4, 0.4, 0.4])
    cam_pos, target = [1.55, -0.5, 0.95], [0.3, 0.0, 0.45]
    world.add_camera(name=SCENE_CAMERA, pos=cam_pos, quat=look_at_quat(cam_pos, target), fovy=45)

    n = robot.n_joints
    joints = {j.name: j for j in spec.joints}
    for name, mu, b, arm in zip(
        robot.joint_names,
        effects.per_joint("coulomb_friction", n),
        effects.per_joint("viscous_friction", n),
        effects.per_joint("armature", n),
    ):
        joints[name].frictionloss, joints[name].armature = mu, arm
        joints[name].damping = [b, 0.0, 0.0]  # MuJoCo 4 damping: linear coefficient first
    moving = [body for body in spec.bodies if body.name != "world" and body.mass > 0 and body.parent.name != "world"]
    for body, scale in zip(moving, effects.link_scales(len(moving))):
        body.mass *= scale
        body.fullinertia = body.fullinertia * scale
        body.inertia = body.inertia * scale
    if effects.payload_mass > 0:
        ee = spec.body(robot.ee_frame)
        payload = ee.add_body(name="payload", pos=list(effects.payload_com))
        payload.mass = effects.payload_mass
        payload.explicitinertial = True
        payload.inertia = np.full(3, 2.0 / 5.0 * effects.payload_mass * 0.03**2)  # 3 cm solid sphere
        payload.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.03, 0, 0], rgba=[0.2, 0.2, 0.2, 1], contype=0, conaffinity=0, mass=0)
    for extension in _extensions(scene):
        extension.apply(spec, robot)
    return spec


class MujocoBackend:
    """Arm in MuJoCo. Torque enters through motor actuators (ctrl, Nm); robot-side gravity
    compensation, when on, through qfrc_applied with the nominal URDF model."""

    name = "mujoco"

    def __init__(self, robot: RobotDescription, effects: UnmodelledEffects, dt: float, compensates_gravity: bool,
                 scene: SceneExtension | Iterable[SceneExtension] | None = None):
        self.robot, self.effects, self.dt = robot, effects, dt
        self.compensates_gravity = compensates_gravity
        self.scene = _extensions(scene)
        self.spec = build_scene_spec(robot, effects, dt, self.scene)
        self._compile()
        self._nominal = RigidBody(robot)
        self._lugre = effects.lugre(robot.n_joints)
        self._bristles = np.zeros(robot.n_joints)  # LuGre state z (rad)

    def _compile(self) -> None:
        self.model = self.spec.compile()
        self.data = mujoco.MjData(self.model)
        self._qpos = np.array([self.model.joint(j).qposadr[0] for j in self.robot.joint_names])
        self._dof = np.array([self.model.joint(j).dofadr[0] for j in self.robot.joint_names])
        self._act = np.array([self.model.actuator(j).id for j in self.robot.joint_names])

    @property
    def time(self) -> float:
        return float(self.data.time)

    def reset(self, q: np.ndarray, qd: np.ndarray | None = None) -> None:
        mujoco.mj_resetData(self.model, self.data)
        self._bristles = np.zeros(self.robot.n_joints)
        self.set_arm_state(q, 0.0 if qd is None else qd)
        mujoco.mj_forward(self.model, self.data)

    def set_arm_state(self, q: np.ndarray, qd: np.ndarray | float) -> None:
        """Overwrite the arm's joint positions (rad) and velocities (rad/s) in place, the rest of the scene
        untouched and nothing recomputed: what moves the arm kinematically between physics steps."""
        self.data.qpos[self._qpos] = q
        self.data.qvel[self._dof] = qd

    def step(self, tau: np.ndarray) -> None:
        self.data.ctrl[self._act] = tau
        applied = self._nominal.gravity(self.data.qpos[self._qpos]) if self.compensates_gravity else 0.0
        if self._lugre is not None:
            self._bristles, friction = lugre_step(self._lugre, self._bristles, self.data.qvel[self._dof], self.dt)
            applied = applied - friction
        self.data.qfrc_applied[self._dof] = applied
        mujoco.mj_step(self.model, self.data)

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.qpos[self._qpos].copy(), self.data.qvel[self._dof].copy()

    def add_object(self, obj: SceneObject) -> None:
        """Add a primitive to the scene (recompiles; the arm keeps its state)."""
        q, qd, t = *self.joint_state(), self.time
        shapes = {"box": mujoco.mjtGeom.mjGEOM_BOX, "sphere": mujoco.mjtGeom.mjGEOM_SPHERE, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}
        if obj.shape not in shapes:
            raise ValueError(f"object '{obj.name}': unknown shape '{obj.shape}', known: {sorted(shapes)}")
        body = self.spec.worldbody.add_body(name=obj.name, pos=list(obj.position))
        if obj.mass > 0:
            body.add_freejoint()
        size = list(obj.size) + [0.0] * (3 - len(obj.size))
        body.add_geom(type=shapes[obj.shape], size=size, rgba=list(obj.rgba), mass=max(obj.mass, 0.0), contype=1, conaffinity=3)
        self._compile()
        self.reset(q, qd)
        self.data.time = t

    def close(self) -> None:
        pass
