"""A node's events topic: what it tells the operator, logged and published as std_msgs/String."""
from __future__ import annotations

from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

EVENTS_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


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
