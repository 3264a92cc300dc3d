"""Conversions between standard ROS messages and the cores' plain arrays."""
from __future__ import annotations

import numpy as np
import pinocchio as pin
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Pose, PoseStamped, Transform, Twist, TwistStamped, WrenchStamped
from std_msgs.msg import Bool, Float64
from trajectory_msgs.msg import MultiDOFJointTrajectory, MultiDOFJointTrajectoryPoint

from robot_dyn.control.trajectory import CartesianPath
from robot_dyn.nodes.wire import CartesianPathData


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


def pose_msg(position, rotation, stamp: float, frame_id: str) -> PoseStamped:
    """A pose (position m, rotation matrix) as a PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = (float(v) for v in rotation_to_quaternion(rotation))
    return msg


def twist_msg(command, stamp: float, frame_id: str) -> TwistStamped:
    """A twist command (6,): linear x y z, angular x y z, in the message's units, as a TwistStamped."""
    msg = TwistStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in command[:3])
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in command[3:])
    return msg


def wrench_msg(wrench, stamp: float, frame_id: str) -> WrenchStamped:
    """A wrench (6,): force x y z (N), torque x y z (Nm), as a WrenchStamped."""
    msg = WrenchStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = (float(v) for v in wrench[:3])
    msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = (float(v) for v in wrench[3:])
    return msg


def task_score_msgs(score: dict, stamp: float, frame_id: str) -> tuple[Float64, Bool, WrenchStamped]:
    """A task's score (robot_dyn.tasks: 'score', 'success', 'contact_force_n' N) as /task/score, /task/success
    and /task/contact_wrench messages."""
    wrench = WrenchStamped()
    wrench.header.stamp, wrench.header.frame_id = to_stamp(stamp), frame_id
    wrench.wrench.force.x, wrench.wrench.force.y, wrench.wrench.force.z = (float(v) for v in score["contact_force_n"])
    return Float64(data=float(score["score"])), Bool(data=bool(score["success"])), wrench


def planar_pose_msg(pose, z: float, stamp: float, frame_id: str) -> PoseStamped:
    """A planar pose (x m, y m, yaw rad about z) at height z (m) as a PoseStamped."""
    msg = PoseStamped()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(pose[0]), float(pose[1]), float(z)
    msg.pose.orientation.z, msg.pose.orientation.w = float(np.sin(pose[2] / 2)), float(np.cos(pose[2] / 2))
    return msg


def planar_pose(msg: PoseStamped) -> np.ndarray:
    """(x m, y m, yaw rad) of a PoseStamped (the yaw of its rotation about z); ValueError if not finite."""
    p, R = pose_to_arrays(msg.pose)
    return np.array([p[0], p[1], np.arctan2(R[1, 0], R[0, 0])])


def rotation_to_quaternion(rotation: np.ndarray):
    """(x, y, z, w) of a rotation matrix."""
    q = pin.Quaternion(rotation)
    return q.x, q.y, q.z, q.w


def cartesian_path_msg(path: CartesianPath, ee_frame: str, stamp: float) -> MultiDOFJointTrajectory:
    """A CartesianPath as the controller's MultiDOFJointTrajectory (one 'joint': ee_frame), starting at
    `stamp` (s on the graph's clock; 0: when the controller takes it)."""
    msg = MultiDOFJointTrajectory()
    msg.header.stamp = to_stamp(stamp)
    msg.joint_names = [ee_frame]
    for k in range(path.times.size):
        point = MultiDOFJointTrajectoryPoint()
        tr = Transform()
        tr.translation.x, tr.translation.y, tr.translation.z = path.p[k].tolist()
        tr.rotation.x, tr.rotation.y, tr.rotation.z, tr.rotation.w = rotation_to_quaternion(path.R[k])
        vel, acc = Twist(), Twist()
        vel.linear.x, vel.linear.y, vel.linear.z = path.v[k].tolist()
        vel.angular.x, vel.angular.y, vel.angular.z = path.w[k].tolist()
        acc.linear.x, acc.linear.y, acc.linear.z = path.a[k].tolist()
        point.transforms, point.velocities, point.accelerations = [tr], [vel], [acc]
        point.time_from_start = to_duration(path.times[k] - path.t0)
        msg.points.append(point)
    return msg


def cartesian_path_from_data(msg: CartesianPathData, t_now: float) -> CartesianPath:
    """A decoded MultiDOFJointTrajectory (one 'joint': the end-effector) -> CartesianPath in absolute time.

    header.stamp is the start time; a zero stamp means 'now'. Missing velocities or
    accelerations are zeros. ValueError names the first point at fault."""
    if len(msg.joint_names) != 1:
        raise ValueError(f"joint_names: expected one entry (the end-effector frame), got {list(msg.joint_names)}")
    bad = np.flatnonzero(msg.counts[:, 0] != 1)
    if bad.size:
        raise ValueError(f"points[{bad[0]}].transforms: expected exactly one transform")
    quat = msg.rotation
    norm = np.linalg.norm(quat, axis=1)
    bad = np.flatnonzero(~(np.all(np.isfinite(quat), axis=1) & np.all(np.isfinite(msg.translation), axis=1)))
    if bad.size:
        raise ValueError(f"points[{bad[0]}]: pose: position or orientation is not finite")
    bad = np.flatnonzero(np.abs(norm - 1.0) > 1e-3)
    if bad.size:
        raise ValueError(f"points[{bad[0]}].transforms[0].rotation: quaternion norm is {norm[bad[0]]:.4f}, expected 1")
    start = msg.stamp_ns * 1e-9 or t_now
    return CartesianPath(start + msg.time_from_start_ns * 1e-9, msg.translation, msg.velocity[:, :3],
                         msg.acceleration[:, :3], quaternions_to_rotations(quat / norm[:, None]), msg.velocity[:, 3:])


def quaternions_to_rotations(quat: np.ndarray) -> np.ndarray:
    """Unit quaternions (N, 4) x, y, z, w -> rotation matrices (N, 3, 3)."""
    x, y, z, w = quat.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
    ], axis=1)


def diagnostics_msg(stamp: float, name: str, values: dict, level: int = DiagnosticStatus.OK, message: str = "") -> DiagnosticArray:
    msg = DiagnosticArray()
    msg.header.stamp = to_stamp(stamp)
    status = DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level, name=name, message=message)
    status.values = [KeyValue(key=k, value=f"{v:.6g}" if isinstance(v, float) else str(v)) for k, v in values.items()]
    msg.status = [status]
    return msg


def obstacle_updates(msg, base_frame: str, t_now: float) -> tuple[list, list[str]]:
    """visualization_msgs/MarkerArray -> ([("update", ObstacleUpdate) | ("delete", key) | ("clear", None)], errors).

    SPHERE markers (scale x = y = z = diameter) and CYLINDER markers (scale x = y = diameter,
    z = height, along the marker's z axis) in `base_frame` become obstacles; a malformed
    marker is skipped with an error naming it and the field."""
    from visualization_msgs.msg import Marker

    from robot_dyn.safety.obstacles import CYLINDER, SPHERE, ObstacleUpdate

    ops, errors = [], []
    for m in msg.markers:
        key, name = (m.ns, m.id), f"marker {m.ns!r}/{m.id}"
        if m.action == Marker.DELETEALL:
            ops.append(("clear", None))
            continue
        if m.action == Marker.DELETE:
            ops.append(("delete", key))
            continue
        if m.action != Marker.ADD:  # ADD and MODIFY share the value 0
            errors.append(f"{name}: action {m.action} is not ADD/MODIFY, DELETE or DELETEALL")
            continue
        if m.header.frame_id not in ("", base_frame):
            errors.append(f"{name}: header.frame_id must be '{base_frame}', got '{m.header.frame_id}'")
            continue
        if m.type not in (Marker.SPHERE, Marker.CYLINDER):
            errors.append(f"{name}: type {m.type} is not SPHERE ({Marker.SPHERE}) or CYLINDER ({Marker.CYLINDER})")
            continue
        scale = np.array([m.scale.x, m.scale.y, m.scale.z])
        try:
            center, rotation = pose_to_arrays(m.pose)
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
            continue
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            errors.append(f"{name}: scale must be positive and finite, got {scale.tolist()}")
            continue
        stamp = to_sec(m.header.stamp) if (m.header.stamp.sec or m.header.stamp.nanosec) else t_now
        lifetime = m.lifetime.sec + 1e-9 * m.lifetime.nanosec
        if m.type == Marker.SPHERE:
            if np.ptp(scale) > 1e-6:
                errors.append(f"{name}: a SPHERE needs scale x = y = z (ellipsoids are not supported), got {scale.tolist()}")
                continue
            ops.append(("update", ObstacleUpdate(key, SPHERE, center, scale[0] / 2, stamp=stamp, lifetime=lifetime)))
        else:
            if abs(scale[0] - scale[1]) > 1e-6:
                errors.append(f"{name}: a CYLINDER needs scale x = y, got {scale.tolist()}")
                continue
            ops.append(("update", ObstacleUpdate(key, CYLINDER, center, scale[0] / 2, scale[2] / 2, rotation[:, 2],
                                                 stamp=stamp, lifetime=lifetime)))
    return ops, errors


def obstacle_markers(obstacles, base_frame: str, stamp: float, rgba=(1.0, 0.3, 0.1, 0.6)):
    """Obstacles as a MarkerArray (namespace 'safety_obstacles'): spheres, and capsules as cylinders."""
    from visualization_msgs.msg import Marker, MarkerArray

    out = MarkerArray()
    clear = Marker(action=Marker.DELETEALL)
    clear.ns = "safety_obstacles"
    out.markers.append(clear)
    for i, obs in enumerate(obstacles):
        m = Marker(ns="safety_obstacles", id=i, action=Marker.ADD)
        m.header.frame_id, m.header.stamp = base_frame, to_stamp(stamp)
        axis = obs.end - obs.start
        length = float(np.linalg.norm(axis))
        center = (obs.start + obs.end) / 2
        m.pose.position.x, m.pose.position.y, m.pose.position.z = center.tolist()
        d = 2 * obs.radius
        if length < 1e-9:
            m.type = Marker.SPHERE
            m.scale.x = m.scale.y = m.scale.z = d
            m.pose.orientation.w = 1.0
        else:
            m.type = Marker.CYLINDER
            m.scale.x = m.scale.y = d
            m.scale.z = length + d
            quat = pin.Quaternion.FromTwoVectors(np.array([0.0, 0.0, 1.0]), axis / length)
            m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z, m.pose.orientation.w = quat.x, quat.y, quat.z, quat.w
        m.color.r, m.color.g, m.color.b, m.color.a = rgba
        out.markers.append(m)
    return out
