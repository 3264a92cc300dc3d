"""Inverse-dynamics data recorded on a real arm: a rosbag2 (sqlite3 or MCAP) -> a dataset.

Reads sensor_msgs/JointState on `state_topic` and, optionally, the commanded joint torques
on `command_topic` (sensor_msgs/JointState effort or std_msgs/Float64MultiArray data, in URDF
order). A JointTrajectory is refused as a torque source: its effort is only the feedforward,
not what the motors applied. Stamps are the messages' header stamps; when the command
type has no header, the bag's receive times are used for states and commands alike. Samples are resampled onto a
uniform grid at the median state rate; velocities and accelerations come from the same
Savitzky-Golay differentiation as simulated data. Torque: with a command topic,
tau = commanded + the nominal gravity the arm adds (Franka/KUKA compensate gravity);
without one, tau = the measured joint torque in JointState.effort. The last
`heldout_fraction` of the recording is held out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.inverse_dynamics.dataset import DatasetError, Episode, urdf_hash, write_dataset
from robot_dyn.robots.description import RobotDescription


def _ordered(names, values, robot: RobotDescription, where: str) -> np.ndarray:
    names = list(names)
    missing = [j for j in robot.joint_names if j not in names]
    if missing:
        raise DatasetError(f"{where}: joints {missing} missing (message has {names})")
    values = np.asarray(values, float)
    if values.size != len(names):
        raise DatasetError(f"{where}: {values.size} values for {len(names)} joint names")
    return values[[names.index(j) for j in robot.joint_names]]


def _command(msg, msgtype: str, robot: RobotDescription, where: str) -> np.ndarray:
    if msgtype == "sensor_msgs/msg/JointState":
        return _ordered(msg.name, msg.effort, robot, where)
    if msgtype == "std_msgs/msg/Float64MultiArray":
        data = np.asarray(msg.data, float)
        if data.size != robot.n_joints:
            raise DatasetError(f"{where}: {data.size} values, expected {robot.n_joints} in URDF joint order")
        return data
    raise DatasetError(f"{where}: unsupported command type {msgtype}")


def import_rosbag(bag: Path, robot: RobotDescription, out: Path, state_topic: str = "/joint_states",
                  command_topic: str | None = None, robot_compensates_gravity: bool = True,
                  heldout_fraction: float = 0.2, filter_window_s: float = 0.031, filter_order: int = 3) -> Path:
    from rosbags.highlevel import AnyReader

    bag = Path(bag)
    states, commands = [], []
    try:
        with AnyReader([bag]) as reader:
            topics = {c.topic: c for c in reader.connections}
            if state_topic not in topics:
                raise DatasetError(f"{bag}: no topic '{state_topic}' (topics: {sorted(topics)})")
            wanted = [topics[state_topic]] + ([topics[command_topic]] if command_topic in topics else [])
            if command_topic and command_topic not in topics:
                raise DatasetError(f"{bag}: no topic '{command_topic}' (topics: {sorted(topics)})")
            if command_topic and topics[command_topic].msgtype not in ("sensor_msgs/msg/JointState", "std_msgs/msg/Float64MultiArray"):
                raise DatasetError(f"{bag}: '{command_topic}' is {topics[command_topic].msgtype}; the commanded torque "
                                   "must be sensor_msgs/JointState (effort) or std_msgs/Float64MultiArray")
            receive_times = command_topic is not None and topics[command_topic].msgtype == "std_msgs/msg/Float64MultiArray"
            for conn, t_ns, raw in reader.messages(connections=wanted):
                msg = reader.deserialize(raw, conn.msgtype)
                stamp = t_ns * 1e-9 if receive_times else msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                where = f"{bag}: {conn.topic} at {stamp:.3f} s"
                if conn.topic == state_topic:
                    states.append((stamp, _ordered(msg.name, msg.position, robot, where),
                                   _ordered(msg.name, msg.effort, robot, where) if len(msg.effort) else None))
                else:
                    commands.append((stamp, _command(msg, conn.msgtype, robot, where)))
    except DatasetError:
        raise
    except Exception as exc:  # rosbags raises its own types for unreadable bags
        raise DatasetError(f"{bag}: unreadable rosbag2: {exc}") from exc
    if len(states) < 100:
        raise DatasetError(f"{bag}: only {len(states)} messages on '{state_topic}'")
    states.sort(key=lambda s: s[0])
    t_raw = np.array([s[0] for s in states])
    keep = np.concatenate([[True], np.diff(t_raw) > 0])
    t_raw, q_raw = t_raw[keep], np.array([s[1] for s in states])[keep]
    dt = float(np.median(np.diff(t_raw)))
    t = np.arange(t_raw[0], t_raw[-1], dt)
    q = np.column_stack([np.interp(t, t_raw, q_raw[:, j]) for j in range(robot.n_joints)])
    model = RigidBody(robot)
    gravity = np.array([model.gravity(qk) for qk in q]) if robot_compensates_gravity else np.zeros_like(q)
    if command_topic:
        if not commands:
            raise DatasetError(f"{bag}: no messages on '{command_topic}'")
        c_t = np.array([c[0] for c in commands])
        c_v = np.array([c[1] for c in commands])
        idx = np.clip(np.searchsorted(c_t, t, side="right") - 1, 0, len(c_t) - 1)  # zero-order hold
        commanded = c_v[idx]
        tau = commanded + gravity
    else:
        if any(s[2] is None for s in states):
            raise DatasetError(f"{bag}: '{state_topic}' has no effort; give the commanded torque topic")
        eff = np.array([s[2] for s in states])[keep]
        tau = np.column_stack([np.interp(t, t_raw, eff[:, j]) for j in range(robot.n_joints)])
        commanded = tau - gravity
    window = max(filter_order + 2, int(round(filter_window_s / dt)) | 1)
    sg = dict(window_length=window, polyorder=filter_order, delta=dt, axis=0)
    columns = {"q": q, "qd": savgol_filter(q, deriv=1, **sg), "qdd": savgol_filter(q, deriv=2, **sg),
               "tau_commanded": commanded, "tau_gravity": gravity, "tau": tau}
    cut = int(len(t) * (1 - heldout_fraction))
    episodes = [Episode("recorded", "train", t[:cut] - t[0], {k: v[:cut] for k, v in columns.items()}),
                Episode("recorded", "heldout", t[cut:] - t[cut], {k: v[cut:] for k, v in columns.items()})]
    metadata = {"robot": robot.name, "joint_names": list(robot.joint_names), "urdf_sha256": urdf_hash(robot.urdf_xml),
                "source": f"rosbag2: {bag}", "state_topic": state_topic, "command_topic": command_topic,
                "rate_hz": 1.0 / dt, "robot_compensates_gravity": robot_compensates_gravity}
    return write_dataset(out, metadata, episodes)
