"""The middleware's share of an outer tick: a /joint_states -> /impedance_reference ping-pong between
two processes over DDS, with the graph's executor and wire format (robot_dyn/nodes/wire.py) and
no control in between. Its round trip is what every tick of the graph pays on top of its compute.

`python -m robot_dyn.nodes.middleware_probe` is the echoing process; round_trips() starts it (robot-dyn bench
control reports it). A node module because it is one: rclpy lives in robot_dyn/nodes.
"""
from __future__ import annotations

import random
import subprocess
import sys
import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from robot_dyn.bringup.processes import isolated_ros_env
from robot_dyn.nodes import wire
from robot_dyn.timing import TickTimer

QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
NAMES = [f"joint{i}" for i in range(1, 8)]


class Echo(Node):
    """Answers each state with a reference, as the controller does (decode, encode, publish)."""

    def __init__(self):
        super().__init__("middleware_echo")
        self.decoder, self.encoder = wire.JointStateDecoder(), wire.ReferenceEncoder(NAMES)
        self.pub = self.create_publisher(JointTrajectory, "/bench/reference", QOS)
        self.create_subscription(JointState, "/bench/state", self.on_state, QOS, raw=True)

    def on_state(self, data: bytes) -> None:
        state = self.decoder.decode(data)
        self.pub.publish(self.encoder.encode(state.stamp_ns, state.position, state.velocity, state.effort, state.effort))

    def on_shutdown(self) -> None:
        pass


def round_trips(count: int = 2000, warm_up: int = 200) -> dict:
    """Round trip times (us p50/p99) of `count` states answered by a second process."""
    import os

    import rclpy
    from rclpy.experimental import EventsExecutor

    domain = random.randint(101, 200)
    env = dict(os.environ, **isolated_ros_env(domain))
    child = subprocess.Popen([sys.executable, "-m", "robot_dyn.nodes.middleware_probe"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(isolated_ros_env(domain))
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = Node("middleware_ping", context=context)
        executor = EventsExecutor(context=context)
        executor.add_node(node)
        pub = node.create_publisher(JointState, "/bench/state", QOS)
        answered = []
        node.create_subscription(JointTrajectory, "/bench/reference", lambda data: answered.append(time.perf_counter()),
                                 QOS, raw=True)
        encoder, timer = wire.JointStateEncoder(NAMES), TickTimer(count)
        values = np.zeros(len(NAMES))
        deadline = time.monotonic() + 60
        while pub.get_subscription_count() == 0 or node.count_publishers("/bench/reference") == 0:
            executor.spin_once(timeout_sec=0.05)
            if time.monotonic() > deadline:
                raise TimeoutError("the middleware echo process did not come up within 60 s")
        for k in range(warm_up + count):
            sent, seen = time.perf_counter(), len(answered)
            pub.publish(encoder.encode(k, values, values, values))
            while len(answered) == seen:
                executor.spin_once(timeout_sec=1.0)
                if time.perf_counter() - sent > 5.0:
                    raise TimeoutError("the middleware echo stopped answering")
            if k >= warm_up:
                timer.add(answered[-1] - sent)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        child.terminate()
        child.wait(10)
    return timer.summary("middleware_round_trip_")


if __name__ == "__main__":
    from robot_dyn.nodes.parameters import run

    run(Echo)
