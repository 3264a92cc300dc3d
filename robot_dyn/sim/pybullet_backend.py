"""PyBullet backend: the same URDF through pybullet.loadURDF, torque control in a DIRECT client.

PyBullet has no rotor armature; asking for it is an error rather than a silent no-op.
Coulomb friction is modelled the usual PyBullet way: a velocity motor with target
0 whose maximum force is the friction torque.
"""
from __future__ import annotations

import numpy as np
import pybullet as p

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots.description import RobotDescription
from robot_dyn.robots.engines import pybullet_body, pybullet_joint_indices
from robot_dyn.sim.backend import SceneObject
from robot_dyn.sim.effects import UnmodelledEffects


class PybulletBackend:
    name = "pybullet"

    def __init__(self, robot: RobotDescription, effects: UnmodelledEffects, dt: float, compensates_gravity: bool):
        n = robot.n_joints
        if np.any(effects.per_joint("armature", n) > 0):
            raise ValueError("unmodelled effect 'armature' is not supported by the pybullet backend; use mujoco")
        if effects.lugre(n) is not None:
            raise ValueError("unmodelled effect 'lugre_*' (LuGre friction) is not supported by the pybullet backend; use mujoco")
        self.robot, self.effects, self.dt = robot, effects, dt
        self.compensates_gravity = compensates_gravity
        self.client = p.connect(p.DIRECT)
        p.setGravity(0, 0, -9.81, physicsClientId=self.client)
        p.setTimeStep(dt, physicsClientId=self.client)
        p.setPhysicsEngineParameter(numSubSteps=0, physicsClientId=self.client)
        self.body = pybullet_body(robot, self.client)
        self.joints = pybullet_joint_indices(self.body, robot, self.client)
        self._coulomb = effects.per_joint("coulomb_friction", n)
        for index, b, scale in zip(self.joints, effects.per_joint("viscous_friction", n), effects.link_scales(n)):
            mass, _, inertia = p.getDynamicsInfo(self.body, index, physicsClientId=self.client)[:3]
            p.changeDynamics(
                self.body, index, jointDamping=float(b), mass=mass * scale,
                localInertiaDiagonal=[v * scale for v in inertia], physicsClientId=self.client,
            )
        if effects.payload_mass > 0:
            self._attach_payload(effects)
        self._nominal = RigidBody(robot)
        self._time = 0.0

    def _attach_payload(self, effects: UnmodelledEffects) -> None:
        """An unknown payload: a small sphere welded to the last link."""
        shape = p.createCollisionShape(p.GEOM_SPHERE, radius=0.03, physicsClientId=self.client)
        payload = p.createMultiBody(effects.payload_mass, shape, basePosition=[0, 0, 2], physicsClientId=self.client)
        p.setCollisionFilterGroupMask(payload, -1, 0, 0, physicsClientId=self.client)
        # At the end-effector frame, as in MuJoCo. That link is massless, so PyBullet's inertial
        # frame (which parentFramePosition is expressed in) is the link frame itself.
        names = [p.getJointInfo(self.body, i, physicsClientId=self.client)[12].decode()
                 for i in range(p.getNumJoints(self.body, physicsClientId=self.client))]
        p.createConstraint(
            self.body, names.index(self.robot.ee_frame), payload, -1, p.JOINT_FIXED, [0, 0, 0],
            parentFramePosition=list(effects.payload_com), childFramePosition=[0, 0, 0], physicsClientId=self.client,
        )

    @property
    def time(self) -> float:
        return self._time

    def reset(self, q: np.ndarray, qd: np.ndarray | None = None) -> None:
        qd = np.zeros_like(q) if qd is None else qd
        for index, qi, vi in zip(self.joints, q, qd):
            p.resetJointState(self.body, index, float(qi), float(vi), physicsClientId=self.client)
        # Coulomb friction: a velocity motor toward 0 whose force limit is the friction torque. It stays
        # on beside the torque commands, so it is set here once, not every step.
        p.setJointMotorControlArray(
            self.body, self.joints, p.VELOCITY_CONTROL, targetVelocities=[0.0] * len(self.joints),
            forces=self._coulomb.tolist(), physicsClientId=self.client,
        )
        self._time = 0.0

    def step(self, tau: np.ndarray) -> None:
        command = np.asarray(tau, dtype=float)
        if self.compensates_gravity:
            command = command + self._nominal.gravity(self.joint_state()[0])
        p.setJointMotorControlArray(self.body, self.joints, p.TORQUE_CONTROL, forces=command.tolist(), physicsClientId=self.client)
        p.stepSimulation(physicsClientId=self.client)
        self._time += self.dt

    def joint_state(self) -> tuple[np.ndarray, np.ndarray]:
        states = p.getJointStates(self.body, self.joints, physicsClientId=self.client)
        return np.array([s[0] for s in states]), np.array([s[1] for s in states])

    def add_object(self, obj: SceneObject) -> None:
        shapes = {"box": p.GEOM_BOX, "sphere": p.GEOM_SPHERE, "cylinder": p.GEOM_CYLINDER}
        if obj.shape not in shapes:
            raise ValueError(f"object '{obj.name}': unknown shape '{obj.shape}', known: {sorted(shapes)}")
        kwargs = {"box": {"halfExtents": list(obj.size)}, "sphere": {"radius": obj.size[0]},
                  "cylinder": {"radius": obj.size[0], "height": 2 * obj.size[1]}}[obj.shape]
        shape = p.createCollisionShape(shapes[obj.shape], physicsClientId=self.client, **kwargs)
        p.createMultiBody(max(obj.mass, 0.0), shape, basePosition=list(obj.position), physicsClientId=self.client)

    def close(self) -> None:
        if p.isConnected(self.client):
            p.disconnect(self.client)
