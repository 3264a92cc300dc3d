"""Load one RobotDescription into each engine: pinocchio, MuJoCo (MjSpec) and PyBullet.

All three read the same URDF text, so kinematics and inertia cannot drift apart;
tests/test_robot_models.py checks that mass matrix and gravity agree.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np
import pinocchio as pin

from robot_dyn.robots.description import RobotDescription, RobotModelError


def pinocchio_model(robot: RobotDescription) -> pin.Model:
    """The fixed-base pinocchio model, joints in the description's order."""
    try:
        model = pin.buildModelFromXML(robot.urdf_xml)
    except Exception as exc:  # pinocchio raises plain RuntimeError/ValueError
        raise RobotModelError(f"{robot.urdf_path}: pinocchio could not load it: {exc}") from exc
    names = tuple(model.names[1:])
    if names != robot.joint_names:
        raise RobotModelError(f"{robot.urdf_path}: pinocchio joint order {names} differs from {robot.joint_names}")
    if not model.existFrame(robot.ee_frame):
        raise RobotModelError(f"{robot.urdf_path}: pinocchio has no frame '{robot.ee_frame}'")
    return model


def mujoco_arm_spec(robot: RobotDescription) -> mujoco.MjSpec:
    """MuJoCo spec of the arm from the URDF, with one motor actuator per joint.

    Motor ctrl is joint torque in Nm, limited to the URDF effort limits. Links
    of the arm do not collide with each other (contype 2, conaffinity 1); they
    collide with scene objects, which use contype 1, conaffinity 3.
    """
    try:
        spec = mujoco.MjSpec.from_string(robot.urdf_xml)
    except Exception as exc:
        raise RobotModelError(f"{robot.urdf_path}: MuJoCo could not load it: {exc}") from exc
    spec.modelname = robot.name
    for geom in spec.geoms:
        geom.contype, geom.conaffinity = 2, 1
    joints = {j.name: j for j in spec.joints}
    for name, tau_max in zip(robot.joint_names, robot.tau_max):
        if name not in joints:
            raise RobotModelError(f"{robot.urdf_path}: MuJoCo model has no joint '{name}'")
        actuator = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        actuator.gainprm[0] = 1.0
        actuator.ctrllimited = True
        actuator.ctrlrange = np.array([-tau_max, tau_max])
    return spec


def pybullet_body(robot: RobotDescription, client: int) -> int:
    """Load the arm into a PyBullet client with URDF inertia, fixed base, no default damping or motors."""
    import pybullet as p

    urdf = str(robot.urdf_path)
    if robot.tool is not None:  # PyBullet reads files only: the description's text, tool included
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".urdf", delete=False) as f:  # the URDFs name no mesh files
            f.write(robot.urdf_xml)
        urdf = f.name
    try:
        body = p.loadURDF(urdf, useFixedBase=True, flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
    finally:
        if urdf != str(robot.urdf_path):
            os.unlink(urdf)
    if body < 0:
        raise RobotModelError(f"{robot.urdf_path}: PyBullet could not load it")
    names = [p.getJointInfo(body, i, physicsClientId=client)[1].decode() for i in range(p.getNumJoints(body, physicsClientId=client))]
    movable = tuple(n for n in names if n in robot.joint_names)
    if movable != robot.joint_names:
        raise RobotModelError(f"{robot.urdf_path}: PyBullet joint order {movable} differs from {robot.joint_names}")
    massless = _massless_links(robot)
    for link in range(-1, len(names)):
        p.changeDynamics(body, link, linearDamping=0.0, angularDamping=0.0, jointDamping=0.0, physicsClientId=client)
        link_name = p.getJointInfo(body, link, physicsClientId=client)[12].decode() if link >= 0 else None
        if link_name in massless:
            # PyBullet gives a link without <inertial> 1 kg and unit inertia; the URDF means none.
            p.changeDynamics(body, link, mass=0.0, localInertiaDiagonal=[0.0, 0.0, 0.0], physicsClientId=client)
    indices = [names.index(n) for n in robot.joint_names]
    # PyBullet drives every joint with a velocity motor by default; switch them off for torque control.
    p.setJointMotorControlArray(body, indices, p.VELOCITY_CONTROL, forces=[0.0] * len(indices), physicsClientId=client)
    return body


def _massless_links(robot: RobotDescription) -> set[str]:
    import xml.etree.ElementTree as ET

    return {link.get("name") for link in ET.fromstring(robot.urdf_xml).findall("link") if link.find("inertial") is None}


def pybullet_joint_indices(body: int, robot: RobotDescription, client: int) -> list[int]:
    """PyBullet joint indices of the description's joints, in its order."""
    import pybullet as p

    names = [p.getJointInfo(body, i, physicsClientId=client)[1].decode() for i in range(p.getNumJoints(body, physicsClientId=client))]
    return [names.index(n) for n in robot.joint_names]
