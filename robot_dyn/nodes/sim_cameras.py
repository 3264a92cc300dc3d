"""The sim's camera topics, and in real time the process that renders and publishes them.

CameraPublishers puts a rendered capture (robot_dyn.perception.live.Capture) on its topics
(robot_dyn/nodes/camera_messages.py): colour, depth, mask and camera info per camera, a moving
(wrist) camera's pose with each capture, the deformable's ground-truth vertices if asked. The
fixed cameras' poses are the sim node's to publish once, latched.

CameraProcess renders and publishes in a child process ('spawn': forking a process that runs
rclpy's threads is not safe), as a node of its own, `sim_cameras`. The sim's loop only sends it a
state snapshot (MuJoCo's full physics state, a few KB) per capture. A rendering thread in the sim
did not do: it shared the sim's GIL (its publishing held the 500 Hz loop up) and, to keep up
under load, it had to run at the loop's raised priority, where CPU rendering (llvmpipe, tens of
ms a set, on every core) kept the teleop node off the cores for 10-20 ms after each capture:
the commands it stamped then were that stale. The child runs at the default priority, under
the sim and the controller; a capture waits in its queue rather than being skipped (QUEUE_DEPTH).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from geometry_msgs.msg import TransformStamped

from robot_dyn.nodes import camera_messages as cm
from robot_dyn.timing import TickTimer

IMAGE_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # 5 s at 10 Hz, resent to a reader (a recorder) that fell behind
TRUTH_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)  # latched
QUEUE_DEPTH = 20  # captures waiting for the child (2 s at 10 Hz) before one is skipped
START_TIMEOUT_S = 60.0  # wall s for the child to import, open its renderer and node


class CameraPublishers:
    """A node's publishers of every camera of a rig; publish(capture) returns the wall s it took."""

    def __init__(self, node, calibrations, moving, world_frame: str, ground_truth: bool):
        self.world_frame = world_frame
        self.pubs = {}
        for cal in calibrations:
            topics = cm.camera_topics(cal.name)
            self.pubs[cal.name] = {kind: node.create_publisher(Image, topics[kind], IMAGE_QOS)
                                   for kind in ("color", "depth", "mask")}
            self.pubs[cal.name]["info"] = node.create_publisher(CameraInfo, topics["info"], IMAGE_QOS)
        self.truth = node.create_publisher(PointCloud2, "/sim/rope_vertices", TRUTH_QOS) if ground_truth else None
        # a moving (wrist) camera's pose goes out with each capture, on its latched topic
        self.poses = {name: node.create_publisher(TransformStamped, cm.camera_topics(name)["pose"], LATCHED)
                      for name in moving}

    def publish(self, capture) -> float:
        start = time.perf_counter()
        for frame, cal in zip(capture.frames, capture.calibrations):
            pubs = self.pubs[frame.name]
            color, depth, mask = cm.frame_msgs(frame, capture.time)
            if frame.name in self.poses:
                self.poses[frame.name].publish(cm.camera_pose_msg(cal, capture.time, self.world_frame))
            pubs["color"].publish(color)
            pubs["depth"].publish(depth)
            pubs["mask"].publish(mask)
            pubs["info"].publish(cm.camera_info_msg(cal, capture.time))
        if self.truth is not None:
            for vertices in capture.vertices.values():
                self.truth.publish(cm.particles_msg(vertices, np.zeros(len(vertices), np.uint32), capture.time,
                                                    self.world_frame))
        return time.perf_counter() - start


def _serve(states, reports, model, rig, objects, world_frame: str, ground_truth: bool) -> None:
    """The child: render each state it is sent and publish it, until told to stop or the parent goes.
    It ignores SIGINT (a Ctrl-C reaches the whole process group; the sim stops it as it shuts down)
    and runs at niceness 0 whatever its parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        pass  # not permitted (a parent below 0 without privilege): it keeps its parent's
    import rclpy
    from rclpy.node import Node

    from robot_dyn.perception.live import SimCameraCapture

    parent = os.getppid()
    capture = node = None
    try:
        capture = SimCameraCapture(model, rig, objects=objects)
        rclpy.init(args=[])
        node = Node("sim_cameras")
        pubs = CameraPublishers(node, capture.calibrations, capture.renderer.moving, world_frame, ground_truth)
        reports.send(("ready",))
        while True:
            try:
                state = states.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if state is None:
                return
            rendered = capture.render_state(state)
            reports.send(("done", rendered.seconds, rendered.seconds + pubs.publish(rendered)))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        reports.send(("failed", repr(exc)))
    finally:
        if capture is not None:
            capture.close()
        if node is not None:
            node.destroy_node()
            rclpy.try_shutdown()


class CameraProcess:
    """The parent's handle: submit(state) hands a snapshot over without waiting; render and
    publish timings come back (render_timer, set_timer, in s), and a failure in the child is
    raised at the next submit() as RuntimeError."""

    def __init__(self, model, rig, objects, world_frame: str, ground_truth: bool):
        context = multiprocessing.get_context("spawn")
        self._states = context.Queue()
        self._reports, child_end = context.Pipe(duplex=False)
        self._process = context.Process(target=_serve, name="sim-cameras", daemon=True,
                                        args=(self._states, child_end, model, rig, tuple(objects), world_frame,
                                              ground_truth))
        self._process.start()
        child_end.close()
        self.render_timer, self.set_timer = TickTimer(), TickTimer()
        self.in_flight = self.skipped = 0
        self.error = None
        if not self._reports.poll(START_TIMEOUT_S):
            self.close()
            raise RuntimeError(f"camera process: not ready after {START_TIMEOUT_S:.0f} s")
        self.poll()
        if self.error is not None:
            self.close()
            raise RuntimeError(f"camera process failed to start: {self.error}")

    def poll(self) -> None:
        """Take in the child's reports."""
        try:
            while self._reports.poll():
                report = self._reports.recv()
                if report[0] == "done":
                    self.in_flight -= 1
                    self.render_timer.add(report[1])
                    self.set_timer.add(report[2])
                elif report[0] == "failed":
                    self.error = report[1]
        except (EOFError, OSError):
            pass
        if self.error is None and not self._process.is_alive():
            self.error = f"exited with code {self._process.exitcode}"

    def submit(self, state: np.ndarray) -> None:
        self.poll()
        if self.error is not None:
            raise RuntimeError(f"camera process failed: {self.error}")
        if self.in_flight >= QUEUE_DEPTH:
            self.skipped += 1
            return
        self._states.put(state)
        self.in_flight += 1

    def close(self, timeout: float = 5.0) -> None:
        """Let the child publish what it holds, then stop it."""
        if self._process.is_alive():
            self._states.put(None)
            self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(1.0)
        self._states.close()
