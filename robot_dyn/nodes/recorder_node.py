"""recorder node: demonstration episodes of the graph's topics as rosbag2 (MCAP) folders.

Episodes are started, stopped (a success or a failure) and discarded through std_srvs/Trigger
services, /recorder/start, /recorder/stop, /recorder/stop_failure and /recorder/discard, or the
/recorder/command topic (std_msgs/String: 'start [TASK]', 'stop [success|failure]', 'discard').
The services answer with the episode's folder or the reason it failed; a start answers 'not ready'
until every required topic (required_topics, the cameras' streams) has delivered a message. Progress lines and the
per-episode summary go to /recorder/events and the log.

Every recorded topic is subscribed from the start, reliably, with a deep queue, as raw CDR bytes
(robot_dyn.recording.recorder): nothing is deserialised, and the bytes in the bag are those that
were published. Messages are stamped with the graph's clock on arrival (ros2 bag record's
convention); their own header stamps stay inside them.
"""
from __future__ import annotations

import importlib

from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger

from robot_dyn.bringup import schema
from robot_dyn.nodes.events import Events, episode_begun
from robot_dyn.nodes.camera_messages import camera_topics
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.recording.episode_bag import RecordingError
from robot_dyn.recording.recorder import CAMERA_STREAM_TYPES, DEFAULT_TOPICS, Recorder

DEFAULTS = schema.defaults(schema.RECORDER)
DESCRIPTIONS = schema.descriptions(schema.RECORDER)
# 2 s of the 500 Hz streams: a recorder that stalls that long still loses nothing (reliable QoS
# makes the publisher resend; a shallow history would drop what the recorder has not taken)
DEEP = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def message_class(msgtype: str):
    """'sensor_msgs/msg/JointState' -> the rclpy message class; ValueError names an unknown type."""
    package, _, name = msgtype.rpartition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError, ValueError):
        raise ValueError(f"message type '{msgtype}' is not installed (its Python package '{package}')") from None


def recorded_topics(p: dict) -> tuple[dict[str, str], list[str], list[str]]:
    """(topic -> type, the latched topics, the required topics) from the parameters."""
    topics, latched = dict(DEFAULT_TOPICS), []
    required = [t for t in (x.strip() for x in p["required_topics"].split(",")) if t]
    for camera in filter(None, (c.strip() for c in p["cameras"].split(","))):
        names = camera_topics(camera)
        topics.update({names[key]: msgtype for key, msgtype in CAMERA_STREAM_TYPES.items()})
        latched.append(names["pose"])
        required += [names[key] for key in ("color", "depth", "info")]
    for item in filter(None, (x.strip() for x in p["extra_topics"].split(","))):
        topic, _, msgtype = item.partition("=")
        if not topic.startswith("/") or "/msg/" not in msgtype:
            raise ValueError(f"parameter 'extra_topics': expected '/topic=package/msg/Type', got '{item}'")
        topics[topic] = msgtype
    unknown = sorted(set(required) - set(topics))
    if unknown:
        raise ValueError(f"parameter 'required_topics': {unknown} are not recorded (the defaults, the cameras' or extra_topics)")
    return topics, latched, required


class RecorderNode(Node):
    def __init__(self):
        super().__init__("recorder")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        for name in ("flush_period_s", "status_period_s"):
            if not p[name] > 0:
                raise ValueError(f"parameter '{name}' must be positive, got {p[name]}")
        topics, latched, required = recorded_topics(p)
        self.default_task = p["task"]
        self.facts = dict(item.split("=", 1) for item in p["graph_facts"].split(",") if "=" in item)
        self.recorder = Recorder(p["out_dir"], topics, latched, p["flush_period_s"], required)
        for topic, msgtype in topics.items():
            self.create_subscription(message_class(msgtype), topic, self._receiver(topic),
                                     LATCHED if topic in latched else DEEP, raw=True)
        self.event = Events(self, "/recorder/events")
        self.create_service(Trigger, "/recorder/start", lambda req, res: self._answer(res, self.start, self.default_task))
        self.create_service(Trigger, "/recorder/stop", lambda req, res: self._answer(res, self.stop, True))
        self.create_service(Trigger, "/recorder/stop_failure", lambda req, res: self._answer(res, self.stop, False))
        self.create_service(Trigger, "/recorder/discard", lambda req, res: self._answer(res, self.discard))
        self.create_subscription(String, "/recorder/command", self.on_command, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self.create_timer(p["status_period_s"], self.progress, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.summaries = []
        self.get_logger().info(f"recording {len(topics)} topics into {p['out_dir']}/ on request (/recorder/start)")

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _receiver(self, topic: str):
        def receive(data: bytes) -> None:
            self.recorder.offer(topic, self.get_clock().now().nanoseconds, data)
        return receive

    # --- commands ------------------------------------------------------------
    def start(self, task: str) -> str:
        if self.get_parameter("use_sim_time").value and self._now() == 0.0:
            raise RecordingError("not ready: no /clock yet (the graph's time, from the sim)")
        path = self.recorder.start(task, self._now())
        self.event(episode_begun(path.name, task, self._now()))
        return str(path)

    def stop(self, success: bool) -> str:
        summary = self.recorder.stop(success, self._now(), self.facts)
        self.summaries.append(summary)
        self.event(summary.line(), warn=bool(summary.dropped))
        return str(summary.path)

    def discard(self) -> str:
        path = self.recorder.discard()
        self.event(f"discarded {path.name}")
        return str(path)

    def _answer(self, response, command, *args):
        try:
            response.message, response.success = command(*args), True
        except RecordingError as exc:
            response.message, response.success = str(exc), False
            self.event(f"recorder: {exc}", warn=True)
        return response

    def on_command(self, msg: String) -> None:
        words = msg.data.split()
        verb, rest = (words[0], words[1:]) if words else ("", [])
        try:
            if verb == "start" and len(rest) <= 1:
                self.start(rest[0] if rest else self.default_task)
            elif verb == "stop" and (not rest or rest == ["success"] or rest == ["failure"]):
                self.stop(rest != ["failure"])
            elif verb == "discard" and not rest:
                self.discard()
            else:
                self.event(f"recorder: unknown command '{msg.data}' (start [TASK] | stop [success|failure] | discard)", warn=True)
        except RecordingError as exc:
            self.event(f"recorder: {exc}", warn=True)

    def progress(self) -> None:
        episode = self.recorder.episode
        if episode is None:
            return
        received = episode.received
        images = sum(n for topic, n in received.items() if topic.endswith("/image_raw"))
        self.event(f"recording {episode.bag.path.name}: {self._now() - episode.start:.1f} s, "
                   f"{received.get('/joint_states', 0)} states, {images} images, {sum(received.values())} messages")

    def on_shutdown(self) -> None:
        """A stop of the node finishes the episode under way (as a failure: nobody said it succeeded)."""
        if self.recorder.recording:
            try:
                self.stop(False)
            except RecordingError as exc:
                self.get_logger().error(str(exc))


def main(args=None):
    run(RecorderNode, args)


if __name__ == "__main__":
    main()
