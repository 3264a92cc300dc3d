"""The CBF safety filter in its own model (the reference's double integrator at the outer-loop step).

Property tests (hypothesis): from random safe states, under random and adversarial nominal
accelerations, the filtered closed loop never leaves the safe set, for the nominal QP
(OSQP) and the robust SOCP (Clarabel).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.robots import load_robot
from robot_dyn.safety.barriers import barrier_rows
from robot_dyn.safety.error_model import ErrorModelError, TorqueErrorModel
from robot_dyn.safety.filter import FilterSettings, SafetyFilter, joint_limit_bounds
from robot_dyn.safety.obstacles import CYLINDER, ObstacleTracker, ObstacleUpdate
from robot_dyn.safety.sets import SafetyConfigError, load_safe_sets, obstacle_from_fields

DT = 0.002
ROBOT = load_robot("panda")
SETS = load_safe_sets(ROBOT)
MODEL = RigidBody(ROBOT)
BALL = obstacle_from_fields("ball", "sphere", 0.06, center=[0.45, 0.0, 0.35])


def rollout(f: SafetyFilter, q, qd, command, steps: int):
    """Integrate the filtered acceleration; returns the smallest Cartesian barrier (m, margin 0),
    the smallest joint-limit distance (rad) and the statuses seen."""
    min_h, min_joint, statuses = np.inf, np.inf, set()
    for k in range(steps):
        res = f.filter(q, qd, command(k, q, qd))
        statuses.add(res.status)
        q = q + DT * qd + 0.5 * DT * DT * res.qdd
        qd = qd + DT * res.qdd
        rows = barrier_rows(f.kinematics, f.sets, f.obstacles, q, qd, 0.0)
        min_h = min(min_h, float(rows.h.min()))
        min_joint = min(min_joint, float(np.min(np.minimum(q - ROBOT.q_min, ROBOT.q_max - q))))
    return min_h, min_joint, statuses


def toward(target):
    """Nominal command: a stiff PD toward a joint target (it ignores every safe set)."""
    return lambda k, q, qd: 400.0 * (target - q) - 40.0 * qd


def safe_start(rng):
    """A random posture near home, at rest, inside every set with margin."""
    f = SafetyFilter(ROBOT, SETS)
    f.set_obstacles((BALL,))
    for _ in range(100):
        q = ROBOT.home + rng.uniform(-0.5, 0.5, ROBOT.n_joints)
        rows = barrier_rows(f.kinematics, SETS, f.obstacles, q, np.zeros(ROBOT.n_joints), 0.012)
        if rows.h.min() > 0 and np.all(q > ROBOT.q_min + 0.02) and np.all(q < ROBOT.q_max - 0.02):
            return q
    raise AssertionError("no safe start found")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), adversarial=st.booleans())
def test_nominal_filter_keeps_the_arm_in_the_safe_set(seed, adversarial):
    rng = np.random.default_rng(seed)
    f = SafetyFilter(ROBOT, SETS, FilterSettings(dt=DT))
    f.set_obstacles((BALL,))
    q0 = safe_start(rng)
    if adversarial:  # drive straight through the table / the ball / the joint limits
        target = np.where(rng.random(ROBOT.n_joints) < 0.5, ROBOT.q_min, ROBOT.q_max) + rng.normal(0, 0.3, ROBOT.n_joints)
        command = toward(target)
    else:  # random accelerations up to twice the limits, changing every 50 ms
        pushes = rng.uniform(-2, 2, (20, ROBOT.n_joints)) * ROBOT.qdd_max
        command = lambda k, q, qd: pushes[(k // 25) % 20]  # noqa: E731
    min_h, min_joint, statuses = rollout(f, q0, np.zeros(ROBOT.n_joints), command, 400)
    assert min_h > -1e-4, f"barrier went to {min_h * 1000:.3f} mm ({statuses})"
    assert min_joint > 0.0



@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_robust_filter_keeps_the_arm_in_the_safe_set(seed):
    rng = np.random.default_rng(seed)
    f = SafetyFilter(ROBOT, SETS, FilterSettings(dt=DT), solver="clarabel",
                     error_model=TorqueErrorModel.prior(MODEL, ROBOT.stiffness))
    f.set_obstacles((BALL,))
    target = np.where(rng.random(ROBOT.n_joints) < 0.5, ROBOT.q_min, ROBOT.q_max)
    min_h, min_joint, statuses = rollout(f, safe_start(rng), np.zeros(ROBOT.n_joints), toward(target), 300)
    assert min_h > -1e-4 and min_joint > 0.0, statuses


def test_joint_limit_bound_is_exact_braking():
    """From a state on the braking curve, the bound is exactly -a_brake; below it, the step is admissible."""
    a_b = np.full(1, 5.0)
    hi = np.array([1.0])
    v = np.array([1.0])
    q = hi - v**2 / (2 * a_b)  # exactly on the braking curve
    upper, lower = joint_limit_bounds(q, v, np.array([-1.0]), hi, DT, a_b)
    assert upper[0] == pytest.approx(-5.0, abs=1e-6)
    assert lower[0] < upper[0]
    # braking at a_b for the whole stop never crosses the limit
    for _ in range(400):
        up, _ = joint_limit_bounds(q, v, np.array([-1.0]), hi, DT, a_b)
        a = up
        q, v = q + DT * v + 0.5 * DT * DT * a, v + DT * a
        assert q[0] + max(v[0], 0) ** 2 / (2 * a_b[0]) <= hi[0] + 1e-12


def test_joint_limits_keep_the_deflection_an_external_force_can_cause():
    """Driven into joint 4's upper limit, the reference stops short of it by the margin plus
    F |J_4| / K_4; with no force budget it goes to the margin."""
    target = ROBOT.home.copy()
    target[3] = ROBOT.q_max[3] + 0.2
    stops = {}
    for force in (0.0, 30.0):
        f = SafetyFilter(ROBOT, SETS, FilterSettings(dt=DT, external_force=force))
        q, qd = ROBOT.home.copy(), np.zeros(ROBOT.n_joints)
        for k in range(1500):
            res = f.filter(q, qd, toward(target)(k, q, qd))
            q, qd = q + DT * qd + 0.5 * DT * DT * res.qdd, qd + DT * res.qdd
        jac = barrier_rows(f.kinematics, SETS, (), q, qd, 0.0).ee_jacobian
        expected = ROBOT.q_max[3] - f.settings.joint_margin - force * np.linalg.norm(jac[:, 3]) / ROBOT.stiffness[3]
        assert q[3] == pytest.approx(expected, abs=2e-3)
        stops[force] = q[3]
    assert stops[0.0] - stops[30.0] > 0.01


def test_far_from_everything_the_command_passes_unchanged():
    f = SafetyFilter(ROBOT, SETS)
    a = np.full(ROBOT.n_joints, 0.3)
    res = f.filter(ROBOT.home, np.zeros(ROBOT.n_joints), a)
    assert res.status == "free" and np.array_equal(res.qdd, a)


def test_bad_input_brakes_and_says_why():
    f = SafetyFilter(ROBOT, SETS)
    qd = np.full(ROBOT.n_joints, 0.1)
    res = f.filter(ROBOT.home, qd, np.full(ROBOT.n_joints, np.nan))
    assert res.status == "fallback" and "non-finite" in res.reason
    assert np.all(np.sign(res.qdd) == -1)  # braking
    res = f.filter(ROBOT.home, qd, np.zeros(3))
    assert res.status == "fallback" and "wrong size" in res.reason


def test_infeasible_situation_brakes():
    """An obstacle that swallows the hand leaves nothing the filter can do but brake (no exception)."""
    f = SafetyFilter(ROBOT, SETS, FilterSettings(dt=DT))
    p, _ = MODEL.ee_pose(ROBOT.home)
    f.set_obstacles((obstacle_from_fields("wall", "capsule", 0.3, start=p + [0, -0.5, 0], end=p + [0, 0.5, 0]),))
    qd = np.full(ROBOT.n_joints, 0.5)
    res = f.filter(ROBOT.home, qd, np.zeros(ROBOT.n_joints))
    assert res.status in ("ok", "fallback")
    assert res.min_barrier < 0


def test_robust_filter_tightens_by_the_error_model():
    """Same situation, approaching the table: the robust filter keeps the reference farther away."""
    stops = {}
    for name, solver, model in (("nominal", "osqp", None),
                                ("robust", "clarabel", TorqueErrorModel.prior(MODEL, ROBOT.stiffness, noise_std=2.0))):
        f = SafetyFilter(ROBOT, SETS, FilterSettings(dt=DT), solver=solver, error_model=model)

        def down(k, q, qd):  # push the flange straight down at 3 m/s^2
            return np.linalg.pinv(MODEL.ee_jacobian(q)[:3]) @ np.array([0.0, 0.0, -3.0])

        min_h, _, _ = rollout(f, ROBOT.home.copy(), np.zeros(ROBOT.n_joints), down, 1500)
        stops[name] = min_h
    assert stops["nominal"] == pytest.approx(0.01, abs=2e-3)  # stops at the distance margin
    assert stops["robust"] > stops["nominal"] + 2e-3


def test_under_an_unmodelled_payload_the_robust_filter_keeps_the_arm_off_the_table():
    """Robust vs nominal under model mismatch, in the filter's model: an unmodelled 2 kg payload
    makes the arm sag below its reference by its torque error over the stiffness (reached with
    the impedance loop's lag). Descending onto the table, the nominal filter stops the reference
    at the margin and the sagging arm goes through it; the robust filter, given the payload as
    its error model's mean, keeps the arm itself above the table."""
    payload = np.zeros(10 * ROBOT.n_joints)
    payload[-10] = 2.0  # mass of the last link, kg
    model = TorqueErrorModel(MODEL, payload, 1e-8 * np.eye(payload.size), np.full(ROBOT.n_joints, 0.05), ROBOT.stiffness)
    settings = FilterSettings(dt=DT, distance_margin=0.005)
    lag = 1.0 - np.exp(-DT * ROBOT.stiffness / ROBOT.damping)  # per joint, the filter's default (D/K)
    arm_h = {}
    for name, f in (("nominal", SafetyFilter(ROBOT, SETS, settings)),
                    ("robust", SafetyFilter(ROBOT, SETS, settings, solver="clarabel", error_model=model))):
        q, qd, e = ROBOT.home.copy(), np.zeros(ROBOT.n_joints), np.zeros(ROBOT.n_joints)
        lowest = np.inf
        for _ in range(1000):  # 2 s: down onto the table, then pressing on (later, near joint 4's and 6's limits,
            # the hard joint-limit rows leave the robust rows no room and their slack lets the arm 1.7 mm under)
            a = f.filter(q, qd, np.linalg.pinv(MODEL.ee_jacobian(q)[:3]) @ np.array([0.0, 0.0, -2.0])).qdd
            e = (1 - lag) * e + lag * model.torque_error(q, qd).tracking_error(a)[0]  # the arm's lag behind q_d
            q, qd = q + DT * qd + 0.5 * DT * DT * a, qd + DT * a
            lowest = min(lowest, float(barrier_rows(f.kinematics, SETS, (), q + e, qd, 0.0).h.min()))
        arm_h[name] = lowest
    assert arm_h["nominal"] < -0.005, arm_h  # the sag takes the arm through the 5 mm margin and the table
    assert arm_h["robust"] > -0.001, arm_h


class _BothWays(SafetyFilter):
    """The robust filter, also solving every problem with the conic program alone, to compare."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pairs = []  # (answer, conic program's answer, whether the conic program was skipped)
        self.conic_solves = 0

    def _solve_clarabel(self, *args):
        self.conic_solves += 1
        return super()._solve_clarabel(*args)

    def _solve_robust(self, a_nom, lower, upper, g, rhs, nominal_rhs, T, model):
        before = self.conic_solves
        answer, status = super()._solve_robust(a_nom, lower, upper, g, rhs, nominal_rhs, T, model)
        skipped = self.conic_solves == before
        conic, _ = self._solve_clarabel(a_nom, lower, upper, g, rhs, nominal_rhs, T, model)
        self.pairs.append((answer, conic, skipped))
        return answer, status


class _AlwaysSolving(SafetyFilter):
    """The robust filter without its shortcut: every tick with Cartesian rows goes to the solvers."""

    def _meets_rows(self, a, rows, selected, *args):
        return not selected.size


@pytest.mark.parametrize("payload_kg", [2.0, -2.0])
def test_the_robust_filter_solves_only_where_the_cheaper_answer_is_not_robust(payload_kg):
    """Where the box's answer meets every row it stands (no solve); else where the nominal QP's answer
    meets the robust rows it stands (no conic program); else the conic program's. Each agrees with
    what the filter without the shortcut, and the conic program alone, answer. An unmodelled 2 kg on
    the last link makes the robust rows tighter than the nominal ones toward the table (conic programs);
    2 kg less, looser (the QP's answers stand)."""
    payload = np.zeros(10 * ROBOT.n_joints)
    payload[-10] = payload_kg
    model = TorqueErrorModel(MODEL, payload, 1e-4 * np.eye(payload.size), np.full(ROBOT.n_joints, 0.2), ROBOT.stiffness)
    settings = FilterSettings(dt=DT, distance_margin=0.005)
    f = _BothWays(ROBOT, SETS, settings, solver="clarabel", error_model=model)
    always = _AlwaysSolving(ROBOT, SETS, settings, solver="clarabel", error_model=model)
    q, qd = ROBOT.home.copy(), np.zeros(ROBOT.n_joints)
    box_answers = 0
    for _ in range(600):  # down onto the table and along it
        a_nom = np.linalg.pinv(MODEL.ee_jacobian(q)[:3]) @ np.array([0.5, 0.0, -2.0])
        solves = len(f.pairs)
        a = f.filter(q, qd, a_nom).qdd
        box_answers += len(f.pairs) == solves
        np.testing.assert_allclose(a, always.filter(q, qd, a_nom).qdd, atol=2e-3)  # rad/s^2; limits ~10
        q, qd = q + DT * qd + 0.5 * DT * DT * a, qd + DT * a
    skipped = [s for _, _, s in f.pairs]
    assert 0 < box_answers < 600, "the box's answer stands on some ticks, not all"
    assert (sum(skipped) > 0) == (payload_kg < 0) and sum(skipped) < len(skipped)
    for answer, conic, _ in f.pairs:
        np.testing.assert_allclose(answer, conic, atol=2e-3)


def test_error_model_fit_recovers_a_payload_and_round_trips(tmp_path):
    """Torque errors from an unmodelled 1 kg payload: the posterior mean predicts them."""
    rng = np.random.default_rng(0)
    truth = MODEL.inertial_parameters().copy()
    truth[-10] += 1.0  # mass of the last link
    truth[-9:-6] += 1.0 * np.array([0.0, 0.0, 0.05])  # its first moment: 1 kg at 5 cm
    N = 400
    q = ROBOT.home + rng.uniform(-1, 1, (N, ROBOT.n_joints))
    qd, qdd = rng.normal(0, 0.5, (N, ROBOT.n_joints)), rng.normal(0, 2, (N, ROBOT.n_joints))
    err = np.stack([MODEL.regressor(a, b, c) @ (truth - MODEL.inertial_parameters()) for a, b, c in zip(q, qd, qdd)])
    prior = TorqueErrorModel.prior(MODEL, ROBOT.stiffness, relative_std=0.5, noise_std=0.1)
    post = TorqueErrorModel.fit(prior, q, qd, qdd, err + rng.normal(0, 0.05, err.shape))
    at = post.torque_error(ROBOT.home, np.zeros(ROBOT.n_joints))
    expected = MODEL.regressor(ROBOT.home, np.zeros(7), np.zeros(7)) @ (truth - MODEL.inertial_parameters())
    assert np.allclose(at.mean[:, -1], expected, atol=0.1)
    post.save(tmp_path / "em")
    loaded = TorqueErrorModel.load(tmp_path / "em", MODEL)
    assert np.allclose(loaded.mean, post.mean)
    (tmp_path / "em" / "error_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ErrorModelError, match="cannot read"):
        TorqueErrorModel.load(tmp_path / "em", MODEL)


def test_safe_set_config_errors_name_the_field(tmp_path):
    bad = tmp_path / "safety.yaml"
    bad.write_text("workspace: {min: [0, 0, 0], max: [1, 1]}\n")
    with pytest.raises(SafetyConfigError, match="workspace.max"):
        load_safe_sets(ROBOT, bad)
    bad.write_text("workspace: {min: [0, 0, 0], max: [1, 1, 1]}\nlinks: {panda: {end_effector: x, spheres: "
                   "[{name: a, frame: panda_link8, radius: -1}]}}\n")
    with pytest.raises(SafetyConfigError, match=r"spheres\[0\].radius"):
        load_safe_sets(ROBOT, bad)


def test_obstacle_tracker_estimates_velocity_and_rejects_bad_shapes():
    tracker = ObstacleTracker(max_obstacles=2)
    tracker.update(ObstacleUpdate(("", 1), "sphere", np.array([0.5, 0, 0.3]), 0.05, stamp=1.0))
    tracker.update(ObstacleUpdate(("", 1), "sphere", np.array([0.5, 0.1, 0.3]), 0.05, stamp=1.5))
    (obs,) = tracker.current(1.5)
    assert np.allclose(obs.velocity, [0, 0.2, 0])
    with pytest.raises(SafetyConfigError, match="radius"):
        tracker.update(ObstacleUpdate(("", 2), "sphere", np.array([0.5, 0, 0.3]), -1.0))
    with pytest.raises(SafetyConfigError, match="height"):
        tracker.update(ObstacleUpdate(("", 2), CYLINDER, np.zeros(3), 0.05, 0.0, np.array([0, 0, 1.0])))
    with pytest.raises(SafetyConfigError, match="not supported"):
        tracker.update(ObstacleUpdate(("", 2), "cube", np.zeros(3), 0.05))
    tracker.update(ObstacleUpdate(("", 3), "sphere", np.array([0.5, 0, 0.3]), 0.05, stamp=1.0, lifetime=0.2))
    assert len(tracker.current(1.1)) == 2 and len(tracker.current(1.3)) == 1  # the second one expired
