"""Rigid-body kinematics and dynamics of one arm: a thin layer over pinocchio.

Every quantity is computed by pinocchio; this class only holds the model, its
data and the end-effector frame id, and returns plain numpy arrays. Frames:
poses are of the end-effector frame in the robot base frame; Jacobians and
spatial velocities/accelerations are expressed LOCAL_WORLD_ALIGNED (origin at
the end-effector, axes of the base frame), linear part first.
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin

from robot_dyn.robots.description import RobotDescription
from robot_dyn.robots.engines import pinocchio_model

WORLD_ALIGNED = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED


class RigidBody:
    """Kinematics and inverse dynamics of `robot` (q in rad, qd rad/s, qdd rad/s^2, tau Nm)."""

    def __init__(self, robot: RobotDescription, model: pin.Model | None = None):
        self.robot = robot
        self.model = model if model is not None else pinocchio_model(robot)
        self.data = self.model.createData()
        self.ee_id = self.model.getFrameId(robot.ee_frame)
        self._zero = np.zeros(self.model.nv)

    @property
    def n(self) -> int:
        return self.model.nv

    def ee_pose(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector position (m, base frame) and rotation matrix (base <- ee)."""
        pin.framesForwardKinematics(self.model, self.data, q)
        placement = self.data.oMf[self.ee_id]
        return placement.translation.copy(), placement.rotation.copy()

    def ee_jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x n end-effector Jacobian, LOCAL_WORLD_ALIGNED (linear rows first)."""
        return pin.computeFrameJacobian(self.model, self.data, q, self.ee_id, WORLD_ALIGNED)

    def ee_kinematics(self, q: np.ndarray, qd: np.ndarray):
        """Pose, Jacobian and the drift term Jdot*qd (6,) of the end-effector at (q, qd).

        The drift is the classical (not spatial) acceleration of the frame at zero
        joint acceleration, i.e. what a Cartesian acceleration must compensate.
        """
        pin.forwardKinematics(self.model, self.data, q, qd, self._zero)
        pin.updateFramePlacement(self.model, self.data, self.ee_id)
        placement = self.data.oMf[self.ee_id]
        jac = pin.computeFrameJacobian(self.model, self.data, q, self.ee_id, WORLD_ALIGNED)
        drift = pin.getFrameClassicalAcceleration(self.model, self.data, self.ee_id, WORLD_ALIGNED).vector
        return placement.translation.copy(), placement.rotation.copy(), jac, drift.copy()

    def rnea(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """Inverse dynamics tau = M(q) qdd + C(q, qd) qd + g(q)."""
        return pin.rnea(self.model, self.data, q, qd, qdd).copy()

    def mass_matrix(self, q: np.ndarray) -> np.ndarray:
        """Joint-space inertia matrix M(q), symmetric n x n."""
        upper = pin.crba(self.model, self.data, q)
        return np.triu(upper) + np.triu(upper, 1).T

    def gravity(self, q: np.ndarray) -> np.ndarray:
        """Gravity torque g(q)."""
        return pin.computeGeneralizedGravity(self.model, self.data, q).copy()

    def regressor(self, q: np.ndarray, qd: np.ndarray, qdd: np.ndarray) -> np.ndarray:
        """Joint torque regressor Y (n x 10n) with Y @ inertial_parameters() == rnea(q, qd, qdd)."""
        return pin.computeJointTorqueRegressor(self.model, self.data, q, qd, qdd).copy()

    def inertial_parameters(self) -> np.ndarray:
        """Stacked 10-vectors (m, m c, I about the joint frame origin) of each moving body, pinocchio's order."""
        return np.concatenate([self.model.inertias[i].toDynamicParameters() for i in range(1, self.model.njoints)])
