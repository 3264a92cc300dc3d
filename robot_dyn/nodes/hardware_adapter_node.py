"""hardware_adapter node: forwards /impedance_reference to a real arm's real-time controller.

franka: a one-point JointTrajectory for joint_trajectory_controller (effort interface),
        which runs the impedance law at 1 kHz in ros2_control (hardware/README.md).
kuka:   an lbr_fri_idl/LBRTorqueCommand for FRI torque mode, where KUKA's own joint
        impedance controller runs the law; with a hold command when references go stale
        (nothing before the first reference: the stack then holds the measured position).
It also renames the arm's joint states back to the URDF's names, at state_rate_hz (the
arms publish at 1 kHz; the outer loop runs at 500 Hz). The conversions are the pure
functions of robot_dyn.hardware_bridge.

Staleness: a reference's age counts from its stamp (the time its point applies); a stamp of 0
(JTC's "start on receipt", e.g. one published by hand) or use_reference_stamp: false (the
controller's clock is another machine's) counts from its arrival. franka: stale_timeout_s must
stay below horizon_s, or JTC drops as "ends in the past" what the adapter let through.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from robot_dyn import hardware_bridge as bridge
from robot_dyn.bringup import schema
from robot_dyn.control.impedance import ImpedanceSettings, ReferenceRejected, validate_reference
from robot_dyn.nodes import wire
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot
from robot_dyn.timing import Decimator

DEFAULTS = schema.defaults(schema.HARDWARE_ADAPTER)
TARGETS = {
    "franka": {"output": bridge.FRANKA_COMMAND_TOPIC, "state": bridge.FRANKA_STATE_TOPIC,
               "prefix": bridge.FRANKA_PREFIX_MAP, "robot": "fr3", "joints": bridge.FR3_JOINTS},
    "kuka": {"output": bridge.KUKA_COMMAND_TOPIC, "state": bridge.KUKA_STATE_TOPIC, "prefix": bridge.KUKA_PREFIX_MAP,
             "robot": "iiwa14", "joints": bridge.LBR_JOINTS},
}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
MAX_POSITION_ERROR = ImpedanceSettings.max_position_error  # rad, as the sim's robot layer


class HardwareAdapterNode(Node):
    def __init__(self):
        super().__init__("hardware_adapter")
        declare_parameters(self, DEFAULTS, schema.descriptions(schema.HARDWARE_ADAPTER))
        p = parameter_values(self, DEFAULTS)
        if p["target"] not in TARGETS:
            raise ValueError(f"parameter 'target' must be one of {sorted(TARGETS)}, got '{p['target']}'")
        target = TARGETS[p["target"]]
        self.p = p
        self.prefix_map = bridge.parse_prefix_map(p["joint_prefix_map"].split(",")) if p["joint_prefix_map"] else target["prefix"]
        # The same checks as the sim's robot layer (limits, NaN, joints, discontinuity) before anything is
        # forwarded; the arm's controller has its own, but a bad reference should not reach it at all.
        self.robot = load_robot(p["robot"] or target["robot"])
        self.measured_urdf_order = None  # measured positions in URDF joint order (from the state topic)
        self._last_rejection = ("", -1.0)
        self._check_parameters()
        self.limits = bridge.limits_in_target_order(self.robot.joint_names, self.robot.q_min, self.robot.q_max,
                                                    self.prefix_map, target["joints"])
        self.state_decimator = Decimator(1.0 / p["state_rate_hz"])
        self.last_stamp_ns = None  # the newest forwarded reference's freshness stamp (hardware_bridge.freshness_stamp_ns)
        self.hold = None  # kuka: the hold command, captured once when references went stale
        self.measured = None  # last measured positions in controller joint order
        output = p["output_topic"] or target["output"]
        if p["target"] == "franka":
            self.pub = self.create_publisher(JointTrajectory, output, RELIABLE)
            self.jtc_encoder = wire.ReferenceEncoder(target["joints"], round(p["horizon_s"] * 1e9), p["include_effort"])
        else:
            try:
                from lbr_fri_idl.msg import LBRTorqueCommand
            except ImportError as exc:
                raise RuntimeError("target 'kuka' needs lbr_fri_idl: build lbr_fri_ros2_stack in your workspace") from exc
            self.lbr_msg = LBRTorqueCommand
            self.pub = self.create_publisher(LBRTorqueCommand, output, RELIABLE)
            self.create_timer(0.01, self.kuka_watchdog)
        # Both streams (500 Hz and more) go as bytes, read and written by robot_dyn/nodes/wire.py: with
        # rclpy's message objects this forwarder took half a core, and with one core busy it fell 20-36 ms
        # behind, so references went stale on their way to the arm.
        self.state_decoder, self.reference_decoder = wire.JointStateDecoder(), wire.ReferenceDecoder()
        self._state_encoder = (None, None)  # (the renamed names, frame and arrays present; their encoder)
        self.state_pub = self.create_publisher(JointState, p["state_output_topic"], RELIABLE)
        self.create_subscription(JointTrajectory, p["input_topic"], self.on_reference, RELIABLE, raw=True)
        self.create_subscription(JointState, p["state_input_topic"] or target["state"], self.on_state, RELIABLE,
                                 raw=True)
        self.scheduling = "realtime"  # run() applies it: in the command path, like the controller on the arm's machine
        self.get_logger().info(f"forwarding {p['input_topic']} -> {output} ({p['target']})")

    def _check_parameters(self) -> None:
        """Fail at start, naming the parameter, rather than in a callback later."""
        p, zero = self.p, [0.0] * self.robot.n_joints
        names = list(self.robot.joint_names)
        bridge.is_stale(0, 0, p["stale_timeout_s"])
        if not p["state_rate_hz"] > 0:
            raise ValueError(f"parameter 'state_rate_hz' must be positive, got {p['state_rate_hz']}")
        if p["target"] == "franka":
            try:
                bridge.check_franka_timing(p["stale_timeout_s"], p["horizon_s"], p["use_reference_stamp"])
            except ValueError as exc:
                raise ValueError(f"parameter {exc}") from None
            bridge.franka_jtc_command(names, self.robot.home, zero, zero, zero, 0, prefix_map=self.prefix_map,
                                      horizon_s=p["horizon_s"], effort_limit=p["effort_limit"])
        else:
            bridge.kuka_torque_command(names, self.robot.home, zero, zero, zero, 0, prefix_map=self.prefix_map,
                                       lookahead_s=p["lookahead_s"], damping_ff=p["damping_ff"], effort_limit=p["effort_limit"])

    def on_reference(self, data: bytes) -> None:
        try:
            msg = self.reference_decoder.decode(data)
        except wire.WireError as exc:
            self._reject(str(exc))
            return
        if len(msg.points) != 1:
            self._reject(f"points: expected 1, got {len(msg.points)}")
            return
        pt, p = msg.points[0], self.p
        stamp_ns = msg.stamp_ns
        now_ns = self.get_clock().now().nanoseconds
        fresh_ns = bridge.freshness_stamp_ns(stamp_ns, now_ns, p["use_reference_stamp"])
        try:
            ref = validate_reference(self.robot, stamp_ns * 1e-9, msg.joint_names, pt.positions, pt.velocities,
                                     pt.accelerations, pt.effort)
            if bridge.is_stale(fresh_ns, now_ns, p["stale_timeout_s"]):
                raise ReferenceRejected(f"header.stamp: reference is stale ({(now_ns - fresh_ns) * 1e-6:.1f} ms old, "
                                        f"stale_timeout_s {p['stale_timeout_s']})")
            if self.measured_urdf_order is None:
                raise ReferenceRejected("no joint state from the arm yet")
            gap = np.abs(ref.q - self.measured_urdf_order)
            if gap.max() > MAX_POSITION_ERROR:
                raise ReferenceRejected(f"positions: {gap.max():.3f} rad from the measured position: a discontinuity")
        except ReferenceRejected as exc:
            self._reject(str(exc))
            return
        args = (msg.joint_names, pt.positions, pt.velocities, pt.accelerations, pt.effort, stamp_ns)
        try:
            if p["target"] == "franka":
                cmd = bridge.franka_jtc_command(*args, prefix_map=self.prefix_map, horizon_s=p["horizon_s"],
                                                extrapolate=p["extrapolate"], include_effort=p["include_effort"],
                                                use_reference_stamp=p["use_reference_stamp"],
                                                effort_limit=p["effort_limit"], position_limits=self.limits)
                out = self.jtc_encoder.encode(cmd.stamp[0] * 1_000_000_000 + cmd.stamp[1], cmd.positions,
                                              cmd.velocities, cmd.accelerations, cmd.effort)
            else:
                cmd = bridge.kuka_torque_command(*args, prefix_map=self.prefix_map, lookahead_s=p["lookahead_s"],
                                                 damping_ff=p["damping_ff"], effort_limit=p["effort_limit"],
                                                 position_limits=self.limits)
                out = self.lbr_msg(joint_position=cmd.joint_position, torque=cmd.torque)
        except ValueError as exc:
            self._reject(str(exc))
            return
        self.last_stamp_ns, self.hold = fresh_ns, None
        self.pub.publish(out)

    def _reject(self, reason: str) -> None:
        """Log a rejection; a repeat of the same reason at most once a second (a new reason at once)."""
        now = self.get_clock().now().nanoseconds * 1e-9
        if reason != self._last_rejection[0] or now - self._last_rejection[1] > 1.0:
            self.get_logger().error(f"reference rejected: {reason}")
            self._last_rejection = (reason, now)

    def on_state(self, data: bytes) -> None:
        try:
            msg = self.state_decoder.decode(data)
            names, pos, vel, eff = bridge.joint_state_to_project(msg.name, msg.position, msg.velocity, msg.effort, self.prefix_map)
        except ValueError as exc:  # WireError too
            self.get_logger().error(f"joint state dropped: {exc}", throttle_duration_sec=1.0)
            return
        stamp = msg.stamp_ns * 1e-9  # the arm's 1 kHz clock; 0: arrival
        if self.state_decimator.due(stamp if stamp > 0 else self.get_clock().now().nanoseconds * 1e-9):
            self.state_pub.publish(self._encode_state(names, msg.frame_id, bool(vel), bool(eff)).encode(
                msg.stamp_ns, pos, vel, eff))
        if all(j in names for j in self.robot.joint_names):
            self.measured_urdf_order = np.array([pos[names.index(j)] for j in self.robot.joint_names])
        by_name = dict(zip(msg.name, msg.position))
        if all(j in by_name for j in bridge.LBR_JOINTS):
            self.measured = np.array([by_name[j] for j in bridge.LBR_JOINTS])

    def _encode_state(self, names: list, frame_id: str, velocity: bool, effort: bool) -> wire.JointStateEncoder:
        """The encoder of renamed states of this shape (made again only when the arm's message changes)."""
        key = (names, frame_id, velocity, effort)
        if self._state_encoder[0] != key:
            self._state_encoder = (key, wire.JointStateEncoder(names, frame_id, velocity, effort))
        return self._state_encoder[1]

    def kuka_watchdog(self) -> None:
        """Without fresh references, command the position measured when they stopped (captured once)."""
        if self.last_stamp_ns is None or self.measured is None:
            return
        now_ns = self.get_clock().now().nanoseconds
        if bridge.is_stale(self.last_stamp_ns, now_ns, self.p["stale_timeout_s"]):
            if self.hold is None:
                self.hold = bridge.kuka_hold_command(self.measured)
                self.get_logger().warning("references stale: holding the measured position")
            self.pub.publish(self.lbr_msg(joint_position=self.hold.joint_position, torque=self.hold.torque))

    def on_shutdown(self) -> None:
        pass


def main(args=None):
    run(HardwareAdapterNode, args)


if __name__ == "__main__":
    main()
