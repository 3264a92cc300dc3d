"""A node's events topic: what it tells the operator, logged and published as std_msgs/String."""
from __future__ import annotations

import re

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

# The last 100 events are kept for a reader that joins late (transient local, as /rosout): an event sent
# before discovery had matched a reader to this topic was otherwise lost to it (a graph test missed the
# controller's first event, sent 20 ms after it started, on a busy machine). Volatile readers still match.
EVENTS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def episode_begun(episode: str, task: str, t: float) -> str:
    """The recorder's event as an episode begins (t: sim s); EPISODE_BEGUN matches it (the teleop expert waits for it)."""
    return f"recording {episode} ({task}) at t={t:.3f}"


EPISODE_BEGUN = re.compile(r"recording \S+ \(.*\) at t=")


class Events:
    """events = Events(node, "/controller/events"); events("goal accepted"); events("rejected", warn=True)."""

    def __init__(self, node, topic: str):
        self.logger = node.get_logger()
        self.publisher = node.create_publisher(String, topic, EVENTS_QOS)

    def __call__(self, text: str, warn: bool = False) -> None:
        if warn:  # rclpy ties a severity to each call site: one call per severity
            self.logger.warning(text)
        else:
            self.logger.info(text)
        self.publisher.publish(String(data=text))
