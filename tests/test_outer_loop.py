"""The outer loop against the real MuJoCo arm and robot layer, in one process (no ROS)."""
import numpy as np
import pytest

from robot_dyn.control.impedance import ImpedanceSettings
from robot_dyn.control.outer_loop import GoalRejected, OuterLoop, OuterLoopConfig
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.robots import load_robot
from robot_dyn.sim.backend import make_backend
from robot_dyn.sim.simulated_arm import SimulatedArm


def run_closed_loop(robot, loop, arm, until: float, record=None):
    """500 Hz outer loop, 1 kHz robot layer; record(t, q) after each outer tick."""
    arm.follow(loop.tick, until - arm.time, 500.0, after_tick=record)


def setup(name, feedforward="nominal", backend="mujoco"):
    robot = load_robot(name)
    arm = SimulatedArm(robot, make_backend(backend, robot), ImpedanceSettings.from_robot(robot), robot.home)
    loop = OuterLoop(robot, OuterLoopConfig(feedforward=feedforward))
    loop.start(0.0, robot.home)
    return robot, arm, loop


def figure_eight_errors(name, feedforward):
    """End-effector position errors (m) along one figure-8 cycle, closed loop in MuJoCo."""
    robot, arm, loop = setup(name, feedforward)
    p0, R0 = loop.desired_pose()
    path = figure_eight(p0, 0.1, 4.0, cycles=1, ramp=1.0, t0=0.1, rotation=R0)
    loop.command_cartesian_path(0.0, path)
    errors = []
    run_closed_loop(robot, loop, arm, path.t_end,
                    lambda t, q: errors.append(np.linalg.norm(loop.model.ee_pose(q)[0] - path.sample(t).position)))
    return np.array(errors)


@pytest.mark.parametrize("name", ["panda", "fr3", "iiwa14"])
def test_figure_eight_tracking_with_nominal_feedforward(name):
    errors = figure_eight_errors(name, "nominal")
    # Same model in controller and sim: only discretisation error is left (~0.01 mm seen).
    assert np.sqrt(np.mean(errors**2)) < 1e-4
    assert errors.max() < 2e-4


def test_feedforward_matters():
    """Without feedforward the same path is tracked markedly worse: the test can tell them apart."""
    rms = {ff: np.sqrt(np.mean(figure_eight_errors("panda", ff) ** 2)) for ff in ("nominal", "none")}
    assert rms["none"] > 10 * rms["nominal"], rms


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_joint_goal_is_reached(backend):
    robot, arm, loop = setup("panda", backend=backend)
    goal = robot.home + np.array([0.4, -0.2, 0.3, 0.2, -0.3, 0.2, 0.5])
    duration = loop.command_joint_goal(0.0, goal)
    run_closed_loop(robot, loop, arm, duration + 0.5)
    assert np.max(np.abs(arm.state()[1] - goal)) < 1e-3


def test_pose_goal_is_reached():
    robot, arm, loop = setup("panda")
    p0, R0 = loop.desired_pose()
    duration = loop.command_pose_goal(0.0, p0 + [0.05, -0.1, 0.08], R0)
    run_closed_loop(robot, loop, arm, duration + 0.5)
    p, R = loop.model.ee_pose(arm.state()[1])
    assert np.linalg.norm(p - (p0 + [0.05, -0.1, 0.08])) < 1e-4


def test_goals_outside_limits_or_far_paths_are_rejected():
    robot, arm, loop = setup("panda")
    with pytest.raises(GoalRejected, match="outside joint limits"):
        loop.command_joint_goal(0.0, robot.q_max + 0.1)
    with pytest.raises(GoalRejected, match="expected 7 finite positions"):
        loop.command_joint_goal(0.0, np.full(7, np.nan))
    p0, R0 = loop.desired_pose()
    with pytest.raises(GoalRejected, match="cm from the current pose"):
        loop.command_cartesian_path(0.0, figure_eight(p0 + [0.2, 0, 0], 0.1, 4.0, rotation=R0))


def test_unreachable_pose_is_clamped_at_the_limits_not_passed_to_the_robot():
    robot, arm, loop = setup("panda")
    p0, R0 = loop.desired_pose()
    loop.command_pose_goal(0.0, p0 + [1.5, 0.0, 0.0], R0)  # far outside the workspace
    run_closed_loop(robot, loop, arm, 4.0)
    assert arm.layer.rejected == 0
    q = arm.state()[1]
    assert np.all(q >= robot.q_min) and np.all(q <= robot.q_max)


def test_paths_starting_in_the_past_or_turned_away_are_rejected():
    import pinocchio as pin

    robot, arm, loop = setup("panda")
    p0, R0 = loop.desired_pose()
    with pytest.raises(GoalRejected, match="in the past"):
        loop.command_cartesian_path(5.0, figure_eight(p0, 0.1, 4.0, t0=1.0, rotation=R0))
    with pytest.raises(GoalRejected, match="cm from the current pose"):  # joined 2 s in: far from the arm
        loop.command_cartesian_path(1.5, figure_eight(p0, 0.1, 4.0, t0=1.2, ramp=0.2, rotation=R0))
    with pytest.raises(GoalRejected, match="rad away from the current orientation"):
        loop.command_cartesian_path(0.0, figure_eight(p0, 0.1, 4.0, t0=0.1, rotation=pin.exp3(np.array([0, 0, 0.5])) @ R0))


def test_goal_preempting_a_fast_motion_respects_the_limits():
    robot, arm, loop = setup("panda")
    loop.command_joint_goal(0.0, robot.home + 0.6)
    for k in range(150):  # move at speed
        loop.tick(k * 0.002)
    assert np.max(np.abs(loop.qd_d)) > 0.3
    t = 150 * 0.002
    duration = loop.command_joint_goal(t, robot.home - 0.4)  # reverse mid-motion
    v_max = loop.config.joint_speed_scale * robot.qd_max * 1.001
    for s in np.linspace(0, duration, 400):
        ref = loop.tick(t + s)
        assert np.all(np.abs(ref.qd) <= v_max)


def test_idle_arm_far_from_the_reference_is_resynced():
    robot, arm, loop = setup("panda")
    assert loop.resync(0.0, robot.home + 0.01, 0.05) is None
    assert loop.resync(0.0, robot.home + 0.2, 0.05) == ""  # idle: nothing dropped
    np.testing.assert_allclose(loop.q_d, robot.home + 0.2)


def test_a_motion_whose_arm_was_held_far_behind_is_dropped_and_the_loop_restarts_from_the_arm():
    # the robot layer held the arm while this loop stalled; the twist's reference ran on, beyond the
    # layer's guard: the layer would refuse every reference from here, so the motion is dropped
    robot, arm, loop = setup("panda")
    held = robot.home.copy()  # the arm never moves
    for k in range(1, 200):
        if k % 25 == 1:  # the stick held: a command every 50 ms
            loop.command_twist(loop.time, loop.time, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], "base")
        loop.tick(k * 0.002)
    assert loop.busy(0.4) and np.max(np.abs(loop.q_d - held)) > 0.05
    assert loop.resync(0.4, held, 0.05) == "twist"
    assert loop.motion is None and not loop.busy(0.4)
    np.testing.assert_allclose(loop.q_d, held)
    assert not loop.qd_d.any()
    # the next command starts from the arm: its first reference is next to it
    loop.command_twist(0.4, 0.4, [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], "base")
    assert np.max(np.abs(loop.tick(0.402).q - held)) < 0.01


def test_ik_gains_are_validated():
    from robot_dyn.control.ik import IKGains

    with pytest.raises(ValueError, match="IK gain 'position'"):
        OuterLoopConfig(ik=IKGains(position="abc")).validated()
    with pytest.raises(ValueError, match="'cartesian_speed' must be a positive number"):
        OuterLoopConfig(cartesian_speed="fast").validated()


def test_a_commanded_wrench_deflects_the_arm_by_its_compliance():
    # F at the flange through J^T on the joint impedance K: the arm gives way by J K^-1 J^T F (small F)
    robot, arm, loop = setup("panda")
    p0 = loop.desired_pose()[0]
    force = np.array([0.0, 0.0, -8.0])
    for k in range(1, 1001):  # 2 s, a command every 20 ms (within the 0.1 s timeout)
        if k % 10 == 1:
            loop.command_wrench(loop.time, loop.time, force, [0.0, 0.0, 0.0], "base")
        arm.follow(loop.tick, 0.002, 500.0)
    jac = loop.model.ee_kinematics(robot.home, np.zeros(robot.n_joints))[2][:3]
    expected = jac @ np.diag(1.0 / robot.stiffness) @ jac.T @ force
    moved = loop.model.ee_pose(arm.state()[1])[0] - p0
    assert expected[2] < -0.002  # large enough to see
    np.testing.assert_allclose(moved, expected, atol=0.15 * np.linalg.norm(expected))
    # the command lapses: the wrench ramps to zero and the arm returns to its reference
    arm.follow(loop.tick, 1.0, 500.0)
    assert not loop.wrench.active
    assert np.linalg.norm(loop.model.ee_pose(arm.state()[1])[0] - p0) < 2e-4


def test_wrench_commands_are_bounded_ramped_and_checked():
    from robot_dyn.control.wrench import WrenchRejected
    from robot_dyn.safety.filter import FilterSettings, SafetyFilter
    from robot_dyn.safety.sets import load_safe_sets

    robot = load_robot("panda")
    safety = SafetyFilter(robot, load_safe_sets(robot), FilterSettings(external_force=12.0))
    loop = OuterLoop(robot, OuterLoopConfig(), safety=safety)
    loop.start(0.0, robot.home)
    loop.command_wrench(0.0, 0.0, [0.0, 0.0, -50.0], [0.0, 0.0, 0.0], "base")
    assert any("clipped to 12 N" in e for e in loop.events)  # the filter's force budget, below max_force
    loop.tick(0.002)
    np.testing.assert_allclose(loop.wrench.force, [0.0, 0.0, -0.4])  # 200 N/s: no torque step
    for k in range(2, 40):
        loop.tick(0.002 * k)
    np.testing.assert_allclose(loop.wrench.force, [0.0, 0.0, -12.0])
    for name, force, torque in (("wrench.force", [np.nan, 0, 0], [0, 0, 0]), ("wrench.torque", [0, 0, 0], [0, 0])):
        with pytest.raises(WrenchRejected, match=name):
            loop.command_wrench(loop.time, loop.time, force, torque, "base")
    with pytest.raises(GoalRejected, match="header.stamp"):
        loop.command_wrench(loop.time, loop.time - 0.5, [0, 0, -1], [0, 0, 0], "base")
    # nothing new for 0.1 s: it ramps back to zero, and a restart drops it at once
    loop.tick(0.3)
    assert np.linalg.norm(loop.wrench.force) < 12.0
    loop.command_wrench(loop.time, loop.time, [0.0, 0.0, -5.0], [0.0, 0.0, 0.0], "base")
    loop.start(0.31, robot.home)
    assert not loop.wrench.active
