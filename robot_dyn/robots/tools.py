"""Tools mounted on the flange (a pusher rod, a peg), made part of the robot's URDF.

A tool is a rigid body fixed to the end-effector frame: a cylinder or a square prism along the
frame's +z axis, with its mass. with_tool() writes it into the URDF text as a fixed link, so the
controller's model (pinocchio), the simulator (MuJoCo, PyBullet) and the safety filter all see
the same geometry and mass from one description, as they do for the arm itself (a tool left out
of the controller's model is a payload its feedforward gets wrong). A `tool_tip` frame marks the
tool's far end. Units: m, kg; frames: the end-effector frame's axes.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace

import numpy as np

from robot_dyn.robots.description import RobotDescription, RobotModelError

SHAPES = ("cylinder", "box")
TOOL_LINK, TIP_LINK = "tool", "tool_tip"


@dataclass(frozen=True)
class Tool:
    name: str
    length: float  # m from the flange to the tip along +z
    width: float  # m: the cylinder's diameter, or the square prism's side
    mass: float  # kg, uniform density
    shape: str = "cylinder"

    def validated(self) -> "Tool":
        if self.shape not in SHAPES:
            raise ValueError(f"tool '{self.name}': shape must be one of {SHAPES}, got '{self.shape}'")
        for field in ("length", "width", "mass"):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"tool '{self.name}': {field} must be a positive number, got {value!r}")
        return self

    def inertia(self) -> np.ndarray:
        """Principal moments (3,) about its centre of mass, kg m^2 (x, y across, z along the tool)."""
        m, h = self.mass, self.length
        if self.shape == "cylinder":
            r = self.width / 2
            across = m * (3 * r**2 + h**2) / 12
            return np.array([across, across, m * r**2 / 2])
        a = self.width
        return np.array([m * (a**2 + h**2) / 12, m * (a**2 + h**2) / 12, m * a**2 / 6])

    def tip(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray:
        """The tool's tip (3,), m, for the flange at (position m, rotation base <- flange)."""
        return np.asarray(position) + np.asarray(rotation)[:, 2] * self.length

    def covering_spheres(self) -> list[tuple[float, float]]:
        """(z offset m, radius m) of spheres along the tool that cover it (for the safety filter)."""
        half_diagonal = self.width / 2 * (np.sqrt(2) if self.shape == "box" else 1.0)
        count = max(1, int(np.ceil(self.length / (2 * half_diagonal))))
        step = self.length / count
        radius = float(np.hypot(half_diagonal, step / 2))
        return [(float((k + 0.5) * step), radius) for k in range(count)]


def with_tool(robot: RobotDescription, tool: Tool) -> RobotDescription:
    """`robot` with `tool` fixed to its end-effector frame (the URDF text gains the tool and tool_tip links)."""
    tool = tool.validated()
    root = ET.fromstring(robot.urdf_xml)
    names = {link.get("name") for link in root.findall("link")}
    if TOOL_LINK in names or TIP_LINK in names:
        raise RobotModelError(f"{robot.name}: already carries a tool (links '{TOOL_LINK}', '{TIP_LINK}')")
    half = tool.length / 2
    if tool.shape == "cylinder":
        shape = f'<cylinder radius="{tool.width / 2!r}" length="{tool.length!r}"/>'
    else:
        shape = f'<box size="{tool.width!r} {tool.width!r} {tool.length!r}"/>'
    ixx, iyy, izz = (float(v) for v in tool.inertia())
    link = ET.fromstring(
        f'<link name="{TOOL_LINK}"><inertial><origin xyz="0 0 {half!r}" rpy="0 0 0"/><mass value="{tool.mass!r}"/>'
        f'<inertia ixx="{ixx!r}" ixy="0" ixz="0" iyy="{iyy!r}" iyz="0" izz="{izz!r}"/></inertial>'
        f'<collision><origin xyz="0 0 {half!r}" rpy="0 0 0"/><geometry>{shape}</geometry></collision>'
        f'<visual><origin xyz="0 0 {half!r}" rpy="0 0 0"/><geometry>{shape}</geometry></visual></link>')
    joint = ET.fromstring(f'<joint name="{TOOL_LINK}_joint" type="fixed"><parent link="{robot.ee_frame}"/>'
                          f'<child link="{TOOL_LINK}"/><origin xyz="0 0 0" rpy="0 0 0"/></joint>')
    tip = ET.fromstring(f'<link name="{TIP_LINK}"/>')
    tip_joint = ET.fromstring(f'<joint name="{TIP_LINK}_joint" type="fixed"><parent link="{TOOL_LINK}"/>'
                              f'<child link="{TIP_LINK}"/><origin xyz="0 0 {tool.length!r}" rpy="0 0 0"/></joint>')
    root.extend([link, joint, tip, tip_joint])
    return replace(robot, urdf_xml=ET.tostring(root, encoding="unicode"), tool=tool)


def pointing_down(yaw: float) -> np.ndarray:
    """base <- flange with the flange's z (a tool's axis) straight down and its x at `yaw` (rad) about the
    base's z: how the tasks' experts hold a tool."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
