"""Velocity following (teleoperation) in the outer loop: commands, timeout, switching, a blocked arm."""
import numpy as np
import pytest

from robot_dyn.control.outer_loop import GoalRejected, OuterLoop, OuterLoopConfig
from robot_dyn.control.trajectory import figure_eight
from robot_dyn.control.twist import TwistRejected, TwistSettings, commanded_twist
from robot_dyn.robots import load_robot
from robot_dyn.safety.filter import FilterSettings, SafetyFilter
from robot_dyn.safety.sets import load_safe_sets

ROBOT = load_robot("panda")
DT = 0.002
SETTINGS = TwistSettings()


def started_loop(safety=None) -> OuterLoop:
    loop = OuterLoop(ROBOT, OuterLoopConfig(), safety=safety)
    loop.start(0.0, ROBOT.home)
    return loop


def drive(loop: OuterLoop, t0: float, duration: float, linear=None, angular=(0.0, 0.0, 0.0), frame="base",
          command_every: int = 10):
    """Tick at 500 Hz from t0 for `duration` s, sending the twist every `command_every` ticks
    (None: send nothing). Returns the ticks' times and the desired end-effector twists (6,)."""
    times, twists = [], []
    for k in range(1, int(round(duration / DT)) + 1):
        t = t0 + k * DT
        if linear is not None and k % command_every == 1:
            loop.command_twist(loop.time, loop.time, linear, angular, frame)
        loop.tick(t)
        _, _, jac, _ = loop.model.ee_kinematics(loop.q_d, loop.qd_d)
        times.append(t)
        twists.append(jac @ loop.qd_d)
    return np.array(times), np.array(twists)


def test_commands_are_scaled_rotated_clipped_and_checked():
    R = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # ee x = base y
    v, w = commanded_twist([1.0, 0.0, 0.0], [0.0, 0.0, -1.0], "base", R, SETTINGS)
    np.testing.assert_allclose(v, [SETTINGS.linear_scale, 0, 0])
    np.testing.assert_allclose(w, [0, 0, -SETTINGS.angular_scale])
    v, _ = commanded_twist([1.0, 0.0, 0.0], [0.0, 0.0, 0.0], "ee", R, SETTINGS)
    np.testing.assert_allclose(v, [0, SETTINGS.linear_scale, 0], atol=1e-15)
    metric = TwistSettings(command_type="speed_units")
    v, w = commanded_twist([3.0, 4.0, 0.0], [0.0, 5.0, 0.0], "base", R, metric)
    np.testing.assert_allclose(np.linalg.norm(v), metric.max_linear_speed)
    np.testing.assert_allclose(v / np.linalg.norm(v), [0.6, 0.8, 0.0])
    np.testing.assert_allclose(w, [0, metric.max_angular_speed, 0])
    for linear, angular, frame, field in (([np.nan, 0, 0], [0, 0, 0], "base", "twist.linear"),
                                          ([0, 0], [0, 0, 0], "base", "twist.linear"),
                                          ([0, 0, 0], [0, 1.5, 0], "base", "twist.angular"),
                                          ([0, 0, 0], [0, 0, 0], "tool0", "header.frame_id")):
        with pytest.raises(TwistRejected, match=field.replace(".", r"\.")):
            commanded_twist(linear, angular, frame, R, SETTINGS)
    with pytest.raises(ValueError, match="twist_command_type"):
        TwistSettings(command_type="m/s").validated()


def test_the_end_effector_moves_at_the_commanded_twist_and_keeps_its_orientation():
    loop = started_loop()
    p0, R0 = loop.desired_pose()
    times, twists = drive(loop, 0.0, 1.0, linear=[0.0, 1.0, 0.0])
    ramp = SETTINGS.linear_scale / SETTINGS.linear_acceleration  # 0.15 s at 1 m/s^2
    steady = twists[times > ramp + 0.1]
    np.testing.assert_allclose(steady[:, 1], SETTINGS.linear_scale, rtol=2e-3)
    assert np.max(np.abs(steady[:, [0, 2, 3, 4, 5]])) < 1e-3
    p, R = loop.desired_pose()
    expected = SETTINGS.linear_scale * (1.0 - ramp / 2)  # the distance of a ramp then constant speed
    assert abs((p - p0)[1] - expected) < 2e-3, (p - p0, expected)
    assert np.linalg.norm(pin_log(R @ R0.T)) < 1e-3


def pin_log(R):
    import pinocchio as pin
    return pin.log3(R)


def test_an_expired_command_brakes_the_arm_to_rest_and_the_motion_ends():
    loop = started_loop()
    drive(loop, 0.0, 0.6, linear=[1.0, 0.0, 0.0])
    p_last, _ = loop.desired_pose()
    t_last = loop.time
    times, twists = drive(loop, t_last, 1.5)  # no more commands
    speed = np.linalg.norm(twists[:, :3], axis=1)
    # followed for the timeout after the last command (its stamp: 9 ticks before t_last), then braked
    stop_by = t_last + SETTINGS.timeout + SETTINGS.linear_scale / SETTINGS.linear_acceleration + 0.1
    assert np.all(speed[times > stop_by] < 1e-4), speed[times > stop_by].max()
    travel = np.linalg.norm(loop.desired_pose()[0] - p_last)
    bound = SETTINGS.linear_scale * SETTINGS.timeout + SETTINGS.linear_scale**2 / (2 * SETTINGS.linear_acceleration)
    assert travel < bound + 2e-3, (travel, bound)
    assert np.max(np.abs(np.diff(speed))) / DT < 1.5 * SETTINGS.linear_acceleration  # smooth: bounded deceleration
    assert any(n.startswith("twist done") for n in loop.notices), loop.notices
    assert loop.motion is None and not loop.busy(loop.time)


def test_stale_and_malformed_commands_are_rejected_and_do_not_move_the_arm():
    loop = started_loop()
    loop.tick(0.5)
    with pytest.raises(GoalRejected, match="header.stamp"):
        loop.command_twist(0.5, 0.3, [1.0, 0, 0], [0, 0, 0])
    with pytest.raises(TwistRejected, match="twist.linear"):
        loop.command_twist(0.5, 0.5, [np.inf, 0, 0], [0, 0, 0])
    q = loop.q_d.copy()
    for k in range(1, 50):
        loop.tick(0.5 + k * DT)
    np.testing.assert_array_equal(loop.q_d, q)
    assert loop.motion is None


def test_a_twist_preempts_a_goal_and_a_goal_preempts_a_twist():
    loop = started_loop()
    loop.command_joint_goal(0.0, ROBOT.home + 0.3)
    for k in range(1, 100):
        loop.tick(k * DT)
    assert loop.command_twist(loop.time, loop.time, [0, 0, 1.0], [0, 0, 0]) is True
    assert any("joint goal preempted" in n and "by a twist" in n for n in loop.notices), loop.notices
    # it starts from the desired state's velocity: no jump in the reference's velocity
    qd_before = loop.qd_d.copy()
    loop.tick(loop.time + DT)
    assert np.max(np.abs(loop.qd_d - qd_before)) < ROBOT.qdd_max.max() * DT
    assert loop.command_twist(loop.time, loop.time, [0, 0, 1.0], [0, 0, 0]) is False  # the same motion, updated
    drive(loop, loop.time, 0.3, linear=[0, 0, 1.0])
    loop.notices.clear()
    loop.command_joint_goal(loop.time, ROBOT.home)
    assert any(n.startswith("twist preempted") for n in loop.notices), loop.notices
    for k in range(1, 2000):
        loop.tick(loop.time + DT)
    np.testing.assert_allclose(loop.q_d, ROBOT.home, atol=1e-6)


def test_a_path_after_teleop_starts_from_where_the_twist_left_the_arm():
    loop = started_loop()
    drive(loop, 0.0, 0.5, linear=[0, 1.0, 0])
    drive(loop, loop.time, 1.0)  # expired, braked, at rest
    p, R = loop.desired_pose()
    path = figure_eight(p, 0.05, 2.0, cycles=1, ramp=0.5, t0=loop.time, rotation=R)
    loop.command_cartesian_path(loop.time, path)  # within path_start_tolerance: accepted


def test_a_blocked_arm_answers_a_reversed_command_at_once():
    """Pushed down onto the table, the safety filter holds the arm above it while the command goes
    on; the reference pose may lead the blocked arm by max_pose_error only, so reversing the command
    lifts the arm within the ramp time instead of unwinding a reference that ran on."""
    sets = load_safe_sets(ROBOT)
    safety = SafetyFilter(ROBOT, sets, FilterSettings(dt=DT))
    loop = started_loop(safety)
    drive(loop, 0.0, 6.0, linear=[0, 0, -1.0])  # 0.15 m/s down for 6 s: far more than the height above the table
    assert loop.motion.t_end == np.inf
    z_blocked = loop.desired_pose()[0][2]
    assert safety.filter(loop.q_d, loop.qd_d, np.zeros(ROBOT.n_joints)).min_barrier > -1e-6
    gap = np.linalg.norm(loop.motion.p - loop.desired_pose()[0])
    assert gap <= SETTINGS.max_pose_error + SETTINGS.linear_scale * DT + 1e-9  # restrained, then one tick's advance
    times, twists = drive(loop, loop.time, 0.5, linear=[0, 0, 1.0])
    rising = times[twists[:, 2] > 0.01]
    assert rising.size and rising[0] - times[0] < 0.3, rising[:1]
    assert loop.desired_pose()[0][2] > z_blocked + 0.02


def test_a_motion_reference_is_held_within_hold_lag_of_an_arm_pushed_away_but_a_resting_one_is_not():
    """A contact can push the compliant arm away from a reference whose motion is paused (a policy pushing the
    pusht block took the gap from 0.033 rad to the robot layer's 0.05 rad guard in 30 ms): during a motion
    the loop holds its reference within hold_lag of the measured arm, velocity zeroed there. At rest it
    keeps its reference: holding position against a push is what the arm must do then."""
    loop = started_loop()
    config = loop.config
    drive(loop, 0.0, 0.3, linear=[1.0, 0.0, 0.0])  # following a twist
    pushed = loop.q_d.copy()
    pushed[5] -= 0.047  # joint6 pushed 47 mrad away from the reference, as in the rollout
    loop.observe(loop.time, pushed, np.zeros(ROBOT.n_joints))  # held as the state arrives
    assert abs(loop.q_d[5] - pushed[5]) <= config.hold_lag + 1e-12
    assert loop.qd_d[5] == 0.0 and loop.lag_holds == 1
    loop.tick(loop.time + DT)  # and the next reference starts from there
    assert abs(loop.q_d[5] - pushed[5]) <= config.hold_lag + 1e-4
    assert any("reference held 40 mrad from the measured arm (['panda_joint6'])" in e for e in loop.events), loop.events

    resting = started_loop()
    drive(resting, 0.0, 0.2)  # no motion
    q_rest = resting.q_d.copy()
    pushed = q_rest.copy()
    pushed[5] -= 0.047
    resting.observe(resting.time, pushed, np.zeros(ROBOT.n_joints))
    resting.tick(resting.time + DT)
    np.testing.assert_array_equal(resting.q_d, q_rest)
    assert resting.lag_holds == 0


def test_the_lags_must_be_ordered():
    with pytest.raises(ValueError, match="0 < slowdown_lag < pause_lag < hold_lag"):
        OuterLoopConfig(pause_lag=0.03, hold_lag=0.03).validated()
