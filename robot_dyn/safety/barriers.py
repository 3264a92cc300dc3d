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

from robot_dyn.jit import kernel
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
        self.packed = (None, None)  # (obstacle tuple, its arrays): see _packed

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
    starts, ends, radii, velocities = _packed(kin, obstacles)
    h, hd, g, c = _rows(p, v, J, drift, kin.radii, sets.end_effector, sets.table_height, sets.workspace_min,
                        sets.workspace_max, margin, starts, ends, radii, velocities)
    return BarrierRows(h, hd, g, c, J[sets.end_effector])


def _packed(kin: SphereKinematics, obstacles: tuple[Obstacle, ...]):
    """The obstacles as arrays (starts, ends (O, 3), radii (O,), velocities (O, 3)), kept for the same tuple."""
    if kin.packed[0] is not obstacles:
        arrays = (np.array([o.start for o in obstacles], float).reshape(-1, 3),
                  np.array([o.end for o in obstacles], float).reshape(-1, 3),
                  np.array([o.radius for o in obstacles], float),
                  np.array([o.velocity for o in obstacles], float).reshape(-1, 3))
        kin.packed = (obstacles, arrays)
    return kin.packed[1]


@kernel
def _rows(p, v, J, drift, radii, e, table_height, workspace_min, workspace_max, margin, starts, ends, obstacle_radii,
          obstacle_velocities):
    """h, h_dot, g, c of the table rows (one per sphere), the end-effector sphere's six workspace
    faces (x min, x max, y min, ...), then each obstacle's distance rows (one per sphere).

    Obstacle rows: the distance from the sphere's centre to the closest point of the capsule's
    segment. Its second derivative at a = 0 adds the curvature |w_t|^2 / dist of the relative
    velocity w's part across the normal (along the segment's interior, motion keeps the distance)."""
    S, n = J.shape[0], J.shape[2]
    O = starts.shape[0]
    m = S + 6 + S * O
    h, hd, g, c = np.empty(m), np.empty(m), np.empty((m, n)), np.empty(m)
    for i in range(S):
        h[i] = p[i, 2] - table_height - radii[i] - margin
        hd[i], c[i] = v[i, 2], drift[i, 2]
        g[i] = J[i, 2]
    for f in range(6):
        axis, sign = f // 2, 1.0 if f % 2 == 0 else -1.0
        bound = workspace_min[axis] if sign > 0 else workspace_max[axis]
        row = S + f
        h[row] = sign * (p[e, axis] - bound) - radii[e] - margin
        hd[row], c[row] = sign * v[e, axis], sign * drift[e, axis]
        g[row] = sign * J[e, axis]
    for o in range(O):
        axis = ends[o] - starts[o]
        length2 = axis @ axis
        for i in range(S):
            row = S + 6 + o * S + i
            inside = False
            closest = starts[o].copy()
            if length2 > 1e-12:
                t = min(max((p[i] - starts[o]) @ axis / length2, 0.0), 1.0)
                closest += t * axis
                inside = 0.0 < t < 1.0  # on the segment's interior: motion along it keeps the distance
            d = p[i] - closest
            dist = max(np.sqrt(d @ d), 1e-9)
            normal = d / dist
            w = v[i] - obstacle_velocities[o]  # relative velocity, m/s
            w_n = normal @ w
            w_t = w - w_n * normal
            if inside:
                u = axis / np.sqrt(length2)
                w_t = w_t - (w_t @ u) * u
            h[row] = dist - radii[i] - obstacle_radii[o] - margin
            hd[row] = w_n
            g[row] = normal @ J[i]
            c[row] = normal @ drift[i] + (w_t @ w_t) / dist
    return h, hd, g, c
