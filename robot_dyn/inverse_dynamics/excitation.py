"""Excitation trajectories: finite Fourier series per joint, optimised for identification.

q_i(t) = q0_i + sum_l [a_il / (w l) sin(w l t) - b_il / (w l) cos(w l t)],  w = 2 pi / period
(Swevers et al. 1997): periodic, so data can be averaged over periods, with analytic
velocity and acceleration. The coefficients minimise the condition number of the base
regressor stacked over the trajectory, within joint position/velocity/acceleration
limits (with margins) and with every link origin above the table plane.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin
import scipy.optimize

from robot_dyn.dynamics.base_parameters import BaseParameters, base_parameters
from robot_dyn.dynamics.rigid_body import RigidBody


@dataclass(frozen=True)
class FourierTrajectory:
    """period (s); q0 (n,) rad; a, b (n, harmonics) coefficients in rad/s."""

    period: float
    q0: np.ndarray
    a: np.ndarray
    b: np.ndarray

    @property
    def harmonics(self) -> int:
        return self.a.shape[1]

    def sample(self, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, qd, qdd), each (len(t), n), at times t (s)."""
        t = np.atleast_1d(np.asarray(t, float))
        w = 2 * np.pi / self.period
        l = np.arange(1, self.harmonics + 1)
        wl = w * l  # (L,)
        s, c = np.sin(np.outer(t, wl)), np.cos(np.outer(t, wl))  # (T, L)
        q = self.q0 + (s / wl) @ self.a.T - (c / wl) @ self.b.T
        qd = c @ self.a.T + s @ self.b.T
        qdd = -(s * wl) @ self.a.T + (c * wl) @ self.b.T
        return q, qd, qdd

    def to_dict(self) -> dict:
        return {"period": self.period, "q0": self.q0.tolist(), "a": self.a.tolist(), "b": self.b.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "FourierTrajectory":
        return cls(float(data["period"]), np.asarray(data["q0"], float), np.asarray(data["a"], float), np.asarray(data["b"], float))


@dataclass(frozen=True)
class ExcitationConfig:
    period: float = 10.0  # s
    harmonics: int = 5
    samples: int = 100  # points per period in the condition number
    limit_margin: float = 0.1  # rad from position limits
    velocity_scale: float = 0.6  # share of velocity limits
    acceleration_scale: float = 0.6  # share of acceleration limits
    table_height: float = 0.05  # m: every link origin beyond the second stays above this
    iterations: int = 60
    seed: int = 0


def _unpack(x: np.ndarray, n: int, L: int, period: float) -> FourierTrajectory:
    return FourierTrajectory(period, x[:n], x[n:n + n * L].reshape(n, L), x[n + n * L:].reshape(n, L))


def regressor_condition(model: RigidBody, base: BaseParameters, traj: FourierTrajectory, samples: int) -> float:
    """Condition number of the base regressor stacked over `samples` points of one period."""
    t = np.linspace(0, traj.period, samples, endpoint=False)
    q, qd, qdd = traj.sample(t)
    W = np.vstack([base.regressor(model.regressor(q[k], qd[k], qdd[k])) for k in range(samples)])
    return float(np.linalg.cond(W))


def _constraints(model: RigidBody, traj: FourierTrajectory, config: ExcitationConfig, t: np.ndarray) -> np.ndarray:
    """Values that must all be >= 0: position, velocity, acceleration margins and link heights."""
    robot = model.robot
    q, qd, qdd = traj.sample(t)
    out = [
        (q - (robot.q_min + config.limit_margin)).ravel(),
        ((robot.q_max - config.limit_margin) - q).ravel(),
        (config.velocity_scale * robot.qd_max - np.abs(qd)).ravel(),
        (config.acceleration_scale * robot.qdd_max - np.abs(qdd)).ravel(),
    ]
    heights = []
    for qk in q[:: max(1, len(q) // 40)]:
        pin.forwardKinematics(model.model, model.data, qk)
        heights.extend(model.data.oMi[j].translation[2] for j in range(3, model.model.njoints))
    heights.append(model.ee_pose(q[0])[0][2])
    out.append(np.asarray(heights) - config.table_height)
    return np.concatenate(out)


def optimise_excitation(model: RigidBody, config: ExcitationConfig = ExcitationConfig(), log=lambda *_: None):
    """Fourier coefficients minimising the base-regressor condition number within the limits.

    Returns (trajectory, condition number, feasible). SLSQP from a small random start
    around the robot's home posture.
    """
    robot = model.robot
    n, L = robot.n_joints, config.harmonics
    base = base_parameters(model, seed=config.seed)
    rng = np.random.default_rng(config.seed)
    x0 = np.concatenate([robot.home, rng.normal(0, 0.05, 2 * n * L)])
    t_check = np.linspace(0, config.period, 4 * config.samples, endpoint=False)

    def cost(x):
        return np.log(regressor_condition(model, base, _unpack(x, n, L, config.period), config.samples))

    def feasible(x):
        return _constraints(model, _unpack(x, n, L, config.period), config, t_check)

    state = {"it": 0}

    def progress(x):
        state["it"] += 1
        log(f"excitation: iteration {state['it']}/{config.iterations}, condition number {np.exp(cost(x)):.1f}")

    result = scipy.optimize.minimize(
        cost, x0, method="SLSQP", constraints=[{"type": "ineq", "fun": feasible}],
        options={"maxiter": config.iterations, "ftol": 1e-4}, callback=progress,
    )
    traj = _unpack(result.x, n, L, config.period)
    return traj, regressor_condition(model, base, traj, config.samples), within_limits(model, traj, config)


def within_limits(model: RigidBody, traj: FourierTrajectory, config: ExcitationConfig, points: int = 2000) -> bool:
    """True if the trajectory respects the robot's real limits (no margins) and the table on a dense grid.

    The optimiser enforces limits with margins at fewer points; the margins are what keep
    the real limits between those points.
    """
    real = ExcitationConfig(limit_margin=0.0, velocity_scale=1.0, acceleration_scale=1.0, table_height=0.0)
    t = np.linspace(0, traj.period, points, endpoint=False)
    return bool(np.all(_constraints(model, traj, real, t) >= 0.0))
