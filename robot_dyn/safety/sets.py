"""Safe sets of the safety filter: what must never happen, from configs/safety.yaml and topics.

- joint position and velocity limits (from the robot description);
- a table plane that guarded spheres on the arm stay above;
- a workspace box that the end-effector sphere stays inside;
- obstacles: spheres and capsules (a sphere is a capsule of zero length), static from the
  config file, moving ones from a topic (the node converts visualization_msgs/MarkerArray
  into `Obstacle`s with `obstacle_from_fields`).

Positions in metres in the robot's base frame; velocities in m/s.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from robot_dyn import paths
from robot_dyn.robots.description import RobotDescription


class SafetyConfigError(ValueError):
    """A safe-set definition that cannot be used; the message names the field."""


@dataclass(frozen=True)
class LinkSphere:
    """A sphere fixed to a URDF frame (offset in that frame, m) that covers part of the arm."""

    name: str
    frame: str
    offset: np.ndarray
    radius: float


@dataclass(frozen=True)
class Obstacle:
    """A capsule from `start` to `end` (m, base frame) with `radius` (m); start == end is a sphere.

    `velocity` (m/s) is the obstacle's translation rate, estimated from its last two poses.
    """

    name: str
    start: np.ndarray
    end: np.ndarray
    radius: float
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))


@dataclass(frozen=True)
class SafeSets:
    table_height: float
    workspace_min: np.ndarray
    workspace_max: np.ndarray
    spheres: tuple[LinkSphere, ...]
    end_effector: int  # index into spheres
    obstacles: tuple[Obstacle, ...]


def _vector(value, size: int, where: str) -> np.ndarray:
    try:
        array = np.asarray(value, float)
    except (TypeError, ValueError):
        raise SafetyConfigError(f"{where}: expected {size} numbers, got {value!r}") from None
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        raise SafetyConfigError(f"{where}: expected {size} finite numbers, got {value!r}")
    return array


def _positive(value, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        raise SafetyConfigError(f"{where}: expected a positive number, got {value!r}")
    return float(value)


def obstacle_from_fields(name: str, shape: str, radius, center=None, start=None, end=None,
                         where: str = "obstacle") -> Obstacle:
    """Build and check one obstacle: shape 'sphere' (center, radius) or 'capsule' (start, end, radius)."""
    radius = _positive(radius, f"{where} '{name}' radius")
    if shape == "sphere":
        c = _vector(center, 3, f"{where} '{name}' center")
        return Obstacle(name, c, c.copy(), radius)
    if shape == "capsule":
        return Obstacle(name, _vector(start, 3, f"{where} '{name}' start"), _vector(end, 3, f"{where} '{name}' end"), radius)
    raise SafetyConfigError(f"{where} '{name}' shape: expected 'sphere' or 'capsule', got {shape!r}")


def load_safe_sets(robot: RobotDescription, path: str | Path | None = None) -> SafeSets:
    """Read configs/safety.yaml (or `path`) for `robot`; raises SafetyConfigError naming the field."""
    path = Path(path) if path else paths.config_path("safety.yaml")
    raw = paths.read_yaml_mapping(path, SafetyConfigError)
    where = str(path)
    table = raw.get("table") or {}
    box = raw.get("workspace") or {}
    lo = _vector(box.get("min"), 3, f"{where}: workspace.min")
    hi = _vector(box.get("max"), 3, f"{where}: workspace.max")
    if np.any(lo >= hi):
        raise SafetyConfigError(f"{where}: workspace.min must be below workspace.max on every axis")
    links = (raw.get("links") or {}).get(robot.name)
    if not isinstance(links, dict) or not links.get("spheres"):
        raise SafetyConfigError(f"{where}: links.{robot.name}.spheres: no spheres for robot '{robot.name}'")
    spheres = []
    for i, s in enumerate(links["spheres"]):
        w = f"{where}: links.{robot.name}.spheres[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("name"), str) or not isinstance(s.get("frame"), str):
            raise SafetyConfigError(f"{w}: expected a mapping with name, frame, offset, radius")
        spheres.append(LinkSphere(s["name"], s["frame"], _vector(s.get("offset", [0, 0, 0]), 3, f"{w}.offset"),
                                  _positive(s.get("radius"), f"{w}.radius")))
    if robot.tool is not None:  # a tool on the flange is guarded like a link (robot_dyn/robots/tools.py)
        from robot_dyn.robots.tools import TOOL_LINK

        spheres += [LinkSphere(f"{robot.tool.name}_{k}", TOOL_LINK, np.array([0.0, 0.0, z]), r)
                    for k, (z, r) in enumerate(robot.tool.covering_spheres())]
    names = [s.name for s in spheres]
    ee = links.get("end_effector")
    if ee not in names:
        raise SafetyConfigError(f"{where}: links.{robot.name}.end_effector: {ee!r} is not one of the spheres {names}")
    obstacles = []
    for i, o in enumerate(raw.get("obstacles") or []):
        if not isinstance(o, dict):
            raise SafetyConfigError(f"{where}: obstacles[{i}]: expected a mapping")
        obstacles.append(obstacle_from_fields(str(o.get("name", f"obstacle_{i}")), o.get("shape"), o.get("radius"),
                                              o.get("center"), o.get("start"), o.get("end"), f"{where}: obstacles[{i}]"))
    height = table.get("height", 0.0)
    if not isinstance(height, (int, float)) or not np.isfinite(height):
        raise SafetyConfigError(f"{where}: table.height: expected a number, got {height!r}")
    return SafeSets(float(height), lo, hi, tuple(spheres), names.index(ee), tuple(obstacles))
