"""Barrier functions of the Cartesian safe sets, with the derivatives a filter needs.

Every row is a scalar h(q, t) >= 0 (metres) that must stay non-negative: a guarded
sphere above the table, the end-effector sphere inside the workspace box, a sphere
outside an obstacle. With the joint acceleration a as input,

    h_dot  = g . qd + (obstacle motion)       g = dh/dq (1/m... m/rad)
    h_ddot = g . a + c                        c = h_ddot at a = 0 (m/s^2)

c holds the Jacobian drift (J_dot qd) and, for obstacles, the curvature of the
distance when the sphere moves sideways. Joint limits are not rows here: they act
on single joints and the filter handles them exactly (see filter.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from robot_dyn.robots.description import RobotDescription
from robot_dyn.robots.engines import pinocchio_model
from robot_dyn.safety.sets import Obstacle, SafeSets, SafetyConfigError

WORLD_ALIGNED = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED


@dataclass
class BarrierRows:
    """m barrier rows at one state: h (m), h_dot (m/s), g = dh/dq (m x n, m/rad), c (m/s^2), and the
    end-effector sphere's translational Jacobian ee_jacobian (3 x n, m/rad, base frame)."""

    h: np.ndarray
    h_dot: np.ndarray
    g: np.ndarray
    c: np.ndarray
    ee_jacobian: np.ndarray


class SphereKinematics:
    """Positions, velocities, Jacobians and drifts of the guarded spheres (pinocchio, base frame)."""

    def __init__(self, robot: RobotDescription, sets: SafeSets):
        self.model = pinocchio_model(robot)
        self.radii = np.array([s.radius for s in sets.spheres])
        self.names = [s.name for s in sets.spheres]
        self.frames = []
        for s in sets.spheres:
            if not self.model.existFrame(s.frame):
                raise SafetyConfigError(f"link sphere '{s.name}': frame '{s.frame}' is not in {robot.urdf_path.name}")
            parent = self.model.frames[self.model.getFrameId(s.frame)]
            placement = parent.placement * pin.SE3(np.eye(3), np.asarray(s.offset, float))
            frame = pin.Frame(f"safety_{s.name}", parent.parentJoint, placement, pin.FrameType.OP_FRAME)
            self.frames.append(self.model.addFrame(frame))
        self.data = self.model.createData()
        self._zero = np.zeros(self.model.nv)

    def evaluate(self, q: np.ndarray, qd: np.ndarray):
        """Sphere centres p (S,3) m, velocities v (S,3) m/s, Jacobians J (S,3,n), drifts J_dot qd (S,3) m/s^2."""
        model, data = self.model, self.data
        pin.forwardKinematics(model, data, q, qd, self._zero)
        pin.computeJointJacobians(model, data, q)
        S, n = len(self.frames), model.nv
        p, v, J, drift = np.empty((S, 3)), np.empty((S, 3)), np.empty((S, 3, n)), np.empty((S, 3))
        for i, fid in enumerate(self.frames):
            p[i] = pin.updateFramePlacement(model, data, fid).translation
            J[i] = pin.getFrameJacobian(model, data, fid, WORLD_ALIGNED)[:3]
            drift[i] = pin.getFrameClassicalAcceleration(model, data, fid, WORLD_ALIGNED).linear
        np.matmul(J, qd, out=v)
        return p, v, J, drift


# Workspace box rows of the end-effector sphere: (axis, sign); h = sign (p_axis - bound).
_BOX_FACES = ((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0), (2, 1.0), (2, -1.0))
_BOX_AXES = np.array([axis for axis, _ in _BOX_FACES])
_BOX_SIGNS = np.array([sign for _, sign in _BOX_FACES])


def row_labels(kin: SphereKinematics, sets: SafeSets, obstacles: tuple[Obstacle, ...]) -> list[str]:
    """Names of the rows barrier_rows returns, in order ('flange/table', 'hand/post', ...)."""
    ee = kin.names[sets.end_effector]
    faces = [f"{ee}/workspace_{'xyz'[axis]}{'min' if sign > 0 else 'max'}" for axis, sign in _BOX_FACES]
    return ([f"{s}/table" for s in kin.names] + faces
            + [f"{s}/{obs.name}" for obs in obstacles for s in kin.names])


def barrier_rows(kin: SphereKinematics, sets: SafeSets, obstacles: tuple[Obstacle, ...], q, qd,
                 margin: float) -> BarrierRows:
    """All Cartesian barrier rows at (q, qd) for the given obstacles; `margin` (m) is kept from every set.

    Rows: every sphere above the table, the end-effector sphere inside the workspace box
    (6 faces), every sphere outside every obstacle. Labels: row_labels()."""
    p, v, J, drift = kin.evaluate(q, qd)
    r = kin.radii
    e = sets.end_effector
    axes, signs = _BOX_AXES, _BOX_SIGNS
    bounds = np.where(signs > 0, sets.workspace_min[axes], sets.workspace_max[axes])
    parts = [
        (p[:, 2] - sets.table_height - r - margin, v[:, 2], J[:, 2], drift[:, 2]),
        (signs * (p[e, axes] - bounds) - r[e] - margin, signs * v[e, axes], signs[:, None] * J[e, axes], signs * drift[e, axes]),
    ]
    parts += [_obstacle_rows(obs, p, v, J, drift, r, margin) for obs in obstacles]
    h, hd, g, c = (np.concatenate([part[k] for part in parts]) for k in range(4))
    return BarrierRows(h, hd, g, c, J[e])


def _obstacle_rows(obs: Obstacle, p, v, J, drift, radii, margin):
    """Distance rows between every sphere and one capsule obstacle (moving at obs.velocity)."""
    axis = obs.end - obs.start
    length2 = float(axis @ axis)
    if length2 > 1e-12:
        t = np.clip((p - obs.start) @ axis / length2, 0.0, 1.0)
        closest = obs.start + t[:, None] * axis
        inside = (t > 0.0) & (t < 1.0)  # closest point on the segment's interior: motion along it keeps distance
    else:
        closest = obs.start  # a sphere: broadcast against p
    d = p - closest
    dist = np.maximum(np.sqrt(np.einsum("ij,ij->i", d, d)), 1e-9)
    n = d / dist[:, None]
    w = v - obs.velocity  # relative velocity, m/s
    w_n = np.einsum("ij,ij->i", n, w)
    w_t = w - w_n[:, None] * n
    if length2 > 1e-12:
        u = axis / np.sqrt(length2)
        w_t = w_t - np.where(inside, w_t @ u, 0.0)[:, None] * u
    curvature = np.einsum("ij,ij->i", w_t, w_t) / dist
    h = dist - radii - obs.radius - margin
    g = np.einsum("ij,ijk->ik", n, J)
    c = np.einsum("ij,ij->i", n, drift) + curvature
    return h, w_n, g, c
