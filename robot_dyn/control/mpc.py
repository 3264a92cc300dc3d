"""Model predictive control of the joint reference toward a goal, with discrete-time CBF constraints.

The MPC plans the reference's own motion: a double integrator per joint at step `dt`
(25 Hz by default) over `horizon` steps,

    q_{k+1} = q_k + dt v_k + dt^2/2 a_k,    v_{k+1} = v_k + dt a_k,

from the current desired state, tracking the active goal motion (a minimum-jerk joint
move, or a straight-line Cartesian move through the end-effector Jacobian linearised
along the last plan), within joint position, velocity and acceleration limits, and
keeping every Cartesian safe set of robot_dyn/safety (table, workspace, obstacles,
moving ones extrapolated at their velocity) through the discrete CBF condition

    h(q_{k+1}) >= (1 - gamma) h(q_k),   k = 0 .. N-1,

with h linearised along the last plan (one SQP step per solve; the first plan of a joint
goal is linearised along the goal's own minimum-jerk reference, of a Cartesian goal at the
state held).
CBF rows are soft with an exact (linear) penalty, so a plan always exists; the safety
filter that runs on every outer tick after the MPC is the last word (filter.py).

Why cvxpy: the problem is written once with parameters (DPP), compiled once (at
construction), and each solve only refills parameter values. The problem has a fixed
shape: `max_rows` CBF rows, unused ones padded with h = 1, g = 0. Solver: Clarabel
(interior point, 12-16 iterations a plan). OSQP was tried: with the CBF rows' exact
penalty it needed 150 to over 1000 ADMM iterations and, at eps 1e-4, let the plan 11 mm
into the 15 mm margin. So the warm start is the plan's: every solve is linearised along
the last plan shifted to now (sequential QP), not started from the solver's last iterate.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from robot_dyn.control.ik import damped_pinv, pose_error
from robot_dyn.control.trajectory import CartesianMove, JointMotion
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots.description import RobotDescription
from robot_dyn.safety.barriers import SphereKinematics, barrier_rows, row_labels
from robot_dyn.safety.sets import Obstacle, SafeSets

# Interior point at 1e-6 (the default 1e-8 only adds iterations): 12-19 iterations a plan.
# Without iterative refinement of each KKT solve a plan takes 7.5 instead of 12.3 ms in Clarabel,
# with the same iteration count; over 450 plans toward obstacles the accelerations differed by at
# most 0.04 rad/s^2 (limits ~10) and every solve stayed 'optimal'.
CLARABEL_OPTIONS = dict(tol_gap_abs=1e-6, tol_gap_rel=1e-6, tol_feas=1e-6, tol_ktratio=1e-5,
                        iterative_refinement_enable=False)
TASK_ROWS = 6
PLANNED_KINDS = (JointMotion.kind, CartesianMove.kind)  # goals the MPC plans (paths keep the IK)
RUN_TIME_SETTINGS = ("distance_margin", "activation_distance", "terminal_weight", "cartesian_weight", "rotation_weight",
                     "posture_weight")  # end-effector pose rows of the tracking cost (Cartesian goals); then one row per joint


@dataclass(frozen=True)
class MPCSettings:
    """Horizon, limits and weights of the reference MPC (ROS parameters mpc_*, configs/controller.yaml)."""

    dt: float = 0.04  # s, plan step and replanning period (25 Hz)
    horizon: int = 12  # steps (0.48 s)
    gamma: float = 0.25  # discrete CBF rate: h_{k+1} >= (1 - gamma) h_k
    distance_margin: float = 0.015  # m kept from every Cartesian set (a little more than the filter's)
    joint_margin: float = 0.05  # rad kept from joint limits (clear of the filter's margin and force budget)
    limit_scale: float = 0.9  # share of the velocity and acceleration limits the plan may use
    activation_distance: float = 0.3  # m: sets farther than this along the whole plan are left out
    max_rows: int = 12  # CBF rows in the problem (the most critical ones)
    velocity_weight: float = 0.1  # s^2: velocity tracking against position tracking
    acceleration_weight: float = 1e-3  # s^4, on a_k - a_ref_k (the goal motion's acceleration)
    jerk_weight: float = 1e-4  # s^4, on a_k - a_{k-1} against the reference's
    terminal_weight: float = 10.0  # last step's tracking weight
    cartesian_weight: float = 10.0  # rad/m: a pose error of 1 mm costs as much as a joint error of 10 mrad
    rotation_weight: float = 0.3  # m/rad: orientation error against position error (Cartesian goals)
    posture_weight: float = 0.05  # joint posture term under a Cartesian goal, in the task's nullspace
    slack_weight: float = 1e5  # per m of CBF violation in the plan (exact penalty)

    def validated(self) -> "MPCSettings":
        for name in ("dt", "gamma", "limit_scale", "activation_distance", "velocity_weight", "acceleration_weight",
                     "jerk_weight", "terminal_weight", "cartesian_weight", "rotation_weight", "posture_weight",
                     "slack_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"mpc '{name}' must be a positive number, got {value!r}")
        for name in ("distance_margin", "joint_margin"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"mpc '{name}' must be a non-negative number, got {value!r}")
        if self.gamma > 1 or self.limit_scale > 1:
            raise ValueError("mpc 'gamma' and 'limit_scale' must be at most 1")
        for name in ("horizon", "max_rows"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"mpc '{name}' must be a positive integer, got {value!r}")
        return self


@dataclass(frozen=True)
class Plan:
    """The reference's planned motion from t0 (s): q, v (N+1, n) rad, rad/s; a (N, n) rad/s^2."""

    t0: float
    dt: float
    q: np.ndarray
    v: np.ndarray
    a: np.ndarray

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, qd, qdd) at time t, exact for the piecewise-constant acceleration."""
        k = min(max(int((t - self.t0) // self.dt), 0), len(self.a) - 1)
        s = max(t - self.t0 - k * self.dt, 0.0)
        return self.q[k] + s * self.v[k] + 0.5 * s * s * self.a[k], self.v[k] + s * self.a[k], self.a[k]


@dataclass
class MPCResult:
    plan: Plan | None  # None when the solve failed
    status: str  # the solver's status
    solve_s: float  # wall time of the whole plan() call
    slack: float = 0.0  # m, largest CBF violation the plan accepted
    active: tuple[str, ...] = ()  # CBF rows binding somewhere in the plan
    min_predicted_barrier: float = math.inf  # m, smallest h along the plan (linearised)


def checked_update(old_sets: SafeSets, old_settings: MPCSettings, sets: SafeSets | None,
                   settings: MPCSettings | None) -> tuple[SafeSets, MPCSettings]:
    """The (sets, settings) an MPC may switch to at run time, or ValueError: new sets must guard
    the same link spheres; of the settings only RUN_TIME_SETTINGS (the margin, the activation
    distance, the cost weights: problem parameters) may change, the rest shapes the compiled problem."""
    if sets is not None and [sp.name for sp in sets.spheres] != [sp.name for sp in old_sets.spheres]:
        raise ValueError("mpc: new safe sets must guard the same link spheres")
    if settings is not None:
        settings = settings.validated()
        fixed = [f.name for f in dataclasses.fields(MPCSettings) if f.name not in RUN_TIME_SETTINGS
                 and getattr(settings, f.name) != getattr(old_settings, f.name)]
        if fixed:
            raise ValueError(f"mpc settings {fixed} shape the compiled problem; they are fixed at start")
    return (old_sets if sets is None else sets), (old_settings if settings is None else settings)


class ReferenceMPC:
    """plan(t, q, qd, motion, obstacles) -> MPCResult, every `dt` seconds of the outer loop."""

    def __init__(self, robot: RobotDescription, sets: SafeSets, settings: MPCSettings | None = None,
                 model: RigidBody | None = None, posture: np.ndarray | None = None):
        import cvxpy as cp

        self.robot, self.sets = robot, sets
        self.settings = s = (settings or MPCSettings()).validated()
        self.model = model or RigidBody(robot)
        self.kinematics = SphereKinematics(robot, sets)
        self.posture = robot.home.copy() if posture is None else np.asarray(posture, float)
        self.last: Plan | None = None
        n, N, m, r = robot.n_joints, s.horizon, s.max_rows, TASK_ROWS + robot.n_joints
        self.q, self.v = cp.Variable((N + 1, n)), cp.Variable((N + 1, n))
        self.a, self.slack = cp.Variable((N, n)), cp.Variable(m, nonneg=True)  # slack: per row, the whole plan
        self.q0, self.v0, self.a_ref = cp.Parameter(n), cp.Parameter(n), cp.Parameter((N, n))
        self.h0 = cp.Parameter(m)
        # Per step k, stacked (one parameter each, not one per step: each value set is validated by
        # cvxpy, and 60 of them took ~3 ms a plan): rows k*r..(k+1)*r of `task` are A_k, the tracking
        # rows at step k+1; task_q[k], task_v[k] their position and velocity targets b_k, c_k; rows
        # k*m..(k+1)*m of `g` are dh/dq at step k+1, and h(q_{k+1}) ~ g_k q_{k+1} + offset[k].
        self.task, self.task_q, self.task_v = cp.Parameter((N * r, n)), cp.Parameter((N, r)), cp.Parameter((N, r))
        self.g, self.offset = cp.Parameter((N * m, n)), cp.Parameter((N, m))
        dt, lo, hi = s.dt, robot.q_min + s.joint_margin, robot.q_max - s.joint_margin
        v_max, a_max = s.limit_scale * robot.qd_max, s.limit_scale * robot.qdd_max
        q, v, a = self.q, self.v, self.a
        constraints = [q[0] == self.q0, v[0] == self.v0,
                       q[1:] == q[:-1] + dt * v[:-1] + 0.5 * dt * dt * a, v[1:] == v[:-1] + dt * a,
                       q[1:] <= np.tile(hi, (N, 1)), q[1:] >= np.tile(lo, (N, 1)),
                       v[1:] <= np.tile(v_max, (N, 1)), v[1:] >= -np.tile(v_max, (N, 1)),
                       a <= np.tile(a_max, (N, 1)), a >= -np.tile(a_max, (N, 1))]
        # the reference's own acceleration costs nothing: a feasible reference is reproduced
        cost = s.acceleration_weight * cp.sum_squares(a - self.a_ref) + s.slack_weight * cp.sum(self.slack)
        cost += s.jerk_weight * cp.sum_squares((a[1:] - a[:-1]) - (self.a_ref[1:] - self.a_ref[:-1]))
        h_prev = self.h0
        for k in range(N):
            task = self.task[k * r: (k + 1) * r]
            cost += cp.sum_squares(task @ q[k + 1] - self.task_q[k])
            cost += s.velocity_weight * cp.sum_squares(task @ v[k + 1] - self.task_v[k])
            h_next = self.g[k * m: (k + 1) * m] @ q[k + 1] + self.offset[k]
            constraints.append(h_next + self.slack >= (1.0 - s.gamma) * h_prev)
            h_prev = h_next
        self.problem = cp.Problem(cp.Minimize(cost), constraints)
        if not self.problem.is_dpp():  # a programming error: the problem would be rebuilt every solve
            raise RuntimeError("the MPC problem is not DPP")
        self._labels: list[str] = []  # of the rows at the last plan
        self._answer: MPCResult | None = None  # the plan made by submit(), until poll() takes it
        self._selected = np.zeros(0, int)
        self._compile()

    def _compile(self) -> None:
        """Solve once at rest at home with no rows: cvxpy compiles the DPP problem on its first solve
        (about 50 ms), which should not happen inside a control tick."""
        n, m, q = self.robot.n_joints, self.settings.max_rows, self.robot.home
        self.q0.value, self.v0.value, self.h0.value = q, np.zeros(n), np.ones(m)
        self.a_ref.value = np.zeros((self.settings.horizon, n))
        A, N = np.vstack([np.zeros((TASK_ROWS, n)), np.eye(n)]), self.settings.horizon
        self.task.value, self.task_q.value, self.task_v.value = np.tile(A, (N, 1)), np.tile(A @ q, (N, 1)), np.zeros((N, len(A)))
        self.g.value, self.offset.value = np.zeros((N * m, n)), np.ones((N, m))
        self.problem.solve(solver="CLARABEL", **CLARABEL_OPTIONS)
        barrier_rows(self.kinematics, self.sets, self.sets.obstacles, q, np.zeros(n), 0.0)  # its kernel, compiled or loaded

    def reset(self) -> None:
        self.last = None

    def update(self, sets: SafeSets | None = None, settings: MPCSettings | None = None) -> None:
        """New safe sets (same link spheres) or new run-time settings (see checked_update)."""
        self.sets, self.settings = checked_update(self.sets, self.settings, sets, settings)

    # The planner interface OuterLoop uses (robot_dyn.control.planner_process.PlannerProcess has
    # it too): here the plan is made at once, in the caller's tick, which keeps runs deterministic.
    waited_s = 0.0  # never waits for a plan: it makes it

    def submit(self, t: float, q: np.ndarray, qd: np.ndarray, motion, obstacles=None) -> bool:
        self._answer = self.plan(t, q, qd, motion, obstacles)
        return True

    def poll(self, t: float | None = None) -> MPCResult | None:
        answer, self._answer = self._answer, None
        return answer

    def plan(self, t: float, q: np.ndarray, qd: np.ndarray, motion,
             obstacles: tuple[Obstacle, ...] | None = None) -> MPCResult:
        """Plan from the desired state (q, qd at time t) toward `motion` (a joint or pose goal: JointMotion,
        CartesianMove, or either seen through its clock, ScaledMotion), keeping the safe sets and
        `obstacles` (all of them; default the static ones)."""
        start = time.perf_counter()
        s, n = self.settings, self.robot.n_joints
        q, qd = np.asarray(q, float), np.asarray(qd, float)
        if any(x.shape != (n,) or not np.all(np.isfinite(x)) for x in (q, qd)):
            return MPCResult(None, "state has the wrong size or is not finite", time.perf_counter() - start)
        if getattr(motion, "kind", None) not in PLANNED_KINDS:
            return MPCResult(None, f"cannot plan toward {type(motion).__name__}", time.perf_counter() - start)
        obstacles = self.sets.obstacles if obstacles is None else tuple(obstacles)
        self.q0.value, self.v0.value = q, qd
        times = t + s.dt * np.arange(1, s.horizon + 1)
        guess, guess_v = self._initial_guess(t, q, qd, motion)
        self._fill_tracking(motion, times, guess, guess_v)
        h_plan = self._fill_barriers(t, guess, obstacles)
        try:
            self.problem.solve(solver="CLARABEL", **CLARABEL_OPTIONS)
            status = self.problem.status
        except Exception as exc:  # cvxpy raises SolverError on numerical failure
            status = f"solver error: {exc}"
        if status not in ("optimal", "optimal_inaccurate") or self.q.value is None:
            result = MPCResult(None, status, 0.0)
        else:
            plan = Plan(t, s.dt, self.q.value.copy(), self.v.value.copy(), self.a.value.copy())
            result = self._summary(plan, status, h_plan)
        if result.plan is None:
            self.last = None
        else:
            self.last = result.plan
        result.solve_s = time.perf_counter() - start
        return result

    # --- problem data ----------------------------------------------------------
    def _initial_guess(self, t: float, q: np.ndarray, qd: np.ndarray, motion) -> tuple[np.ndarray, np.ndarray]:
        """Linearisation points (q_bar, v_bar) (N+1, n), started at (q, qd): the last plan shifted
        to now; for a new joint goal its own reference; else (q, qd) held."""
        N = self.settings.horizon
        source = self.last if self.last is not None else motion if motion.kind == JointMotion.kind else None
        if source is None:
            return np.tile(q, (N + 1, 1)), np.tile(qd, (N + 1, 1))
        q_bar, v_bar = (np.array(x) for x in zip(*(source.sample(t + k * self.settings.dt)[:2] for k in range(N + 1))))
        return q_bar - q_bar[0] + q, v_bar - v_bar[0] + qd

    def _fill_tracking(self, motion, times: np.ndarray, guess: np.ndarray, guess_v: np.ndarray) -> None:
        """Tracking rows of the cost, with the terminal weight on the last step, and the reference
        acceleration over each step: a joint motion's at the step's middle; for a Cartesian move,
        its spatial acceleration through the Jacobian pseudo-inverse at the guess."""
        s, n = self.settings, self.robot.n_joints
        a_ref = np.zeros((len(times), n))
        for k, tk in enumerate(times):
            if motion.kind == JointMotion.kind:
                a_ref[k] = motion.sample(tk - 0.5 * s.dt)[2]
            else:
                ref = motion.sample(tk - 0.5 * s.dt)
                _, _, J, drift = self.model.ee_kinematics(guess[k], guess_v[k])
                a_ref[k] = damped_pinv(J, 1e-3) @ (np.concatenate([ref.acceleration, ref.angular_acceleration]) - drift)
        self.a_ref.value = np.clip(a_ref, -self.robot.qdd_max, self.robot.qdd_max)
        r = TASK_ROWS + n
        task, task_q, task_v = np.zeros((len(times) * r, n)), np.zeros((len(times), r)), np.zeros((len(times), r))
        for k, tk in enumerate(times):
            w = math.sqrt(s.terminal_weight) if k == len(times) - 1 else 1.0
            A, b, c = task[k * r: (k + 1) * r], task_q[k], task_v[k]  # views, filled in place
            if motion.kind == JointMotion.kind:
                q_ref, qd_ref, _ = motion.sample(tk)
                A[TASK_ROWS:] = np.eye(n)
                b[TASK_ROWS:], c[TASK_ROWS:] = q_ref, qd_ref
            else:
                ref = motion.sample(tk)
                q_bar = guess[k + 1]
                p, R = self.model.ee_pose(q_bar)
                J = self.model.ee_jacobian(q_bar)
                W = s.cartesian_weight * np.repeat([1.0, s.rotation_weight], 3)[:, None]
                A[:TASK_ROWS] = W * J
                b[:TASK_ROWS] = W[:, 0] * (pose_error(ref.position, ref.rotation, p, R) + J @ q_bar)
                c[:TASK_ROWS] = W[:, 0] * np.concatenate([ref.velocity, ref.angular_velocity])
                nullspace = s.posture_weight * (np.eye(n) - damped_pinv(J, 1e-3) @ J)  # posture only where the task is blind
                A[TASK_ROWS:] = nullspace
                b[TASK_ROWS:] = nullspace @ self.posture
            A *= w
            b *= w
            c *= w
        self.task.value, self.task_q.value, self.task_v.value = task, task_q, task_v

    def _fill_barriers(self, t: float, guess: np.ndarray, obstacles) -> np.ndarray:
        """Select the rows most critical along the plan and linearise them at the guess. Returns
        h at the guess (N+1, rows) for the selected rows."""
        s, n, N, m = self.settings, self.robot.n_joints, self.settings.horizon, self.settings.max_rows
        steps = [barrier_rows(self.kinematics, self.sets, self._moved(obstacles, k * s.dt), guess[k],
                              np.zeros(n), s.distance_margin) for k in range(N + 1)]
        H = np.array([r.h for r in steps])
        worst = H.min(axis=0)
        candidates = np.flatnonzero(worst < s.activation_distance)
        selected = candidates[np.argsort(worst[candidates])[:m]]
        self._selected = selected
        k_sel = len(selected)
        h0 = np.ones(m)
        h0[:k_sel] = steps[0].h[selected]
        self.h0.value = h0
        g, offset = np.zeros((N, m, n)), np.ones((N, m))
        for k in range(N):
            rows = steps[k + 1]
            g[k, :k_sel] = rows.g[selected]
            offset[k, :k_sel] = rows.h[selected] - g[k, :k_sel] @ guess[k + 1]
        self.g.value, self.offset.value = g.reshape(N * m, n), offset
        self._labels = row_labels(self.kinematics, self.sets, obstacles)
        return H[:, selected]

    @staticmethod
    def _moved(obstacles, seconds: float) -> tuple[Obstacle, ...]:
        """Obstacles where they will be after `seconds`, at their current velocity."""
        return tuple(o if not np.any(o.velocity) else
                     dataclasses.replace(o, start=o.start + seconds * o.velocity, end=o.end + seconds * o.velocity)
                     for o in obstacles)

    def _summary(self, plan: Plan, status: str, h_plan: np.ndarray) -> MPCResult:
        k_sel = len(self._selected)
        if not k_sel:
            return MPCResult(plan, status, 0.0)
        N, m = self.settings.horizon, self.settings.max_rows
        g = self.g.value.reshape(N, m, -1)
        predicted = np.array([g[k, :k_sel] @ plan.q[k + 1] + self.offset.value[k, :k_sel] for k in range(N)])
        floor = (1.0 - self.settings.gamma) * np.vstack([self.h0.value[:k_sel], predicted[:-1]])
        binding = np.any(predicted - floor < 1e-4, axis=0)
        active = tuple(self._labels[j] for j in self._selected[binding])
        return MPCResult(plan, status, 0.0, slack=float(np.max(self.slack.value[:k_sel], initial=0.0)),
                         active=active, min_predicted_barrier=float(predicted.min()))
