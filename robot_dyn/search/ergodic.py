"""Ergodic search by spectral multiscale coverage (SMC; Mathew and Mezic, Physica D 2011).

A path is ergodic with respect to a density phi when the time it spends in every region is
proportional to the region's probability. SMC measures this on a box with the cosine basis
f_k(x) = prod_i cos(k_i pi (x_i - lo_i) / L_i) / h_k: the path's time-averaged coefficients
c_k(t) = 1/t int_0^t f_k(x(s)) ds against the density's phi_k = int phi f_k dx, weighted by
Lambda_k = (1 + |k|^2)^-(d+1)/2 (large scales first), give the ergodic metric
E(t) = sum_k Lambda_k (c_k(t) - phi_k)^2. For a first-order agent x' = u, |u| <= u_max, the
feedback u = -u_max B / |B| with B = sum_k Lambda_k S_k grad f_k(x), S_k = t (c_k - phi_k), drives E
to zero fastest (their eq. 27). Written here because no maintained Python package implements SMC;
the coefficients of the density are integrated on a grid, which for 2D and 3D boxes is cheap.

Units: positions m (offsets from the nominal hole), time s, speed m/s.
"""
from __future__ import annotations

import itertools

import numpy as np

from robot_dyn.search.paths import SearchPath


class CosineBasis:
    """The first `coefficients` cosine modes per axis on the box [lo, hi] (d,) m."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, coefficients: int):
        self.lo, self.hi = np.asarray(lo, float), np.asarray(hi, float)
        if self.lo.shape != self.hi.shape or np.any(self.hi <= self.lo):
            raise ValueError(f"ergodic: the box needs hi > lo per axis, got {self.lo} and {self.hi}")
        if not (isinstance(coefficients, (int, np.integer)) and coefficients >= 2):
            raise ValueError(f"ergodic: coefficients per axis must be an integer >= 2, got {coefficients!r}")
        d = len(self.lo)
        self.k = np.array(list(itertools.product(range(coefficients), repeat=d)), float)  # (K, d)
        self.omega = self.k * np.pi / (self.hi - self.lo)  # (K, d) rad/m
        # h_k: the L2 norm of the unnormalised mode on the box (a zero mode integrates to L, others L/2)
        self.h = np.sqrt(np.prod(np.where(self.k == 0, 1.0, 0.5) * (self.hi - self.lo), axis=1))
        self.weights = (1.0 + (self.k**2).sum(axis=1)) ** (-(d + 1) / 2)  # Lambda_k

    def values(self, x: np.ndarray) -> np.ndarray:
        """f_k at points x (N, d): (N, K)."""
        phase = (np.asarray(x, float)[:, None, :] - self.lo) * self.omega
        return np.prod(np.cos(phase), axis=2) / self.h

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """grad f_k at one point x (d,): (K, d)."""
        phase = (np.asarray(x, float) - self.lo) * self.omega
        c, s = np.cos(phase), np.sin(phase)
        grad = np.empty_like(phase)
        for i in range(phase.shape[1]):
            others = np.prod(np.delete(c, i, axis=1), axis=1)
            grad[:, i] = -self.omega[:, i] * s[:, i] * others
        return grad / self.h[:, None]

    def density_coefficients(self, density, resolution: int = 64) -> np.ndarray:
        """phi_k of density(points (N, d)) -> (N,), normalised to integrate to 1 on the box."""
        axes = [np.linspace(a, b, resolution) for a, b in zip(self.lo, self.hi)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(self.lo))
        p = np.asarray(density(grid), float)
        if p.shape != (len(grid),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
            raise ValueError("ergodic: the density must be finite, non-negative and not zero on the box")
        cell = np.prod((self.hi - self.lo) / (resolution - 1))
        p = p / (p.sum() * cell)
        return (self.values(grid) * p[:, None]).sum(axis=0) * cell


def ergodic_path(density, lo, hi, duration: float, max_speed: float, dt: float = 0.02, coefficients: int = 10,
                 start=None) -> SearchPath:
    """An SMC path of `duration` s at `max_speed` m/s with step dt s over the box [lo, hi] (d,) m, from
    `start` (default the origin), ergodic toward density(points (N, d)) -> (N,). Its `metric` is the
    ergodic metric E(t) after each step (the first entry at t = 0 is that of the start alone)."""
    if not (max_speed > 0 and dt > 0 and duration > dt):
        raise ValueError(f"ergodic: need max_speed > 0, dt > 0 and duration > dt, got {max_speed}, {dt}, {duration}")
    basis = CosineBasis(lo, hi, coefficients)
    phi = basis.density_coefficients(density)
    x = np.zeros(len(basis.lo)) if start is None else np.asarray(start, float)
    n = int(np.ceil(duration / dt)) + 1
    offsets, metric = np.empty((n, len(x))), np.empty(n)
    summed = np.zeros(len(phi))  # int_0^t f_k(x(s)) ds, so S_k = summed - t phi_k
    for step in range(n):
        offsets[step] = x
        summed += basis.values(x[None])[0] * dt
        t = (step + 1) * dt
        s = summed - t * phi
        metric[step] = float(np.sum(basis.weights * (s / t) ** 2))
        b = (basis.weights * s) @ basis.gradient(x)
        norm = float(np.linalg.norm(b))
        u = -max_speed * b / norm if norm > 1e-12 else np.zeros_like(x)
        x = np.clip(x + u * dt, basis.lo, basis.hi)
    return SearchPath(np.arange(n) * dt, offsets, "ergodic", metric)


def ergodic_metric(path: SearchPath, density, lo, hi, coefficients: int = 10) -> float:
    """E of a whole path (any strategy's) against the density on the box: how well it covers it."""
    basis = CosineBasis(lo, hi, coefficients)
    phi = basis.density_coefficients(density)
    inside = np.clip(path.offsets, basis.lo, basis.hi)
    c = basis.values(inside).mean(axis=0)
    return float(np.sum(basis.weights * (c - phi) ** 2))
