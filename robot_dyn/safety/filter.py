"""The CBF safety filter: the smallest change to a commanded joint acceleration that keeps the arm safe.

Why the acceleration of the reference: whatever produces motion (MPC, trajectory, policy,
teleop), the controller integrates a joint acceleration into the impedance reference
(q_d, qd_d). Filtering that acceleration is model-free and cheap (a 7-variable QP), and
the filter's model, a double integrator per joint at the outer-loop period dt, is exact
for the reference. The arm itself follows the reference with a tracking error that comes
from the feedforward's model error; the robust filter bounds that error (error_model.py)
and tightens every constraint by it, which turns the QP into a second-order cone program.

Constraints, all discrete-time at step dt (state x = (q, qd) of the reference):
- |a| <= acceleration_scale * qdd_max (hard; the robot layer rejects much more);
- |qd + dt a| <= velocity_scale * qd_max;
- joint position limits with a braking barrier q + max(qd,0)^2 / (2 a_b) <= q_max - margin,
  imposed exactly on the next state: it has a closed-form bound per joint, and braking at
  a_b keeps it invariant;
- Cartesian barriers (barriers.py) through the braking barrier b = h - min(h_dot,0)^2/(2 a_c):
  b_{k+1} >= exp(-decay_rate dt) b_k, linearised in a at the previous solution (b is concave
  in a, so the linearisation is re-checked and re-solved once if it was optimistic). When a
  row is already violated (b_k < 0: an obstacle moved in, or the arm was pushed), it asks
  to move away at up to a_c instead.
When the constraints cannot all be met, the filter brakes every joint as hard as the
limits allow ("fallback") and says so; it never raises in the loop.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from robot_dyn.jit import kernel
from robot_dyn.robots.description import RobotDescription
from robot_dyn.safety.barriers import BarrierRows, SphereKinematics, barrier_rows, row_labels
from robot_dyn.safety.sets import Obstacle, SafeSets

SOLVERS = ("osqp", "clarabel")


SETTING_NAMES = ("acceleration_scale", "velocity_scale", "joint_braking_scale", "cartesian_braking", "joint_margin",
                 "distance_margin", "decay_rate", "escape_gain", "confidence", "tracking_time_constant", "external_force")


@dataclass
class FilterSettings:
    """Gains and margins of the filter (ROS parameters of the controller, see configs/controller.yaml)."""

    dt: float = 0.002  # s, the outer-loop period
    acceleration_scale: float = 1.0  # share of qdd_max the filter may command
    velocity_scale: float = 1.0  # share of qd_max
    joint_braking_scale: float = 0.5  # share of qdd_max assumed for braking before a joint limit
    cartesian_braking: float = 1.0  # m/s^2 assumed for braking before a Cartesian set
    joint_margin: float = 0.01  # rad kept from joint limits
    distance_margin: float = 0.01  # m kept from the table, workspace and obstacles
    decay_rate: float = 20.0  # 1/s, class-K gain of the discrete CBF: b_{k+1} >= exp(-rate dt) b_k
    escape_gain: float = 5.0  # 1/s: a violated set is left at speed escape_gain * |b| (at most 0.1 m/s)
    activation_distance: float = 0.3  # m: rows whose braking barrier is larger are left out of the QP
    max_rows: int = 16  # Cartesian rows in the QP (the most critical ones)
    confidence: float = 2.0  # beta: the robust filter bounds the torque error by |mean| + beta std
    # s: the robust filter's bound on the tracking error follows its quasi-static value (torque
    # error / stiffness) with this lag, the time constant of the impedance loop's error dynamics.
    # 0 (the default): per joint D_i / K_i of the impedance gains, the slow pole of
    # M e'' + D e' + K e = torque error (0.04-0.1 s on the Panda's and iiwa's shoulder and elbow).
    # A fixed 20 ms let the bound run ahead of a compliant arm in MuJoCo.
    tracking_time_constant: float = 0.0
    # N: a contact force at the end-effector the joint limits are kept against. Each limit is
    # tightened by the deflection it can cause on that joint, F |J_i| / K_i (impedance stiffness K).
    external_force: float = 30.0

    def validated(self) -> "FilterSettings":
        for name in ("dt", "acceleration_scale", "velocity_scale", "joint_braking_scale", "cartesian_braking",
                     "decay_rate", "escape_gain", "activation_distance", "confidence"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"safety '{name}' must be a positive number, got {value!r}")
        for name in ("joint_margin", "distance_margin", "external_force", "tracking_time_constant"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"safety '{name}' must be a non-negative number, got {value!r}")
        if self.joint_braking_scale > self.acceleration_scale:
            raise ValueError("safety 'joint_braking_scale' must not exceed 'acceleration_scale'")
        if not (isinstance(self.max_rows, int) and self.max_rows >= 1):
            raise ValueError(f"safety 'max_rows' must be a positive integer, got {self.max_rows!r}")
        return self


@dataclass
class FilterResult:
    """The filtered acceleration (rad/s^2) and what the filter did."""

    qdd: np.ndarray
    status: str  # "free" (nothing near), "ok" (QP solved), "fallback" (maximum braking)
    active: list[str] = field(default_factory=list)  # constraints that bind
    min_barrier: float = math.inf  # m, smallest Cartesian h (with margins) at this state
    min_barrier_label: str = ""
    min_joint_distance: float = math.inf  # rad, smallest distance to a joint limit (with margin)
    tightening: float = 0.0  # m, largest robust tightening of a row (0 for the nominal filter)
    reason: str = ""  # why a fallback happened
    solve_s: float = 0.0  # wall time of the whole filter call


@kernel
def joint_limit_bounds(q, qd, lo, hi, dt, a_brake):
    """Per-joint acceleration bounds (upper, lower) that keep q + max(qd,0)^2/(2 a_b) <= hi, and the
    mirror for lo, on the next step of the double integrator. Braking at a_b always satisfies them."""
    n = len(q)
    upper, lower = np.empty(n), np.empty(n)
    for i in range(n):
        for side in range(2):  # the lower limit is the upper one of the mirrored joint (-q, -qd, -lo)
            sign = 1.0 if side == 0 else -1.0
            x, v, top, ab = sign * q[i], sign * qd[i], hi[i] if side == 0 else -lo[i], a_brake[i]
            if x + dt * v / 2 <= top:  # the state reached by stopping in this step is admissible
                # while the next velocity is > 0: dt^2/(2ab) a^2 + (dt^2/2 + v dt/ab) a + (x + dt v + v^2/(2ab) - top) <= 0
                alpha, beta = dt * dt / (2 * ab), dt * dt / 2 + v * dt / ab
                gamma = x + dt * v + v * v / (2 * ab) - top
                root = (-beta + np.sqrt(max(beta * beta - 4 * alpha * gamma, 0.0))) / (2 * alpha)
                bound = max(root, -v / dt)
            else:
                bound = 2.0 * (top - x - dt * v) / (dt * dt)  # bound while the next velocity is <= 0
            if side == 0:
                upper[i] = bound
            else:
                lower[i] = -bound
    return upper, lower


@kernel
def acceleration_box(q, qd, lo_hard, hi_hard, deflection, e_mean, e_std, confidence, a_max, v_max, dt, a_brake):
    """The per-joint acceleration box (lower, upper, rad/s^2) of the next step: acceleration and
    velocity limits, and the joint position limits with a braking distance, kept the deflection an
    external force can cause (rad) and, robust filter, the tracking error e_mean +- confidence e_std
    further away. Also the smallest distance to the tightened limits (rad)."""
    n = len(q)
    lo_q, hi_q = np.empty(n), np.empty(n)
    min_joint = np.inf
    for i in range(n):
        lo, hi = lo_hard[i] + deflection[i], hi_hard[i] - deflection[i]
        # only ever tighter: a reference beyond the limits is refused by the robot layer
        lo = max(lo, lo - e_mean[i] + confidence * e_std[i])
        hi = min(hi, hi - e_mean[i] - confidence * e_std[i])
        # The tightening moves with the state; where the reference is already inside it, it may
        # not go further, but is not thrown back (that would take more than the braking budget).
        lo_q[i], hi_q[i] = min(lo, max(q[i], lo_hard[i])), max(hi, min(q[i], hi_hard[i]))
        min_joint = min(min_joint, q[i] - lo_q[i], hi_q[i] - q[i])
    up_pos, low_pos = joint_limit_bounds(q, qd, lo_q, hi_q, dt, a_brake)
    lower, upper = np.empty(n), np.empty(n)
    for i in range(n):
        lower[i] = max(-a_max[i], (-v_max[i] - qd[i]) / dt, low_pos[i])
        upper[i] = min(a_max[i], (v_max[i] - qd[i]) / dt, up_pos[i])
    return lower, upper, min_joint


@kernel
def cartesian_rows(h, h_dot, g, c, activation, max_rows, a_prev, robust, e_mean, e_std, stay, confidence, mean_step,
                   dt, braking, decay, escape_gain):
    """The Cartesian rows the filter keeps, as g . a >= rhs (see SafetyFilter._cartesian_constraints).

    Returns the selected rows (indices into h: those whose braking barrier is below `activation`,
    at most `max_rows`, the most critical), their robust and nominal right-hand sides (m/s^2), the
    slope of each row's linearisation, T (the robust rows' scale of the next std, 0 for nominal
    or escaping rows) and the largest robust tightening (m)."""
    b_all = h - np.minimum(h_dot, 0.0) ** 2 / (2 * braking)
    candidates = np.flatnonzero(b_all < activation)
    if len(candidates) > max_rows:
        candidates = candidates[np.argsort(b_all[candidates])[:max_rows]]
    k, n = len(candidates), len(a_prev)
    rhs, nominal_rhs, slope, T = np.empty(k), np.empty(k), np.empty(k), np.zeros(k)
    largest = 0.0
    for r in range(k):
        j = candidates[r]
        gj = g[j]
        s0 = gj @ a_prev
        tightening = carried = 0.0
        if robust:
            for i in range(n):
                tightening += -gj[i] * e_mean[i] + confidence * abs(gj[i]) * e_std[i]
                carried += stay[i] * (-gj[i] * e_mean[i] + confidence * abs(gj[i]) * e_std[i])
            largest = max(largest, tightening)
        w1 = h_dot[j] + dt * (s0 + c[j])
        F0 = h[j] + dt * h_dot[j] + 0.5 * dt * dt * (s0 + c[j]) - min(w1, 0.0) ** 2 / (2 * braking)
        slope[r] = 0.5 * dt * dt + dt * max(-w1, 0.0) / braking
        for kind in range(2 if robust else 1):  # the robust row, then (robust filter) the nominal one
            barrier = b_all[j] - tightening if kind == 0 else b_all[j]
            extra = carried if kind == 0 else 0.0
            if barrier >= 0.0:  # braking: b_k+1 >= decay b_k
                value = s0 + (decay * barrier + extra - F0) / slope[r]
                if kind == 0 and robust:
                    T[r] = 1.0 / slope[r]
                    value += T[r] * ((gj * mean_step).sum())
            else:  # violated: leave at up to `braking`, toward escape_gain |b| (at most 0.1 m/s)
                v_target = min(escape_gain * max(-barrier, 0.0), 0.1)
                value = max((min(v_target, h_dot[j] + dt * braking) - h_dot[j]) / dt - c[j], -braking - c[j])
            if kind == 0:
                rhs[r] = value
            else:
                nominal_rhs[r] = value
        if not robust:
            nominal_rhs[r] = rhs[r]
    return candidates, rhs, nominal_rhs, slope, T, largest


class SafetyFilter:
    """filter(q_d, qd_d, a_nominal) -> FilterResult, every outer tick.

    solver 'osqp' solves the nominal QP directly (fixed sparsity, warm start); 'clarabel'
    solves the same problem as a conic program and, given `error_model`, the robust SOCP.
    """

    def __init__(self, robot: RobotDescription, sets: SafeSets, settings: FilterSettings | None = None,
                 solver: str = "osqp", error_model=None, stiffness: np.ndarray | None = None,
                 damping: np.ndarray | None = None):
        if solver not in SOLVERS:
            raise ValueError(f"safety solver must be one of {SOLVERS}, got '{solver}'")
        if error_model is not None and solver != "clarabel":
            raise ValueError("the robust filter (an error model) needs solver 'clarabel'")
        self.robot, self.sets = robot, sets
        self.settings = (settings or FilterSettings()).validated()
        self.solver_name, self.error_model = solver, error_model
        # Nm/rad, the robot layer's joint stiffness: the error model's, else the robot's default gains
        self.stiffness = np.asarray(error_model.stiffness if error_model is not None else
                                    (robot.stiffness if stiffness is None else stiffness), float)
        self.damping = np.asarray(robot.damping if damping is None else damping, float)  # Nm s/rad, the layer's
        self.n = robot.n_joints
        self._set_limits()
        self.kinematics = SphereKinematics(robot, sets)
        self.moving: tuple[Obstacle, ...] = ()
        self._obstacles = sets.obstacles  # static, then moving
        self._at_state = (None, None, None)  # (q, qd) bytes, their barrier rows and torque error model: see _state_terms
        self.labels = row_labels(self.kinematics, sets, sets.obstacles)
        self._no_error = np.zeros(self.n)
        self._a_prev = np.zeros(self.n)
        self._tracking = None  # (mean, std) rad per joint: the robust filter's tracking-error state
        self._qp = None  # OSQP, the nominal filter (and the robust filter's second line)
        self._conic: dict[int, _ConicProblem] = {}  # the robust filter's conic programs, by row count
        self.last_slack = 0.0  # m/s^2: how far the robust rows gave way on the last solve
        # The last call was at rest (zero velocity and command), let it be (status free), and the robust
        # filter's tracking error had settled (it moved less than 1e-12 rad): the same call would answer
        # the same, so a caller holding a reference still may skip the filter until something changes
        # (new obstacles, settings or a reset clear it).
        self.settled = False
        self._tracking_moved = 0.0
        self.robust_failures = 0  # conic solves that failed and fell back to the nominal QP
        self._filter(robot.home, np.zeros(self.n), np.zeros(self.n))  # compiles (or loads) the kernels now, not in a tick
        self.reset()

    # --- configuration -----------------------------------------------------
    def set_obstacles(self, obstacles: tuple[Obstacle, ...]) -> None:
        """Replace the moving obstacles (the static ones from the config always apply)."""
        self.moving = tuple(obstacles)
        self._obstacles = self.sets.obstacles + self.moving
        self._at_state = (None, None, None)
        self.settled = False
        self.labels = row_labels(self.kinematics, self.sets, self.obstacles)

    def update_settings(self, settings: FilterSettings) -> None:
        """New gains and margins (checked); the solvers are set up again on the next call."""
        self.settings = settings.validated()
        self._qp, self._conic = None, {}
        self._at_state = (None, None, None)
        self.settled = False
        self._set_limits()

    def _set_limits(self) -> None:
        """The joint limits, margins and tracking lag that follow from the settings."""
        s, robot = self.settings, self.robot
        self._lo_hard, self._hi_hard = robot.q_min + s.joint_margin, robot.q_max - s.joint_margin
        self._a_max, self._v_max = s.acceleration_scale * robot.qdd_max, s.velocity_scale * robot.qd_max
        self._a_brake = s.joint_braking_scale * robot.qdd_max
        self._lag = self._tracking_lag()

    def _tracking_lag(self) -> np.ndarray:
        """Per joint, the share of the way the tracking error moves toward its quasi-static value in one tick."""
        s = self.settings
        tau = np.full(self.n, s.tracking_time_constant) if s.tracking_time_constant > 0 else self.damping / self.stiffness
        return 1.0 - np.exp(-s.dt / np.maximum(tau, 1e-6))

    def reset(self) -> None:
        self._a_prev = np.zeros(self.n)
        self._tracking = None
        self.settled = False

    @property
    def obstacles(self) -> tuple[Obstacle, ...]:
        return self._obstacles

    def _state_terms(self, q: np.ndarray, qd: np.ndarray):
        """The barrier rows and the torque error model (None for the nominal filter) at (q, qd): what
        depends on the reference's state alone, kept while it does not change (a reference at rest)."""
        key = q.tobytes() + qd.tobytes()
        if self._at_state[0] != key:
            rows = barrier_rows(self.kinematics, self.sets, self.obstacles, q, qd, self.settings.distance_margin)
            model = self.error_model.torque_error(q, qd) if self.error_model is not None else None
            self._at_state = (key, rows, model)
        return self._at_state[1], self._at_state[2]

    # --- the filter --------------------------------------------------------
    def filter(self, q: np.ndarray, qd: np.ndarray, a_nominal: np.ndarray) -> FilterResult:
        start = time.perf_counter()
        try:
            result = self._filter(np.asarray(q, float), np.asarray(qd, float), np.asarray(a_nominal, float))
        except Exception as exc:  # a solver or geometry failure must brake, not kill the loop
            result = FilterResult(self.braking(qd), "fallback", reason=f"filter error: {exc!r}")
        self._a_prev = result.qdd
        # at rest and settled: a reference at rest here stays so, and a caller may skip the next calls
        self.settled = (result.status == "free" and not a_nominal.any() and not np.asarray(qd).any()
                        and self._tracking_moved < 1e-12)
        result.solve_s = time.perf_counter() - start
        return result

    def braking(self, qd: np.ndarray) -> np.ndarray:
        """Maximum braking within the acceleration limits (the fallback)."""
        a_max = self.settings.acceleration_scale * self.robot.qdd_max
        return np.clip(-np.asarray(qd, float) / self.settings.dt, -a_max, a_max)

    def _filter(self, q, qd, a_nom) -> FilterResult:
        s, robot = self.settings, self.robot
        if q.shape != (self.n,) or qd.shape != (self.n,) or a_nom.shape != (self.n,):
            return FilterResult(self.braking(np.zeros(self.n)), "fallback", reason="state or command has the wrong size")
        if not np.isfinite(q.sum() + qd.sum()):
            return FilterResult(np.zeros(self.n), "fallback", reason="non-finite state")
        if not np.isfinite(a_nom.sum()):
            return FilterResult(self.braking(qd), "fallback", reason="non-finite nominal acceleration")
        rows, model = self._state_terms(q, qd)
        deflection = s.external_force * np.sqrt(np.einsum("ij,ij->j", rows.ee_jacobian, rows.ee_jacobian)) / self.stiffness  # rad
        e_mean = e_std = self._no_error
        if model is not None:
            if self._tracking is None:
                self._tracking = model.tracking_error(self._no_error)
            e_mean, e_std = self._tracking  # the arm is at q_d + e_mean +- beta e_std
        lower, upper, min_joint = acceleration_box(q, qd, self._lo_hard, self._hi_hard, deflection, e_mean, e_std,
                                                   s.confidence, self._a_max, self._v_max, s.dt, self._a_brake)
        if np.any(lower > upper + 1e-9):
            bad = [robot.joint_names[i] for i in np.flatnonzero(lower > upper + 1e-9)]
            return FilterResult(self.braking(qd), "fallback", min_joint_distance=min_joint,
                                reason=f"joint limits cannot be met at {bad}")
        i_min = int(np.argmin(rows.h))
        info = dict(min_barrier=float(rows.h[i_min]), min_barrier_label=self.labels[i_min], min_joint_distance=min_joint)
        selected, rhs, nominal_rhs, slope, T, tightening = self._cartesian_constraints(rows, model)
        a = a_box = np.clip(a_nom, lower, upper)  # the solution when only the box binds (separable cost)
        g = rows.g[selected]
        if self._meets_rows(a_box, rows, selected, g, rhs, nominal_rhs, slope, T, model):
            # the box's answer meets every row: it is the optimum, no solver needed (most ticks)
            self._advance_tracking(model, a_box)
            self.last_slack = 0.0
            if np.array_equal(a_box, a_nom):
                return FilterResult(a_nom.copy(), "free", **info)
            active = [robot.joint_names[i] + "/limits" for i in np.flatnonzero(a_box != a_nom)]
            return FilterResult(a_box, "ok", active=active, tightening=tightening, **info)
        for attempt in range(2 if selected.size else 0):  # no rows: the box alone, and clipping solves it
            if self.solver_name == "osqp":
                a, status = self._solve_osqp(a_nom, lower, upper, g, rhs)
            elif model is None:
                a, status = self._solve_clarabel(a_nom, lower, upper, g, rhs, nominal_rhs, T, None)
            else:
                a, status = self._solve_robust(a_nom, lower, upper, g, rhs, nominal_rhs, T, model)
            if a is None:
                return FilterResult(self.braking(qd), "fallback", reason=f"infeasible ({status})", **info)
            gap = self._linearisation_gap(rows, selected, g @ a)  # m
            if attempt or not np.any(gap > 1e-7):
                break
            rhs = rhs + gap / slope  # the concave row was optimistic at this solution: tighten, solve once more
            nominal_rhs = nominal_rhs + gap / slope
        self._advance_tracking(model, a)
        active = [robot.joint_names[i] + "/limits" for i in np.flatnonzero((a <= lower + 1e-6) | (a >= upper - 1e-6))
                  if abs(a[i] - a_nom[i]) > 1e-6]
        active += [self.labels[j] for j, m in zip(selected, g @ a - rhs) if m < 1e-5]
        return FilterResult(a, "ok", active=active, tightening=tightening, **info)

    def _meets_rows(self, a, rows, selected, g, rhs, nominal_rhs, slope, T, model) -> bool:
        """a meets every selected row, with the concave rows' linearisation gap counted (and, robust
        filter, its robust rows at a's torque-error std), so it needs no solve."""
        if not selected.size:
            return True
        s_new = g @ a
        gap = self._linearisation_gap(rows, selected, s_new) / slope
        if np.any(s_new < nominal_rhs + gap - 1e-9):
            return False
        if model is None:
            return True
        return bool(np.all(self._robust_rows(a, g, T, model) >= rhs + gap - 1e-9))

    def _advance_tracking(self, model, a: np.ndarray) -> None:
        """The robust filter's tracking-error state moves toward its quasi-static value for a."""
        self._tracking_moved = 0.0
        if model is not None:
            lag = self._lag
            target = model.tracking_error(a)
            old = self._tracking
            self._tracking = tuple((1 - lag) * o + lag * new for o, new in zip(old, target))
            self._tracking_moved = max(float(np.max(np.abs(n - o))) for n, o in zip(self._tracking, old))

    def _cartesian_constraints(self, rows: BarrierRows, model):
        """Select the critical rows and return their linear form g . a >= rhs (+ robust terms).

        slope[j] = dF/ds at the linearisation point (s = g . a). For the robust filter (`model`,
        the torque error at this state) the arm is at q_d + e with e = e_mean +- beta e_std per
        joint, so a row's true value is about h + g . e_mean - beta |g| . e_std: the tightening.
        e moves toward its quasi-static value (error_model.py) with a first-order lag; its next
        std depends on a through the std's epigraph variables (cones), each joint's by its lag;
        T = 1 / slope scales that into the row's units. Its next mean is taken at the last
        tick's acceleration, not this one's: the arm's inertia shows a change of the commanded
        acceleration in the tracking error over the impedance loop's time constant, not within
        a tick. Taken at this tick's (affine in a, with a gain lag / slope of ~1e4), the
        optimiser used it: it commanded accelerations whose predicted inertial error lifted
        the arm on paper, and in MuJoCo the arm went 1.8 mm through the table where the
        nominal filter's went 1.1 mm.
        Rows already violated ask to move away instead (they act on speed)."""
        s = self.settings
        robust = model is not None
        e_mean, e_std = self._tracking if robust else (self._no_error, self._no_error)
        # the next mean's step toward its quasi-static value at the last acceleration, per joint (rad)
        mean_step = (self._lag / model.stiffness) * (model.mean @ np.append(self._a_prev, 1.0)) if robust else self._no_error
        candidates, rhs, nominal_rhs, slope, T, tightening = cartesian_rows(
            rows.h, rows.h_dot, rows.g, rows.c, s.activation_distance, s.max_rows, self._a_prev, robust, e_mean, e_std,
            1.0 - self._lag, s.confidence, mean_step, s.dt, s.cartesian_braking, math.exp(-s.decay_rate * s.dt),
            s.escape_gain)
        return candidates, rhs, nominal_rhs, slope, T, tightening

    def _linearisation_gap(self, rows: BarrierRows, selected, s_new) -> np.ndarray:
        """How much the linearised braking rows overestimate the exact ones at the new solution (m)."""
        if not selected.size:
            return np.zeros(0)
        dt, ac = self.settings.dt, self.settings.cartesian_braking
        hd, c = rows.h_dot[selected], rows.c[selected]
        s0 = rows.g[selected] @ self._a_prev
        w0, w1 = hd + dt * (s0 + c), hd + dt * (s_new + c)
        exact = -np.minimum(w1, 0.0) ** 2 / (2 * ac)
        linear = -np.minimum(w0, 0.0) ** 2 / (2 * ac) + dt * np.maximum(-w0, 0.0) / ac * (s_new - s0)
        return np.maximum(linear - exact, 0.0)

    # --- solvers -------------------------------------------------------------
    def _weights(self) -> np.ndarray:
        """Cost weights: a change of the full acceleration limit costs the same on every joint."""
        return 1.0 / (self.settings.acceleration_scale * self.robot.qdd_max) ** 2

    def _solve_osqp(self, a_nom, lower, upper, g, rhs):
        """The QP  min sum w (a - a_nom)^2  s.t. lower <= a <= upper, g a >= rhs  with OSQP.

        A fixed pattern [I; G] with max_rows rows of G (unused ones free), so the solver is set
        up once and only updated. Per tick it is called through the extension's solver object:
        osqp.OSQP.update/solve also keep data for derivatives and copy the solver's info into
        namespaces, about 30 us of the 300 us this filter may take."""
        n, m = self.n, self.settings.max_rows
        k = len(g)
        qp = self._qp
        if qp is None:
            qp = self._qp = _OSQPBuffers(n, m, self._weights(), a_nom, lower, upper)
        w = qp.weights
        qp.G[:k] = g
        qp.G[k:] = 0.0
        qp.lo[:n], qp.hi[:n] = lower, upper
        qp.lo[n: n + k] = rhs
        qp.lo[n + k:] = -_OSQP_INFINITY
        qp.Ax[:, 1:] = qp.G.T  # column-major values of [I; G]
        solver = qp.solver
        solver.update_data_vec(q=-w * a_nom, l=qp.lo, u=qp.hi)
        solver.update_data_mat(P_x=None, P_i=None, A_x=qp.Ax.ravel(), A_i=None)
        solver.warm_start(np.clip(a_nom, lower, upper), None)
        solver.solve()
        status = solver.info.status
        x = solver.solution.x
        if status not in ("solved", "solved inaccurate") or not np.all(np.isfinite(x)):
            return None, status
        return np.clip(x, lower, upper), status

    def _solve_robust(self, a_nom, lower, upper, g, rhs, nominal_rhs, T, model):
        """The robust problem is the nominal QP plus the robust rows (soft). So the nominal QP's
        solution (OSQP, ~40 us) is the robust one too where it meets the robust rows; only where
        it does not is the conic program (Clarabel, ~0.5 ms) solved. Should that fail, the
        nominal solution is the next line."""
        a, status = self._solve_osqp(a_nom, lower, upper, g, nominal_rhs)
        if a is None:
            return None, status  # the nominal rows alone cannot be met: neither can the robust ones
        if np.all(self._robust_rows(a, g, T, model) >= rhs - 1e-9):
            self.last_slack = 0.0
            return a, status
        robust, robust_status = self._solve_clarabel(a_nom, lower, upper, g, rhs, nominal_rhs, T, model)
        if robust is None:  # numerical trouble
            self.robust_failures += 1
            return a, status
        return robust, robust_status

    def _robust_rows(self, a, g, T, model) -> np.ndarray:
        """Left-hand sides of the robust rows at a, without slack (see _solve_clarabel)."""
        std = model.std(a)
        return g @ a - T * self.settings.confidence * (np.abs(self._tau_rows(g, model)) @ std)

    def _tau_rows(self, g, model) -> np.ndarray:
        """A row's change in the next tick per Nm of quasi-static torque error on each joint: the
        arm moves by -dtau/K, a share `lag` of the way in a tick (m/Nm)."""
        return g * (self._lag / model.stiffness)

    def _solve_clarabel(self, a_nom, lower, upper, g, rhs, nominal_rhs, T, model):
        """The (robust) problem as a conic program over z = [a (n), s (n), d (k)], k = the selected rows.

        s_i >= ||chol_i [a; 1]|| is joint i's torque-error std (Nm). A braking row reads
        g . a - T beta (|g| / K) . s + d >= rhs: the arm is at q_d - mean/K +- beta std/K; the
        next tracking-error std bound enters through s, the mean through rhs (see
        _cartesian_constraints).
        d >= 0 is a slack with an exact penalty, so the robust rows give way (and say so)
        where they cannot be met; the nominal rows g . a >= rhs_nominal stay hard.
        One Clarabel solver per row count k, built on first use and then only updated: the
        problem carries no padding rows (with k = 2, a solve takes about 2/3 of a 16-row one)."""
        import clarabel

        n, k = self.n, len(g)
        w = self._weights()
        conic = self._conic.get(k)
        if conic is None:
            conic = self._conic[k] = _ConicProblem(n, k)
        A = conic.A
        robust, nominal = A[2 * n: 2 * n + k], A[2 * n + k: 2 * n + 2 * k]
        robust[:, :2 * n] = 0.0
        robust[:, :n] = -g
        nominal[:, :n] = -g
        r, r_nom = rhs.copy(), rhs.copy()
        if model is not None and k:
            tau_rows = self._tau_rows(g, model)
            robust[:, n: 2 * n] = (T * self.settings.confidence)[:, None] * np.abs(tau_rows)
            r_nom = nominal_rhs
            chol = model.chol
        else:
            chol = np.zeros((n, n + 1, n + 1))
        soc = A[2 * n + 3 * k:].reshape(n, n + 2, -1)
        soc[:, 1:, :n] = -chol[:, :, :n]
        b = np.concatenate([upper, -lower, -r, -r_nom, np.zeros(k),
                            np.concatenate([np.zeros((n, 1)), chol[:, :, n]], axis=1).ravel()])
        qv = np.concatenate([-w * a_nom, np.full(n, 1e-6), np.full(k, 1e3 * float(np.max(w)))])
        values = A.T[conic.pattern.T]  # column-major values at the structural entries
        if conic.solver is None:
            settings = clarabel.DefaultSettings()
            settings.verbose, settings.presolve_enable = False, False
            settings.input_sparse_dropzeros = False
            cones = [clarabel.NonnegativeConeT(2 * n + 3 * k)] + [clarabel.SecondOrderConeT(n + 2)] * n
            P = sparse.diags(np.concatenate([w, np.zeros(n + k)])).tocsc()
            structure = sparse.csc_matrix(conic.pattern.astype(float))
            structure.data[:] = values
            conic.solver = clarabel.DefaultSolver(P, qv, structure, b, cones, settings)
        else:
            conic.solver.update(q=qv, A=values, b=b)
        sol = conic.solver.solve()
        status = str(sol.status)
        if status not in ("Solved", "AlmostSolved"):
            return None, status
        x = np.asarray(sol.x)
        if not np.all(np.isfinite(x)):
            return None, status
        self.last_slack = float(np.max(x[2 * n: 2 * n + k], initial=0.0))
        return np.clip(x[:n], lower, upper), status


_OSQP_INFINITY = 1e30  # OSQP's infinity (OSQP_INFTY)


class _OSQPBuffers:
    """The nominal QP's OSQP solver and the arrays its per-tick update is built in: the
    constraint matrix [I (n); G (m rows)] has a fixed pattern, set up once."""

    def __init__(self, n: int, m: int, weights: np.ndarray, a_nom, lower, upper):
        import osqp

        self.weights = weights
        self.G = np.zeros((m, n))
        self.lo = np.concatenate([lower, np.full(m, -_OSQP_INFINITY)])
        self.hi = np.concatenate([upper, np.full(m, _OSQP_INFINITY)])
        self.Ax = np.zeros((n, m + 1))  # column j of [I; G]: 1 on row j, then G[:, j]
        self.Ax[:, 0] = 1.0
        rows = np.empty((n, m + 1), int)
        rows[:, 0] = np.arange(n)
        rows[:, 1:] = n + np.arange(m)
        A = sparse.csc_matrix((np.ones(n * (m + 1)), rows.ravel(),  # ones: no structural zero is dropped
                               np.arange(n + 1) * (m + 1)), shape=(n + m, n))
        problem = osqp.OSQP()
        problem.setup(sparse.diags(weights).tocsc(), -weights * a_nom, A, self.lo, self.hi, verbose=False,
                      warm_starting=True, polishing=False, eps_abs=1e-7, eps_rel=1e-7, max_iter=4000)
        self.solver = problem._solver  # the extension's solver (see SafetyFilter._solve_osqp)


class _ConicProblem:
    """The robust filter's conic program for n joints and k rows: its constraint matrix (filled in
    place each solve), the structural non-zeros, and its Clarabel solver (built on first solve).

    Rows: box (2n) | robust (k) | nominal (k) | slack >= 0 (k) | n cones of n+2;
    columns: a (n) | s (n) | d (k)."""

    def __init__(self, n: int, k: int):
        A = np.zeros((2 * n + 3 * k + n * (n + 2), 2 * n + k))
        A[:n, :n], A[n: 2 * n, :n] = np.eye(n), -np.eye(n)  # lower <= a <= upper
        A[2 * n: 2 * n + k, 2 * n:] = -np.eye(k)  # + d in the robust rows
        A[2 * n + 2 * k: 2 * n + 3 * k, 2 * n:] = -np.eye(k)  # d >= 0
        heads = 2 * n + 3 * k + np.arange(n) * (n + 2), n + np.arange(n)
        A[heads] = -1.0
        mask = np.zeros(A.shape, bool)
        mask[:n, :n] = mask[n: 2 * n, :n] = np.eye(n, dtype=bool)
        mask[2 * n: 2 * n + k, :2 * n] = True
        mask[2 * n: 2 * n + k, 2 * n:] = np.eye(k, dtype=bool)
        mask[2 * n + k: 2 * n + 2 * k, :n] = True
        mask[2 * n + 2 * k: 2 * n + 3 * k, 2 * n:] = np.eye(k, dtype=bool)
        mask[heads] = True
        for i in range(n):
            start = 2 * n + 3 * k + i * (n + 2) + 1
            mask[start: start + n + 1, :n] = True
        self.A, self.pattern, self.solver = A, mask, None
