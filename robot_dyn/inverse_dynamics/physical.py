"""Physically consistent inertial parameters through the log-Cholesky parameterisation
(Rucker and Wensing, RA-L 2022): any real 10-vector theta maps to a body with positive mass,
positive-definite inertia and the triangle inequality, because the 4x4 pseudo-inertia
J = U U^T is positive definite by construction.

theta = [alpha, d1, d2, d3, s12, s23, s13, t1, t2, t3]
U = exp(alpha) [[e^d1, s12, s13, t1], [0, e^d2, s23, t2], [0, 0, e^d3, t3], [0, 0, 0, 1]]
J = [[Sigma, h], [h^T, m]],  I = tr(Sigma) 1 - Sigma (inertia about the body frame origin)
pi = [m, h_x, h_y, h_z, Ixx, Ixy, Iyy, Ixz, Iyz, Izz]  (pinocchio's dynamic-parameter order)

pinocchio has the same map in numpy (LogCholeskyParameters); this torch version exists
because training needs it inside autograd. tests/test_inverse_dynamics_models.py checks
both agree.
"""
from __future__ import annotations

import numpy as np
import pinocchio as pin
import torch


def log_cholesky_to_dynamic(theta: torch.Tensor) -> torch.Tensor:
    """(..., 10) log-Cholesky parameters -> (..., 10) dynamic parameters, differentiable."""
    alpha, d1, d2, d3, s12, s23, s13, t1, t2, t3 = theta.unbind(-1)
    zero = torch.zeros_like(alpha)
    one = torch.ones_like(alpha)
    U = torch.stack([
        torch.stack([torch.exp(d1), s12, s13, t1], -1),
        torch.stack([zero, torch.exp(d2), s23, t2], -1),
        torch.stack([zero, zero, torch.exp(d3), t3], -1),
        torch.stack([zero, zero, zero, one], -1),
    ], -2) * torch.exp(alpha)[..., None, None]
    J = U @ U.transpose(-1, -2)
    sigma, h, m = J[..., :3, :3], J[..., :3, 3], J[..., 3, 3]
    inertia = torch.diagonal(sigma, dim1=-2, dim2=-1).sum(-1)[..., None, None] * torch.eye(3, dtype=theta.dtype) - sigma
    return torch.stack([m, h[..., 0], h[..., 1], h[..., 2], inertia[..., 0, 0], inertia[..., 0, 1], inertia[..., 1, 1],
                        inertia[..., 0, 2], inertia[..., 1, 2], inertia[..., 2, 2]], -1)


def dynamic_to_log_cholesky(pi: np.ndarray) -> np.ndarray:
    """Inverse map for initialisation, (n_bodies * 10,) -> same shape; pi must be physically consistent."""
    return np.concatenate([_from_pseudo_inertia(pin.Inertia.FromDynamicParameters(p))
                           for p in np.asarray(pi, float).reshape(-1, 10)])


def _from_pseudo_inertia(inertia: pin.Inertia) -> np.ndarray:
    """theta of one body: U from the 'upper' Cholesky factor J = U U^T (U upper triangular)."""
    J = inertia.toPseudoInertia().toMatrix()
    P = np.eye(4)[::-1]  # J = U U^T with U upper  <=>  P J P = L L^T with L = P U P lower
    L = np.linalg.cholesky(P @ J @ P)
    U = P @ L @ P
    alpha = np.log(U[3, 3])
    U = U / U[3, 3]
    return np.array([alpha, np.log(U[0, 0]), np.log(U[1, 1]), np.log(U[2, 2]), U[0, 1], U[1, 2], U[0, 2],
                     U[0, 3], U[1, 3], U[2, 3]])


def is_physically_consistent(pi: np.ndarray, tol: float = 1e-9) -> bool:
    """Positive mass, positive-definite rotational inertia about the COM, triangle inequality, per body."""
    for p in np.asarray(pi, float).reshape(-1, 10):
        if p[0] <= tol:
            return False
        inertia = pin.Inertia.FromDynamicParameters(p).inertia  # about the centre of mass
        eig = np.linalg.eigvalsh(inertia)
        if eig[0] <= tol or eig[0] + eig[1] < eig[2] - tol:
            return False
    return True
