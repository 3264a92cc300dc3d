"""robot-dyn bench safety: randomised scenarios in MuJoCo (realistic effects), each run with the
robust filter, the nominal filter and no filter; violations, barrier margins and filter timing.

Every scenario runs the controller core (OuterLoop + SafetyFilter) and the robot layer
(SimulatedArm) in this process, so 200+ scenarios take minutes, not hours. The MPC runs as
in the controller node: in a process of its own (PlannerProcess), in lockstep, so each plan
is taken one replanning period after it was asked for and runs repeat. (In this process a
solve also evicted the filter's data from the caches: the tick after a plan took twice as
long.) A violation is a scenario where, on the *measured* joint positions, some barrier (no margin) went below
-1 mm or a joint limit was crossed. The robust filter uses a torque-error model fitted to
20 s of data recorded on the same (mismatched) robot, as a user would before deploying.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.planner_process import PlannerProcess
from robot_dyn.control.outer_loop import GoalRejected, OuterLoop, OuterLoopConfig
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots import load_robot
from robot_dyn.safety.barriers import SphereKinematics, barrier_rows
from robot_dyn.safety.error_model import TorqueErrorModel
from robot_dyn.safety.filter import FilterSettings, SafetyFilter
from robot_dyn.safety.sets import Obstacle, load_safe_sets
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.effects import load_profile
from robot_dyn.sim.simulated_arm import SimulatedArm
from robot_dyn.timing import TickTimer

KINDS = ("obstacle_goal", "table_goal", "workspace_goal", "moving_obstacle", "push", "mismatch", "safe_goal")
VARIANTS = ("robust", "nominal", "unfiltered")
RATE_HZ = 500.0
VIOLATION_M = 1e-3
REPLAY_EVERY = 5  # the filter calls of every 5th scenario are timed again alone (replay_filter_timing)
MPC_EXTRA_MARGIN = 0.005  # m: the MPC keeps this much more than the filter, so the filter seldom has to act


@dataclasses.dataclass
class Scenario:
    kind: str
    seed: int
    q0: np.ndarray
    goal_q: np.ndarray | None = None  # joint goal
    goal_p: np.ndarray | None = None  # pose goal position (orientation: the start's)
    obstacle: tuple | None = None  # (center, radius, velocity)
    workspace_max_z: float | None = None
    push: tuple | None = None  # (force N in the base frame, start s, duration s) on the hand
    payload: float = 0.0  # kg added to the realistic profile's
    stiffness_scale: float = 1.0  # the robot layer's gains: K * scale, D * sqrt(scale)
    distance_margin: float = 0.01  # m, the filters' margin
    duration: float = 3.0
    planned: bool = True  # goals go through the MPC; False: the filter is the only guard


def make_scenarios(robot, n: int, seed: int) -> list[Scenario]:
    model = RigidBody(robot)
    sets = load_safe_sets(robot)
    kin = SphereKinematics(robot, sets)
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        kind = KINDS[len(out) % len(KINDS)]
        s = rng.integers(1 << 30)
        q0 = np.clip(robot.home + rng.uniform(-0.3, 0.3, robot.n_joints), robot.q_min + 0.1, robot.q_max - 0.1)
        if barrier_rows(kin, sets, (), q0, np.zeros(robot.n_joints), 0.03).h.min() < 0:
            continue
        p0, _ = model.ee_pose(q0)
        sc = Scenario(kind, int(s), q0)
        if kind in ("obstacle_goal", "safe_goal"):
            goal = np.clip(q0 + rng.uniform(-0.6, 0.6, robot.n_joints), robot.q_min + 0.1, robot.q_max - 0.1)
            rows = barrier_rows(kin, sets, (), goal, np.zeros(robot.n_joints), 0.03)
            if rows.h.min() < 0:
                continue
            sc.goal_q = goal
            if kind == "obstacle_goal":
                sc.obstacle = (model.ee_pose(goal)[0], rng.uniform(0.04, 0.08), np.zeros(3))
        elif kind == "table_goal":
            sc.goal_p = np.array([p0[0] + rng.uniform(-0.1, 0.1), p0[1] + rng.uniform(-0.1, 0.1), rng.uniform(-0.05, 0.05)])
        elif kind == "mismatch":
            # Straight down onto the table with an unmodelled payload on a compliant arm, a tight
            # margin, and no MPC in front (its extra margin would do the filter's work): the arm
            # sags below its reference, which the robust filter must allow for and the nominal cannot.
            sc.goal_p = np.array([p0[0], p0[1], rng.uniform(-0.05, 0.0)])
            sc.payload, sc.stiffness_scale, sc.distance_margin = rng.uniform(0.5, 1.0), 0.5, 0.002
            sc.duration, sc.planned = 4.0, False
        elif kind == "workspace_goal":  # the box's top 3-10 cm above the end-effector sphere
            sc.workspace_max_z = p0[2] + sets.spheres[sets.end_effector].radius + rng.uniform(0.03, 0.10)
            sc.goal_p = p0 + np.array([0.0, 0.0, 0.25])
        elif kind == "moving_obstacle":
            direction = rng.normal(size=3)
            direction[2] = abs(direction[2]) * 0.3
            direction /= np.linalg.norm(direction)
            speed = rng.uniform(0.03, 0.08)
            r = rng.uniform(0.04, 0.07)
            sc.obstacle = (p0 + direction * (0.3 + r), r, -direction * speed)
        elif kind == "push":
            sc.goal_p = np.array([p0[0], p0[1], 0.09])  # hover near the table
            sc.push = (np.array([0.0, 0.0, -rng.uniform(10.0, 30.0)]), 2.0, 0.3)
        if sc.obstacle is not None:  # every scenario starts safe: 3 cm clear of the obstacle too
            center, radius, velocity = sc.obstacle
            ball = Obstacle("ball", center, center.copy(), radius, velocity)
            if barrier_rows(kin, sets, (ball,), q0, np.zeros(robot.n_joints), 0.03).h.min() < 0:
                continue
        out.append(sc)
    return out


def record_torque_errors(robot, effects, seconds: float, seed: int):
    """Random joint moves on the simulated robot; (q, qd, qdd, torque error of the nominal model).
    Recorded with the default gains: the feedforward's error does not depend on them."""
    model = RigidBody(robot)
    arm = SimulatedArm(robot, make_backend("mujoco", robot, effects), ImpedanceSettings.from_robot(robot), robot.home)
    loop = OuterLoop(robot, OuterLoopConfig(period=1 / RATE_HZ))
    loop.start(0.0, robot.home)
    rng = np.random.default_rng(seed)
    rows = []

    def record(t, q, qd, tau):
        rows.append((q.copy(), qd.copy(), tau.copy()))

    while arm.time < seconds:
        goal = np.clip(robot.home + rng.uniform(-0.6, 0.6, robot.n_joints), robot.q_min + 0.2, robot.q_max - 0.2)
        try:
            duration = loop.command_joint_goal(arm.time, goal)
        except GoalRejected:
            continue
        arm.follow(loop.tick, duration + 0.2, RATE_HZ, record=record)
    q, qd, tau = (np.array(x) for x in zip(*rows))
    dt = arm.backend.dt
    qdd = np.gradient(qd, dt, axis=0)
    keep = slice(5, -5, 4)  # drop the ends of the difference, thin to 250 Hz
    gravity = np.array([model.gravity(x) for x in q[keep]])  # what the robot added itself
    nominal = np.array([model.rnea(a, b, c) for a, b, c in zip(q[keep], qd[keep], qdd[keep])])
    # The arm made this motion with tau + its gravity compensation: that is what it needed. The
    # nominal model would have supplied `nominal` for it. error_model.py's delta_tau is needed - supplied.
    return q[keep], qd[keep], qdd[keep], (tau[keep] + gravity) - nominal


class _Measure:
    """Smallest barrier (m, no margin) and joint-limit distance (rad) on measured positions."""

    def __init__(self, kin, sets, robot):
        self.kin, self.sets, self.robot = kin, sets, robot
        self.min_h, self.min_joint, self.obstacles = math.inf, math.inf, ()

    def __call__(self, t, q):
        rows = barrier_rows(self.kin, self.sets, self.obstacles, q, np.zeros_like(q), 0.0)
        self.min_h = min(self.min_h, float(rows.h.min()))
        self.min_joint = min(self.min_joint, float(np.min(np.minimum(q - self.robot.q_min, self.robot.q_max - q))))


class _RecordedFilter(SafetyFilter):
    """A SafetyFilter that keeps what it was given each tick, so that replay_filter_timing can
    time the same calls again alone."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.made_with = (args, kwargs)
        self.inputs = []  # (q_d, qd_d, a_nominal, moving obstacles) per call

    def filter(self, q, qd, a_nominal):
        self.inputs.append((np.array(q), np.array(qd), np.array(a_nominal), self.moving))
        return super().filter(q, qd, a_nominal)


def replay_filter_timing(recorded: list[_RecordedFilter], timer: TickTimer) -> None:
    """Time each recorded filter's calls again, in order, in a filter built the same way, with
    nothing else between them. In the scenario loop the filter shares the machine with MuJoCo
    and the MPC process on the other core, which adds a tail (nominal filter, Panda: p99 277 us
    in the loop, 215 us alone); this is the filter's own cost on one core."""
    for source in recorded:
        args, kwargs = source.made_with
        f = SafetyFilter(*args, **kwargs)
        for q, qd, a_nominal, moving in source.inputs:
            if moving is not f.moving:
                f.set_obstacles(moving)
            timer.add(f.filter(q, qd, a_nominal).solve_s)


def run_scenario(sc: Scenario, variant: str, robot, error_models: dict, filter_timer: TickTimer | None = None,
                 planner: PlannerProcess | None = None, mpc_timer: TickTimer | None = None,
                 recorded: list | None = None) -> dict:
    """One scenario with one variant. The filtered variants run as the controller does, goals
    through `planner` (the MPC, unless the scenario is not `planned`) then the filter; 'unfiltered'
    follows the goal's own reference.
    `recorded`, when given, receives the filter with the inputs of every tick (replay_filter_timing)."""
    base_sets = load_safe_sets(robot)
    sets = base_sets
    if sc.workspace_max_z is not None:
        sets = dataclasses.replace(base_sets, workspace_max=np.array([*base_sets.workspace_max[:2], sc.workspace_max_z]))
    effects = load_profile("realistic")
    if sc.payload:
        effects = dataclasses.replace(effects, payload_mass=effects.payload_mass + sc.payload)
    backend = make_backend("mujoco", robot, effects)
    gains = ImpedanceSettings.from_robot(robot, stiffness=robot.stiffness * sc.stiffness_scale,
                                         damping=robot.damping * math.sqrt(sc.stiffness_scale))
    arm = SimulatedArm(robot, backend, gains, sc.q0)
    settings = FilterSettings(dt=1 / RATE_HZ, distance_margin=sc.distance_margin)
    safety = None
    kind = SafetyFilter if recorded is None else _RecordedFilter
    if variant == "robust":
        em = error_models["mismatch" if sc.payload else "realistic"]
        em = TorqueErrorModel(em.model, em.mean, em.cov, em.noise_std, gains.stiffness, em.samples)  # the gains in use
        safety = kind(robot, sets, settings, solver="clarabel", error_model=em, damping=gains.damping)
    elif variant == "nominal":
        safety = kind(robot, sets, settings, solver="osqp", stiffness=gains.stiffness, damping=gains.damping)
    if recorded is not None and safety is not None:
        recorded.append(safety)
    if not sc.planned:
        planner = None
    if planner is not None:
        planner.update(sets, dataclasses.replace(planner.settings, distance_margin=sc.distance_margin + MPC_EXTRA_MARGIN))
    loop = OuterLoop(robot, OuterLoopConfig(period=1 / RATE_HZ), safety=safety, planner=planner)
    loop.start(0.0, sc.q0)
    measure = _Measure(SphereKinematics(robot, sets), sets, robot)

    def obstacle_at(t):
        """The scenario's obstacle at time t, or None."""
        if sc.obstacle is None:
            return None
        center, radius, velocity = sc.obstacle
        c = center + velocity * t
        return Obstacle("ball", c, c.copy(), radius, velocity)

    try:
        if sc.goal_q is not None:
            loop.command_joint_goal(0.0, sc.goal_q)
        elif sc.goal_p is not None:
            loop.command_pose_goal(0.0, sc.goal_p, loop.desired_pose()[1])
    except GoalRejected as exc:
        return {"kind": sc.kind, "variant": variant, "rejected": str(exc)}
    hand = backend.model.nbody - 1  # the last body: the wrist (or the payload fixed to it)

    def tick(t):
        obs = obstacle_at(t)
        if obs is not None:
            measure.obstacles = (obs,)
            if safety is not None:
                safety.set_obstacles((obs,))
        if sc.push is not None:
            force, start, length = sc.push
            backend.data.xfrc_applied[hand, :3] = force if start <= t < start + length else 0.0
        plan_before = loop.plan_result
        ref = loop.tick(t)
        if filter_timer is not None and loop.safety_result is not None:
            filter_timer.add(loop.safety_result.solve_s)
        if mpc_timer is not None and loop.plan_result is not plan_before:
            mpc_timer.add(loop.plan_result.solve_s)
        return ref

    lost = ""
    try:
        arm.follow(tick, sc.duration, RATE_HZ, after_tick=measure)
    except RuntimeError as exc:  # the robot layer refused a reference (the arm was blocked): it holds
        lost = str(exc)
    q_end = arm.state()[1]
    result = {"kind": sc.kind, "variant": variant, "min_barrier_m": measure.min_h, "min_joint_rad": measure.min_joint,
              "violation": bool(measure.min_h < -VIOLATION_M or measure.min_joint < 0), "lost": lost,
              "fallbacks": loop.safety_fallbacks, "mpc_failures": loop.planner_failures}
    if sc.goal_q is not None:
        result["goal_error_rad"] = float(np.max(np.abs(q_end - sc.goal_q)))
    return result


def cvxpy_baseline(robot, samples: int, seed: int) -> dict:
    """The nominal filter's QP at recorded states, solved by OSQP directly and through cvxpy (DPP)."""
    import cvxpy as cp

    sets = load_safe_sets(robot)
    f = SafetyFilter(robot, sets, FilterSettings(dt=1 / RATE_HZ))
    n, m = robot.n_joints, f.settings.max_rows
    a, a_nom = cp.Variable(n), cp.Parameter(n)
    lo, hi, G, r = cp.Parameter(n), cp.Parameter(n), cp.Parameter((m, n)), cp.Parameter(m)
    w = f._weights()
    problem = cp.Problem(cp.Minimize(cp.sum(cp.multiply(w, cp.square(a - a_nom)))), [a >= lo, a <= hi, G @ a >= r])
    rng = np.random.default_rng(seed)
    direct, through = TickTimer(samples), TickTimer(samples)
    agree = 0.0
    q, qd = robot.home.copy(), np.zeros(n)
    model = RigidBody(robot)
    for k in range(samples):
        a_cmd = np.linalg.pinv(model.ee_jacobian(q)[:3]) @ np.array([0.0, 0.0, -3.0]) + rng.normal(0, 1, n)
        captured = {}
        original = f._solve_osqp

        def capture(an, lower, upper, g, rhs):
            captured.update(an=an, lower=lower, upper=upper, g=g, rhs=rhs)
            t0 = time.perf_counter()
            out = original(an, lower, upper, g, rhs)
            direct.add(time.perf_counter() - t0)
            return out

        f._solve_osqp = capture
        res = f.filter(q, qd, a_cmd)
        f._solve_osqp = original
        if captured:
            Gv, rv = np.zeros((m, n)), np.full(m, -1e6)
            Gv[: len(captured["g"])], rv[: len(captured["rhs"])] = captured["g"], captured["rhs"]
            a_nom.value, lo.value, hi.value, G.value, r.value = captured["an"], captured["lower"], captured["upper"], Gv, rv
            t0 = time.perf_counter()
            problem.solve(solver=cp.OSQP, warm_start=True, eps_abs=1e-7, eps_rel=1e-7)
            through.add(time.perf_counter() - t0)
            if a.value is not None and res.status == "ok":
                agree = max(agree, float(np.max(np.abs(a.value - res.qdd))))
        q, qd = q + qd / RATE_HZ + 0.5 * res.qdd / RATE_HZ**2, qd + res.qdd / RATE_HZ
    d, c = direct.summary(), through.summary()
    return {"qp_osqp_direct_us_p50": d.get("us_p50"), "qp_cvxpy_us_p50": c.get("us_p50"), "qp_count": c.get("count"),
            "qp_solution_max_diff": agree}


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def bench_safety(robot_name: str = "panda", scenarios: int = 210, seed: int = 0, log=print) -> dict:
    robot = load_robot(robot_name)
    model = RigidBody(robot)
    t_start = time.perf_counter()
    prior = TorqueErrorModel.prior(model, robot.stiffness)
    error_models = {}
    for name, extra in (("realistic", 0.0), ("mismatch", 0.75)):
        effects = load_profile("realistic")
        effects = dataclasses.replace(effects, payload_mass=effects.payload_mass + extra)
        q, qd, qdd, err = record_torque_errors(robot, effects, 20.0, seed)
        error_models[name] = TorqueErrorModel.fit(prior, q, qd, qdd, err)
        log(f"error model '{name}': fitted on {len(q)} samples, noise std {np.round(error_models[name].noise_std, 2).tolist()} Nm")
    cases = make_scenarios(robot, scenarios, seed)
    results = {v: [] for v in VARIANTS}
    timers = {v: TickTimer(1 << 20) for v in ("robust", "nominal")}
    recorded = {v: [] for v in ("robust", "nominal")}  # every REPLAY_EVERY-th scenario's filters
    planner, mpc_timer = PlannerProcess(robot, load_safe_sets(robot), lockstep=True), TickTimer(1 << 20)
    try:
        for i, sc in enumerate(cases):
            for v in VARIANTS:
                keep = recorded.get(v) if i % REPLAY_EVERY == 0 else None
                results[v].append(run_scenario(sc, v, robot, error_models, timers.get(v),
                                               planner if v != "unfiltered" else None, mpc_timer, keep))
            if (i + 1) % 10 == 0 or i + 1 == len(cases):
                counts = {v: sum(r.get("violation", False) for r in results[v]) for v in VARIANTS}
                log(f"[{i + 1}/{len(cases)}] violations so far {counts} ({time.perf_counter() - t_start:.0f} s)")
    finally:
        planner.close()
    alone = {v: TickTimer(1 << 20) for v in recorded}
    for v, filters in recorded.items():
        replay_filter_timing(filters, alone[v])
    log(f"replayed {alone['nominal'].count} nominal and {alone['robust'].count} robust filter calls alone")
    baseline = cvxpy_baseline(robot, 300, seed)
    nominal_t, robust_t, mpc_t = alone["nominal"].summary(), alone["robust"].summary(), mpc_timer.summary()
    in_loop = {v: timers[v].summary() for v in timers}
    safe = [r for r in results["robust"] if r["kind"] == "safe_goal" and "goal_error_rad" in r]
    out = {
        "robot": robot_name, "machine_cores": os.cpu_count(),
        "scenarios": len(cases),
        "scenario_kinds": {k: sum(sc.kind == k for sc in cases) for k in KINDS},
        **{f"violations_{v}": sum(r.get("violation", False) for r in results[v]) for v in VARIANTS},
        "violations_by_kind": {v: {k: sum(r.get("violation", False) for r in results[v] if r["kind"] == k) for k in KINDS}
                               for v in VARIANTS},
        "min_barrier_robust_m": min(r.get("min_barrier_m", math.inf) for r in results["robust"]),
        "min_barrier_nominal_m": min(r.get("min_barrier_m", math.inf) for r in results["nominal"]),
        "min_barrier_unfiltered_m": min(r.get("min_barrier_m", math.inf) for r in results["unfiltered"]),
        "min_barrier_by_kind_m": {v: {k: _finite_or_none(min((r.get("min_barrier_m", math.inf) for r in results[v]
                                                              if r["kind"] == k), default=math.inf))
                                      for k in KINDS} for v in VARIANTS},
        "fallback_ticks_robust": sum(r.get("fallbacks", 0) for r in results["robust"]),
        "filter_us_p50": nominal_t.get("us_p50"), "filter_us_p99": nominal_t.get("us_p99"),
        "robust_filter_us_p50": robust_t.get("us_p50"), "robust_filter_us_p99": robust_t.get("us_p99"),
        "filter_timing": f"replayed alone on one core: the calls of every {REPLAY_EVERY}th scenario",
        "filter_in_loop_us_p50": in_loop["nominal"].get("us_p50"), "filter_in_loop_us_p99": in_loop["nominal"].get("us_p99"),
        "robust_filter_in_loop_us_p50": in_loop["robust"].get("us_p50"),
        "robust_filter_in_loop_us_p99": in_loop["robust"].get("us_p99"),
        "mpc_ms_p50": mpc_t["us_p50"] / 1e3 if mpc_t.get("us_p50") else None,
        "mpc_ms_p99": mpc_t["us_p99"] / 1e3 if mpc_t.get("us_p99") else None,
        "mpc_plans": mpc_t.get("count"), "mpc_failures": sum(r.get("mpc_failures", 0) for v in VARIANTS for r in results[v]),
        **baseline,
        "goal_success_rate": (sum(r["goal_error_rad"] < 0.01 for r in safe) / len(safe)) if safe else None,
        "safe_goals": len(safe),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out["filter_cvxpy_us_p50"] = out.pop("qp_cvxpy_us_p50")
    if out["filter_cvxpy_us_p50"] and out["qp_osqp_direct_us_p50"]:
        out["cvxpy_over_direct_solve"] = out["filter_cvxpy_us_p50"] / out["qp_osqp_direct_us_p50"]
    out["targets_met"] = {
        "zero_violations_robust": out["violations_robust"] == 0,
        "filter_p99_below_300us": bool(out["filter_us_p99"] and out["filter_us_p99"] < 300),
        "mpc_p99_below_20ms": bool(out["mpc_ms_p99"] and out["mpc_ms_p99"] < 20),
        "goal_success_at_least_95pct": bool(out["goal_success_rate"] is not None and out["goal_success_rate"] >= 0.95),
    }
    return out
