"""Trajectory generation: boundary conditions, limits and derivative consistency."""
import numpy as np
import pinocchio as pin
import pytest

from robot_dyn.control.trajectory import (
    CartesianMove, JointMotion, MIN_JERK_PEAK_ACCELERATION, eval_quintic, figure_eight, min_jerk_duration, quintic,
)


def test_quintic_meets_both_boundary_states():
    c = quintic([0.0, 1.0], [0.5, 0.0], [0.1, -1.0], [2.0, -1.0], [0.0, 0.3], [0.0, 0.2], 1.7)
    x, v, a = eval_quintic(c, 0.0)
    np.testing.assert_allclose([x, v, a], [[0, 1], [0.5, 0], [0.1, -1]], atol=1e-12)
    x, v, a = eval_quintic(c, 1.7)
    np.testing.assert_allclose([x, v, a], [[2, -1], [0, 0.3], [0, 0.2]], atol=1e-12)


def test_min_jerk_duration_respects_velocity_and_acceleration_bounds():
    delta, v_max, a_max = np.array([1.0, -0.3]), np.array([0.5, 2.0]), np.array([10.0, 0.5])
    T = min_jerk_duration(delta, v_max, a_max)
    motion = JointMotion.plan(0.0, np.zeros(2), np.zeros(2), np.zeros(2), delta, T)
    samples = [motion.sample(t) for t in np.linspace(0, T, 2001)]
    v = np.abs([s[1] for s in samples]).max(axis=0)
    a = np.abs([s[2] for s in samples]).max(axis=0)
    assert np.all(v <= v_max * (1 + 1e-6)) and np.all(a <= a_max * (1 + 1e-3))
    assert T >= np.sqrt(MIN_JERK_PEAK_ACCELERATION * 0.3 / 0.5) - 1e-9


def test_figure_eight_derivatives_match_finite_differences_and_start_and_end_at_rest():
    path = figure_eight([0.3, 0.0, 0.5], 0.1, 4.0, cycles=1, ramp=1.0, plane="yz", rate_hz=200)
    assert np.allclose(path.v[0], 0) and np.allclose(path.v[-1], 0) and np.allclose(path.p[0], path.p[-1])
    dt = 1.0 / 200
    np.testing.assert_allclose((path.p[2:] - path.p[:-2]) / (2 * dt), path.v[1:-1], atol=2e-4)
    np.testing.assert_allclose((path.v[2:] - path.v[:-2]) / (2 * dt), path.a[1:-1], atol=2e-3)
    assert np.ptp(path.p[:, 1]) == pytest.approx(0.2, abs=1e-3) and np.ptp(path.p[:, 0]) == 0


def test_cartesian_path_interpolates_between_samples_exactly_for_polynomial_motion():
    coarse = figure_eight([0.0, 0.0, 0.0], 0.1, 4.0, cycles=1, ramp=1.0, rate_hz=50)
    fine = figure_eight([0.0, 0.0, 0.0], 0.1, 4.0, cycles=1, ramp=1.0, rate_hz=1000)
    errors = [np.linalg.norm(coarse.sample(t).position - fine.sample(t).position) for t in fine.times[::7]]
    assert max(errors) < 1e-6


def test_cartesian_move_reaches_goal_pose_at_rest():
    R1 = pin.rpy.rpyToMatrix(0.3, -0.2, 0.5)
    move = CartesianMove(1.0, 2.0, np.zeros(3), np.eye(3), np.array([0.1, 0.2, -0.1]), R1)
    end = move.sample(3.5)
    np.testing.assert_allclose(end.position, [0.1, 0.2, -0.1], atol=1e-12)
    np.testing.assert_allclose(end.rotation, R1, atol=1e-12)
    assert np.allclose(end.velocity, 0) and np.allclose(end.angular_velocity, 0)


def test_path_following_tells_a_late_arm_from_one_off_the_curve():
    """A figure-8 followed 0.5 s behind schedule is off its schedule by centimetres and on its curve; one 5 mm
    out of the curve's plane is 5 mm off both."""
    from robot_dyn.jobs.report import path_following

    path = figure_eight(np.array([0.5, 0.0, 0.4]), 0.1, 4.0, 1, 1.0, "yz", rotation=np.eye(3))
    t = np.arange(path.t0, path.t_end, 0.002)
    desired = np.array([path.sample(ti).position for ti in t])
    late = np.array([path.sample(max(ti - 0.5, path.t0)).position for ti in t])
    following = path_following(late, desired)
    assert following["tracking_max_m"] > 0.03 and following["path_error_max_m"] < 1e-3, following
    aside = path_following(desired + [0.005, 0.0, 0.0], desired)
    assert np.isclose(aside["path_error_rms_m"], 0.005) and np.isclose(aside["tracking_rms_m"], 0.005), aside
