"""Record inverse-dynamics data in simulation, as a real arm would give it.

The arm (MuJoCo, an unmodelled-effects profile, the robot layer at 1 kHz) tracks
excitation trajectories (training) and task-like motions (held out: a Cartesian
figure-8 and point-to-point joint moves) with the nominal feedforward. Each physics
step is recorded. Positions get encoder-like noise; velocities and accelerations come
from zero-phase Savitzky-Golay differentiation of those positions, as offline
processing of real data would give them. The simulator's exact values are kept beside
them (`*_exact`): qdd_exact = (qd[k+1] - qd[k]) / dt, the integrator's own acceleration.
"""
from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.outer_loop import OuterLoop, Reference
from robot_dyn.control.trajectory import figure_eight, quintic, eval_quintic
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.inverse_dynamics.dataset import Episode, urdf_hash, write_dataset
from robot_dyn.inverse_dynamics.excitation import FourierTrajectory
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.effects import load_profile
from robot_dyn.sim.simulated_arm import SimulatedArm


@dataclass(frozen=True)
class CollectionConfig:
    robot: str = "panda"
    effects: str = "realistic_memory"
    excitation_periods: int = 2
    excitation_time_scales: tuple = (1.0, 1.6, 2.5)  # each excitation also run slower: other velocities
    train_point_to_point_moves: int = 12  # task-like moves for training (other seeds than held out)
    point_to_point_moves: int = 4  # held out
    figure_eight_cycles: int = 2
    lead_in_s: float = 2.0
    outer_rate_hz: float = 500.0
    position_noise_rad: float = 2e-5  # std of measured joint positions
    filter_window: int = 31  # samples at the physics rate (31 ms at 1 kHz)
    filter_order: int = 3
    seed: int = 0


class _Recorder:
    def __init__(self):
        self.t, self.q, self.qd, self.tau = [], [], [], []

    def __call__(self, t, q, qd, tau):
        self.t.append(t)
        self.q.append(q)
        self.qd.append(qd)
        self.tau.append(tau.copy())


def _run(arm: SimulatedArm, reference_at, duration: float, rate: float) -> _Recorder:
    """Drive the arm for `duration` s with references from reference_at(t) at `rate` Hz, recording every step."""
    rec = _Recorder()
    arm.follow(reference_at, duration, rate, record=rec)
    return rec


def _episode(rec: _Recorder, kind: str, split: str, model: RigidBody, dt: float, config: CollectionConfig,
             rng: np.random.Generator) -> Episode:
    t, q, qd, tau = (np.asarray(x) for x in (rec.t, rec.q, rec.qd, rec.tau))
    qdd_exact = (qd[1:] - qd[:-1]) / dt
    t, q, qd, tau = t[:-1], q[:-1], qd[:-1], tau[:-1]
    q_meas = q + rng.normal(0.0, config.position_noise_rad, q.shape)
    sg = dict(window_length=config.filter_window, polyorder=config.filter_order, delta=dt, axis=0)
    gravity = np.array([model.gravity(qk) for qk in q])
    return Episode(kind, split, t - t[0], {
        "q": q_meas, "qd": savgol_filter(q_meas, deriv=1, **sg), "qdd": savgol_filter(q_meas, deriv=2, **sg),
        "q_exact": q, "qd_exact": qd, "qdd_exact": qdd_exact,
        "tau_commanded": tau, "tau_gravity": gravity, "tau": tau + gravity,
    })


def collect(excitation: FourierTrajectory, out: Path, config: CollectionConfig = CollectionConfig(), log=print) -> Path:
    """Run every episode and write the dataset to `out`; returns its path."""
    robot = load_robot(config.robot)
    model = RigidBody(robot)
    effects = load_profile(config.effects)
    rng = np.random.default_rng(config.seed)
    episodes = []

    def fresh():
        arm = SimulatedArm(robot, make_backend("mujoco", robot, effects), ImpedanceSettings.from_robot(robot), robot.home)
        loop = OuterLoop(robot, model=model)
        loop.start(0.0, robot.home)
        return arm, loop

    def ff_reference(loop, t, q, qd, qdd):
        return Reference(t, q, qd, qdd, loop.feedforward(q, qd, qdd))

    for scale in config.excitation_time_scales:
        traj = FourierTrajectory(excitation.period * scale, excitation.q0, excitation.a / scale, excitation.b / scale)
        arm, loop = fresh()
        q_start, qd_start, qdd_start = (x[0] for x in traj.sample(0.0))
        rest = np.zeros(robot.n_joints)
        lead = quintic(robot.home, rest, rest, q_start, qd_start, qdd_start, config.lead_in_s)
        t0 = config.lead_in_s

        def reference_at(t, traj=traj, lead=lead, loop=loop, t0=t0):
            if t < t0:
                return ff_reference(loop, t, *eval_quintic(lead, t))
            return ff_reference(loop, t, *(x[0] for x in traj.sample(t - t0)))

        duration = t0 + config.excitation_periods * traj.period
        episodes.append(_episode(_run(arm, reference_at, duration, config.outer_rate_hz),
                                 f"excitation_x{scale:g}", "train", model, arm.backend.dt, config, rng))
        log(f"collect: excitation x{scale:g}, {duration:.0f} s")

    arm, loop = fresh()
    p0, R0 = loop.desired_pose()
    path = figure_eight(p0, 0.1, 4.0, cycles=config.figure_eight_cycles, ramp=1.0, t0=0.2, rotation=R0)
    loop.command_cartesian_path(0.0, path)
    episodes.append(_episode(_run(arm, loop.tick, path.t_end + 0.3, config.outer_rate_hz),
                             "figure_eight", "heldout", model, arm.backend.dt, config, rng))
    log(f"collect: held-out figure-8, {path.t_end:.0f} s")

    for split, moves in (("train", config.train_point_to_point_moves), ("heldout", config.point_to_point_moves)):
        arm, loop = fresh()
        for k in range(moves):
            goal = np.clip(robot.home + rng.uniform(-0.6, 0.6, robot.n_joints), robot.q_min + 0.2, robot.q_max - 0.2)
            duration = loop.command_joint_goal(arm.time, goal) + rng.uniform(0.1, 0.5)
            rec = _run(arm, loop.tick, duration, config.outer_rate_hz)
            episodes.append(_episode(rec, f"point_to_point_{split}_{k}", split, model, arm.backend.dt, config, rng))
        log(f"collect: {split} point-to-point, {moves} moves")

    metadata = {
        "robot": robot.name, "joint_names": list(robot.joint_names), "urdf_sha256": urdf_hash(robot.urdf_xml),
        "source": "simulation (MuJoCo)", "effects_profile": config.effects, "effects": asdict(effects),
        "rate_hz": 1.0 / arm.backend.dt, "robot_compensates_gravity": True,
        "collection": asdict(config), "excitation": excitation.to_dict(),
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    return write_dataset(out, metadata, episodes)
