"""Conversions between standard ROS messages and the cores' plain arrays."""
from __future__ import annotations

import numpy as np
import pinocchio as pin
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_dyn.control.outer_loop import Reference
from robot_dyn.control.trajectory import CartesianPath


def to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _sec_nanosec(t: float) -> tuple[int, int]:
    sec, nanosec = divmod(int(round(t * 1e9)), 1_000_000_000)
    return sec, nanosec


def to_stamp(t: float) -> Time:
    sec, nanosec = _sec_nanosec(t)
    return Time(sec=sec, nanosec=nanosec)


def to_duration(t: float) -> Duration:
    sec, nanosec = _sec_nanosec(t)
    return Duration(sec=sec, nanosec=nanosec)


def reference_msg(ref: Reference, joint_names) -> JointTrajectory:
    """One-point JointTrajectory: the impedance reference contract (see README, 'Topics')."""
    msg = JointTrajectory()
    msg.header.stamp = to_stamp(ref.stamp)
    msg.joint_names = list(joint_names)
    point = JointTrajectoryPoint()
    point.positions, point.velocities = ref.q.tolist(), ref.qd.tolist()
    point.accelerations, point.effort = ref.qdd.tolist(), ref.tau_ff.tolist()
    msg.points = [point]
    return msg


def pose_to_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(position m, rotation matrix); raises ValueError for a non-finite or non-unit quaternion."""
    p = np.array([pose.position.x, pose.position.y, pose.position.z])
    quat = np.array([pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w])
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(quat))):
        raise ValueError("pose: position or orientation is not finite")
    norm = np.linalg.norm(quat)
    if abs(norm - 1.0) > 1e-3:
        raise ValueError(f"pose.orientation: quaternion norm is {norm:.4f}, expected 1")
    return p, pin.Quaternion(quat / norm).toRotationMatrix()


def rotation_to_quaternion(rotation: np.ndarray):
    """(x, y, z, w) of a rotation matrix."""
    q = pin.Quaternion(rotation)
    return q.x, q.y, q.z, q.w


def cartesian_path_from_msg(msg, t_now: float) -> CartesianPath:
    """MultiDOFJointTrajectory (one 'joint': the end-effector) -> CartesianPath in absolute time.

    header.stamp is the start time; a zero stamp means 'now'. Missing velocities or
    accelerations are zeros.
    """
    if len(msg.joint_names) != 1:
        raise ValueError(f"joint_names: expected one entry (the end-effector frame), got {list(msg.joint_names)}")
    start = to_sec(msg.header.stamp) or t_now
    times, P, V, A, R, W = [], [], [], [], [], []
    for i, point in enumerate(msg.points):
        if len(point.transforms) != 1:
            raise ValueError(f"points[{i}].transforms: expected exactly one transform")
        tr = point.transforms[0]
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = tr.translation.x, tr.translation.y, tr.translation.z
        pose.orientation = tr.rotation
        p, rot = pose_to_arrays(pose)
        times.append(start + to_sec(point.time_from_start))
        P.append(p)
        R.append(rot)
        twist = point.velocities[0] if point.velocities else None
        acc = point.accelerations[0] if point.accelerations else None
        V.append([twist.linear.x, twist.linear.y, twist.linear.z] if twist else [0.0] * 3)
        W.append([twist.angular.x, twist.angular.y, twist.angular.z] if twist else [0.0] * 3)
        A.append([acc.linear.x, acc.linear.y, acc.linear.z] if acc else [0.0] * 3)
    return CartesianPath(times, P, V, A, R, W)


def diagnostics_msg(stamp: float, name: str, values: dict, level: int = DiagnosticStatus.OK, message: str = "") -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = to_stamp(stamp)
    status = DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level, name=name, message=message)
    status.values = [KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    msg.status = [status]
    return msg
