"""The controller core (outer loop, 100-500 Hz): goals -> smooth references -> impedance reference.

Joint goals become minimum-jerk joint motions; pose goals, Cartesian paths and commanded
twists (teleoperation, robot_dyn.control.twist) are turned into joint motion by second-order differential IK run on the desired
state. With a planner (robot_dyn.control.mpc.ReferenceMPC in the tick, or
robot_dyn.control.planner_process.PlannerProcess beside it), joint and pose goals
are tracked by a model predictive controller instead, replanning every few ticks
with the safe sets as constraints; paths (streams, the figure-8) keep the IK.
Each motion runs on its own clock (robot_dyn.control.time_scaling), which slows or pauses while
the measured arm lags the reference, so goals and paths complete later instead of running into
the robot layer's guard. Every motion gives a nominal joint acceleration; the safety filter
(robot_dyn/safety), when present, changes it as little as keeps the arm safe, and
the desired state integrates it. Each tick returns (q_d, qd_d, qdd_d, tau_ff) for
the robot layer, where tau_ff is the feedforward along the reference (URDF
rigid-body inverse dynamics or a learned model), without gravity when the robot
compensates gravity itself, plus J^T of a commanded end-effector wrench (command_wrench,
robot_dyn.control.wrench).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pinocchio as pin

from robot_dyn.control.ik import IKGains, clik_acceleration, pose_error, warm_up_ik
from robot_dyn.control.time_scaling import MotionClock
from robot_dyn.control.trajectory import CartesianMove, CartesianPath, JointMotion, min_jerk_duration
from robot_dyn.control.twist import TwistFollowing, TwistSettings, commanded_twist
from robot_dyn.control.wrench import WrenchFeedforward, WrenchSettings, commanded_wrench
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots.description import RobotDescription

STALE_PATH = 0.5  # s: a Cartesian path that started longer ago than this is a stale message
FEEDFORWARD_MODES = ("none", "nominal", "identified", "blackbox", "hybrid")
LEARNED_MODES = ("identified", "blackbox", "hybrid")


@dataclass
class OuterLoopConfig:
    feedforward: str = "nominal"
    period: float = 0.002  # s, the outer-loop period
    robot_compensates_gravity: bool = True
    joint_speed_scale: float = 0.5  # joint goals use this share of the velocity/acceleration limits
    cartesian_speed: float = 0.25  # m/s, pose goals
    cartesian_acceleration: float = 1.0  # m/s^2
    angular_speed: float = 1.0  # rad/s
    angular_acceleration: float = 3.0  # rad/s^2
    path_start_tolerance: float = 0.01  # m: a Cartesian path must start this close to the desired pose
    limit_margin: float = 0.02  # rad kept from joint limits by the reference
    # rad: the motion's clock slows once the reference leads the measured arm by slowdown_lag (any
    # joint) and stops at pause_lag, below the robot layer's guard (max_position_error, 0.05 rad).
    # time_scaling False keeps every motion on schedule (studies of tracking at a fixed schedule).
    time_scaling: bool = True
    slowdown_lag: float = 0.015
    pause_lag: float = 0.03
    # rad: with time scaling, a motion's reference is held within this of the measured arm (any joint):
    # pausing the clock stops the motion, but a contact can push the compliant arm on away from the paused
    # reference (a policy pushing the pusht block took it from 0.033 to the guard in 30 ms). Below the guard.
    hold_lag: float = 0.04
    ik: IKGains = field(default_factory=IKGains)
    twist: TwistSettings = field(default_factory=TwistSettings)
    wrench: WrenchSettings = field(default_factory=WrenchSettings)

    def validated(self) -> "OuterLoopConfig":
        if self.feedforward not in FEEDFORWARD_MODES:
            raise ValueError(f"'feedforward' must be one of {FEEDFORWARD_MODES}, got '{self.feedforward}'")
        for name in ("period", "joint_speed_scale", "cartesian_speed", "cartesian_acceleration", "angular_speed",
                     "angular_acceleration", "path_start_tolerance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"'{name}' must be a positive number, got {value!r}")
        if self.joint_speed_scale > 1:
            raise ValueError(f"'joint_speed_scale' must be at most 1, got {self.joint_speed_scale}")
        if not (isinstance(self.slowdown_lag, (int, float)) and isinstance(self.pause_lag, (int, float))
                and isinstance(self.hold_lag, (int, float))
                and 0 < self.slowdown_lag < self.pause_lag < self.hold_lag < np.inf):
            raise ValueError(f"'slowdown_lag', 'pause_lag' and 'hold_lag' must satisfy 0 < slowdown_lag < pause_lag < "
                             f"hold_lag (rad), got {self.slowdown_lag!r}, {self.pause_lag!r} and {self.hold_lag!r}")
        for name in ("position", "velocity", "nullspace_stiffness", "nullspace_damping", "damping"):
            value = getattr(self.ik, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"IK gain '{name}' must be a finite non-negative number, got {value!r}")
        self.twist.validated()
        self.wrench.validated()
        return self


@dataclass(frozen=True)
class Reference:
    """Impedance reference at time `stamp` (s): rad, rad/s, rad/s^2, Nm."""

    stamp: float
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    tau_ff: np.ndarray


class GoalRejected(ValueError):
    """A goal that cannot be executed; the message says why."""


def _fresh(t: float, stamp: float, timeout: float, what: str) -> float:
    """A streamed command's stamp on the loop's clock (0: now, t), if it is less than `timeout` s old at t;
    else GoalRejected names header.stamp."""
    stamp = t if stamp == 0 else stamp
    if not np.isfinite(stamp) or t - stamp > timeout:
        raise GoalRejected(f"header.stamp: the command is {t - stamp:.3f} s old at t={t:.4f} "
                           f"(commands are {what} for {timeout:g} s after their stamp)")
    return stamp


class OuterLoop:
    """Holds the desired joint state and the active motion; tick() advances both.

    `learned` (e.g. robot_dyn.inverse_dynamics.online.LearnedFeedforward) provides the
    feedforward for the learned modes: observe(t, q, qd) and torque(q, qd, qdd) -> (tau, ok).
    """

    def __init__(self, robot: RobotDescription, config: OuterLoopConfig | None = None, model: RigidBody | None = None,
                 learned=None, safety=None, planner=None):
        self.robot = robot
        self.config = (config or OuterLoopConfig()).validated()
        self.model = model or RigidBody(robot)
        self.learned = learned
        if self.config.feedforward in LEARNED_MODES and learned is None:
            raise ValueError(f"feedforward '{self.config.feedforward}' needs a learned model (a checkpoint)")
        self.learned_fallbacks = 0
        self.safety = safety  # robot_dyn.safety.filter.SafetyFilter or None
        self.safety_result = None  # the filter's last FilterResult
        self.safety_fallbacks = 0
        self.planner = planner  # ReferenceMPC, PlannerProcess (same submit/poll interface) or None
        self.plan_result = None  # the planner's last MPCResult
        self.planner_failures = 0
        self._plan = None  # the plan being followed
        self._next_plan = -np.inf  # s, when to plan again
        self.posture = robot.home.copy()
        self.motion = None  # JointMotion | CartesianMove | CartesianPath | TwistFollowing | None
        self.clock = MotionClock(self.config.slowdown_lag, self.config.pause_lag)
        self._motion_start = 0.0  # s, loop time the motion was commanded
        self._motion_done = True  # its end has been reported
        self.q_d = self.qd_d = self.qdd_d = None
        self._t_last = None
        self.lag_holds = 0  # ticks on which the reference was held to the measured arm (hold_lag)
        self._resting: Reference | None = None  # the last reference, while it holds still (see tick)
        self.events: list[str] = []  # warnings for the operator (the node logs and publishes them)
        self.notices: list[str] = []  # progress: motions done, on time or late
        self.wrench = WrenchFeedforward(self.config.wrench)  # a commanded end-effector wrench (command_wrench)
        self._wrench_clips = 0
        self._lo = robot.q_min + self.config.limit_margin
        self._hi = robot.q_max - self.config.limit_margin
        warm_up_ik(robot.n_joints)  # the IK kernel compiles (or loads) now, not in the first Cartesian tick

    @property
    def started(self) -> bool:
        return self.q_d is not None

    @property
    def time(self) -> float:
        """s, the time of the desired state (of the last tick)."""
        return self._t_last

    def start(self, t: float, q: np.ndarray) -> None:
        """Begin from the measured position at rest (also after a restart or a jump in time)."""
        self.q_d, self.qd_d, self.qdd_d = np.array(q, float), np.zeros(self.robot.n_joints), np.zeros(self.robot.n_joints)
        self._t_last, self.motion, self._resting = t, None, None
        self.wrench.reset(t)
        self.clock = MotionClock(self.config.slowdown_lag, self.config.pause_lag)
        self._replan()
        if self.learned is not None:
            self.learned.reset()

    def busy(self, t: float) -> bool:
        """A motion is under way at loop time t (its clock has not reached its end)."""
        return self.motion is not None and t - self.clock.delay < self.motion.t_end

    def _begin(self, t: float, motion) -> None:
        """`motion` is the active one from loop time t, on schedule."""
        if self.motion is not None and not self._motion_done:
            self.notices.append(f"{self.motion.kind} preempted at t={t:.4f} by a {motion.kind}")
        self.motion, self._motion_start, self._motion_done = motion, t, False
        self.clock.restart()

    def desired_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.model.ee_pose(self.q_d)

    # --- goals -------------------------------------------------------------
    def command_joint_goal(self, t: float, q_goal) -> float:
        """Minimum-jerk motion from the current desired state to q_goal; returns its duration (s)."""
        self._require_started()
        q_goal = np.asarray(q_goal, float)
        if q_goal.shape != (self.robot.n_joints,) or not np.all(np.isfinite(q_goal)):
            raise GoalRejected(f"joint goal: expected {self.robot.n_joints} finite positions")
        outside = np.flatnonzero((q_goal < self._lo) | (q_goal > self._hi))
        if outside.size:
            raise GoalRejected(f"joint goal: outside joint limits (with margin) at {[self.robot.joint_names[i] for i in outside]}")
        scale = self.config.joint_speed_scale
        v_max, a_max = scale * self.robot.qd_max, scale * self.robot.qdd_max
        duration = min_jerk_duration(q_goal - self.q_d, v_max, a_max)
        # From a moving start (a goal preempting a motion) the rest-to-rest bound is not enough:
        # stretch until the sampled peaks respect the limits and no joint leaves them on the way.
        for _ in range(20):
            motion = JointMotion.plan(t, self.q_d, self.qd_d, self.qdd_d, q_goal, duration)
            samples = [motion.sample(t + s) for s in np.linspace(0.0, duration, 101)]
            q, v, a = (np.abs(np.array([x[i] for x in samples])) if i else np.array([x[0] for x in samples]) for i in range(3))
            if np.all(v <= v_max * 1.001) and np.all(a <= a_max * 1.001) and np.all((q >= self._lo) & (q <= self._hi)):
                break
            duration *= 1.25
        self._begin(t, motion)
        self._replan()
        return duration

    def command_pose_goal(self, t: float, position, rotation) -> float:
        """Straight-line minimum-jerk end-effector move to (position m, rotation 3x3), base frame."""
        self._require_started()
        position, rotation = np.asarray(position, float), np.asarray(rotation, float)
        if position.shape != (3,) or rotation.shape != (3, 3) or not (np.all(np.isfinite(position)) and np.all(np.isfinite(rotation))):
            raise GoalRejected("pose goal: position must be 3 finite numbers and orientation a unit quaternion")
        p0, R0 = self.desired_pose()
        angle = np.linalg.norm(CartesianMove(0, 1, p0, R0, position, rotation).rotvec)
        c = self.config
        duration = max(min_jerk_duration(np.linalg.norm(position - p0), c.cartesian_speed, c.cartesian_acceleration),
                       min_jerk_duration(angle, c.angular_speed, c.angular_acceleration))
        self._begin(t, CartesianMove(t, duration, p0, R0, position, rotation))
        self._replan()
        return duration

    def command_cartesian_path(self, t: float, path: CartesianPath) -> float:
        """Follow a sampled end-effector path; it must start near the current desired pose."""
        self._require_started()
        if path.t0 < t - STALE_PATH:
            raise GoalRejected(f"cartesian path starts {t - path.t0:.3f} s in the past; stamp it now or later")
        p0, R0 = self.desired_pose()
        start = path.sample(max(t, path.t0))  # where the path is joined must be where the arm is
        gap = np.linalg.norm(start.position - p0)
        if gap > self.config.path_start_tolerance:
            raise GoalRejected(f"cartesian path starts {gap * 100:.1f} cm from the current pose; send a pose goal to its start first")
        angle = float(np.linalg.norm(pin.log3(start.rotation @ R0.T)))
        if angle > 10 * self.config.path_start_tolerance:  # rad; 0.1 rad for the default 1 cm
            raise GoalRejected(f"cartesian path starts {angle:.2f} rad away from the current orientation")
        self._begin(t, path)
        return path.t_end - t

    def command_twist(self, t: float, stamp: float, linear, angular, frame: str = "base") -> bool:
        """Move the end-effector at a commanded twist from loop time t (teleoperation).

        stamp: the command's time on the loop's clock (s; 0 = now); it is followed until stamp +
        the twist timeout, then the reference brakes to rest. linear, angular: as in the message, in
        `frame` ('base' or 'ee') and the configured units (robot_dyn.control.twist). A twist
        preempts a goal or a path and starts from the desired state's own velocity; a goal or path
        preempts a twist. Returns True when it started following (False: it updated the running one)."""
        self._require_started()
        settings = self.config.twist
        stamp = _fresh(t, stamp, settings.timeout, "followed")
        p, R, jac, _ = self.model.ee_kinematics(self.q_d, self.qd_d)
        velocity, angular_velocity = commanded_twist(linear, angular, frame, R, settings)
        following = isinstance(self.motion, TwistFollowing) and self.motion.t_end == np.inf
        if not following:
            twist = jac @ self.qd_d
            self._begin(t, TwistFollowing(t, p, R, twist[:3], twist[3:], settings))
            self._replan()
        self.motion.command(stamp + settings.timeout - self.clock.delay, velocity, angular_velocity)
        return not following

    def command_wrench(self, t: float, stamp: float, force, torque, frame: str = "base") -> None:
        """Superpose a wrench (force N, torque Nm) at the end-effector on the impedance from loop time t
        (robot_dyn.control.wrench): applied until stamp + the wrench timeout (stamp on the loop's clock, 0 =
        now), in `frame` ('base' or 'ee'), its force clipped to wrench.max_force and to the safety filter's
        external_force (the contact force its joint limits are kept against)."""
        self._require_started()
        settings = self.config.wrench
        stamp = _fresh(t, stamp, settings.timeout, "applied")
        max_force = settings.max_force
        if self.safety is not None:
            max_force = min(max_force, self.safety.settings.external_force)
        _, R = self.desired_pose()
        f, m, clipped = commanded_wrench(force, torque, frame, R, max_force, settings.max_torque)
        if clipped:
            self._wrench_clips += 1
            if self._wrench_clips in (1, 10, 100) or self._wrench_clips % 1000 == 0:
                self.events.append(f"wrench command clipped to {max_force:g} N / {settings.max_torque:g} Nm "
                                   f"on {self._wrench_clips} commands")
        self.wrench.command(stamp + settings.timeout, f, m)

    def resync(self, t: float, q: np.ndarray, threshold: float) -> str | None:
        """When the arm is more than `threshold` rad from the desired state, restart from the measured
        position: idle, the arm was moved or held by the watchdog; during a motion, the robot layer
        held the arm (this loop stalled past its stale-reference horizon) and refuses references that
        far from it (its guard), so the motion can never catch up: it is dropped. Returns None if it
        did not restart, else what it dropped ('' when idle)."""
        if np.max(np.abs(q - self.q_d)) <= threshold:
            return None
        dropped = self.motion.kind if self.busy(t) else ""
        self.start(t, q)
        return dropped

    def _require_started(self) -> None:
        if not self.started:
            raise GoalRejected("no joint state received yet")

    # --- the tick ----------------------------------------------------------
    def tick(self, t: float) -> Reference:
        """Advance the desired state to time t and return the impedance reference for t.

        The desired state integrates last tick's acceleration; this tick's acceleration is the
        active motion's (or a stop when idle), passed through the safety filter. A reference at
        rest with nothing to change it (no motion, a nominal feedforward, a settled filter) is
        the last one again, restamped: holding still costs almost nothing."""
        self._require_started()
        h = t - self._t_last
        if self._resting is not None and self._holds_still():
            self._t_last = t
            self.clock.advance(h)
            return replace(self._resting, stamp=t)
        if h > 0:
            self.q_d = self.q_d + h * (self.qd_d + 0.5 * h * self.qdd_d)
            self.qd_d = self.qd_d + h * self.qdd_d
        self._t_last = t
        if self.clock.advance(h) and self.busy(t):
            self.events.append(f"{self.motion.kind} slowed at t={t:.4f}: the arm lags its reference by "
                               f"{self.clock.lag * 1e3:.0f} mrad (the motion pauses at {self.clock.pause_lag * 1e3:.0f} mrad)")
        self.qdd_d = self._filtered(self._nominal_acceleration(t))
        self._respect_limits()
        self._report_done(t)
        self._come_to_rest()
        tau_ff = self.feedforward(self.q_d, self.qd_d, self.qdd_d)
        wrench = self.wrench.advance(t)
        if wrench.any():  # the commanded wrench through the Jacobian transpose at the desired state
            jac = self.model.ee_kinematics(self.q_d, self.qd_d)[2]
            tau_ff = np.clip(tau_ff + jac.T @ wrench, -self.robot.tau_max, self.robot.tau_max)
        reference = Reference(t, self.q_d.copy(), self.qd_d.copy(), self.qdd_d.copy(), tau_ff)
        self._resting = reference if self._holds_still() else None
        return reference

    def _holds_still(self) -> bool:
        """The reference rests and nothing would move it: no motion, zero velocity and acceleration, a
        feedforward that depends on the desired state alone, and a settled safety filter."""
        return (self.motion is None and not self.qd_d.any() and not self.qdd_d.any() and not self.wrench.active
                and self.config.feedforward not in LEARNED_MODES and (self.safety is None or self.safety.settled))

    def _nominal_acceleration(self, t: float) -> np.ndarray:
        """What the active motion asks for (rad/s^2): the plan's (MPC) or a joint motion's acceleration
        with a PD on its state, the IK's for Cartesian motion, and a stop when idle."""
        plan = self._current_plan(t)
        if plan is not None:
            q, qd, qdd = plan.sample(t)
            gains = self.config.ik
            return qdd + gains.position * (q - self.q_d) + gains.velocity * (qd - self.qd_d)
        if isinstance(self.motion, JointMotion):
            q, qd, qdd = self.clock.view(self.motion, t).sample(t)
            gains = self.config.ik
            return qdd + gains.position * (q - self.q_d) + gains.velocity * (qd - self.qd_d)
        if self.motion is None:
            if not np.any(self.qd_d):
                return np.zeros_like(self.qd_d)
            return np.clip(-self.qd_d / self.config.period, -self.robot.qdd_max, self.robot.qdd_max)
        return self._cartesian_acceleration(t)

    def _report_done(self, t: float) -> None:
        """Say once when the active motion's clock has reached its end, and how late."""
        if self.motion is None or self._motion_done or self.busy(t):
            return
        self._motion_done = True
        text = f"{self.motion.kind} done at t={t:.4f} after {t - self._motion_start:.3f} s"
        if self.clock.delay > 1e-9:
            text += (f", {self.clock.delay:.3f} s late: slowed while the arm lagged its reference "
                     f"(up to {self.clock.peak_lag * 1e3:.0f} mrad)")
        self.notices.append(text)

    def _come_to_rest(self) -> None:
        """A done motion whose reference has settled at its end is over: the reference then holds exactly
        still, and the safety filter reuses what depends on the state alone. A joint goal's reference
        is put on its goal (it is within 1e-6 rad) at rest. A Cartesian motion's ends once the
        end-effector rests on its end pose (1e-6 m and rad): the posture task, which only resolves the
        arm's redundancy while it moves, would otherwise drift the elbow for seconds, and the next
        tick brakes what velocity it left."""
        if self.motion is None or not self._motion_done:
            return
        if isinstance(self.motion, JointMotion):
            goal = self.motion.sample(self.motion.t_end)[0]
            if (np.max(np.abs(self.qd_d)) > 1e-6 or np.max(np.abs(self.qdd_d)) > 1e-4
                    or np.max(np.abs(goal - self.q_d)) > 1e-6):
                return
            self.q_d, self.qd_d, self.qdd_d = goal.copy(), np.zeros_like(self.qd_d), np.zeros_like(self.qdd_d)
        else:
            end = self.motion.sample(self.motion.t_end)
            p, R, jac, _ = self.model.ee_kinematics(self.q_d, self.qd_d)
            if np.max(np.abs(pose_error(end.position, end.rotation, p, R))) > 1e-6 or np.max(np.abs(jac @ self.qd_d)) > 1e-6:
                return
        self.motion = None

    # --- the planner -------------------------------------------------------
    def _replan(self) -> None:
        """A new goal (or a restart): plan on the next tick, from scratch."""
        self._plan, self._next_plan = None, -np.inf
        if self.planner is not None:
            self.planner.reset()

    def _current_plan(self, t: float):
        """The plan to follow at t, replanned every planner period; None without a planner, for
        motions it does not plan (paths), once the goal is reached, while the motion's clock runs
        slow (a plan made at another pace would carry the reference on for up to two planner
        periods), or when planning failed (in each case the motion's own reference is followed,
        still through the safety filter)."""
        if (self.planner is None or not isinstance(self.motion, (JointMotion, CartesianMove)) or self.clock.rate < 1.0
                or self._at_goal(t)):
            return None
        result = self.planner.poll(t)  # a PlannerProcess's answer, a solve after it was asked for
        if result is not None:
            self._take(result)
        if t >= self._next_plan:
            obstacles = self.safety.obstacles if self.safety is not None else None
            if self.planner.submit(t, self.q_d, self.qd_d, self.clock.view(self.motion, t), obstacles):  # False: still solving
                self._next_plan = t + self.planner.settings.dt - 1e-9
                result = self.planner.poll(t)  # a ReferenceMPC answers at once
                if result is not None:
                    self._take(result)
        if self._plan is not None and t > self._plan.t0 + len(self._plan.a) * self._plan.dt:
            self._plan = None  # no new plan for a whole horizon (a stalled planner): the goal's own reference
        return self._plan

    def _take(self, result) -> None:
        """A planner's answer: follow its plan, or count and report its failure."""
        self.plan_result, self._plan = result, result.plan
        if result.plan is None:
            self.planner_failures += 1
            if self.planner_failures in (1, 10, 100) or self.planner_failures % 1000 == 0:
                self.events.append(f"MPC failed ({result.status}) on {self.planner_failures} plans: "
                                   "following the goal's own reference")

    def _at_goal(self, t: float, tolerance: float = 1e-4) -> bool:
        """The motion has ended and the desired state rests at its goal (rad, or m and rad)."""
        if self.busy(t) or np.max(np.abs(self.qd_d)) > 1e-3:
            return False
        if isinstance(self.motion, JointMotion):
            return float(np.max(np.abs(self.motion.sample(self.motion.t_end)[0] - self.q_d))) < tolerance
        goal = self.motion.sample(self.motion.t_end)
        p, R = self.desired_pose()
        return float(np.max(np.abs(pose_error(goal.position, goal.rotation, p, R)))) < tolerance

    def _filtered(self, a_nominal: np.ndarray) -> np.ndarray:
        if self.safety is None:
            return a_nominal
        result = self.safety.filter(self.q_d, self.qd_d, a_nominal)
        self.safety_result = result
        if result.status == "fallback":
            self.safety_fallbacks += 1
            if self.safety_fallbacks in (1, 10, 100) or self.safety_fallbacks % 1000 == 0:
                self.events.append(f"safety filter braking ({result.reason}) on {self.safety_fallbacks} ticks")
        return result.qdd

    def _cartesian_acceleration(self, t: float) -> np.ndarray:
        """The IK's acceleration toward the active Cartesian motion's sample at t."""
        p, R, jac, drift = self.model.ee_kinematics(self.q_d, self.qd_d)
        if isinstance(self.motion, TwistFollowing):
            self.motion.restrain(p, R)
        ref = self.clock.view(self.motion, t).sample(t)
        error = pose_error(ref.position, ref.rotation, p, R)
        twist_error = np.concatenate([ref.velocity, ref.angular_velocity]) - jac @ self.qd_d
        acc_ref = np.concatenate([ref.acceleration, ref.angular_acceleration])
        return clik_acceleration(jac, drift, error, twist_error, acc_ref, self.q_d, self.qd_d, self.posture, self.config.ik)

    def _respect_limits(self) -> None:
        """Keep the reference inside the joint limits (with margin) and velocity limits; say so when it bites."""
        outside = (self.q_d < self._lo) | (self.q_d > self._hi)
        if np.any(outside):
            self.q_d = np.clip(self.q_d, self._lo, self._hi)
            self.qd_d = np.where(outside, 0.0, self.qd_d)
            self.qdd_d = np.where(outside, 0.0, self.qdd_d)
            self.events.append(f"reference clamped at joint limits: {[self.robot.joint_names[i] for i in np.flatnonzero(outside)]}")
        self.qd_d = np.clip(self.qd_d, -self.robot.qd_max, self.robot.qd_max)

    def _hold_to_measured(self, lead: np.ndarray) -> None:
        """During a motion, with time scaling: keep the reference within hold_lag of the measured arm (lead:
        the reference at the state's time minus the measured positions, rad), its velocity zeroed where it
        was held (the arm, pushed by a contact, is not chased past the guard). Done as each state arrives,
        on the reference of the last tick: a gap that grows over ticks (a contact) is held; one that opens
        within a single tick (a stall: the tick integrates the time it missed, while the robot layer held
        the arm) is seen by the next state's resync first, which restarts from the arm instead of making
        the layer jump it to hold_lag from there."""
        if self.motion is None:
            return
        held = np.abs(lead) > self.config.hold_lag
        if not held.any():
            return
        self.q_d = self.q_d - (lead - np.clip(lead, -self.config.hold_lag, self.config.hold_lag))
        self.qd_d = np.where(held, 0.0, self.qd_d)
        self.lag_holds += 1
        if self.lag_holds in (1, 10, 100) or self.lag_holds % 1000 == 0:
            self.events.append(f"{self.motion.kind}: reference held {self.config.hold_lag * 1e3:.0f} mrad from the measured "
                               f"arm ({[self.robot.joint_names[i] for i in np.flatnonzero(held)]}) on {self.lag_holds} ticks")

    def observe(self, t: float, q: np.ndarray, qd: np.ndarray) -> None:
        """Measured state at time t: how far the reference, taken back (or on) to t, leads the arm (the
        motion clock's lag, and the hold to hold_lag), and a learned feedforward's recurrent state. The
        reference is compared at the state's own time: it runs ahead of the states by the reference lead
        and by how late they arrive, which is no lag of the arm."""
        if self.started and self.config.time_scaling:
            h = t - self._t_last
            lead = self.q_d + h * (self.qd_d + 0.5 * h * self.qdd_d) - np.asarray(q, float)
            self.clock.observe(float(np.max(np.abs(lead))))
            self._hold_to_measured(lead)
        if self.learned is not None and self.config.feedforward in LEARNED_MODES:
            self.learned.observe(t, q, qd)

    def feedforward(self, q, qd, qdd) -> np.ndarray:
        """Feedforward torque along the reference (Nm), without gravity if the robot compensates it.

        nominal: URDF rigid-body inverse dynamics; learned modes: the learned model, replaced by
        the nominal torque on any tick where its output is non-finite or beyond the limits.
        """
        if self.config.feedforward == "none":
            return np.zeros(self.robot.n_joints)
        if self.config.feedforward in LEARNED_MODES:
            tau, ok = self.learned.torque(q, qd, qdd)
            if not ok:
                self.learned_fallbacks += 1
                if self.learned_fallbacks in (1, 10, 100) or self.learned_fallbacks % 1000 == 0:
                    self.events.append(f"learned feedforward out of range on {self.learned_fallbacks} ticks: nominal used")
            return tau
        tau = self.model.rnea(q, qd, qdd)
        if self.config.robot_compensates_gravity:
            tau -= self.model.gravity(q)
        return np.clip(tau, -self.robot.tau_max, self.robot.tau_max)
