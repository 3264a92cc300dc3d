"""sim node: the simulated arm and its 1 kHz robot layer; publishes /clock and /joint_states.

When physics advances is decided by robot_dyn.sim.pacing.Pacer.

Modes:
- lockstep: physics advances one outer period from tick k once it holds a reference for tick k.
  The controller sends each reference a few ticks ahead (`reference_lead_ticks`, computed from
  the state that many ticks before), and the robot layer keeps a reference stamped in the future
  until its time comes, so the sim's step and the controller's compute overlap. Deterministic. If no reference arrives within
  `lockstep_timeout_s` of wall time (a dead or stalled controller), the sim runs on at real-time
  pace, so the watchdog sees time pass, until a reference comes back. Before the very first
  reference the sim waits.
- realtime: physics is paced by the wall clock; references apply as they arrive (one stamped in
  the future, at its time). A tick whose reference has not arrived when the next state goes out
  counts as a late reference (`late_reference_rate` in the diagnostics).

Hardware emulation (parameter `hardware_emulation: franka`, realtime, robot fr3): the robot layer is
replaced by the FR3's joint_trajectory_controller on the effort interface (robot_dyn.sim.vendor_laws,
gains from the deployed controllers file); trajectories come on /fr3_arm_controller/joint_trajectory
and states go out on /franka/joint_states, as franka_ros2's, so the hardware graph (hardware_adapter +
controller) runs against MuJoCo unchanged.

Scene and cameras (parameters `scene`, `cameras`; both off by default): with scene 'rope' the
table, rope and pusher of configs/perception.yaml are added; with cameras on, its rig is rendered
every 1/camera_rate_hz s of sim time, between physics ticks (robot_dyn.perception.live.
SimCameraCapture: physics is unchanged by it; in lockstep the next tick waits until the
images are out, so the run stays deterministic, only slower; in realtime a child process, the node
`sim_cameras`, renders and publishes a snapshot of the state, so the 500 Hz loop never waits for a
camera set: robot_dyn.nodes.sim_cameras), and published with one stamp per capture (topics in
robot_dyn/nodes/camera_messages.py and the README):
/cameras/<name>/color/image_raw (rgb8), /cameras/<name>/depth/image_raw (32FC1 m, NaN = no
return), /cameras/<name>/mask (mono8, 255 = rope), /cameras/<name>/color/camera_info, the
camera poses once on /cameras/<name>/pose (transient local; also /tf_static where tf2_msgs
exists; a task scene's wrist camera, on the flange, with every capture), and the rope's ground-truth vertices on /sim/rope_vertices (PointCloud2).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

# Headless rendering (the cameras) unless the caller chose otherwise: MuJoCo reads this when first imported,
# and without it a node started by hand failed at its first camera set with an OpenGL error.
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import JointState
from geometry_msgs.msg import PoseStamped, TransformStamped, WrenchStamped
from std_msgs.msg import Bool, Float64, String
from diagnostic_msgs.msg import DiagnosticArray
from trajectory_msgs.msg import JointTrajectory

from robot_dyn import hardware_bridge as bridge, paths
from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.nodes.messages import diagnostics_msg, planar_pose_msg, task_score_msgs, to_stamp
from robot_dyn.bringup import schema
from robot_dyn.nodes.parameters import (declare_parameters, parameter_values, run,
                                        signed)
from robot_dyn.nodes import camera_messages as cm
from robot_dyn.nodes.sim_cameras import LATCHED, CameraProcess, CameraPublishers
from robot_dyn.nodes import wire
from robot_dyn.nodes.events import EVENTS_QOS
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.tasks import TASK_NAMES, camera_rig, load_task
from robot_dyn.tasks.contact_force import ContactForceMean
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.effects import load_profile
from robot_dyn.sim.pacing import Pacer
from robot_dyn.sim.simulated_arm import SimulatedArm
from robot_dyn.timing import TickTimer

DEFAULTS = schema.defaults(schema.SIM)
DESCRIPTIONS = schema.descriptions(schema.SIM)
GAIN_PARAMETERS = {
    "stiffness": "stiffness", "damping": "damping", "safe_stiffness": "safe_stiffness", "safe_damping": "safe_damping",
    "torque_limits": "tau_max", "torque_rate_limits": "dtau_max", "stale_timeout_s": "stale_timeout",
    "extrapolation_horizon_s": "extrapolation_horizon", "max_position_error_rad": "max_position_error",
}
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# /joint_states and /clock keep 2 s at 500 Hz for late readers: a recording client that falls
# behind for a moment (a loaded machine) gets every state rather than a gap.
STATE_QOS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
IMAGE_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)  # 5 s at 10 Hz, resent to a reader (a recorder) that fell behind
SCENES = ("", "rope", *TASK_NAMES)
DIAGNOSTICS_WINDOW = 1000  # ticks of the timing percentiles in /diagnostics (the whole window took 0.3 ms a timer)


class SimNode(Node):
    def __init__(self):
        super().__init__("sim")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        if not p["robot_compensates_gravity"]:
            raise ValueError("parameter 'robot_compensates_gravity' must be true: the robot layer's hold mode has no "
                             "gravity model and would let the arm sag (Franka and KUKA compensate gravity themselves)")
        self.robot = load_robot(p["robot"])
        self.episode = None  # a task scene's episode (robot_dyn/tasks)
        if p["scene"] in TASK_NAMES:
            task = load_task(p["scene"], p["task_config"] or None)
            self.robot = with_tool(self.robot, task.tool)
            self.episode = task.episode(p["task_seed"])
        physics_dt = 1.0 / p["physics_rate_hz"]
        scene, self.scene_config = self._scene(p)
        backend = make_backend(p["backend"], self.robot, load_profile(p["effects_profile"]), physics_dt,
                               p["robot_compensates_gravity"], scene=scene)
        q0 = np.asarray(p["initial_positions"] or self.robot.home, float)
        if q0.shape != (self.robot.n_joints,):
            raise ValueError(f"parameter 'initial_positions' must have {self.robot.n_joints} values")
        self.emulation = p["hardware_emulation"]
        layer = self._vendor_law(p, backend, q0) if self.emulation else None
        self.arm = SimulatedArm(self.robot, backend, self._settings(p), q0, layer=layer)
        self.contact_force = ContactForceMean(self.episode, backend.model, backend.data) if self.episode is not None else None
        if p["scene"] == "rope" and p["rope_seed"] >= 0:
            from robot_dyn.sim.deformables import random_rope_shape, set_flex_vertices

            c = self.scene_config
            shape = random_rope_shape(np.random.default_rng(p["rope_seed"]), c.rope, c.table, c.shape.center_jitter,
                                      tuple(np.radians(c.shape.yaw_range_deg)), c.shape.max_bend)
            set_flex_vertices(backend.model, backend.data, shape, c.rope.name)
        self.mode = p["mode"]
        self.steps_per_tick = max(1, int(round(p["physics_rate_hz"] / p["state_rate_hz"])))
        self.tick_period = self.steps_per_tick * physics_dt
        self.stats_file = p["stats_file"]
        self.states_published = self.late_references = 0
        self.last_state_time = -math.inf
        # A reference answers the state reference_lead_ticks before its stamp: the wall time from that
        # state going out to its answer arriving (the graph sets the lead; a foreign controller may not)
        self.answer_offset_ns = int(round(p["reference_lead_ticks"] * self.tick_period * 1e9))
        self.state_walls: dict[int, float] = {}  # state stamp (ns) -> wall time published, the last few
        self.round_trip_timer = TickTimer()

        self.clock_pub = self.create_publisher(ClockMsg, "/clock", STATE_QOS)
        state_topic = bridge.FRANKA_STATE_TOPIC if self.emulation == "franka" else "/joint_states"
        self.state_pub = self.create_publisher(JointState, state_topic, STATE_QOS)
        self.event_pub = self.create_publisher(String, "/robot_layer/events", EVENTS_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # the two messages of every tick go as bytes (robot_dyn/nodes/wire.py)
        self.state_encoder = wire.JointStateEncoder(self.robot.joint_names)
        self.reference_decoder = wire.ReferenceDecoder()
        if self.emulation == "franka":  # JTC's topic (the adapter's rate, up to 500 Hz)
            self.create_subscription(JointTrajectory, bridge.FRANKA_COMMAND_TOPIC, self.on_jtc_trajectory, RELIABLE,
                                     raw=True)
        else:
            self.create_subscription(JointTrajectory, "/impedance_reference", self.on_reference, RELIABLE, raw=True)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.cameras = self._cameras(p) if p["cameras"] else None
        if self.episode is not None:
            if not p["score_rate_hz"] > 0:
                raise ValueError(f"parameter 'score_rate_hz' must be positive, got {p['score_rate_hz']}")
            self.score_period, self.next_score = 1.0 / p["score_rate_hz"], self.arm.time
            self.score_pub = self.create_publisher(Float64, "/task/score", IMAGE_QOS)
            self.success_pub = self.create_publisher(Bool, "/task/success", IMAGE_QOS)
            self.wrench_pub = self.create_publisher(WrenchStamped, "/task/contact_wrench", IMAGE_QOS)
            self.object_pubs = {name: self.create_publisher(PoseStamped, f"/task/{name}", IMAGE_QOS)
                                for name in task.object_names}

        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # realtime: once a tick, on the ticks' own grid (the pacer starts with the timer), so states go out
        # a tick apart; lockstep: only the controller's timeout and the first state's repetition are watched
        self.create_timer(self.tick_period if self.mode == "realtime" else 0.02, signed(self.on_timer), clock=steady)
        self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics, clock=steady)
        self.pacer = Pacer(self.mode, self.tick_period, p["lockstep_timeout_s"])
        self.wall_start, self.sim_start = time.monotonic(), self.arm.time
        self.pacer.start(self.wall_start)
        diagnostics_msg(0.0, "", self.stats(DIAGNOSTICS_WINDOW))  # its first call (imports, 12 ms) before ticking
        self.scheduling = "batch" if self.mode == "lockstep" else "realtime"  # run() applies it: a lockstep sim is a throughput computation
        self.publish_state()
        self.get_logger().info(
            f"{self.robot.name} in {p['backend']} ({p['effects_profile']} effects), {self.mode}, physics "
            f"{p['physics_rate_hz']:.0f} Hz, state {1 / self.tick_period:.0f} Hz"
        )

    def _vendor_law(self, p: dict, backend, q0: np.ndarray):
        """The emulated vendor controller in the robot layer's place (robot_dyn.sim.vendor_laws)."""
        from robot_dyn.sim.vendor_laws import emulated_jtc

        if self.emulation != "franka":
            raise ValueError(f"parameter 'hardware_emulation' must be '' or 'franka', got '{self.emulation}' (kuka: "
                             "lbr_fri_idl's LBRTorqueCommand is not installable here; see the README)")
        if p["mode"] != "realtime":
            raise ValueError("parameter 'hardware_emulation' needs mode 'realtime': the arm does not wait for anyone")
        path = Path(p["emulated_controllers"]) if p["emulated_controllers"] else paths.hardware_path(
            "franka/fr3_impedance_controllers.yaml")
        law, notes = emulated_jtc(self.robot, path, q0, backend.dt)
        for note in notes:
            self.get_logger().warning(note)
        self.get_logger().info(f"emulating the FR3's joint_trajectory_controller (effort) from {path}")
        return law

    def _scene(self, p: dict):
        """(scene extensions for the backend, the scene config) from parameters scene / cameras."""
        if p["scene"] not in SCENES:
            raise ValueError(f"parameter 'scene' must be one of {list(SCENES)}, got '{p['scene']}'")
        if not (p["scene"] or p["cameras"]):
            return None, None
        if p["backend"] != "mujoco":
            raise ValueError("parameters 'scene' and 'cameras' need backend 'mujoco'")
        from robot_dyn.perception.episodes import load_config
        from robot_dyn.sim.deformables import DeformableScene

        for name in ("camera_width", "camera_height", "camera_shadow_size"):
            if p[name] < 0:
                raise ValueError(f"parameter '{name}' must be >= 0, got {p[name]}")
        config = load_config(p["scene_config"] or None).with_images(p["camera_width"] or None, p["camera_height"] or None,
                                                                    p["camera_shadow_size"])
        extensions = []
        if p["scene"] == "rope":
            extensions.append(DeformableScene(table=config.table, rope=config.rope, pusher=config.pusher))
        if self.episode is not None:
            extensions.append(self.episode.scene)
        if p["cameras"]:
            self.rig = camera_rig(config, p["scene"], p["task_config"] or None)
            extensions.append(self.rig)
        return extensions, config

    def _cameras(self, p: dict):
        """The capture core, the camera publishers (in realtime: the camera process), and the fixed
        camera poses published once (latched)."""
        from robot_dyn.perception.live import SimCameraCapture

        backend = self.arm.backend
        capture = SimCameraCapture(backend.model, self.rig, objects=(self.scene_config.rope.name,),
                                   rate_hz=p["camera_rate_hz"], start_time=self.arm.time)
        self.world_frame = p["world_frame"]
        moving = capture.renderer.moving
        fixed = [c for c in capture.calibrations if c.name not in moving]
        for cal in fixed:
            pose = self.create_publisher(TransformStamped, cm.camera_topics(cal.name)["pose"], LATCHED)
            pose.publish(cm.camera_pose_msg(cal, self.arm.time, self.world_frame))
        try:  # the standard place for static transforms, where the message package exists (a ROS 2 install)
            from tf2_msgs.msg import TFMessage

            transforms = [cm.camera_pose_msg(c, self.arm.time, self.world_frame) for c in fixed]
            if self.robot.base_link != self.world_frame:  # in sim the world frame is the arm's base frame
                base = TransformStamped(child_frame_id=self.robot.base_link)
                base.header.stamp, base.header.frame_id = to_stamp(self.arm.time), self.world_frame
                base.transform.rotation.w = 1.0
                transforms.append(base)
            self.tf_static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED)
            self.tf_static_pub.publish(TFMessage(transforms=transforms))
        except ImportError:  # the PyPI wheels have no tf2_msgs: the per-camera pose topics carry the same
            self.tf_static_pub = None
        if p["mode"] == "lockstep":
            self.camera_publishers = CameraPublishers(self, capture.calibrations, moving, self.world_frame,
                                                      p["publish_ground_truth"])
            self.render_timer, self.camera_set_timer = TickTimer(), TickTimer()  # rendering; rendering + publishing
        else:
            self.camera_process = CameraProcess(backend.model, self.rig, capture.objects, self.world_frame,
                                                p["publish_ground_truth"])
            self.render_timer, self.camera_set_timer = self.camera_process.render_timer, self.camera_process.set_timer
        self.get_logger().info(f"cameras {[c.name for c in capture.calibrations]}: "
                               f"{capture.calibrations[0].width}x{capture.calibrations[0].height} at "
                               f"{p['camera_rate_hz']:g} Hz sim time")
        return capture

    def capture_cameras(self) -> None:
        """One camera set if one is due (between physics ticks): rendered and published now in lockstep,
        its state handed to the camera process in realtime."""
        if self.cameras is None or not self.cameras.due(self.arm.time):
            return
        if self.mode == "lockstep":
            capture = self.cameras.capture(self.arm.backend.data)
            self.render_timer.add(capture.seconds)
            self.camera_set_timer.add(capture.seconds + self.camera_publishers.publish(capture))
        else:
            self.camera_process.submit(self.cameras.snapshot(self.arm.backend.data))

    def _settings(self, p: dict) -> ImpedanceSettings:
        overrides = {field: p[name] for name, field in GAIN_PARAMETERS.items() if p[name] != []}
        return ImpedanceSettings.from_robot(self.robot, **overrides)

    def on_set_parameters(self, params) -> SetParametersResult:
        """Gains and limits change at run time; anything else needs a restart."""
        changes = {prm.name: prm.value for prm in params}
        fixed = sorted(set(changes) - set(GAIN_PARAMETERS) - {"use_sim_time"})
        if self.emulation:
            fixed = sorted(set(changes) - {"use_sim_time"})  # the emulated controller's gains are its file's
        if fixed:
            return SetParametersResult(successful=False, reason=f"{fixed} cannot change at run time; restart the node")
        current = parameter_values(self, DEFAULTS)
        current.update({k: list(v) if hasattr(v, "__len__") and not isinstance(v, str) else v for k, v in changes.items()})
        try:
            self.arm.layer.update_settings(self._settings(current))
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.get_logger().info(f"robot layer settings updated: {sorted(changes)}")
        return SetParametersResult(successful=True)

    # --- references --------------------------------------------------------
    def on_reference(self, data: bytes) -> None:
        now, wall = self.arm.time, time.monotonic()
        try:
            msg = self.reference_decoder.decode(data)
        except wire.WireError as exc:
            self.arm.layer.rejected += 1
            self.arm.layer.events.append((now, f"reference rejected: {exc}"))
            self.flush_events()
            return
        stamp = msg.stamp_ns * 1e-9
        sent = self.state_walls.pop(msg.stamp_ns - self.answer_offset_ns, None)
        if sent is not None:
            self.round_trip_timer.add(wall - sent)
        if len(msg.points) != 1:
            self.arm.layer.rejected += 1
            self.arm.layer.events.append((now, f"reference rejected: points: expected exactly 1 point, got {len(msg.points)}"))
        else:
            pt = msg.points[0]
            self.arm.layer.submit(now, stamp, msg.joint_names, pt.positions, pt.velocities, pt.accelerations, pt.effort)
        self.flush_events()
        self.pacer.on_reference(stamp, wall)
        while self.pacer.ready(self.arm.time):
            self.advance_tick()

    def on_jtc_trajectory(self, data: bytes) -> None:
        """A trajectory for the emulated JTC: one point (what the adapter sends)."""
        now = self.arm.time
        try:
            msg = self.reference_decoder.decode(data)
            if len(msg.points) != 1:
                raise ValueError(f"the emulation takes one point, got {len(msg.points)}")
        except ValueError as exc:  # a WireError too
            self.arm.layer.rejected += 1
            self.arm.layer.events.append((now, f"trajectory rejected: {exc}"))
        else:
            pt = msg.points[0]
            self.arm.layer.receive(now, msg.stamp_ns * 1e-9, msg.joint_names, pt.time_from_start_ns * 1e-9, pt.positions,
                                   pt.velocities, pt.accelerations, pt.effort)
        self.flush_events()

    def on_timer(self) -> None:
        wall = time.monotonic()
        was_free = self.pacer.free_running
        due = self.pacer.on_timer(wall)
        if self.pacer.free_running and not was_free:
            self.get_logger().warning(f"no reference for {self.pacer.timeout:.2f} s of wall time: running on in real time")
        for _ in range(due):
            self.advance_tick()
        if self.pacer.republish_due(wall):
            self.publish_state()  # nobody has answered yet: repeat the unchanged state

    def publish_score(self) -> None:
        """A task scene's score, success, tool contact force (its mean over the period, as a force sensor's
        filter gives it) and objects' planar poses (z 0), every score period of sim time."""
        if self.episode is None or self.arm.time < self.next_score - 1e-9:
            return
        self.next_score += self.score_period
        score = self.episode.score(self.arm.backend.model, self.arm.backend.data)
        force = self.contact_force.take()  # averaged over the period's physics steps
        if force is not None:
            score["contact_force_n"] = force
        for pub, msg in zip((self.score_pub, self.success_pub, self.wrench_pub),
                            task_score_msgs(score, self.arm.time, self.robot.base_link)):
            pub.publish(msg)
        for name, pose in self.episode.objects(self.arm.backend.model, self.arm.backend.data).items():
            self.object_pubs[name].publish(planar_pose_msg(pose, 0.0, self.arm.time, self.robot.base_link))

    def advance_tick(self) -> None:
        self.arm.advance(self.steps_per_tick, after_step=self.contact_force.add if self.contact_force is not None else None)
        self.publish_score()
        self.capture_cameras()  # before the tick counts as done: lockstep's timeout starts after the rendering
        self.pacer.advanced(time.monotonic())
        self.flush_events()
        self.publish_state()

    def publish_state(self) -> None:
        t, q, qd, tau = self.arm.state()
        if self.pacer.paced_by_wall_clock and self.last_state_time < t and self.pacer.referenced:
            # the last state's reference had to be here before this state goes out
            self.late_references += self.pacer.newest < self.last_state_time - 1e-9
        stamp_ns = int(round(t * 1e9))
        self.clock_pub.publish(wire.clock_message(stamp_ns))
        self.state_pub.publish(self.state_encoder.encode(stamp_ns, q, qd, tau))
        if self.last_state_time < t:
            self.states_published += 1
            self.last_state_time = t
            if len(self.state_walls) > 64:  # answers to older states no longer come
                self.state_walls.clear()
            self.state_walls[stamp_ns] = time.monotonic()

    def flush_events(self) -> None:
        for t, text in self.arm.layer.drain_events():
            # rclpy ties a severity to each call site: one call per severity.
            if "rejected" in text or "stale" in text or "Aborted" in text:
                self.get_logger().warning(f"[t={t:.3f}] {text}")
            else:
                self.get_logger().info(f"[t={t:.3f}] {text}")
            self.event_pub.publish(String(data=f"{t:.4f} {text}"))

    # --- reporting ---------------------------------------------------------
    def stats(self, recent: int | None = None) -> dict:
        """Everything measured; timing percentiles over the last `recent` ticks (diagnostics), else all kept."""
        wall = time.monotonic() - self.wall_start
        sim = self.arm.time - self.sim_start
        out = {
            "sim_time_s": sim,
            "wall_time_s": wall,
            "rtf": sim / wall if wall > 0 else math.nan,
            "physics_rtf": sim / self.arm.physics_seconds if self.arm.physics_seconds > 0 else math.nan,
            "mode": self.arm.layer.mode,
            "rejected_references": self.arm.layer.rejected,
            "missed_ticks": self.pacer.missed_ticks,
            "states_published": self.states_published,
            "late_references": self.late_references,
            "late_reference_rate": self.late_references / max(self.states_published, 1),
            "layer_hold_events": self.arm.layer.hold_events,
        }
        out.update(self.round_trip_timer.summary("reference_round_trip_", recent))
        out.update(self.arm.inner_timer.summary("inner_tick_", recent))
        if self.cameras is not None:
            if self.mode != "lockstep":
                self.camera_process.poll()
            out.update(self.render_timer.summary("camera_render_", recent))
            out.update(self.camera_set_timer.summary("camera_set_", recent))
            out["camera_sets_skipped"] = 0 if self.mode == "lockstep" else self.camera_process.skipped
        return out

    def publish_diagnostics(self) -> None:
        self.diag_pub.publish(diagnostics_msg(self.arm.time, "sim: robot layer", self.stats(DIAGNOSTICS_WINDOW)))

    def on_shutdown(self) -> None:
        if self.stats_file:
            with open(self.stats_file, "w") as f:
                json.dump(self.stats(), f, indent=2)
        if self.cameras is not None:
            if self.mode != "lockstep":
                self.camera_process.close()
            self.cameras.close()
        self.arm.backend.close()


def main(args=None):
    run(SimNode, args)


if __name__ == "__main__":
    main()
