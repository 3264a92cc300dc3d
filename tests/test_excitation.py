"""Base parameters and excitation trajectories."""
import numpy as np
import pytest

from robot_dyn.dynamics import RigidBody
from robot_dyn.dynamics.base_parameters import base_parameters
from robot_dyn.inverse_dynamics.excitation import (
    ExcitationConfig, FourierTrajectory, _constraints, optimise_excitation, regressor_condition, within_limits,
)
from robot_dyn.robots import load_robot


@pytest.fixture(scope="module")
def panda():
    return RigidBody(load_robot("panda"))


def test_base_regressor_reproduces_rnea(panda):
    base = base_parameters(panda)
    assert 40 <= base.count < 70  # a 7-joint revolute arm has far fewer base than standard parameters
    beta = base.from_standard(panda.inertial_parameters())
    rng = np.random.default_rng(3)
    for _ in range(5):
        q, qd, qdd = rng.normal(size=(3, 7))
        np.testing.assert_allclose(base.regressor(panda.regressor(q, qd, qdd)) @ beta, panda.rnea(q, qd, qdd), atol=1e-9)


def test_fourier_derivatives_are_consistent():
    rng = np.random.default_rng(0)
    traj = FourierTrajectory(10.0, np.zeros(7), rng.normal(0, 0.1, (7, 5)), rng.normal(0, 0.1, (7, 5)))
    t = np.linspace(0, 10, 20001)
    q, qd, qdd = traj.sample(t)
    dt = t[1] - t[0]
    np.testing.assert_allclose(np.gradient(q, dt, axis=0)[1:-1], qd[1:-1], atol=1e-6)
    np.testing.assert_allclose(np.gradient(qd, dt, axis=0)[1:-1], qdd[1:-1], atol=1e-5)
    np.testing.assert_allclose(q[0], q[-1], atol=1e-12)  # periodic
    assert FourierTrajectory.from_dict(traj.to_dict()).a.tolist() == traj.a.tolist()


def test_optimised_excitation_is_feasible_and_better_conditioned(panda):
    config = ExcitationConfig(iterations=15, samples=60)
    traj, cond, feasible = optimise_excitation(panda, config)
    assert feasible and within_limits(panda, traj, config, points=5000)
    start = FourierTrajectory(config.period, panda.robot.home, np.full((7, 5), 0.02), np.full((7, 5), 0.02))
    assert cond < 0.2 * regressor_condition(panda, base_parameters(panda), start, config.samples)
    # Margins hold where the optimiser looked (4 x samples points per period).
    t = np.linspace(0, config.period, 4 * config.samples, endpoint=False)
    assert np.all(_constraints(panda, traj, config, t) >= -1e-6)
