"""The simulated robot: a physics backend with the robot layer (impedance law + watchdog)
run at every physics step, as the arm's real-time controller would."""
from __future__ import annotations

import time

import numpy as np

from robot_dyn.control.impedance import ImpedanceSettings, RobotLayer
from robot_dyn.robots.description import RobotDescription
from robot_dyn.sim.backend import SimBackend
from robot_dyn.timing import TickTimer


class ReferenceRejected(RuntimeError):
    """The robot layer refused a reference (a jump, a limit, a stale stamp): on a robot it would hold."""


class SimulatedArm:
    """backend + RobotLayer. advance(n) runs n physics steps; state() is what sensors report.

    layer: another law with the RobotLayer's interface in its place (robot_dyn.sim.vendor_laws: a
    vendor's controller, to rehearse a deployment)."""

    def __init__(self, robot: RobotDescription, backend: SimBackend, settings: ImpedanceSettings, q0: np.ndarray,
                 layer=None):
        self.robot, self.backend = robot, backend
        self.layer = layer if layer is not None else RobotLayer(robot, settings)
        self.backend.reset(q0)
        self.layer.observe(self.backend.joint_state()[0])
        self.tau = np.zeros(robot.n_joints)  # last commanded joint torque (Nm), excluding gravity compensation
        self.inner_timer = TickTimer()
        self.physics_seconds = 0.0  # wall time spent in physics + inner law

    @property
    def time(self) -> float:
        return self.backend.time

    def advance(self, steps: int, record=None, after_step=None) -> None:
        """Run `steps` physics steps; record(t, q, qd, tau), if given, sees each step's state and torque, and
        after_step(), if given, runs after each step (to measure what the step's physics did, e.g. a contact
        force, at every step rather than at a sample of them)."""
        backend, layer, dt = self.backend, self.layer, self.backend.dt
        start = time.perf_counter()
        for _ in range(steps):
            q, qd = backend.joint_state()
            t0 = time.perf_counter()
            self.tau = layer.torque(backend.time, q, qd, dt)
            self.inner_timer.add(time.perf_counter() - t0)
            if record is not None:
                record(backend.time, q, qd, self.tau)
            backend.step(self.tau)
            if after_step is not None:
                after_step()
        self.physics_seconds += time.perf_counter() - start

    def follow(self, reference_at, duration: float, rate_hz: float = 500.0, record=None, observe=None,
               after_tick=None, after_step=None) -> None:
        """Run the outer loop in this process: every 1/rate_hz s submit reference_at(t) (an object with
        stamp, q, qd, qdd, tau_ff), then advance physics. observe(t, q, qd) sees the measured state before
        each reference; after_tick(t, q) after each outer period; record and after_step as in advance().
        Raises ReferenceRejected (a RuntimeError) if the robot layer rejects a reference."""
        steps = max(1, int(round(1.0 / (rate_hz * self.backend.dt))))
        t_end = self.time + duration
        while self.time < t_end - 1e-9:
            t = self.time
            if observe is not None:
                q, qd = self.backend.joint_state()
                observe(t, q, qd)
            ref = reference_at(t)
            if not self.layer.submit(t, ref.stamp, self.robot.joint_names, ref.q, ref.qd, ref.qdd, ref.tau_ff):
                raise ReferenceRejected(f"reference rejected: {self.layer.drain_events()[-1][1]}")
            self.advance(steps, record, after_step)
            if after_tick is not None:
                after_tick(self.time, self.backend.joint_state()[0])

    def state(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """(t s, q rad, qd rad/s, commanded tau Nm)."""
        q, qd = self.backend.joint_state()
        return self.backend.time, q, qd, self.tau.copy()
