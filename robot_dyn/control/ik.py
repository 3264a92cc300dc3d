"""Second-order closed-loop differential inverse kinematics with a nullspace posture task.

qdd = J# (a_d - Jdot qd + Kd (v_d - J qd) + Kp e) + N (-Kp_null (q - q_posture) - Kd_null qd)

with J# the damped pseudo-inverse of the 6 x n Jacobian (LOCAL_WORLD_ALIGNED,
linear rows first), N = I - J# J, and e the 6D pose error [p_d - p; log(R_d R^T)].
Run on the *desired* joint state, it turns a Cartesian motion into a smooth joint
reference (q_d, qd_d, qdd_d) whose accelerations feed the rigid-body feedforward.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from robot_dyn.jit import kernel


@dataclass(frozen=True)
class IKGains:
    position: float = 400.0  # 1/s^2 on the pose error
    velocity: float = 40.0  # 1/s on the twist error (critically damped with 400)
    nullspace_stiffness: float = 10.0  # 1/s^2 toward the posture
    nullspace_damping: float = 6.3  # 1/s
    damping: float = 1e-3  # damped least squares, m (or rad)


def pose_error(p_d, R_d, p, R) -> np.ndarray:
    """[p_d - p; log(R_d R^T)] (6,), base-frame axes."""
    return np.concatenate([p_d - p, pin.log3(R_d @ R.T)])


@kernel
def damped_pinv(jac: np.ndarray, damping: float) -> np.ndarray:
    """J^T (J J^T + damping^2 I)^-1."""
    jjt = jac @ jac.T
    for i in range(jjt.shape[0]):
        jjt[i, i] += damping**2
    return np.linalg.solve(jjt, jac).T


def clik_acceleration(jac, drift, error, twist_error, acc_ref, q, qd, q_posture, gains: IKGains) -> np.ndarray:
    """Joint acceleration (rad/s^2) that makes the end-effector follow the Cartesian reference.

    jac: 6 x n Jacobian; drift: Jdot qd (6,); error: pose error (6,); twist_error:
    v_d - J qd (6,); acc_ref: desired spatial acceleration [a; alpha] (6,).
    """
    return _clik(jac, drift, error, twist_error, acc_ref, q, qd, q_posture, gains.position, gains.velocity,
                 gains.nullspace_stiffness, gains.nullspace_damping, gains.damping)


def warm_up_ik(n: int) -> None:
    """Compile (or load) the IK kernel for n joints."""
    zeros = np.zeros(n)
    clik_acceleration(np.zeros((6, n)), np.zeros(6), np.zeros(6), np.zeros(6), np.zeros(6), zeros, zeros, zeros, IKGains())


@kernel
def _clik(jac, drift, error, twist_error, acc_ref, q, qd, q_posture, kp, kd, kp_null, kd_null, damping):
    jpinv = damped_pinv(jac, damping)
    task = jpinv @ (acc_ref - drift + kd * twist_error + kp * error)
    posture = -kp_null * (q - q_posture) - kd_null * qd
    return task + posture - jpinv @ (jac @ posture)


def solve_pose(model, position, rotation, q0, tolerance: float = 1e-7, iterations: int = 200) -> np.ndarray:
    """Joint positions (rad) that put the end-effector at (position m, rotation 3x3), base frame, from q0
    by damped Newton steps with the posture q0 kept in the nullspace (pinocchio's kinematics through
    `model`, a robot_dyn.dynamics.rigid_body.RigidBody); ValueError when it does not converge (out of reach)."""
    q0 = np.asarray(q0, float)
    q, zero = q0.copy(), np.zeros_like(q0)
    for _ in range(iterations):
        p, R, jac, _ = model.ee_kinematics(q, zero)
        error = pose_error(np.asarray(position, float), np.asarray(rotation, float), p, R)
        if np.linalg.norm(error) < tolerance:
            return q
        pinv = damped_pinv(jac, 1e-4)
        q = q + pinv @ error + (np.eye(len(q)) - pinv @ jac) @ (0.1 * (q0 - q))
    raise ValueError(f"inverse kinematics: no solution within {tolerance:g} for the pose at {np.round(position, 4).tolist()} m")
