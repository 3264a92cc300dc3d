"""How well the safety filter's link spheres cover the arm: the URDF collision shapes' surface
that sticks out of the union of the spheres.

The filter keeps only its spheres (configs/safety.yaml `links:`) above the table and away from
obstacles; any part of a guarded link outside them can touch what the filter thinks is clear.
Surface points of every collision shape (robot_dyn.robots.collision) are placed by forward
kinematics, as the spheres are (robot_dyn.safety.barriers.SphereKinematics); a point's gap is
min over spheres of (|p - c| - r), clipped at 0. Metres, base frame.

GUARDED_LINKS: the links that must be covered, those that can come within 0.15 m of the table
or farther than 0.25 m from the base's z axis (where an obstacle in front of the robot can be).
Measured over a grid of joints 2-4 within their limits: the shoulder stays clear of both (Panda
links 0-2: at least 0.27 m above the table, at most 0.12 m from the axis; iiwa links 0-2: 0.19 m,
0.23 m). The upper arm reaches out (Panda link 3: 0.31 m; iiwa link 3: 0.49 m, 0.06 m above the
table), and from the elbow on every link reaches both. (The iiwa's link 2, the lower half of its
upper arm, is left out by this rule.)
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin

from robot_dyn.robots.collision import collision_geometry, shape_link, shape_surface_points
from robot_dyn.robots.description import RobotDescription
from robot_dyn.safety.barriers import SphereKinematics
from robot_dyn.safety.sets import SafeSets

GUARDED_LINKS = {
    "panda": tuple(f"panda_link{i}" for i in range(3, 8)),
    "fr3": tuple(f"fr3_link{i}" for i in range(3, 8)),
    "iiwa14": tuple(f"lbr_link_{i}" for i in range(3, 8)),
}


class ArmSurface:
    """Points on the collision shapes of some links, fixed to their joints, placed at any q."""

    def __init__(self, robot: RobotDescription, model: pin.Model, links, spacing: float = 0.005):
        geometry = collision_geometry(robot, model)
        links = list(dict.fromkeys(links))  # in order, each once
        found = {shape_link(model, obj) for obj in geometry.geometryObjects}
        missing = [name for name in links if name not in found]
        if missing:
            raise ValueError(f"coverage: no collision shapes on links {missing} of {robot.urdf_path.name}")
        self.links = links
        local, joints, which = [], [], []
        for obj in geometry.geometryObjects:
            link = shape_link(model, obj)
            if link not in links:
                continue
            points = shape_surface_points(obj.geometry, spacing)
            M = obj.placement  # shape frame -> parent joint frame
            local.append(points @ M.rotation.T + M.translation)
            joints += [obj.parentJoint] * len(points)
            which += [links.index(link)] * len(points)
        self.local = np.vstack(local)
        self.joints = np.asarray(joints, int)
        self.link_index = np.asarray(which, int)  # into self.links, per point

    def at(self, data: pin.Data) -> np.ndarray:
        """Points (N, 3) m, base frame, from the joint placements in `data` (after forward kinematics)."""
        R = np.stack([M.rotation for M in data.oMi])
        t = np.stack([M.translation for M in data.oMi])
        return np.einsum("nij,nj->ni", R[self.joints], self.local) + t[self.joints]


def point_gaps(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Per point (N,), m: how far it lies outside the union of the spheres (0 inside)."""
    d = np.linalg.norm(points[:, None, :] - centres[None, :, :], axis=2) - radii[None, :]
    return np.maximum(d.min(axis=1), 0.0)


def uncovered_distance(robot: RobotDescription, sets: SafeSets, links, postures, spacing: float = 0.005) -> dict:
    """How far (m) the collision shapes of `links` stick out of the union of sets.spheres, worst
    case over `postures` (P, n joint positions, rad).

    Returns {"per_link": {link: m}, "overall": m, "posture": index of the worst posture}.
    Surface points are about `spacing` (m) apart; every surface point lies within 0.75 spacing
    of one, so the true gap exceeds the one returned by at most that."""
    kin = SphereKinematics(robot, sets)
    model, data = kin.model, kin.data
    surface = ArmSurface(robot, model, links, spacing)
    per_link = np.zeros(len(surface.links))
    worst, worst_posture = -1.0, 0
    for k, q in enumerate(np.atleast_2d(np.asarray(postures, float))):
        pin.framesForwardKinematics(model, data, q)
        centres = np.stack([data.oMf[f].translation for f in kin.frames])
        gaps = point_gaps(surface.at(data), centres, kin.radii)
        np.maximum.at(per_link, surface.link_index, gaps)
        if gaps.max() > worst:
            worst, worst_posture = float(gaps.max()), k
    return {"per_link": dict(zip(surface.links, per_link.tolist())), "overall": float(per_link.max()),
            "posture": worst_posture}


def random_postures(robot: RobotDescription, count: int, seed: int = 0) -> np.ndarray:
    """`count` joint positions (rad) uniform within the joint limits."""
    return np.random.default_rng(seed).uniform(robot.q_min, robot.q_max, (count, robot.n_joints))
