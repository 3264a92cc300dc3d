"""perception node: synchronised RGB-D camera sets -> tracked object -> control particles.

Subscribes, per camera `<name>` of parameter `cameras` (topics in camera_messages.py):
color/image_raw, depth/image_raw, mask (not with `mask_source: depth`), color/camera_info (one
set per stamp; message_filters is not among the PyPI wheels, so
robot_dyn.perception.live.StampSynchronizer matches stamps, exactly or within `sync_slop_s`:
4 streams a camera, 3 without the mask), and the camera poses on <name>/pose (TransformStamped,
transient local) or, where tf2_msgs exists, /tf_static (direct world -> <name>_optical_frame
transforms only: no chaining through other frames). /joint_states gives the end-effector
by forward kinematics (pinocchio, URDF) and so the tool particle.

The object mask: the <name>/mask topic (`mask_source: topic`, the sim's segmentation), or, for
real RGB-D cameras without one (`mask_source: depth`), computed per camera by
robot_dyn.perception.foreground: depth points inside the mask_box above the table, minus the
arm's URDF collision shapes and the tool at the set's joint state (a set without a joint state
within joint_state_tolerance_s is skipped unless mask_exclude_arm is false).

Publishes:
* /perception/particles: sensor_msgs/PointCloud2 in `world_frame`, stamped with the camera
  set: `n_particles` object particles (label 0), then the tool particle (label 1) when a
  joint state lies within `joint_state_tolerance_s` of the set's stamp.
* /diagnostics: 'perception: tracking' every diagnostics_period_s (sets received, tracked,
  dropped, skipped, tracking rate, seconds per set, latency) and at once when a set is
  skipped (level ERROR, the message naming the topic and field).

Keeping up: sets are handed to one worker thread through a one-item slot (LatestSlot). While
the tracker is busy a newer set replaces the waiting one, which is counted as dropped: the
node tracks at whatever rate it can, always on the newest set, and its lag stays below one
tracking time plus one camera period instead of growing. Diagnostics say when it drops (WARN).

Bad input (mismatched image sizes, wrong encodings, uncalibrated or missing camera info, a
missing camera pose, no object pixel with depth in any camera, whatever the tracker refuses
with ValueError) skips that set with the reason; NaN depth is 'no return' (REP 118) and only
leaves pixels unused. A camera_info (or any stream) that stops or never starts keeps sets
from completing: the diagnostics (WARN) name the topics silent over the last period.
"""
from __future__ import annotations

import json
import os
import threading
import time
import traceback
from dataclasses import replace

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TransformStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2

from robot_dyn.bringup import schema
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes import wire
from robot_dyn.nodes.messages import diagnostics_msg, to_sec
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.perception.foreground import depth_mask_from_parameters, foreground_mask
from robot_dyn.perception.live import JointHistory, LatestSlot, LiveTracker, StampSynchronizer, labelled_particles
from robot_dyn.perception.particles import tool_particle
from robot_dyn.robots import load_robot

DEFAULTS = schema.defaults(schema.PERCEPTION)
DESCRIPTIONS = schema.descriptions(schema.PERCEPTION)
KINDS = ("color", "depth", "mask", "info")  # the streams of one camera; mask_source depth drops "mask"
MASK_SOURCES = ("topic", "depth")
TRACKERS = ("gaussian", "pointcloud")
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
STATUS = "perception: tracking"


def live_tracker(p: dict) -> LiveTracker:
    """The tracking core from the node's parameters (ValueError for bad ones). The tracking
    config (the 'tracking:' section of configs/perception.yaml or of `tracking_config`) gives
    the Gaussian tracker's settings and the particle count and spacing unless overridden."""
    if p["tracker"] not in TRACKERS:
        raise ValueError(f"parameter 'tracker' must be one of {list(TRACKERS)}, got '{p['tracker']}'")
    try:
        from robot_dyn.perception.tracking import GaussianTracker, load_tracking_config
    except ImportError as exc:
        raise ValueError(f"parameter 'tracker': needs robot_dyn.perception.tracking ({exc})") from None
    config = load_tracking_config(p["tracking_config"] or None)
    n = p["n_particles"] or config.n_particles
    spacing = p["particle_spacing"] if p["particle_spacing"] >= 0 else config.particle_min_spacing
    if p["tracker"] == "pointcloud":
        from robot_dyn.perception.baseline import PointCloudTracker

        return LiveTracker(PointCloudTracker, n, spacing)
    if p["threads"] < 1:
        raise ValueError(f"parameter 'threads' must be >= 1, got {p['threads']}")
    import torch

    torch.set_num_threads(p["threads"])
    return LiveTracker(lambda: GaussianTracker(config, device=p["device"]), n, spacing)


class PerceptionNode(Node):
    def __init__(self):
        super().__init__("perception")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        self.names = [c.strip() for c in p["cameras"].split(",") if c.strip()]
        if not self.names or len(set(self.names)) != len(self.names):
            raise ValueError(f"parameter 'cameras' must name distinct cameras, got '{p['cameras']}'")
        for name in ("n_particles", "sync_slop_s", "joint_state_tolerance_s"):
            if p[name] < 0:
                raise ValueError(f"parameter '{name}' must be >= 0, got {p[name]}")
        if not np.isfinite(p["tool_offset"]):
            raise ValueError(f"parameter 'tool_offset' must be a finite number (m), got {p['tool_offset']}")
        if p["image_qos"] not in ("sensor_data", "reliable"):
            raise ValueError(f"parameter 'image_qos' must be 'sensor_data' or 'reliable', got '{p['image_qos']}'")
        if p["mask_source"] not in MASK_SOURCES:
            raise ValueError(f"parameter 'mask_source' must be one of {list(MASK_SOURCES)}, got '{p['mask_source']}'")
        self.world_frame = p["world_frame"]
        self.topics = {name: cm.camera_topics(name, p["camera_namespace"]) for name in self.names}
        robot = load_robot(p["robot"])
        self.region = self.arm = None  # the depth mask's settings (mask_source depth)
        if p["mask_source"] == "depth":
            self.region, self.arm = depth_mask_from_parameters(p, robot)
        self.kinds = tuple(k for k in KINDS if not (k == "mask" and self.region is not None))
        self.live = live_tracker(p)
        self.sync = StampSynchronizer([(n, k) for n in self.names for k in self.kinds], int(round(p["sync_slop_s"] * 1e9)))
        self.slot = LatestSlot()
        self.poses: dict[str, np.ndarray] = {}  # camera -> world_to_cam (4x4, OpenCV)
        self.joints = JointHistory()
        self.joint_tolerance_ns = int(round(p["joint_state_tolerance_s"] * 1e9))
        self.tool_offset = float(p["tool_offset"])
        self.stats_file = p["stats_file"]
        self.worker_nice = p["worker_nice"]
        self.kinematics, self.joint_names = RigidBody(robot), list(robot.joint_names)

        image_qos = qos_profile_sensor_data if p["image_qos"] == "sensor_data" else RELIABLE
        for name, topics in self.topics.items():
            for kind in self.kinds:
                msg_type = CameraInfo if kind == "info" else Image
                self.create_subscription(msg_type, topics[kind], self._on_message(name, kind), image_qos)
            self.create_subscription(TransformStamped, topics["pose"], self._on_pose(name), LATCHED)
        try:
            from tf2_msgs.msg import TFMessage

            self.create_subscription(TFMessage, "/tf_static", self.on_tf_static, LATCHED)
        except ImportError:  # not among the PyPI wheels: the pose topics carry the camera poses
            pass
        # 500 Hz (several times that from a lockstep sim) beside the tracker: read as bytes (robot_dyn/nodes/wire.py),
        # with a queue deep enough that the state at a set's stamp is never dropped while the tracker holds
        # the interpreter (as rclpy message objects, depth 10, a busy machine lost it: the tool particle 0.1 mm off)
        self.state_decoder = wire.JointStateDecoder()
        self.create_subscription(JointState, "/joint_states", self.on_joint_state,
                                 QoSProfile(depth=2000, reliability=ReliabilityPolicy.RELIABLE), raw=True)
        self.particles_pub = self.create_publisher(PointCloud2, "/perception/particles", RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

        # counters: written by the worker (and callbacks), read by the diagnostics timer
        self.count = {"sets_received": 0, "sets_tracked": 0, "sets_skipped": 0, "initialisations": 0,
                      "tool_missing": 0, "errors": 0, "joint_states_rejected": 0}
        self.track_seconds: list[float] = []  # since the last diagnostics
        self.latencies: list[float] = []
        self.total_track_seconds = self.total_latency = 0.0
        self.last_error, self._last_error_sent = "", (None, -np.inf)
        self._window_start, self._window_tracked = time.monotonic(), 0
        self.wall_start = time.monotonic()
        self._received_before, self._silent, self._sets_before = {}, [], 0

        self.worker = threading.Thread(target=self._work, name="perception-worker", daemon=True)
        self.worker.start()
        self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        sync = f"within {p['sync_slop_s']:g} s" if p["sync_slop_s"] else "exact stamps"
        mask = "topics" if self.region is None else \
            f"depth inside {list(self.region.box_min)}..{list(self.region.box_max)} m" + ("" if self.arm is None else
                                                                                    f" minus {self.arm.count} arm spheres")
        self.get_logger().info(f"tracking {self.names} with the '{p['tracker']}' tracker: {self.live.n_particles} particles "
                               f"+ the tool; camera sets matched by {sync}; object mask from {mask}")

    # --- receiving -------------------------------------------------------------
    def _on_message(self, name: str, kind: str):
        def callback(msg) -> None:
            done = self.sync.add((name, kind), cm.stamp_ns(msg.header.stamp), msg)
            if done is not None:
                self.count["sets_received"] += 1
                self.slot.put((done[0], done[1], time.monotonic()))
        return callback

    def _on_pose(self, name: str):
        def callback(msg: TransformStamped) -> None:
            self._set_pose(name, msg, self.topics[name]["pose"])
        return callback

    def _set_pose(self, name: str, msg: TransformStamped, where: str) -> None:
        try:
            self.poses[name] = cm.world_to_cam_from_msg(msg, self.world_frame, where)
        except ValueError as exc:
            self.report_error(str(exc), "camera pose refused")

    def on_tf_static(self, msg) -> None:
        for tf in msg.transforms:
            for name in self.names:
                if tf.child_frame_id == cm.optical_frame(name) and tf.header.frame_id == self.world_frame:
                    self._set_pose(name, tf, f"/tf_static: {tf.child_frame_id}")

    def on_joint_state(self, data: bytes) -> None:
        try:
            msg = self.state_decoder.decode(data)
            names = list(msg.name)
            order = [names.index(j) for j in self.joint_names]
            q = np.asarray(msg.position, float)[order]
        except (wire.WireError, ValueError, IndexError):
            self.count["joint_states_rejected"] += 1
            return
        if np.all(np.isfinite(q)):
            self.joints.add(msg.stamp_ns, q)

    # --- the worker ----------------------------------------------------------------
    def _work(self) -> None:
        if self.worker_nice > 0:  # Linux niceness is per thread: only tracking yields to the control loop
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(),
                               os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) + self.worker_nice)
            except (AttributeError, OSError) as exc:
                self.get_logger().warning(f"worker_nice: could not lower the tracking thread's priority: {exc}")
        while True:
            item = self.slot.take(timeout=0.5)
            if item is None:
                if self.slot.closed:
                    return
                continue
            try:
                self.process(*item)
            except ValueError as exc:
                self.count["sets_skipped"] += 1
                self.report_error(str(exc))
            except Exception:  # a bug must not take the node down; it is logged and counted
                if not self.context.ok():  # shutting down (SIGINT invalidates the context first): just stop
                    return
                self.count["errors"] += 1
                self.report_error("internal error: " + traceback.format_exc(limit=3).strip().splitlines()[-1])
                self.get_logger().error(traceback.format_exc())

    def process(self, stamp_ns: int, messages: dict, received_wall: float) -> None:
        """One synchronised set -> particles. ValueError (bad input) skips it."""
        frames, calibrations = [], []
        for name in self.names:
            topics = self.topics[name]
            if name not in self.poses:
                raise ValueError(f"{topics['pose']}: no camera pose received yet (world -> {cm.optical_frame(name)})")
            info = messages[(name, "info")]
            calibrations.append(cm.calibration_from_msgs(name, info, self.poses[name], topics["info"]))
            frames.append(cm.frame_from_msgs(name, messages[(name, "color")], messages[(name, "depth")],
                                             messages.get((name, "mask")), info, topics))
        q = self.joint_positions(stamp_ns)  # before tracking: the joint history moves on meanwhile
        tool = None if q is None else tool_particle(*self.kinematics.ee_pose(q), offset=self.tool_offset)
        if self.region is not None:
            frames = self.depth_masks(frames, calibrations, q)
        result = self.live.step(frames, calibrations)
        points, labels = labelled_particles(result.particles, tool)
        stamp = stamp_ns * 1e-9
        self.particles_pub.publish(cm.particles_msg(points, labels, stamp, self.world_frame))
        self.count["sets_tracked"] += 1
        self.count["initialisations"] = self.live.initialisations
        self.count["tool_missing"] += tool is None
        self.track_seconds.append(result.track_seconds)
        self.total_track_seconds += result.track_seconds
        latency = time.monotonic() - received_wall
        self.latencies.append(latency)
        self.total_latency += latency

    def joint_positions(self, stamp_ns: int) -> np.ndarray | None:
        """The arm's joint positions (rad) at the set's stamp, or None if no /joint_states lies within tolerance."""
        # the sim publishes a tick's images just before its state: wait for it (up to 0.5 s on a loaded machine)
        return self.joints.at(stamp_ns, self.joint_tolerance_ns, wait_s=0.5)

    def depth_masks(self, frames: list, calibrations: list, q: np.ndarray | None) -> list:
        """The frames with their masks computed from depth (mask_source depth); ValueError skips the set."""
        spheres = None
        if self.arm is not None:
            if q is None:
                raise ValueError(f"/joint_states: none within joint_state_tolerance_s ({self.joint_tolerance_ns * 1e-9:g} s) "
                                 "of the set's stamp, so the depth mask cannot leave out the arm (mask_exclude_arm)")
            spheres = self.arm.at(q)
        out = [replace(f, mask=foreground_mask(f.depth, c.K, c.world_to_cam, self.region, f.rgb, spheres))
               for f, c in zip(frames, calibrations)]
        if not any(f.mask.any() for f in out) and any(np.any(f.depth > 0) for f in out):
            raise ValueError("depth mask: empty in every camera (no depth point inside mask_box_min..mask_box_max, "
                             "mask_table_clearance above the table and off the arm): nothing to track")
        return out

    # --- reporting -------------------------------------------------------------------
    def report_error(self, text: str, what: str = "set skipped") -> None:
        """Log and publish a refused input's reason at once (the same reason at most once a second)."""
        self.last_error = f"{what}: {text}"
        now = time.monotonic()
        if self._last_error_sent[0] != text or now - self._last_error_sent[1] > 1.0:
            self._last_error_sent = (text, now)
            self.get_logger().warning(self.last_error)
            self.diag_pub.publish(diagnostics_msg(self._now(), STATUS, self.stats(), DiagnosticStatus.ERROR,
                                                  self.last_error))

    def _now(self) -> float:
        return to_sec(self.get_clock().now().to_msg())

    def stats(self) -> dict:
        """Counts and timing since the start."""
        out = dict(self.count)
        out["sets_dropped"] = self.slot.dropped
        out["messages_unsynchronised"] = self.sync.discarded
        tracked = out["sets_tracked"]
        out["seconds_per_set_mean"] = self.total_track_seconds / tracked if tracked else float("nan")
        out["latency_s_mean"] = self.total_latency / tracked if tracked else float("nan")
        out["silent_streams"] = ",".join(self.topics[n][k] for n, k in self._silent) or "none"
        out["last_error"] = self.last_error or "none"
        return out

    def window_stats(self) -> dict:
        """Rates and timing over the last diagnostics period (and the streams silent over it)."""
        now, tracked = time.monotonic(), self.count["sets_tracked"]
        seconds, latencies = self.track_seconds, self.latencies
        self.track_seconds, self.latencies = [], []
        out = {"tracking_rate_hz": (tracked - self._window_tracked) / max(now - self._window_start, 1e-9),
               "seconds_per_set_last": seconds[-1] if seconds else float("nan"),
               "latency_s_last_period_max": float(np.max(latencies)) if latencies else float("nan")}
        self._window_start, self._window_tracked = now, tracked
        # no set completed over the period though messages came: name the streams that were silent
        counts = dict(self.sync.received)
        moved = {k for k, v in counts.items() if v != self._received_before.get(k, 0)}
        stuck = moved and self.count["sets_received"] == self._sets_before
        self._silent = [k for k in self.sync.keys if k not in moved] if stuck else []
        self._received_before, self._sets_before = counts, self.count["sets_received"]
        return out

    def publish_diagnostics(self) -> None:
        window = self.window_stats()
        values = {**self.stats(), **window}
        level, message = DiagnosticStatus.OK, "tracking"
        if values["silent_streams"] != "none":
            level, message = DiagnosticStatus.WARN, f"camera sets incomplete: nothing received on {values['silent_streams']}"
        elif self.slot.dropped:
            level = DiagnosticStatus.WARN
            message = (f"tracking at {values['tracking_rate_hz']:.2f} Hz, slower than the cameras: newest set kept, "
                       f"{self.slot.dropped} dropped so far")
        elif not values["sets_received"]:
            message = "waiting for camera sets"
        self.diag_pub.publish(diagnostics_msg(self._now(), STATUS, values, level, message))

    def on_shutdown(self) -> None:
        self.slot.close()
        self.worker.join(timeout=10.0)
        if self.stats_file:
            out = self.stats()
            out["wall_time_s"] = wall = time.monotonic() - self.wall_start
            out["tracking_rate_hz"] = out["sets_tracked"] / wall
            with open(self.stats_file, "w") as f:
                json.dump(out, f, indent=2)


def main(args=None):
    run(PerceptionNode, args)


if __name__ == "__main__":
    main()
