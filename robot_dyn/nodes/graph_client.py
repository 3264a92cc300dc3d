"""A client of the running graph: sends goals and records what the graph publishes.

Used by the main job (robot-dyn sim), the benchmarks and the graph tests, in the
process that started the graph. Recording is plain lists of (t, array) so the
caller can compute metrics without ROS.
"""
from __future__ import annotations

import os
import re
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState, Joy
from std_msgs.msg import Bool, Float64, String
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from robot_dyn.bringup.processes import isolated_ros_env
from robot_dyn.control.trajectory import CartesianPath
from robot_dyn.nodes import wire
from robot_dyn.nodes.messages import cartesian_path_msg, rotation_to_quaternion, to_stamp

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
EVENTS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)  # history too


class GraphClient:
    """Owns an rclpy context in the graph's domain and one node; call close() when done.

    It records every joint state, and the controller's references when `record_references` (else
    only the first, which tells the controller is answering). A recorder must not slow what it
    records: while it exists, the thread that made it and the DDS threads it starts run under a
    Linux policy whose wakeups do not preempt the sim and the controller: `policy` 'batch'
    (SCHED_BATCH: a fair share, for lockstep, where the graph waits for no one), or 'idle'
    (SCHED_IDLE: only otherwise idle CPU, for real time, where the loop's latency comes first).
    A client woken twice a tick took their cores: with 'batch' the lockstep graph ran 15 % faster
    on 14 % less CPU. close() restores the thread's policy."""

    def __init__(self, domain_id: int, name: str = "graph_client", record_references: bool = False,
                 policy: str = "batch", state_topic: str = "/joint_states"):
        os.environ.update(isolated_ros_env(domain_id))  # this process's DDS participant joins the graph's domain only
        self._policy = _set_policy(policy)
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node(name, context=self.context)
        self.executor = EventsExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.states: list[tuple[float, np.ndarray, np.ndarray, np.ndarray]] = []  # t, q, qd, tau
        self.references: list[tuple[float, np.ndarray, np.ndarray]] = []  # t, q_d, tau_ff
        self.record_references = record_references
        self.robot_events: list[str] = []
        self.controller_events: list[str] = []
        self.teleop_events: list[str] = []
        self.recorder_events: list[str] = []
        self.policy_events: list[str] = []
        self.search_events: list[str] = []
        self.dynamics_planner_events: list[str] = []
        self.task_scores: list[float] = []  # /task/score of a task scene, in order (coverage, inserted depth)
        self.task_success: list[bool] = []  # /task/success, in order
        self.diagnostics: dict[str, tuple[int, dict]] = {}  # status name -> (how many so far, the last values)
        self.joint_names: list[str] | None = None
        n = self.node
        self._states = wire.JointStateDecoder()  # states and references come as bytes (robot_dyn/nodes/wire.py)
        self._references = wire.ReferenceDecoder()
        n.create_subscription(JointState, state_topic, self._on_state, RELIABLE, raw=True)
        self._reference_sub = n.create_subscription(JointTrajectory, "/impedance_reference", self._on_reference, RELIABLE,
                                                    raw=True)
        n.create_subscription(String, "/robot_layer/events", lambda m: self.robot_events.append(m.data), EVENTS)
        n.create_subscription(String, "/controller/events", lambda m: self.controller_events.append(m.data), EVENTS)
        n.create_subscription(String, "/teleop/events", lambda m: self.teleop_events.append(m.data), EVENTS)
        n.create_subscription(String, "/recorder/events", lambda m: self.recorder_events.append(m.data), EVENTS)
        n.create_subscription(String, "/policy/events", lambda m: self.policy_events.append(m.data), EVENTS)
        n.create_subscription(String, "/search/events", lambda m: self.search_events.append(m.data), EVENTS)
        n.create_subscription(String, "/dynamics_planner/events", lambda m: self.dynamics_planner_events.append(m.data),
                              EVENTS)
        n.create_subscription(Float64, "/task/score", lambda m: self.task_scores.append(m.data), 10)
        n.create_subscription(Bool, "/task/success", lambda m: self.task_success.append(m.data), 10)
        self._services = {}  # service name -> its Trigger client
        n.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, RELIABLE)
        self.joint_goal_pub = n.create_publisher(JointState, "/controller/joint_goal", RELIABLE)
        self.pose_goal_pub = n.create_publisher(PoseStamped, "/controller/pose_goal", RELIABLE)
        self.path_pub = n.create_publisher(MultiDOFJointTrajectory, "/controller/cartesian_path", RELIABLE)
        self.twist_pub = n.create_publisher(TwistStamped, "/controller/twist_command", RELIABLE)
        self.joy_pub = n.create_publisher(Joy, "/joy", 10)
        self.reference_pub = n.create_publisher(JointTrajectory, "/impedance_reference", RELIABLE)
        self.obstacle_pub = n.create_publisher(MarkerArray, "/safety/obstacles", RELIABLE)

    def _on_state(self, data: bytes) -> None:
        msg = self._states.decode(data)
        self.joint_names = msg.name
        self.states.append((msg.stamp_ns * 1e-9, msg.position, msg.velocity, msg.effort))

    def _on_reference(self, data: bytes) -> None:
        msg = self._references.decode(data)
        if msg.points and (self.record_references or not self.references):
            self.references.append((msg.stamp_ns * 1e-9, msg.points[0].positions, msg.points[0].effort))
        if not self.record_references and self._reference_sub is not None:
            self.node.destroy_subscription(self._reference_sub)  # the first one is enough
            self._reference_sub = None

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            count = self.diagnostics.get(status.name, (0, None))[0]
            self.diagnostics[status.name] = (count + 1, {kv.key: kv.value for kv in status.values})

    def next_diagnostics(self, name: str, wall_timeout: float = 10.0) -> dict:
        """The values of the next /diagnostics status `name` (published once a second), as strings."""
        seen = self.diagnostics.get(name, (0, None))[0]
        self.spin_until(lambda: self.diagnostics.get(name, (0, None))[0] > seen, wall_timeout, f"diagnostics '{name}'")
        return self.diagnostics[name][1]

    # --- waiting -----------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return self.states[-1][0] if self.states else float("nan")

    def spin_until(self, predicate, wall_timeout: float, what: str) -> None:
        """Spin until predicate() is true; raise TimeoutError naming `what` after wall_timeout s."""
        deadline = time.monotonic() + wall_timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {wall_timeout:.0f} s waiting for {what}")
            self.executor.spin_once(timeout_sec=0.01)

    def wait_for_state(self, wall_timeout: float = 60.0) -> None:
        self.spin_until(lambda: bool(self.states), wall_timeout, "the first /joint_states")

    def wait_sim_time(self, t: float, wall_timeout: float) -> None:
        self.spin_until(lambda: self.states and self.sim_time >= t, wall_timeout, f"sim time {t:.2f} s")

    def wait_for_event(self, events: list, prefix: str, wall_timeout: float = 10.0, start: int = 0,
                       pattern: str | None = None) -> str:
        """The first of `events` from index `start` on that starts with `prefix` (or matches the regular
        expression `pattern` at its start), waiting for it."""
        match = (lambda e: re.match(pattern, e)) if pattern else (lambda e: e.startswith(prefix))
        self.spin_until(lambda: any(match(e) for e in events[start:]), wall_timeout, f"an event '{pattern or prefix}...'")
        return next(e for e in events[start:] if match(e))

    # --- goals -------------------------------------------------------------
    def send_joint_goal(self, joint_names, q) -> None:
        msg = JointState()
        msg.name, msg.position = list(joint_names), [float(v) for v in q]
        self.joint_goal_pub.publish(msg)

    def send_pose_goal(self, position, rotation, frame_id: str = "") -> None:
        msg = PoseStamped()
        msg.header.frame_id = frame_id
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in position)
        o = msg.pose.orientation
        o.x, o.y, o.z, o.w = rotation_to_quaternion(np.asarray(rotation))
        self.pose_goal_pub.publish(msg)

    def send_cartesian_path(self, path: CartesianPath, ee_frame: str, start_now: bool = False) -> None:
        """The path as a MultiDOFJointTrajectory, stamped with its start (or 0: it starts when the controller takes it)."""
        self.path_pub.publish(cartesian_path_msg(path, ee_frame, 0.0 if start_now else path.t0))

    def send_twist(self, linear, angular=(0.0, 0.0, 0.0), frame_id: str = "", stamp: float | None = None) -> None:
        """A twist command (the controller's twist_command_type units), stamped with the last state's
        sim time unless `stamp` (s) is given."""
        msg = TwistStamped()
        msg.header.stamp = to_stamp(self.sim_time if stamp is None else stamp)
        msg.header.frame_id = frame_id
        msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in linear)
        msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in angular)
        self.twist_pub.publish(msg)

    def send_joy(self, axes, buttons) -> None:
        """A sensor_msgs/Joy as joy_node publishes it (axes in [-1, 1], buttons 0/1)."""
        self.joy_pub.publish(Joy(axes=[float(a) for a in axes], buttons=[int(b) for b in buttons]))

    def recorder(self, command: str, wall_timeout: float = 30.0) -> tuple[bool, str]:
        """Call the recorder's /recorder/<command> service (start, stop, stop_failure, discard):
        (success, the episode's folder or the reason it failed)."""
        return self.trigger(f"/recorder/{command}", wall_timeout)

    def search(self, command: str, wall_timeout: float = 30.0) -> tuple[bool, str]:
        """Call the search node's /search/<command> service (start, stop): (success, what it says)."""
        return self.trigger(f"/search/{command}", wall_timeout)

    def trigger(self, name: str, wall_timeout: float = 30.0) -> tuple[bool, str]:
        """Call the std_srvs/Trigger service `name`: (success, message). A call the node is not ready for
        (its answer starts 'not ready': a required stream not heard yet) is asked again every 0.1 s, up
        to wall_timeout."""
        from std_srvs.srv import Trigger

        if name not in self._services:
            self._services[name] = self.node.create_client(Trigger, name)
        service = self._services[name]
        deadline = time.monotonic() + wall_timeout
        self.spin_until(service.service_is_ready, wall_timeout, f"the service {name}")
        while True:
            future = service.call_async(Trigger.Request())
            self.spin_until(future.done, max(deadline - time.monotonic(), 1.0), f"{name}'s answer")
            answer = future.result()
            if answer.success or not answer.message.startswith("not ready") or time.monotonic() > deadline:
                return answer.success, answer.message
            pause = time.monotonic() + 0.1
            self.spin_until(lambda: time.monotonic() > pause, 1.0, "a pause")

    def send_sphere_obstacles(self, spheres, stamp: float | None = None) -> None:
        """Publish sphere obstacles [(id, center m, radius m)] on /safety/obstacles, base frame."""
        msg = MarkerArray()
        for marker_id, center, radius in spheres:
            m = Marker(ns="test", id=marker_id, type=Marker.SPHERE, action=Marker.ADD)
            m.header.stamp = to_stamp(self.sim_time if stamp is None else stamp)
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in center)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 2.0 * radius
            msg.markers.append(m)
        self.obstacle_pub.publish(msg)

    def wait_for_subscribers(self, publisher, wall_timeout: float = 30.0) -> None:
        self.spin_until(lambda: publisher.get_subscription_count() > 0, wall_timeout, f"a subscriber on {publisher.topic_name}")

    def state_arrays(self, t_from: float = -np.inf, t_to: float = np.inf):
        """(t, q, qd, tau) arrays of the recorded states within [t_from, t_to]."""
        rows = [s for s in self.states if t_from <= s[0] <= t_to]
        return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                np.array([r[2] for r in rows]), np.array([r[3] for r in rows]))

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        if self._policy is not None:
            os.sched_setscheduler(0, *self._policy)


POLICIES = {"batch": "SCHED_BATCH", "idle": "SCHED_IDLE"}


def _set_policy(name: str):
    """Put the calling thread under the named policy (threads it starts inherit it); returns the
    policy to restore, or None where Linux scheduling policies are not available."""
    if name not in POLICIES:
        raise ValueError(f"client policy must be one of {sorted(POLICIES)}, got {name!r}")
    if not hasattr(os, POLICIES[name]):
        return None
    policy = (os.sched_getscheduler(0), os.sched_getparam(0))
    os.sched_setscheduler(0, getattr(os, POLICIES[name]), os.sched_param(0))
    return policy
