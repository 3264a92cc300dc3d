"""The arm vendors' real-time controller laws, emulated behind the sim node for deployment rehearsals.

On a real arm the 1 kHz law is not ours (hardware/README.md): the Franka runs ros2_controllers'
joint_trajectory_controller (JTC) on the effort interface, fed one-point trajectories by the
hardware adapter; the KUKA runs its own joint impedance controller with the torque overlay. To
rehearse a deployment, the sim node's robot layer is replaced by these laws, so that the exact
hardware graph (controller + hardware_adapter, with the vendors' topics and messages) runs
against MuJoCo. Each class has the robot layer's interface (robot_dyn.control.impedance.RobotLayer):
observe(q), torque(t, q, qd, dt) -> Nm (gravity excluded: the arm adds it), drain_events(),
`mode`, `rejected`, `hold_events`.

JtcEffortLaw follows ros2_controllers' joint_trajectory_controller 4.42.0 (jazzy):
`joint_trajectory_controller/src/joint_trajectory_controller.cpp` (update(), the PID adapter of an
effort-only controller, validate_trajectory_msg(), set_hold_position()) and `src/trajectory.cpp`
(Trajectory::sample, interpolate_between_points), then franka_hardware's torque rate limiter
(`franka::limitRate`, libfranka's kMaxTorqueRate 1000 Nm/s). Per cycle of period dt:

    tau = p e + i int(e) + d de + ff_velocity_scale qd_next + effort_next,   e = q_d - q, de = qd_d - qd

with (q_d, qd_d) the trajectory sampled now and (qd_next, effort_next) one period ahead (JTC's
command_next_). A message's segment starts from the last commanded state (interpolate_from_desired_state;
position, velocity, acceleration and effort, at the time it was commanded) and ends at its point at
stamp + time_from_start (stamp 0: the time it is first sampled): quintic in position, linear in
effort. After the point's time the point is commanded as sent (its velocity and effort too).
cmd_timeout after it JTC logs "Aborted due to command timeout" and holds the position measured then,
with zero velocity, acceleration and effort, through the same gains; it also holds the position at
activation until the first message. A message with a nonzero stamp whose point lies in the past
is rejected ("... that ends in the past"). Unlike JTC, the emulation also refuses NaN and a
mis-sized effort (JTC passes them on; MuJoCo would not survive them; on the arm the adapter stops them).

LbrTorqueLaw follows lbr_fri_ros2 (lbr_fri_ros2_stack, jazzy) in FRI torque mode, then KUKA's joint
impedance controller as the FRI documentation describes it (the KUKA side is **unverified**):

    q_f[k] = q_f[k-1] + alpha (joint_position - q_f[k-1]),   alpha = 1 - exp(-dt / joint_position_tau)
    tau    = K (q_f - q) - D qd + torque,                     D = 2 zeta sqrt(K M_ii)

The filter is `lbr_fri_ros2/src/interfaces/torque_command.cpp` (buffered_command_to_fri) with
`filters.hpp`'s exponential filter; the command guard (`command_guard.cpp`, is_valid_command)
checks q_f against the position limits and the *measured* velocity against the velocity limits,
and a violation ends the FRI session. Before the first command the stack sends the measured
position with zero torque. K and the damping ratio zeta are set in LBRServer on the robot, not in
ROS; that KUKA damps the measured velocity with D = 2 zeta sqrt(K M_ii) is our reading, not KUKA's code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_dyn import paths
from robot_dyn.control.trajectory import eval_quintic, quintic
from robot_dyn.hardware_bridge import prepare_reference

SAME_NAMES = {"": ""}  # a prefix map that keeps every joint's name

FRANKA_TORQUE_RATE = 1000.0  # Nm/s per joint: libfranka's kMaxTorqueRate, franka_hardware's limitRate


@dataclass(frozen=True)
class JtcSettings:
    """JTC's parameters that shape the law, per joint in `joints` order (Nm/rad, Nm/(rad s), Nm s/rad, s)."""

    joints: tuple
    p: np.ndarray
    i: np.ndarray
    d: np.ndarray
    ff_velocity_scale: np.ndarray
    cmd_timeout: float

    @classmethod
    def from_controllers_yaml(cls, path: Path, controller: str = "fr3_arm_controller") -> "JtcSettings":
        """The controller's section of a ros2_control parameter file (hardware/franka/fr3_impedance_controllers.yaml)."""
        data = paths.read_yaml_mapping(path, ValueError)
        sections = [data.get(controller)] + [v.get(controller) for v in data.values() if isinstance(v, dict)]
        section = next((s for s in sections if isinstance(s, dict) and "ros__parameters" in s), None)
        if section is None:
            raise ValueError(f"{path}: no '{controller}: ros__parameters' section")
        params = section["ros__parameters"]
        joints = tuple(params.get("joints") or ())
        if not joints:
            raise ValueError(f"{path}: {controller}.joints: empty")
        if params.get("command_interfaces") != ["effort"]:
            raise ValueError(f"{path}: {controller}.command_interfaces: the emulated law is the effort interface's, "
                             f"got {params.get('command_interfaces')}")
        gains = params.get("gains") or {}
        values = {key: [] for key in ("p", "i", "d", "ff_velocity_scale")}
        for joint in joints:
            g = gains.get(joint)
            if not isinstance(g, dict):
                raise ValueError(f"{path}: {controller}.gains.{joint}: missing")
            for key in values:
                value = g.get(key, 0.0)
                if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                    raise ValueError(f"{path}: {controller}.gains.{joint}.{key}: expected a number >= 0, got {value!r}")
                values[key].append(float(value))
        timeout = params.get("cmd_timeout", 0.0)
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"{path}: {controller}.cmd_timeout: expected seconds >= 0, got {timeout!r}")
        return cls(joints, *(np.array(values[k]) for k in ("p", "i", "d", "ff_velocity_scale")), float(timeout))


def stable_damping(settings: JtcSettings, inertia: np.ndarray, dt: float) -> tuple[JtcSettings, list[str]]:
    """settings with each d lowered to 0.5 M_ii / dt where it exceeds it, and a note per joint changed.

    An explicit PD at 1 kHz is unstable once d dt / M_ii passes 2. franka_description's inertials carry
    no rotor inertia, so the model's last joint has M_77 of about 1e-4 kg m^2 and the arm's d of
    0.57 Nm s/rad would blow up in MuJoCo; the arm itself has the rotor's inertia. inertia: M_ii
    (kg m^2) at the start posture."""
    bound = 0.5 * np.asarray(inertia, float) / dt
    d = np.minimum(settings.d, bound)
    notes = [f"{j}: d {settings.d[k]:g} Nm s/rad is unstable against the model's {inertia[k]:.1e} kg m^2 at "
             f"{1 / dt:.0f} Hz (no rotor inertia in the model): emulated with d = {d[k]:.3g}"
             for k, j in enumerate(settings.joints) if d[k] < settings.d[k]]
    return JtcSettings(settings.joints, settings.p, settings.i, d, settings.ff_velocity_scale, settings.cmd_timeout), notes


def emulated_jtc(robot, path: Path, q0: np.ndarray, dt: float) -> tuple["JtcEffortLaw", list[str]]:
    """The JTC of the controllers file `path` for `robot` (its joints must be the controller's), starting
    at q0 (rad), at physics step dt (s); with stable_damping's notes on what it had to change."""
    from robot_dyn.dynamics.rigid_body import RigidBody

    settings = JtcSettings.from_controllers_yaml(path)
    if tuple(settings.joints) != tuple(robot.joint_names):
        raise ValueError(f"robot: {robot.name}'s joints {list(robot.joint_names)} are not the emulated controller's "
                         f"{list(settings.joints)} ({path}): use robot 'fr3'")
    settings, notes = stable_damping(settings, np.diag(RigidBody(robot).mass_matrix(q0)), dt)
    return JtcEffortLaw(settings), notes


class JtcEffortLaw:
    """joint_trajectory_controller (effort interface) + franka_hardware's torque-rate limit; see the module."""

    def __init__(self, settings: JtcSettings, torque_rate: float = FRANKA_TORQUE_RATE):
        self.settings, self.torque_rate = settings, torque_rate
        self.n = len(settings.joints)
        self.mode = "hold"  # hold | track
        self.events: list = []
        self.rejected = self.hold_events = 0
        self._q_measured = None
        self._hold = None  # the held position (rad)
        self._segment = None  # (t_before, t_point, coefficients, effort_before, point's effort, point)
        self._desired = (np.zeros(self.n), np.zeros(self.n), np.zeros(self.n), np.zeros(self.n))  # q, qd, qdd, effort
        self._integral = np.zeros(self.n)
        self._tau_prev = np.zeros(self.n)

    def observe(self, q: np.ndarray) -> None:
        """The measured position at activation: JTC holds it until the first message."""
        if self._hold is None and self._segment is None:
            self._hold = np.asarray(q, float).copy()
            zero = np.zeros(self.n)
            self._last_commanded = (0.0, (self._hold, zero, zero, zero))

    def receive(self, now: float, stamp: float, names, time_from_start: float, positions, velocities=(),
                accelerations=(), effort=()) -> bool:
        """A one-point JointTrajectory at time `now` (s); False (an event says why) if JTC would reject it."""
        try:
            point = self._point(names, positions, velocities, accelerations, effort)
            if not time_from_start > 0:
                raise ValueError(f"time_from_start: must be positive, got {time_from_start}")
            if stamp != 0 and stamp + time_from_start < now:
                raise ValueError(f"Received trajectory with non-zero start time ({stamp:.4f}) that ends in the past "
                                 f"({stamp + time_from_start:.4f} < {now:.4f})")
        except ValueError as exc:
            self.rejected += 1
            self.events.append((now, f"trajectory rejected: {exc}"))
            return False
        t_before, start_state = self._last_commanded
        t_point = (now if stamp == 0 else stamp) + time_from_start
        q0, qd0, qdd0, effort0 = start_state
        duration = max(t_point - t_before, 1e-9)
        self._segment = (t_before, t_point, quintic(q0, qd0, qdd0, point[0], point[1], point[2], duration), effort0, point)
        if self.mode != "track":
            self.events.append((now, "following trajectories"))
        self.mode, self._hold = "track", None
        return True

    def _point(self, names, positions, velocities, accelerations, effort):
        """(q, qd, qdd, effort) in the controller's joint order; ValueError naming the field."""
        ref = prepare_reference(names, positions, velocities, accelerations, effort, 0, prefix_map=SAME_NAMES,
                                target_joints=self.settings.joints)
        return [ref.q, ref.qd, ref.qdd, ref.tau_ff]

    def _sample(self, t: float):
        """The desired (q, qd, qdd, effort) at t: the current message's segment, its point, or the hold."""
        if self._segment is None:
            zero = np.zeros(self.n)
            return self._hold, zero, zero, zero
        t_before, t_point, coefficients, effort_before, point = self._segment
        if t >= t_point:
            return tuple(point)
        s = max(t - t_before, 0.0)
        q, qd, qdd = eval_quintic(coefficients, s)
        return q, qd, qdd, effort_before + (s / (t_point - t_before)) * (point[3] - effort_before)

    def torque(self, now: float, q: np.ndarray, qd: np.ndarray, dt: float) -> np.ndarray:
        st = self.settings
        if self._hold is None and self._segment is None:  # not observed yet: no command
            return self._tau_prev.copy()
        if self._segment is not None and st.cmd_timeout > 0 and now - self._segment[1] > st.cmd_timeout:
            self.events.append((now, "Aborted due to command timeout: holding the measured position"))
            self._segment, self._hold, self.mode = None, np.asarray(q, float).copy(), "hold"
            self.hold_events += 1
        q_d, qd_d, _, _ = self._sample(now)
        command_next = self._sample(now + dt)
        self._last_commanded = (now, command_next)
        error = q_d - q
        self._integral += error * dt
        tau = st.p * error + st.i * self._integral + st.d * (qd_d - qd) + st.ff_velocity_scale * command_next[1] \
            + command_next[3]
        step = self.torque_rate * dt  # franka::limitRate on the commanded torque
        tau = np.clip(tau, self._tau_prev - step, self._tau_prev + step)
        self._tau_prev = tau
        return tau.copy()

    def drain_events(self) -> list:
        events, self.events = self.events, []
        return events


@dataclass(frozen=True)
class LbrSettings:
    """KUKA's joint impedance (set in LBRServer) and lbr_fri_ros2's command path, per joint (Nm/rad, -, s, rad, rad/s)."""

    stiffness: np.ndarray
    damping_ratio: float
    joint_position_tau: float
    q_min: np.ndarray
    q_max: np.ndarray
    qd_max: np.ndarray


class LbrTorqueLaw:
    """KUKA joint impedance with the torque overlay, fed LBRTorqueCommand fields; see the module."""

    def __init__(self, settings: LbrSettings, inertia: np.ndarray):
        """inertia: M_ii at the start posture (kg m^2), for KUKA's damping from its ratio."""
        self.settings = settings
        self.damping = 2.0 * settings.damping_ratio * np.sqrt(settings.stiffness * np.asarray(inertia, float))
        self.n = len(settings.stiffness)
        self.mode = "hold"  # hold (no command yet) | track | stopped (the command guard ended the session)
        self.events: list = []
        self.rejected = self.hold_events = 0
        self._target = None  # the last command's (joint_position, torque)
        self._q_f = None  # the filtered setpoint FRI sends (rad)
        self._torque = np.zeros(self.n)

    def observe(self, q: np.ndarray) -> None:
        if self._q_f is None:
            self._q_f = np.asarray(q, float).copy()

    def receive(self, now: float, joint_position, torque) -> bool:
        """An LBRTorqueCommand's fields (lbr_A1..A7 order); False if it has the wrong size. A NaN command
        is skipped, as upstream does (the previous one stays)."""
        q, tau = np.asarray(joint_position, float).reshape(-1), np.asarray(torque, float).reshape(-1)
        if q.size != self.n or tau.size != self.n:
            self.rejected += 1
            self.events.append((now, f"command rejected: joint_position and torque need {self.n} values each"))
            return False
        if self.mode == "stopped" or not (np.all(np.isfinite(q)) and np.all(np.isfinite(tau))):
            return False
        if self.mode == "hold":
            self.events.append((now, "commanding"))
        self._target, self.mode = (q, tau), "track"
        return True

    def torque(self, now: float, q: np.ndarray, qd: np.ndarray, dt: float) -> np.ndarray:
        st = self.settings
        if self._q_f is None:
            self.observe(q)
        if self.mode == "track":
            alpha = 1.0 - np.exp(-dt / st.joint_position_tau) if st.joint_position_tau > 0 else 1.0
            self._q_f = self._q_f + alpha * (self._target[0] - self._q_f)
            self._torque = self._target[1]
            outside = (self._q_f < st.q_min) | (self._q_f > st.q_max) | (np.abs(qd) > st.qd_max)
            if outside.any():  # lbr_fri_ros2 throws "Invalid command.": the session ends, the robot stops
                self.events.append((now, f"Invalid command (joints {np.flatnonzero(outside).tolist()}): LBR left "
                                         "COMMANDING_ACTIVE, holding the measured position"))
                self.mode, self._q_f, self._torque = "stopped", np.asarray(q, float).copy(), np.zeros(self.n)
                self.hold_events += 1
        return st.stiffness * (self._q_f - q) - self.damping * qd + self._torque

    def drain_events(self) -> list:
        events, self.events = self.events, []
        return events
