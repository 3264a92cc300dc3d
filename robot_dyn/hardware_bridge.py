"""Pure conversion of one impedance reference into the command of an arm's real-time controller.

On hardware no 1 kHz torque loop crosses DDS: the inner law runs in a real-time
controller on the arm side (see hardware/README.md). This module turns one
project reference (topic /impedance_reference, trajectory_msgs/JointTrajectory,
one point) into:

* Franka FR3: the fields of a JointTrajectory for joint_trajectory_controller
  (JTC) with the `effort` command interface, joint names fr3_jointN (the FR3 model's own,
  urdf/fr3.urdf; a prefix map renames another model's, e.g. panda_jointN), one point
  `horizon_s` ahead of the reference stamp;
* KUKA LBR: the fields of an lbr_fri_idl/msg/LBRTorqueCommand (joint_position,
  torque) for lbr_ros2_control's LBRTorqueCommandController (FRI TORQUE mode).

Numpy only, no rclpy. Units: rad, rad/s, rad/s^2, Nm, Nm s/rad, s; times are
integer nanoseconds of the ROS clock. Joint quantities are joint-space (no
Cartesian frames); torques exclude gravity, which Franka and KUKA compensate
themselves. Bad input raises ValueError whose message starts with the field
(joint_names, positions, velocities, accelerations, effort, header.stamp, or the
option's name). Empty velocities, accelerations or effort mean zeros, as in
JointTrajectory and robot_dyn.control.impedance.

The ROS wrapper is robot_dyn/nodes/hardware_adapter_node.py (executable
`hardware_adapter`); its parameters are listed in robot_dyn/bringup/schema.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from robot_dyn.joint_arrays import joint_vector

FR3_JOINTS = tuple(f"fr3_joint{i}" for i in range(1, 8))
LBR_JOINTS = tuple(f"lbr_A{i}" for i in range(1, 8))
FRANKA_PREFIX_MAP = {"fr3_joint": "fr3_joint"}  # the FR3 model (urdf/fr3.urdf) has the arm's names
KUKA_PREFIX_MAP = {"lbr_A": "lbr_A"}
# The vendors' topics (franka_bringup with hardware/franka/fr3_impedance_controllers.yaml; lbr_bringup)
FRANKA_COMMAND_TOPIC, FRANKA_STATE_TOPIC = "/fr3_arm_controller/joint_trajectory", "/franka/joint_states"
KUKA_COMMAND_TOPIC, KUKA_STATE_TOPIC = "/lbr/command/torque", "/lbr/joint_states"


@dataclass(frozen=True)
class Reference:
    """A checked reference in the target controller's joint order (rad, rad/s, rad/s^2, Nm)."""

    joint_names: tuple[str, ...]
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    tau_ff: np.ndarray
    stamp_ns: int

    def predict(self, dt: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, qd, qdd) dt seconds after the stamp, constant acceleration."""
        return self.q + dt * (self.qd + 0.5 * dt * self.qdd), self.qd + dt * self.qdd, self.qdd.copy()


@dataclass(frozen=True)
class JtcCommand:
    """Fields of a JointTrajectory with one point, for joint_trajectory_controller.

    stamp and time_from_start are (sec, nanosec). effort is empty when not sent.
    """

    stamp: tuple[int, int]
    joint_names: tuple[str, ...]
    positions: list[float]
    velocities: list[float]
    accelerations: list[float]
    effort: list[float]
    time_from_start: tuple[int, int]


@dataclass(frozen=True)
class LbrTorqueCommand:
    """Fields of lbr_fri_idl/msg/LBRTorqueCommand, in lbr_A1..A7 order.

    joint_position: setpoint of KUKA's joint impedance controller (rad).
    torque: torque superposed on that controller's output (Nm, gravity excluded).
    """

    joint_position: list[float]
    torque: list[float]


def parse_prefix_map(entries: Sequence[str]) -> dict[str, str]:
    """{'from': 'to'} from ROS-parameter strings like 'panda_joint:fr3_joint'."""
    out = {}
    for entry in entries:
        parts = str(entry).split(":")
        if len(parts) != 2 or not parts[0]:
            raise ValueError(f"joint_prefix_map: entry {entry!r} is not 'from:to'")
        out[parts[0]] = parts[1]
    if not out:
        raise ValueError("joint_prefix_map: empty")
    return out


def _map_name(name: str, prefix_map: Mapping[str, str]) -> str | None:
    """Replace the longest matching source prefix; None when no prefix matches."""
    matches = [p for p in prefix_map if name.startswith(p)]
    if not matches:
        return None
    prefix = max(matches, key=len)
    return prefix_map[prefix] + name[len(prefix):]


def _floats(field: str, raw) -> np.ndarray:
    try:
        return np.asarray(raw, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: not a list of numbers ({exc})") from exc


def _vector(field: str, raw, labels: Sequence[str], optional: bool) -> np.ndarray:
    """len(labels) finite numbers (zeros when empty and optional); errors name the joints."""
    n = len(labels)
    values = _floats(field, raw)
    if values.size == 0 and optional:
        return np.zeros(n)
    if values.size != n:
        raise ValueError(f"{field}: {values.size} values for {n} joints")
    bad = [labels[i] for i in np.flatnonzero(~np.isfinite(values))]
    if bad:
        raise ValueError(f"{field}: NaN or infinite value for joints {bad}")
    return values


def _per_joint(field: str, raw, n: int) -> np.ndarray:
    """One non-negative value or n of them, as an n-vector (the message starts with the field)."""
    try:
        return joint_vector(field, raw, n, "nonnegative")
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None


def _seconds(field: str, value: float, positive: bool) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{field}: must be a {'positive' if positive else 'non-negative'} number of seconds, got {value}")
    return value


def _time(ns: int) -> tuple[int, int]:
    return int(ns // 1_000_000_000), int(ns % 1_000_000_000)


def prepare_reference(
    joint_names: Sequence[str],
    positions,
    velocities,
    accelerations,
    effort,
    stamp_ns: int,
    *,
    prefix_map: Mapping[str, str],
    target_joints: Sequence[str],
    effort_limit=None,
) -> Reference:
    """Check a raw reference, rename its joints and reorder it into target_joints order.

    joint_names are the project's (URDF) names; each is renamed through prefix_map and
    must then be one of target_joints, each target joint exactly once.
    """
    targets = tuple(target_joints)
    n = len(targets)
    if n == 0 or len(set(targets)) != n:
        raise ValueError(f"target_joints: need distinct joint names, got {list(targets)}")
    names = [str(j) for j in joint_names]
    if len(set(names)) != len(names):
        raise ValueError(f"joint_names: duplicates in {names}")
    mapped = []
    for name in names:
        new = _map_name(name, prefix_map)
        if new is None or new not in targets:
            raise ValueError(f"joint_names: unknown joint '{name}' (maps to {new!r}; controller joints {list(targets)})")
        mapped.append(new)
    if len(mapped) != n:
        missing = [t for t in targets if t not in mapped]
        raise ValueError(f"joint_names: {len(mapped)} joints given, {n} expected (missing {missing})")
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)) or stamp_ns < 0:
        raise ValueError(f"header.stamp: expected non-negative integer nanoseconds, got {stamp_ns!r}")
    order = [mapped.index(t) for t in targets]
    q = _vector("positions", positions, names, optional=False)[order]
    qd = _vector("velocities", velocities, names, optional=True)[order]
    qdd = _vector("accelerations", accelerations, names, optional=True)[order]
    tau_ff = _vector("effort", effort, names, optional=True)[order]
    if effort_limit is not None and np.size(effort_limit) > 0:
        limit = _per_joint("effort_limit", effort_limit, n)
        over = [targets[i] for i in np.flatnonzero(np.abs(tau_ff) > limit)]
        if over:
            raise ValueError(f"effort: feedforward above effort_limit at joints {over}")
    return Reference(targets, q, qd, qdd, tau_ff, int(stamp_ns))


def franka_jtc_command(
    joint_names,
    positions,
    velocities,
    accelerations,
    effort,
    stamp_ns: int,
    *,
    prefix_map: Mapping[str, str] = FRANKA_PREFIX_MAP,
    target_joints: Sequence[str] = FR3_JOINTS,
    horizon_s: float = 0.02,
    extrapolate: bool = True,
    include_effort: bool = True,
    use_reference_stamp: bool = True,
    effort_limit=None,
    position_limits=None,
) -> JtcCommand:
    """One-point JointTrajectory for JTC (effort interface) on the FR3.

    The point sits horizon_s after the reference stamp (time_from_start = horizon_s);
    JTC splines from its last desired state to it, so messages at 100-500 Hz give a
    smooth 1 kHz reference. With extrapolate the point holds the reference predicted
    to stamp + horizon_s (no lag); without it the reference arrives horizon_s late.
    effort = tau_ff (gravity excluded: the FR3 adds gravity itself). With
    use_reference_stamp=False the stamp is 0 and JTC starts the point on receipt. position_limits:
    (lower, upper) rad in target_joints order; the forwarded point (extrapolated or not) must lie inside.
    """
    h = _seconds("horizon_s", horizon_s, positive=True)
    ref = prepare_reference(
        joint_names, positions, velocities, accelerations, effort, stamp_ns,
        prefix_map=prefix_map, target_joints=target_joints, effort_limit=effort_limit,
    )
    q, qd, qdd = ref.predict(h) if extrapolate else (ref.q, ref.qd, ref.qdd)
    _check_position_limits(q, ref.joint_names, position_limits, f"the point {h:g} s ahead")
    return JtcCommand(
        stamp=_time(ref.stamp_ns) if use_reference_stamp else (0, 0),
        joint_names=ref.joint_names,
        positions=q.tolist(),
        velocities=qd.tolist(),
        accelerations=qdd.tolist(),
        effort=ref.tau_ff.tolist() if include_effort else [],
        time_from_start=_time(round(h * 1e9)),
    )


def kuka_torque_command(
    joint_names,
    positions,
    velocities,
    accelerations,
    effort,
    stamp_ns: int,
    *,
    prefix_map: Mapping[str, str] = KUKA_PREFIX_MAP,
    target_joints: Sequence[str] = LBR_JOINTS,
    lookahead_s: float = 0.0,
    damping_ff=None,
    effort_limit=None,
    position_limits=None,
) -> LbrTorqueCommand:
    """LBRTorqueCommand for FRI TORQUE mode (KUKA joint impedance control mode).

    joint_position = q_d predicted lookahead_s after the stamp: the setpoint of KUKA's
    joint impedance controller (stiffness and damping are set in the robot-side
    LBRServer application). torque = tau_ff + damping_ff * qd_d, superposed on that
    controller's output; KUKA compensates gravity. qd_d and qdd_d reach the arm only
    through the prediction and damping_ff. position_limits: (lower, upper) rad in target_joints
    order; the predicted setpoint must lie inside (lbr_fri_ros2's command guard would end the FRI
    session over it).
    """
    dt = _seconds("lookahead_s", lookahead_s, positive=False)
    ref = prepare_reference(
        joint_names, positions, velocities, accelerations, effort, stamp_ns,
        prefix_map=prefix_map, target_joints=target_joints, effort_limit=effort_limit,
    )
    q, qd, _ = ref.predict(dt)
    _check_position_limits(q, ref.joint_names, position_limits, f"the setpoint {dt:g} s ahead")
    torque = ref.tau_ff.copy()
    if damping_ff is not None and np.size(damping_ff) > 0:
        torque += _per_joint("damping_ff", damping_ff, len(ref.joint_names)) * qd
    return LbrTorqueCommand(joint_position=q.tolist(), torque=torque.tolist())


def limits_in_target_order(joint_names, lower, upper, prefix_map: Mapping[str, str],
                           target_joints: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A robot's position limits (rad, in its joint_names' order) as (lower, upper) in target_joints order."""
    mapped = [_map_name(str(j), prefix_map) for j in joint_names]
    missing = [t for t in target_joints if t not in mapped]
    if missing:
        raise ValueError(f"joint_prefix_map: the robot's joints {list(joint_names)} give no limits for {missing}")
    order = [mapped.index(t) for t in target_joints]
    return np.asarray(lower, float)[order], np.asarray(upper, float)[order]


def _check_position_limits(q: np.ndarray, joints: Sequence[str], limits, what: str) -> None:
    if limits is None:
        return
    lower, upper = limits
    outside = np.flatnonzero((q < lower) | (q > upper))
    if outside.size:
        details = ", ".join(f"{joints[i]}={q[i]:.4f} not in [{lower[i]:.4f}, {upper[i]:.4f}]" for i in outside)
        raise ValueError(f"positions: {what} leaves the position limits: {details}")


def kuka_hold_command(measured_position) -> LbrTorqueCommand:
    """Hold where the arm is: setpoint = measured lbr_A1..A7 positions (rad), zero torque.

    Pass the position measured when the hold begins and keep re-sending that command;
    a setpoint re-read from the moving arm every cycle would hold nothing.
    """
    q = _vector("joint_position", measured_position, LBR_JOINTS, optional=False)
    return LbrTorqueCommand(joint_position=q.tolist(), torque=[0.0] * len(LBR_JOINTS))


def is_stale(stamp_ns: int, now_ns: int, timeout_s: float = 0.015) -> bool:
    """True when the reference stamped stamp_ns is older than timeout_s at now_ns."""
    return (now_ns - stamp_ns) > _seconds("stale_timeout_s", timeout_s, positive=True) * 1e9


def check_franka_timing(stale_timeout_s: float, horizon_s: float, use_reference_stamp: bool = True) -> None:
    """Refuse an adapter whose stale window outlasts its horizon: JTC drops a point whose stamp + horizon_s
    has passed ("ends in the past"), so a reference older than horizon_s that the adapter let through
    would only make JTC log an error (ValueError naming both parameters)."""
    stale, horizon = _seconds("stale_timeout_s", stale_timeout_s, True), _seconds("horizon_s", horizon_s, True)
    if use_reference_stamp and not stale < horizon:
        raise ValueError(f"stale_timeout_s ({stale}) must be below horizon_s ({horizon}): JTC drops a point whose "
                         "stamp + horizon_s has passed")


def freshness_stamp_ns(stamp_ns: int, arrival_ns: int, use_reference_stamp: bool = True) -> int:
    """The time (ns, the adapter's clock) from which a reference's age counts: its stamp, or its
    arrival when the stamp is 0 (apply on receipt, JTC's convention: a reference published by hand)
    or when use_reference_stamp is off (the stamps are another machine's clock, not comparable)."""
    return int(stamp_ns) if use_reference_stamp and stamp_ns != 0 else int(arrival_ns)


def joint_state_to_project(
    names: Sequence[str], position, velocity, effort, prefix_map: Mapping[str, str]
) -> tuple[list[str], list[float], list[float], list[float]]:
    """Rename a hardware JointState back to the project's joint names.

    prefix_map is the reference direction (e.g. panda_joint -> fr3_joint); it is
    inverted here. Joints it does not cover (gripper fingers) are dropped. Empty
    velocity or effort stay empty, as JointState allows.
    """
    inverse = {dst: src for src, dst in prefix_map.items()}
    names = [str(j) for j in names]
    pos = _vector("position", position, names, optional=False)
    vel = _vector("velocity", velocity, names, optional=True) if np.size(velocity) else None
    eff = _vector("effort", effort, names, optional=True) if np.size(effort) else None
    keep = [(i, _map_name(j, inverse)) for i, j in enumerate(names)]
    keep = [(i, new) for i, new in keep if new is not None]
    idx = [i for i, _ in keep]
    return (
        [new for _, new in keep],
        pos[idx].tolist(),
        vel[idx].tolist() if vel is not None else [],
        eff[idx].tolist() if eff is not None else [],
    )
