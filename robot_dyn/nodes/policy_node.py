"""policy node: a trained visuomotor policy in the teleoperator's place -> /controller/twist_command.

It takes the policy's camera images (/cameras/<name>/color/image_raw) and /joint_states, steps the
policy core (robot_dyn.imitation.policy.PolicyRunner) at the policy's own rate on the graph's clock,
and streams its latest command at rate_hz as a device does, so everything still goes through the
controller and the safety filter. It acts once the controller runs (its /controller/desired_pose).
A checkpoint for another task, robot, joint order or camera set
is refused at start with the reason (the node exits); stale or missing images or states send nothing
(the controller's twist timeout stops the arm) and say so on /policy/events. /diagnostics: the
inference time p50/p99 (ms), steps, stale waits and commands sent.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState

from robot_dyn.bringup import schema
from robot_dyn.nodes import wire
from robot_dyn.nodes.camera_messages import camera_topics, color_from_msg, stamp_ns
from robot_dyn.nodes.events import Events
from robot_dyn.nodes.messages import diagnostics_msg, twist_msg
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot

DEFAULTS = schema.defaults(schema.POLICY)
DESCRIPTIONS = schema.descriptions(schema.POLICY)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # as the teleop node's commands


class PolicyNode(Node):
    def __init__(self):
        super().__init__("policy")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        import torch

        from robot_dyn.imitation.policy import PolicyRunner, check_compatible, load_policy

        # torch's intra-op threads spin while they wait: beside the sim and the controller on a few cores they
        # took the cores from them and from each other (inference p99 0.8 s on 2 cores with 2 threads)
        torch.set_num_threads(int(p["torch_threads"]))

        if not p["checkpoint"]:
            raise ValueError("parameter 'checkpoint' must name a policy folder (robot-dyn train policy)")
        if not p["rate_hz"] > 0 or not p["max_image_age_s"] > 0:
            raise ValueError("parameters 'rate_hz' and 'max_image_age_s' must be positive")
        robot = load_robot(p["robot"])
        policy = load_policy(Path(p["checkpoint"]))
        graph_cameras = [c for c in p["cameras"].split(",") if c]
        check_compatible(policy.meta, task=p["task"] or None, robot=p["robot"], joint_names=robot.joint_names,
                         cameras=graph_cameras)
        self.runner = PolicyRunner(policy, seed=p["seed"])
        self.frame_id = robot.base_link
        self.period = 1.0 / float(policy.meta["fps"])  # s between decisions, graph clock
        self.max_age = p["max_image_age_s"]
        self.images = {}  # camera -> (stamp s, Image message): decoded when the policy looks
        self.measured = None  # the last /joint_states (CDR bytes)
        self.joint_positions = wire.JointPositions(robot.joint_names)
        self.decided_at, self.command = -np.inf, None
        self.steps, self.stale, self.sent = 0, 0, 0
        self.twist_pub = self.create_publisher(TwistStamped, "/controller/twist_command", RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.event = Events(self, "/policy/events")
        for camera in self.runner.cameras:
            self.create_subscription(Image, camera_topics(camera)["color"], self._image_receiver(camera), 2)
        self.create_subscription(JointState, "/joint_states", self.on_joint_state, 10, raw=True)
        # the controller's desired pose says it runs (it refuses commands until it has the robot's state)
        self.controller_ready = False
        self.create_subscription(PoseStamped, "/controller/desired_pose", self.on_desired_pose, 10)
        self.create_timer(1.0 / p["rate_hz"], self.tick)
        self.diagnostics_period = p["diagnostics_period_s"]
        self.last_diagnostics = time.monotonic()
        self.event(f"policy ready: {p['checkpoint']} ({policy.config.head} head, {policy.meta['encoder']['method']} "
                   f"encoder, cameras {list(self.runner.cameras)}, {policy.meta['fps']:g} Hz)")

    def _image_receiver(self, camera: str):
        def receive(msg: Image) -> None:
            self.images[camera] = (stamp_ns(msg.header.stamp) * 1e-9, msg)
        return receive

    def on_desired_pose(self, msg: PoseStamped) -> None:
        self.controller_ready = True

    def on_joint_state(self, data: bytes) -> None:
        self.measured = data

    def _decide(self, now: float) -> np.ndarray | None:
        """The policy's command for now, or None (nothing fresh to look at: the arm is left to stop)."""
        if not self.controller_ready:
            return None
        fresh = {c: m for c, (t, m) in self.images.items() if now - t <= self.max_age}
        if self.measured is None or len(fresh) < len(self.runner.cameras):
            self.stale += 1
            if self.steps and self.stale % 10 == 1:
                self.event(f"waiting: images of {sorted(set(self.runner.cameras) - set(fresh))} missing or older than "
                           f"{self.max_age:g} s", warn=True)
            return None
        images = {c: color_from_msg(fresh[c], f"/cameras/{c}/color") for c in self.runner.cameras}
        command = self.runner.step(images, self.joint_positions(self.measured))
        self.steps += 1
        if self.steps == 1:
            self.event("policy acting")
        return command

    def tick(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        if now - self.decided_at >= self.period - 1e-9:
            try:
                self.command = self._decide(now)
            except ValueError as exc:  # a malformed observation: nothing is sent for it
                self.command = None
                self.event(f"observation refused: {exc}", warn=True)
            self.decided_at = now
        if self.command is not None:  # stamped when sent: an inference's time counts against the controller's timeout
            self.twist_pub.publish(twist_msg(self.command, self.get_clock().now().nanoseconds * 1e-9, self.frame_id))
            self.sent += 1
        if time.monotonic() - self.last_diagnostics >= self.diagnostics_period:
            self.last_diagnostics = time.monotonic()
            infer = self.runner.infer_ms or [float("nan")]
            self.diag_pub.publish(diagnostics_msg(now, "policy", {
                "policy_infer_ms_p50": float(np.percentile(infer, 50)), "policy_infer_ms_p99": float(np.percentile(infer, 99)),
                "policy_steps": self.steps, "policy_stale_waits": self.stale, "commands_sent": self.sent}))

    def on_shutdown(self) -> None:
        pass


def main(args=None):
    run(PolicyNode, args)


if __name__ == "__main__":
    main()
