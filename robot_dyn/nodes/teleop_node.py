"""teleop node: a person's device (or the scripted operator) -> /controller/twist_command.

While the device is enabled (its dead-man held, a key pressed, the script running) it sends a
unitless geometry_msgs/TwistStamped at rate_hz, stamped with the graph's clock, in the base or
end-effector frame; the controller scales, limits and follows it through the safety filter. When
the dead-man is released it sends one zero command (the arm brakes at once) and then nothing (the
controller's timeout would stop it anyway). A missing device stops the node at start with a
message naming what to install or plug in.
"""
from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import String

from robot_dyn.bringup import schema
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.nodes import wire
from robot_dyn.nodes.events import EPISODE_BEGUN, EVENTS_QOS, Events
from robot_dyn.nodes.messages import planar_pose, pose_to_arrays, twist_msg
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.tasks import load_task
from robot_dyn.teleop.devices import DeviceInput, JoyMapping, Keyboard, KEY_HELP, SpaceMouse
from robot_dyn.teleop.scripted import OperatorSettings, ScriptedOperator, load_script, waypoints_from_script
from robot_dyn.teleop.shaping import ShapingSettings, shape

DEFAULTS = schema.defaults(schema.TELEOP)
DESCRIPTIONS = schema.descriptions(schema.TELEOP)
DEVICES = ("joy", "spacemouse", "keyboard", "scripted", "expert")
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # 2 s of commands: a recorder that fell behind gets them resent


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        robot = load_robot(p["robot"])
        if p["device"] not in DEVICES:
            raise ValueError(f"parameter 'device' must be one of {DEVICES}, got '{p['device']}'")
        if p["frame"] not in ("base", "ee"):
            raise ValueError(f"parameter 'frame' must be 'base' or 'ee', got '{p['frame']}'")
        if not p["rate_hz"] > 0:
            raise ValueError(f"parameter 'rate_hz' must be positive, got {p['rate_hz']}")
        # the scripted operator and the experts aim in the base frame
        self.frame_id = robot.base_link if p["frame"] == "base" or p["device"] in ("scripted", "expert") else robot.ee_frame
        self.shaping = ShapingSettings(p["deadband"], tuple(p["axis_scales"])).validated()
        self.device_name = p["device"]
        self.device = None  # SpaceMouse | Keyboard
        self.joy: DeviceInput | None = None  # the last /joy message, mapped
        self.joy_received = -np.inf  # monotonic s: a silent joystick (joy_node gone) must not keep the arm moving
        self.joy_timeout = p["joy_timeout_s"]
        self.operator: ScriptedOperator | None = None
        self.pose = None  # the controller's desired pose (position m, rotation), base frame
        self.enabled = False
        self.commands = 0
        self.twist_pub = self.create_publisher(TwistStamped, "/controller/twist_command", RELIABLE)
        self.event = Events(self, "/teleop/events")
        if self.device_name == "joy":
            if any(v != int(v) for v in p["joy_axes"]):
                raise ValueError(f"parameter 'joy_axes' must hold axis indices (integers), got {p['joy_axes']}")
            self.mapping = JoyMapping(tuple(int(v) for v in p["joy_axes"]), p["deadman_button"]).validated()
            self.create_subscription(Joy, "/joy", self.on_joy, 10)
        elif self.device_name == "spacemouse":
            self.device = SpaceMouse(p["deadman_button"])
        elif self.device_name == "keyboard":
            self.device = Keyboard(p["keyboard_hold_s"])
            print(KEY_HELP, flush=True)
        elif self.device_name == "expert":
            if not p["task"]:
                raise ValueError("device 'expert' needs parameter 'task' (the graph sets it from the sim's scene)")
            task = load_task(p["task"], p["task_config"] or None)
            self.expert = task.expert(p["seed"], linear_scale=p["twist_linear_scale"], angular_scale=p["twist_angular_scale"])
            self.kinematics = RigidBody(with_tool(robot, task.tool))
            self.tool = task.tool
            # the expert decides at its task's rate; the node repeats its latest decision at rate_hz, as a
            # device streams its state (the controller stops a command older than its twist timeout)
            self.decision_period = 1.0 / task.teleop_rate_hz
            self.decided_at, self.decision = -float("inf"), None
            self.joint_positions = wire.JointPositions(robot.joint_names)
            self.measured = None  # the last /joint_states (CDR bytes)
            self.create_subscription(JointState, "/joint_states", self.on_joint_state, 10, raw=True)
            self.create_subscription(PoseStamped, "/controller/desired_pose", self.on_desired_pose, 10)
            self.objects = {}  # name -> the last planar pose (x, y, yaw) the sim published of the scene's objects
            self.object_names = task.object_names
            for name in task.object_names:
                self.create_subscription(PoseStamped, f"/task/{name}", self._object_receiver(name), 10)
            self.recording = not p["expert_waits_for_recording"]  # whether the expert may start
            if not self.recording:  # the recorder's events are kept for late readers (EVENTS_QOS)
                self.create_subscription(String, "/recorder/events", self.on_recorder_event, EVENTS_QOS)
            self.event(f"expert for '{p['task']}' ready (seed {p['seed']})"
                       + ("" if self.recording else ": it starts when the recorder has begun an episode"))
        else:
            if not p["script"]:
                raise ValueError("device 'scripted' needs parameter 'script' (a waypoints file)")
            self.script = load_script(p["script"])
            self.operator_settings = OperatorSettings(linear_scale=p["twist_linear_scale"], angular_scale=p["twist_angular_scale"])
            self.seed = p["seed"]
            self.create_subscription(PoseStamped, "/controller/desired_pose", self.on_desired_pose, 10)
        self.create_timer(1.0 / p["rate_hz"], self.tick)
        self.get_logger().info(f"teleop: {self.device_name} -> /controller/twist_command in '{self.frame_id}' at {p['rate_hz']:g} Hz")

    def on_joy(self, msg: Joy) -> None:
        self.joy_received = time.monotonic()
        try:
            self.joy = self.mapping.read(msg.axes, msg.buttons)
        except ValueError as exc:
            self.joy = None
            self.get_logger().error(str(exc), throttle_duration_sec=5.0)

    def on_recorder_event(self, msg: String) -> None:
        if not self.recording and EPISODE_BEGUN.match(msg.data):
            self.recording = True
            self.event("expert starts: the recorder is recording")

    def on_joint_state(self, data: bytes) -> None:
        self.measured = data  # decoded when the expert looks (at rate_hz, not the states' 500 Hz)

    def _measured_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The flange's (position m, rotation) in the last /joint_states, base frame."""
        return self.kinematics.ee_pose(self.joint_positions(self.measured))

    def _object_receiver(self, name: str):
        def receive(msg: PoseStamped) -> None:
            self.objects[name] = planar_pose(msg)
        return receive

    def on_desired_pose(self, msg: PoseStamped) -> None:
        self.pose = pose_to_arrays(msg.pose)
        if self.device_name == "expert":
            return
        if self.operator is None:
            self.operator = ScriptedOperator(waypoints_from_script(self.script, self.pose[0]), self.operator_settings, self.seed)
            self.event(f"script started: {len(self.script)} waypoints")

    def _read(self) -> DeviceInput | None:
        """The device's axes now, already a command for the scripted operator; None: nothing to send."""
        now = self.get_clock().now().nanoseconds * 1e-9
        if self.device_name == "joy":
            if self.joy is not None and time.monotonic() - self.joy_received > self.joy_timeout:
                self.get_logger().warning(f"/joy silent for {self.joy_timeout:g} s: stopping (is joy_node running, "
                                          "with autorepeat_rate > 0?)", throttle_duration_sec=5.0)
                self.joy = None
            return self.joy
        if self.device_name == "spacemouse":
            try:
                return self.device.read()
            except OSError as exc:  # unplugged: stop, and say so
                self.get_logger().error(f"SpaceMouse: {exc}", throttle_duration_sec=5.0)
                return None
        if self.device_name == "keyboard":
            return self.device.read(now)
        if self.device_name == "expert":
            return self._expert(now)
        if self.operator is None or self.operator.done:
            return None
        command = self.operator.command(now, *self.pose)
        if self.operator.done:
            self.event("script done")
        return DeviceInput(command if command is not None else np.zeros(6), command is not None and not self.operator.done)

    def _expert(self, now: float) -> DeviceInput | None:
        """The task's expert, looking at the measured tool tip, the desired pose and the scene's objects."""
        if (not self.recording or self.measured is None or self.pose is None or self.expert.done
                or len(self.objects) < len(self.object_names)):
            return None
        if now - self.decided_at < self.decision_period - 1e-9:
            return self.decision
        (p, R), (pd, Rd) = self._measured_pose(), self.pose
        command = self.expert.command(now, self.tool.tip(p, R), R, self.tool.tip(pd, Rd), self.objects)
        self.decided_at = now
        if self.expert.done:
            self.event("expert done")
        self.decision = DeviceInput(command if command is not None else np.zeros(6), command is not None and not self.expert.done)
        return self.decision

    def tick(self) -> None:
        reading = self._read()
        if reading is None or not reading.enabled:
            if self.enabled:  # released: one stop command, then silence
                self.publish(np.zeros(6))
            self.enabled = False
            return
        self.enabled = True
        self.publish(reading.axes if self.device_name in ("scripted", "expert") else shape(reading.axes, self.shaping))

    def publish(self, command: np.ndarray) -> None:
        self.twist_pub.publish(twist_msg(command, self.get_clock().now().nanoseconds * 1e-9, self.frame_id))
        self.commands += 1

    def on_shutdown(self) -> None:
        if self.device is not None:
            self.device.close()


def main(args=None):
    run(TeleopNode, args)


if __name__ == "__main__":
    main()
