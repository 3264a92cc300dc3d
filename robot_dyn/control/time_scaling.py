"""Time scaling of the active motion: its clock slows, or pauses, while the measured arm lags the
reference, so the reference never runs further ahead of the arm than the robot layer accepts.

Why: the robot layer (and the hardware adapter) refuses a reference more than
`max_position_error` (0.05 rad) from the measured position, and then holds the arm. When the arm
falls behind its reference (late references on a loaded machine, a contact, soft gains under a
payload) a motion that keeps its schedule runs into that guard and stops halfway. As a trajectory
controller's speed scaling does, the motion is instead sampled at its own time tau, which advances
by `rate` (0..1) seconds per second of the outer loop's clock; goals and paths then complete later.

The rate follows the lag, the largest |q_d - q| over the joints (rad): 1 up to `slowdown_lag`, 0 from
`pause_lag` on, linear between. It falls at up to SLOWDOWN_RATE per second (a whole stop in 50 ms)
and rises at up to RESUME_RATE per second (0.5 s), so the reference slows and resumes smoothly.
A sample at tau has its velocity scaled by the rate and its acceleration by the rate squared.

The clock keeps the motion's delay (loop time - tau), not tau: at rate 1 the delay stays exactly 0 and
the motion is sampled at the loop's own time, bit for bit as without time scaling.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

SLOWDOWN_RATE = 20.0  # 1/s: how fast the rate may fall
RESUME_RATE = 2.0  # 1/s: how fast it may rise


@dataclass(frozen=True)
class ScaledMotion:
    """A motion (JointMotion, CartesianMove or CartesianPath) seen through its clock from loop time `t` on:
    at loop time t' >= t it is at motion time tau + rate (t' - t) and moves at `rate` of its speed.

    Its `sample` and `kind` are the motion's, so a planner can take it in the motion's place."""

    motion: object
    t: float  # s, loop time
    tau: float  # s, the motion's time at t
    rate: float  # motion seconds per loop second, 0..1

    @property
    def kind(self) -> str:
        return self.motion.kind

    def sample(self, t: float):
        tau = self.tau + self.rate * (t - self.t) if self.rate != 1.0 else self.tau + (t - self.t)
        sample = self.motion.sample(tau)
        r = self.rate
        if r == 1.0:
            return sample
        if isinstance(sample, tuple):  # joint motion: (q, qd, qdd)
            q, qd, qdd = sample
            return q, r * qd, r * r * qdd
        return replace(sample, velocity=r * sample.velocity, acceleration=r * r * sample.acceleration,
                       angular_velocity=r * sample.angular_velocity,
                       angular_acceleration=r * r * sample.angular_acceleration)


class MotionClock:
    """The active motion's clock: its delay behind the loop's clock and its rate."""

    def __init__(self, slowdown_lag: float, pause_lag: float):
        if not (0 < slowdown_lag < pause_lag):
            raise ValueError(f"time scaling needs 0 < slowdown_lag < pause_lag (rad), got {slowdown_lag}, {pause_lag}")
        self.slowdown_lag, self.pause_lag = slowdown_lag, pause_lag
        self.delay = 0.0  # s, loop time - motion time
        self.rate = 1.0
        self.lag = 0.0  # rad, the last measured lag
        self.peak_lag = 0.0  # rad, the largest lag seen while the motion was slowed
        self.slowed = False  # the rate has been below 1 during this motion

    def restart(self) -> None:
        """A new motion starts now (on schedule); the rate, which follows the arm, carries on."""
        self.delay, self.peak_lag, self.slowed = 0.0, 0.0, False

    def observe(self, lag: float) -> None:
        """The reference's lead over the measured arm (rad, the largest over the joints)."""
        self.lag = float(lag)

    def advance(self, h: float) -> bool:
        """Move the loop's clock on by h seconds; True when the motion just began to slow."""
        if h <= 0:
            return False
        target = float(np.clip((self.pause_lag - self.lag) / (self.pause_lag - self.slowdown_lag), 0.0, 1.0))
        rate = min(max(target, self.rate - SLOWDOWN_RATE * h), self.rate + RESUME_RATE * h)
        if rate < 1.0 or self.rate < 1.0:
            self.delay += h * (1.0 - 0.5 * (rate + self.rate))
        self.rate = rate
        began = rate < 1.0 and not self.slowed
        if rate < 1.0:
            self.slowed = True
            self.peak_lag = max(self.peak_lag, self.lag)
        return began

    def view(self, motion, t: float) -> ScaledMotion:
        return ScaledMotion(motion, t, t - self.delay, self.rate)
