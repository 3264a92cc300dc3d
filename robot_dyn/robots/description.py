"""Parse and check a robot's URDF and its robot config (configs/robots/<name>.yaml).

The URDF is the one source of truth for kinematics, limits and inertia; the
robot config adds what URDF cannot say (end-effector frame, home posture,
acceleration and torque-rate limits, default impedance gains). Every problem is
reported as a RobotModelError that names the file and the element.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_dyn import paths
from robot_dyn.joint_arrays import joint_vector

ACTUATED_TYPES = ("revolute", "continuous", "prismatic")


class RobotModelError(ValueError):
    """A URDF or robot config that cannot describe a robot; the message names the problem."""


@dataclass(frozen=True)
class RobotDescription:
    """Everything the cores need to know about one arm, in URDF joint order.

    Limits are in SI units: rad, rad/s, rad/s^2, Nm, Nm/s. Gains are joint
    impedance stiffness (Nm/rad) and damping (Nm s/rad).
    """

    name: str
    urdf_path: Path
    urdf_xml: str
    base_link: str
    ee_frame: str
    joint_names: tuple[str, ...]
    q_min: np.ndarray
    q_max: np.ndarray
    qd_max: np.ndarray
    qdd_max: np.ndarray
    tau_max: np.ndarray
    dtau_max: np.ndarray
    home: np.ndarray
    stiffness: np.ndarray
    damping: np.ndarray
    safe_stiffness: np.ndarray
    safe_damping: np.ndarray
    tool: object | None = None  # robot_dyn.robots.tools.Tool fixed to ee_frame (in urdf_xml), or None

    @property
    def n_joints(self) -> int:
        return len(self.joint_names)


def _floats(text: str | None, what: str, count: int) -> np.ndarray:
    try:
        values = np.array([float(v) for v in (text or "").split()])
    except ValueError as exc:
        raise RobotModelError(f"{what}: not a list of numbers: '{text}'") from exc
    if values.size != count or not np.all(np.isfinite(values)):
        raise RobotModelError(f"{what}: expected {count} finite numbers, got '{text}'")
    return values


def check_inertia(inertia: np.ndarray, mass: float, where: str) -> None:
    """Raise unless mass > 0 and the 3x3 inertia is positive definite and obeys the triangle inequality."""
    if not mass > 0:
        raise RobotModelError(f"{where}: mass must be positive, got {mass}")
    eig = np.linalg.eigvalsh(inertia)
    if eig[0] <= 0:
        raise RobotModelError(f"{where}: inertia is not positive definite (eigenvalues {eig})")
    if eig[0] + eig[1] < eig[2] * (1 - 1e-9):
        raise RobotModelError(f"{where}: principal inertias {eig} violate the triangle inequality")


def _parse_urdf(path: Path, text: str):
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise RobotModelError(f"{path}: malformed XML: {exc}") from exc
    if root.tag != "robot":
        raise RobotModelError(f"{path}: root element is <{root.tag}>, expected <robot>")
    links = {link.get("name"): link for link in root.findall("link")}
    if not links:
        raise RobotModelError(f"{path}: no <link> elements")
    joints = root.findall("joint")
    children = {j.find("child").get("link") for j in joints if j.find("child") is not None}
    roots = [name for name in links if name not in children]
    if len(roots) != 1:
        raise RobotModelError(f"{path}: expected one root link, found {roots}")
    return root, links, joints, roots[0]


def _serial_chain(path: Path, links: dict, joints: list, base: str, ee_frame: str) -> list:
    """Joints from base to ee_frame, in order; the URDF must be a tree containing ee_frame."""
    by_child = {}
    for joint in joints:
        name = joint.get("name")
        parent, child = joint.find("parent"), joint.find("child")
        if parent is None or child is None:
            raise RobotModelError(f"{path}: joint '{name}' needs <parent link> and <child link>")
        for link in (parent.get("link"), child.get("link")):
            if link not in links:
                raise RobotModelError(f"{path}: joint '{name}' refers to unknown link '{link}'")
        by_child[child.get("link")] = joint
    if ee_frame not in links:
        raise RobotModelError(f"{path}: end-effector frame '{ee_frame}' is not a link of the URDF")
    chain, link = [], ee_frame
    while link != base:
        joint = by_child[link]
        chain.append(joint)
        link = joint.find("parent").get("link")
    return chain[::-1]


def _joint_limits(path: Path, joint) -> tuple[float, float, float, float]:
    name, jtype = joint.get("name"), joint.get("type")
    limit = joint.find("limit")
    if limit is None:
        raise RobotModelError(f"{path}: joint '{name}' has no <limit> (effort and velocity are required)")
    values = {}
    for key in ("lower", "upper", "velocity", "effort"):
        raw = limit.get(key)
        if raw is None and not (jtype == "continuous" and key in ("lower", "upper")):
            raise RobotModelError(f"{path}: joint '{name}' <limit> has no '{key}'")
        try:
            values[key] = float(raw) if raw is not None else (np.inf if key == "upper" else -np.inf)
        except ValueError as exc:
            raise RobotModelError(f"{path}: joint '{name}' <limit {key}='{raw}'> is not a number") from exc
    if not values["lower"] < values["upper"]:
        raise RobotModelError(f"{path}: joint '{name}' has lower limit >= upper limit")
    for key in ("velocity", "effort"):
        if not values[key] > 0:
            raise RobotModelError(f"{path}: joint '{name}' <limit {key}> must be positive")
    return values["lower"], values["upper"], values["velocity"], values["effort"]


def _check_inertials(path: Path, links: dict, chain: list) -> None:
    for joint in chain:
        if joint.get("type") not in ACTUATED_TYPES:
            continue
        child = joint.find("child").get("link")
        inertial = links[child].find("inertial")
        if inertial is None or inertial.find("mass") is None or inertial.find("inertia") is None:
            raise RobotModelError(f"{path}: moving link '{child}' has no <inertial> with <mass> and <inertia>")
        try:
            mass = float(inertial.find("mass").get("value"))
            i = {k: float(inertial.find("inertia").get(k)) for k in ("ixx", "ixy", "ixz", "iyy", "iyz", "izz")}
        except (TypeError, ValueError) as exc:
            raise RobotModelError(f"{path}: link '{child}' <inertial> has a missing or non-numeric value") from exc
        tensor = np.array([[i["ixx"], i["ixy"], i["ixz"]], [i["ixy"], i["iyy"], i["iyz"]], [i["ixz"], i["iyz"], i["izz"]]])
        check_inertia(tensor, mass, f"{path}: link '{child}'")


def _robot_config(name: str) -> tuple[Path, dict]:
    path = paths.config_path(f"robots/{name}.yaml")
    if not path.is_file():
        raise RobotModelError(f"no robot config {path} for robot '{name}'")
    return path, paths.read_yaml_mapping(path, RobotModelError)


def _vector(config: dict, key: str, n: int, where: Path, positive: bool = True) -> np.ndarray:
    if key not in config:
        raise RobotModelError(f"{where}: missing field '{key}'")
    try:
        return joint_vector(key, config[key], n, "positive" if positive else "none")
    except ValueError as exc:
        raise RobotModelError(f"{where}: field {exc}") from None


def load_robot(name: str, urdf: str | Path | None = None) -> RobotDescription:
    """Load urdf/<name>.urdf (or `urdf`) with configs/robots/<name>.yaml and check both."""
    config_file, config = _robot_config(name)
    urdf_file = Path(urdf) if urdf is not None else paths.urdf_path(config.get("urdf", name).removesuffix(".urdf"))
    if not urdf_file.is_file():
        raise RobotModelError(f"URDF file {urdf_file} does not exist")
    text = urdf_file.read_text()
    _root, links, joints, base = _parse_urdf(urdf_file, text)
    ee_frame = config.get("ee_frame")
    if not isinstance(ee_frame, str):
        raise RobotModelError(f"{config_file}: missing field 'ee_frame'")
    chain = _serial_chain(urdf_file, links, joints, base, ee_frame)
    actuated = [j for j in chain if j.get("type") in ACTUATED_TYPES]
    unknown = [j.get("type") for j in chain if j.get("type") not in ACTUATED_TYPES + ("fixed",)]
    if unknown:
        raise RobotModelError(f"{urdf_file}: unsupported joint types in the arm chain: {unknown}")
    if not actuated:
        raise RobotModelError(f"{urdf_file}: no actuated joints between '{base}' and '{ee_frame}'")
    _check_inertials(urdf_file, links, chain)
    limits = np.array([_joint_limits(urdf_file, j) for j in actuated])
    n = len(actuated)
    home = _vector(config, "home", n, config_file, positive=False)
    outside = np.flatnonzero((home < limits[:, 0]) | (home > limits[:, 1]))
    if outside.size:
        raise RobotModelError(f"{config_file}: 'home' is outside the joint limits at joints {outside.tolist()}")
    return RobotDescription(
        name=name,
        urdf_path=urdf_file,
        urdf_xml=text,
        base_link=base,
        ee_frame=ee_frame,
        joint_names=tuple(j.get("name") for j in actuated),
        q_min=limits[:, 0],
        q_max=limits[:, 1],
        qd_max=limits[:, 2],
        tau_max=limits[:, 3],
        qdd_max=_vector(config, "acceleration_limits", n, config_file),
        dtau_max=_vector(config, "torque_rate_limits", n, config_file),
        home=home,
        stiffness=_vector(config, "stiffness", n, config_file),
        damping=_vector(config, "damping", n, config_file),
        safe_stiffness=_vector(config, "safe_stiffness", n, config_file),
        safe_damping=_vector(config, "safe_damping", n, config_file),
    )
