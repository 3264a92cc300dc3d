"""The KUKA deployment path rehearsed in one process: the controller's outer loop (as the controller node
builds it), the adapter's conversion (hardware_bridge.kuka_torque_command) and the emulated
lbr_fri_ros2 + KUKA joint impedance law (robot_dyn.sim.vendor_laws.LbrTorqueLaw) against MuJoCo.

Not over DDS: the KUKA's command message (lbr_fri_idl/LBRTorqueCommand) exists only where
lbr_fri_ros2_stack is built, which no package registry here offers. What this shows is the law on
the arm with a given `joint_position_tau`: upstream's 0.04 s setpoint filter against the overlay's
0.0001 s (hardware/kuka/lbr_system_config_overlay.yaml).
"""
from __future__ import annotations

import logging

import numpy as np

from robot_dyn import hardware_bridge as bridge
from robot_dyn.control.configured import controller_loop
from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.dynamics.rigid_body import RigidBody
from robot_dyn.jobs.report import rms
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.simulated_arm import SimulatedArm
from robot_dyn.sim.vendor_laws import LbrSettings, LbrTorqueLaw

KUKA_DAMPING_RATIO = 0.8  # LBRServer's setDampingForAllJoints in hardware/README.md's first-run snippet
UPSTREAM_JOINT_POSITION_TAU = 0.04  # s, lbr_description/ros2_control/lbr_system_config.yaml


def overlay_joint_position_tau() -> float:
    """hardware.joint_position_tau of hardware/kuka/lbr_system_config_overlay.yaml (s)."""
    from robot_dyn import paths

    path = paths.hardware_path("kuka/lbr_system_config_overlay.yaml")
    value = (paths.read_yaml_mapping(path).get("hardware") or {}).get("joint_position_tau")
    if not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{path}: hardware.joint_position_tau: expected seconds >= 0, got {value!r}")
    return float(value)


def kuka_report() -> dict:
    """The rehearsal with the overlay's setpoint filter and with upstream's default."""
    return {"overlay": rehearse_kuka(overlay_joint_position_tau()), "upstream_default": rehearse_kuka(UPSTREAM_JOINT_POSITION_TAU)}


def rehearse_kuka(joint_position_tau: float, goal_offset=(0.3, 0.2, 0.0, -0.2, 0.0, 0.2, 0.3), radius: float = 0.1,
                  period: float = 4.0, cycles: int = 1) -> dict:
    """A joint goal, then a figure-8 around the end-effector: {'goal_error_rad_max', 'figure8_rms_m',
    'figure8_max_m', 'guard_stops'}, with KUKA's stiffness set to configs/robots/iiwa14.yaml's K and the
    adapter's damping_ff to KUKA's D (which damps the measured velocity), so that qd_d reaches the motors."""
    from robot_dyn.tasks.in_process import controller_parameters

    robot = load_robot("iiwa14")
    model = RigidBody(robot)
    backend = make_backend("mujoco", robot)
    law = LbrTorqueLaw(LbrSettings(robot.stiffness, KUKA_DAMPING_RATIO, joint_position_tau, robot.q_min, robot.q_max,
                                   robot.qd_max), np.diag(model.mass_matrix(robot.home)))
    arm = SimulatedArm(robot, backend, ImpedanceSettings.from_robot(robot), robot.home, layer=law)
    params = controller_parameters()
    loop = controller_loop(robot, params, logging.getLogger("robot_dyn.kuka_rehearsal"))
    steps = int(round(1.0 / (params["rate_hz"] * backend.dt)))
    loop.start(arm.time, robot.home)

    def run(duration: float, record=None) -> None:
        end = arm.time + duration
        while arm.time < end - 1e-9:
            t, q, qd, _ = arm.state()
            loop.observe(t, q, qd)
            ref = loop.tick(t)
            cmd = bridge.kuka_torque_command(robot.joint_names, ref.q, ref.qd, ref.qdd, ref.tau_ff,
                                             int(round(ref.stamp * 1e9)), damping_ff=law.damping)
            law.receive(t, cmd.joint_position, cmd.torque)
            arm.advance(steps)
            if record is not None:
                record.append((arm.time, arm.state()[1]))

    goal = robot.home + np.asarray(goal_offset, float)
    duration = loop.command_joint_goal(arm.time, goal)
    run(duration + 0.5)
    goal_error = float(np.abs(arm.state()[1] - goal).max())
    p0, R0 = loop.desired_pose()
    path = figure_eight(p0, radius, period, cycles, ramp=1.0, plane="yz", t0=arm.time, rotation=R0)
    loop.command_cartesian_path(arm.time, path)
    samples = []
    run(path.t_end - path.t0, samples)
    errors = [np.linalg.norm(model.ee_pose(q)[0] - path.sample(min(t, path.t_end)).position) for t, q in samples]
    return {"joint_position_tau_s": joint_position_tau, "goal_error_rad_max": goal_error,
            "figure8_rms_m": rms(np.array(errors)), "figure8_max_m": float(np.max(errors)),
            "guard_stops": law.hold_events}
