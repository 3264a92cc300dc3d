"""Smooth time-parametrised motions: minimum-jerk joint and Cartesian moves, sampled
Cartesian paths, and the figure-8 test path.

Each motion answers sample(t) with position, velocity and acceleration at absolute
time t (s). Cartesian quantities: position (m) in the base frame, rotation matrix
base <- ee, angular velocity/acceleration (rad/s, rad/s^2) in base-frame axes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pinocchio as pin

# Rest-to-rest minimum jerk: peak velocity 1.875 d/T, peak acceleration 5.7735 d/T^2.
MIN_JERK_PEAK_VELOCITY = 1.875
MIN_JERK_PEAK_ACCELERATION = 5.7735


def min_jerk_fraction(tau):
    """Rest-to-rest minimum-jerk progress 10 tau^3 - 15 tau^4 + 6 tau^5 (0 .. 1) at time fractions tau
    (any shape, clipped to [0, 1]): what quintic(0, 0, 0, 1, 0, 0, T) gives at tau * T."""
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10 + tau * (-15 + 6 * tau))


def quintic(x0, v0, a0, x1, v1, a1, duration: float) -> np.ndarray:
    """Coefficients c (6, dims) of x(s) = sum c_k s^k, s in [0, duration], meeting both boundary states."""
    x0, v0, a0, x1, v1, a1 = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x0, v0, a0, x1, v1, a1))
    T = duration
    h = x1 - x0 - v0 * T - 0.5 * a0 * T**2
    dv = v1 - v0 - a0 * T
    da = a1 - a0
    c3 = (10 * h - 4 * dv * T + 0.5 * da * T**2) / T**3
    c4 = (-15 * h + 7 * dv * T - da * T**2) / T**4
    c5 = (6 * h - 3 * dv * T + 0.5 * da * T**2) / T**5
    return np.stack([x0, v0, 0.5 * a0, c3, c4, c5])


def eval_quintic(c: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, dx/ds, d2x/ds2) of quintic coefficients c at s."""
    x = c[0] + s * (c[1] + s * (c[2] + s * (c[3] + s * (c[4] + s * c[5]))))
    v = c[1] + s * (2 * c[2] + s * (3 * c[3] + s * (4 * c[4] + s * 5 * c[5])))
    a = 2 * c[2] + s * (6 * c[3] + s * (12 * c[4] + s * 20 * c[5]))
    return x, v, a


def min_jerk_duration(distance, v_max, a_max, minimum: float = 0.2) -> float:
    """Shortest rest-to-rest minimum-jerk duration (s) within velocity and acceleration bounds (per axis)."""
    d = np.abs(np.atleast_1d(distance))
    t_v = MIN_JERK_PEAK_VELOCITY * d / np.atleast_1d(v_max)
    t_a = np.sqrt(MIN_JERK_PEAK_ACCELERATION * d / np.atleast_1d(a_max))
    return float(max(minimum, t_v.max(), t_a.max()))


@dataclass
class JointMotion:
    """Quintic joint motion from (q0, qd0, qdd0) at t0 to rest at q1 at t0 + duration."""

    kind = "joint goal"  # what was commanded (events name motions by it; planners plan these and pose goals)
    t0: float
    duration: float
    coefficients: np.ndarray

    @classmethod
    def plan(cls, t0, q0, qd0, qdd0, q1, duration) -> "JointMotion":
        return cls(t0, duration, quintic(q0, qd0, qdd0, q1, np.zeros_like(q1), np.zeros_like(q1), duration))

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration

    def sample(self, t: float):
        s = min(max(t - self.t0, 0.0), self.duration)
        return eval_quintic(self.coefficients, s)


@dataclass(frozen=True)
class CartesianSample:
    position: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray
    rotation: np.ndarray
    angular_velocity: np.ndarray
    angular_acceleration: np.ndarray


class CartesianMove:
    """Straight-line, minimum-jerk move of the end-effector (position and geodesic rotation)."""

    kind = "pose goal"

    def __init__(self, t0: float, duration: float, p0, R0, p1, R1):
        self.t0, self.duration = t0, duration
        self.p0, self.dp = np.asarray(p0, float), np.asarray(p1, float) - p0
        self.R0 = np.asarray(R0, float)
        self.rotvec = pin.log3(np.asarray(R1, float) @ self.R0.T)  # base-frame axis * angle
        self.profile = quintic(0.0, 0.0, 0.0, 1.0, 0.0, 0.0, duration)

    @property
    def t_end(self) -> float:
        return self.t0 + self.duration

    def sample(self, t: float) -> CartesianSample:
        s, sd, sdd = (v[0] for v in eval_quintic(self.profile, min(max(t - self.t0, 0.0), self.duration)))
        return CartesianSample(
            self.p0 + s * self.dp, sd * self.dp, sdd * self.dp,
            pin.exp3(s * self.rotvec) @ self.R0, sd * self.rotvec, sdd * self.rotvec,
        )


class CartesianPath:
    """A sampled end-effector trajectory (e.g. from a MultiDOFJointTrajectory), interpolated
    by quintic Hermite splines between samples; it rests at its first/last sample outside its span.

    times (N,) s absolute; positions, velocities, accelerations (N, 3); rotations (N, 3, 3);
    angular_velocities (N, 3). Orientation is interpolated as a cubic Hermite rotation vector
    relative to the earlier sample, exact for constant orientation and accurate for dense samples.
    """

    kind = "cartesian path"

    def __init__(self, times, positions, velocities, accelerations, rotations, angular_velocities):
        self.times = np.asarray(times, float)
        self.p, self.v, self.a = (np.asarray(x, float) for x in (positions, velocities, accelerations))
        self.R, self.w = np.asarray(rotations, float), np.asarray(angular_velocities, float)
        n = self.times.size
        if n < 2 or np.any(np.diff(self.times) <= 0):
            raise ValueError("points: a Cartesian path needs at least 2 points with increasing time_from_start")
        for name, arr, shape in (("positions", self.p, (n, 3)), ("velocities", self.v, (n, 3)),
                                 ("accelerations", self.a, (n, 3)), ("rotations", self.R, (n, 3, 3)),
                                 ("angular velocities", self.w, (n, 3))):
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"points: {name} must be finite with shape {shape}")
        self._segments: dict[int, tuple] = {}

    @property
    def t0(self) -> float:
        return float(self.times[0])

    @property
    def t_end(self) -> float:
        return float(self.times[-1])

    def _segment(self, i: int):
        """Quintic position coefficients and the rotation step of segment i, computed once."""
        if i not in self._segments:
            h = self.times[i + 1] - self.times[i]
            c = quintic(self.p[i], self.v[i], self.a[i], self.p[i + 1], self.v[i + 1], self.a[i + 1], h)
            self._segments[i] = (h, c, pin.log3(self.R[i + 1] @ self.R[i].T), self.w[i] * h, self.w[i + 1] * h)
        return self._segments[i]

    def sample(self, t: float) -> CartesianSample:
        t = min(max(t, self.times[0]), self.times[-1])
        i = int(min(np.searchsorted(self.times, t, side="right") - 1, self.times.size - 2))
        h, c, r1, m0, m1 = self._segment(i)
        p, v, a = eval_quintic(c, t - self.times[i])
        tau = (t - self.times[i]) / h
        # Cubic Hermite of the rotation vector r(tau): r(0)=0, r(1)=r1, r'(0)=w_i h, r'(1)=w_i+1 h.
        h01, h10, h11 = -2 * tau**3 + 3 * tau**2, tau**3 - 2 * tau**2 + tau, tau**3 - tau**2
        r = h01 * r1 + h10 * m0 + h11 * m1
        dr = ((-6 * tau**2 + 6 * tau) * r1 + (3 * tau**2 - 4 * tau + 1) * m0 + (3 * tau**2 - 2 * tau) * m1) / h
        ddr = ((-12 * tau + 6) * r1 + (6 * tau - 4) * m0 + (6 * tau - 2) * m1) / h**2
        return CartesianSample(p, v, a, pin.exp3(r) @ self.R[i], dr, ddr)


def _ramp_phase(t: float, omega: float, ramp: float, total: float):
    """Phase phi(t) and its derivatives for a speed that ramps 0 -> omega -> 0 with minimum-jerk blends."""

    def blend(u):  # s(u), its integral, its derivative for the min-jerk step 0 -> 1
        return (10 * u**3 - 15 * u**4 + 6 * u**5, 2.5 * u**4 - 3 * u**5 + u**6, 30 * u**2 - 60 * u**3 + 30 * u**4)

    t = min(max(t, 0.0), total)
    phi_end = omega * (total - ramp)
    if t < ramp:
        s, integral, ds = blend(t / ramp)
        return omega * ramp * integral, omega * s, omega * ds / ramp
    if t > total - ramp:
        s, integral, ds = blend((total - t) / ramp)
        return phi_end - omega * ramp * integral, omega * s, -omega * ds / ramp
    return omega * ramp / 2 + omega * (t - ramp), omega, 0.0


def figure_eight(center, radius: float, period: float, cycles: int = 2, ramp: float = 1.0, plane: str = "yz",
                 t0: float = 0.0, rate_hz: float = 100.0, rotation=None) -> CartesianPath:
    """A figure-8 (lemniscate of Gerono) through `center`, sampled at rate_hz with exact derivatives.

    In plane coordinates (u, v): u = radius sin(phi), v = radius sin(phi) cos(phi); the phase
    speed ramps up and down over `ramp` seconds so the path starts and ends at rest at the
    centre. Duration: cycles * period + ramp. `rotation` (3x3) is held constant.
    """
    axes = {"xy": (0, 1), "yz": (1, 2), "xz": (0, 2)}
    if plane not in axes:
        raise ValueError(f"figure-8 plane must be one of {sorted(axes)}, got '{plane}'")
    total = cycles * period + ramp
    omega = 2 * np.pi / period
    times = np.linspace(0.0, total, int(round(total * rate_hz)) + 1)
    n = times.size
    P, V, A = np.tile(np.asarray(center, float), (n, 1)), np.zeros((n, 3)), np.zeros((n, 3))
    iu, iv = axes[plane]
    for k, t in enumerate(times):
        phi, dphi, ddphi = _ramp_phase(t, omega, ramp, total)
        d1 = radius * np.array([np.cos(phi), np.cos(2 * phi)])
        d2 = radius * np.array([-np.sin(phi), -2 * np.sin(2 * phi)])
        P[k, iu] += radius * np.sin(phi)
        P[k, iv] += radius * np.sin(phi) * np.cos(phi)
        V[k, [iu, iv]] = d1 * dphi
        A[k, [iu, iv]] = d2 * dphi**2 + d1 * ddphi
    R = np.tile(np.eye(3) if rotation is None else np.asarray(rotation, float), (n, 1, 1))
    return CartesianPath(times + t0, P, V, A, R, np.zeros((n, 3)))
