"""Base inertial parameters: the identifiable combinations of the 10n standard parameters.

For a fixed-base arm many columns of the joint torque regressor Y(q, qd, qdd) are
zero or linear combinations of others, so only r < 10n combinations (the base
parameters) can be identified. They are found numerically (Gautier 1990): QR with
column pivoting of Y stacked over random states gives the r independent columns P1
and beta = pi_1 + K pi_2 with K = R11^-1 R12, so that Y pi = (Y P1) beta.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from robot_dyn.dynamics.rigid_body import RigidBody


@dataclass(frozen=True)
class BaseParameters:
    """independent: column indices of the base regressor; combination K (r x (10n - r))."""

    independent: np.ndarray
    dependent: np.ndarray
    combination: np.ndarray

    @property
    def count(self) -> int:
        return self.independent.size

    def regressor(self, full_regressor: np.ndarray) -> np.ndarray:
        """Base regressor (rows x r) from the standard one (rows x 10n)."""
        return full_regressor[..., self.independent]

    def from_standard(self, pi: np.ndarray) -> np.ndarray:
        """beta = pi_independent + K pi_dependent."""
        return pi[self.independent] + self.combination @ pi[self.dependent]


def base_parameters(model: RigidBody, samples: int = 300, seed: int = 0, tol: float = 1e-8) -> BaseParameters:
    """Compute the base-parameter structure of `model` from random states within its limits."""
    robot = model.robot
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(samples):
        q = rng.uniform(robot.q_min, robot.q_max)
        qd = rng.uniform(-robot.qd_max, robot.qd_max)
        qdd = rng.uniform(-robot.qdd_max, robot.qdd_max)
        rows.append(model.regressor(q, qd, qdd))
    Y = np.vstack(rows)
    _, R, perm = scipy.linalg.qr(Y, mode="economic", pivoting=True)
    diag = np.abs(np.diag(R))
    rank = int(np.sum(diag > tol * diag[0]))
    independent, dependent = perm[:rank], perm[rank:]
    K = scipy.linalg.solve_triangular(R[:rank, :rank], R[:rank, rank:]) if dependent.size else np.zeros((rank, 0))
    K[np.abs(K) < 1e-10] = 0.0
    return BaseParameters(np.array(independent), np.array(dependent), K)
