"""controller node: the outer loop. Goals in, impedance references out, at `rate_hz`.

Ticks are driven by /joint_states (decimated to rate_hz), so the loop follows sim
time in simulation and the arm's state stream on hardware.

A few ticks ahead (`reference_lead_ticks`, L): the state at t is answered with the reference for
t + L / rate_hz, sent as soon as it is computed; the robot layer keeps it until its stamp. The
arm then holds references for its next L ticks: a tick of the controller that runs late, or a
few milliseconds in which another process (or the kernel) holds its core, starve nothing. A
reference is the desired state (integrated by the loop) plus what the measured state tells it
(the time scaling's lag, a learned feedforward's history, a resync), so this only delays the
latter by L ticks, and a goal, an obstacle or a parameter change acts at the next computed tick.
In lockstep the sim's step and the controller's compute overlap instead of taking turns. With
L = 0 each state is answered with the reference for its own time, computed on its arrival (for
hardware adapters that forward a reference as it comes).
"""
from __future__ import annotations

import json
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory, MultiDOFJointTrajectory
from visualization_msgs.msg import MarkerArray

from robot_dyn.control.configured import filter_settings, goal_planner, mpc_settings, outer_loop_config, safety_filter
from robot_dyn.control.impedance import FUTURE_TOLERANCE
from robot_dyn.control.outer_loop import LEARNED_MODES, GoalRejected, OuterLoop, OuterLoopConfig
from robot_dyn.control.planner_process import PlannerProcess
from robot_dyn.nodes.messages import (
    cartesian_path_from_data, diagnostics_msg, obstacle_markers, obstacle_updates, pose_msg, pose_to_arrays,
)
from robot_dyn.bringup import schema
from robot_dyn.nodes import wire
from robot_dyn.nodes.events import Events
from robot_dyn.nodes.parameters import declare_parameters, parameter_values, run
from robot_dyn.robots import load_robot
from robot_dyn.robots.tools import with_tool
from robot_dyn.safety.obstacles import ObstacleTracker
from robot_dyn.safety.sets import SafetyConfigError, load_safe_sets
from robot_dyn.tasks import load_task
from robot_dyn.timing import Decimator, TickTimer

DEFAULTS = schema.defaults(schema.CONTROLLER)
DESCRIPTIONS = schema.descriptions(schema.CONTROLLER)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# What a recorder keeps: a publisher's history is what it can resend to a reader that fell behind, so it
# covers 2 s of the 500 Hz references (a depth of 10 lost some to a recorder busy starting an episode)
RECORDED = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
BACKLOG_GAP = 0.25e-3  # s: a state event taken up sooner than this after a compute ended queued during it
DIAGNOSTICS_WINDOW = 1000  # ticks (2 s at 500 Hz) of the timing percentiles in /diagnostics
# Facts the rest of the graph was started with (robot, rates, gravity handling, the feedforward model).
FIXED_AT_START = {"robot", "tool", "tool_config", "rate_hz", "feedforward", "feedforward_checkpoint", "robot_compensates_gravity",
                  "desired_pose_rate_hz", "diagnostics_period_s", "stats_file", "safety_filter", "safety_config",
                  "safety_error_model", "goal_planner", "mpc_rate_hz", "mpc_horizon", "mpc_gamma", "mpc_joint_margin",
                  "mpc_process", "lockstep"}
class ControllerNode(Node):
    def __init__(self):
        super().__init__("controller")
        declare_parameters(self, DEFAULTS, DESCRIPTIONS)
        p = parameter_values(self, DEFAULTS)
        self.robot = load_robot(p["robot"])
        if p["tool"]:  # the task's tool on the flange: its mass and shape are the robot's from here on
            self.robot = with_tool(self.robot, load_task(p["tool"], p["tool_config"] or None).tool)
        config = outer_loop_config(p)
        learned = None
        if config.feedforward in LEARNED_MODES:
            learned = self._load_learned(p["feedforward_checkpoint"], config)
            if learned is None:
                config.feedforward = "nominal"
        sets = load_safe_sets(self.robot, p["safety_config"] or None)  # an unreadable file stops the node
        self.safety = safety_filter(self.robot, p, self.get_logger(), sets)
        self.planner = goal_planner(self.robot, p, sets)
        self.obstacles = ObstacleTracker()
        self.loop = OuterLoop(self.robot, config, learned=learned, safety=self.safety, planner=self.planner)
        self.safety_timer, self.mpc_timer = TickTimer(), TickTimer()
        self._obstacle_version = self._applied_version = 0
        self.period = 1.0 / p["rate_hz"]
        self.lead = p["reference_lead_ticks"]
        if not (isinstance(self.lead, int) and 0 <= self.lead and self.lead * self.period <= FUTURE_TOLERANCE):
            raise ValueError(f"parameter 'reference_lead_ticks' must be an integer from 0 to "
                             f"{int(FUTURE_TOLERANCE * p['rate_hz'])} at {p['rate_hz']:g} Hz (the robot layer takes "
                             f"references at most {FUTURE_TOLERANCE * 1e3:g} ms ahead), got {self.lead!r}")
        self.lockstep = p["lockstep"]
        self.resync_threshold = p["resync_threshold"]
        self.test_tick_delay = p["test_tick_delay_s"]
        self.pose_period = 1.0 / p["desired_pose_rate_hz"]
        self.stats_file = p["stats_file"]
        self.tick_timer = TickTimer()  # a whole /joint_states callback: its references computed and sent
        self.compute_timer = TickTimer()  # computing one reference (OuterLoop.tick), lockstep plan waits left out
        self.decimator = Decimator(self.period)
        self.last_pose_pub = -np.inf
        self.last_reference = None  # the last published JointTrajectory, answered again to a repeated state
        self._order = None  # index map from the JointState's name order to the robot's

        self.ref_pub = self.create_publisher(JointTrajectory, "/impedance_reference", RECORDED)
        self.pose_pub = self.create_publisher(PoseStamped, "/controller/desired_pose", RECORDED)
        self.event = Events(self, "/controller/events")
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.marker_pub = self.create_publisher(MarkerArray, "/safety/markers", 10)
        self.create_subscription(MarkerArray, "/safety/obstacles", self.on_obstacles, RELIABLE)
        # In real time a state is worth answering while the references it yields still lie ahead (lead ticks):
        # a controller that fell behind answers those few, not a queue of old ones. The lockstep sim may
        # send its next states before this one is answered: keep them all.
        state_qos = RELIABLE if self.lockstep else QoSProfile(depth=max(1, self.lead - 1), reliability=ReliabilityPolicy.RELIABLE)
        # the two messages of every tick go as bytes (robot_dyn/nodes/wire.py)
        self.state_decoder = wire.JointStateDecoder()
        self.reference_encoder = wire.ReferenceEncoder(self.robot.joint_names)
        self.state_sub = self.create_subscription(JointState, "/joint_states", self.on_joint_state, state_qos, raw=True)
        self.states_skipped = 0  # real time: states passed over for a newer one, or as the backlog of a slow compute
        self._compute_end = -np.inf  # perf_counter s when the last state's compute ended
        self._compute_seconds = 0.0  # how long it took
        self.create_subscription(JointState, "/controller/joint_goal", self.on_joint_goal, RELIABLE)
        self.create_subscription(PoseStamped, "/controller/pose_goal", self.on_pose_goal, RELIABLE)
        # raw: a 500-point path took rclpy 12 ms to make into Python objects, and 9 more to read, in the loop's thread
        self.create_subscription(MultiDOFJointTrajectory, "/controller/cartesian_path", self.on_cartesian_path, RELIABLE,
                                 raw=True)
        self.create_subscription(TwistStamped, "/controller/twist_command", self.on_twist_command, RELIABLE)
        self.create_subscription(WrenchStamped, "/controller/wrench_command", self.on_wrench_command, RELIABLE)
        self.rejections = {"twist": 0, "wrench": 0}  # commands ignored, per kind
        self._faults: dict[tuple[str, str], int] = {}  # rejections per kind and field at fault
        self.twist_latency = TickTimer()  # a twist command's stamp -> the first reference computed after it went out
        self.twist_age = TickTimer()  # its part before arrival: the stamp -> the newest state when it arrived
        self._twist_stamp = None  # the stamp of a twist command no reference has followed yet
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.create_timer(p["diagnostics_period_s"], self.publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        diagnostics_msg(0.0, "", self.stats(DIAGNOSTICS_WINDOW))  # its first call (imports, 12 ms) before ticking
        self.scheduling = "batch" if self.lockstep else "realtime"  # run() applies it: a lockstep sim is a throughput computation
        self.t_now = None
        self.get_logger().info(f"{self.robot.name}: outer loop at {p['rate_hz']:.0f} Hz, feedforward "
                               f"'{self.loop.config.feedforward}', goal planner '{p['goal_planner']}', safety filter '{p['safety_filter']}'")

    def _load_learned(self, checkpoint: str, config: OuterLoopConfig):
        """The learned feedforward, or None (with a warning) if the checkpoint cannot be used."""
        try:
            from robot_dyn.dynamics.rigid_body import RigidBody
            from robot_dyn.inverse_dynamics.models import load_model
            from robot_dyn.inverse_dynamics.online import LearnedFeedforward

            if not checkpoint:
                raise ValueError("parameter 'feedforward_checkpoint' is empty")
            rb = RigidBody(self.robot)
            model = load_model(checkpoint, rb)
            if model.kind != config.feedforward:
                raise ValueError(f"{checkpoint} holds a '{model.kind}' model, not '{config.feedforward}'")
            self.get_logger().info(f"feedforward: {model.kind} model from {checkpoint}")
            return LearnedFeedforward(model, rb, config.robot_compensates_gravity)
        except Exception as exc:  # a bad checkpoint must never stop the arm's controller
            self.get_logger().warning(f"learned feedforward unavailable ({exc}); falling back to nominal feedforward")
            return None

    def on_set_parameters(self, params) -> SetParametersResult:
        changes = {prm.name: prm.value for prm in params}
        fixed = sorted(set(changes) & FIXED_AT_START)
        if fixed:
            return SetParametersResult(successful=False, reason=f"{fixed} cannot change at run time; restart the node")
        current = parameter_values(self, DEFAULTS)
        current.update(changes)
        try:
            config = outer_loop_config(current)
            config.feedforward = self.loop.config.feedforward  # keeps a start-up fallback to nominal
            settings = filter_settings(current)
            planning = mpc_settings(current)
            threshold = float(current["resync_threshold"])
            if not threshold > 0:
                raise ValueError(f"'resync_threshold' must be positive, got {threshold}")
        except (TypeError, ValueError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self.loop.config, self.resync_threshold = config, threshold
        if self.safety is not None and any(name.startswith("safety_") for name in changes):
            self.safety.update_settings(settings)
        if self.planner is not None and any(name.startswith("mpc_") for name in changes):
            self.planner.update(settings=planning)
        return SetParametersResult(successful=True)

    # --- state and tick ----------------------------------------------------
    def _measured(self, msg: wire.JointStateData) -> tuple[np.ndarray, np.ndarray]:
        """Measured (q, qd) in the robot's joint order; raises ValueError naming what is wrong."""
        names = tuple(msg.name)
        if self._order is None or self._order[0] != names:
            missing = [j for j in self.robot.joint_names if j not in names]
            if missing:
                raise ValueError(f"joint_states lacks joints {missing}")
            self._order = (names, [names.index(j) for j in self.robot.joint_names])
        if len(msg.position) != len(names):
            raise ValueError(f"joint_states has {len(msg.position)} positions for {len(names)} names")
        idx = self._order[1]
        q = np.asarray(msg.position)[idx]
        qd = np.asarray(msg.velocity)[idx] if len(msg.velocity) == len(names) else np.zeros(len(idx))
        if not (np.all(np.isfinite(q)) and np.all(np.isfinite(qd))):
            raise ValueError("joint_states has non-finite positions or velocities")
        return q, qd

    def _newest_state(self, data: bytes) -> bytes | None:
        """In real time, the newest state already waiting instead of `data`, or None to pass this event
        by. The executor queues an event per arriving state; a controller slower than its rate (its
        compute longer than the period) would answer every one of them in turn while the queue grew
        without bound, and a goal or a twist command waited behind it (over 10 s after 5 s of an 8 ms
        test_tick_delay_s). So when the last compute took longer than a period, an event taken up less
        than BACKLOG_GAP after it ended is one that queued during it: it is passed by, cheaply, and the
        compute that follows uses the newest state. A controller within its period passes none by (it
        catches up after a stall by answering each state). In lockstep every state is answered."""
        if self.lockstep:
            return data
        with self.state_sub.handle:
            while (taken := self.state_sub.handle.take_message(self.state_sub.msg_type, True)) is not None:
                data = taken[0]
                self.states_skipped += 1
        if self._compute_seconds > self.period and time.perf_counter() - self._compute_end < BACKLOG_GAP:
            self.states_skipped += 1
            return None
        return data

    def on_joint_state(self, data: bytes) -> None:
        data = self._newest_state(data)
        if data is None:
            return
        try:
            msg = self.state_decoder.decode(data)
        except wire.WireError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=1.0)
            return
        t = msg.stamp_ns * 1e-9
        previous = self.decimator.last
        if t == previous and self.last_reference is not None:
            # the lockstep sim repeats a state until it is answered: our answer was lost (late discovery)
            self.ref_pub.publish(self.last_reference)
            return
        if not self.decimator.due(t):
            return  # a faster state stream (1 kHz on hardware) is decimated to rate_hz
        try:
            q, qd = self._measured(msg)
        except ValueError as exc:
            self.get_logger().error(str(exc), throttle_duration_sec=1.0)
            return
        start = time.perf_counter()
        waited_before = self.planner.waited_s if self.planner is not None else 0.0
        self.t_now = t
        try:
            restarted = self._restart_if_needed(t, q, previous)
            self.loop.observe(t, q, qd)
            for tick in self._ticks_to_compute(t, restarted):
                self._publish(self._compute(tick))
        except Exception as exc:  # never let one bad tick kill the controller: restart from the arm
            self.get_logger().error(f"outer-loop tick failed ({exc!r}): restarting from the measured position")
            self.loop.start(t, q)
            self._publish(self.loop.tick(t))
        # the callback's own time: a lockstep wait for a late plan (PlannerProcess) is the sim's, not the tick's
        waited = self.planner.waited_s - waited_before if self.planner is not None else 0.0
        self.tick_timer.add(time.perf_counter() - start - waited)
        self._compute_end = time.perf_counter()
        self._compute_seconds = self._compute_end - start
        for text in self.loop.events:
            self.event(text, warn=True)
        for text in self.loop.notices:
            self.event(text)
        self.loop.events.clear()
        self.loop.notices.clear()
        if self.loop.time - self.last_pose_pub >= self.pose_period:
            self.publish_desired_pose(self.loop.time)

    def _ticks_to_compute(self, t: float, restarted: bool) -> list[float]:
        """The times of the references that answer the state at t: after a start, the state's own tick
        and the lead's ticks; else the outer loop's next ticks up to `lead` periods after t, at most
        two (one in steady running; two while catching up after a stall, so that the robot layer's
        references have no gaps), and none already due (a controller too slow for its rate then
        integrates over what it could not make, instead of computing ever more each state)."""
        if restarted:
            return [t + k * self.period for k in range(self.lead + 1)]
        end = t + self.lead * self.period + 0.25 * self.period  # a quarter period of jitter in the stamps
        tick = max(self.loop.time + self.period, t + self.period if self.lead else t)
        ticks = []
        while tick <= end and len(ticks) < 2:
            ticks.append(tick)
            tick += self.period
        return ticks

    def _restart_if_needed(self, t: float, q: np.ndarray, previous: float) -> bool:
        """Start the loop from the measured position at the first state, after time went back (a sim
        restart) and when far from the desired state (OuterLoop.resync); True if it (re)started."""
        if not self.loop.started:
            self.loop.start(t, q)
            self.event(f"started from the measured position at t={t:.3f}")
        elif t < previous:
            self.loop.start(t, q)
            self.event(f"time went back from {previous:.3f} to {t:.3f} s (sim restart?): restarted", warn=True)
        else:
            lag = float(np.max(np.abs(q - self.loop.q_d)))
            dropped = self.loop.resync(t, q, self.resync_threshold)
            if dropped is None:
                return False
            if dropped:
                self.event(f"{dropped} aborted at t={t:.3f}: the arm is {lag:.3f} rad from its reference (held by the "
                           "robot layer, which refuses a reference that far): restarted from the measured position", warn=True)
            else:
                self.event("arm is far from the desired state while idle: restarted from the measured position", warn=True)
        return True

    def _compute(self, t: float):
        """The reference for time t (the loop's next tick), with the statistics of its compute."""
        waited_before = self.planner.waited_s if self.planner is not None else 0.0
        plan_before = self.loop.plan_result
        start = time.perf_counter()
        self._apply_obstacles(t)
        if self.test_tick_delay > 0:
            time.sleep(self.test_tick_delay)
        ref = self.loop.tick(t)
        waited = self.planner.waited_s - waited_before if self.planner is not None else 0.0
        self.compute_timer.add(time.perf_counter() - start - waited)
        if self.loop.safety_result is not None:
            self.safety_timer.add(self.loop.safety_result.solve_s)
        if self.loop.plan_result is not plan_before and self.loop.plan_result is not None:
            self.mpc_timer.add(self.loop.plan_result.solve_s)
        return ref

    def _publish(self, ref) -> None:
        self.last_reference = self.reference_encoder.encode(int(round(ref.stamp * 1e9)), ref.q, ref.qd, ref.qdd, ref.tau_ff)
        self.ref_pub.publish(self.last_reference)
        if self._twist_stamp is not None:
            self.twist_latency.add(max(self.t_now - self._twist_stamp, 0.0))
            self._twist_stamp = None

    def publish_desired_pose(self, t: float) -> None:
        self.pose_pub.publish(pose_msg(*self.loop.desired_pose(), t, self.robot.base_link))
        self.last_pose_pub = t

    # --- safety ------------------------------------------------------------
    def on_obstacles(self, msg: MarkerArray) -> None:
        ops, errors = obstacle_updates(msg, self.robot.base_link, self.t_now or 0.0)
        for text in errors:
            self.event(f"obstacle rejected: {text}", warn=True)
        for op, arg in ops:
            try:
                if op == "update":
                    self.obstacles.update(arg)
                else:
                    self.obstacles.delete(arg)
            except SafetyConfigError as exc:
                self.event(f"obstacle rejected: {exc}", warn=True)
        self._obstacle_version += 1

    def _apply_obstacles(self, t: float) -> None:
        """Hand the live obstacles to the filter (when they changed, or some may have expired)."""
        if self.safety is None:
            return
        current = self.obstacles.current(t)
        if self._obstacle_version != self._applied_version or len(current) != len(self.safety.moving):
            self.safety.set_obstacles(current)
            self._applied_version = self._obstacle_version

    def safety_stats(self, recent: int | None = None) -> dict:
        r = self.loop.safety_result
        if r is None:
            return {}
        return {
            "safety_status": r.status, "safety_min_barrier_m": r.min_barrier, "safety_min_barrier_at": r.min_barrier_label,
            "safety_min_joint_distance_rad": r.min_joint_distance, "safety_active": ",".join(r.active) or "none",
            "safety_tightening_m": r.tightening, "safety_fallback_ticks": self.loop.safety_fallbacks,
            "safety_robust_slack": self.safety.last_slack, "safety_robust_failures": self.safety.robust_failures,
            "safety_obstacles": len(self.safety.obstacles), **self.safety_timer.summary("safety_filter_", recent),
        }

    def planner_stats(self, recent: int | None = None) -> dict:
        r = self.loop.plan_result
        if r is None:
            return {}
        return {
            "mpc_status": r.status, "mpc_slack_m": r.slack, "mpc_active": ",".join(r.active) or "none",
            "mpc_min_predicted_barrier_m": r.min_predicted_barrier, "mpc_failures": self.loop.planner_failures,
            "mpc_lockstep_wait_s": self.planner.waited_s,
            **{k.replace("_us_", "_ms_"): v / 1e3 if "_us_" in k else v for k, v in self.mpc_timer.summary("mpc_", recent).items()},
        }

    # --- goals -------------------------------------------------------------
    def _accept(self, kind: str, command) -> None:
        """Run a goal command at the loop's time (the desired state's, reference_lead_ticks ahead of the last state)."""
        if self.t_now is None or not self.loop.started:
            self.event(f"{kind} rejected: no joint state received yet", warn=True)
            return
        try:
            duration = command()
        except (GoalRejected, ValueError) as exc:
            self.event(f"{kind} rejected: {exc}", warn=True)
            return
        for text in self.loop.notices:  # the motion it preempted
            self.event(text)
        self.loop.notices.clear()
        self.event(f"{kind} accepted at t={self.loop.time:.4f}: duration {duration:.3f} s")

    def on_joint_goal(self, msg: JointState) -> None:
        def command():
            names = list(msg.name)
            unknown = [j for j in names if j not in self.robot.joint_names]
            if unknown or sorted(names) != sorted(self.robot.joint_names):
                raise GoalRejected(f"name: expected the joints {list(self.robot.joint_names)}, got {names}")
            if len(msg.position) != len(names):
                raise GoalRejected(f"position: {len(msg.position)} values for {len(names)} joints")
            goal = np.asarray(msg.position)[[names.index(j) for j in self.robot.joint_names]]
            return self.loop.command_joint_goal(self.loop.time, goal)

        self._accept("joint goal", command)

    def on_pose_goal(self, msg: PoseStamped) -> None:
        def command():
            if msg.header.frame_id not in ("", self.robot.base_link):
                raise GoalRejected(f"header.frame_id: poses must be in '{self.robot.base_link}', got '{msg.header.frame_id}'")
            return self.loop.command_pose_goal(self.loop.time, *pose_to_arrays(msg.pose))

        self._accept("pose goal", command)

    def on_cartesian_path(self, data: bytes) -> None:
        self._accept("cartesian path", lambda: self.loop.command_cartesian_path(
            self.loop.time, cartesian_path_from_data(wire.decode_cartesian_path(data), self.loop.time)))

    def on_twist_command(self, msg: TwistStamped) -> None:
        """Teleoperation: follow the commanded twist (robot_dyn.control.twist). The stamp is on the graph's
        clock (0: now); header.frame_id is the base frame ('' too) or the end-effector frame."""
        linear, angular = msg.twist.linear, msg.twist.angular
        answer = self._stamped_command("twist", msg.header, lambda stamp, frame: self.loop.command_twist(
            self.loop.time, stamp, [linear.x, linear.y, linear.z], [angular.x, angular.y, angular.z], frame))
        if answer is None:
            return
        stamp, started = answer
        if self._twist_stamp is None:
            self._twist_stamp = stamp if stamp else self.t_now
            self.twist_age.add(max(self.t_now - self._twist_stamp, 0.0))
        for text in self.loop.notices:  # the motion it preempted
            self.event(text)
        self.loop.notices.clear()
        if started:
            self.event(f"twist following started at t={self.loop.time:.4f}")

    def on_wrench_command(self, msg: WrenchStamped) -> None:
        """Superpose a wrench at the end-effector on the impedance (robot_dyn.control.wrench): force N, torque
        Nm; the stamp on the graph's clock (0: now); header.frame_id the base frame ('' too) or the
        end-effector frame. Bounded by wrench_max_force_n and the safety filter's external force."""
        force, torque = msg.wrench.force, msg.wrench.torque
        self._stamped_command("wrench", msg.header, lambda stamp, frame: self.loop.command_wrench(
            self.loop.time, stamp, [force.x, force.y, force.z], [torque.x, torque.y, torque.z], frame))

    def _stamped_command(self, kind: str, header, apply):
        """A streamed command's checks (a joint state first; header.frame_id the base frame, '' or the
        end-effector frame), then apply(stamp s, frame 'base' | 'ee'): (stamp, its answer), or None
        when it was refused (and said why)."""
        frames = {"": "base", self.robot.base_link: "base", self.robot.ee_frame: "ee"}
        if self.t_now is None or not self.loop.started:
            return self._reject(kind, "no joint state received yet")
        frame = frames.get(header.frame_id)
        if frame is None:
            return self._reject(kind, f"header.frame_id: expected '{self.robot.base_link}' or '{self.robot.ee_frame}', "
                                      f"got '{header.frame_id}'")
        stamp = header.stamp.sec + header.stamp.nanosec * 1e-9
        try:
            return stamp, apply(stamp, frame)
        except (GoalRejected, ValueError) as exc:
            return self._reject(kind, str(exc))

    def _reject(self, kind: str, reason: str) -> None:
        """Say why a twist or wrench command was ignored: for each field at fault (the reason's start) the
        first, 10th, 100th and every 1000th time (commands come at 10-100 Hz)."""
        self.rejections[kind] += 1
        key = (kind, reason.split(":")[0])
        count = self._faults[key] = self._faults.get(key, 0) + 1
        if count in (1, 10, 100) or count % 1000 == 0:
            self.event(f"{kind} command rejected ({count} for this so far): {reason}", warn=True)

    # --- reporting ---------------------------------------------------------
    def stats(self, recent: int | None = None) -> dict:
        """Everything measured; timing percentiles over the last `recent` ticks (diagnostics), else all kept."""
        return {**self.tick_timer.summary("outer_tick_", recent), **self.compute_timer.summary("outer_compute_", recent),
                "reference_lead_ticks": self.lead, "time_scale": self.loop.clock.rate,
                "motion_delay_s": self.loop.clock.delay, "twist_rejections": self.rejections["twist"],
                "wrench_rejections": self.rejections["wrench"],
                "states_skipped": self.states_skipped,
                **{k.replace("_us_", "_ms_"): v / 1e3 if "_us_" in k else v
                   for k, v in {**self.twist_latency.summary("teleop_latency_", recent),
                                **self.twist_age.summary("teleop_age_on_arrival_", recent)}.items()},
                **self.planner_stats(recent), **self.safety_stats(recent)}

    def publish_diagnostics(self) -> None:
        if self.t_now is not None:
            self.diag_pub.publish(diagnostics_msg(self.t_now, "controller: outer loop", self.stats(DIAGNOSTICS_WINDOW)))
            if self.safety is not None:
                self.marker_pub.publish(obstacle_markers(self.safety.obstacles, self.robot.base_link, self.t_now))

    def on_shutdown(self) -> None:
        if self.stats_file:
            with open(self.stats_file, "w") as f:
                json.dump(self.stats(), f, indent=2)
        if isinstance(self.planner, PlannerProcess):
            self.planner.close()


def main(args=None):
    run(ControllerNode, args)


if __name__ == "__main__":
    main()
